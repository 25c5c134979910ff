//! The rollups of ended runs (migration 0012) that the Insights page and
//! the run page's comparison read. Written only in the transactions that
//! change the runs, so they are exact: `runs_ended` by every path that ends
//! a run, `FailureTally` by the progress write for failed items.
//!
//! Here: the in-transaction writers and `InsightsRepository`.

use super::notifications::notify_finished;
use super::{Builder, Connection, Store};
use crate::domain::*;
use crate::server::store::rows::{
    DurationRollupRow, OutcomeRollupRow, ReasonRollupRow, RunStateRow, DURATION_ROLLUP_COLUMNS,
    OUTCOME_ROLLUP_COLUMNS, REASON_ROLLUP_COLUMNS,
};
use crate::server::store::{Change, InsightsRepository, RunRecord, StoreResult};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};

/// What ending runs writes besides the runs: their rollups and their
/// "completed" notices. Every path that ends a run (the last batch, an
/// abort, rescue) calls it in the transaction that ends the run, with
/// the runs as they now stand and the time they ended.
pub(super) async fn runs_ended(
    conn: &mut Connection,
    runs: &[RunStateRow],
    ended_at: Timestamp,
) -> StoreResult<Vec<Change>> {
    let ended = runs
        .iter()
        .map(|run| EndedRun::of_state(run, ended_at))
        .collect::<StoreResult<Vec<_>>>()?;
    add_to_rollups(conn, &ended).await?;
    notify_finished(conn, runs).await
}

/// A run that ended, as its rollups count it.
pub(super) struct EndedRun<'a> {
    id: RunId,
    key: RunKey,
    outcome: RunStatus,
    counters: Counters,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    ended_at: Timestamp,
    /// Failures not yet counted by a batch's `FailureTally`.
    uncounted_failures: Vec<&'a FailureEntry>,
}

impl<'a> EndedRun<'a> {
    pub(super) fn of_state(run: &'a RunStateRow, ended_at: Timestamp) -> StoreResult<Self> {
        Ok(Self {
            id: run.id,
            key: (run.tenant_id, rollup_hour(run.created_at), run.operation()?),
            outcome: run.status,
            counters: run.counters(),
            created_at: run.created_at,
            started_at: run.started_at,
            ended_at,
            // The failure that ended the run (worker lost, broke down); its
            // items' failures were counted as their batches were written.
            uncounted_failures: run
                .failures
                .0
                .iter()
                .filter(|entry| entry.item_id.is_none() && entry.kind == FailureKind::Failed)
                .collect(),
        })
    }

    /// A run inserted with its whole history (demo data, imports); `None`
    /// while it is active. Its kept failures are all it has to count.
    pub(super) fn of_record(run: &'a RunRecord) -> Option<Self> {
        Some(Self {
            id: run.id,
            key: (run.tenant_id, rollup_hour(run.created_at), run.operation),
            outcome: run.status,
            counters: run.counters,
            created_at: run.created_at,
            started_at: run.started_at,
            ended_at: run.finished_at.filter(|_| run.status.is_terminal())?,
            uncounted_failures: run
                .failures
                .iter()
                .filter(|entry| entry.kind == FailureKind::Failed)
                .collect(),
        })
    }
}

/// Tenant, UTC hour queued, operation: what every rollup row is keyed by.
type RunKey = (TenantId, Timestamp, OperationKind);

fn rollup_hour(queued: Timestamp) -> Timestamp {
    Timestamp(queued.0.div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR)
}

#[derive(Default)]
struct OutcomeSums {
    runs: i64,
    counters: Counters,
    started_runs: i64,
    queue_millis: i64,
    run_millis: i64,
}

pub(super) async fn add_to_rollups(
    conn: &mut Connection,
    runs: &[EndedRun<'_>],
) -> StoreResult<()> {
    // Summed per key first: one statement may not update a row twice. In
    // key order, as every rollup write is: concurrent transactions then
    // lock the rows they share in the same order and cannot deadlock.
    let mut outcomes: BTreeMap<(RunKey, RunStatus), OutcomeSums> = BTreeMap::new();
    let mut durations: BTreeMap<(RunKey, Phase, i64), i64> = BTreeMap::new();
    let mut reasons = FailureTally::default();
    for run in runs {
        let sums = outcomes.entry((run.key, run.outcome)).or_default();
        sums.runs += 1;
        sums.counters.processed += run.counters.processed;
        sums.counters.succeeded += run.counters.succeeded;
        sums.counters.failed += run.counters.failed;
        sums.counters.skipped += run.counters.skipped;
        // A run aborted while queued never started: no queue wait or run
        // time of its own.
        if let Some(started) = run.started_at {
            let queue = (started.0 - run.created_at.0).max(0) / 1_000;
            let ran = (run.ended_at.0 - started.0).max(0) / 1_000;
            sums.started_runs += 1;
            sums.queue_millis += queue;
            sums.run_millis += ran;
            for (phase, millis) in [(Phase::Queue, queue), (Phase::Run, ran)] {
                *durations
                    .entry((run.key, phase, duration_buckets::of(millis)))
                    .or_default() += 1;
            }
        }
        for entry in &run.uncounted_failures {
            reasons.count(run.id, run.created_at, run.key, entry.reason_code);
        }
    }
    let outcomes: Vec<_> = outcomes.into_iter().collect();
    // Thirteen binds a row.
    for chunk in outcomes.chunks(1_000) {
        let mut qb = Builder::new(
            "INSERT INTO run_rollups (tenant_id, hour, resource, action, outcome, runs, \
             items_processed, items_succeeded, items_failed, items_skipped, started_runs, \
             queue_millis, run_millis) ",
        );
        qb.push_values(
            chunk,
            |mut values, (((tenant, hour, operation), outcome), sums)| {
                values
                    .push_bind(*tenant)
                    .push_bind(*hour)
                    .push_bind(operation.resource())
                    .push_bind(operation.action())
                    .push_bind(outcome.as_str())
                    .push_bind(sums.runs)
                    .push_bind(sums.counters.processed)
                    .push_bind(sums.counters.succeeded)
                    .push_bind(sums.counters.failed)
                    .push_bind(sums.counters.skipped)
                    .push_bind(sums.started_runs)
                    .push_bind(sums.queue_millis)
                    .push_bind(sums.run_millis);
            },
        );
        qb.push(
            " ON CONFLICT (tenant_id, hour, resource, action, outcome) DO UPDATE SET \
             runs = run_rollups.runs + excluded.runs, \
             items_processed = run_rollups.items_processed + excluded.items_processed, \
             items_succeeded = run_rollups.items_succeeded + excluded.items_succeeded, \
             items_failed = run_rollups.items_failed + excluded.items_failed, \
             items_skipped = run_rollups.items_skipped + excluded.items_skipped, \
             started_runs = run_rollups.started_runs + excluded.started_runs, \
             queue_millis = run_rollups.queue_millis + excluded.queue_millis, \
             run_millis = run_rollups.run_millis + excluded.run_millis",
        );
        qb.build().execute(&mut *conn).await?;
    }
    let durations: Vec<_> = durations.into_iter().collect();
    for chunk in durations.chunks(1_000) {
        let mut qb = Builder::new(
            "INSERT INTO run_duration_rollups (tenant_id, hour, resource, action, phase, bucket, runs) ",
        );
        qb.push_values(
            chunk,
            |mut values, (((tenant, hour, operation), phase, bucket), runs)| {
                values
                    .push_bind(*tenant)
                    .push_bind(*hour)
                    .push_bind(operation.resource())
                    .push_bind(operation.action())
                    .push_bind(phase.as_str())
                    .push_bind(*bucket)
                    .push_bind(*runs);
            },
        );
        qb.push(
            " ON CONFLICT (tenant_id, hour, resource, action, phase, bucket) DO UPDATE SET \
             runs = run_duration_rollups.runs + excluded.runs",
        );
        qb.build().execute(&mut *conn).await?;
    }
    reasons.write(conn).await
}

/// Failures by reason code of the runs a transaction writes: added to the
/// rollups, and each run's codes noted for the hub's reason filter, by
/// `write`.
#[derive(Default)]
pub(super) struct FailureTally {
    /// In key order (see `add_to_rollups`).
    failures: BTreeMap<(RunKey, ReasonCode), i64>,
    /// Each run's codes, with the run's tenant and creation time.
    runs: BTreeSet<(RunId, TenantId, Timestamp, ReasonCode)>,
}

impl FailureTally {
    pub(super) fn add(&mut self, run: &RunStateRow, reason_code: ReasonCode) -> StoreResult<()> {
        let key = (run.tenant_id, rollup_hour(run.created_at), run.operation()?);
        self.count(run.id, run.created_at, key, reason_code);
        Ok(())
    }

    fn count(&mut self, run: RunId, created_at: Timestamp, key: RunKey, reason_code: ReasonCode) {
        *self.failures.entry((key, reason_code)).or_default() += 1;
        self.runs.insert((run, key.0, created_at, reason_code));
    }

    pub(super) async fn write(self, conn: &mut Connection) -> StoreResult<()> {
        let tally: Vec<_> = self.failures.into_iter().collect();
        for chunk in tally.chunks(1_000) {
            let mut qb = Builder::new(
                "INSERT INTO run_reason_rollups (tenant_id, hour, resource, action, reason_code, failures) ",
            );
            qb.push_values(
                chunk,
                |mut values, (((tenant, hour, operation), code), failures)| {
                    values
                        .push_bind(*tenant)
                        .push_bind(*hour)
                        .push_bind(operation.resource())
                        .push_bind(operation.action())
                        .push_bind(code.as_str())
                        .push_bind(*failures);
                },
            );
            qb.push(
                " ON CONFLICT (tenant_id, hour, resource, action, reason_code) DO UPDATE SET \
                 failures = run_reason_rollups.failures + excluded.failures",
            );
            qb.build().execute(&mut *conn).await?;
        }
        let runs: Vec<_> = self.runs.into_iter().collect();
        for chunk in runs.chunks(1_000) {
            let mut qb = Builder::new(
                "INSERT INTO run_failure_reasons (run_id, tenant_id, run_created_at, reason_code) ",
            );
            qb.push_values(chunk, |mut values, (run, tenant, created_at, code)| {
                values
                    .push_bind(*run)
                    .push_bind(*tenant)
                    .push_bind(*created_at)
                    .push_bind(code.as_str());
            });
            // A later batch of the run may fail items with a code it has.
            qb.push(" ON CONFLICT (run_id, reason_code) DO NOTHING");
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// `WHERE tenant_id = … AND hour >= …`, and the operation when one is
/// chosen: a range of the rollup tables' primary keys.
fn push_window(
    qb: &mut Builder<'_>,
    tenant: TenantId,
    since: Timestamp,
    operation: Option<OperationKind>,
) {
    qb.push(" WHERE tenant_id = ")
        .push_bind(tenant)
        .push(" AND hour >= ")
        .push_bind(since);
    if let Some(operation) = operation {
        qb.push(" AND resource = ")
            .push_bind(operation.resource())
            .push(" AND action = ")
            .push_bind(operation.action());
    }
}

#[async_trait]
impl InsightsRepository for Store {
    async fn rollups(
        &self,
        tenant: TenantId,
        since: Timestamp,
        operation: Option<OperationKind>,
    ) -> StoreResult<Rollups> {
        let mut conn = self.pool.acquire().await?;
        let mut qb = Builder::new(format!("SELECT {OUTCOME_ROLLUP_COLUMNS} FROM run_rollups"));
        push_window(&mut qb, tenant, since, operation);
        let outcomes: Vec<OutcomeRollupRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        let mut qb = Builder::new(format!(
            "SELECT {DURATION_ROLLUP_COLUMNS} FROM run_duration_rollups"
        ));
        push_window(&mut qb, tenant, since, operation);
        let durations: Vec<DurationRollupRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        let mut qb = Builder::new(format!(
            "SELECT {REASON_ROLLUP_COLUMNS} FROM run_reason_rollups"
        ));
        push_window(&mut qb, tenant, since, operation);
        let reasons: Vec<ReasonRollupRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        Ok(Rollups {
            outcomes: outcomes
                .into_iter()
                .map(OutcomeRollupRow::into_domain)
                .collect::<StoreResult<_>>()?,
            durations: durations
                .into_iter()
                .map(DurationRollupRow::into_domain)
                .collect::<StoreResult<_>>()?,
            reasons: reasons
                .into_iter()
                .map(ReasonRollupRow::into_domain)
                .collect::<StoreResult<_>>()?,
        })
    }
}
