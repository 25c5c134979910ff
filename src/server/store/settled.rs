//! The hub's per-bucket counts without scanning a large tenant's history on
//! every render. A run that ended (terminal statuses are final) before a
//! cutoff an hour or more in the past can never change bucket, no run ends in
//! the past, and runs are never deleted; so those counts are read once per
//! cutoff and filter and remembered, and every render counts only the runs
//! not ended or ended since the cutoff, through the (tenant, finished_at)
//! index. Runs imported with an old history (`insert_run_records`) clear what
//! this process remembers.

use crate::domain::{BucketCounts, RunFilter, TenantId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// Remembered (cutoff, filter) combinations; beyond this the memory starts
/// over (each costs one full count to rebuild).
const MAX_ENTRIES: usize = 512;
const HOUR_MICROS: i64 = 3_600_000_000;

#[derive(Default)]
pub struct SettledCounts {
    entries: Mutex<HashMap<String, BucketCounts>>,
}

/// The start of the previous UTC hour: runs that ended before it are settled.
pub fn settled_cutoff(now: Timestamp) -> Timestamp {
    Timestamp(now.0.div_euclid(HOUR_MICROS) * HOUR_MICROS - HOUR_MICROS)
}

pub fn key(tenant: TenantId, cutoff: Timestamp, filter: &RunFilter) -> String {
    format!("{tenant}|{}|{filter:?}", cutoff.0)
}

impl SettledCounts {
    pub fn get(&self, key: &str) -> Option<BucketCounts> {
        self.lock().get(key).copied()
    }

    pub fn remember(&self, key: String, counts: BucketCounts) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, counts);
    }

    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BucketCounts>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_start_of_the_previous_hour() {
        let hour = HOUR_MICROS;
        let now = Timestamp(100 * hour + 17);
        assert_eq!(settled_cutoff(now), Timestamp(99 * hour));
        assert_eq!(settled_cutoff(Timestamp(100 * hour)), Timestamp(99 * hour));
        assert!(now.0 - settled_cutoff(now).0 >= hour);
    }
}
