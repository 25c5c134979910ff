use super::changes::wire;
use super::sql::{in_use, SqlDialect, WriteGate};
use super::{
    wake_workers, Backend, ChangeLog, ChangeRelay, DbSessionStore, QueueSignal, Relayed,
    StoreError, StoreMetrics, StoreResult,
};
use crate::server::metrics::Metrics;
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The production database; several opshub instances may share one.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// The engine's own connections (claims, progress, heartbeats, rescue).
    /// They commit without waiting for the WAL flush: a database crash can
    /// lose the last moments of progress — whole batches, since artifacts,
    /// counters and notification commit together — and rescue redoes them.
    /// Operators' writes (starts, aborts) go through `pool` and stay durable.
    pub(crate) engine_pool: PgPool,
    pub(crate) queued: Arc<Notify>,
    /// The payload of this store's NOTIFYs of queued runs.
    instance_tag: Arc<str>,
    listening: Arc<std::sync::Once>,
    pub(crate) changes: Arc<ChangeLog>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settled_counts: Arc<super::settled::SettledCounts>,
    listening_for_changes: Arc<std::sync::Once>,
    write_gate: Arc<WriteGate>,
}

/// The LISTEN/NOTIFY channel carrying every process's committed changes to
/// the live views of every process.
const CHANGES_CHANNEL: &str = "opshub_changes";

/// The LISTEN/NOTIFY channel on which queued runs wake other processes.
macro_rules! queued_channel {
    () => {
        "opshub_runs_queued"
    };
}

/// The advisory lock key of the prune, so one instance prunes at a time:
/// the bytes of "opshub-p" as a bigint, unlikely to clash with another
/// application's key on a shared server.
macro_rules! prune_lock_key {
    () => {
        "8030045028084755824"
    };
}
/// The same key, for tests that play another instance.
pub const PRUNE_LOCK_KEY: &str = prune_lock_key!();

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect(format!("bad PostgreSQL URL: {e}")))?
            .application_name("opshub");
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        );
        // One direct connection first: a pool would only report a timeout,
        // this says why (refused, unknown host, bad password, no database).
        PgConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Connect(format!("cannot reach PostgreSQL at {target}: {e}")))?
            .close()
            .await
            .ok();
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
        };
        // Opened when the engine first needs it (web-only processes never do).
        let engine_pool = pool_options()
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        let pool = pool_options().connect_with(options).await.map_err(|e| {
            StoreError::Connect(format!("cannot reach PostgreSQL at {target}: {e}"))
        })?;
        Ok(Self {
            pool,
            engine_pool,
            queued: Arc::default(),
            instance_tag: uuid::Uuid::now_v7().to_string().into(),
            listening: Arc::new(std::sync::Once::new()),
            changes: Arc::default(),
            metrics: Arc::default(),
            settled_counts: Arc::default(),
            listening_for_changes: Arc::new(std::sync::Once::new()),
            write_gate: Arc::new(WriteGate::side_by_side()),
        })
    }
}

impl SqlDialect for PgStore {
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const NOTIFY_QUEUED: &'static str = concat!("SELECT pg_notify('", queued_channel!(), "', $1)");
    const BEGIN_WRITE: &'static str = "BEGIN";
    // A batch's commit alone (its WAL flush) takes about 1 ms here, so a
    // 1 ms budget leaves one-row batches; with 3 ms the claims' p99 during
    // a prune stays within a millisecond of the idle one (see README).
    const BATCH_BUDGET: Duration = Duration::from_millis(3);
    const BACKEND: Backend = Backend::Postgres;
    const ON_POLICY_IN_SET: &'static str = "DO NOTHING";
    const BYTE_ORDER: &'static str = r#"COLLATE "C""#;
    const PRUNE_LOCK: Option<(&'static str, &'static str)> = Some((
        concat!("SELECT pg_try_advisory_lock(", prune_lock_key!(), ")"),
        concat!("SELECT pg_advisory_unlock(", prune_lock_key!(), ")"),
    ));
    const DELETED_ROWS_LINGER: bool = true;
    const ROW_ADDRESS: &'static str = "ctid";
    const IN_SUBQUERY: (&'static str, &'static str) = ("= ANY(ARRAY(", "))");
    const SESSIONS_TABLE: &'static str = "tower_sessions.session";
    const SESSION_EXPIRY: &'static str = "x.expiry_date";

    fn scope_text(run: &str, key: &str) -> String {
        format!("({run}.item_ids->>'{key}')")
    }

    fn uuid_text(column: &str) -> String {
        format!("{column}::text")
    }

    fn instance_tag(&self) -> &str {
        &self.instance_tag
    }

    fn migrator() -> &'static Migrator {
        static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");
        &MIGRATOR
    }

    fn session_store(&self) -> DbSessionStore {
        DbSessionStore::Postgres(tower_sessions_sqlx_store::PostgresStore::new(
            self.pool.clone(),
        ))
    }

    fn write_gate(&self) -> &WriteGate {
        &self.write_gate
    }
}

#[async_trait]
impl QueueSignal for PgStore {
    fn queued(&self) -> &Notify {
        &self.queued
    }

    /// Starts (once) a task that turns NOTIFYs into local wake-ups. It
    /// reconnects on its own; while it is down, workers fall back to polling.
    async fn listen_across_processes(&self) -> StoreResult<()> {
        let pool = self.pool.clone();
        let queued = self.queued.clone();
        let own_tag = self.instance_tag.clone();
        self.listening.call_once(|| {
            tokio::spawn(async move {
                loop {
                    match sqlx::postgres::PgListener::connect_with(&pool).await {
                        Ok(mut listener) => {
                            if let Err(e) = listener.listen(queued_channel!()).await {
                                tracing::warn!(error = %e, "cannot LISTEN for queued runs");
                            } else {
                                // A reconnect may have missed notifications.
                                queued.notify_waiters();
                                // Another process's run wakes one worker
                                // here; this store's own woke one already.
                                while let Ok(notice) = listener.recv().await {
                                    if notice.payload() != &*own_tag {
                                        wake_workers(&queued, 1);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot connect to LISTEN for queued runs")
                        }
                    }
                    // A closed store (`close`) listens no more.
                    if pool.is_closed() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        });
        Ok(())
    }
}

impl StoreMetrics for PgStore {
    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn connections_in_use(&self) -> usize {
        in_use(&self.pool) + in_use(&self.engine_pool)
    }
}

impl ChangeRelay for PgStore {
    fn change_log(&self) -> &ChangeLog {
        &self.changes
    }

    /// One NOTIFY per hundred changes; changes recorded while one is sent
    /// go together in the next, so a busy engine costs few statements.
    fn publish_changes(&self) {
        if !self.changes.start_relaying() {
            return;
        }
        let (pool, log) = (self.pool.clone(), self.changes.clone());
        tokio::spawn(async move {
            loop {
                let (changes, mark) = log.take().await;
                for payload in wire::encode(&changes) {
                    let sent = sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANGES_CHANNEL)
                        .bind(&payload)
                        .execute(&pool)
                        .await;
                    if let Err(e) = sent {
                        // Nobody hears these changes: views here reload.
                        tracing::warn!(error = %e, "cannot NOTIFY changes to live views");
                        log.deliver(Relayed::Gap);
                    }
                }
                log.relayed(mark);
            }
        });
    }

    fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Relayed> {
        let receiver = self.changes.subscribe();
        let (pool, log) = (self.pool.clone(), self.changes.clone());
        self.listening_for_changes.call_once(|| {
            tokio::spawn(async move {
                loop {
                    match sqlx::postgres::PgListener::connect_with(&pool).await {
                        Ok(mut listener) => match listener.listen(CHANGES_CHANNEL).await {
                            Ok(()) => loop {
                                match listener.try_recv().await {
                                    Ok(Some(notification)) => match wire::decode(notification.payload()) {
                                        Some(changes) => log.deliver(Relayed::Changes(changes.into())),
                                        None => tracing::warn!("ignored a malformed change notification"),
                                    },
                                    // The connection dropped and will be re-made:
                                    // whatever was sent meanwhile is lost.
                                    Ok(None) => log.deliver(Relayed::Gap),
                                    Err(_) if pool.is_closed() => break,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "lost the LISTEN connection for changes");
                                        log.deliver(Relayed::Gap);
                                        break;
                                    }
                                }
                            },
                            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes"),
                        },
                        Err(e) => tracing::warn!(error = %e, "cannot connect to LISTEN for changes"),
                    }
                    // A closed store (`close`) listens no more.
                    if pool.is_closed() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        });
        receiver
    }
}

/// The repositories (`sql/repositories/`), compiled for this backend: its
/// files name the store `Store` and the database `Db`. The other backend
/// includes the same files, on purpose (see `sql/mod.rs`).
#[path = "sql/repositories/mod.rs"]
#[allow(clippy::duplicate_mod)]
mod repositories;
type Store = PgStore;
type Db = sqlx::Postgres;
