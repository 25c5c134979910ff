//! Runs as operators see them: starting (or joining) one, reading one,
//! moving a run by hand, imported records. Lists and counts are in
//! `run_lists.rs`.
//!
//! Here: `insert_failed_items` (for the progress too) and `RunRepository`.

use super::audit::insert_audit;
use super::insights::{add_to_rollups, EndedRun};
use super::notifications::insert_notification;
use super::{Builder, Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{
    RunAttemptRow, RunDetailRow, RunStateRow, RunSummaryRow, RUN_DETAIL_COLUMNS, RUN_STATE_COLUMNS,
    RUN_SUMMARY_COLUMNS,
};
use crate::server::store::sql::{push_id_list, status_list};
use crate::server::store::{
    wake_workers, Change, NewAuditEntry, NewRun, RunRecord, RunRepository, StartedRun, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use sqlx::types::Json;

/// Remembers failed items (every one, unlike the kept
/// `failures`): what a retry re-runs.
pub(super) async fn insert_failed_items(
    conn: &mut Connection,
    failed: &[(RunId, TenantId, &str)],
) -> StoreResult<()> {
    for chunk in failed.chunks(1_000) {
        let mut qb = Builder::new("INSERT INTO run_failed_items (run_id, tenant_id, item_id) ");
        qb.push_values(chunk, |mut values, (run, tenant, item)| {
            values
                .push_bind(*run)
                .push_bind(*tenant)
                .push_bind(item.to_string());
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl RunRepository for Store {
    async fn start_run(&self, run: NewRun) -> StoreResult<StartedRun> {
        let (_turn, mut tx) = self.begin_write().await?;
        // The partial unique index decides: either our row goes in, or
        // the conflicting active row is "updated" (a no-op) and returned.
        let (id,): (RunId,) = sqlx::query_as(&format!(
            "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, \
             idempotency_key, status, total_items, item_ids, work_items, \
             max_attempts, created_at, updated_at, retry_of_run_id) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $11, $12) \
             ON CONFLICT (tenant_id, idempotency_key) WHERE status IN ({}) \
             DO UPDATE SET updated_at = bulk_operation_runs.updated_at \
             RETURNING id",
            status_list(&RunStatus::ACTIVE)
        ))
        .bind(run.id)
        .bind(run.tenant_id)
        .bind(run.user_id)
        .bind(run.operation.resource())
        .bind(run.operation.action())
        .bind(&run.idempotency_key)
        .bind(run.work_items.len() as i64)
        .bind(Json(&run.item_ids))
        .bind(Json(&run.work_items))
        .bind(run.max_attempts)
        .bind(Timestamp::now())
        .bind(run.retry_of)
        .fetch_one(&mut *tx)
        .await?;
        let joined = id != run.id;
        if joined {
            // Recorded so the run shows who else asked for it.
            sqlx::query(
                "INSERT INTO run_joins (id, tenant_id, run_id, user_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(run.tenant_id)
            .bind(id)
            .bind(run.user_id)
            .bind(Timestamp::now())
            .execute(&mut *tx)
            .await?;
            // The start is audited as what it became: a join of that run.
            if let Some(audit) = &run.audit {
                let join = NewAuditEntry {
                    action: audit_names::RUN_JOIN.to_string(),
                    resource: audit_names::RUN.to_string(),
                    resource_id: Some(id.to_string()),
                    ..audit.clone()
                };
                insert_audit(&mut tx, &join).await?;
            }
        }
        // Only a run that was created gets its start entry (which
        // `audit_log_id` points at) and "queued" notification, in
        // the same transaction.
        if !joined {
            if let Some(audit) = &run.audit {
                let entry = insert_audit(&mut tx, audit).await?;
                sqlx::query("UPDATE bulk_operation_runs SET audit_log_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(entry.id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(notification) = &run.notification {
                insert_notification(&mut tx, notification).await?;
            }
            self.notify_queued(&mut tx).await?;
        }
        tx.commit().await?;
        let run_changed = Change::Run {
            tenant: run.tenant_id,
            run: id,
        };
        if joined {
            self.changes.record([run_changed]);
        } else {
            wake_workers(&self.queued, 1);
            self.metrics.run_started(run.operation);
            let notified = run.notification.as_ref().map(|n| Change::Notifications {
                tenant: n.tenant_id,
                user: n.user_id,
            });
            self.changes
                .record(std::iter::once(run_changed).chain(notified));
        }
        let detail = self
            .run(run.tenant_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(StartedRun {
            run: detail,
            joined,
        })
    }

    async fn run(&self, tenant: TenantId, id: RunId) -> StoreResult<Option<RunDetail>> {
        let row: Option<RunDetailRow> = sqlx::query_as(&format!(
            "SELECT {RUN_DETAIL_COLUMNS} FROM bulk_operation_runs r \
             JOIN users u ON u.id = r.user_id WHERE r.tenant_id = $1 AND r.id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(RunDetailRow::into_domain).transpose()
    }

    async fn list_runs(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RunSummary>> {
        self.list_run_page(tenant, filter, page).await
    }

    async fn count_runs_by_bucket(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
    ) -> StoreResult<BucketCounts> {
        self.count_by_bucket(tenant, filter).await
    }

    async fn transition_run(
        &self,
        tenant: TenantId,
        id: RunId,
        to: RunStatus,
    ) -> StoreResult<RunDetail> {
        let allowed_from = RunStatus::predecessors(to);
        if !allowed_from.is_empty() {
            let now = Timestamp::now();
            let (_turn, mut tx) = self.begin_write().await?;
            let moved: Option<RunStateRow> = sqlx::query_as(&format!(
                "UPDATE bulk_operation_runs SET status = $3, updated_at = $4, \
                 started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) ELSE started_at END, \
                 finished_at = CASE WHEN $3 IN ({active}) THEN finished_at ELSE $4 END, \
                 lease_owner = CASE WHEN $3 IN ({active}) THEN lease_owner ELSE NULL END, \
                 lease_expires_at = CASE WHEN $3 IN ({active}) THEN lease_expires_at ELSE NULL END \
                 WHERE tenant_id = $1 AND id = $2 AND status IN ({from}) \
                 RETURNING {RUN_STATE_COLUMNS}",
                active = status_list(&RunStatus::ACTIVE),
                from = status_list(&allowed_from),
            ))
            .bind(tenant)
            .bind(id)
            .bind(to.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(moved) = moved {
                if to.is_terminal() {
                    add_to_rollups(&mut tx, &[EndedRun::of_state(&moved, now)?]).await?;
                }
                tx.commit().await?;
                self.changes.record([Change::Run { tenant, run: id }]);
                return self.run(tenant, id).await?.ok_or(StoreError::NotFound);
            }
        }
        match self.run(tenant, id).await? {
            None => Err(StoreError::NotFound),
            Some(run) => Err(StoreError::IllegalTransition {
                from: run.summary.status,
                to,
            }),
        }
    }

    async fn run_joins(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunJoin>> {
        let rows: Vec<(UserId, String, Timestamp)> = sqlx::query_as(
            "SELECT j.user_id, u.display_name, j.created_at FROM run_joins j \
             JOIN users u ON u.id = j.user_id \
             WHERE j.tenant_id = $1 AND j.run_id = $2 ORDER BY j.created_at, j.id",
        )
        .bind(tenant)
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, user_name, at)| RunJoin {
                user_id,
                user_name,
                at,
            })
            .collect())
    }

    async fn run_attempts(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunAttempt>> {
        let rows: Vec<RunAttemptRow> = sqlx::query_as(
            "SELECT attempt, worker, started_at, ended_at, end_reason FROM run_attempts \
             WHERE tenant_id = $1 AND run_id = $2 ORDER BY attempt",
        )
        .bind(tenant)
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunAttemptRow::into_domain).collect()
    }

    async fn failed_items(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT item_id FROM run_failed_items WHERE tenant_id = $1 AND run_id = $2 ORDER BY item_id",
        )
        .bind(tenant)
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(item,)| item).collect())
    }

    async fn run_summaries(&self, ids: &[RunId]) -> StoreResult<Vec<RunSummary>> {
        let mut runs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut qb = Builder::new(format!(
                "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
                 JOIN users u ON u.id = r.user_id WHERE r.id IN ("
            ));
            push_id_list(&mut qb, chunk);
            qb.push(")");
            let rows: Vec<RunSummaryRow> = qb.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
                runs.push(row.into_domain()?);
            }
        }
        Ok(runs)
    }

    async fn retries_of(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunSummary>> {
        let rows: Vec<RunSummaryRow> = sqlx::query_as(&format!(
            "SELECT {RUN_SUMMARY_COLUMNS} FROM bulk_operation_runs r \
             JOIN users u ON u.id = r.user_id \
             WHERE r.tenant_id = $1 AND r.retry_of_run_id = $2 \
             ORDER BY r.created_at DESC, r.id DESC LIMIT 50"
        ))
        .bind(tenant)
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunSummaryRow::into_domain).collect()
    }

    async fn insert_run_records(&self, runs: &[RunRecord]) -> StoreResult<()> {
        let (_turn, mut tx) = self.begin_write().await?;
        // Batches keep each statement well under the bind-parameter limits.
        for chunk in runs.chunks(500) {
            let mut qb = Builder::new(
                "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, \
                 idempotency_key, status, total_items, processed_items, succeeded, failed, \
                 skipped, item_ids, work_items, failures, attempt, created_at, updated_at, \
                 started_at, finished_at) ",
            );
            qb.push_values(chunk, |mut values, run| {
                values
                    .push_bind(run.id)
                    .push_bind(run.tenant_id)
                    .push_bind(run.user_id)
                    .push_bind(run.operation.resource())
                    .push_bind(run.operation.action())
                    .push_bind(run.idempotency_key.clone())
                    .push_bind(run.status.as_str())
                    .push_bind(run.counters.total)
                    .push_bind(run.counters.processed)
                    .push_bind(run.counters.succeeded)
                    .push_bind(run.counters.failed)
                    .push_bind(run.counters.skipped)
                    .push_bind(Json(run.item_ids.clone()))
                    .push_bind(Json(run.work_items.clone()))
                    .push_bind(Json(run.failures.clone()))
                    .push_bind(run.attempt)
                    .push_bind(run.created_at)
                    .push_bind(run.finished_at.or(run.started_at).unwrap_or(run.created_at))
                    .push_bind(run.started_at)
                    .push_bind(run.finished_at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let failed: Vec<(RunId, TenantId, &str)> = runs
            .iter()
            .flat_map(|run| {
                run.failures
                    .iter()
                    .filter(|f| f.kind == FailureKind::Failed)
                    .filter_map(move |f| Some((run.id, run.tenant_id, f.item_id.as_deref()?)))
            })
            .collect();
        insert_failed_items(&mut tx, &failed).await?;
        let ended: Vec<EndedRun> = runs.iter().filter_map(EndedRun::of_record).collect();
        add_to_rollups(&mut tx, &ended).await?;
        tx.commit().await?;
        // Old ended runs may have arrived: settled counts are stale.
        self.settled_counts.forget_all();
        Ok(())
    }
}
