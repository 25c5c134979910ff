//! The engine's progress: batches of item results of several runs, with
//! their artifacts, counters, failures and completion notices, written in
//! one fenced transaction. Progress clears a run's stall flag.
//!
//! Here: `write_progress`, behind `QueueRepository::record_progress`; the
//! rule `already_recorded` needs no database and is in `sql/progress.rs`.

use super::audit::insert_audit;
use super::backups::insert_backup_set_items;
use super::findings::write_findings;
use super::insights::{runs_ended, FailureTally};
use super::runs::insert_failed_items;
use super::stalls::stall_cleared;
use super::{Builder, Store};
use crate::domain::*;
use crate::server::store::rows::{RunStateRow, RUN_STATE_COLUMNS};
use crate::server::store::sql::progress::already_recorded;
use crate::server::store::sql::queue::lease_expiry;
use crate::server::store::sql::{push_id_list, SqlDialect};
use crate::server::store::{
    AddOutcome, Artifact, BatchEnd, ItemOutcome, NewBackupSetItem, NewFinding, ProgressOutcome,
    RunProgress, StoreError, StoreResult,
};
use sqlx::types::Json;

impl Store {
    /// `QueueRepository::record_progress`: the fence, the artifacts,
    /// the counters and the completion notices of several runs in one
    /// transaction.
    pub(super) async fn write_progress(
        &self,
        lease_for: std::time::Duration,
        progress: &[RunProgress],
    ) -> StoreResult<Vec<ProgressOutcome>> {
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_engine_write().await?;
        // The fence, read first and held to the commit (row locks
        // on PostgreSQL, the write transaction on SQLite): a run
        // whose claim moved on is refused before anything of it is
        // written, and the other runs of the batch go ahead. A
        // batch the run already counts (the commit of an earlier
        // try landed but its answer was lost) is reported as
        // recorded and not written again.
        let ids: Vec<RunId> = progress.iter().map(|run| run.lease.run_id).collect();
        let mut qb = Builder::new(format!(
            "SELECT {RUN_STATE_COLUMNS} FROM bulk_operation_runs WHERE id IN ("
        ));
        push_id_list(&mut qb, &ids);
        qb.push(format!(") ORDER BY id{}", <Store as SqlDialect>::LOCK_ROWS));
        let rows: Vec<RunStateRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
        let mut states: std::collections::HashMap<RunId, RunStateRow> =
            rows.into_iter().map(|row| (row.id, row)).collect();
        // Filled in input order: refusals now, the rest once written.
        let mut outcomes: Vec<Option<ProgressOutcome>> = Vec::with_capacity(progress.len());
        let mut accepted = Vec::new();
        for (position, run) in progress.iter().enumerate() {
            let state = states
                .remove(&run.lease.run_id)
                .filter(|state| state.attempt == run.lease.attempt);
            outcomes.push(match state {
                None => Some(ProgressOutcome::LeaseLost),
                Some(state) if already_recorded(&state, run) => {
                    Some(ProgressOutcome::Recorded(state.status))
                }
                Some(state)
                    if state.status != RunStatus::Running
                        || state.counters().processed != run.recorded_before =>
                {
                    Some(ProgressOutcome::LeaseLost)
                }
                Some(state) if state.abort_requested => Some(ProgressOutcome::AbortRequested),
                Some(state) => {
                    accepted.push((position, run, state));
                    None
                }
            });
        }
        if accepted.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }

        // Artifacts of every accepted run, a few statements for all.
        let findings: Vec<&NewFinding> = accepted
            .iter()
            .flat_map(|(_, run, _)| &run.items)
            .filter_map(|item| match &item.outcome {
                ItemOutcome::Succeeded(Some(Artifact::Finding(finding))) => Some(finding),
                _ => None,
            })
            .collect();
        write_findings(&mut tx, &findings, now).await?;
        let additions: Vec<&NewBackupSetItem> = accepted
            .iter()
            .flat_map(|(_, run, _)| &run.items)
            .filter_map(|item| match &item.outcome {
                ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(add))) => Some(add),
                _ => None,
            })
            .collect();
        let mut added = insert_backup_set_items(&mut tx, &additions)
            .await?
            .into_iter();

        let mut finished = Vec::new();
        let mut changed = Vec::new();
        let mut failed_items = Vec::new();
        let mut failure_reasons = FailureTally::default();
        let mut stalls_cleared = Vec::new();
        let mut advanced = Vec::with_capacity(accepted.len());
        let mut processed = Vec::with_capacity(accepted.len());
        for (position, run, state) in accepted {
            if let Ok(operation) = state.operation() {
                processed.push((operation, run.items.len()));
            }
            let mut counters = state.counters();
            let mut failures = state.failures.0.clone();
            for item in &run.items {
                let item_id = || Some(item.item_id.clone());
                let entry = match &item.outcome {
                    ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(_))) => {
                        match added.next().flatten() {
                            Some(AddOutcome::Added(_)) => None,
                            Some(AddOutcome::AlreadyPresent) => Some(FailureEntry::skipped(
                                item_id(),
                                ReasonCode::AlreadyPresent,
                                "the backup set already holds this policy",
                            )),
                            None => Some(FailureEntry::failed(
                                item_id(),
                                ReasonCode::PolicyNotFound,
                                "the policy does not exist in this tenant",
                            )),
                        }
                    }
                    ItemOutcome::Succeeded(_) => None,
                    ItemOutcome::Failed {
                        reason_code,
                        reason,
                    } => Some(FailureEntry::failed(item_id(), *reason_code, reason)),
                    ItemOutcome::Skipped {
                        reason_code,
                        reason,
                    } => Some(FailureEntry::skipped(item_id(), *reason_code, reason)),
                };
                if let Some(failed) = entry.as_ref().filter(|e| e.kind == FailureKind::Failed) {
                    failure_reasons.add(&state, failed.reason_code)?;
                    failed_items.push((
                        run.lease.run_id,
                        run.lease.tenant_id,
                        item.item_id.as_str(),
                    ));
                }
                counters.record_item(&mut failures, entry);
            }
            if !counters.is_consistent() {
                return Err(StoreError::Invalid(format!(
                    "progress of run {} would count {} of {} items",
                    run.lease.run_id, counters.processed, counters.total
                )));
            }
            if let BatchEnd::BrokeDown(entry) = &run.end {
                record_run_failure(&mut failures, entry.clone());
            }
            let finish = run.end != BatchEnd::Continues;
            let status = if finish {
                RunStatus::for_outcome(&counters, matches!(run.end, BatchEnd::BrokeDown(_)))
            } else {
                RunStatus::Running
            };
            let (lease_expires_at, finished_at) = if finish {
                (None, Some(now))
            } else {
                (Some(lease_expiry(now, lease_for)), None)
            };
            changed.push(run.lease.changed());
            if let Some(stalled_at) = state.stalled_at {
                stalls_cleared.push(stall_cleared(&state, stalled_at, counters.processed));
            }
            if finish {
                finished.push(state.advanced(status, counters, failures.clone()));
            }
            advanced.push((
                &run.lease,
                run.recorded_before,
                counters,
                failures,
                status,
                lease_expires_at,
                finished_at,
            ));
            outcomes[position] = Some(ProgressOutcome::Recorded(status));
        }
        // Every run's counters in one statement. Still fenced,
        // though the lock above already holds each run as read:
        // the statement says what it relies on.
        for chunk in advanced.chunks(1_000) {
            let mut qb = Builder::new(
                "UPDATE bulk_operation_runs SET processed_items = v.column3, succeeded = v.column4, \
                 failed = v.column5, skipped = v.column6, failures = v.column7, status = v.column8, \
                 updated_at = v.column9, heartbeat_at = v.column9, progressed_at = v.column9, \
                 stalled_at = NULL, lease_expires_at = v.column10, finished_at = v.column11 FROM (",
            );
            qb.push_values(
                chunk,
                |mut values, (lease, before, counters, failures, status, expires, finished)| {
                    values
                        .push_bind(lease.run_id)
                        .push_bind(lease.attempt)
                        .push_bind(counters.processed)
                        .push_bind(counters.succeeded)
                        .push_bind(counters.failed)
                        .push_bind(counters.skipped)
                        .push_bind(Json(failures))
                        .push_bind(status.as_str())
                        .push_bind(now)
                        .push_bind(*expires)
                        .push_bind(*finished)
                        .push_bind(*before);
                },
            );
            qb.push(
                ") AS v WHERE bulk_operation_runs.id = v.column1 \
                 AND bulk_operation_runs.attempt = v.column2 \
                 AND bulk_operation_runs.processed_items = v.column12 \
                 AND bulk_operation_runs.status = 'running' \
                 AND bulk_operation_runs.cancel_requested_at IS NULL",
            );
            let written = qb.build().execute(&mut *tx).await?.rows_affected();
            if written != chunk.len() as u64 {
                return Err(StoreError::Invalid(format!(
                    "{written} of {} locked runs took their progress",
                    chunk.len()
                )));
            }
        }
        insert_failed_items(&mut tx, &failed_items).await?;
        failure_reasons.write(&mut tx).await?;
        for entry in &stalls_cleared {
            insert_audit(&mut tx, entry).await?;
        }
        changed.extend(runs_ended(&mut tx, &finished, now).await?);
        tx.commit().await?;
        self.changes.record(changed);
        for (operation, items) in processed {
            self.metrics.items_processed(operation, items);
        }
        self.count_ended(&finished, now);
        Ok(outcomes.into_iter().flatten().collect())
    }
}
