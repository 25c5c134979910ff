use super::{sanitize_reason, ParseError};
use serde::{Deserialize, Serialize};

/// A run keeps at most this many failure entries; its counters stay exact
/// beyond that, so a run with a million failures stays a readable record.
pub const MAX_STORED_FAILURES: usize = 500;

/// Stable, closed list of reasons an item can fail or be skipped. Operators
/// filter and group by these, so a code never changes meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    AlreadyPresent,
    PolicyNotFound,
    PermissionDenied,
    UpstreamUnavailable,
    RateLimited,
    InvalidPayload,
    Timeout,
    WorkerLost,
    Aborted,
    InternalError,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 10] = [
        ReasonCode::AlreadyPresent,
        ReasonCode::PolicyNotFound,
        ReasonCode::PermissionDenied,
        ReasonCode::UpstreamUnavailable,
        ReasonCode::RateLimited,
        ReasonCode::InvalidPayload,
        ReasonCode::Timeout,
        ReasonCode::WorkerLost,
        ReasonCode::Aborted,
        ReasonCode::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::AlreadyPresent => "already_present",
            ReasonCode::PolicyNotFound => "policy_not_found",
            ReasonCode::PermissionDenied => "permission_denied",
            ReasonCode::UpstreamUnavailable => "upstream_unavailable",
            ReasonCode::RateLimited => "rate_limited",
            ReasonCode::InvalidPayload => "invalid_payload",
            ReasonCode::Timeout => "timeout",
            ReasonCode::WorkerLost => "worker_lost",
            ReasonCode::Aborted => "aborted",
            ReasonCode::InternalError => "internal_error",
        }
    }

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str() == input)
            .ok_or_else(|| {
                ParseError::not_one_of("a reason code", Self::ALL.into_iter().map(Self::as_str))
            })
    }
}

/// How many failed (not skipped) entries carry each reason code, most
/// frequent first.
pub fn failure_counts(entries: &[FailureEntry]) -> Vec<(ReasonCode, usize)> {
    let mut counts: Vec<(ReasonCode, usize)> = Vec::new();
    for entry in entries.iter().filter(|e| e.kind == FailureKind::Failed) {
        match counts
            .iter_mut()
            .find(|(code, _)| *code == entry.reason_code)
        {
            Some((_, n)) => *n += 1,
            None => counts.push((entry.reason_code, 1)),
        }
    }
    counts.sort_by_key(|(code, n)| (std::cmp::Reverse(*n), code.as_str()));
    counts
}

/// Whether an entry records a failure or a deliberate non-failure outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Failed,
    Skipped,
}

/// One sanitised per-item outcome stored in a run's `failures`, in the
/// spec's shape: `{reason_code, reason, item_id}`, plus `"type": "skipped"`
/// for a skipped item only. A run-level failure (the operation broke down,
/// the worker was lost) has no item: `"item_id": null, "scope": "run"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredEntry", from = "StoredEntry")]
pub struct FailureEntry {
    /// The item as given: an id, not prose, so never rewritten.
    pub item_id: Option<String>,
    pub reason_code: ReasonCode,
    pub reason: String,
    pub kind: FailureKind,
}

/// The stored form. Reads entries of earlier releases too (which said
/// `"type": "failed"` and left `item_id` out of run-level entries).
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    reason_code: ReasonCode,
    reason: String,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

impl From<FailureEntry> for StoredEntry {
    fn from(entry: FailureEntry) -> Self {
        StoredEntry {
            scope: entry.item_id.is_none().then(|| "run".to_string()),
            reason_code: entry.reason_code,
            reason: entry.reason,
            item_id: entry.item_id,
            kind: (entry.kind == FailureKind::Skipped).then_some(FailureKind::Skipped),
        }
    }
}

impl From<StoredEntry> for FailureEntry {
    fn from(stored: StoredEntry) -> Self {
        FailureEntry {
            item_id: stored.item_id,
            reason_code: stored.reason_code,
            reason: stored.reason,
            kind: stored.kind.unwrap_or(FailureKind::Failed),
        }
    }
}

impl FailureEntry {
    /// The only constructor: every reason passes the sanitiser on the way in.
    pub fn new(
        kind: FailureKind,
        item_id: Option<String>,
        reason_code: ReasonCode,
        reason: &str,
    ) -> Self {
        Self {
            item_id,
            reason_code,
            reason: sanitize_reason(reason),
            kind,
        }
    }

    /// Whether it concerns the whole run rather than one item.
    pub fn is_run_level(&self) -> bool {
        self.item_id.is_none()
    }

    pub fn failed(item_id: Option<String>, reason_code: ReasonCode, reason: &str) -> Self {
        Self::new(FailureKind::Failed, item_id, reason_code, reason)
    }

    pub fn skipped(item_id: Option<String>, reason_code: ReasonCode, reason: &str) -> Self {
        Self::new(FailureKind::Skipped, item_id, reason_code, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_kind_as_type_and_sanitises() {
        let entry = FailureEntry::skipped(
            Some("pol-7".into()),
            ReasonCode::AlreadyPresent,
            "already in set; token=abc123secret",
        );
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["type"], "skipped");
        assert_eq!(json["reason_code"], "already_present");
        assert_eq!(json["item_id"], "pol-7");
        assert!(!json["reason"].as_str().unwrap().contains("abc123secret"));
        assert_eq!(serde_json::from_value::<FailureEntry>(json).unwrap(), entry);
    }

    #[test]
    fn failures_have_the_specs_shape_and_old_entries_read_back() {
        let failed = FailureEntry::failed(
            Some("dev:1 token=x".into()),
            ReasonCode::InternalError,
            "broke",
        );
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            serde_json::json!({ "reason_code": "internal_error", "reason": "broke", "item_id": "dev:1 token=x" }),
            "no type for a failure; the item id as given"
        );
        let lost = FailureEntry::failed(None, ReasonCode::WorkerLost, "gone");
        assert!(lost.is_run_level());
        assert_eq!(
            serde_json::to_value(&lost).unwrap(),
            serde_json::json!({ "reason_code": "worker_lost", "reason": "gone", "item_id": null, "scope": "run" })
        );
        for entry in [failed, lost] {
            let json = serde_json::to_value(&entry).unwrap();
            assert_eq!(serde_json::from_value::<FailureEntry>(json).unwrap(), entry);
        }
        let earlier: FailureEntry = serde_json::from_value(serde_json::json!(
            { "reason_code": "worker_lost", "reason": "gone", "type": "failed" }
        ))
        .unwrap();
        assert_eq!((earlier.kind, earlier.item_id), (FailureKind::Failed, None));
    }
}
