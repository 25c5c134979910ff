use super::finding::text_enum;
use super::{
    failure_counts, run_path, Counters, FailureEntry, NotificationId, OperationKind, ParseError,
    RunId, RunStatus, StatusBucket, Tenant, TenantId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    RunQueued,
    RunCompleted,
    /// A running run's progress stood still past its threshold
    /// (`StallPolicy`); sent once per stall.
    RunStalled,
}

text_enum!(NotificationKind {
    RunQueued => "run_queued",
    RunCompleted => "run_completed",
    RunStalled => "run_stalled",
});

impl NotificationKind {
    /// How the feed's filter names the kind in its URL (`?kind=completed`).
    pub fn filter_word(self) -> &'static str {
        match self {
            NotificationKind::RunQueued => "queued",
            NotificationKind::RunCompleted => "completed",
            NotificationKind::RunStalled => "stalled",
        }
    }

    pub fn from_filter_word(word: &str) -> Result<Self, ParseError> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.filter_word() == word)
            .ok_or_else(|| {
                ParseError("`kind` must be `queued`, `completed`, `stalled` or empty".into())
            })
    }
}

/// Which of a user's notifications the feed lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationFilter {
    /// One kind, or every kind.
    pub kind: Option<NotificationKind>,
    pub unread_only: bool,
}

/// A standing request to hear about runs one did not start, join or watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    /// Every run of the tenant that ends `failed` or
    /// `completed_with_errors` (an admin's; see `Subscription::covers`).
    FailedOrPartial,
}

text_enum!(Subscription { FailedOrPartial => "failed_or_partial" });

impl Subscription {
    /// Whether a run that ended in `status` is one this subscription asks
    /// for. Aborted runs are not: someone chose to stop them, and they hear
    /// about it as its initiator, joiner or watcher.
    pub fn covers(self, status: RunStatus) -> bool {
        match self {
            Subscription::FailedOrPartial => {
                matches!(status, RunStatus::Failed | RunStatus::CompletedWithErrors)
            }
        }
    }
}

/// Which tenant a notice is about: both identifiers, so that code reading
/// the table needs no join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeTenant {
    pub id: TenantId,
    pub slug: String,
}

impl From<&Tenant> for NoticeTenant {
    fn from(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id,
            slug: tenant.slug.clone(),
        }
    }
}

/// What kind of record a notice is about. Runs are the only kind; the field
/// is in the payload because the spec's readers dispatch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    BulkOperationRun,
}

/// What a notification says about a run; stored as the row's JSON payload
/// in the spec's shape, which other code reads: the operation as its code
/// (`drift.generate`) and the bucket as the spec spells it (`partial`, where
/// the app's URLs say `partially_succeeded`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunNotice {
    pub tenant: NoticeTenant,
    pub run_id: RunId,
    pub run_type: RunType,
    #[serde(with = "operation_code")]
    pub operation: OperationKind,
    #[serde(with = "bucket_spelling")]
    pub bucket: StatusBucket,
    /// The run's summary counts when the notice was written.
    pub counters: Counters,
    /// Sanitised, short; absent when nothing failed.
    pub error_summary: Option<String>,
    /// Path of the run detail page, e.g. `/t/acme/operations/<id>`.
    pub link: String,
}

impl RunNotice {
    /// The "queued" notice of a run just started with `total` items.
    pub fn queued(
        tenant: NoticeTenant,
        run_id: RunId,
        operation: OperationKind,
        total: i64,
    ) -> Self {
        let counters = Counters {
            total,
            ..Counters::default()
        };
        Self::about(
            tenant,
            run_id,
            operation,
            StatusBucket::Queued,
            counters,
            None,
        )
    }

    /// The "stalled" notice of a running run whose progress stands still;
    /// `summary` says for how long (`StandingStill::summary`).
    pub fn stalled(
        tenant: NoticeTenant,
        run_id: RunId,
        operation: OperationKind,
        counters: Counters,
        summary: String,
    ) -> Self {
        let bucket = StatusBucket::Running;
        Self::about(tenant, run_id, operation, bucket, counters, Some(summary))
    }

    /// The "completed" notice of a run that reached `status`.
    pub fn finished(
        tenant: NoticeTenant,
        run_id: RunId,
        operation: OperationKind,
        status: RunStatus,
        counters: Counters,
        failures: &[FailureEntry],
    ) -> Self {
        let summary = error_summary(status, &counters, failures);
        Self::about(
            tenant,
            run_id,
            operation,
            status.bucket(),
            counters,
            summary,
        )
    }

    fn about(
        tenant: NoticeTenant,
        run_id: RunId,
        operation: OperationKind,
        bucket: StatusBucket,
        counters: Counters,
        error_summary: Option<String>,
    ) -> Self {
        Self {
            link: run_path(&tenant.slug, run_id),
            tenant,
            run_id,
            run_type: RunType::BulkOperationRun,
            operation,
            bucket,
            counters,
            error_summary,
        }
    }
}

/// The spec's spelling of a bucket in a payload.
fn payload_bucket(bucket: StatusBucket) -> &'static str {
    match bucket {
        StatusBucket::PartiallySucceeded => "partial",
        other => other.as_str(),
    }
}

mod bucket_spelling {
    use super::{payload_bucket, StatusBucket};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bucket: &StatusBucket, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(payload_bucket(*bucket))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatusBucket, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        StatusBucket::ALL
            .into_iter()
            .find(|bucket| payload_bucket(*bucket) == text)
            .ok_or_else(|| {
                D::Error::custom(crate::domain::ParseError::not_one_of(
                    "a notice's status bucket",
                    StatusBucket::ALL.into_iter().map(payload_bucket),
                ))
            })
    }
}

mod operation_code {
    use super::OperationKind;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(operation: &OperationKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(operation.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OperationKind, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        OperationKind::parse(&text).map_err(|e| D::Error::custom(e.0))
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

/// Unread notifications are counted up to here and no further: the bell
/// says "99+" beyond 99, and counting a user's 50,000 unread entries on
/// every page would cost as much as the page.
pub const UNREAD_COUNT_CAP: i64 = 100;

/// How the bell and the feed say an unread count (capped at
/// [`UNREAD_COUNT_CAP`]).
pub fn unread_label(unread: i64) -> String {
    if unread >= UNREAD_COUNT_CAP {
        format!("{}+", UNREAD_COUNT_CAP - 1)
    } else {
        unread.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_hear_of_failed_and_partial_runs_only() {
        let covered: Vec<RunStatus> = RunStatus::ALL
            .into_iter()
            .filter(|status| Subscription::FailedOrPartial.covers(*status))
            .collect();
        assert_eq!(
            covered,
            vec![RunStatus::CompletedWithErrors, RunStatus::Failed]
        );
    }

    #[test]
    fn the_feeds_kind_filter_reads_its_own_words_only() {
        for kind in NotificationKind::ALL {
            assert_eq!(
                NotificationKind::from_filter_word(kind.filter_word()),
                Ok(*kind)
            );
        }
        assert!(NotificationKind::from_filter_word("run_queued").is_err());
        assert!(NotificationKind::from_filter_word("").is_err());
    }

    #[test]
    fn unread_counts_read_exactly_up_to_the_cap() {
        assert_eq!(unread_label(0), "0");
        assert_eq!(unread_label(99), "99");
        assert_eq!(unread_label(UNREAD_COUNT_CAP), "99+");
    }
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

    fn tenant() -> NoticeTenant {
        NoticeTenant {
            id: TenantId(uuid::Uuid::from_u128(1)),
            slug: "acme".into(),
        }
    }

    #[test]
    fn the_payload_has_the_spec_shape() {
        let run = RunId(uuid::Uuid::from_u128(2));
        let counters = Counters {
            total: 3,
            processed: 3,
            succeeded: 2,
            failed: 1,
            skipped: 0,
        };
        let failures = [FailureEntry::failed(
            Some("a".into()),
            ReasonCode::Timeout,
            "secret text",
        )];
        let notice = RunNotice::finished(
            tenant(),
            run,
            OperationKind::DriftGenerate,
            RunStatus::CompletedWithErrors,
            counters,
            &failures,
        );
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "tenant": { "id": "00000000-0000-0000-0000-000000000001", "slug": "acme" },
                "run_id": "00000000-0000-0000-0000-000000000002",
                "run_type": "bulk_operation_run",
                "operation": "drift.generate",
                "bucket": "partial",
                "counters": { "total": 3, "processed": 3, "succeeded": 2, "failed": 1, "skipped": 0 },
                "error_summary": "1 failed: timeout ×1",
                "link": "/t/acme/operations/00000000-0000-0000-0000-000000000002",
            })
        );
        assert_eq!(serde_json::from_value::<RunNotice>(json).unwrap(), notice);
    }

    #[test]
    fn every_bucket_and_operation_round_trips_and_strangers_are_refused() {
        let run = RunId(uuid::Uuid::from_u128(2));
        let spelled = ["queued", "running", "succeeded", "partial", "failed"];
        for (bucket, text) in StatusBucket::ALL.into_iter().zip(spelled) {
            for operation in OperationKind::ALL {
                let notice = RunNotice {
                    bucket,
                    ..RunNotice::queued(tenant(), run, operation, 1)
                };
                let json = serde_json::to_value(&notice).unwrap();
                assert_eq!(json["bucket"], text);
                assert_eq!(json["operation"], operation.code());
                assert_eq!(serde_json::from_value::<RunNotice>(json).unwrap(), notice);
            }
        }
        let mut json = serde_json::to_value(RunNotice::queued(
            tenant(),
            run,
            OperationKind::DriftGenerate,
            1,
        ))
        .unwrap();
        json["bucket"] = "partially_succeeded".into();
        let err = serde_json::from_value::<RunNotice>(json.clone()).unwrap_err();
        assert!(
            err.to_string().contains("not a notice's status bucket"),
            "{err}"
        );
        json["bucket"] = "queued".into();
        json["operation"] = "drift_generate".into();
        assert!(serde_json::from_value::<RunNotice>(json).is_err());
    }
}
