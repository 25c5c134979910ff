//! The hub's per-bucket counts without scanning a large tenant's history on
//! every render. A run that ended (terminal statuses are final) before a
//! cutoff an hour or more in the past can never change bucket, and no run
//! ends in the past; so those counts are read once per cutoff and filter and
//! remembered, and every render counts only the runs not ended or ended since
//! the cutoff, through the (tenant, finished_at) index. Runs imported with an
//! old history (`insert_run_records`) and a prune that deleted runs clear
//! what this process remembers; another instance's counts still include
//! pruned runs until the cutoff moves on (within the hour).
//!
//! What is remembered is bounded per tenant, in bytes and so in entries
//! (`quick_cache` evicts the least useful entries): one tenant's filters
//! evict only that tenant's entries, and the number of tenants remembered is
//! bounded too.

use crate::domain::{BucketCounts, RunFilter, TenantId, Timestamp};
use quick_cache::sync::Cache;
use quick_cache::{UnitWeighter, Weighter};
use std::sync::Arc;

/// Bytes of remembered counts per tenant (keys included).
pub const TENANT_BYTES: u64 = 32 * 1024;
/// Tenants whose counts are remembered at once; beyond this the least used
/// tenant's entries go.
pub const MAX_TENANTS: usize = 1_024;
/// What an entry costs besides its key's text: the counts, the key's
/// header and the cache's bookkeeping (an estimate on the high side).
const ENTRY_OVERHEAD: u64 = 128;
/// Entries per tenant at most: every entry weighs at least the overhead.
pub const MAX_TENANT_ENTRIES: u64 = TENANT_BYTES / ENTRY_OVERHEAD;
const HOUR_MICROS: i64 = 3_600_000_000;

/// One tenant's remembered counts, by cutoff and filter.
type TenantCounts = Cache<String, BucketCounts, EntryBytes>;

/// An entry weighs the bytes it holds.
#[derive(Clone)]
struct EntryBytes;

impl Weighter<String, BucketCounts> for EntryBytes {
    fn weight(&self, key: &String, _counts: &BucketCounts) -> u64 {
        ENTRY_OVERHEAD + key.len() as u64
    }
}

pub struct SettledCounts {
    tenants: Cache<TenantId, Arc<TenantCounts>, UnitWeighter>,
}

impl Default for SettledCounts {
    fn default() -> Self {
        Self {
            tenants: Cache::new(MAX_TENANTS),
        }
    }
}

/// The start of the previous UTC hour: runs that ended before it are settled.
pub fn settled_cutoff(now: Timestamp) -> Timestamp {
    Timestamp(now.0.div_euclid(HOUR_MICROS) * HOUR_MICROS - HOUR_MICROS)
}

fn key(cutoff: Timestamp, filter: &RunFilter) -> String {
    format!("{}|{filter:?}", cutoff.0)
}

impl SettledCounts {
    pub fn get(
        &self,
        tenant: TenantId,
        cutoff: Timestamp,
        filter: &RunFilter,
    ) -> Option<BucketCounts> {
        self.tenants.get(&tenant)?.get(&key(cutoff, filter))
    }

    pub fn remember(
        &self,
        tenant: TenantId,
        cutoff: Timestamp,
        filter: &RunFilter,
        counts: BucketCounts,
    ) {
        let counts_of_tenant = match self.tenants.get(&tenant) {
            Some(cache) => cache,
            None => {
                let cache = Arc::new(TenantCounts::with_weighter(
                    MAX_TENANT_ENTRIES as usize,
                    TENANT_BYTES,
                    EntryBytes,
                ));
                self.tenants.insert(tenant, cache.clone());
                cache
            }
        };
        counts_of_tenant.insert(key(cutoff, filter), counts);
    }

    pub fn forget_all(&self) {
        self.tenants.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunSearch;
    use uuid::Uuid;

    impl SettledCounts {
        /// Bytes remembered for `tenant`, weighed like the bound.
        fn tenant_weight(&self, tenant: TenantId) -> u64 {
            self.tenants.get(&tenant).map_or(0, |cache| cache.weight())
        }

        fn tenant_entries(&self, tenant: TenantId) -> usize {
            self.tenants.get(&tenant).map_or(0, |cache| cache.len())
        }

        fn tenants(&self) -> usize {
            self.tenants.len()
        }
    }

    #[test]
    fn the_cutoff_is_the_start_of_the_previous_hour() {
        let hour = HOUR_MICROS;
        let now = Timestamp(100 * hour + 17);
        assert_eq!(settled_cutoff(now), Timestamp(99 * hour));
        assert_eq!(settled_cutoff(Timestamp(100 * hour)), Timestamp(99 * hour));
        assert!(now.0 - settled_cutoff(now).0 >= hour);
    }

    fn search(text: String) -> RunFilter {
        RunFilter {
            search: Some(RunSearch::KeyPrefix(text)),
            ..RunFilter::default()
        }
    }

    #[test]
    fn one_tenants_many_long_filters_stay_within_its_share_and_evict_no_one_else() {
        let cache = SettledCounts::default();
        let cutoff = Timestamp(7 * HOUR_MICROS);
        let (quiet, busy) = (TenantId(Uuid::from_u128(1)), TenantId(Uuid::from_u128(2)));
        let counts = BucketCounts {
            succeeded: 3,
            ..BucketCounts::default()
        };
        cache.remember(quiet, cutoff, &RunFilter::default(), counts);
        // 20,000 distinct searches of the longest allowed length (200
        // characters of 4 bytes each), all remembered by one tenant.
        for n in 0..20_000 {
            let text = format!("{n:0>8}{}", "🚀".repeat(192));
            cache.remember(busy, cutoff, &search(text), BucketCounts::default());
            assert!(cache.tenant_weight(busy) <= TENANT_BYTES);
        }
        assert!(cache.tenant_entries(busy) as u64 <= MAX_TENANT_ENTRIES);
        assert!(cache.tenant_entries(busy) > 0);
        // The other tenant's entry is untouched.
        assert_eq!(
            cache.get(quiet, cutoff, &RunFilter::default()),
            Some(counts)
        );

        // Short filters: more entries, never more than the entry bound.
        for n in 0..20_000 {
            cache.remember(
                busy,
                cutoff,
                &search(n.to_string()),
                BucketCounts::default(),
            );
        }
        assert!(cache.tenant_weight(busy) <= TENANT_BYTES);
        assert!(cache.tenant_entries(busy) as u64 <= MAX_TENANT_ENTRIES);
        assert_eq!(
            cache.get(quiet, cutoff, &RunFilter::default()),
            Some(counts)
        );
    }

    #[test]
    fn the_number_of_tenants_is_bounded_and_forget_all_empties_it() {
        let cache = SettledCounts::default();
        let cutoff = Timestamp(0);
        for n in 0..(4 * MAX_TENANTS as u128) {
            cache.remember(
                TenantId(Uuid::from_u128(n)),
                cutoff,
                &RunFilter::default(),
                BucketCounts::default(),
            );
        }
        assert!(cache.tenants() <= MAX_TENANTS, "{}", cache.tenants());
        cache.forget_all();
        assert_eq!(cache.tenants(), 0);
    }
}
