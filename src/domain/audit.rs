use super::{AuditLogId, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// One entry of a tenant's audit log: who did what to which resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditLogId,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub action: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
}

/// An entry of one resource's trail, with the name of who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEntry {
    pub entry: AuditEntry,
    /// `None` when no account acted: the command line.
    pub actor_name: Option<String>,
}

/// The names audit entries use. Other code and reports read the table, so
/// these are a contract: add new ones, never rename.
pub mod names {
    /// The `resource` of entries about a run (also a notice's `run_type`).
    pub const RUN: &str = "bulk_operation_run";
    pub const FINDING: &str = "finding";
    pub const MEMBERSHIP: &str = "membership";

    /// A run was started; its `audit_log_id` points here.
    pub const RUN_START: &str = "run.start";
    /// A start found the run active and joined it.
    pub const RUN_JOIN: &str = "run.join";
    /// A run retrying another's failed items was started (its start entry).
    pub const RUN_RETRY: &str = "run.retry";
    pub const RUN_ABORT: &str = "run.abort";
    /// The engine flagged a running run stalled (no account acts).
    pub const RUN_STALL: &str = "run.stall";
    /// A stalled run's progress moved again (no account acts).
    pub const RUN_STALL_CLEAR: &str = "run.stall_clear";

    /// Whether the engine, not a person or the command line, wrote an
    /// entry with this action.
    pub fn by_engine(action: &str) -> bool {
        matches!(action, RUN_STALL | RUN_STALL_CLEAR)
    }
    pub const FINDING_ACKNOWLEDGE: &str = "finding.acknowledge";
    pub const MEMBERSHIP_GRANT: &str = "membership.grant";
    pub const MEMBERSHIP_ROLE_CHANGE: &str = "membership.role_change";
    pub const MEMBERSHIP_REMOVE: &str = "membership.remove";
}
