//! Types and pure rules shared by the server and the browser.
//!
//! Nothing in here touches a database or the network, so everything compiles
//! to wasm as well; the server adds sqlx encodings behind `feature = "ssr"`.

#[cfg(test)]
pub(crate) mod arbitrary;
mod audit;
mod failure;
mod finding;
mod ids;
mod input;
mod insights;
mod listing;
mod live;
mod notification;
mod operation;
#[cfg(test)]
mod proptests;
mod run;
mod sanitize;
mod scope;
mod stall;
mod status;
mod tenant;
mod time;
mod url;

pub use audit::{names as audit_names, AuditEntry, TrailEntry};
pub use failure::{failure_counts, FailureEntry, FailureKind, ReasonCode, MAX_STORED_FAILURES};
pub use finding::{ChangeKind, Finding, FindingFilter, FindingStatus, FindingType};
pub use ids::*;
pub use input::{bounded_fields, bounded_text, MAX_EMAIL_CHARS, MAX_SEARCH_CHARS};
pub use insights::{
    a_week_before, duration_buckets, format_millis, DurationRollup, InsightBucket, InsightFigures,
    Insights, InsightsWindow, OutcomeCounts, OutcomeRollup, Percentiles, Phase, ReasonRollup,
    ReasonTrend, Rollups, RunComparison, MICROS_PER_HOUR, OUTCOMES, TOP_REASONS,
};
pub use listing::*;
pub use live::{live_path, RESYNC_EVENT, RUN_EVENT, UNREAD_EVENT};
pub use notification::{
    unread_label, NoticeTenant, Notification, NotificationFilter, NotificationKind, RunNotice,
    RunType, Subscription, UNREAD_COUNT_CAP,
};
pub use operation::{idempotency_key, KeyInputs, OperationKind};
pub use run::{
    eta_seconds, record_run_failure, AttemptEnd, Counters, LostLease, RunAttempt, RunDetail,
    RunJoin, RunSummary,
};
pub use sanitize::{
    is_clean_identifier, quote_input, sanitize_reason, sanitize_text, MAX_REASON_CHARS,
};
pub use scope::{AddPoliciesOptions, AddPoliciesScope, DriftScope, RunScope};
pub use stall::{StallPolicy, StandingStill, HISTORY_MULTIPLE};
pub use status::{RunStatus, StatusBucket};
pub use tenant::{Member, Membership, Role, Tenant, TenantSlug, User};
pub use time::{format_duration, Timestamp};
pub use url::{encode_component, query_string, run_path, safe_next, sign_in_path};

/// A value that could not be parsed into a domain type; the message is safe
/// to show to a user. It names what was expected and never echoes the
/// input: the browser parses with these types too, and quoting input safely
/// takes the sanitiser, which its bundle should not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    /// A value outside a fixed set: `what` (with its article) and the set.
    pub fn not_one_of<'a>(what: &str, valid: impl IntoIterator<Item = &'a str>) -> Self {
        let valid: Vec<&str> = valid.into_iter().collect();
        ParseError(format!("not {what} (one of: {})", valid.join(", ")))
    }
}
