//! One worker: claims runs, executes them in batches under a heartbeat, and
//! ends them — or lets go of one the moment its lease is no longer its own.

use super::EngineSettings;
use crate::domain::{sanitize_reason, RunId, RunStatus};
use crate::server::operations::{Execution, Preparation};
use crate::server::store::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How an executed run ended for this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    Finished(RunStatus),
    Aborted,
    /// Rescued, aborted or claimed by someone else meanwhile; this worker's
    /// later writes were refused.
    LeaseLost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executed {
    pub run_id: RunId,
    pub attempt: i64,
    pub items: usize,
    pub end: RunEnd,
}

pub struct Worker {
    store: Arc<dyn Store>,
    owner: String,
    settings: EngineSettings,
}

/// The heartbeat's latest word on a lease, read between items.
#[derive(Default)]
struct SharedLeaseState(AtomicU8);

impl SharedLeaseState {
    fn set(&self, state: LeaseState) {
        let code = match state {
            LeaseState::Held => 0,
            LeaseState::AbortRequested => 1,
            LeaseState::Lost => 2,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    fn get(&self) -> LeaseState {
        match self.0.load(Ordering::Relaxed) {
            0 => LeaseState::Held,
            1 => LeaseState::AbortRequested,
            _ => LeaseState::Lost,
        }
    }
}

/// A claimed run on its way through [`Worker::work`].
struct InFlight<'a> {
    run: &'a ClaimedRun,
    lease_state: &'a SharedLeaseState,
    /// Item results not written yet.
    batch: Vec<ItemResult>,
    /// Item results written.
    recorded: usize,
    end: Option<RunEnd>,
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, owner: impl Into<String>, settings: EngineSettings) -> Self {
        Self {
            store,
            owner: owner.into(),
            settings,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims the oldest pending runs (one large run, or several small ones
    /// together) and executes them to their end; empty when the queue is.
    /// Tests drive workers with this until it says so.
    pub async fn step(&self) -> StoreResult<Vec<Executed>> {
        let runs = self
            .store
            .claim_runs(
                &self.owner,
                self.settings.lease,
                self.settings.claim_limit(),
            )
            .await?;
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let lease_states: Vec<SharedLeaseState> =
            runs.iter().map(|_| SharedLeaseState::default()).collect();
        let work = self.work(&runs, &lease_states);
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.heartbeat).await;
                for (run, state) in runs.iter().zip(&lease_states) {
                    if state.get() == LeaseState::Lost {
                        continue;
                    }
                    match self
                        .store
                        .renew_lease(&run.lease, self.settings.lease)
                        .await
                    {
                        Ok(renewed) => state.set(renewed),
                        Err(e) => {
                            tracing::warn!(run = %run.lease.run_id, error = %e, "heartbeat failed")
                        }
                    }
                }
            }
        };
        tokio::select! {
            result = work => result,
            () = heartbeat => unreachable!("the heartbeat loops until the work ends"),
        }
    }

    /// Processes the runs' remaining items in order, writing them in batches
    /// bounded by count and time; a batch finishes every run whose items are
    /// all in it.
    async fn work(
        &self,
        runs: &[ClaimedRun],
        lease_states: &[SharedLeaseState],
    ) -> StoreResult<Vec<Executed>> {
        let mut flight: Vec<InFlight> = runs
            .iter()
            .zip(lease_states)
            .map(|(run, lease_state)| InFlight {
                run,
                lease_state,
                batch: Vec::new(),
                recorded: 0,
                end: None,
            })
            .collect();
        let shared = Preparation::load(self.store.as_ref(), runs).await?;
        let mut batch_started = Instant::now();
        let mut batched = 0;
        for (index, run) in runs.iter().enumerate() {
            let execution = Execution::prepare(self.store.as_ref(), run, &shared).await?;
            for item_id in run.item_ids.iter().skip(run.resume_at) {
                let current = &mut flight[index];
                match current.lease_state.get() {
                    LeaseState::Held => {}
                    LeaseState::AbortRequested => {
                        current.end = Some(self.end_aborted(&run.lease).await?);
                        break;
                    }
                    LeaseState::Lost => {
                        current.end = Some(RunEnd::LeaseLost);
                        break;
                    }
                }
                current.batch.push(ItemResult {
                    item_id: item_id.clone(),
                    outcome: execution.process(item_id),
                });
                batched += 1;
                if batched >= self.settings.batch_max_items
                    || batch_started.elapsed() >= self.settings.batch_max_time
                {
                    self.record(&mut flight[..=index], Some(index)).await?;
                    batched = 0;
                    batch_started = Instant::now();
                    if flight[index].end.is_some() {
                        break;
                    }
                }
            }
        }
        self.record(&mut flight, None).await?;
        // Every run has ended by now: finished, aborted or lost.
        Ok(flight
            .into_iter()
            .filter_map(|run| {
                Some(Executed {
                    run_id: run.run.lease.run_id,
                    attempt: run.run.lease.attempt,
                    items: run.recorded,
                    end: run.end?,
                })
            })
            .collect())
    }

    /// Writes the batches of the runs still going; every one of them but
    /// `open` (still processing) has all its items in and finishes.
    async fn record(&self, flight: &mut [InFlight<'_>], open: Option<usize>) -> StoreResult<()> {
        let writing: Vec<usize> = (0..flight.len())
            .filter(|&index| {
                flight[index].end.is_none()
                    && (Some(index) != open || !flight[index].batch.is_empty())
            })
            .collect();
        if writing.is_empty() {
            return Ok(());
        }
        let progress = writing
            .iter()
            .map(|&index| RunProgress {
                lease: flight[index].run.lease.clone(),
                items: std::mem::take(&mut flight[index].batch),
                finish: Some(index) != open,
            })
            .collect::<Vec<_>>();
        let sizes: Vec<usize> = progress.iter().map(|run| run.items.len()).collect();
        let outcomes = self
            .store
            .record_progress(self.settings.lease, progress)
            .await?;
        for ((index, size), outcome) in writing.into_iter().zip(sizes).zip(outcomes) {
            let run = &mut flight[index];
            match outcome {
                ProgressOutcome::Recorded(status) => {
                    run.recorded += size;
                    if Some(index) != open {
                        run.end = Some(RunEnd::Finished(status));
                    }
                }
                ProgressOutcome::AbortRequested => {
                    run.end = Some(self.end_aborted(&run.run.lease).await?)
                }
                ProgressOutcome::LeaseLost => run.end = Some(RunEnd::LeaseLost),
            }
        }
        Ok(())
    }

    async fn end_aborted(&self, lease: &Lease) -> StoreResult<RunEnd> {
        Ok(if self.store.finish_aborted(lease).await? {
            RunEnd::Aborted
        } else {
            RunEnd::LeaseLost
        })
    }
}

/// Store errors can quote stored values; logs get them sanitised.
pub fn log_safe(error: &StoreError) -> String {
    sanitize_reason(&error.to_string())
}
