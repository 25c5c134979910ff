//! Inputs and records the repositories take and return that the browser
//! never sees (the shared ones live in `crate::domain`).

use crate::domain::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A request to start an operation; `idempotency_key` is derived by the caller
/// from tenant + operation + scope. `id` is the id the run gets if it is
/// created (so the notification can link to it); when an active run with the
/// key exists, that run is returned and `audit` and `notification` are dropped.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub operation: OperationKind,
    pub idempotency_key: String,
    pub item_ids: Vec<String>,
    pub params: serde_json::Value,
    pub max_attempts: i64,
    pub audit: Option<NewAuditEntry>,
    pub notification: Option<NewNotification>,
}

#[derive(Clone, Debug)]
pub struct StartedRun {
    pub run: RunDetail,
    /// True when an active run with the same key existed and was returned.
    pub joined: bool,
}

/// A run with its whole history, written as-is (demo data, imports).
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub operation: OperationKind,
    pub idempotency_key: String,
    pub status: RunStatus,
    pub counters: Counters,
    pub item_ids: Vec<String>,
    pub params: serde_json::Value,
    pub failures: Vec<FailureEntry>,
    pub attempt: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct Upserted<T> {
    pub value: T,
    pub inserted: bool,
}

#[derive(Clone, Debug)]
pub struct NewFinding {
    pub tenant_id: TenantId,
    pub finding_type: FindingType,
    pub scope_key: String,
    pub baseline_run_id: InventorySyncRunId,
    pub current_run_id: InventorySyncRunId,
    pub produced_by_run_id: Option<RunId>,
    pub fingerprint: String,
    pub subject_type: String,
    pub subject_external_id: String,
    pub evidence: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInventoryItem {
    pub subject_type: String,
    pub external_id: String,
    pub display_name: String,
    pub payload: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct NewInventorySync {
    pub tenant_id: TenantId,
    pub selection_hash: String,
    pub finished_at: Timestamp,
    pub items: Vec<NewInventoryItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventorySync {
    pub id: InventorySyncRunId,
    pub tenant_id: TenantId,
    pub selection_hash: String,
    pub status: String,
    pub item_count: i64,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryScope {
    pub selection_hash: String,
    pub completed_syncs: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryItem {
    pub id: InventoryItemId,
    pub sync_run_id: InventorySyncRunId,
    pub subject_type: String,
    pub external_id: String,
    pub display_name: String,
    pub payload: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct NewPolicy {
    pub tenant_id: TenantId,
    pub external_id: String,
    pub name: String,
    pub policy_type: String,
    pub payload: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    pub tenant_id: TenantId,
    pub external_id: String,
    pub name: String,
    pub policy_type: String,
    pub payload: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSet {
    pub id: BackupSetId,
    pub tenant_id: TenantId,
    pub name: String,
    pub item_count: i64,
}

#[derive(Clone, Debug)]
pub struct NewBackupSetItem {
    pub tenant_id: TenantId,
    pub backup_set_id: BackupSetId,
    pub policy_id: PolicyId,
    pub snapshot: serde_json::Value,
    pub added_by_run_id: Option<RunId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added(BackupSetItemId),
    AlreadyPresent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSetItem {
    pub id: BackupSetItemId,
    pub backup_set_id: BackupSetId,
    pub policy_id: PolicyId,
    pub snapshot: serde_json::Value,
    pub added_by_run_id: Option<RunId>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewNotification {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub kind: NotificationKind,
    pub notice: RunNotice,
}

#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub action: String,
    pub resource: String,
    pub resource_id: Option<String>,
    /// Sanitised by the caller; see `domain::sanitize_reason`.
    pub metadata: serde_json::Value,
}

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
