//! One worker: claims runs, executes them in batches under a heartbeat, and
//! ends them — or lets go of one the moment its lease is no longer its own.
//!
//! What goes wrong is told apart: a store error that is transient (the
//! connection broke) is retried while the claim's leases are still this
//! worker's; a panic or any other error inside an operation's own code ends
//! that run `failed` (`internal_error`), and the worker goes on.

use super::fault::panic_message;
use super::EngineSettings;
use crate::domain::{sanitize_reason, FailureEntry, ReasonCode, RunId, RunStatus};
use crate::server::operations::{Execution, Preparation};
use crate::server::store::*;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Runs may be leased to this worker without its knowing: a claim
    /// failed on a broken connection (its commit may have landed), or a step
    /// gave up on a store that stayed away. The next step takes them back
    /// before claiming anything new.
    may_hold_runs: AtomicBool,
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

/// Until when the claim's leases are surely this worker's: the start of the
/// claim or of the last heartbeat that renewed them, plus the lease.
struct LeaseClock {
    held_until: Mutex<Instant>,
    lease: Duration,
}

impl LeaseClock {
    fn new(claimed_at: Instant, lease: Duration) -> Self {
        Self {
            held_until: Mutex::new(claimed_at + lease),
            lease,
        }
    }

    fn renewed(&self, at: Instant) {
        let mut held_until = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        *held_until = (*held_until).max(at + self.lease);
    }

    fn held_until(&self) -> Instant {
        *self.held_until.lock().unwrap_or_else(|e| e.into_inner())
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
    /// The operation broke down: the run ends `failed` with this entry.
    fault: Option<FailureEntry>,
    end: Option<RunEnd>,
}

impl InFlight<'_> {
    fn recorded_before(&self) -> i64 {
        (self.run.resume_at + self.recorded) as i64
    }
}

/// What guarded operation code came to.
enum Guarded<T> {
    Done(T),
    /// It panicked or failed for a reason of its own: sanitised, for the
    /// run's failure entry.
    BrokeDown(String),
}

const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_RETRY_PAUSE: Duration = Duration::from_secs(1);

impl Worker {
    pub fn new(store: Arc<dyn Store>, owner: impl Into<String>, settings: EngineSettings) -> Self {
        Self {
            store,
            owner: owner.into(),
            settings,
            may_hold_runs: AtomicBool::new(false),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims the oldest pending runs (one large run, or several small ones
    /// together) and executes them to their end; empty when the queue is.
    /// Tests drive workers with this until it says so.
    pub async fn step(&self) -> StoreResult<Vec<Executed>> {
        let claimed_at = Instant::now();
        let runs = self.claim().await?;
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let _busy = self.store.metrics().worker_busy();
        #[cfg(feature = "fault-injection")]
        super::fault::inject::at_claimed(&runs);
        let clock = LeaseClock::new(claimed_at, self.settings.lease);
        let lease_states: Vec<SharedLeaseState> =
            runs.iter().map(|_| SharedLeaseState::default()).collect();
        let work = self.work(&runs, &lease_states, &clock);
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.heartbeat).await;
                let renewing_at = Instant::now();
                for (run, state) in runs.iter().zip(&lease_states) {
                    if state.get() == LeaseState::Lost {
                        continue;
                    }
                    match self
                        .store
                        .renew_lease(&run.lease, self.settings.lease)
                        .await
                    {
                        Ok(renewed) => {
                            if renewed != LeaseState::Lost {
                                clock.renewed(renewing_at);
                            }
                            state.set(renewed);
                        }
                        Err(e) => {
                            tracing::warn!(run = %run.lease.run_id, error = %log_safe(&e), "heartbeat failed")
                        }
                    }
                }
            }
        };
        let result = tokio::select! {
            result = work => result,
            () = heartbeat => unreachable!("the heartbeat loops until the work ends"),
        };
        if result.as_ref().is_err_and(StoreError::is_transient) {
            // Given up on a store that stayed away: the runs are still
            // leased here, and are taken back as soon as it answers.
            self.may_hold_runs.store(true, Ordering::SeqCst);
        }
        result
    }

    /// The runs this worker may hold without knowing, else a new claim.
    async fn claim(&self) -> StoreResult<Vec<ClaimedRun>> {
        let lease = self.settings.lease;
        let outcome = async {
            if self.may_hold_runs.load(Ordering::SeqCst) {
                let held = self.store.reclaim_runs(&self.owner, lease).await?;
                self.may_hold_runs.store(false, Ordering::SeqCst);
                if !held.is_empty() {
                    tracing::info!(worker = %self.owner, runs = held.len(), "took back runs leased to this worker");
                    return Ok(held);
                }
            }
            let claimed = self
                .store
                .claim_runs(&self.owner, lease, self.settings.claim_limit())
                .await?;
            #[cfg(feature = "fault-injection")]
            super::fault::inject::after_claim(&claimed)?;
            Ok(claimed)
        }
        .await;
        if outcome.as_ref().is_err_and(StoreError::is_transient) {
            self.may_hold_runs.store(true, Ordering::SeqCst);
        }
        outcome
    }

    /// Processes the runs' remaining items in order, writing them in batches
    /// bounded by count and time; a batch finishes every run whose items are
    /// all in it.
    async fn work(
        &self,
        runs: &[ClaimedRun],
        lease_states: &[SharedLeaseState],
        clock: &LeaseClock,
    ) -> StoreResult<Vec<Executed>> {
        let mut flight: Vec<InFlight> = runs
            .iter()
            .zip(lease_states)
            .map(|(run, lease_state)| InFlight {
                run,
                lease_state,
                batch: Vec::new(),
                recorded: 0,
                fault: None,
                end: None,
            })
            .collect();
        let store = self.store.as_ref();
        // What the runs share is only a saving: if loading it breaks down,
        // each run loads its own, so the fault stays with the runs it is in.
        let shared = match self
            .guarded(clock, || Preparation::load(store, runs))
            .await?
        {
            Guarded::Done(shared) => Some(shared),
            Guarded::BrokeDown(reason) => {
                tracing::error!(worker = %self.owner, %reason, "loading what the claimed runs share failed; each run loads its own");
                None
            }
        };
        let shared = shared.as_ref();
        let mut batch_started = Instant::now();
        let mut batched = 0;
        for (index, run) in runs.iter().enumerate() {
            let Some(remaining) = run.remaining_items() else {
                let reason = format!(
                    "it has {} work items but counts {} processed",
                    run.work_items.len(),
                    run.resume_at
                );
                flight[index].fault = Some(self.broke_down(run, None, "resuming", &reason));
                continue;
            };
            let prepared = self
                .guarded(clock, || async move {
                    match shared {
                        Some(shared) => Execution::prepare(store, run, shared).await,
                        None => {
                            let own = Preparation::load(store, std::slice::from_ref(run)).await?;
                            Execution::prepare(store, run, &own).await
                        }
                    }
                })
                .await?;
            let execution = match prepared {
                Guarded::Done(execution) => execution,
                Guarded::BrokeDown(reason) => {
                    flight[index].fault =
                        Some(self.broke_down(run, None, "preparing the run", &reason));
                    continue;
                }
            };
            for item_id in remaining {
                if batched == 0 {
                    self.hold_while_paused(flight[index].lease_state).await;
                }
                let current = &mut flight[index];
                match current.lease_state.get() {
                    LeaseState::Held => {}
                    LeaseState::AbortRequested => {
                        current.end = Some(self.end_aborted(&run.lease, clock).await?);
                        break;
                    }
                    LeaseState::Lost => {
                        current.end = Some(RunEnd::LeaseLost);
                        break;
                    }
                }
                match std::panic::catch_unwind(AssertUnwindSafe(|| execution.process(item_id))) {
                    Ok(outcome) => current.batch.push(ItemResult {
                        item_id: item_id.clone(),
                        outcome,
                    }),
                    Err(payload) => {
                        current.fault = Some(self.broke_down(
                            run,
                            Some(item_id),
                            "processing an item",
                            &panic_message(payload.as_ref()),
                        ));
                        break;
                    }
                }
                batched += 1;
                if batched >= self.settings.batch_max_items
                    || batch_started.elapsed() >= self.settings.batch_max_time
                {
                    self.record(&mut flight[..=index], Some(index), clock)
                        .await?;
                    batched = 0;
                    batch_started = Instant::now();
                    if flight[index].end.is_some() {
                        break;
                    }
                }
            }
        }
        self.record(&mut flight, None, clock).await?;
        // Every run has ended by now: finished, broken down, aborted or lost.
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

    /// The test hook `engine_pause_file`: while that file exists the run is
    /// held here, between batches, its lease renewed by the heartbeat, so
    /// its progress stands still as a hung operation's would. An abort or
    /// a lost lease ends the hold at once.
    async fn hold_while_paused(&self, lease_state: &SharedLeaseState) {
        let Some(file) = self.settings.pause_file else {
            return;
        };
        while lease_state.get() == LeaseState::Held
            && tokio::fs::try_exists(file).await.unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The failure entry that ends a run whose operation broke down, logged.
    fn broke_down(
        &self,
        run: &ClaimedRun,
        item_id: Option<&String>,
        doing: &str,
        reason: &str,
    ) -> FailureEntry {
        let entry = FailureEntry::failed(
            item_id.cloned(),
            ReasonCode::InternalError,
            &format!("the operation broke down {doing}: {reason}"),
        );
        tracing::error!(
            worker = %self.owner,
            run = %run.lease.run_id,
            item = ?item_id.map(|id| sanitize_reason(id)),
            reason = %entry.reason,
            "an operation broke down; its run fails"
        );
        entry
    }

    /// Writes the batches of the runs still going; every one of them but
    /// `open` (still processing) has all its items in and ends.
    async fn record(
        &self,
        flight: &mut [InFlight<'_>],
        open: Option<usize>,
        clock: &LeaseClock,
    ) -> StoreResult<()> {
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
            .map(|&index| {
                let run = &mut flight[index];
                RunProgress {
                    lease: run.run.lease.clone(),
                    recorded_before: run.recorded_before(),
                    items: std::mem::take(&mut run.batch),
                    end: match run.fault.take() {
                        Some(fault) => BatchEnd::BrokeDown(fault),
                        None if Some(index) == open => BatchEnd::Continues,
                        None => BatchEnd::Finishes,
                    },
                }
            })
            .collect::<Vec<_>>();
        let outcomes = self.write_progress(progress, clock).await?;
        for (index, (outcome, written)) in writing.into_iter().zip(outcomes) {
            let run = &mut flight[index];
            match outcome {
                ProgressOutcome::Recorded(status) => {
                    run.recorded += written;
                    if status.is_terminal() {
                        run.end = Some(RunEnd::Finished(status));
                    }
                }
                ProgressOutcome::AbortRequested => {
                    run.end = Some(self.end_aborted(&run.run.lease, clock).await?)
                }
                ProgressOutcome::LeaseLost => run.end = Some(RunEnd::LeaseLost),
            }
        }
        Ok(())
    }

    /// Writes the batches; each outcome comes with the items it wrote. A
    /// write the store refuses for good (not a lost connection) is tried run
    /// by run, and a run whose own batch is still refused breaks down — its
    /// items are not counted — so one bad batch cannot stall the others.
    async fn write_progress(
        &self,
        progress: Vec<RunProgress>,
        clock: &LeaseClock,
    ) -> StoreResult<Vec<(ProgressOutcome, usize)>> {
        let sizes = || progress.iter().map(|run| run.items.len());
        let error = match self.record_progress(&progress, clock).await {
            Ok(outcomes) => return Ok(outcomes.into_iter().zip(sizes()).collect()),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => e,
        };
        tracing::error!(worker = %self.owner, error = %log_safe(&error), runs = progress.len(), "progress refused; writing run by run");
        let mut outcomes = Vec::with_capacity(progress.len());
        for run in progress {
            let written = run.items.len();
            let outcome = match self
                .record_progress(std::slice::from_ref(&run), clock)
                .await
            {
                Ok(outcome) => (outcome[0], written),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    let reason = log_safe(&e);
                    let entry = FailureEntry::failed(
                        None,
                        ReasonCode::InternalError,
                        &format!("the run's progress could not be recorded: {reason}"),
                    );
                    tracing::error!(worker = %self.owner, run = %run.lease.run_id, %reason, "progress refused; the run fails");
                    let ended = RunProgress {
                        items: Vec::new(),
                        end: BatchEnd::BrokeDown(entry),
                        ..run
                    };
                    (
                        self.record_progress(std::slice::from_ref(&ended), clock)
                            .await?[0],
                        0,
                    )
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn record_progress(
        &self,
        progress: &[RunProgress],
        clock: &LeaseClock,
    ) -> StoreResult<Vec<ProgressOutcome>> {
        self.retrying(clock, || async move {
            #[cfg(feature = "fault-injection")]
            super::fault::inject::before_progress(progress)?;
            let outcomes = self
                .store
                .record_progress(self.settings.lease, progress)
                .await?;
            #[cfg(feature = "fault-injection")]
            super::fault::inject::after_progress(progress)?;
            Ok(outcomes)
        })
        .await
    }

    async fn end_aborted(&self, lease: &Lease, clock: &LeaseClock) -> StoreResult<RunEnd> {
        let aborted = self
            .retrying(clock, || self.store.finish_aborted(lease))
            .await?;
        Ok(if aborted {
            RunEnd::Aborted
        } else {
            RunEnd::LeaseLost
        })
    }

    /// Calls the store again, after a short pause that grows, while it fails
    /// for a transient reason and the claim's leases are still this
    /// worker's; then gives up with the error. Every write a retry repeats
    /// is fenced, so one whose first try did land changes nothing more.
    async fn retrying<T, F, Fut>(&self, clock: &LeaseClock, mut call: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            match call().await {
                Err(e) if e.is_transient() && Instant::now() + pause < clock.held_until() => {
                    tracing::warn!(worker = %self.owner, error = %log_safe(&e), retry_in = ?pause, "store call failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_RETRY_PAUSE);
                }
                outcome => return outcome,
            }
        }
    }

    /// Runs an operation's own code (with the store calls it makes, retried
    /// while transient): a panic or any other error is the operation's
    /// breakdown; a store that stays away past the lease is returned.
    async fn guarded<T, F, Fut>(&self, clock: &LeaseClock, call: F) -> StoreResult<Guarded<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        match AssertUnwindSafe(self.retrying(clock, call))
            .catch_unwind()
            .await
        {
            Ok(Ok(value)) => Ok(Guarded::Done(value)),
            Ok(Err(e)) if e.is_transient() => Err(e),
            Ok(Err(e)) => Ok(Guarded::BrokeDown(log_safe(&e))),
            Err(payload) => Ok(Guarded::BrokeDown(panic_message(payload.as_ref()))),
        }
    }
}

/// Store errors can quote stored values; logs get them sanitised.
pub fn log_safe(error: &StoreError) -> String {
    sanitize_reason(&error.to_string())
}
