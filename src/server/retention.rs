//! Retention: how long each kind of record is kept once it is done with.
//! The policy (which kind, which cutoff, `0` = forever) lives here as pure
//! rules; `RetentionRepository::prune` (store/sql/repositories/retention.rs)
//! executes it, and the engine runs a pass every `prune_interval_secs`.

use crate::domain::{RunStatus, Timestamp};
use crate::server::config::Settings;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// How many days each kind is kept; `0` keeps it forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Ended `completed` runs, by `finished_at`.
    pub succeeded_runs_days: u64,
    /// Ended `completed_with_errors` runs.
    pub partial_runs_days: u64,
    /// Ended `failed` and `aborted` runs.
    pub failed_runs_days: u64,
    /// Read notifications, by `read_at`.
    pub read_notifications_days: u64,
    /// Unread notifications, by `created_at`.
    pub unread_notifications_days: u64,
    /// Acknowledged findings, by `acknowledged_at` (new ones stay).
    pub acknowledged_findings_days: u64,
    /// Audit entries, by `created_at`.
    pub audit_days: u64,
    /// Ended inventory syncs no kept run or finding refers to.
    pub unused_syncs_days: u64,
    /// The Insights rollups, by the hour their runs were queued in.
    pub rollups_days: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self::from_settings(&Settings::default())
    }
}

impl RetentionPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            succeeded_runs_days: s.retain_succeeded_runs_days,
            partial_runs_days: s.retain_partial_runs_days,
            failed_runs_days: s.retain_failed_runs_days,
            read_notifications_days: s.retain_read_notifications_days,
            unread_notifications_days: s.retain_unread_notifications_days,
            acknowledged_findings_days: s.retain_acknowledged_findings_days,
            audit_days: s.retain_audit_days,
            unused_syncs_days: s.retain_unused_syncs_days,
            rollups_days: s.retain_rollups_days,
        }
    }

    /// Keeps everything (every kind `0`); expired sessions still go.
    pub fn keep_forever() -> Self {
        Self {
            succeeded_runs_days: 0,
            partial_runs_days: 0,
            failed_runs_days: 0,
            read_notifications_days: 0,
            unread_notifications_days: 0,
            acknowledged_findings_days: 0,
            audit_days: 0,
            unused_syncs_days: 0,
            rollups_days: 0,
        }
    }

    /// The days a run of this status is kept after it ended; `None` for an
    /// active run, which is never pruned however old.
    pub fn run_days(&self, status: RunStatus) -> Option<u64> {
        match status {
            RunStatus::Pending | RunStatus::Running => None,
            RunStatus::Completed => Some(self.succeeded_runs_days),
            RunStatus::CompletedWithErrors => Some(self.partial_runs_days),
            RunStatus::Failed | RunStatus::Aborted => Some(self.failed_runs_days),
        }
    }

    /// The cutoffs at `now`: a record of a kind older than its cutoff goes.
    pub fn cutoffs(&self, now: Timestamp) -> Cutoffs {
        Cutoffs {
            runs: RunStatus::ALL
                .iter()
                .filter_map(|&status| Some((status, cutoff(self.run_days(status)?, now)?)))
                .collect(),
            read_notifications: cutoff(self.read_notifications_days, now),
            unread_notifications: cutoff(self.unread_notifications_days, now),
            acknowledged_findings: cutoff(self.acknowledged_findings_days, now),
            audit: cutoff(self.audit_days, now),
            unused_syncs: cutoff(self.unused_syncs_days, now),
            rollups: cutoff(self.rollups_days, now),
            sessions: now,
        }
    }
}

/// `days` before `now`, or `None` for `0` (kept forever).
pub fn cutoff(days: u64, now: Timestamp) -> Option<Timestamp> {
    if days == 0 {
        return None;
    }
    let span = i64::try_from(days)
        .unwrap_or(i64::MAX)
        .saturating_mul(MICROS_PER_DAY);
    Some(Timestamp(now.0.saturating_sub(span)))
}

/// The policy at one instant: records strictly older than their kind's
/// cutoff go; `None` keeps the kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// Terminal statuses only, each with its cutoff.
    pub runs: Vec<(RunStatus, Timestamp)>,
    pub read_notifications: Option<Timestamp>,
    pub unread_notifications: Option<Timestamp>,
    pub acknowledged_findings: Option<Timestamp>,
    pub audit: Option<Timestamp>,
    pub unused_syncs: Option<Timestamp>,
    pub rollups: Option<Timestamp>,
    /// Sessions whose expiry passed go at once.
    pub sessions: Timestamp,
}

/// What a prune removed (or, dry, would remove), per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub runs: u64,
    pub notifications: u64,
    pub findings: u64,
    pub audit_entries: u64,
    pub inventory_syncs: u64,
    /// Rows of the three rollup tables.
    pub rollups: u64,
    pub sessions: u64,
}

impl PruneReport {
    /// One `(kind, count)` per kind, in the order `opshub prune` prints them.
    pub fn kinds(&self) -> [(&'static str, u64); 7] {
        [
            ("runs", self.runs),
            ("notifications", self.notifications),
            ("findings", self.findings),
            ("audit_entries", self.audit_entries),
            ("inventory_syncs", self.inventory_syncs),
            ("rollups", self.rollups),
            ("sessions", self.sessions),
        ]
    }

    pub fn total(&self) -> u64 {
        self.kinds().iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000 * MICROS_PER_DAY);

    #[test]
    fn defaults_are_what_the_readme_promises() {
        let p = RetentionPolicy::default();
        assert_eq!(p.run_days(RunStatus::Completed), Some(90));
        assert_eq!(p.run_days(RunStatus::CompletedWithErrors), Some(180));
        assert_eq!(p.run_days(RunStatus::Failed), Some(180));
        assert_eq!(p.run_days(RunStatus::Aborted), Some(180));
        assert_eq!(
            (p.read_notifications_days, p.unread_notifications_days),
            (30, 90)
        );
        assert_eq!(p.acknowledged_findings_days, 180);
        assert_eq!(p.audit_days, 365);
        assert_eq!(p.unused_syncs_days, 90);
        assert_eq!(p.rollups_days, 400);
    }

    #[test]
    fn active_runs_have_no_cutoff() {
        let cutoffs = RetentionPolicy::default().cutoffs(NOW);
        assert_eq!(cutoffs.runs.len(), 4);
        assert!(cutoffs.runs.iter().all(|(status, _)| status.is_terminal()));
        assert_eq!(
            RetentionPolicy::default().run_days(RunStatus::Running),
            None
        );
    }

    #[test]
    fn a_cutoff_is_days_before_now_and_zero_keeps_forever() {
        assert_eq!(cutoff(90, NOW), Some(Timestamp(910 * MICROS_PER_DAY)));
        assert_eq!(cutoff(0, NOW), None);
        let forever = RetentionPolicy::keep_forever().cutoffs(NOW);
        assert!(forever.runs.is_empty());
        assert_eq!(forever.audit, None);
        assert_eq!(forever.sessions, NOW);
        // Far beyond any date: saturates instead of overflowing.
        assert!(cutoff(u64::MAX, NOW).unwrap() < Timestamp(0));
    }

    #[test]
    fn a_report_totals_its_kinds() {
        let report = PruneReport {
            runs: 3,
            sessions: 2,
            ..Default::default()
        };
        assert_eq!(report.total(), 5);
        assert_eq!(report.kinds()[0], ("runs", 3));
    }
}
