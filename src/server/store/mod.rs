//! Persistence: one set of repository traits, implemented once in SQL and
//! instantiated for SQLite and PostgreSQL. The conformance suite in
//! `tests/store_conformance.rs` proves both behave identically.

mod changes;
mod error;
mod peers;
mod postgres;
mod rows;
mod sessions;
mod settled;
mod sql;
mod sql_types;
mod sqlite;
mod types;

pub use changes::{Change, ChangeLog, Relayed};
pub use error::StoreError;
pub use postgres::{PgStore, PRUNE_LOCK_KEY};
pub use sessions::DbSessionStore;
pub use sqlite::SqliteStore;
pub use types::*;

use crate::domain::*;
use async_trait::async_trait;
use std::sync::Arc;

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The URL scheme picks the backend: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://… or postgres://…"
            )),
        }
    }
}

/// Opens the database named by `url` with at most `max_connections`.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::from_url(url).map_err(StoreError::Invalid)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, max_connections).await?),
        Backend::Postgres => Arc::new(PgStore::connect(url, max_connections).await?),
    };
    Ok(store)
}

/// Everything the application needs from its database.
pub trait Store:
    SchemaRepository
    + TenantRepository
    + RunRepository
    + FindingRepository
    + InventoryRepository
    + BackupRepository
    + NotificationRepository
    + AuditRepository
    + QueueRepository
    + QueueSignal
    + ChangeRelay
    + StoreMetrics
    + SignInLimitRepository
    + RetentionRepository
    + InsightsRepository
{
}

impl<T> Store for T where
    T: SchemaRepository
        + TenantRepository
        + RunRepository
        + FindingRepository
        + InventoryRepository
        + BackupRepository
        + NotificationRepository
        + AuditRepository
        + QueueRepository
        + QueueSignal
        + ChangeRelay
        + StoreMetrics
        + SignInLimitRepository
        + RetentionRepository
        + InsightsRepository
{
}

#[async_trait]
pub trait SchemaRepository: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations of this backend's dialect.
    async fn migrate(&self) -> StoreResult<()>;
    /// True when no tenant exists yet (used to decide whether to seed).
    async fn is_empty(&self) -> StoreResult<bool>;
    /// One cheap round trip to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the connections: what is in flight finishes, later calls fail
    /// as `Unavailable`.
    async fn close(&self);
    /// The sign-in session store, in this same database.
    fn session_store(&self) -> DbSessionStore;
}

#[async_trait]
pub trait TenantRepository: Send + Sync {
    async fn create_tenant(&self, slug: &TenantSlug, name: &str) -> StoreResult<Tenant>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>>;
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    /// Grants `role` in `tenant`, replacing an existing role; returns the
    /// role before. `LastAdmin` when it would demote the tenant's last admin:
    /// the check and the change are one transaction (the tenant's memberships
    /// locked), so two admins demoting each other at once leave one. An
    /// audited change writes `membership.grant` in that transaction.
    async fn set_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        audit: MembershipAudit,
    ) -> StoreResult<Option<Role>>;
    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>>;
    /// Everyone with a role in the tenant, by name.
    async fn members(&self, tenant: TenantId) -> StoreResult<Vec<Member>>;
    /// The user's membership in the tenant with this slug, if any.
    async fn membership(&self, user: UserId, tenant_slug: &str) -> StoreResult<Option<Membership>>;
    /// Changes a member's role and returns the role before; `NotFound` for
    /// a non-member, `LastAdmin` as `set_membership`. Audited as
    /// `membership.role_change`.
    async fn change_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        audit: MembershipAudit,
    ) -> StoreResult<Role>;
    /// Removes a membership and returns its role; `NotFound` when there was
    /// none, `LastAdmin` for the tenant's last admin (atomically, as
    /// `set_membership`). Audited as `membership.remove`.
    async fn remove_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        audit: MembershipAudit,
    ) -> StoreResult<Role>;
    /// A user and their password hash, by email (case-insensitive).
    async fn user_credentials(&self, email: &str) -> StoreResult<Option<UserCredentials>>;
    async fn user_credentials_by_id(&self, id: UserId) -> StoreResult<Option<UserCredentials>>;
    /// Also ends the user's live streams (`Change::User`).
    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> StoreResult<()>;
}

/// The sign-in limiter's counts (`auth::limiter`), in the database so that
/// every instance sharing it counts together.
#[async_trait]
pub trait SignInLimitRepository: Send + Sync {
    /// Reserves one attempt against every rule, all or none, in one
    /// transaction whose every reservation is one conditional upsert (so
    /// concurrent attempts cannot overshoot a limit). `Err(wait)` when a rule
    /// refuses: nothing is reserved, and `wait` is how long until it would
    /// allow one.
    async fn reserve_sign_in(
        &self,
        rules: &[LimitRule],
        window: std::time::Duration,
        now: Timestamp,
    ) -> StoreResult<Result<(), std::time::Duration>>;
    /// Gives reserved attempts back (a sign-in that succeeded).
    async fn release_sign_in(&self, keys: &[String]) -> StoreResult<()>;
    /// Deletes counts whose window ended (they are reset when next used
    /// anyway), at most 10,000 a call; returns how many.
    async fn prune_sign_in_limits(&self, now: Timestamp) -> StoreResult<u64>;
}

#[async_trait]
pub trait RunRepository: Send + Sync {
    /// Inserts a pending run, or returns the tenant's active run with the same
    /// idempotency key — decided by the database in one statement. The audit
    /// entry (the start's, or the join's) goes in the same transaction.
    async fn start_run(&self, run: NewRun) -> StoreResult<StartedRun>;
    async fn run(&self, tenant: TenantId, id: RunId) -> StoreResult<Option<RunDetail>>;
    async fn list_runs(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> StoreResult<Page<RunSummary>>;
    async fn count_runs_by_bucket(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
    ) -> StoreResult<BucketCounts>;
    /// Moves a run to `to`, refusing moves `RunStatus::can_transition_to` forbids.
    async fn transition_run(
        &self,
        tenant: TenantId,
        id: RunId,
        to: RunStatus,
    ) -> StoreResult<RunDetail>;
    /// The starts that joined this run while it was active, oldest first.
    async fn run_joins(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunJoin>>;
    /// Every attempt at this run, first first.
    async fn run_attempts(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunAttempt>>;
    /// Every item of this run that failed (not only the entries kept for
    /// display), sorted: what a retry re-runs.
    async fn failed_items(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<String>>;
    /// The runs with these ids, of any tenant (the live feed filters per
    /// stream); missing ids are left out.
    async fn run_summaries(&self, ids: &[RunId]) -> StoreResult<Vec<RunSummary>>;
    /// Runs started to retry this run's failed items, newest first.
    async fn retries_of(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<RunSummary>>;
    /// Inserts runs with their whole history as given (demo data, imports,
    /// benchmarks), in one transaction.
    async fn insert_run_records(&self, runs: &[RunRecord]) -> StoreResult<()>;
}

#[async_trait]
pub trait FindingRepository: Send + Sync {
    /// Inserts a finding or, when its fingerprint exists for the tenant,
    /// returns the existing one untouched apart from `updated_at`.
    async fn upsert_finding(&self, finding: NewFinding) -> StoreResult<Upserted<Finding>>;
    async fn finding(&self, tenant: TenantId, id: FindingId) -> StoreResult<Option<Finding>>;
    async fn list_findings(
        &self,
        tenant: TenantId,
        filter: &FindingFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Finding>>;
    /// Acknowledges the tenant's findings among `ids`; returns how many
    /// changed. Each finding changed gets a `finding.acknowledge` entry by
    /// `by`, in the same transaction.
    async fn acknowledge_findings(
        &self,
        tenant: TenantId,
        ids: &[FindingId],
        by: UserId,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait InventoryRepository: Send + Sync {
    /// Records a completed sync run with its items, atomically.
    async fn record_inventory_sync(&self, sync: NewInventorySync) -> StoreResult<InventorySync>;
    /// Completed syncs of a scope, newest first.
    async fn completed_syncs(
        &self,
        tenant: TenantId,
        selection_hash: &str,
        limit: u32,
    ) -> StoreResult<Vec<InventorySync>>;
    async fn inventory_scopes(&self, tenant: TenantId) -> StoreResult<Vec<InventoryScope>>;
    /// A sync's subjects, in no order (drift looks them up by key).
    async fn inventory_items(
        &self,
        tenant: TenantId,
        sync: InventorySyncRunId,
    ) -> StoreResult<Vec<InventoryItem>>;
    /// The subjects in either of two syncs, without their payloads: what a
    /// drift run compares, listed when it starts. Each once, in no order.
    async fn inventory_subjects(
        &self,
        tenant: TenantId,
        syncs: [InventorySyncRunId; 2],
    ) -> StoreResult<Vec<(String, String)>>;
    /// The display names of the items a drift run names by subject key
    /// (`type:external_id`) in either of its syncs (the current one's
    /// first), for the run page's failure rows.
    async fn inventory_item_names(
        &self,
        tenant: TenantId,
        syncs: [InventorySyncRunId; 2],
        subject_keys: &[String],
    ) -> StoreResult<Vec<(String, String)>>;
}

#[async_trait]
pub trait BackupRepository: Send + Sync {
    async fn create_policy(&self, policy: NewPolicy) -> StoreResult<Policy>;
    async fn list_policies(&self, tenant: TenantId) -> StoreResult<Vec<Policy>>;
    /// The tenant's policies among `ids`; ids of other tenants are ignored.
    async fn policies_by_ids(&self, tenant: TenantId, ids: &[PolicyId])
        -> StoreResult<Vec<Policy>>;
    async fn create_backup_set(&self, tenant: TenantId, name: &str) -> StoreResult<BackupSet>;
    async fn list_backup_sets(&self, tenant: TenantId) -> StoreResult<Vec<BackupSet>>;
    async fn backup_set(&self, tenant: TenantId, id: BackupSetId)
        -> StoreResult<Option<BackupSet>>;
    /// Snapshots a policy into a set; `AlreadyPresent` when it is there.
    async fn add_to_backup_set(&self, item: NewBackupSetItem) -> StoreResult<AddOutcome>;
    async fn backup_set_items(
        &self,
        tenant: TenantId,
        set: BackupSetId,
    ) -> StoreResult<Vec<BackupSetItem>>;
}

/// A run's "queued" notice goes to whoever started it; its "completed"
/// notice, written with the change that ends it, to its initiator, to every
/// other user whose start joined it, to everyone watching it and, when it
/// ended `failed` or `completed_with_errors`, to the tenant's admins
/// subscribed to `Subscription::FailedOrPartial`: once each.
#[async_trait]
pub trait NotificationRepository: Send + Sync {
    async fn create_notification(&self, notification: NewNotification)
        -> StoreResult<Notification>;
    /// The user's notifications in the tenant that `filter` keeps, newest first.
    async fn list_notifications(
        &self,
        tenant: TenantId,
        user: UserId,
        filter: &NotificationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Notification>>;
    /// The user's unread notifications in the tenant, counted up to
    /// `UNREAD_COUNT_CAP`.
    async fn unread_count(&self, tenant: TenantId, user: UserId) -> StoreResult<i64>;
    /// Marks one of the user's notifications read and returns it; `NotFound`
    /// for anyone else's.
    async fn mark_read(
        &self,
        tenant: TenantId,
        user: UserId,
        id: NotificationId,
    ) -> StoreResult<Notification>;
    /// Marks the user's unread notifications of `kind` (of every kind when
    /// `None`) read; returns how many.
    async fn mark_all_read(
        &self,
        tenant: TenantId,
        user: UserId,
        kind: Option<NotificationKind>,
    ) -> StoreResult<u64>;
    /// Adds the member to the run's watchers (any run of the tenant; once,
    /// however often asked). `NotFound` for a run not in the tenant.
    async fn watch_run(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<()>;
    /// Takes the user off the run's watchers, if they were on it.
    /// `NotFound` for a run not in the tenant.
    async fn unwatch_run(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<()>;
    async fn is_watching(&self, tenant: TenantId, run: RunId, user: UserId) -> StoreResult<bool>;
    /// Turns one of the member's subscriptions on or off (idempotent). Who
    /// may subscribe is the caller's rule (admins, `api::notifications`);
    /// who is notified is checked again when a run ends.
    async fn set_subscription(
        &self,
        tenant: TenantId,
        user: UserId,
        subscription: Subscription,
        subscribed: bool,
    ) -> StoreResult<()>;
    /// The member's subscriptions in the tenant.
    async fn subscriptions(&self, tenant: TenantId, user: UserId)
        -> StoreResult<Vec<Subscription>>;
}

#[async_trait]
pub trait AuditRepository: Send + Sync {
    async fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    async fn audit_entry(
        &self,
        tenant: TenantId,
        id: AuditLogId,
    ) -> StoreResult<Option<AuditEntry>>;
    async fn list_audit(&self, tenant: TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    /// Every entry about the run (start or retry, joins, abort), oldest
    /// first, with who acted.
    async fn run_audit_trail(&self, tenant: TenantId, run: RunId) -> StoreResult<Vec<TrailEntry>>;
}

/// Retention (`server::retention`): records past their kind's cutoff go,
/// in batches of short transactions; active runs and whatever a kept record
/// points to stay (store/sql/repositories/retention.rs has the rules).
#[async_trait]
pub trait RetentionRepository: Send + Sync {
    /// One pass of `policy` at `now`: what went per kind, or with `dry_run`
    /// what would go (nothing is deleted). `None` when another instance is
    /// pruning the database (PostgreSQL advisory lock); the pass is skipped.
    async fn prune(
        &self,
        policy: &crate::server::retention::RetentionPolicy,
        now: Timestamp,
        dry_run: bool,
    ) -> StoreResult<Option<crate::server::retention::PruneReport>>;
}

/// The work queue the engine drives. Claims and every later write are fenced
/// on the claim (`Lease`), so a worker that lost its run changes nothing.
/// The rollups of ended runs the Insights page and the run page read
/// (written by whatever ends a run, in its transaction).
#[async_trait]
pub trait InsightsRepository: Send + Sync {
    /// A tenant's rollup rows of the hours from `since` on, of one operation
    /// or all: one range of each rollup table's primary key.
    async fn rollups(
        &self,
        tenant: TenantId,
        since: Timestamp,
        operation: Option<OperationKind>,
    ) -> StoreResult<Rollups>;
}

#[async_trait]
pub trait QueueRepository: Send + Sync {
    /// Claims the oldest pending runs for `owner`, each leased for
    /// `lease_for`: the oldest always, more while `limit` allows. Oldest first;
    /// empty when nothing is pending.
    async fn claim_runs(
        &self,
        owner: &str,
        lease_for: std::time::Duration,
        limit: ClaimLimit,
    ) -> StoreResult<Vec<ClaimedRun>>;
    /// The runs still leased to `owner`, leased again for `lease_for` under
    /// the same claim (same attempt): what a worker holds without knowing it
    /// when the answer to its claim was lost (the connection broke as the
    /// claim committed). Oldest first.
    async fn reclaim_runs(
        &self,
        owner: &str,
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<ClaimedRun>>;
    /// Writes batches of item results of several runs, with their artifacts,
    /// counters and failures, in one transaction, and renews their leases; a
    /// run whose batch ends it also takes the status `RunStatus::for_outcome`
    /// gives it, and everyone who asked for it is notified (see
    /// `NotificationRepository`). Each run is fenced on its lease, on its
    /// recorded count and on no abort having been requested: a refused run
    /// has nothing of it written, the others are written whole.
    /// A batch the run already counts (sent again after a lost answer) is
    /// reported `Recorded` and not written twice. One outcome per batch, in
    /// order.
    async fn record_progress(
        &self,
        lease_for: std::time::Duration,
        progress: &[RunProgress],
    ) -> StoreResult<Vec<ProgressOutcome>>;
    /// Extends the lease (the heartbeat) and reports whether an abort waits.
    async fn renew_lease(
        &self,
        lease: &Lease,
        lease_for: std::time::Duration,
    ) -> StoreResult<LeaseState>;
    /// Ends a running run whose abort was requested, with the work recorded
    /// so far counted. False when the lease was lost meanwhile.
    async fn finish_aborted(&self, lease: &Lease) -> StoreResult<bool>;
    /// Runs whose lease expired: released (still running) for another
    /// worker to take over while attempts remain, otherwise failed with
    /// `worker_lost` (or aborted, when that was requested). What to do is
    /// `domain::LostLease::decide`'s call.
    async fn rescue_expired(&self) -> StoreResult<RescueReport>;
    /// How many runs wait to be claimed, and when the oldest was queued.
    async fn queue_depth(&self) -> StoreResult<QueueDepth>;
    /// Running runs whose lease is alive at `now`, not flagged stalled,
    /// whose progress has not moved since `before`: what a stall check
    /// weighs (`engine::stalls`). The 200 longest still, longest first.
    async fn standing_still(&self, now: Timestamp, before: Timestamp)
        -> StoreResult<Vec<StillRun>>;
    /// Flags `run` stalled at `now` and, in the same transaction, tells
    /// whoever asked for it (`NotificationKind::RunStalled`) and writes the
    /// audit entry (`run.stall`). Fenced on the run as `standing_still`
    /// read it: false when its progress moved, its lease changed, or it is
    /// flagged already (another instance got there first). The progress
    /// write that next moves it clears the flag (`run.stall_clear`).
    async fn flag_stalled(
        &self,
        run: &StillRun,
        still: StandingStill,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// An operator's abort: a pending run ends at once, a running one is
    /// flagged for its worker. The audit entry is written with it.
    async fn request_abort(
        &self,
        tenant: TenantId,
        id: RunId,
        audit: NewAuditEntry,
    ) -> StoreResult<AbortOutcome>;
}

/// How workers learn that runs were queued without polling.
#[async_trait]
pub trait QueueSignal: Send + Sync {
    /// Notified whenever this process queues runs or releases them for
    /// another worker ([`wake_workers`]).
    fn queued(&self) -> &tokio::sync::Notify;
    /// Also wakes `queued` for runs other processes queue (PostgreSQL
    /// LISTEN/NOTIFY); a no-op where only one process writes.
    async fn listen_across_processes(&self) -> StoreResult<()>;
}

/// Wakes one worker per run queued: as many as wait, and if fewer wait, the
/// next worker to wait finds the wake-up kept for it (so none is lost while
/// the workers are busy). Waking every waiting worker for one run would
/// have all but one claim nothing.
pub fn wake_workers(queued: &tokio::sync::Notify, runs: usize) {
    for _ in 0..runs {
        queued.notify_one();
    }
}

/// What `/metrics` reads of the store (`server/metrics.rs`).
pub trait StoreMetrics: Send + Sync {
    /// This process's metrics. The store counts runs where their start,
    /// first claim and end commit, whichever path ends them.
    fn metrics(&self) -> &Arc<crate::server::metrics::Metrics>;
    /// Connections of this process's pools in use now.
    fn connections_in_use(&self) -> usize;
}

/// How live views learn what changed, whichever process changed it. The
/// store records every change it commits in its [`ChangeLog`]; the relay
/// carries them to every process that shares the database.
pub trait ChangeRelay: Send + Sync {
    fn change_log(&self) -> &ChangeLog;
    /// Starts (once) relaying this process's committed changes: PostgreSQL
    /// NOTIFYs every process; SQLite hands them to its own subscribers and
    /// sends them to the other processes on the file (`peers`).
    fn publish_changes(&self);
    /// Committed changes of every process sharing the database.
    fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Relayed>;
}
