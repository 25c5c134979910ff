//! Test harness: a fresh database of each backend per test.
//!
//! PostgreSQL comes from `OPSHUB_TEST_POSTGRES_URL` (an admin URL that may
//! CREATE DATABASE; `make test` provides one) or 127.0.0.1:5432. If neither
//! answers, the test fails: PostgreSQL tests are never skipped.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod app;
pub mod engine;

use opshub::domain::*;
use opshub::server::store::*;
use sqlx::{Connection, Executor, PgConnection};
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// The server log of this test binary: printed with a failing test's output,
/// and kept, so tests can look for leaked secrets in it. Every harness asks
/// for it before anything logs, so no other subscriber can take its place
/// and leave a search of the log with nothing to read.
pub fn server_log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info,opshub=debug,sqlx=warn")
            .with_ansi(false)
            .with_writer(
                tracing_subscriber::fmt::TestWriter::default().and(move || KeptLog(kept.clone())),
            )
            .try_init()
            .expect("the test log is the only subscriber");
        log
    })
}

/// What the server logged so far.
pub fn server_log_text() -> String {
    String::from_utf8_lossy(&server_log().lock().unwrap()).into_owned()
}

struct KeptLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for KeptLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    cleanup: Cleanup,
}

/// Tables whose rows count as "written" (sessions are bookkeeping).
const DATA_TABLES: [&str; 14] = [
    "tenants",
    "users",
    "tenant_memberships",
    "audit_logs",
    "bulk_operation_runs",
    "inventory_sync_runs",
    "inventory_items",
    "findings",
    "policies",
    "backup_sets",
    "backup_set_items",
    "notifications",
    "run_watchers",
    "notification_subscriptions",
];

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

pub fn postgres_admin_url() -> String {
    std::env::var("OPSHUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let db = Self::unmigrated(backend).await;
        db.store.migrate().await.expect("migrate");
        db
    }

    /// A fresh database whose schema is as an earlier release left it: the
    /// migrations up to `version` applied, none after. `store.migrate()`
    /// then upgrades it as a deployment would.
    pub async fn at_migration(backend: Backend, version: i64) -> Self {
        let db = Self::unmigrated(backend).await;
        let dir = format!("{}/migrations/{}", env!("CARGO_MANIFEST_DIR"), db.dialect());
        let older = tempfile::tempdir().expect("temp dir");
        for entry in std::fs::read_dir(&dir).expect("migrations") {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let number: i64 = name
                .split('_')
                .next()
                .unwrap()
                .parse()
                .expect("numbered migration");
            if number <= version {
                std::fs::copy(&path, older.path().join(&name)).unwrap();
            }
        }
        let migrator = sqlx::migrate::Migrator::new(older.path())
            .await
            .expect("read migrations");
        if db.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            migrator.run(&mut conn).await.expect("older migrations");
        } else {
            let mut conn = PgConnection::connect(&db.url).await.unwrap();
            migrator.run(&mut conn).await.expect("older migrations");
        }
        db
    }

    /// A fresh, empty database (the store connected, no schema yet).
    async fn unmigrated(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                let store = connect(&url, 8).await.expect("open SQLite");
                Self {
                    store,
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let database = format!("opshub_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL could not be reached at {admin_url} ({e}); the conformance \
                         suite needs it. Run the tests through `make test`, which provides one."
                    )
                });
                admin
                    .execute(format!("CREATE DATABASE {database}").as_str())
                    .await
                    .expect("create test database");
                let url = database_url(&admin_url, &database);
                let store = connect(&url, 8).await.expect("connect PostgreSQL");
                Self {
                    store,
                    url,
                    cleanup: Cleanup::Postgres {
                        admin_url,
                        database,
                    },
                }
            }
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// The folder name of this database's migrations.
    pub fn dialect(&self) -> &'static str {
        if self.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        }
    }

    /// Runs raw SQL (several statements allowed) as another program would.
    pub async fn execute(&self, sql: &str) {
        if let Err(e) = self.try_execute(sql).await {
            panic!("{e}: {sql}");
        }
    }

    /// Raw SQL that the database may refuse: its message if it does.
    pub async fn try_execute(&self, sql: &str) -> Result<(), String> {
        let done = if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.map(|_| ())
        } else {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            conn.execute(sql).await.map(|_| ())
        };
        done.map_err(|e| e.to_string())
    }

    /// The one text column of every row a raw query returns: how a reader
    /// written against the spec, not against our types, sees the tables.
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"))
        } else {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"))
        }
    }

    /// Rows in every data table, to prove a request wrote nothing.
    pub async fn count_rows(&self) -> i64 {
        let sql = format!(
            "SELECT {}",
            DATA_TABLES
                .map(|t| format!("(SELECT COUNT(*) FROM {t})"))
                .join(" + ")
        );
        if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// The PostgreSQL database goes with the harness, also when a test panics
/// (SQLite's temp dir removes itself).
impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres {
            admin_url,
            database,
        } = &self.cleanup
        else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), database.clone());
        // Drop runs inside the test's runtime; a thread of its own may block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(std::io::Error::other)?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(std::io::Error::other)
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {database}");
        }
    }
}

/// `admin_url` with its database name replaced.
pub fn database_url(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Runs each test body once per backend, as two tests named
/// `<name>::sqlite` and `<name>::postgres`. The first word says what the
/// body gets, on a database of its own:
///
/// - `store`: a `&dyn Store`, freshly migrated;
/// - `db`: the `&TestDb` itself (raw SQL, its URL);
/// - `db = open`: the `&TestDb` that `open(backend).await` returns (a
///   seeded one, say);
/// - `app`: an `&App`, the whole HTTP app (`App::start`);
/// - `backend`: only the `Backend`, for bodies that build their own.
///
/// ```ignore
/// on_both! { store =>
///     /// What it proves.
///     async fn a_name(store) { … }
/// }
/// ```
#[macro_export]
macro_rules! on_both {
    (store => $($tests:tt)+) => {
        $crate::on_both!(@tests
            [&dyn opshub::server::store::Store] [$crate::support::TestDb::new]
            [db => db.store.as_ref()] $($tests)+);
    };
    (db => $($tests:tt)+) => {
        $crate::on_both!(@tests
            [&$crate::support::TestDb] [$crate::support::TestDb::new] [db => &db] $($tests)+);
    };
    (db = $open:path => $($tests:tt)+) => {
        $crate::on_both!(@tests [&$crate::support::TestDb] [$open] [db => &db] $($tests)+);
    };
    (app => $($tests:tt)+) => {
        $crate::on_both!(@tests
            [&$crate::support::app::App] [$crate::support::app::App::start] [app => &app]
            $($tests)+);
    };
    (backend => $($tests:tt)+) => {
        $crate::on_both!(@tests
            [opshub::server::store::Backend] [std::future::ready] [backend => backend]
            $($tests)+);
    };
    (@tests [$ty:ty] [$open:path] [$fixture:ident => $lend:expr]
        $($(#[$meta:meta])* async fn $name:ident($arg:ident) $body:block)+) => {$(
        $(#[$meta])*
        mod $name {
            use super::*;

            async fn body($arg: $ty) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $fixture = $open(opshub::server::store::Backend::Sqlite).await;
                body($lend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $fixture = $open(opshub::server::store::Backend::Postgres).await;
                body($lend).await;
            }
        }
    )+};
}

/// A tenant with an operator, for tests that need somewhere to put runs.
pub struct Fixture {
    pub tenant: Tenant,
    pub user: User,
}

pub async fn fixture(store: &dyn Store, slug: &str) -> Fixture {
    let tenant = store
        .create_tenant(&TenantSlug::parse(slug).unwrap(), &format!("Tenant {slug}"))
        .await
        .unwrap();
    let user = store
        .create_user(NewUser {
            email: format!("op@{slug}.test"),
            display_name: format!("Operator of {slug}"),
            password_hash: None,
        })
        .await
        .unwrap();
    store
        .set_membership(
            tenant.id,
            user.id,
            Role::Operator,
            MembershipAudit::Unaudited,
        )
        .await
        .unwrap();
    Fixture { tenant, user }
}

/// Another operator of `f`'s tenant.
pub async fn colleague(store: &dyn Store, f: &Fixture, name: &str) -> User {
    member(store, f, name, Role::Operator).await
}

/// Another member of `f`'s tenant, with `role`.
pub async fn member(store: &dyn Store, f: &Fixture, name: &str, role: Role) -> User {
    let user = store
        .create_user(NewUser {
            email: format!("{name}@{}.test", f.tenant.slug),
            display_name: name.to_string(),
            password_hash: None,
        })
        .await
        .unwrap();
    store
        .set_membership(f.tenant.id, user.id, role, MembershipAudit::Unaudited)
        .await
        .unwrap();
    user
}

/// A drift scope over syncs that do not exist: for runs no worker executes.
pub fn devices_scope() -> RunScope {
    RunScope::Drift(DriftScope {
        scope_key: "devices".into(),
        baseline_run_id: InventorySyncRunId(uuid::Uuid::nil()),
        current_run_id: InventorySyncRunId(uuid::Uuid::nil()),
        subjects: None,
    })
}

pub fn new_run(f: &Fixture, key: &str) -> NewRun {
    NewRun {
        id: RunId::generate(),
        tenant_id: f.tenant.id,
        user_id: f.user.id,
        operation: OperationKind::DriftGenerate,
        idempotency_key: key.to_string(),
        item_ids: devices_scope(),
        work_items: vec!["a".into(), "b".into(), "c".into()],
        max_attempts: 3,
        audit: None,
        notification: None,
        retry_of: None,
    }
}

/// Two completed syncs of scope `devices`: dev-1 changes, dev-2 is removed,
/// dev-3 is added.
pub async fn two_syncs(store: &dyn Store, f: &Fixture) -> (InventorySyncRunId, InventorySyncRunId) {
    let item = |id: &str, os: &str| NewInventoryItem {
        subject_type: "device".into(),
        external_id: id.into(),
        display_name: id.to_uppercase(),
        payload: serde_json::json!({ "os": os }),
    };
    let now = Timestamp::now();
    let baseline = store
        .record_inventory_sync(NewInventorySync {
            tenant_id: f.tenant.id,
            selection_hash: "devices".into(),
            finished_at: now.plus_millis(-60_000),
            items: vec![item("dev-1", "10"), item("dev-2", "10")],
        })
        .await
        .unwrap();
    let current = store
        .record_inventory_sync(NewInventorySync {
            tenant_id: f.tenant.id,
            selection_hash: "devices".into(),
            finished_at: now,
            items: vec![item("dev-3", "11"), item("dev-1", "11")],
        })
        .await
        .unwrap();
    (baseline.id, current.id)
}
