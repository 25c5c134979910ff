//! The stall watch: every `StallPolicy::check_interval_millis` it weighs
//! the running runs whose progress stood still past the floor against
//! their operation's own threshold, and flags those past it (a badge, a
//! notice to whoever asked, an audit entry: `QueueRepository::flag_stalled`).
//! The progress write that moves a run again clears the flag. Runs whose
//! lease lapsed are rescue's, not this watch's.
//!
//! Every instance watches; the flag is fenced, so a stall is flagged and
//! told once however many instances see it.

use crate::domain::{
    a_week_before, OperationKind, StallPolicy, StandingStill, TenantId, Timestamp,
};
use crate::server::store::{Store, StoreResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StallReport {
    /// Runs standing still past the floor.
    pub weighed: usize,
    /// Of those, runs past their threshold that this check flagged.
    pub flagged: usize,
}

/// One check at `now` (tests pass a later `now` rather than wait).
pub async fn check_stalls(
    store: &dyn Store,
    policy: StallPolicy,
    now: Timestamp,
) -> StoreResult<StallReport> {
    let past_floor = Timestamp(now.0 - policy.floor_millis * 1_000);
    let candidates = store.standing_still(now, past_floor).await?;
    let mut report = StallReport {
        weighed: candidates.len(),
        flagged: 0,
    };
    // One week of history per tenant and operation, read once a check.
    let mut thresholds: HashMap<(TenantId, OperationKind), i64> = HashMap::new();
    for run in candidates {
        let key = (run.lease.tenant_id, run.operation);
        let threshold_millis = match thresholds.get(&key) {
            Some(threshold) => *threshold,
            None => {
                let week = store
                    .rollups(key.0, a_week_before(now), Some(key.1))
                    .await?;
                *thresholds
                    .entry(key)
                    .or_insert(policy.threshold_millis(&week.run_times()))
            }
        };
        let still = StandingStill {
            progressed_at: run.progressed_at,
            threshold_millis,
        };
        if still.is_stalled(now) && store.flag_stalled(&run, still, now).await? {
            report.flagged += 1;
            tracing::warn!(
                run = %run.lease.run_id,
                operation = run.operation.code(),
                idle_ms = still.idle_millis(now),
                threshold_ms = threshold_millis,
                "run stalled: its progress stands still while its lease is held"
            );
        }
    }
    Ok(report)
}

pub(super) async fn watch_until_shutdown(
    store: Arc<dyn Store>,
    policy: StallPolicy,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(policy.check_interval_millis().unsigned_abs());
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => continue,
        }
        if let Err(e) = check_stalls(store.as_ref(), policy, Timestamp::now()).await {
            tracing::error!(error = %super::worker::log_safe(&e), "stall check failed");
        }
    }
}
