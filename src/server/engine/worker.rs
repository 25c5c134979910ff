//! One worker: claims a run, executes it in batches under a heartbeat, and
//! ends it — or lets go the moment its lease is no longer its own.

use super::EngineSettings;
use crate::domain::{sanitize_reason, RunId, RunStatus};
use crate::server::operations::Execution;
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

/// The heartbeat's latest word on the lease, read between items.
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

    /// Claims the oldest pending run and executes it to its end; `None` when
    /// the queue is empty. Tests drive workers with this until it says so.
    pub async fn step(&self) -> StoreResult<Option<Executed>> {
        let Some(run) = self
            .store
            .claim_run(&self.owner, self.settings.lease)
            .await?
        else {
            return Ok(None);
        };
        self.execute(run).await.map(Some)
    }

    async fn execute(&self, run: ClaimedRun) -> StoreResult<Executed> {
        let lease = run.lease.clone();
        let state = SharedLeaseState(AtomicU8::new(0));
        let work = self.work(&run, &state);
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.heartbeat).await;
                match self.store.renew_lease(&lease, self.settings.lease).await {
                    Ok(renewed) => state.set(renewed),
                    Err(e) => tracing::warn!(run = %lease.run_id, error = %e, "heartbeat failed"),
                }
            }
        };
        let (items, end) = tokio::select! {
            result = work => result?,
            () = heartbeat => unreachable!("the heartbeat loops until the work ends"),
        };
        Ok(Executed {
            run_id: lease.run_id,
            attempt: lease.attempt,
            items,
            end,
        })
    }

    /// Processes the run's remaining items; returns how many it processed.
    async fn work(
        &self,
        run: &ClaimedRun,
        state: &SharedLeaseState,
    ) -> StoreResult<(usize, RunEnd)> {
        let lease = &run.lease;
        let execution = Execution::prepare(self.store.as_ref(), run).await?;
        let mut batch = Vec::new();
        let mut batch_started = Instant::now();
        let mut processed = 0;
        for item_id in run.item_ids.iter().skip(run.resume_at) {
            match state.get() {
                LeaseState::Held => {}
                LeaseState::AbortRequested => {
                    return Ok((processed, self.end_aborted(lease).await?))
                }
                LeaseState::Lost => return Ok((processed, RunEnd::LeaseLost)),
            }
            batch.push(ItemResult {
                item_id: item_id.clone(),
                outcome: execution.process(item_id),
            });
            if batch.len() >= self.settings.batch_max_items
                || batch_started.elapsed() >= self.settings.batch_max_time
            {
                let items = batch.len();
                if let Err(end) = self
                    .record(lease, std::mem::take(&mut batch), false)
                    .await?
                {
                    return Ok((processed, end));
                }
                processed += items;
                batch_started = Instant::now();
            }
        }
        let items = batch.len();
        Ok(match self.record(lease, batch, true).await? {
            Ok(status) => (processed + items, RunEnd::Finished(status)),
            Err(end) => (processed, end),
        })
    }

    /// Writes a batch: the run's status after it, or how the run ended
    /// instead (abort requested, lease lost).
    async fn record(
        &self,
        lease: &Lease,
        items: Vec<ItemResult>,
        finish: bool,
    ) -> StoreResult<Result<RunStatus, RunEnd>> {
        let outcome = self
            .store
            .record_progress(lease, self.settings.lease, items, finish)
            .await?;
        Ok(match outcome {
            ProgressOutcome::Recorded(status) => Ok(status),
            ProgressOutcome::AbortRequested => Err(self.end_aborted(lease).await?),
            ProgressOutcome::LeaseLost => Err(RunEnd::LeaseLost),
        })
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
