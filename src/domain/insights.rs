//! Insights: how a tenant's operations behave over time, read from rollups
//! of ended runs (per tenant, UTC hour queued, operation and outcome) that
//! the engine writes in the transaction ending each run. Here are the pure
//! parts: the windows and their buckets, the duration histogram the rollups
//! keep, and how rollup rows become the page's series.

use super::{OperationKind, ParseError, ReasonCode, RunStatus, Timestamp};
use serde::{Deserialize, Serialize};

pub const MICROS_PER_HOUR: i64 = 3_600 * 1_000_000;

/// The span the Insights page shows, ending now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsightsWindow {
    #[default]
    Day,
    Week,
    Month,
    Quarter,
}

impl InsightsWindow {
    pub const ALL: [InsightsWindow; 4] = [
        InsightsWindow::Day,
        InsightsWindow::Week,
        InsightsWindow::Month,
        InsightsWindow::Quarter,
    ];

    /// The name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            InsightsWindow::Day => "24h",
            InsightsWindow::Week => "7d",
            InsightsWindow::Month => "30d",
            InsightsWindow::Quarter => "90d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            InsightsWindow::Day => "24 hours",
            InsightsWindow::Week => "7 days",
            InsightsWindow::Month => "30 days",
            InsightsWindow::Quarter => "90 days",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|window| window.as_str() == input)
            .ok_or_else(|| ParseError("`window` must be one of 24h, 7d, 30d, 90d".into()))
    }

    /// Hours per chart bucket: hourly for a day, six-hourly for a week,
    /// daily beyond (so every chart has 24 to 90 bars).
    pub fn bucket_hours(self) -> i64 {
        match self {
            InsightsWindow::Day => 1,
            InsightsWindow::Week => 6,
            InsightsWindow::Month | InsightsWindow::Quarter => 24,
        }
    }

    pub fn bucket_count(self) -> i64 {
        match self {
            InsightsWindow::Day => 24,
            InsightsWindow::Week => 28,
            InsightsWindow::Month => 30,
            InsightsWindow::Quarter => 90,
        }
    }

    /// A bucket's name on axes and in tables (UTC): `12-05 09:00` for
    /// hours, `12-05` for days.
    pub fn bucket_label(self, start: Timestamp) -> String {
        let (_, month, day, hour) = start.utc_date_hour();
        if self.bucket_hours() % 24 == 0 {
            format!("{month:02}-{day:02}")
        } else {
            format!("{month:02}-{day:02} {hour:02}:00")
        }
    }

    /// The start of each bucket, oldest first; the last one holds `now`.
    /// Buckets are aligned to UTC (a day bucket is a UTC day).
    pub fn bucket_starts(self, now: Timestamp) -> Vec<Timestamp> {
        let width = self.bucket_hours() * MICROS_PER_HOUR;
        let current = now.0.div_euclid(width) * width;
        (0..self.bucket_count())
            .rev()
            .map(|back| Timestamp(current - back * width))
            .collect()
    }
}

/// The two durations of a run the rollups keep apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// From queued to first claimed.
    Queue,
    /// From first claimed to ended.
    Run,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Run => "run",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "queue" => Ok(Phase::Queue),
            "run" => Ok(Phase::Run),
            _ => Err(ParseError::not_one_of("a phase", ["queue", "run"])),
        }
    }
}

/// Durations are kept as a histogram of four buckets per doubling of
/// milliseconds: a percentile read from it is the upper bound of its
/// bucket, at most 19% above the exact figure, and the rollups stay a few
/// rows an hour however many runs end.
pub mod duration_buckets {
    /// The bucket of a duration: ⌊4·log2(ms + 1)⌋.
    pub fn of(millis: i64) -> i64 {
        let millis = millis.max(0) as f64;
        ((millis + 1.0).log2() * 4.0).floor() as i64
    }

    /// The longest duration the bucket holds, in milliseconds.
    pub fn upper_millis(bucket: i64) -> i64 {
        let above = 2f64.powf((bucket + 1) as f64 / 4.0) - 1.0;
        // The last whole millisecond still below the next bucket.
        (above.ceil() as i64 - 1).max(0)
    }

    /// The `quantile` (0 < q ≤ 1) of a histogram given as (bucket, count)
    /// pairs in any order; `None` when it is empty.
    pub fn quantile(histogram: &[(i64, i64)], quantile: f64) -> Option<i64> {
        let mut sorted: Vec<(i64, i64)> = histogram.to_vec();
        sorted.sort_unstable();
        let total: i64 = sorted.iter().map(|(_, n)| n).sum();
        if total <= 0 {
            return None;
        }
        let rank = ((quantile * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        sorted.into_iter().find_map(|(bucket, n)| {
            seen += n;
            (seen >= rank).then(|| upper_millis(bucket))
        })
    }
}

/// One rollup row: the runs of one operation queued in one hour that ended
/// with one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRollup {
    pub hour: Timestamp,
    pub operation: OperationKind,
    pub outcome: RunStatus,
    pub runs: i64,
    pub items_processed: i64,
    pub items_succeeded: i64,
    pub items_failed: i64,
    pub items_skipped: i64,
    pub started_runs: i64,
    pub queue_millis: i64,
    pub run_millis: i64,
}

/// How many runs of one operation queued in one hour fell in one duration
/// bucket of one phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationRollup {
    pub hour: Timestamp,
    pub operation: OperationKind,
    pub phase: Phase,
    pub bucket: i64,
    pub runs: i64,
}

/// How many failures of one reason code the runs of one operation queued
/// in one hour recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonRollup {
    pub hour: Timestamp,
    pub operation: OperationKind,
    pub reason_code: ReasonCode,
    pub failures: i64,
}

/// A tenant's rollup rows of a window, as the store reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollups {
    pub outcomes: Vec<OutcomeRollup>,
    pub durations: Vec<DurationRollup>,
    pub reasons: Vec<ReasonRollup>,
}

impl Rollups {
    /// The run-time histogram of all these rows: `(bucket, runs)` pairs,
    /// what `RunComparison` and `StallPolicy` read a week of.
    pub fn run_times(&self) -> Vec<(i64, i64)> {
        self.durations
            .iter()
            .filter(|row| row.phase == Phase::Run)
            .map(|row| (row.bucket, row.runs))
            .collect()
    }
}

/// Where "this week" starts for the run comparison and the stall
/// threshold: seven days before `now`.
pub fn a_week_before(now: Timestamp) -> Timestamp {
    Timestamp(now.0 - 7 * 24 * MICROS_PER_HOUR)
}

/// Ended runs by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub completed: i64,
    pub completed_with_errors: i64,
    pub failed: i64,
    pub aborted: i64,
}

impl OutcomeCounts {
    pub fn total(&self) -> i64 {
        self.completed + self.completed_with_errors + self.failed + self.aborted
    }

    pub fn get(&self, outcome: RunStatus) -> i64 {
        match outcome {
            RunStatus::Completed => self.completed,
            RunStatus::CompletedWithErrors => self.completed_with_errors,
            RunStatus::Failed => self.failed,
            RunStatus::Aborted => self.aborted,
            RunStatus::Pending | RunStatus::Running => 0,
        }
    }

    fn add(&mut self, outcome: RunStatus, runs: i64) {
        match outcome {
            RunStatus::Completed => self.completed += runs,
            RunStatus::CompletedWithErrors => self.completed_with_errors += runs,
            RunStatus::Failed => self.failed += runs,
            RunStatus::Aborted => self.aborted += runs,
            RunStatus::Pending | RunStatus::Running => {}
        }
    }
}

/// The outcomes a run can end with, in the order charts stack them.
pub const OUTCOMES: [RunStatus; 4] = [
    RunStatus::Completed,
    RunStatus::CompletedWithErrors,
    RunStatus::Failed,
    RunStatus::Aborted,
];

/// p50 and p95 of a duration, in milliseconds; `None` without runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_millis: Option<i64>,
    pub p95_millis: Option<i64>,
}

impl Percentiles {
    fn of(histogram: &[(i64, i64)]) -> Self {
        Self {
            p50_millis: duration_buckets::quantile(histogram, 0.5),
            p95_millis: duration_buckets::quantile(histogram, 0.95),
        }
    }
}

/// The figures of one chart bucket (or of the whole window).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InsightFigures {
    pub outcomes: OutcomeCounts,
    pub items_processed: i64,
    /// Summed run time of the runs that started, for items per second.
    pub run_millis: i64,
    pub queue: Percentiles,
    pub run: Percentiles,
}

impl InsightFigures {
    /// Items per second of run time; `None` without run time.
    pub fn items_per_second(&self) -> Option<f64> {
        (self.run_millis > 0)
            .then(|| self.items_processed as f64 * 1_000.0 / self.run_millis as f64)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsightBucket {
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    pub figures: InsightFigures,
}

/// One failure reason code: its total over the window and per bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonTrend {
    pub reason_code: ReasonCode,
    pub total: i64,
    pub per_bucket: Vec<i64>,
}

/// How many reason codes the page ranks.
pub const TOP_REASONS: usize = 5;

/// A window of a tenant's runs, ready to chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    pub window: InsightsWindow,
    pub operation: Option<OperationKind>,
    pub buckets: Vec<InsightBucket>,
    pub totals: InsightFigures,
    /// The most frequent failure reason codes, most frequent first.
    pub reasons: Vec<ReasonTrend>,
}

impl Insights {
    /// The window's first bucket's start and last bucket's (exclusive) end.
    pub fn span(&self) -> (Timestamp, Timestamp) {
        let start = self.buckets.first().map_or(Timestamp(0), |b| b.start);
        let end = self.buckets.last().map_or(Timestamp(0), |b| b.end);
        (start, end)
    }

    /// Folds rollup rows into the window's buckets. Rows outside the window
    /// or of another operation (when one is chosen) are ignored.
    pub fn from_rollups(
        window: InsightsWindow,
        operation: Option<OperationKind>,
        now: Timestamp,
        rollups: &Rollups,
    ) -> Self {
        let starts = window.bucket_starts(now);
        let width = window.bucket_hours() * MICROS_PER_HOUR;
        let first = starts[0].0;
        let count = starts.len();
        let index_of = |hour: Timestamp, of: OperationKind| -> Option<usize> {
            if operation.is_some_and(|chosen| chosen != of) || hour.0 < first {
                return None;
            }
            let index = ((hour.0 - first) / width) as usize;
            (index < count).then_some(index)
        };
        let mut buckets: Vec<InsightBucket> = starts
            .iter()
            .map(|start| InsightBucket {
                start: *start,
                end: Timestamp(start.0 + width),
                figures: InsightFigures::default(),
            })
            .collect();
        let mut totals = InsightFigures::default();
        for row in &rollups.outcomes {
            let Some(index) = index_of(row.hour, row.operation) else {
                continue;
            };
            for figures in [&mut buckets[index].figures, &mut totals] {
                figures.outcomes.add(row.outcome, row.runs);
                figures.items_processed += row.items_processed;
                figures.run_millis += row.run_millis;
            }
        }
        let mut histograms = vec![(Vec::new(), Vec::new()); count];
        let mut all_queue = Vec::new();
        let mut all_run = Vec::new();
        for row in &rollups.durations {
            let Some(index) = index_of(row.hour, row.operation) else {
                continue;
            };
            let (queue, run) = &mut histograms[index];
            let (bucket_list, total_list) = match row.phase {
                Phase::Queue => (queue, &mut all_queue),
                Phase::Run => (run, &mut all_run),
            };
            bucket_list.push((row.bucket, row.runs));
            total_list.push((row.bucket, row.runs));
        }
        for (bucket, (queue, run)) in buckets.iter_mut().zip(&histograms) {
            bucket.figures.queue = Percentiles::of(queue);
            bucket.figures.run = Percentiles::of(run);
        }
        totals.queue = Percentiles::of(&all_queue);
        totals.run = Percentiles::of(&all_run);

        let mut reasons: Vec<ReasonTrend> = Vec::new();
        for row in &rollups.reasons {
            let Some(index) = index_of(row.hour, row.operation) else {
                continue;
            };
            let trend = match reasons
                .iter_mut()
                .find(|t| t.reason_code == row.reason_code)
            {
                Some(trend) => trend,
                None => {
                    reasons.push(ReasonTrend {
                        reason_code: row.reason_code,
                        total: 0,
                        per_bucket: vec![0; count],
                    });
                    reasons.last_mut().expect("just pushed")
                }
            };
            trend.total += row.failures;
            trend.per_bucket[index] += row.failures;
        }
        reasons.sort_by_key(|t| (std::cmp::Reverse(t.total), t.reason_code.as_str()));
        reasons.truncate(TOP_REASONS);
        Insights {
            window,
            operation,
            buckets,
            totals,
            reasons,
        }
    }
}

/// How one run's run time compares with its operation's recent runs in the
/// tenant ("3.2× slower than this operation's p95 this week").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunComparison {
    /// The run's run time so far (running) or in all (ended).
    pub run_millis: i64,
    pub p50_millis: i64,
    pub p95_millis: i64,
    /// How many ended runs the percentiles come from.
    pub sample_runs: i64,
}

impl RunComparison {
    /// The percentiles of a week's run-time histogram; `None` without runs.
    pub fn against(run_millis: i64, week: &[(i64, i64)]) -> Option<Self> {
        let sample_runs = week.iter().map(|(_, n)| n).sum();
        Some(Self {
            run_millis,
            p50_millis: duration_buckets::quantile(week, 0.5)?,
            p95_millis: duration_buckets::quantile(week, 0.95)?,
            sample_runs,
        })
    }

    /// One sentence for the run page.
    pub fn sentence(&self) -> String {
        let runs = match self.sample_runs {
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        };
        let p95 = format_millis(self.p95_millis);
        let p50 = format_millis(self.p50_millis);
        if self.run_millis > self.p95_millis && self.p95_millis > 0 {
            let ratio = self.run_millis as f64 / self.p95_millis as f64;
            format!("{ratio:.1}× slower than this operation's p95 this week ({p95}, {runs})")
        } else if self.run_millis > self.p50_millis {
            format!(
                "Slower than this operation's median this week ({p50}) but within its p95 ({p95}, {runs})"
            )
        } else {
            format!(
                "Within this operation's usual time this week (median {p50}, p95 {p95}, {runs})"
            )
        }
    }
}

/// `850 ms`, `12.4 s`, `3.2 min`, `1.5 h`.
pub fn format_millis(millis: i64) -> String {
    match millis {
        m if m < 1_000 => format!("{m} ms"),
        m if m < 60_000 => format!("{:.1} s", m as f64 / 1_000.0),
        m if m < 3_600_000 => format!("{:.1} min", m as f64 / 60_000.0),
        m => format!("{:.1} h", m as f64 / 3_600_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_hold_what_they_claim() {
        assert_eq!(duration_buckets::of(0), 0);
        assert_eq!(duration_buckets::of(-5), 0);
        for millis in [1, 2, 3, 7, 100, 999, 1_000, 65_535, 3_600_000, 86_400_000] {
            let bucket = duration_buckets::of(millis);
            let upper = duration_buckets::upper_millis(bucket);
            assert!(
                upper >= millis,
                "{millis} ms is in bucket {bucket} up to {upper}"
            );
            assert_eq!(duration_buckets::of(upper), bucket, "{millis}");
            assert!(duration_buckets::of(upper + 1) > bucket, "{millis}");
            // The bound is never more than 19% (2^¼) above the duration.
            assert!(
                upper as f64 <= (millis as f64 + 1.0) * 1.19 + 1.0,
                "{millis}"
            );
        }
    }

    #[test]
    fn quantiles_read_the_histogram_by_rank() {
        assert_eq!(duration_buckets::quantile(&[], 0.5), None);
        let b = duration_buckets::of;
        let up = |ms| duration_buckets::upper_millis(b(ms));
        // 90 fast runs, 10 slow ones, given out of order.
        let histogram = [(b(60_000), 10), (b(100), 90)];
        assert_eq!(duration_buckets::quantile(&histogram, 0.5), Some(up(100)));
        assert_eq!(duration_buckets::quantile(&histogram, 0.9), Some(up(100)));
        assert_eq!(
            duration_buckets::quantile(&histogram, 0.95),
            Some(up(60_000))
        );
        assert_eq!(
            duration_buckets::quantile(&histogram, 1.0),
            Some(up(60_000))
        );
    }

    #[test]
    fn windows_end_in_the_bucket_of_now_aligned_to_utc() {
        let now = Timestamp::start_of_day("2026-12-05")
            .unwrap()
            .plus_millis(13 * 3_600_000 + 1_234);
        let day = InsightsWindow::Day.bucket_starts(now);
        assert_eq!(day.len(), 24);
        assert_eq!(day[23].to_rfc3339(), "2026-12-05T13:00:00Z");
        assert_eq!(day[0].to_rfc3339(), "2026-12-04T14:00:00Z");
        let week = InsightsWindow::Week.bucket_starts(now);
        assert_eq!(week[27].to_rfc3339(), "2026-12-05T12:00:00Z");
        let quarter = InsightsWindow::Quarter.bucket_starts(now);
        assert_eq!(quarter.len(), 90);
        assert_eq!(quarter[89].to_rfc3339(), "2026-12-05T00:00:00Z");
        for window in InsightsWindow::ALL {
            assert_eq!(InsightsWindow::parse(window.as_str()), Ok(window));
        }
        assert!(InsightsWindow::parse("1y").is_err());
    }

    fn outcome(
        hour: Timestamp,
        operation: OperationKind,
        outcome: RunStatus,
        runs: i64,
    ) -> OutcomeRollup {
        OutcomeRollup {
            hour,
            operation,
            outcome,
            runs,
            items_processed: runs * 10,
            items_succeeded: runs * 10,
            items_failed: 0,
            items_skipped: 0,
            started_runs: runs,
            queue_millis: runs * 5,
            run_millis: runs * 2_000,
        }
    }

    #[test]
    fn rollups_fold_into_the_window_s_buckets() {
        let now = Timestamp::start_of_day("2026-12-05")
            .unwrap()
            .plus_millis(13 * 3_600_000);
        let hour = |back: i64| Timestamp(now.0 - back * MICROS_PER_HOUR);
        let drift = OperationKind::DriftGenerate;
        let add = OperationKind::BackupSetAddPolicies;
        let rollups = Rollups {
            outcomes: vec![
                outcome(hour(0), drift, RunStatus::Completed, 3),
                outcome(hour(0), drift, RunStatus::Failed, 1),
                outcome(hour(2), add, RunStatus::CompletedWithErrors, 2),
                // Outside a day's window.
                outcome(hour(30), drift, RunStatus::Completed, 7),
            ],
            durations: vec![
                DurationRollup {
                    hour: hour(0),
                    operation: drift,
                    phase: Phase::Run,
                    bucket: duration_buckets::of(2_000),
                    runs: 4,
                },
                DurationRollup {
                    hour: hour(2),
                    operation: add,
                    phase: Phase::Queue,
                    bucket: duration_buckets::of(5),
                    runs: 2,
                },
            ],
            reasons: vec![
                ReasonRollup {
                    hour: hour(0),
                    operation: drift,
                    reason_code: ReasonCode::Timeout,
                    failures: 2,
                },
                ReasonRollup {
                    hour: hour(2),
                    operation: add,
                    reason_code: ReasonCode::PolicyNotFound,
                    failures: 5,
                },
            ],
        };
        let all = Insights::from_rollups(InsightsWindow::Day, None, now, &rollups);
        assert_eq!(all.buckets.len(), 24);
        assert_eq!(all.totals.outcomes.total(), 6);
        let last = &all.buckets[23].figures;
        assert_eq!((last.outcomes.completed, last.outcomes.failed), (3, 1));
        assert_eq!(
            last.run.p50_millis,
            Some(duration_buckets::upper_millis(duration_buckets::of(2_000)))
        );
        assert_eq!(all.buckets[21].figures.outcomes.completed_with_errors, 2);
        assert_eq!(last.items_per_second(), Some(5.0));
        assert_eq!(
            all.reasons
                .iter()
                .map(|r| (r.reason_code, r.total))
                .collect::<Vec<_>>(),
            vec![(ReasonCode::PolicyNotFound, 5), (ReasonCode::Timeout, 2)]
        );
        assert_eq!(all.reasons[1].per_bucket[23], 2);

        let drift_only = Insights::from_rollups(InsightsWindow::Day, Some(drift), now, &rollups);
        assert_eq!(drift_only.totals.outcomes.total(), 4);
        assert_eq!(drift_only.totals.queue, Percentiles::default());
        assert_eq!(drift_only.reasons.len(), 1);

        let month = Insights::from_rollups(InsightsWindow::Month, None, now, &rollups);
        assert_eq!(month.totals.outcomes.total(), 13);
    }

    #[test]
    fn a_run_is_compared_with_its_operation_s_week() {
        let b = duration_buckets::of;
        let week = [(b(1_000), 90), (b(10_000), 10)];
        let slow = RunComparison::against(38_000, &week).unwrap();
        assert_eq!(slow.sample_runs, 100);
        assert!(
            slow.sentence()
                .starts_with("3.3× slower than this operation's p95 this week"),
            "{}",
            slow.sentence()
        );
        let usual = RunComparison::against(900, &week).unwrap();
        assert!(usual
            .sentence()
            .starts_with("Within this operation's usual time"));
        assert_eq!(RunComparison::against(900, &[]), None);
    }
}
