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
/// key exists, that run is returned, `notification` is dropped and `audit`
/// is written as a `run.join` entry on the run joined.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub operation: OperationKind,
    pub idempotency_key: String,
    /// The spec's object naming what the run works on.
    pub item_ids: RunScope,
    /// The items the engine processes, in order (`total_items` of them).
    pub work_items: Vec<String>,
    pub max_attempts: i64,
    pub audit: Option<NewAuditEntry>,
    pub notification: Option<NewNotification>,
    /// The run whose failed items this run retries.
    pub retry_of: Option<RunId>,
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
    pub idempotency_key: Option<String>,
    pub status: RunStatus,
    pub counters: Counters,
    pub item_ids: RunScope,
    pub work_items: Vec<String>,
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
    pub change_kind: ChangeKind,
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

/// A subject as a sync recorded it, its payload as the database's JSON
/// text: most subjects of a comparison are unchanged, and telling so by
/// their texts spares parsing every payload (drift parses the rest).
#[derive(Clone, Debug)]
pub struct InventoryItem {
    pub subject_type: String,
    pub external_id: String,
    pub display_name: String,
    pub payload: Box<serde_json::value::RawValue>,
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

/// Whether a membership change is audited, and as whose act. The entry is
/// written in the change's own transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipAudit {
    /// Done by this user (`None`: the command line).
    By(Option<UserId>),
    /// Setting up rather than changing: demo data, benchmarks, test fixtures.
    Unaudited,
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

/// One claim of a run. Every write a worker makes after claiming is fenced
/// on it: once the run was rescued, aborted or claimed again, the lease's
/// writes change nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub run_id: RunId,
    pub tenant_id: TenantId,
    pub attempt: i64,
}

impl Lease {
    /// What a write under this lease changes, for live views.
    pub fn changed(&self) -> super::Change {
        super::Change::Run {
            tenant: self.tenant_id,
            run: self.run_id,
        }
    }
}

/// A running run whose worker still renews its lease but whose progress
/// has not moved since `progressed_at`: what a stall check weighs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StillRun {
    pub lease: Lease,
    pub operation: OperationKind,
    pub progressed_at: Timestamp,
}

/// A run a worker now holds, with what it needs to execute it.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    pub lease: Lease,
    pub tenant_slug: String,
    pub user_id: UserId,
    pub operation: OperationKind,
    /// The run's stored `item_ids` (parsed by the operation that runs it).
    pub scope: serde_json::Value,
    /// What the engine processes, in order.
    pub work_items: Vec<String>,
    /// Items before this index were recorded by an earlier attempt.
    pub resume_at: usize,
    pub created_at: Timestamp,
    pub claimed_at: Timestamp,
}

impl ClaimedRun {
    /// The items this attempt has left; `None` when the stored run counts
    /// more items processed than it has (written by something other than
    /// the engine): it cannot resume.
    pub fn remaining_items(&self) -> Option<&[String]> {
        self.work_items.get(self.resume_at..)
    }
}

/// How much one claim may take. Small runs are claimed, executed and
/// completed together — one claim and one write for many — while a run with
/// more items than `items` is claimed alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimLimit {
    /// At most this many runs (at least one is always taken).
    pub runs: usize,
    /// Runs after the first are taken while the items all of them have
    /// left come to at most this.
    pub items: usize,
}

impl ClaimLimit {
    /// Exactly one run.
    pub const ONE: ClaimLimit = ClaimLimit { runs: 1, items: 0 };
}

/// A batch of one run's item results, written under its lease.
#[derive(Clone, Debug)]
pub struct RunProgress {
    pub lease: Lease,
    /// How many of the run's items were recorded before this batch. The
    /// write is fenced on it as well as on the lease, so a write sent again
    /// after its first answer was lost (the commit may have landed) is
    /// recognised as already recorded rather than counted twice.
    pub recorded_before: i64,
    pub items: Vec<ItemResult>,
    pub end: BatchEnd,
}

/// What becomes of the run once its batch is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchEnd {
    /// More items follow.
    Continues,
    /// The run has no items left: it ends in the status its counters call for.
    Finishes,
    /// The operation broke down (a panic, or an error of its own): the run
    /// ends `failed` with this run-level entry, whatever its items say.
    BrokeDown(FailureEntry),
}

/// What processing one item produced.
#[derive(Clone, Debug)]
pub struct ItemResult {
    pub item_id: String,
    pub outcome: ItemOutcome,
}

#[derive(Clone, Debug)]
pub enum ItemOutcome {
    /// Done, with the artifact it produced, if any.
    Succeeded(Option<Artifact>),
    /// The reason passes the sanitiser before it is stored.
    Failed {
        reason_code: ReasonCode,
        reason: String,
    },
    Skipped {
        reason_code: ReasonCode,
        reason: String,
    },
}

/// Written in the same transaction as the progress that counts it.
#[derive(Clone, Debug)]
pub enum Artifact {
    Finding(NewFinding),
    /// Becomes a `skipped` (already_present) or `failed` (policy_not_found)
    /// outcome when the set already holds the policy or the policy is gone.
    BackupSetItem(NewBackupSetItem),
}

/// What became of one run's batch of progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressOutcome {
    /// Written; the run's status after it (terminal when the batch finished it).
    Recorded(RunStatus),
    /// Nothing written: an abort was requested; end the run as aborted.
    AbortRequested,
    /// Nothing written: the lease is no longer this worker's.
    LeaseLost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Held,
    AbortRequested,
    Lost,
}

/// What a rescue pass did with runs whose lease had expired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Released, still running, for another worker to take over.
    pub released: u64,
    /// Out of attempts: failed with `worker_lost`.
    pub failed: u64,
    /// Their abort had been requested: aborted.
    pub aborted: u64,
}

/// The queue as `/metrics` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// Pending runs.
    pub waiting: i64,
    pub oldest_created_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortOutcome {
    /// It was pending: aborted on the spot.
    Aborted,
    /// It is running: its worker stops it within moments.
    Requested,
    /// It had already ended in this status; nothing changed.
    AlreadyFinished(RunStatus),
}

/// One count of the sign-in limiter: within a window (from its first
/// attempt), `limit` attempts; past that, one more per `spacing` (a spacing
/// of the whole window locks until the window ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRule {
    /// SHA-256 (hex) of what is counted: never the typed email itself.
    pub key: String,
    pub limit: i64,
    pub spacing: std::time::Duration,
}
