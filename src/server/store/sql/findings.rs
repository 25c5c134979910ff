//! Findings, what is compiled once: how each database takes a batch of new
//! findings as the rows of one `INSERT` (`repositories/findings.rs` writes
//! it, with the upsert around it).

use crate::domain::*;
use crate::server::store::NewFinding;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Sqlite};

/// The columns [`FindingRows::push_finding_rows`] gives values for, in order.
pub const FINDING_INSERT_COLUMNS: &str = "id, tenant_id, finding_type, change_kind, scope_key, \
     baseline_run_id, current_run_id, produced_by_run_id, fingerprint, subject_type, \
     subject_external_id, status, evidence_jsonb, created_at, updated_at";

/// A database's way of writing many new findings in one statement.
pub trait FindingRows: sqlx::Database {
    /// Pushes, after `INSERT INTO findings (FINDING_INSERT_COLUMNS) `, the
    /// rows of `findings`, each with its new id, status `new`, created and
    /// updated `now`.
    fn push_finding_rows<'a>(
        qb: &mut QueryBuilder<'a, Self>,
        findings: &[(&'a NewFinding, FindingId)],
        now: Timestamp,
    );
}

/// One array per column, unnested: the statement is the same dozen
/// parameters whatever the batch. A `VALUES` list of 500 rows is 7,500
/// parameters that PostgreSQL plans, copies and sets up again at every
/// execution — a tenth of PostgreSQL's time in the drift benchmark.
impl FindingRows for Postgres {
    fn push_finding_rows<'a>(
        qb: &mut QueryBuilder<'a, Self>,
        findings: &[(&'a NewFinding, FindingId)],
        now: Timestamp,
    ) {
        let uuids = |of: fn(&NewFinding, FindingId) -> uuid::Uuid| {
            findings
                .iter()
                .map(|(finding, id)| of(finding, *id))
                .collect::<Vec<_>>()
        };
        let texts = |of: fn(&'a NewFinding) -> &'a str| {
            findings
                .iter()
                .map(|&(finding, _)| of(finding))
                .collect::<Vec<_>>()
        };
        qb.push(
            "SELECT u.id, u.tenant_id, u.finding_type, u.change_kind, u.scope_key, \
             u.baseline_run_id, u.current_run_id, u.produced_by_run_id, u.fingerprint, \
             u.subject_type, u.subject_external_id, 'new', u.evidence_jsonb, ",
        );
        qb.push_bind(now);
        qb.push(", ");
        qb.push_bind(now);
        qb.push(" FROM unnest(");
        qb.push_bind(uuids(|_, id| id.0));
        qb.push("::uuid[], ");
        qb.push_bind(uuids(|finding, _| finding.tenant_id.0));
        qb.push("::uuid[], ");
        qb.push_bind(texts(|finding| finding.finding_type.as_str()));
        qb.push("::text[], ");
        qb.push_bind(texts(|finding| finding.change_kind.as_str()));
        qb.push("::text[], ");
        qb.push_bind(texts(|finding| &finding.scope_key));
        qb.push("::text[], ");
        qb.push_bind(uuids(|finding, _| finding.baseline_run_id.0));
        qb.push("::uuid[], ");
        qb.push_bind(uuids(|finding, _| finding.current_run_id.0));
        qb.push("::uuid[], ");
        qb.push_bind(
            findings
                .iter()
                .map(|(finding, _)| finding.produced_by_run_id.map(|run| run.0))
                .collect::<Vec<_>>(),
        );
        qb.push("::uuid[], ");
        qb.push_bind(texts(|finding| &finding.fingerprint));
        qb.push("::text[], ");
        qb.push_bind(texts(|finding| &finding.subject_type));
        qb.push("::text[], ");
        qb.push_bind(texts(|finding| &finding.subject_external_id));
        qb.push("::text[], ");
        qb.push_bind(
            findings
                .iter()
                .map(|(finding, _)| Json(&finding.evidence))
                .collect::<Vec<_>>(),
        );
        qb.push(
            "::jsonb[]) AS u(id, tenant_id, finding_type, change_kind, scope_key, \
             baseline_run_id, current_run_id, produced_by_run_id, fingerprint, subject_type, \
             subject_external_id, evidence_jsonb)",
        );
    }
}

/// A `VALUES` list: SQLite has no arrays, and it prepares the list without
/// a planner's copies.
impl FindingRows for Sqlite {
    fn push_finding_rows<'a>(
        qb: &mut QueryBuilder<'a, Self>,
        findings: &[(&'a NewFinding, FindingId)],
        now: Timestamp,
    ) {
        qb.push_values(findings.iter().copied(), |mut values, (finding, id)| {
            values
                .push_bind(id)
                .push_bind(finding.tenant_id)
                .push_bind(finding.finding_type.as_str())
                .push_bind(finding.change_kind.as_str())
                .push_bind(finding.scope_key.as_str())
                .push_bind(finding.baseline_run_id)
                .push_bind(finding.current_run_id)
                .push_bind(finding.produced_by_run_id)
                .push_bind(finding.fingerprint.as_str())
                .push_bind(finding.subject_type.as_str())
                .push_bind(finding.subject_external_id.as_str())
                .push_bind("new")
                .push_bind(Json(&finding.evidence))
                .push_bind(now)
                .push_bind(now);
        });
    }
}
