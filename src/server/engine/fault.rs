//! Panics made safe to store and log, and — with the `fault-injection`
//! feature, which only the test suite enables — faults planted on purpose.

use crate::domain::sanitize_reason;
use std::any::Any;

/// A panic's message, sanitised: a payload can quote whatever the code was
/// handling (an inventory name, a payload, a secret).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    sanitize_reason(text)
}

/// Sends every panic of the process to the log, sanitised, instead of the
/// default hook's raw message on stderr.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()))
            .unwrap_or_default();
        tracing::error!(panic = %panic_message(info.payload()), %location, "a task panicked");
    }));
}

#[cfg(feature = "fault-injection")]
pub mod inject {
    //! Faults a test plants at a named site, keyed by a marker it chooses
    //! (an item id), so tests running side by side do not trip each other's.

    use crate::server::store::{ClaimedRun, RunProgress, StoreError};
    use std::sync::Mutex;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Site {
        /// `Execution::process` of the item whose id is the marker panics.
        Process,
        /// `Execution::prepare` of a run holding the marker among its items
        /// panics.
        Prepare,
        /// `Execution::prepare` of such a run fails with a store error that
        /// is not transient.
        PrepareError,
        /// `Preparation::load` of runs among which one holds the marker
        /// fails with a store error that is not transient.
        SharedLoadError,
        /// Right after a claim that took such a run, outside every guard:
        /// the worker's task dies.
        Claimed,
        /// A claim that took such a run commits, but its answer is lost as
        /// if the connection broke.
        ClaimAnswerLost,
        /// A progress write holding the item whose id is the marker
        /// commits, but its answer is lost as if the connection broke.
        ProgressAnswerLost,
        /// A progress write holding that item is refused for good (an
        /// error that is not transient), before it reaches the store.
        ProgressRefused,
    }

    struct Armed {
        site: Site,
        marker: String,
        times: usize,
        message: String,
    }

    static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

    /// Plants a fault at `site` that fires `times` times, with `message` as
    /// the panic's payload or the error's text.
    pub fn arm(site: Site, marker: &str, times: usize, message: &str) {
        ARMED.lock().unwrap_or_else(|e| e.into_inner()).push(Armed {
            site,
            marker: marker.to_string(),
            times,
            message: message.to_string(),
        });
    }

    /// The message of a fault armed at `site` for a marker `hit` accepts,
    /// using up one of its times.
    fn fire(site: Site, hit: impl Fn(&str) -> bool) -> Option<String> {
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        let fault = armed
            .iter_mut()
            .find(|fault| fault.site == site && fault.times > 0 && hit(&fault.marker))?;
        fault.times -= 1;
        Some(fault.message.clone())
    }

    pub fn at_process(item_id: &str) {
        if let Some(message) = fire(Site::Process, |marker| marker == item_id) {
            panic!("{message}");
        }
    }

    pub fn at_prepare(run: &ClaimedRun) -> Result<(), StoreError> {
        let holds = |marker: &str| run.work_items.iter().any(|item| item == marker);
        if let Some(message) = fire(Site::Prepare, holds) {
            panic!("{message}");
        }
        match fire(Site::PrepareError, holds) {
            Some(message) => Err(StoreError::Invalid(message)),
            None => Ok(()),
        }
    }

    fn claim_holds(runs: &[ClaimedRun], marker: &str) -> bool {
        runs.iter()
            .any(|run| run.work_items.iter().any(|item| item == marker))
    }

    pub fn at_shared_load(runs: &[ClaimedRun]) -> Result<(), StoreError> {
        match fire(Site::SharedLoadError, |marker| claim_holds(runs, marker)) {
            Some(message) => Err(StoreError::Invalid(message)),
            None => Ok(()),
        }
    }

    pub fn at_claimed(runs: &[ClaimedRun]) {
        if let Some(message) = fire(Site::Claimed, |marker| claim_holds(runs, marker)) {
            panic!("{message}");
        }
    }

    /// After a claim committed: `Unavailable` when its answer is to be lost.
    pub fn after_claim(runs: &[ClaimedRun]) -> Result<(), StoreError> {
        match fire(Site::ClaimAnswerLost, |marker| claim_holds(runs, marker)) {
            Some(_) => Err(StoreError::Unavailable),
            None => Ok(()),
        }
    }

    fn progress_holds(progress: &[RunProgress], marker: &str) -> bool {
        progress
            .iter()
            .any(|run| run.items.iter().any(|item| item.item_id == marker))
    }

    /// Before a progress write: the error that refuses it, if one is armed.
    pub fn before_progress(progress: &[RunProgress]) -> Result<(), StoreError> {
        match fire(Site::ProgressRefused, |marker| {
            progress_holds(progress, marker)
        }) {
            Some(message) => Err(StoreError::Invalid(message)),
            None => Ok(()),
        }
    }

    /// After a progress write committed: `Unavailable` when its answer is
    /// to be lost.
    pub fn after_progress(progress: &[RunProgress]) -> Result<(), StoreError> {
        match fire(Site::ProgressAnswerLost, |marker| {
            progress_holds(progress, marker)
        }) {
            Some(_) => Err(StoreError::Unavailable),
            None => Ok(()),
        }
    }
}
