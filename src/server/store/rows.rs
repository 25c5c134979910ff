//! Row shapes as both databases return them, and their conversion into
//! domain types. Column lists live next to the structs so a query and its
//! row cannot drift apart.

use super::types::*;
use super::{Change, StoreError, StoreResult};
use crate::domain::*;
use sqlx::types::Json;
use sqlx::FromRow;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    tracing::error!(%what, "row does not map to the domain");
    StoreError::Invalid("stored data is inconsistent".into())
}

pub const TENANT_COLUMNS: &str = "id, slug, name";

#[derive(FromRow)]
pub struct TenantRow {
    id: TenantId,
    slug: String,
    name: String,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        Tenant {
            id: row.id,
            slug: row.slug,
            name: row.name,
        }
    }
}

#[derive(FromRow)]
pub struct MembershipRow {
    #[sqlx(flatten)]
    tenant: TenantRow,
    #[sqlx(try_from = "String")]
    role: Role,
}

impl From<MembershipRow> for Membership {
    fn from(row: MembershipRow) -> Self {
        Membership {
            tenant: row.tenant.into(),
            role: row.role,
        }
    }
}

pub const CREDENTIALS_COLUMNS: &str = "id, email, display_name, password_hash";

#[derive(FromRow)]
pub struct CredentialsRow {
    id: UserId,
    email: String,
    display_name: String,
    password_hash: Option<String>,
}

impl From<CredentialsRow> for UserCredentials {
    fn from(row: CredentialsRow) -> Self {
        UserCredentials {
            user: User {
                id: row.id,
                email: row.email,
                display_name: row.display_name,
            },
            password_hash: row.password_hash,
        }
    }
}

/// Columns of `RunSummaryRow`; runs are aliased `r`, their initiator `u`.
pub const RUN_SUMMARY_COLUMNS: &str = "r.id, r.tenant_id, r.user_id, r.resource, r.action, \
     r.idempotency_key, r.status, r.total_items, r.processed_items, r.succeeded, r.failed, \
     r.skipped, r.created_at, r.started_at, r.finished_at, r.stalled_at, \
     u.display_name AS initiator_name";

/// `RUN_SUMMARY_COLUMNS` plus the detail-only ones.
pub const RUN_DETAIL_COLUMNS: &str = "r.id, r.tenant_id, r.user_id, r.resource, r.action, \
     r.idempotency_key, r.status, r.total_items, r.processed_items, r.succeeded, r.failed, \
     r.skipped, r.created_at, r.started_at, r.finished_at, r.stalled_at, \
     u.display_name AS initiator_name, r.item_ids, COALESCE(r.failures, '[]') AS failures, \
     r.audit_log_id, r.updated_at, r.attempt, r.max_attempts, r.lease_owner, r.lease_expires_at, r.heartbeat_at, r.cancel_requested_at, r.retry_of_run_id";

#[derive(FromRow)]
pub struct RunSummaryRow {
    id: RunId,
    tenant_id: TenantId,
    user_id: UserId,
    resource: String,
    action: String,
    idempotency_key: Option<String>,
    #[sqlx(try_from = "String")]
    status: RunStatus,
    total_items: i64,
    processed_items: i64,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    stalled_at: Option<Timestamp>,
    initiator_name: String,
}

impl RunSummaryRow {
    pub fn into_domain(self) -> StoreResult<RunSummary> {
        Ok(RunSummary {
            id: self.id,
            tenant_id: self.tenant_id,
            operation: OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)?,
            status: self.status,
            counters: Counters {
                total: self.total_items,
                processed: self.processed_items,
                succeeded: self.succeeded,
                failed: self.failed,
                skipped: self.skipped,
            },
            initiator_id: self.user_id,
            initiator_name: self.initiator_name,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            stalled_at: self.stalled_at,
        })
    }
}

#[derive(FromRow)]
pub struct RunDetailRow {
    #[sqlx(flatten)]
    summary: RunSummaryRow,
    item_ids: Json<serde_json::Value>,
    /// Null reads as `[]` (the column's COALESCE).
    failures: Json<Vec<FailureEntry>>,
    audit_log_id: Option<AuditLogId>,
    updated_at: Timestamp,
    attempt: i64,
    max_attempts: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<Timestamp>,
    heartbeat_at: Option<Timestamp>,
    cancel_requested_at: Option<Timestamp>,
    retry_of_run_id: Option<RunId>,
}

impl RunDetailRow {
    pub fn into_domain(self) -> StoreResult<RunDetail> {
        Ok(RunDetail {
            summary: self.summary.into_domain()?,
            item_ids: self.item_ids.0,
            failures: self.failures.0,
            audit_log_id: self.audit_log_id,
            updated_at: self.updated_at,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            heartbeat_at: self.heartbeat_at,
            cancel_requested_at: self.cancel_requested_at,
            retry_of: self.retry_of_run_id,
        })
    }
}

pub const FINDING_COLUMNS: &str = "id, tenant_id, finding_type, change_kind, scope_key, \
     baseline_run_id, current_run_id, produced_by_run_id, fingerprint, subject_type, \
     subject_external_id, status, evidence_jsonb, acknowledged_by, acknowledged_at, created_at, updated_at";

#[derive(FromRow)]
pub struct FindingRow {
    id: FindingId,
    tenant_id: TenantId,
    #[sqlx(try_from = "String")]
    finding_type: FindingType,
    #[sqlx(try_from = "String")]
    change_kind: ChangeKind,
    scope_key: String,
    baseline_run_id: Option<InventorySyncRunId>,
    current_run_id: Option<InventorySyncRunId>,
    produced_by_run_id: Option<RunId>,
    fingerprint: String,
    subject_type: String,
    subject_external_id: String,
    #[sqlx(try_from = "String")]
    status: FindingStatus,
    evidence_jsonb: Json<serde_json::Value>,
    acknowledged_by: Option<UserId>,
    acknowledged_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<FindingRow> for Finding {
    fn from(row: FindingRow) -> Self {
        Finding {
            id: row.id,
            tenant_id: row.tenant_id,
            finding_type: row.finding_type,
            change_kind: row.change_kind,
            scope_key: row.scope_key,
            baseline_run_id: row.baseline_run_id,
            current_run_id: row.current_run_id,
            produced_by_run_id: row.produced_by_run_id,
            fingerprint: row.fingerprint,
            subject_type: row.subject_type,
            subject_external_id: row.subject_external_id,
            status: row.status,
            evidence: row.evidence_jsonb.0,
            acknowledged_by: row.acknowledged_by,
            acknowledged_at: row.acknowledged_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub const INVENTORY_SYNC_COLUMNS: &str =
    "id, tenant_id, selection_hash, status, item_count, created_at, finished_at";

#[derive(FromRow)]
pub struct InventorySyncRow {
    id: InventorySyncRunId,
    tenant_id: TenantId,
    selection_hash: String,
    status: String,
    item_count: i64,
    created_at: Timestamp,
    finished_at: Option<Timestamp>,
}

impl From<InventorySyncRow> for InventorySync {
    fn from(row: InventorySyncRow) -> Self {
        InventorySync {
            id: row.id,
            tenant_id: row.tenant_id,
            selection_hash: row.selection_hash,
            status: row.status,
            item_count: row.item_count,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

pub const INVENTORY_ITEM_COLUMNS: &str = "subject_type, external_id, display_name, payload";

#[derive(FromRow)]
pub struct InventoryItemRow {
    subject_type: String,
    external_id: String,
    display_name: String,
    payload: Json<Box<serde_json::value::RawValue>>,
}

impl From<InventoryItemRow> for InventoryItem {
    fn from(row: InventoryItemRow) -> Self {
        InventoryItem {
            subject_type: row.subject_type,
            external_id: row.external_id,
            display_name: row.display_name,
            payload: row.payload.0,
        }
    }
}

pub const POLICY_COLUMNS: &str = "id, tenant_id, external_id, name, policy_type, payload";

#[derive(FromRow)]
pub struct PolicyRow {
    id: PolicyId,
    tenant_id: TenantId,
    external_id: String,
    name: String,
    policy_type: String,
    payload: Json<serde_json::Value>,
}

impl From<PolicyRow> for Policy {
    fn from(row: PolicyRow) -> Self {
        Policy {
            id: row.id,
            tenant_id: row.tenant_id,
            external_id: row.external_id,
            name: row.name,
            policy_type: row.policy_type,
            payload: row.payload.0,
        }
    }
}

/// Backup sets are aliased `s`; the item count is computed.
pub const BACKUP_SET_COLUMNS: &str = "s.id, s.tenant_id, s.name, \
     (SELECT COUNT(*) FROM backup_set_items i WHERE i.backup_set_id = s.id) AS item_count";

#[derive(FromRow)]
pub struct BackupSetRow {
    id: BackupSetId,
    tenant_id: TenantId,
    name: String,
    item_count: i64,
}

impl From<BackupSetRow> for BackupSet {
    fn from(row: BackupSetRow) -> Self {
        BackupSet {
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            item_count: row.item_count,
        }
    }
}

pub const BACKUP_SET_ITEM_COLUMNS: &str =
    "id, backup_set_id, policy_id, snapshot, added_by_run_id, created_at";

#[derive(FromRow)]
pub struct BackupSetItemRow {
    id: BackupSetItemId,
    backup_set_id: BackupSetId,
    policy_id: PolicyId,
    snapshot: Json<serde_json::Value>,
    added_by_run_id: Option<RunId>,
    created_at: Timestamp,
}

impl From<BackupSetItemRow> for BackupSetItem {
    fn from(row: BackupSetItemRow) -> Self {
        BackupSetItem {
            id: row.id,
            backup_set_id: row.backup_set_id,
            policy_id: row.policy_id,
            snapshot: row.snapshot.0,
            added_by_run_id: row.added_by_run_id,
            created_at: row.created_at,
        }
    }
}

pub const NOTIFICATION_COLUMNS: &str = "id, tenant_id, user_id, kind, payload, read_at, created_at";

#[derive(FromRow)]
pub struct NotificationRow {
    id: NotificationId,
    tenant_id: TenantId,
    user_id: UserId,
    #[sqlx(try_from = "String")]
    kind: NotificationKind,
    payload: Json<RunNotice>,
    read_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Notification {
            id: row.id,
            tenant_id: row.tenant_id,
            user_id: row.user_id,
            kind: row.kind,
            notice: row.payload.0,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}

pub const AUDIT_COLUMNS: &str =
    "id, tenant_id, user_id, action, resource, resource_id, metadata, created_at";

#[derive(FromRow)]
pub struct AuditRow {
    id: AuditLogId,
    tenant_id: TenantId,
    user_id: Option<UserId>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    metadata: Json<serde_json::Value>,
    created_at: Timestamp,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            tenant_id: row.tenant_id,
            user_id: row.user_id,
            action: row.action,
            resource: row.resource,
            resource_id: row.resource_id,
            metadata: row.metadata.0,
            created_at: row.created_at,
        }
    }
}

/// `AUDIT_COLUMNS` of entries aliased `a`, and who acted (`u`, joined left).
pub const TRAIL_COLUMNS: &str = "a.id, a.tenant_id, a.user_id, a.action, a.resource, \
     a.resource_id, a.metadata, a.created_at, u.display_name AS actor_name";

#[derive(FromRow)]
pub struct TrailRow {
    #[sqlx(flatten)]
    entry: AuditRow,
    actor_name: Option<String>,
}

impl From<TrailRow> for TrailEntry {
    fn from(row: TrailRow) -> Self {
        TrailEntry {
            entry: row.entry.into(),
            actor_name: row.actor_name,
        }
    }
}

/// The tenant's slug next to a run row, for deep links (valid in RETURNING).
macro_rules! tenant_slug_column {
    () => {
        "(SELECT t.slug FROM tenants t WHERE t.id = bulk_operation_runs.tenant_id) AS tenant_slug"
    };
}

pub const CLAIM_COLUMNS: &str = concat!(
    "id, tenant_id, user_id, resource, action, item_ids, work_items, processed_items, attempt, \
     created_at, ",
    tenant_slug_column!()
);

#[derive(FromRow)]
pub struct ClaimRow {
    id: RunId,
    tenant_id: TenantId,
    user_id: UserId,
    resource: String,
    action: String,
    item_ids: Json<serde_json::Value>,
    work_items: Json<Vec<String>>,
    processed_items: i64,
    attempt: i64,
    created_at: Timestamp,
    tenant_slug: String,
}

impl ClaimRow {
    pub fn into_domain(self, claimed_at: Timestamp) -> StoreResult<ClaimedRun> {
        Ok(ClaimedRun {
            lease: Lease {
                run_id: self.id,
                tenant_id: self.tenant_id,
                attempt: self.attempt,
            },
            tenant_slug: self.tenant_slug,
            user_id: self.user_id,
            operation: OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)?,
            scope: self.item_ids.0,
            work_items: self.work_items.0,
            resume_at: usize::try_from(self.processed_items).map_err(corrupt)?,
            created_at: self.created_at,
            claimed_at,
        })
    }
}

/// What the engine reads and returns when it moves a run: counters,
/// failures and whom to notify.
pub const RUN_STATE_COLUMNS: &str = concat!(
    "id, tenant_id, user_id, resource, action, status, total_items, processed_items, succeeded, \
     failed, skipped, COALESCE(failures, '[]') AS failures, attempt, max_attempts, \
     cancel_requested_at IS NOT NULL AS abort_requested, created_at, started_at, stalled_at, ",
    tenant_slug_column!()
);

#[derive(FromRow)]
pub struct RunStateRow {
    pub id: RunId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    resource: String,
    action: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    total_items: i64,
    processed_items: i64,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    pub failures: Json<Vec<FailureEntry>>,
    pub attempt: i64,
    pub max_attempts: i64,
    pub abort_requested: bool,
    pub created_at: Timestamp,
    /// Its first claim; none while it was never claimed.
    pub started_at: Option<Timestamp>,
    /// Since when it is flagged stalled.
    pub stalled_at: Option<Timestamp>,
    pub tenant_slug: String,
}

impl RunStateRow {
    pub fn operation(&self) -> StoreResult<OperationKind> {
        OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            total: self.total_items,
            processed: self.processed_items,
            succeeded: self.succeeded,
            failed: self.failed,
            skipped: self.skipped,
        }
    }

    /// Which tenant this run's notices name.
    fn notice_tenant(&self) -> NoticeTenant {
        NoticeTenant {
            id: self.tenant_id,
            slug: self.tenant_slug.clone(),
        }
    }

    /// The "stalled" notice of this run as it now stands.
    pub fn stalled_notice(&self, summary: String) -> StoreResult<RunNotice> {
        Ok(RunNotice::stalled(
            self.notice_tenant(),
            self.id,
            self.operation()?,
            self.counters(),
            summary,
        ))
    }

    /// The "completed" notice of this run as it now stands.
    pub fn finished_notice(&self) -> StoreResult<RunNotice> {
        let operation = self.operation()?;
        Ok(RunNotice::finished(
            self.notice_tenant(),
            self.id,
            operation,
            self.status,
            self.counters(),
            &self.failures.0,
        ))
    }

    pub fn changed(&self) -> Change {
        Change::Run {
            tenant: self.tenant_id,
            run: self.id,
        }
    }

    /// This row after a batch moved it to `status` with `counters`.
    pub fn advanced(
        mut self,
        status: RunStatus,
        counters: Counters,
        failures: Vec<FailureEntry>,
    ) -> Self {
        self.status = status;
        self.processed_items = counters.processed;
        self.succeeded = counters.succeeded;
        self.failed = counters.failed;
        self.skipped = counters.skipped;
        self.failures = Json(failures);
        self
    }
}

#[derive(FromRow)]
pub struct RunAttemptRow {
    attempt: i64,
    worker: String,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    end_reason: Option<String>,
}

impl RunAttemptRow {
    pub fn into_domain(self) -> StoreResult<RunAttempt> {
        Ok(RunAttempt {
            attempt: self.attempt,
            worker: self.worker,
            started_at: self.started_at,
            ended_at: self.ended_at,
            end: self
                .end_reason
                .as_deref()
                .map(AttemptEnd::parse)
                .transpose()
                .map_err(corrupt)?,
        })
    }
}

/// The rollup tables' rows (migration 0012), read by the Insights page.
pub const OUTCOME_ROLLUP_COLUMNS: &str = "hour, resource, action, outcome, runs, items_processed, \
     items_succeeded, items_failed, items_skipped, started_runs, queue_millis, run_millis";

#[derive(FromRow)]
pub struct OutcomeRollupRow {
    hour: Timestamp,
    resource: String,
    action: String,
    #[sqlx(try_from = "String")]
    outcome: RunStatus,
    runs: i64,
    items_processed: i64,
    items_succeeded: i64,
    items_failed: i64,
    items_skipped: i64,
    started_runs: i64,
    queue_millis: i64,
    run_millis: i64,
}

impl OutcomeRollupRow {
    pub fn into_domain(self) -> StoreResult<OutcomeRollup> {
        Ok(OutcomeRollup {
            hour: self.hour,
            operation: OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)?,
            outcome: self.outcome,
            runs: self.runs,
            items_processed: self.items_processed,
            items_succeeded: self.items_succeeded,
            items_failed: self.items_failed,
            items_skipped: self.items_skipped,
            started_runs: self.started_runs,
            queue_millis: self.queue_millis,
            run_millis: self.run_millis,
        })
    }
}

pub const DURATION_ROLLUP_COLUMNS: &str = "hour, resource, action, phase, bucket, runs";

#[derive(FromRow)]
pub struct DurationRollupRow {
    hour: Timestamp,
    resource: String,
    action: String,
    phase: String,
    bucket: i64,
    runs: i64,
}

impl DurationRollupRow {
    pub fn into_domain(self) -> StoreResult<DurationRollup> {
        Ok(DurationRollup {
            hour: self.hour,
            operation: OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)?,
            phase: Phase::parse(&self.phase).map_err(corrupt)?,
            bucket: self.bucket,
            runs: self.runs,
        })
    }
}

pub const REASON_ROLLUP_COLUMNS: &str = "hour, resource, action, reason_code, failures";

#[derive(FromRow)]
pub struct ReasonRollupRow {
    hour: Timestamp,
    resource: String,
    action: String,
    reason_code: String,
    failures: i64,
}

impl ReasonRollupRow {
    pub fn into_domain(self) -> StoreResult<ReasonRollup> {
        Ok(ReasonRollup {
            hour: self.hour,
            operation: OperationKind::from_parts(&self.resource, &self.action).map_err(corrupt)?,
            reason_code: ReasonCode::parse(&self.reason_code).map_err(corrupt)?,
            failures: self.failures,
        })
    }
}
