//! A year of a large platform, written straight into a scratch database in
//! bulk (PostgreSQL `COPY`, SQLite multi-row inserts in one transaction):
//! tenants, their members, inventory syncs, runs in every status with their
//! start audit entries and failed items, drift findings and notifications.
//! Every record has the shape the app writes (the domain types serialise
//! the JSON columns), so the pages read it as they read their own.
//!
//! One tenant, `big`, holds half of the runs; the rest spread over the other
//! tenants. Everything is derived from the record's number, so a measurement
//! can name a record (the run with the most failures, a drift comparison)
//! without reading it back.

use crate::domain::*;
use sqlx::{PgPool, QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

/// The tenant holding half of the runs, and where the signed-in viewer looks.
pub const BIG_TENANT: &str = "big";
pub const VIEWER_EMAIL: &str = "viewer@scale.example";
pub const VIEWER_PASSWORD: &str = "scale-bench-password";
/// People who start runs; members (operators) of every tenant.
const INITIATORS: usize = 20;
/// Tenants the viewer is a member of (the big one first).
const VIEWER_TENANTS: usize = 10;
const SCOPES: [(&str, &str); 3] = [
    ("devices", "device"),
    ("policies", "policy"),
    ("groups", "group"),
];
/// Completed inventory syncs per tenant and scope; drift runs compare
/// neighbours.
const SYNCS_PER_SCOPE: usize = 10;
/// Failure entries of every run that has failed items (but the worst one).
const FAILURES_PER_FAILING_RUN: usize = 10;
const YEAR_MICROS: i64 = 365 * 86_400_000_000;
/// Rows per COPY or statement batch.
const CHUNK: usize = 20_000;

/// How big the platform is.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub tenants: usize,
    pub runs: usize,
    /// How many of every 100 findings are acknowledged (the others new).
    pub acknowledged_findings_percent: u64,
}

impl Shape {
    /// The run with the most failures has one per 20 runs of the platform
    /// (50,000 at 1,000,000 runs).
    fn worst_run_failures(&self) -> usize {
        (self.runs / 20).max(1)
    }
    /// Runs still queued or running, the newest: 400 at any size (a full
    /// hub page of each in the big tenant). What is in flight follows the
    /// platform's load at the moment, not the length of its history, so
    /// sizes compare the same load.
    fn active_runs(&self) -> usize {
        400.min(self.runs / 2)
    }
    /// One failing run in this many fails for the rare reason: about 20 in
    /// the platform (10 in the big tenant) at any size, so that sizes compare
    /// the same short page.
    fn rare_reason_every(&self) -> u64 {
        (self.runs as u64 / 100).max(1)
    }
    /// Notifications of the viewer in the big tenant (half unread).
    pub fn viewer_notifications(&self) -> usize {
        self.runs / 10
    }
}

/// What the measurements look up in the loaded data.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub shape: Shape,
    pub now: Timestamp,
    pub big_tenant: TenantId,
    pub viewer: UserId,
    pub initiators: Vec<UserId>,
    /// The run with the most failures (in the big tenant).
    pub worst_run: RunId,
    /// A drift run of the big tenant whose comparison has findings.
    pub drift_run: RunId,
    pub drift_scope: DriftScope,
    /// A run of the big tenant, to search for by its id and key.
    pub sample_run: RunId,
    pub sample_key: String,
    /// Rows written, per table, in the order they were written.
    pub rows: Vec<(&'static str, u64)>,
}

/// A connection to the scratch database to load it.
pub enum Loader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One column's value of a loaded row.
enum Value {
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Time(Timestamp),
    Null,
}

impl From<Uuid> for Value {
    fn from(id: Uuid) -> Self {
        Value::Uuid(id)
    }
}
impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}
impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<Timestamp> for Value {
    fn from(at: Timestamp) -> Self {
        Value::Time(at)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

fn json(value: &impl serde::Serialize) -> Value {
    Value::Text(serde_json::to_string(value).expect("domain values serialise"))
}

struct Table {
    name: &'static str,
    columns: &'static [&'static str],
}

impl Loader {
    /// Opens the database at `url` (already migrated) for loading.
    pub async fn connect(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres") {
            PgPool::connect(url)
                .await
                .map(Loader::Postgres)
                .map_err(|e| format!("cannot open {url}: {e}"))
        } else {
            SqlitePool::connect(url)
                .await
                .map(Loader::Sqlite)
                .map_err(|e| format!("cannot open {url}: {e}"))
        }
    }

    /// Writes `rows` into `table`.
    async fn write(&self, table: &Table, rows: Vec<Vec<Value>>) -> Result<(), String> {
        let failed = |e: sqlx::Error| format!("loading {}: {e}", table.name);
        match self {
            Loader::Postgres(pool) => {
                use sqlx::postgres::PgPoolCopyExt;
                let mut copy = pool
                    .copy_in_raw(&format!(
                        "COPY {} ({}) FROM STDIN",
                        table.name,
                        table.columns.join(", ")
                    ))
                    .await
                    .map_err(failed)?;
                let mut text = String::with_capacity(rows.len() * 256);
                for row in &rows {
                    for (n, value) in row.iter().enumerate() {
                        if n > 0 {
                            text.push('\t');
                        }
                        copy_text(&mut text, value);
                    }
                    text.push('\n');
                }
                copy.send(text.into_bytes()).await.map_err(failed)?;
                copy.finish().await.map_err(failed)?;
            }
            Loader::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(failed)?;
                // Well under SQLite's 32,766 bound parameters a statement.
                let per_statement = 30_000 / table.columns.len();
                for batch in rows.chunks(per_statement) {
                    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                        "INSERT INTO {} ({}) ",
                        table.name,
                        table.columns.join(", ")
                    ));
                    qb.push_values(batch, |mut values, row| {
                        for value in row {
                            match value {
                                Value::Uuid(id) => values.push_bind(*id),
                                Value::Text(text) => values.push_bind(text.clone()),
                                Value::Int(n) => values.push_bind(*n),
                                Value::Time(at) => values.push_bind(*at),
                                Value::Null => values.push_bind(None::<String>),
                            };
                        }
                    });
                    qb.build().execute(&mut *tx).await.map_err(failed)?;
                }
                tx.commit().await.map_err(failed)?;
            }
        }
        Ok(())
    }

    /// What a running database does by itself after such an import, done
    /// before anything is timed: PostgreSQL's planner statistics
    /// (autovacuum's ANALYZE; SQLite keeps none unless told, and the app
    /// never tells it, so neither does the bench), and the import written
    /// out of the WAL (a checkpoint). Otherwise the first timings share the
    /// disk with the background writes of millions of imported rows: a
    /// claim p99 of 34 ms instead of 3–5 before a prune, on one machine.
    pub async fn settle(&self) -> Result<(), String> {
        match self {
            Loader::Postgres(pool) => {
                sqlx::query("ANALYZE")
                    .execute(pool)
                    .await
                    .map_err(|e| format!("ANALYZE: {e}"))?;
                // Superusers and pg_checkpoint members only: elsewhere the
                // figures go on, marked.
                if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
                    crate::outln!("  no CHECKPOINT after the import ({e}): the first timings share the disk with its writes");
                }
                Ok(())
            }
            Loader::Sqlite(pool) => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await
                .map(drop)
                .map_err(|e| format!("checkpoint: {e}")),
        }
    }

    /// How many rows `from` (a table and, if need be, `WHERE …`) holds.
    pub async fn count(&self, from: &str) -> Result<u64, String> {
        let sql = format!("SELECT COUNT(*) FROM {from}");
        let counted: Result<(i64,), _> = match self {
            Loader::Postgres(pool) => sqlx::query_as(&sql).fetch_one(pool).await,
            Loader::Sqlite(pool) => sqlx::query_as(&sql).fetch_one(pool).await,
        };
        counted
            .map(|(n,)| n.unsigned_abs())
            .map_err(|e| format!("counting {from}: {e}"))
    }

    pub async fn close(self) {
        match self {
            Loader::Postgres(pool) => pool.close().await,
            Loader::Sqlite(pool) => pool.close().await,
        }
    }
}

/// `value` in COPY's text format: `\N` for null, backslash escapes for the
/// characters that delimit rows and columns.
fn copy_text(out: &mut String, value: &Value) {
    let escaped = |out: &mut String, text: &str| {
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    };
    match value {
        Value::Uuid(id) => out.push_str(&id.to_string()),
        Value::Text(text) => escaped(out, text),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Time(at) => out.push_str(
            &at.to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        Value::Null => out.push_str("\\N"),
    }
}

/// A well-mixed 64-bit number from `n` (splitmix64): the dataset's dice.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A time-ordered id (UUIDv7) of a record made at `at`, unique by `n`.
fn id_at(at: Timestamp, n: u64) -> Uuid {
    let millis = (at.0 / 1_000) as u64;
    let random = mix(n) as u128 | (u128::from(mix(n ^ 0x5555)) << 64);
    let bits = (u128::from(millis) << 80)
        | (0x7u128 << 76)
        | (random & 0x0fff) << 64
        | 0x8000_0000_0000_0000
        | (random >> 64) & 0x3fff_ffff_ffff_ffff;
    Uuid::from_u128(bits)
}

/// Where run `n` of `shape` lives: every other run is the big tenant's.
fn tenant_index(shape: &Shape, n: usize) -> usize {
    if n.is_multiple_of(2) {
        0
    } else {
        1 + (n / 2) % (shape.tenants - 1)
    }
}

fn tenant_slug(index: usize) -> String {
    if index == 0 {
        BIG_TENANT.to_string()
    } else {
        format!("tenant-{index:04}")
    }
}

impl RunFacts {
    /// What an active run has to process (made-up ids its operation
    /// fails or finds nothing for); an ended run's are of no use to anyone.
    fn work_items(&self, n: usize) -> Vec<String> {
        if !self.status.is_active() {
            return Vec::new();
        }
        (0..self.counters.total)
            .map(|i| format!("item-{n}-{i:05}"))
            .collect()
    }
}

/// Everything about run `n` that others refer to.
struct RunFacts {
    id: RunId,
    tenant: usize,
    initiator: usize,
    scope: RunScope,
    status: RunStatus,
    counters: Counters,
    failures: usize,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

struct Generator {
    shape: Shape,
    start: Timestamp,
    tenants: Vec<TenantId>,
    users: Vec<UserId>,
    /// `[tenant][scope][k]`: completed syncs, oldest first.
    syncs: Vec<InventorySyncRunId>,
    worst_run: usize,
}

impl Generator {
    fn sync(&self, tenant: usize, scope: usize, k: usize) -> InventorySyncRunId {
        self.syncs[(tenant * SCOPES.len() + scope) * SYNCS_PER_SCOPE + k]
    }

    fn created_at(&self, n: usize) -> Timestamp {
        let step = YEAR_MICROS / self.shape.runs as i64;
        Timestamp(self.start.0 + step * n as i64 + (mix(n as u64) % step.max(1) as u64) as i64)
    }

    fn run(&self, n: usize) -> RunFacts {
        let tenant = tenant_index(&self.shape, n);
        let dice = mix(n as u64);
        let created_at = self.created_at(n);
        let scope = if n.is_multiple_of(3) {
            RunScope::AddPolicies(AddPoliciesScope {
                backup_set_id: BackupSetId(id_at(created_at, dice ^ 1)),
                policy_ids: (0..3)
                    .map(|p| PolicyId(id_at(created_at, dice ^ (2 + p))))
                    .collect(),
                options: AddPoliciesOptions {
                    include_payload: dice.is_multiple_of(2),
                },
            })
        } else {
            // Runs of one tenant are every other run, a third of them add
            // policies: spread the rest over every scope and comparison.
            let scope = (n / 6) % SCOPES.len();
            let k = (n / 18) % (SYNCS_PER_SCOPE - 1);
            RunScope::Drift(DriftScope {
                scope_key: SCOPES[scope].0.to_string(),
                baseline_run_id: self.sync(tenant, scope, k),
                current_run_id: self.sync(tenant, scope, k + 1),
                subjects: None,
            })
        };
        let status = if n >= self.shape.runs - self.shape.active_runs() {
            if n % 4 < 2 {
                RunStatus::Running
            } else {
                RunStatus::Pending
            }
        } else if n == self.worst_run {
            RunStatus::CompletedWithErrors
        } else {
            match dice % 100 {
                0..70 => RunStatus::Completed,
                70..82 => RunStatus::CompletedWithErrors,
                82..90 => RunStatus::Failed,
                _ => RunStatus::Aborted,
            }
        };
        let failures = match status {
            _ if n == self.worst_run => self.shape.worst_run_failures(),
            RunStatus::CompletedWithErrors | RunStatus::Failed => FAILURES_PER_FAILING_RUN,
            _ => 0,
        } as i64;
        let total = 50.max(failures * 2);
        let counters = match status {
            RunStatus::Pending => Counters {
                total,
                ..Counters::default()
            },
            RunStatus::Running | RunStatus::Aborted => Counters {
                total,
                processed: total / 2,
                succeeded: total / 2,
                ..Counters::default()
            },
            _ => Counters {
                total,
                processed: total,
                succeeded: total - failures,
                failed: failures,
                skipped: 0,
            },
        };
        let started_at = (status != RunStatus::Pending).then(|| created_at.plus_millis(1_500));
        let finished_at =
            (!status.is_active()).then(|| created_at.plus_millis(5_000 + (dice % 120_000) as i64));
        RunFacts {
            id: RunId(id_at(created_at, n as u64)),
            tenant,
            initiator: (dice >> 32) as usize % INITIATORS,
            scope,
            status,
            counters,
            failures: failures as usize,
            created_at,
            started_at,
            finished_at,
        }
    }
}

const TENANTS: Table = Table {
    name: "tenants",
    columns: &["id", "slug", "name", "created_at"],
};
const USERS: Table = Table {
    name: "users",
    columns: &["id", "email", "display_name", "password_hash", "created_at"],
};
const MEMBERSHIPS: Table = Table {
    name: "tenant_memberships",
    columns: &["tenant_id", "user_id", "role", "created_at"],
};
const SYNCS: Table = Table {
    name: "inventory_sync_runs",
    columns: &[
        "id",
        "tenant_id",
        "selection_hash",
        "status",
        "item_count",
        "created_at",
        "finished_at",
    ],
};
const AUDIT: Table = Table {
    name: "audit_logs",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "action",
        "resource",
        "resource_id",
        "metadata",
        "created_at",
    ],
};
const RUNS: Table = Table {
    name: "bulk_operation_runs",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "resource",
        "action",
        "idempotency_key",
        "status",
        "total_items",
        "processed_items",
        "succeeded",
        "failed",
        "skipped",
        "item_ids",
        "work_items",
        "failures",
        "audit_log_id",
        "attempt",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    ],
};
const JOINS: Table = Table {
    name: "run_joins",
    columns: &["id", "tenant_id", "run_id", "user_id", "created_at"],
};
const FAILED_ITEMS: Table = Table {
    name: "run_failed_items",
    columns: &["run_id", "tenant_id", "item_id"],
};
const FAILURE_REASONS: Table = Table {
    name: "run_failure_reasons",
    columns: &["run_id", "tenant_id", "reason_code", "run_created_at"],
};
const FINDINGS: Table = Table {
    name: "findings",
    columns: &[
        "id",
        "tenant_id",
        "finding_type",
        "change_kind",
        "scope_key",
        "baseline_run_id",
        "current_run_id",
        "produced_by_run_id",
        "fingerprint",
        "subject_type",
        "subject_external_id",
        "status",
        "evidence_jsonb",
        "acknowledged_by",
        "acknowledged_at",
        "created_at",
        "updated_at",
    ],
};
const NOTIFICATIONS: Table = Table {
    name: "notifications",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "kind",
        "payload",
        "read_at",
        "created_at",
    ],
};

/// The idempotency key run `n` would have had.
fn run_key(tenant: TenantId, n: usize, operation: OperationKind) -> String {
    idempotency_key(tenant, operation, &[&format!("scale:{n}")])
}

/// The reason only a few runs failed with.
pub const RARE_REASON: ReasonCode = ReasonCode::InternalError;

/// Item `i` of run `n` that failed, with why.
fn failure(n: usize, i: usize, rare_every: u64) -> FailureEntry {
    const REASONS: [(ReasonCode, &str); 6] = [
        (
            ReasonCode::UpstreamUnavailable,
            "The upstream API answered 503 Service Unavailable",
        ),
        (ReasonCode::Timeout, "No answer within 30 s"),
        (ReasonCode::RateLimited, "Throttled: retry after 120 s"),
        (
            ReasonCode::PermissionDenied,
            "The app registration lacks DeviceManagementConfiguration.Read.All",
        ),
        (
            ReasonCode::PolicyNotFound,
            "The policy was deleted upstream",
        ),
        (
            ReasonCode::InvalidPayload,
            "The payload's `settings` field is not an array",
        ),
    ];
    // One failing run in `rare_every` fails its first item for a reason
    // no other run has: the hub's filter by a rare reason.
    if i == 0 && mix(n as u64 ^ 0x7a7e).is_multiple_of(rare_every) {
        let rare = "An unexpected error in the connector";
        return FailureEntry::failed(Some(format!("item-{n}-{i:05}")), RARE_REASON, rare);
    }
    let (code, reason) = REASONS[(mix(n as u64) as usize + i) % REASONS.len()];
    FailureEntry::failed(Some(format!("item-{n}-{i:05}")), code, reason)
}

/// Loads a platform of `shape` through `loader`, every record dated within
/// the year before `now`. The viewer's password hash is given (hashing is
/// deliberately slow).
pub async fn load(
    loader: &Loader,
    shape: Shape,
    now: Timestamp,
    viewer_password_hash: &str,
) -> Result<Dataset, String> {
    let start = Timestamp(now.0 - YEAR_MICROS);
    let tenants: Vec<TenantId> = (0..shape.tenants)
        .map(|t| TenantId(id_at(start, t as u64)))
        .collect();
    // users[0] is the viewer, then the initiators.
    let users: Vec<UserId> = (0..=INITIATORS)
        .map(|u| UserId(id_at(start, 1_000_000 + u as u64)))
        .collect();
    let syncs: Vec<InventorySyncRunId> = (0..shape.tenants * SCOPES.len() * SYNCS_PER_SCOPE)
        .map(|s| {
            let k = s % SYNCS_PER_SCOPE;
            let at = Timestamp(start.0 + YEAR_MICROS / SYNCS_PER_SCOPE as i64 * k as i64);
            InventorySyncRunId(id_at(at, 2_000_000 + s as u64))
        })
        .collect();
    // The newest ended run of the big tenant.
    let active = shape.active_runs();
    let worst_run = (0..shape.runs - active)
        .rev()
        .find(|n| n.is_multiple_of(2))
        .ok_or("too few runs")?;
    let generator = Generator {
        shape,
        start,
        tenants,
        users,
        syncs,
        worst_run,
    };
    let g = &generator;
    let mut rows = Vec::new();

    let tenant_rows = (0..shape.tenants)
        .map(|t| {
            let slug = tenant_slug(t);
            vec![
                g.tenants[t].0.into(),
                slug.as_str().into(),
                format!("Tenant {slug}").into(),
                start.into(),
            ]
        })
        .collect();
    write(loader, &TENANTS, tenant_rows, &mut rows).await?;

    let user_rows = g
        .users
        .iter()
        .enumerate()
        .map(|(u, id)| {
            let (email, name, hash) = if u == 0 {
                (
                    VIEWER_EMAIL.to_string(),
                    "Scale Viewer".to_string(),
                    Some(viewer_password_hash),
                )
            } else {
                (
                    format!("operator-{u:02}@scale.example"),
                    format!("Operator {u:02}"),
                    None,
                )
            };
            vec![
                id.0.into(),
                email.into(),
                name.into(),
                hash.into(),
                start.into(),
            ]
        })
        .collect();
    write(loader, &USERS, user_rows, &mut rows).await?;

    let mut membership_rows: Vec<Vec<Value>> = (0..VIEWER_TENANTS.min(shape.tenants))
        .map(|t| {
            vec![
                g.tenants[t].0.into(),
                g.users[0].0.into(),
                "viewer".into(),
                start.into(),
            ]
        })
        .collect();
    for t in 0..shape.tenants {
        for user in &g.users[1..] {
            membership_rows.push(vec![
                g.tenants[t].0.into(),
                user.0.into(),
                "operator".into(),
                start.into(),
            ]);
        }
    }
    write(loader, &MEMBERSHIPS, membership_rows, &mut rows).await?;

    let sync_rows = g
        .syncs
        .iter()
        .enumerate()
        .map(|(s, id)| {
            let tenant = s / (SCOPES.len() * SYNCS_PER_SCOPE);
            let scope = s / SYNCS_PER_SCOPE % SCOPES.len();
            let at = Timestamp(
                start.0 + YEAR_MICROS / SYNCS_PER_SCOPE as i64 * (s % SYNCS_PER_SCOPE) as i64,
            );
            vec![
                id.0.into(),
                g.tenants[tenant].0.into(),
                SCOPES[scope].0.into(),
                "completed".into(),
                1_000i64.into(),
                at.into(),
                at.plus_millis(60_000).into(),
            ]
        })
        .collect();
    write(loader, &SYNCS, sync_rows, &mut rows).await?;

    for first in (0..shape.runs).step_by(CHUNK) {
        let facts: Vec<RunFacts> = (first..(first + CHUNK).min(shape.runs))
            .map(|n| g.run(n))
            .collect();
        let mut audit_rows = Vec::with_capacity(facts.len());
        let mut run_rows = Vec::with_capacity(facts.len());
        let mut failed_rows = Vec::new();
        let mut reason_rows = Vec::new();
        let mut join_rows = Vec::new();
        for (offset, run) in facts.iter().enumerate() {
            let n = first + offset;
            let tenant = g.tenants[run.tenant];
            let operation = run.scope.operation();
            let audit_id = id_at(run.created_at, 3_000_000_000 + n as u64);
            audit_rows.push(vec![
                audit_id.into(),
                tenant.0.into(),
                g.users[1 + run.initiator].0.into(),
                audit_names::RUN_START.into(),
                audit_names::RUN.into(),
                run.id.to_string().into(),
                json(&serde_json::json!({ "operation": operation.code(), "item_ids": run.scope })),
                run.created_at.into(),
            ]);
            // One run in ten was started again by someone else, who joined it.
            if mix(n as u64 ^ 0x101).is_multiple_of(10) {
                let joined_at = run.created_at.plus_millis(500);
                join_rows.push(vec![
                    id_at(joined_at, 5_000_000_000 + n as u64).into(),
                    tenant.0.into(),
                    run.id.0.into(),
                    g.users[1 + (run.initiator + 1) % INITIATORS].0.into(),
                    joined_at.into(),
                ]);
            }
            let failures: Vec<FailureEntry> = (0..run.failures)
                .map(|i| failure(n, i, g.shape.rare_reason_every()))
                .collect();
            for entry in &failures {
                failed_rows.push(vec![
                    run.id.0.into(),
                    tenant.0.into(),
                    entry.item_id.clone().into(),
                ]);
            }
            // Each of its codes once, as the engine notes them.
            let mut codes: Vec<ReasonCode> = failures.iter().map(|e| e.reason_code).collect();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                reason_rows.push(vec![
                    run.id.0.into(),
                    tenant.0.into(),
                    code.as_str().into(),
                    run.created_at.into(),
                ]);
            }
            let kept = &failures[..failures.len().min(MAX_STORED_FAILURES)];
            let updated_at = run.finished_at.or(run.started_at).unwrap_or(run.created_at);
            run_rows.push(vec![
                run.id.0.into(),
                tenant.0.into(),
                g.users[1 + run.initiator].0.into(),
                operation.resource().into(),
                operation.action().into(),
                run_key(tenant, n, operation).into(),
                run.status.as_str().into(),
                run.counters.total.into(),
                run.counters.processed.into(),
                run.counters.succeeded.into(),
                run.counters.failed.into(),
                run.counters.skipped.into(),
                json(&run.scope),
                json(&run.work_items(n)),
                json(&kept),
                audit_id.into(),
                i64::from(run.started_at.is_some()).into(),
                run.created_at.into(),
                updated_at.into(),
                run.started_at.into(),
                run.finished_at.into(),
            ]);
        }
        write(loader, &AUDIT, audit_rows, &mut rows).await?;
        write(loader, &RUNS, run_rows, &mut rows).await?;
        write(loader, &FAILED_ITEMS, failed_rows, &mut rows).await?;
        write(loader, &FAILURE_REASONS, reason_rows, &mut rows).await?;
        write(loader, &JOINS, join_rows, &mut rows).await?;
    }

    // Findings: drift run `n = j + j/2 + 1` is the j-th drift run (every run
    // not a multiple of 3); each comparison gets one or two.
    let drift_runs = shape.runs - shape.runs.div_ceil(3);
    for first in (0..shape.runs).step_by(CHUNK) {
        let finding_rows = (first..(first + CHUNK).min(shape.runs))
            .map(|f| {
                let j = f % drift_runs;
                let n = j + j / 2 + 1;
                let run = g.run(n);
                let RunScope::Drift(drift) = &run.scope else {
                    unreachable!("run {n} is a drift run")
                };
                let scope = SCOPES
                    .iter()
                    .position(|(key, _)| *key == drift.scope_key)
                    .expect("a scope of the dataset");
                let at = run.finished_at.unwrap_or(run.created_at).plus_millis(1);
                let dice = mix(f as u64 ^ 0xf1d);
                let change = [ChangeKind::Added, ChangeKind::Removed, ChangeKind::Changed][f % 3];
                let acknowledged = dice % 100 < shape.acknowledged_findings_percent;
                let subject = format!("{}-{f}", SCOPES[scope].1);
                vec![
                    FindingId(id_at(at, f as u64)).0.into(),
                    g.tenants[run.tenant].0.into(),
                    FindingType::Drift.as_str().into(),
                    change.as_str().into(),
                    drift.scope_key.as_str().into(),
                    drift.baseline_run_id.0.into(),
                    drift.current_run_id.0.into(),
                    run.id.0.into(),
                    format!("scale:{f:08x}").into(),
                    SCOPES[scope].1.into(),
                    subject.as_str().into(),
                    if acknowledged { "acknowledged" } else { "new" }.into(),
                    json(&serde_json::json!({
                        "display_name": { "before": format!("{subject} (old)"), "after": subject },
                        "fields": { "os_version": { "before": "10.0.1", "after": "10.0.2" } },
                        "changed_fields": ["os_version"],
                        "other_changed_fields": 2,
                    })),
                    acknowledged.then(|| g.users[1].0).into(),
                    acknowledged.then(|| at.plus_millis(3_600_000)).into(),
                    at.into(),
                    at.into(),
                ]
            })
            .collect();
        write(loader, &FINDINGS, finding_rows, &mut rows).await?;
    }

    // Notifications: the viewer's in the big tenant first (half unread),
    // then the initiators' about their own runs (70 % read).
    let viewer_notes = shape.viewer_notifications();
    for first in (0..shape.runs).step_by(CHUNK) {
        let note_rows = (first..(first + CHUNK).min(shape.runs))
            .map(|i| {
                let (user, n, read) = if i < viewer_notes {
                    (g.users[0], 2 * i, i % 2 == 1)
                } else {
                    (g.users[1 + i % INITIATORS], i, mix(i as u64) % 10 < 7)
                };
                let run = g.run(n);
                let tenant = NoticeTenant {
                    id: g.tenants[run.tenant],
                    slug: tenant_slug(run.tenant),
                };
                let operation = run.scope.operation();
                let (kind, notice, at) = match run.finished_at {
                    Some(finished) if i % 2 == 0 => (
                        NotificationKind::RunCompleted,
                        RunNotice::finished(
                            tenant,
                            run.id,
                            operation,
                            run.status,
                            run.counters,
                            &[],
                        ),
                        finished,
                    ),
                    _ => (
                        NotificationKind::RunQueued,
                        RunNotice::queued(tenant, run.id, operation, run.counters.total),
                        run.created_at,
                    ),
                };
                vec![
                    NotificationId(id_at(at, 4_000_000_000 + i as u64)).0.into(),
                    notice.tenant.id.0.into(),
                    user.0.into(),
                    kind.as_str().into(),
                    json(&notice),
                    read.then(|| at.plus_millis(600_000)).into(),
                    at.into(),
                ]
            })
            .collect();
        write(loader, &NOTIFICATIONS, note_rows, &mut rows).await?;
    }

    let worst = g.run(worst_run);
    // A drift run of the big tenant (even, not a multiple of 3) that ended.
    let drift_n = (0..shape.runs - active)
        .rev()
        .find(|n| n % 6 == 2)
        .ok_or("too few runs")?;
    let drift = g.run(drift_n);
    let RunScope::Drift(drift_scope) = drift.scope else {
        unreachable!("run {drift_n} is a drift run")
    };
    let sample_n = shape.runs / 2 - shape.runs / 2 % 2;
    let sample = g.run(sample_n);
    Ok(Dataset {
        shape,
        now,
        big_tenant: g.tenants[0],
        viewer: g.users[0],
        initiators: g.users[1..].to_vec(),
        worst_run: worst.id,
        drift_run: drift.id,
        drift_scope,
        sample_key: run_key(g.tenants[0], sample_n, sample.scope.operation()),
        sample_run: sample.id,
        rows: merge_counts(rows),
    })
}

async fn write(
    loader: &Loader,
    table: &Table,
    rows: Vec<Vec<Value>>,
    counts: &mut Vec<(&'static str, u64)>,
) -> Result<(), String> {
    let written = rows.len() as u64;
    loader.write(table, rows).await?;
    counts.push((table.name, written));
    Ok(())
}

/// Rows per table, tables in the order first written.
fn merge_counts(counts: Vec<(&'static str, u64)>) -> Vec<(&'static str, u64)> {
    let mut merged: Vec<(&'static str, u64)> = Vec::new();
    for (table, n) in counts {
        match merged.iter_mut().find(|(t, _)| *t == table) {
            Some((_, total)) => *total += n,
            None => merged.push((table, n)),
        }
    }
    merged
}
