//! The work queue the engine drives: claims, leases and heartbeats,
//! cooperative aborts and the rescue of lost runs. Progress is in
//! `progress.rs`.
//!
//! Here: `QueueRepository`; `ORPHANED_RUNS` and `lease_expiry` need no
//! database and are in `sql/queue.rs`.

use super::audit::insert_audit;
use super::insights::runs_ended;
use super::Store;
use crate::domain::*;
use crate::server::store::rows::{ClaimRow, RunStateRow, CLAIM_COLUMNS, RUN_STATE_COLUMNS};
use crate::server::store::sql::queue::{lease_expiry, ORPHANED_RUNS};
use crate::server::store::sql::SqlDialect;
use crate::server::store::{
    wake_workers, AbortOutcome, Change, ClaimLimit, ClaimedRun, Lease, LeaseState, NewAuditEntry,
    ProgressOutcome, QueueDepth, QueueRepository, RescueReport, RunProgress, StillRun, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use sqlx::types::Json;

#[async_trait]
impl QueueRepository for Store {
    async fn claim_runs(
        &self,
        owner: &str,
        lease_for: std::time::Duration,
        limit: ClaimLimit,
    ) -> StoreResult<Vec<ClaimedRun>> {
        // The clock is read once the turn is ours (SQLite): a claim happens
        // when it writes, not when it began to wait.
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        // The oldest pending runs and running runs that lost their
        // worker (rescue released the lease), as many as `limit`
        // allows: the first always, the next while their items
        // left still fit. A taken-over run stays `running`. A run never
        // starts before it was queued: one stamped after `now` and
        // committed before this statement's snapshot starts at its own
        // queue time.
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "WITH candidates AS (\
               SELECT * FROM (SELECT id, created_at, total_items - processed_items AS items_left \
                 FROM bulk_operation_runs WHERE status = 'pending' \
                 ORDER BY created_at, id LIMIT $4{skip}) queued \
               UNION ALL \
               SELECT * FROM (SELECT id, created_at, total_items - processed_items AS items_left \
                 FROM bulk_operation_runs WHERE {orphaned} \
                 ORDER BY created_at, id LIMIT $4{skip}) orphaned), \
             picked AS (\
               SELECT id FROM (SELECT id, \
                 ROW_NUMBER() OVER (ORDER BY created_at, id) AS position, \
                 SUM(items_left) OVER (ORDER BY created_at, id) AS items_so_far \
               FROM candidates) ranked WHERE position = 1 OR items_so_far <= $5) \
             UPDATE bulk_operation_runs SET status = 'running', attempt = attempt + 1, \
             lease_owner = $1, lease_expires_at = $2, heartbeat_at = $3, \
             started_at = COALESCE(started_at, CASE WHEN created_at > $3 THEN created_at ELSE $3 END), \
             updated_at = $3, progressed_at = $3 \
             WHERE id IN (SELECT id FROM picked) AND (status = 'pending' OR ({orphaned})) \
             RETURNING {CLAIM_COLUMNS}",
            skip = <Store as SqlDialect>::SKIP_LOCKED,
            orphaned = ORPHANED_RUNS,
        ))
        .bind(owner)
        .bind(lease_expiry(now, lease_for))
        .bind(now)
        .bind(i64::try_from(limit.runs.max(1)).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit.items).unwrap_or(i64::MAX))
        .fetch_all(&self.engine_pool)
        .await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| row.into_domain(now))
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING keeps no order; the queue's is oldest first.
        claimed.sort_by_key(|run| (run.created_at, run.lease.run_id));
        self.changes
            .record(claimed.iter().map(|run| run.lease.changed()));
        self.metrics.runs_claimed(&claimed);
        Ok(claimed)
    }

    async fn reclaim_runs(
        &self,
        owner: &str,
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        // The same claim, so the same attempt: nobody else ever
        // saw it, and rescue moved on from any it reached first.
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE bulk_operation_runs SET lease_expires_at = $2, heartbeat_at = $3, updated_at = $3 \
             WHERE status = 'running' AND lease_owner = $1 RETURNING {CLAIM_COLUMNS}"
        ))
        .bind(owner)
        .bind(lease_expiry(now, lease_for))
        .bind(now)
        .fetch_all(&self.engine_pool)
        .await?;
        let mut held = rows
            .into_iter()
            .map(|row| row.into_domain(now))
            .collect::<StoreResult<Vec<_>>>()?;
        held.sort_by_key(|run| (run.created_at, run.lease.run_id));
        Ok(held)
    }

    async fn record_progress(
        &self,
        lease_for: std::time::Duration,
        progress: &[RunProgress],
    ) -> StoreResult<Vec<ProgressOutcome>> {
        self.write_progress(lease_for, progress).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        lease_for: std::time::Duration,
    ) -> StoreResult<LeaseState> {
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        let abort: Option<(bool,)> = sqlx::query_as(
            "UPDATE bulk_operation_runs SET lease_expires_at = $3, heartbeat_at = $4 \
             WHERE id = $1 AND attempt = $2 AND status = 'running' \
             RETURNING cancel_requested_at IS NOT NULL",
        )
        .bind(lease.run_id)
        .bind(lease.attempt)
        .bind(lease_expiry(now, lease_for))
        .bind(now)
        .fetch_optional(&self.engine_pool)
        .await?;
        Ok(match abort {
            None => LeaseState::Lost,
            Some((true,)) => LeaseState::AbortRequested,
            Some((false,)) => LeaseState::Held,
        })
    }

    async fn finish_aborted(&self, lease: &Lease) -> StoreResult<bool> {
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_engine_write().await?;
        let row: Option<RunStateRow> = sqlx::query_as(&format!(
            "UPDATE bulk_operation_runs SET status = 'aborted', finished_at = $3, updated_at = $3, \
             lease_expires_at = NULL WHERE id = $1 AND attempt = $2 AND status = 'running' \
             RETURNING {RUN_STATE_COLUMNS}"
        ))
        .bind(lease.run_id)
        .bind(lease.attempt)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(run) = row else { return Ok(false) };
        let notified = runs_ended(&mut tx, std::slice::from_ref(&run), now).await?;
        tx.commit().await?;
        self.changes
            .record(std::iter::once(lease.changed()).chain(notified));
        self.count_ended(std::slice::from_ref(&run), now);
        Ok(true)
    }

    async fn rescue_expired(&self) -> StoreResult<RescueReport> {
        let now = Timestamp::now();
        let mut report = RescueReport::default();
        let mut changed = Vec::new();
        let mut ended_runs = Vec::new();
        let (_turn, mut tx) = self.begin_engine_write().await?;
        // Leases that lapsed, and released runs no worker may take
        // over (out of attempts, or their abort requested).
        let expired: Vec<RunStateRow> = sqlx::query_as(&format!(
            "SELECT {RUN_STATE_COLUMNS} FROM bulk_operation_runs \
             WHERE status = 'running' AND ((lease_owner IS NOT NULL \
               AND (lease_expires_at IS NULL OR lease_expires_at < $1)) \
               OR (lease_owner IS NULL AND NOT ({ORPHANED_RUNS}))) \
             ORDER BY lease_expires_at NULLS FIRST LIMIT 200{skip}",
            skip = <Store as SqlDialect>::SKIP_LOCKED,
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for run in expired {
            // Fenced like a worker's write: a heartbeat that renewed
            // the lease meanwhile wins.
            const FENCE: &str = "WHERE id = $1 AND attempt = $2 AND status = 'running' \
                AND (lease_expires_at IS NULL OR lease_expires_at < $3)";
            let decision = LostLease::decide(run.abort_requested, run.attempt, run.max_attempts);
            if decision == LostLease::Release {
                // It stays running: the next claim takes it over
                // as attempt + 1 (the trigger ends this attempt).
                let released = sqlx::query(&format!(
                    "UPDATE bulk_operation_runs SET lease_owner = NULL, \
                     lease_expires_at = NULL, heartbeat_at = NULL, updated_at = $3 {FENCE}"
                ))
                .bind(run.id)
                .bind(run.attempt)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                report.released += released;
                if released == 1 {
                    changed.push(run.changed());
                }
                continue;
            }
            let mut failures = run.failures.0.clone();
            let status = match decision.failure(run.attempt) {
                Some(lost) => {
                    record_run_failure(&mut failures, lost);
                    RunStatus::Failed
                }
                None => RunStatus::Aborted,
            };
            let ended = sqlx::query(&format!(
                "UPDATE bulk_operation_runs SET status = $4, failures = $5, finished_at = $3, \
                 updated_at = $3, lease_owner = NULL, lease_expires_at = NULL {FENCE}"
            ))
            .bind(run.id)
            .bind(run.attempt)
            .bind(now)
            .bind(status.as_str())
            .bind(Json(&failures))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if ended == 1 {
                changed.push(run.changed());
                let counters = run.counters();
                let run = run.advanced(status, counters, failures);
                changed.extend(runs_ended(&mut tx, std::slice::from_ref(&run), now).await?);
                ended_runs.push(run);
                match status {
                    RunStatus::Aborted => report.aborted += 1,
                    _ => report.failed += 1,
                }
            }
        }
        if report.released > 0 {
            self.notify_queued(&mut tx).await?;
        }
        tx.commit().await?;
        if report.released > 0 {
            wake_workers(&self.queued, report.released as usize);
        }
        self.changes.record(changed);
        self.count_ended(&ended_runs, now);
        self.metrics.rescued(&report);
        Ok(report)
    }

    async fn request_abort(
        &self,
        tenant: TenantId,
        id: RunId,
        audit: NewAuditEntry,
    ) -> StoreResult<AbortOutcome> {
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_write().await?;
        let pending: Option<RunStateRow> = sqlx::query_as(&format!(
            "UPDATE bulk_operation_runs SET status = 'aborted', cancel_requested_at = $3, \
             finished_at = $3, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND status = 'pending' RETURNING {RUN_STATE_COLUMNS}"
        ))
        .bind(tenant)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let mut changed = vec![Change::Run { tenant, run: id }];
        let outcome = if let Some(run) = &pending {
            changed.extend(runs_ended(&mut tx, std::slice::from_ref(run), now).await?);
            AbortOutcome::Aborted
        } else {
            let flagged = sqlx::query(
                "UPDATE bulk_operation_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $3), \
                 updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
            )
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if flagged == 0 {
                let status: Option<(String,)> = sqlx::query_as(
                    "SELECT status FROM bulk_operation_runs WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let (status,) = status.ok_or(StoreError::NotFound)?;
                let status = RunStatus::parse(&status).map_err(|e| StoreError::Invalid(e.0))?;
                return Ok(AbortOutcome::AlreadyFinished(status));
            }
            AbortOutcome::Requested
        };
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        self.changes.record(changed);
        if let Some(run) = &pending {
            self.count_ended(std::slice::from_ref(run), now);
        }
        Ok(outcome)
    }

    async fn standing_still(
        &self,
        now: Timestamp,
        before: Timestamp,
    ) -> StoreResult<Vec<StillRun>> {
        self.runs_standing_still(now, before).await
    }

    async fn flag_stalled(
        &self,
        run: &StillRun,
        still: StandingStill,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.flag_run_stalled(run, still, now).await
    }

    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        // The claim's partial index (`bulk_operation_runs_queue`) holds
        // exactly the pending runs, oldest first.
        let (waiting, oldest_created_at): (i64, Option<Timestamp>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM bulk_operation_runs WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueDepth {
            waiting,
            oldest_created_at,
        })
    }
}
