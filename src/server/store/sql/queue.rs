//! The work queue, what needs no database: which running runs a worker
//! may take over, and when a lease ends. The queue's statements are
//! `repositories/queue.rs`.

use crate::domain::Timestamp;

/// Running runs a worker may take over: their lease was released
/// (or they never had one), attempts remain, no abort asked.
pub const ORPHANED_RUNS: &str = "status = 'running' AND lease_owner IS NULL \
    AND attempt < max_attempts AND cancel_requested_at IS NULL";

pub fn lease_expiry(now: Timestamp, lease_for: std::time::Duration) -> Timestamp {
    now.plus_millis(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 1_000))
}
