//! Drift findings: the batch upsert the engine's progress shares, and the
//! reader's and the acknowledger's side.
//!
//! Here: `write_findings` (for the progress) and `FindingRepository`.

use super::{Builder, Connection, Db, Store};
use crate::domain::*;
use crate::server::store::rows::{FindingRow, FINDING_COLUMNS};
use crate::server::store::sql::findings::{FindingRows, FINDING_INSERT_COLUMNS};
use crate::server::store::sql::{finish_page, push_id_list, push_keyset};
use crate::server::store::{FindingRepository, NewFinding, StoreResult, Upserted};
use async_trait::async_trait;
use sqlx::types::Json;

/// The upsert of `rows` (each finding with the id it gets if new): a
/// fingerprint the tenant already has only touches `updated_at`.
fn upsert_statement<'a>(rows: &[(&'a NewFinding, FindingId)], now: Timestamp) -> Builder<'a> {
    let mut qb = Builder::new(format!("INSERT INTO findings ({FINDING_INSERT_COLUMNS}) "));
    <Db as FindingRows>::push_finding_rows(&mut qb, rows, now);
    qb.push(" ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET updated_at = excluded.updated_at");
    qb
}

/// Writes a batch of findings (the engine's progress). The same finding
/// twice in `findings` (two runs of one batch found it) is written once.
/// Nothing is read back: the progress needs no ids.
pub(super) async fn write_findings(
    conn: &mut Connection,
    findings: &[&NewFinding],
    now: Timestamp,
) -> StoreResult<()> {
    // One statement may not touch a row twice (PostgreSQL refuses).
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<(&NewFinding, FindingId)> = findings
        .iter()
        .copied()
        .filter(|finding| seen.insert((finding.tenant_id, finding.fingerprint.as_str())))
        .map(|finding| (finding, FindingId::generate()))
        .collect();
    // Batches keep each statement well under the bind-parameter limits.
    for rows in distinct.chunks(500) {
        upsert_statement(rows, now)
            .build()
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl FindingRepository for Store {
    async fn upsert_finding(&self, finding: NewFinding) -> StoreResult<Upserted<Finding>> {
        let candidate = FindingId::generate();
        let mut qb = upsert_statement(&[(&finding, candidate)], Timestamp::now());
        // The row as it is now, new or touched: no second read.
        qb.push(format!(" RETURNING {FINDING_COLUMNS}"));
        let row: FindingRow = qb.build_query_as().fetch_one(&self.pool).await?;
        let value: Finding = row.into();
        let inserted = value.id == candidate;
        Ok(Upserted { value, inserted })
    }

    async fn finding(&self, tenant: TenantId, id: FindingId) -> StoreResult<Option<Finding>> {
        let row: Option<FindingRow> = sqlx::query_as(&format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn list_findings(
        &self,
        tenant: TenantId,
        filter: &FindingFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Finding>> {
        let mut qb = Builder::new(format!(
            "SELECT {FINDING_COLUMNS} FROM findings f WHERE f.tenant_id = "
        ));
        qb.push_bind(tenant);
        if let Some(status) = filter.status {
            qb.push(" AND f.status = ");
            qb.push_bind(status.as_str());
        }
        if let Some(scope) = &filter.scope_key {
            qb.push(" AND f.scope_key = ");
            qb.push_bind(scope.clone());
        }
        if let Some(subject_type) = &filter.subject_type {
            qb.push(" AND f.subject_type = ");
            qb.push_bind(subject_type.clone());
        }
        if let Some(baseline) = filter.baseline {
            qb.push(" AND f.baseline_run_id = ");
            qb.push_bind(baseline);
        }
        if let Some(current) = filter.current {
            qb.push(" AND f.current_run_id = ");
            qb.push_bind(current);
        }
        if let Some(run) = filter.produced_by {
            qb.push(" AND f.produced_by_run_id = ");
            qb.push_bind(run);
        }
        push_keyset(&mut qb, "f", &page);
        let rows: Vec<FindingRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        let findings = rows.into_iter().map(Finding::from).collect();
        Ok(finish_page(findings, &page, |f| Cursor {
            at: f.created_at,
            id: f.id.0,
        }))
    }

    async fn acknowledge_findings(
        &self,
        tenant: TenantId,
        ids: &[FindingId],
        by: UserId,
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_write().await?;
        let mut changed: Vec<FindingId> = Vec::with_capacity(ids.len());
        // Batches keep each statement well under the bind-parameter limits.
        for chunk in ids.chunks(1_000) {
            let mut qb =
                Builder::new("UPDATE findings SET status = 'acknowledged', acknowledged_by = ");
            qb.push_bind(by);
            qb.push(", acknowledged_at = ");
            qb.push_bind(now);
            qb.push(", updated_at = ");
            qb.push_bind(now);
            qb.push(" WHERE status = 'new' AND tenant_id = ");
            qb.push_bind(tenant);
            qb.push(" AND id IN (");
            push_id_list(&mut qb, chunk);
            qb.push(") RETURNING id");
            let rows: Vec<(FindingId,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            changed.extend(rows.into_iter().map(|(id,)| id));
        }
        // One entry per finding that changed; one already
        // acknowledged (or another tenant's) was not acted on.
        for chunk in changed.chunks(1_000) {
            let mut qb = Builder::new(
                "INSERT INTO audit_logs (id, tenant_id, user_id, action, resource, resource_id, \
                 metadata, created_at) ",
            );
            qb.push_values(chunk, |mut values, finding| {
                values
                    .push_bind(AuditLogId::generate())
                    .push_bind(tenant)
                    .push_bind(by)
                    .push_bind(audit_names::FINDING_ACKNOWLEDGE)
                    .push_bind(audit_names::FINDING)
                    .push_bind(finding.to_string())
                    .push_bind(Json(serde_json::json!({})))
                    .push_bind(now);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(changed.len() as u64)
    }
}
