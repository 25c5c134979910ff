use super::finding::text_enum;
use super::{
    Counters, NotificationId, OperationKind, ParseError, RunId, StatusBucket, TenantId, Timestamp,
    UserId,
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
