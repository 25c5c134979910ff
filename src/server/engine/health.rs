//! What the engine says about itself, for `/readyz`: how many workers are
//! alive against how many the settings ask for, and when the rescue loop
//! last finished a pass.

use super::EngineSettings;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct EngineHealth {
    workers: usize,
    alive: AtomicUsize,
    replaced: AtomicU64,
    /// A rescue pass that has not ended for this long means the loop is
    /// stuck or gone.
    rescue_stale_after: Duration,
    since: Instant,
    /// Milliseconds after `since` at which the last rescue pass ended;
    /// `NEVER` before the first.
    rescue_ended_ms: AtomicU64,
}

const NEVER: u64 = u64::MAX;

impl EngineHealth {
    pub fn new(settings: &EngineSettings) -> Arc<Self> {
        Arc::new(Self {
            workers: settings.workers,
            alive: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            // A pass may wait out a busy database (10 s to get a
            // connection) before it ends.
            rescue_stale_after: settings.rescue_interval * 3 + Duration::from_secs(30),
            since: Instant::now(),
            rescue_ended_ms: AtomicU64::new(NEVER),
        })
    }

    /// A process that only serves (`workers = 0`): nothing to report.
    pub fn serve_only() -> Arc<Self> {
        Self::new(&EngineSettings {
            workers: 0,
            ..EngineSettings::from_settings(&Default::default())
        })
    }

    /// How many workers the settings ask for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn workers_alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Worker tasks that died and were replaced since the engine started.
    pub fn workers_replaced(&self) -> u64 {
        self.replaced.load(Ordering::SeqCst)
    }

    /// Why the engine is not fit to work, if it is not. A process that only
    /// serves has nothing to say.
    pub fn problem(&self) -> Option<String> {
        if self.workers == 0 {
            return None;
        }
        let alive = self.workers_alive();
        if alive < self.workers {
            return Some(format!("{alive} of {} workers alive", self.workers));
        }
        match self.rescue_ended_ms.load(Ordering::SeqCst) {
            NEVER => Some("the rescue loop has not run yet".into()),
            ended => {
                let since_pass = self
                    .since
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ended));
                (since_pass > self.rescue_stale_after)
                    .then(|| format!("the rescue loop last ran {} s ago", since_pass.as_secs()))
            }
        }
    }

    /// Counts a worker task alive until the returned guard drops (also when
    /// the task unwinds).
    pub(super) fn worker_started(self: &Arc<Self>) -> AliveWorker {
        self.alive.fetch_add(1, Ordering::SeqCst);
        AliveWorker(self.clone())
    }

    pub(super) fn worker_replaced(&self) {
        self.replaced.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn rescue_pass_ended(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(NEVER - 1);
        self.rescue_ended_ms.store(ms, Ordering::SeqCst);
    }
}

pub(super) struct AliveWorker(Arc<EngineHealth>);

impl Drop for AliveWorker {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(workers: usize) -> EngineSettings {
        EngineSettings {
            workers,
            ..EngineSettings::from_settings(&Default::default())
        }
    }

    #[test]
    fn ready_once_every_worker_is_alive_and_rescue_has_run() {
        let health = EngineHealth::new(&settings(2));
        assert_eq!(health.problem().as_deref(), Some("0 of 2 workers alive"));
        let first = health.worker_started();
        let second = health.worker_started();
        assert_eq!(
            health.problem().as_deref(),
            Some("the rescue loop has not run yet")
        );
        health.rescue_pass_ended();
        assert_eq!(health.problem(), None);
        drop(second);
        assert_eq!(health.problem().as_deref(), Some("1 of 2 workers alive"));
        drop(first);
        assert_eq!(health.workers_alive(), 0);
    }

    #[test]
    fn a_process_that_only_serves_has_nothing_to_report() {
        assert_eq!(EngineHealth::serve_only().problem(), None);
    }
}
