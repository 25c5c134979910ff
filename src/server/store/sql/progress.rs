//! The engine's progress, what needs no database: whether a batch is
//! already recorded. The fenced write is `repositories/progress.rs`.

use crate::domain::*;
use crate::server::store::rows::RunStateRow;
use crate::server::store::{BatchEnd, RunProgress};

/// True when the run already counts exactly this batch of progress: an
/// earlier try's commit landed and only its answer was lost.
pub fn already_recorded(state: &RunStateRow, run: &RunProgress) -> bool {
    state.counters().processed == run.recorded_before + run.items.len() as i64
        && match run.end {
            BatchEnd::Continues => !run.items.is_empty() && state.status == RunStatus::Running,
            BatchEnd::Finishes | BatchEnd::BrokeDown(_) => state.status.is_terminal(),
        }
}
