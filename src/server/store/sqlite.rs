use super::changes::wire;
use super::peers::Peers;
use super::sql::{in_use, SqlDialect, WriteGate};
use super::{
    Backend, ChangeLog, ChangeRelay, DbSessionStore, QueueSignal, Relayed, StoreError,
    StoreMetrics, StoreResult,
};
use crate::server::metrics::Metrics;
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The embedded database: one file, WAL mode, foreign keys enforced.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection of its own: the engine's writes take turns anyway,
    /// and a connection that made the last change keeps its page cache
    /// (SQLite drops a connection's cache whenever another one wrote).
    /// The same pool for an in-memory database, which is one connection's.
    pub(crate) engine_pool: SqlitePool,
    pub(crate) queued: Arc<Notify>,
    pub(crate) changes: Arc<ChangeLog>,
    pub(crate) metrics: Arc<Metrics>,
    /// Other processes on this file (none for an in-memory database).
    peers: Option<Arc<Peers>>,
    listening_for_changes: Arc<std::sync::Once>,
    pub(crate) settled_counts: Arc<super::settled::SettledCounts>,
    write_gate: Arc<WriteGate>,
    /// Ends the background checkpoints with the last clone of the store.
    _checkpoints: Option<Arc<AbortOnDrop>>,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across application crashes; only an OS
            // crash can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let in_memory = options.get_filename().as_os_str().is_empty()
            || url.contains(":memory:")
            || url.contains("mode=memory");
        // A file's WAL is copied back by `checkpoint_in_background`, not by
        // the commit that crosses 1,000 pages.
        let options = if in_memory {
            options
        } else {
            options.pragma("wal_autocheckpoint", "0")
        };
        let peers = (!in_memory).then(|| Arc::new(Peers::of(options.get_filename())));
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Connect(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let open = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
        };
        let cannot_open =
            |e: sqlx::Error| StoreError::Connect(format!("cannot open the SQLite database: {e}"));
        let pool = open(max_connections.max(1)).await.map_err(cannot_open)?;
        let engine_pool = if in_memory {
            pool.clone()
        } else {
            open(1).await.map_err(cannot_open)?
        };
        let write_gate = Arc::new(WriteGate::one_writer());
        let checkpoints =
            (!in_memory).then(|| checkpoint_in_background(pool.clone(), write_gate.clone()));
        Ok(Self {
            engine_pool,
            pool,
            queued: Arc::default(),
            changes: Arc::default(),
            metrics: Arc::default(),
            peers,
            listening_for_changes: Arc::new(std::sync::Once::new()),
            settled_counts: Arc::default(),
            write_gate,
            _checkpoints: checkpoints.map(|task| Arc::new(AbortOnDrop(task))),
        })
    }
}

/// How long a checkpoint lets writes gather after the first one it follows.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which the WAL is started over (SQLite's own
/// auto-checkpoint starts at 1,000).
const WAL_RESTART_FRAMES: i64 = 1_000;
/// Frames written during a checkpoint few enough for the next one to copy
/// them in the write turn: a few milliseconds' work.
const CAUGHT_UP_FRAMES: i64 = 64;
/// Checkpoints beside writes before one in the turn, however far behind.
const MOST_CATCH_UPS: usize = 8;

/// Copies the WAL's committed pages back into the database file, shortly
/// after writes. SQLite's own auto-checkpoint runs inside the commit that
/// crosses 1,000 pages, so inside our one write turn: every writer waited
/// behind it (it was the p90 of the engine's claims during a prune, 13 ms).
/// A passive checkpoint waits for no reader or writer, so outside the turn
/// it holds no one up. But the WAL only starts over at the front once a
/// checkpoint has copied all of it before the next write, which one beside
/// writes that never pause never does (a prune filled the disk with WAL).
/// So past `WAL_RESTART_FRAMES`, checkpoints beside the writers catch up
/// until few frames are left, one in the turn copies those, and the next
/// writer starts the WAL over.
fn checkpoint_in_background(pool: SqlitePool, gate: Arc<WriteGate>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            gate.written().await;
            tokio::time::sleep(CHECKPOINT_AFTER).await;
            if let Err(e) = checkpoint_round(&pool, &gate).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "cannot checkpoint the SQLite WAL");
            }
        }
    })
}

async fn checkpoint_round(pool: &SqlitePool, gate: &WriteGate) -> Result<(), sqlx::Error> {
    let mut frames = checkpoint(pool).await?;
    for _ in 0..MOST_CATCH_UPS {
        if frames <= WAL_RESTART_FRAMES {
            return Ok(());
        }
        let before = frames;
        frames = checkpoint(pool).await?;
        if frames - before < CAUGHT_UP_FRAMES {
            break;
        }
    }
    if frames > WAL_RESTART_FRAMES {
        let _turn = gate.hold_in_background().await;
        checkpoint(pool).await?;
    }
    Ok(())
}

/// Copies what it can of the WAL into the database file; returns the
/// frames in the WAL (as it was when the checkpoint began: writers beside
/// it may have added more).
async fn checkpoint(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    Ok(frames)
}

/// A background task that ends when this is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SqlDialect for SqliteStore {
    const SKIP_LOCKED: &'static str = "";
    const LOCK_ROWS: &'static str = "";
    const NOTIFY_QUEUED: &'static str = "";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // Batches hold the one write turn; 1 ms measured best (see README).
    const BATCH_BUDGET: Duration = Duration::from_millis(1);
    const BACKEND: Backend = Backend::Sqlite;
    const ON_POLICY_IN_SET: &'static str = "DO UPDATE SET created_at = backup_set_items.created_at";
    const BYTE_ORDER: &'static str = r#"COLLATE BINARY"#;
    const PRUNE_LOCK: Option<(&'static str, &'static str)> = None;
    const DELETED_ROWS_LINGER: bool = false;
    const ROW_ADDRESS: &'static str = "rowid";
    const IN_SUBQUERY: (&'static str, &'static str) = ("IN (", ")");
    const SESSIONS_TABLE: &'static str = "tower_sessions";
    // tower-sessions stores the expiry as date-time text.
    const SESSION_EXPIRY: &'static str = "CAST(strftime('%s', x.expiry_date) AS INTEGER) * 1000000";

    fn scope_text(run: &str, key: &str) -> String {
        format!("json_extract({run}.item_ids, '$.{key}')")
    }

    /// Never sent: SQLite has no NOTIFY_QUEUED.
    fn instance_tag(&self) -> &str {
        ""
    }

    /// Ids are 16-byte BLOBs here.
    fn uuid_text(column: &str) -> String {
        let hex = format!("hex({column})");
        format!(
            "lower(substr({hex}, 1, 8) || '-' || substr({hex}, 9, 4) || '-' || \
             substr({hex}, 13, 4) || '-' || substr({hex}, 17, 4) || '-' || substr({hex}, 21))"
        )
    }

    fn migrator() -> &'static Migrator {
        static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
        &MIGRATOR
    }

    fn session_store(&self) -> DbSessionStore {
        DbSessionStore::Sqlite(tower_sessions_sqlx_store::SqliteStore::new(
            self.pool.clone(),
        ))
    }

    fn write_gate(&self) -> &WriteGate {
        &self.write_gate
    }
}

#[async_trait]
impl QueueSignal for SqliteStore {
    fn queued(&self) -> &Notify {
        &self.queued
    }

    /// One process owns an SQLite file's queue; others' runs are found by polling.
    async fn listen_across_processes(&self) -> StoreResult<()> {
        Ok(())
    }
}

impl StoreMetrics for SqliteStore {
    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn connections_in_use(&self) -> usize {
        match self.peers {
            Some(_) => in_use(&self.pool) + in_use(&self.engine_pool),
            // In memory, the engine's pool is the app's.
            None => in_use(&self.pool),
        }
    }
}

impl ChangeRelay for SqliteStore {
    fn change_log(&self) -> &ChangeLog {
        &self.changes
    }

    /// This process's changes go straight to its own views, and as
    /// datagrams to every other process on the file that listens.
    fn publish_changes(&self) {
        if !self.changes.start_relaying() {
            return;
        }
        let (log, peers) = (self.changes.clone(), self.peers.clone());
        tokio::spawn(async move {
            let sender = peers.as_ref().and_then(|_| {
                tokio::net::UnixDatagram::unbound()
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "cannot send changes to other processes"),
                    )
                    .ok()
            });
            loop {
                let (changes, mark) = log.take().await;
                if let (Some(peers), Some(sender)) = (&peers, &sender) {
                    for payload in wire::encode(&changes) {
                        peers.send(sender, payload.as_bytes()).await;
                    }
                }
                log.deliver(Relayed::Changes(changes.into()));
                log.relayed(mark);
            }
        });
    }

    fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Relayed> {
        let receiver = self.changes.subscribe();
        let (log, peers) = (self.changes.clone(), self.peers.clone());
        self.listening_for_changes.call_once(|| {
            let Some(peers) = peers else { return };
            let listener = match peers.listen() {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other processes' changes: a separate `opshub worker`'s are not seen live");
                    return;
                }
            };
            tokio::spawn(async move {
                loop {
                    match listener.recv().await {
                        Ok(payload) => match wire::decode(&payload) {
                            Some(changes) => log.deliver(Relayed::Changes(changes.into())),
                            None => tracing::warn!("ignored a malformed change datagram"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "lost a change datagram");
                            log.deliver(Relayed::Gap);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
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
type Store = SqliteStore;
type Db = sqlx::Sqlite;
