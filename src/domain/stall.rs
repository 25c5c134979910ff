//! When a running run counts as stalled: its progress has not moved for
//! longer than its own operation usually takes, within bounds an operator
//! sets. Distinct from a lost lease: a stalled run's worker is alive and
//! renewing its lease, it just gets nowhere (a hung call, a lock, a loop).

use super::{duration_buckets, format_millis, Timestamp};

/// How many times this operation's p95 run time its progress may stand
/// still: a pause longer than twice a slow whole run is not normal.
pub const HISTORY_MULTIPLE: i64 = 2;

/// The bounds of the threshold (`stall_floor_secs`, `stall_ceiling_secs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallPolicy {
    /// Never stalled sooner: batches and preparation pause progress briefly
    /// even when all is well, and an operation without history gets this.
    pub floor_millis: i64,
    /// Never stalled later, however slow the operation's runs usually are.
    pub ceiling_millis: i64,
}

impl StallPolicy {
    /// A floor under 1 ms counts as 1 ms and a ceiling below the floor as
    /// the floor (settings that cross are refused before they get here).
    pub fn new(floor_millis: i64, ceiling_millis: i64) -> Self {
        let floor_millis = floor_millis.max(1);
        Self {
            floor_millis,
            ceiling_millis: ceiling_millis.max(floor_millis),
        }
    }

    /// How long progress may stand still, from the operation's run-time
    /// histogram of the tenant's last week (`(bucket, runs)` pairs): its
    /// p95 × [`HISTORY_MULTIPLE`], within the floor and the ceiling.
    pub fn threshold_millis(&self, week_run_times: &[(i64, i64)]) -> i64 {
        duration_buckets::quantile(week_run_times, 0.95)
            .map_or(self.floor_millis, |p95| {
                p95.saturating_mul(HISTORY_MULTIPLE)
            })
            .clamp(self.floor_millis, self.ceiling_millis)
    }

    /// How often the engine looks: a quarter of the floor, so a stall is
    /// flagged within 1.25 × its threshold, between 1 s and 30 s.
    pub fn check_interval_millis(&self) -> i64 {
        (self.floor_millis / 4).clamp(1_000, 30_000)
    }
}

/// A running run with a live lease whose progress stands still.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandingStill {
    /// When its progress last moved.
    pub progressed_at: Timestamp,
    pub threshold_millis: i64,
}

impl StandingStill {
    /// Whether it has stood still for longer than its threshold at `now`.
    pub fn is_stalled(&self, now: Timestamp) -> bool {
        self.idle_millis(now) > self.threshold_millis
    }

    pub fn idle_millis(&self, now: Timestamp) -> i64 {
        (now.0 - self.progressed_at.0).max(0) / 1_000
    }

    /// The notice's one line: "no progress for 3.1 min (stalled after 1.0 min)".
    pub fn summary(&self, now: Timestamp) -> String {
        format!(
            "no progress for {} (stalled after {})",
            format_millis(self.idle_millis(now)),
            format_millis(self.threshold_millis)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StallPolicy {
        StallPolicy::new(60_000, 3_600_000)
    }

    #[test]
    fn an_operation_without_history_gets_the_floor() {
        assert_eq!(policy().threshold_millis(&[]), 60_000);
    }

    #[test]
    fn the_threshold_is_twice_the_weeks_p95_within_the_bounds() {
        let p95_of = |millis: i64| vec![(duration_buckets::of(millis), 20)];
        // Quick runs: the floor.
        assert_eq!(policy().threshold_millis(&p95_of(500)), 60_000);
        // Ten-minute runs: twice their p95 (the bucket's upper bound).
        let ten_minutes = p95_of(600_000);
        let p95 = duration_buckets::quantile(&ten_minutes, 0.95).unwrap();
        assert!((600_000..=720_000).contains(&p95));
        assert_eq!(policy().threshold_millis(&ten_minutes), 2 * p95);
        // Five-hour runs: the ceiling.
        assert_eq!(policy().threshold_millis(&p95_of(18_000_000)), 3_600_000);
    }

    #[test]
    fn the_p95_ignores_the_slowest_twentieth() {
        // 95 runs of a second and 5 of an hour: the hour is an outlier.
        let week = vec![
            (duration_buckets::of(1_000), 95),
            (duration_buckets::of(3_600_000), 5),
        ];
        assert_eq!(policy().threshold_millis(&week), 60_000);
    }

    #[test]
    fn bounds_that_cross_meet_at_the_floor() {
        assert_eq!(
            StallPolicy::new(0, 10),
            StallPolicy {
                floor_millis: 1,
                ceiling_millis: 10
            }
        );
        assert_eq!(
            StallPolicy::new(20, 10),
            StallPolicy {
                floor_millis: 20,
                ceiling_millis: 20
            }
        );
    }

    #[test]
    fn the_check_interval_is_a_quarter_of_the_floor_within_bounds() {
        assert_eq!(policy().check_interval_millis(), 15_000);
        assert_eq!(
            StallPolicy::new(2_000, 2_000).check_interval_millis(),
            1_000
        );
        assert_eq!(
            StallPolicy::new(600_000, 600_000).check_interval_millis(),
            30_000
        );
    }

    #[test]
    fn a_run_is_stalled_only_past_its_threshold() {
        let still = StandingStill {
            progressed_at: Timestamp(1_000_000_000),
            threshold_millis: 60_000,
        };
        assert!(!still.is_stalled(Timestamp(1_000_000_000 + 60_000_000)));
        assert!(still.is_stalled(Timestamp(1_000_000_000 + 60_001_000)));
        // A clock behind the write is no stall.
        assert!(!still.is_stalled(Timestamp(0)));
        assert_eq!(
            still.summary(Timestamp(1_000_000_000 + 186_000_000)),
            "no progress for 3.1 min (stalled after 1.0 min)"
        );
    }
}
