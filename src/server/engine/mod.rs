//! The operations engine: a pool of workers that claim queued runs, execute
//! them under a lease kept alive by a heartbeat, a rescuer that gives runs
//! whose worker vanished another attempt (or fails them `worker_lost`), a
//! stall watch that flags runs whose worker lives but gets nowhere, and a
//! pruner.
//!
//! Workers wake at once when a run is queued (in-process signal; PostgreSQL
//! LISTEN/NOTIFY across processes); polling is only the fallback. A worker
//! or rescue task that dies anyway (a panic outside the guarded operation
//! code) is replaced; `EngineHealth` says how the pool is doing.

pub mod fault;
mod health;
mod stalls;
mod worker;

pub use health::EngineHealth;
pub use stalls::{check_stalls, StallReport};
pub use worker::{Executed, RunEnd, Worker};

use crate::domain::StallPolicy;
use crate::server::config::Settings;
use crate::server::retention::RetentionPolicy;
use crate::server::store::{ClaimLimit, Store};
use fault::panic_message;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the engine runs; from `Leptos.toml` (`workers`, `worker_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    pub workers: usize,
    /// A claim lasts this long unless renewed.
    pub lease: Duration,
    /// How often a running run's lease is renewed and its abort flag read.
    pub heartbeat: Duration,
    pub rescue_interval: Duration,
    /// The fallback when no wake-up signal arrives.
    pub poll_interval: Duration,
    /// How long runs in flight may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Progress is written when either bound is reached.
    pub batch_max_items: usize,
    pub batch_max_time: Duration,
    /// A claim takes up to this many runs whose items fit in one batch, so
    /// small runs share their claim and their completing write.
    pub claim_max_runs: usize,
    /// How often a prune pass runs (`prune_interval_secs`) and its policy.
    pub prune_interval: Duration,
    pub retention: RetentionPolicy,
    /// When a running run counts as stalled (`stall_*_secs`).
    pub stalls: StallPolicy,
    /// The test hook `engine_pause_file`: while it exists, workers hold
    /// their runs between batches. Leaked once at start-up, so the
    /// settings stay `Copy`.
    pub pause_file: Option<&'static Path>,
}

impl EngineSettings {
    pub fn from_settings(settings: &Settings) -> Self {
        let lease = Duration::from_secs(settings.worker_lease_secs);
        Self {
            workers: settings.workers,
            lease,
            // Often enough to see an abort within 2 s and to renew a lease
            // three times before it could expire.
            heartbeat: (lease / 3).min(Duration::from_secs(1)),
            rescue_interval: Duration::from_secs(settings.worker_rescue_interval_secs),
            poll_interval: Duration::from_millis(settings.worker_poll_interval_ms),
            shutdown_grace: Duration::from_secs(settings.worker_shutdown_grace_secs),
            batch_max_items: 2_000,
            batch_max_time: Duration::from_millis(250),
            claim_max_runs: 32,
            prune_interval: Duration::from_secs(settings.prune_interval_secs),
            retention: RetentionPolicy::from_settings(settings),
            stalls: settings.stall_policy(),
            pause_file: Some(settings.engine_pause_file.trim())
                .filter(|path| !path.is_empty())
                .map(|path| &*Box::leak(PathBuf::from(path).into_boxed_path())),
        }
    }

    pub fn claim_limit(&self) -> ClaimLimit {
        ClaimLimit {
            runs: self.claim_max_runs,
            items: self.batch_max_items,
        }
    }
}

/// A name for this process's workers that tells processes (and restarts) apart.
pub fn owner_prefix() -> String {
    format!("{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Runs the pool until `shutdown` turns true; then stops claiming, gives
/// runs in flight `shutdown_grace` to finish and leaves the rest to rescue.
/// Every worker task that dies is replaced, so the pool keeps the size the
/// settings give it; `health` follows it all.
pub async fn run(
    store: Arc<dyn Store>,
    settings: EngineSettings,
    health: Arc<EngineHealth>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = store.listen_across_processes().await {
        tracing::warn!(error = %worker::log_safe(&e), "workers will poll for queued runs");
    }
    // Live views (of every process sharing the database) hear what this
    // process's workers change.
    store.publish_changes();
    let prefix = owner_prefix();
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<(Task, Result<(), String>)>, task: Task| {
        let store = store.clone();
        let health = health.clone();
        let shutdown = shutdown.clone();
        let owner = format!("{prefix}/{}", task.name());
        tasks.spawn(async move {
            let ran = AssertUnwindSafe(async {
                match task {
                    Task::Worker { replaces, .. } => {
                        let _alive = health.worker_started();
                        if replaces > 0 {
                            // A worker that keeps dying does not spin.
                            tokio::time::sleep(RESTART_PAUSE).await;
                        }
                        let worker = Worker::new(store.clone(), owner, settings);
                        work_until_shutdown(worker, store, settings, shutdown).await
                    }
                    Task::Rescuer { .. } => {
                        rescue_until_shutdown(store, settings, &health, shutdown).await
                    }
                    Task::Pruner { .. } => prune_until_shutdown(store, settings, shutdown).await,
                    Task::StallWatch { .. } => {
                        stalls::watch_until_shutdown(store, settings.stalls, shutdown).await
                    }
                }
            })
            .catch_unwind()
            .await;
            (task, ran.map_err(|payload| panic_message(payload.as_ref())))
        });
    };
    for index in 0..settings.workers {
        spawn(&mut tasks, Task::Worker { index, replaces: 0 });
    }
    spawn(&mut tasks, Task::Rescuer { replaces: 0 });
    spawn(&mut tasks, Task::Pruner { replaces: 0 });
    spawn(&mut tasks, Task::StallWatch { replaces: 0 });
    tracing::info!(workers = settings.workers, owner = %prefix, "engine started");
    let mut signal = shutdown.clone();
    loop {
        tokio::select! {
            _ = signal.wait_for(|stop| *stop) => break,
            Some(ended) = tasks.join_next() => {
                let (task, ran) = match ended {
                    Ok(ended) => ended,
                    Err(e) => {
                        tracing::error!(error = %e, "an engine task was cancelled");
                        continue;
                    }
                };
                let reason = match ran {
                    Err(reason) => reason,
                    // Tasks end by themselves only on shutdown.
                    Ok(()) if *shutdown.borrow() => continue,
                    Ok(()) => "it returned".to_string(),
                };
                tracing::error!(task = %task.name(), %reason, "an engine task died; replacing it");
                if matches!(task, Task::Worker { .. }) {
                    health.worker_replaced();
                }
                spawn(&mut tasks, task.replacement());
            }
        }
    }
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "shutdown grace elapsed; runs still in flight are left for rescue"
        );
        tasks.abort_all();
    }
    tracing::info!("engine stopped");
}

/// How long a replacement waits before it starts.
const RESTART_PAUSE: Duration = Duration::from_millis(200);

/// A task of the pool, as the supervisor knows it.
#[derive(Clone, Copy, Debug)]
enum Task {
    Worker { index: usize, replaces: u32 },
    Rescuer { replaces: u32 },
    Pruner { replaces: u32 },
    StallWatch { replaces: u32 },
}

impl Task {
    /// Also the worker's lease owner after the process prefix: a replacement
    /// is a new owner, so what its predecessor held goes through rescue,
    /// whose attempts are counted.
    fn name(&self) -> String {
        match self {
            Task::Worker { index, replaces: 0 } => format!("w{index}"),
            Task::Worker { index, replaces } => format!("w{index}.{replaces}"),
            Task::Rescuer { .. } => "rescue".into(),
            Task::Pruner { .. } => "prune".into(),
            Task::StallWatch { .. } => "stall-watch".into(),
        }
    }

    fn replacement(self) -> Task {
        match self {
            Task::Worker { index, replaces } => Task::Worker {
                index,
                replaces: replaces + 1,
            },
            Task::Rescuer { replaces } => Task::Rescuer {
                replaces: replaces + 1,
            },
            Task::Pruner { replaces } => Task::Pruner {
                replaces: replaces + 1,
            },
            Task::StallWatch { replaces } => Task::StallWatch {
                replaces: replaces + 1,
            },
        }
    }
}

/// How long an idle worker waits after a failed step: short at first, so a
/// broken connection costs little, longer while the database stays away.
fn pause_after_failures(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.min(6))
        .min(Duration::from_secs(5))
}

async fn work_until_shutdown(
    worker: Worker,
    store: Arc<dyn Store>,
    settings: EngineSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0;
    while !*shutdown.borrow() {
        let idle_for = match worker.step().await {
            Ok(executed) if !executed.is_empty() => {
                failures = 0;
                for run in executed {
                    tracing::debug!(run = %run.run_id, end = ?run.end, items = run.items, "run executed");
                }
                continue;
            }
            Ok(_) => {
                failures = 0;
                settings.poll_interval
            }
            Err(e) => {
                tracing::error!(worker = worker.owner(), error = %worker::log_safe(&e), "worker step failed");
                failures += 1;
                pause_after_failures(failures - 1).min(settings.poll_interval)
            }
        };
        // A run queued between "queue empty" and here still wakes a worker:
        // with none waiting, `notify_one` keeps the wake-up for the next.
        // (Registering before the step would let a worker busy with a long
        // run take the wake-up meant for an idle one.)
        tokio::select! {
            () = store.queued().notified() => {}
            () = tokio::time::sleep(idle_for) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn rescue_until_shutdown(
    store: Arc<dyn Store>,
    settings: EngineSettings,
    health: &EngineHealth,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(settings.rescue_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => continue,
        }
        match store.rescue_expired().await {
            Ok(report) if report != Default::default() => {
                tracing::warn!(
                    ?report,
                    "rescued runs whose worker stopped renewing its lease"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %worker::log_safe(&e), "rescue pass failed"),
        }
        health.rescue_pass_ended();
    }
}

/// Prunes what retention lets go every `prune_interval`, the first pass one
/// interval after start-up. On PostgreSQL an instance whose pass finds
/// another instance pruning skips it; a pass stopped by shutdown leaves the
/// rest for the next (every batch is its own transaction).
async fn prune_until_shutdown(
    store: Arc<dyn Store>,
    settings: EngineSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now() + settings.prune_interval;
    let mut ticks = tokio::time::interval_at(start, settings.prune_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => continue,
        }
        let pass = store.prune(&settings.retention, crate::domain::Timestamp::now(), false);
        let pruned = tokio::select! {
            pruned = pass => pruned,
            _ = shutdown.changed() => continue,
        };
        match pruned {
            Ok(Some(report)) if report.total() > 0 => {
                let [runs, notifications, findings, audit_entries, inventory_syncs, rollups, sessions] =
                    report.kinds().map(|(_, n)| n);
                tracing::info!(
                    runs,
                    notifications,
                    findings,
                    audit_entries,
                    inventory_syncs,
                    rollups,
                    sessions,
                    "pruned records past their retention"
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("another instance is pruning; skipped this pass"),
            Err(e) => tracing::error!(error = %worker::log_safe(&e), "prune pass failed"),
        }
    }
}
