use super::finding::text_enum;
use super::{
    failure_counts, Counters, FailureEntry, NotificationId, OperationKind, ParseError, RunId,
    RunStatus, StatusBucket, TenantId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    RunQueued,
    RunCompleted,
}

text_enum!(NotificationKind { RunQueued => "run_queued", RunCompleted => "run_completed" });

/// What a notification says about a run; stored as the row's JSON payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunNotice {
    pub run_id: RunId,
    pub operation: OperationKind,
    pub bucket: StatusBucket,
    pub counters: Counters,
    /// Sanitised, short; absent when nothing failed.
    pub error_summary: Option<String>,
    /// Path of the run detail page, e.g. `/t/acme/operations/<id>`.
    pub link: String,
}

impl RunNotice {
    /// The "completed" notice of a run that reached `status`.
    pub fn finished(
        run_id: RunId,
        operation: OperationKind,
        status: RunStatus,
        counters: Counters,
        failures: &[FailureEntry],
        link: String,
    ) -> Self {
        Self {
            run_id,
            operation,
            bucket: status.bucket(),
            counters,
            error_summary: error_summary(status, &counters, failures),
            link,
        }
    }
}

/// One line on what went wrong, built only from counts and reason codes
/// (never from reasons' text), e.g. `3 failed: policy_not_found ×2, timeout ×1`.
fn error_summary(
    status: RunStatus,
    counters: &Counters,
    failures: &[FailureEntry],
) -> Option<String> {
    let listed = failure_counts(failures)
        .iter()
        .map(|(code, n)| format!("{} ×{n}", code.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    match (status, counters.failed, listed.is_empty()) {
        (RunStatus::Aborted, _, _) => Some(format!(
            "aborted after {} of {} items",
            counters.processed, counters.total
        )),
        (_, 0, true) => None,
        (_, 0, false) => Some(listed),
        (_, n, true) => Some(format!("{n} failed")),
        (_, n, false) => Some(format!("{n} failed: {listed}")),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub kind: NotificationKind,
    pub notice: RunNotice,
    pub read_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReasonCode;

    #[test]
    fn error_summary_counts_reason_codes_and_never_reason_text() {
        let counters = Counters {
            total: 5,
            processed: 5,
            succeeded: 2,
            failed: 3,
            skipped: 0,
        };
        let failures = [
            FailureEntry::failed(Some("a".into()), ReasonCode::PolicyNotFound, "secret text"),
            FailureEntry::failed(Some("b".into()), ReasonCode::PolicyNotFound, "secret text"),
            FailureEntry::failed(Some("c".into()), ReasonCode::Timeout, "secret text"),
            FailureEntry::skipped(Some("d".into()), ReasonCode::AlreadyPresent, "secret text"),
        ];
        let summary = error_summary(RunStatus::CompletedWithErrors, &counters, &failures).unwrap();
        assert_eq!(summary, "3 failed: policy_not_found ×2, timeout ×1");
        let clean = Counters {
            failed: 0,
            succeeded: 5,
            ..counters
        };
        assert_eq!(error_summary(RunStatus::Completed, &clean, &[]), None);
        assert_eq!(
            error_summary(
                RunStatus::Aborted,
                &Counters {
                    processed: 2,
                    ..clean
                },
                &[]
            )
            .unwrap(),
            "aborted after 2 of 5 items"
        );
    }
}
