//! Stalled runs: the candidates a stall check weighs and the flag, with its
//! notices and audit entry in one transaction. The progress write clears
//! the flag (`progress.rs`); when a run counts as stalled is the domain's
//! `StallPolicy`, and the engine's `stalls.rs` drives the checks.

use super::audit::insert_audit;
use super::notifications::notify_stalled;
use super::Store;
use crate::domain::*;
use crate::server::store::rows::{corrupt, RunStateRow, RUN_STATE_COLUMNS};
use crate::server::store::{Lease, NewAuditEntry, StillRun, StoreResult};

/// A running run whose lease is held and alive at `$1`.
const LEASE_ALIVE: &str =
    "status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at >= $1";

impl Store {
    /// `QueueRepository::standing_still`.
    pub(super) async fn runs_standing_still(
        &self,
        now: Timestamp,
        before: Timestamp,
    ) -> StoreResult<Vec<StillRun>> {
        // The leases' partial index holds exactly the running runs.
        let rows: Vec<(RunId, TenantId, i64, String, String, Timestamp)> =
            sqlx::query_as(&format!(
                "SELECT id, tenant_id, attempt, resource, action, progressed_at \
             FROM bulk_operation_runs WHERE {LEASE_ALIVE} AND stalled_at IS NULL \
             AND progressed_at < $2 ORDER BY progressed_at, id LIMIT 200"
            ))
            .bind(now)
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(
                |(run_id, tenant_id, attempt, resource, action, progressed_at)| {
                    Ok(StillRun {
                        lease: Lease {
                            run_id,
                            tenant_id,
                            attempt,
                        },
                        operation: OperationKind::from_parts(&resource, &action)
                            .map_err(corrupt)?,
                        progressed_at,
                    })
                },
            )
            .collect()
    }

    /// `QueueRepository::flag_stalled`.
    pub(super) async fn flag_run_stalled(
        &self,
        run: &StillRun,
        still: StandingStill,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (_turn, mut tx) = self.begin_engine_write().await?;
        let flagged: Option<RunStateRow> = sqlx::query_as(&format!(
            "UPDATE bulk_operation_runs SET stalled_at = $1, updated_at = $1 \
             WHERE id = $2 AND attempt = $3 AND progressed_at = $4 AND stalled_at IS NULL \
             AND {LEASE_ALIVE} RETURNING {RUN_STATE_COLUMNS}"
        ))
        .bind(now)
        .bind(run.lease.run_id)
        .bind(run.lease.attempt)
        .bind(run.progressed_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(flagged) = flagged else {
            return Ok(false);
        };
        let notice = flagged.stalled_notice(still.summary(now))?;
        let notified = notify_stalled(&mut tx, &flagged, notice).await?;
        let metadata = serde_json::json!({
            "attempt": flagged.attempt,
            "processed_items": flagged.counters().processed,
            "progressed_at": still.progressed_at.to_rfc3339(),
            "idle_ms": still.idle_millis(now),
            "threshold_ms": still.threshold_millis,
        });
        insert_audit(
            &mut tx,
            &engine_entry(&flagged, audit_names::RUN_STALL, metadata),
        )
        .await?;
        tx.commit().await?;
        self.changes
            .record(std::iter::once(run.lease.changed()).chain(notified));
        self.metrics.run_stalled(run.operation);
        Ok(true)
    }
}

/// The audit entry of a stalled run whose progress moved again, written
/// with the progress that moved it.
pub(super) fn stall_cleared(
    run: &RunStateRow,
    stalled_at: Timestamp,
    processed: i64,
) -> NewAuditEntry {
    let metadata = serde_json::json!({
        "attempt": run.attempt,
        "stalled_at": stalled_at.to_rfc3339(),
        "processed_items": processed,
    });
    engine_entry(run, audit_names::RUN_STALL_CLEAR, metadata)
}

/// An entry the engine writes about a run: no account acts.
fn engine_entry(run: &RunStateRow, action: &str, metadata: serde_json::Value) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: run.tenant_id,
        user_id: None,
        action: action.into(),
        resource: audit_names::RUN.into(),
        resource_id: Some(run.id.to_string()),
        metadata,
    }
}
