//! The operations engine: a pool of workers that claim queued runs, execute
//! them under a lease kept alive by a heartbeat, and a rescuer that gives
//! runs whose worker vanished another attempt (or fails them `worker_lost`).
//!
//! Workers wake at once when a run is queued (in-process signal; PostgreSQL
//! LISTEN/NOTIFY across processes); polling is only the fallback.

mod worker;

pub use worker::{Executed, RunEnd, Worker};

use crate::server::config::Settings;
use crate::server::store::{ClaimLimit, Store};
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
            batch_max_items: 500,
            batch_max_time: Duration::from_millis(250),
            claim_max_runs: 32,
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
pub async fn run(store: Arc<dyn Store>, settings: EngineSettings, shutdown: watch::Receiver<bool>) {
    if let Err(e) = store.listen_across_processes().await {
        tracing::warn!(error = %worker::log_safe(&e), "workers will poll for queued runs");
    }
    // Live views (of every process sharing the database) hear what this
    // process's workers change.
    store.publish_changes();
    let prefix = owner_prefix();
    let mut workers = JoinSet::new();
    for index in 0..settings.workers {
        let worker = Worker::new(store.clone(), format!("{prefix}/w{index}"), settings);
        workers.spawn(work_until_shutdown(
            worker,
            store.clone(),
            settings,
            shutdown.clone(),
        ));
    }
    let rescuer = tokio::spawn(rescue_until_shutdown(
        store.clone(),
        settings,
        shutdown.clone(),
    ));
    tracing::info!(workers = settings.workers, owner = %prefix, "engine started");
    let mut signal = shutdown.clone();
    let _ = signal.wait_for(|stop| *stop).await;
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = workers.len(),
            "shutdown grace elapsed; runs still in flight are left for rescue"
        );
        workers.abort_all();
    }
    rescuer.abort();
    tracing::info!("engine stopped");
}

async fn work_until_shutdown(
    worker: Worker,
    store: Arc<dyn Store>,
    settings: EngineSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        // Registered before looking at the queue, so a run queued between
        // "queue empty" and waiting still wakes this worker.
        let queued = store.queued().notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let idle_for = match worker.step().await {
            Ok(executed) if !executed.is_empty() => {
                for run in executed {
                    tracing::debug!(run = %run.run_id, end = ?run.end, items = run.items, "run executed");
                }
                continue;
            }
            Ok(_) => settings.poll_interval,
            Err(e) => {
                tracing::error!(worker = worker.owner(), error = %worker::log_safe(&e), "worker step failed");
                settings.poll_interval
            }
        };
        tokio::select! {
            () = &mut queued => {}
            () = tokio::time::sleep(idle_for) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn rescue_until_shutdown(
    store: Arc<dyn Store>,
    settings: EngineSettings,
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
    }
}
