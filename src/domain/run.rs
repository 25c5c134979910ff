use super::{
    AuditLogId, FailureEntry, FailureKind, OperationKind, ParseError, ReasonCode, RunId, RunStatus,
    StatusBucket, TenantId, Timestamp, UserId, MAX_STORED_FAILURES,
};
use serde::{Deserialize, Serialize};

/// Progress of a run. `processed = succeeded + failed + skipped <= total`
/// holds at every moment (the database CHECKs it too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub total: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counters {
    pub fn is_consistent(&self) -> bool {
        self.processed == self.succeeded + self.failed + self.skipped
            && self.processed <= self.total
            && [self.total, self.succeeded, self.failed, self.skipped]
                .iter()
                .all(|n| *n >= 0)
    }

    /// Counts one processed item: `None` succeeded, an entry failed or was
    /// skipped. The entry is kept while fewer than `MAX_STORED_FAILURES`
    /// are (the counters count every one).
    pub fn record_item(&mut self, failures: &mut Vec<FailureEntry>, entry: Option<FailureEntry>) {
        self.processed += 1;
        let Some(entry) = entry else {
            self.succeeded += 1;
            return;
        };
        match entry.kind {
            FailureKind::Failed => self.failed += 1,
            FailureKind::Skipped => self.skipped += 1,
        }
        if failures.len() < MAX_STORED_FAILURES {
            failures.push(entry);
        }
    }

    /// Whole percent done, for progress bars.
    pub fn percent(&self) -> i64 {
        if self.total == 0 {
            0
        } else {
            self.processed * 100 / self.total
        }
    }
}

/// Seconds until `remaining` items are done at the rate of `items` done in
/// `elapsed_millis`, rounded up; `None` until there is a rate.
pub fn eta_seconds(remaining: i64, items: i64, elapsed_millis: i64) -> Option<i64> {
    if remaining <= 0 || items <= 0 || elapsed_millis <= 0 {
        return None;
    }
    let millis = i128::from(remaining) * i128::from(elapsed_millis) / i128::from(items);
    i64::try_from((millis + 999) / 1_000).ok()
}

/// A run as the hub lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub operation: OperationKind,
    pub status: RunStatus,
    pub counters: Counters,
    pub initiator_id: UserId,
    pub initiator_name: String,
    /// None for a run started without one (never joined).
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Since when the engine has flagged it stalled (see `StallPolicy`);
    /// kept when a run ends stalled, so read `stalled_since`.
    pub stalled_at: Option<Timestamp>,
}

impl RunSummary {
    pub fn bucket(&self) -> StatusBucket {
        self.status.bucket()
    }

    /// When a running run was flagged stalled; `None` once it moves or ends.
    pub fn stalled_since(&self) -> Option<Timestamp> {
        self.stalled_at
            .filter(|_| self.status == RunStatus::Running)
    }
}

/// Every field of a run, for its detail page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    /// The spec's `item_ids` object as stored: read it with
    /// `RunScope::parse` (a row another program wrote may not parse).
    pub item_ids: serde_json::Value,
    /// The kept entries (a null `failures` reads as none).
    pub failures: Vec<FailureEntry>,
    pub audit_log_id: Option<AuditLogId>,
    pub updated_at: Timestamp,
    pub attempt: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub heartbeat_at: Option<Timestamp>,
    pub cancel_requested_at: Option<Timestamp>,
    /// The run whose failed items this run retries.
    pub retry_of: Option<RunId>,
}

/// A start that found this run active and joined it instead of starting another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJoin {
    pub user_id: UserId,
    pub user_name: String,
    pub at: Timestamp,
}

/// A run-level failure (the operation broke down, its worker was lost) is
/// always kept: it takes the last place when the list is full.
pub fn record_run_failure(failures: &mut Vec<FailureEntry>, entry: FailureEntry) {
    failures.truncate(MAX_STORED_FAILURES - 1);
    failures.push(entry);
}

/// What rescue does with a running run whose worker stopped renewing its
/// lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostLease {
    /// It stays `running`; another worker takes it over as attempt + 1.
    Release,
    /// Its abort had been requested: it ends `aborted`.
    Abort,
    /// Out of attempts: it ends `failed` with a `worker_lost` failure.
    Fail,
}

impl LostLease {
    pub fn decide(abort_requested: bool, attempt: i64, max_attempts: i64) -> LostLease {
        if abort_requested {
            LostLease::Abort
        } else if attempt < max_attempts {
            LostLease::Release
        } else {
            LostLease::Fail
        }
    }

    /// The failure entry a run lost this way ends with, if any.
    pub fn failure(self, attempts: i64) -> Option<FailureEntry> {
        (self == LostLease::Fail).then(|| {
            FailureEntry::failed(
                None,
                ReasonCode::WorkerLost,
                &format!(
                    "the run's worker stopped renewing its lease on each of {attempts} attempts"
                ),
            )
        })
    }
}

/// Why an attempt at a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// The run ended in this status.
    Ended(RunStatus),
    /// Its worker stopped renewing the lease; another took over.
    LeaseExpired,
}

impl AttemptEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Ended(status) => status.as_str(),
            AttemptEnd::LeaseExpired => "lease_expired",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "lease_expired" => Ok(AttemptEnd::LeaseExpired),
            other => RunStatus::parse(other).map(AttemptEnd::Ended),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AttemptEnd::Ended(status) => status.bucket().label(),
            AttemptEnd::LeaseExpired => "Worker lost (lease expired)",
        }
    }
}

impl TryFrom<String> for AttemptEnd {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// One worker's go at a run (the run page lists them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAttempt {
    pub attempt: i64,
    pub worker: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end: Option<AttemptEnd>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eta_needs_a_rate_and_work_left() {
        // 100 items in 10 s: 50 more take 5 s.
        assert_eq!(eta_seconds(50, 100, 10_000), Some(5));
        assert_eq!(eta_seconds(1, 3, 1_000), Some(1), "rounded up");
        assert_eq!(eta_seconds(0, 100, 10_000), None);
        assert_eq!(eta_seconds(50, 0, 10_000), None);
        assert_eq!(eta_seconds(50, 100, 0), None);
        assert!(eta_seconds(i64::MAX, 1, i64::MAX).is_none(), "no overflow");
    }

    #[test]
    fn counters_must_add_up() {
        let ok = Counters {
            total: 10,
            processed: 6,
            succeeded: 3,
            failed: 2,
            skipped: 1,
        };
        assert!(ok.is_consistent());
        assert_eq!(ok.percent(), 60);
        assert!(!Counters { processed: 5, ..ok }.is_consistent());
        assert!(!Counters { total: 5, ..ok }.is_consistent());
    }

    #[test]
    fn items_move_counters_and_keep_failures_up_to_the_cap() {
        let mut counters = Counters {
            total: MAX_STORED_FAILURES as i64 + 3,
            ..Counters::default()
        };
        let mut failures = Vec::new();
        counters.record_item(&mut failures, None);
        counters.record_item(
            &mut failures,
            Some(FailureEntry::skipped(
                Some("a".into()),
                ReasonCode::AlreadyPresent,
                "there",
            )),
        );
        for n in 0..MAX_STORED_FAILURES {
            let entry =
                FailureEntry::failed(Some(n.to_string()), ReasonCode::InternalError, "broke");
            counters.record_item(&mut failures, Some(entry));
        }
        assert_eq!(
            (counters.succeeded, counters.skipped, counters.failed),
            (1, 1, MAX_STORED_FAILURES as i64)
        );
        assert!(counters.is_consistent());
        assert_eq!(failures.len(), MAX_STORED_FAILURES);
        assert_eq!(
            failures[1].kind,
            FailureKind::Failed,
            "the skipped entry came first"
        );

        let lost = LostLease::Fail.failure(3).unwrap();
        record_run_failure(&mut failures, lost.clone());
        assert_eq!(
            (failures.len(), failures.last()),
            (MAX_STORED_FAILURES, Some(&lost))
        );
    }

    #[test]
    fn a_lost_lease_releases_while_attempts_remain() {
        assert_eq!(LostLease::decide(false, 1, 3), LostLease::Release);
        assert_eq!(LostLease::decide(false, 3, 3), LostLease::Fail);
        assert_eq!(LostLease::decide(true, 1, 3), LostLease::Abort);
        assert_eq!(LostLease::Release.failure(1), None);
        assert_eq!(
            LostLease::Fail.failure(2).unwrap().reason_code,
            ReasonCode::WorkerLost
        );
    }

    #[test]
    fn attempt_ends_round_trip_through_text() {
        for end in RunStatus::ALL
            .into_iter()
            .map(AttemptEnd::Ended)
            .chain([AttemptEnd::LeaseExpired])
        {
            assert_eq!(AttemptEnd::parse(end.as_str()), Ok(end));
        }
        assert!(AttemptEnd::parse("lost").is_err());
    }
}
