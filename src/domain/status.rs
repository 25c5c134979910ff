use super::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The lifecycle of a run: `pending -> running -> terminal`, never backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Aborted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::CompletedWithErrors,
        RunStatus::Failed,
        RunStatus::Aborted,
    ];

    /// The statuses in which a run holds its idempotency key.
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Pending, RunStatus::Running];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed_with_errors",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == input)
            .ok_or_else(|| {
                ParseError::not_one_of("a run status", Self::ALL.into_iter().map(Self::as_str))
            })
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Pending | RunStatus::Running)
    }

    /// The one place that says which moves are legal: `pending -> running ->
    /// completed | completed_with_errors | failed | aborted`, and `pending ->
    /// aborted` (a queued run aborted before it started, our one extension
    /// of the spec). Nothing goes back; terminal states are final. The
    /// databases enforce the same moves (migrations/*/0007_lifecycle.sql).
    pub fn can_transition_to(self, next: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, next),
            (Pending, Running | Aborted)
                | (Running, Completed | CompletedWithErrors | Failed | Aborted)
        )
    }

    /// Statuses from which `next` may be reached.
    pub fn predecessors(next: RunStatus) -> Vec<RunStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_transition_to(next))
            .collect()
    }

    /// The status a finished run ends in, from what happened to its items:
    /// nothing failed -> completed; failures but nothing succeeded -> failed;
    /// otherwise completed_with_errors. (Skipped items are neither.) A run
    /// whose operation broke down fails, whatever its items did.
    pub fn for_outcome(counters: &super::Counters, broke_down: bool) -> RunStatus {
        if broke_down {
            RunStatus::Failed
        } else if counters.failed == 0 {
            RunStatus::Completed
        } else if counters.succeeded == 0 {
            RunStatus::Failed
        } else {
            RunStatus::CompletedWithErrors
        }
    }

    pub fn bucket(self) -> StatusBucket {
        match self {
            RunStatus::Pending => StatusBucket::Queued,
            RunStatus::Running => StatusBucket::Running,
            RunStatus::Completed => StatusBucket::Succeeded,
            RunStatus::CompletedWithErrors => StatusBucket::PartiallySucceeded,
            RunStatus::Failed | RunStatus::Aborted => StatusBucket::Failed,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for RunStatus {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

/// What an operator sees: statuses grouped the way people talk about runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusBucket {
    Queued,
    Running,
    Succeeded,
    PartiallySucceeded,
    Failed,
}

impl StatusBucket {
    pub const ALL: [StatusBucket; 5] = [
        StatusBucket::Queued,
        StatusBucket::Running,
        StatusBucket::Succeeded,
        StatusBucket::PartiallySucceeded,
        StatusBucket::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatusBucket::Queued => "queued",
            StatusBucket::Running => "running",
            StatusBucket::Succeeded => "succeeded",
            StatusBucket::PartiallySucceeded => "partially_succeeded",
            StatusBucket::Failed => "failed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StatusBucket::Queued => "Queued",
            StatusBucket::Running => "Running",
            StatusBucket::Succeeded => "Succeeded",
            StatusBucket::PartiallySucceeded => "Partially succeeded",
            StatusBucket::Failed => "Failed",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|bucket| bucket.as_str() == input)
            .ok_or_else(|| {
                ParseError::not_one_of("a status bucket", Self::ALL.into_iter().map(Self::as_str))
            })
    }

    pub fn statuses(self) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|status| status.bucket() == self)
            .collect()
    }
}

impl fmt::Display for StatusBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()).unwrap(), status);
        }
        assert!(RunStatus::parse("done").is_err());
    }

    #[test]
    fn never_moves_backwards_and_terminal_is_final() {
        use RunStatus::*;
        assert!(Pending.can_transition_to(Running));
        assert!(Running.can_transition_to(CompletedWithErrors));
        assert!(!Running.can_transition_to(Pending));
        assert!(!Pending.can_transition_to(Completed));
        assert!(
            !Pending.can_transition_to(Failed),
            "a run fails only once it ran"
        );
        assert!(Pending.can_transition_to(Aborted));
        assert!(
            !Running.can_transition_to(Running),
            "no move is no transition"
        );
        for terminal in [Completed, CompletedWithErrors, Failed, Aborted] {
            for next in RunStatus::ALL {
                assert!(!terminal.can_transition_to(next), "{terminal} -> {next}");
            }
        }
    }

    #[test]
    fn final_status_follows_the_outcome() {
        use super::super::Counters;
        let done = |succeeded, failed, skipped| Counters {
            total: 10,
            processed: succeeded + failed + skipped,
            succeeded,
            failed,
            skipped,
        };
        assert_eq!(
            RunStatus::for_outcome(&done(10, 0, 0), false),
            RunStatus::Completed
        );
        assert_eq!(
            RunStatus::for_outcome(&done(0, 0, 10), false),
            RunStatus::Completed
        );
        assert_eq!(
            RunStatus::for_outcome(&done(0, 0, 0), false),
            RunStatus::Completed
        );
        assert_eq!(
            RunStatus::for_outcome(&done(7, 3, 0), false),
            RunStatus::CompletedWithErrors
        );
        assert_eq!(
            RunStatus::for_outcome(&done(0, 4, 6), false),
            RunStatus::Failed
        );
        assert_eq!(
            RunStatus::for_outcome(&done(7, 0, 0), true),
            RunStatus::Failed
        );
    }

    #[test]
    fn buckets_follow_the_operator_mapping() {
        assert_eq!(RunStatus::Pending.bucket(), StatusBucket::Queued);
        assert_eq!(RunStatus::Completed.bucket(), StatusBucket::Succeeded);
        assert_eq!(
            RunStatus::CompletedWithErrors.bucket(),
            StatusBucket::PartiallySucceeded
        );
        assert_eq!(
            StatusBucket::Failed.statuses(),
            vec![RunStatus::Failed, RunStatus::Aborted]
        );
        let every_status: usize = StatusBucket::ALL.iter().map(|b| b.statuses().len()).sum();
        assert_eq!(every_status, RunStatus::ALL.len());
    }
}
