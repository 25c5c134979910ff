//! The repositories, written once in SQL both databases understand and
//! compiled for each backend. `sql/repositories/` holds one plain Rust file
//! per aggregate: `tenants`, `sign_in_limits`, `runs` and `run_lists`,
//! `queue` and `progress`, `findings`, `inventory`, `backups`,
//! `notifications`, `audit`, `retention`, and `schema` (migrations,
//! readiness). They implement the repository traits for `Store` on the sqlx
//! database `Db`, two names that `sqlite.rs` (`SqliteStore`, `sqlx::Sqlite`)
//! and `postgres.rs` (`PgStore`, `sqlx::Postgres`) each define beside
//! `#[path = "sql/repositories/mod.rs"] mod repositories;`, which makes the
//! directory a module of theirs. So each aggregate is one source file,
//! type-checked against each backend's concrete types, which rustfmt formats
//! and rust-analyzer reads like any other. This module does not declare
//! `repositories`: here it would have no `Store`. Where the dialects differ,
//! the backend supplies it through [`SqlDialect`]; the backend files hold
//! nothing else but transport (connections, pools, LISTEN, change relay) and
//! that inclusion.
//!
//! Why the same source compiled per backend rather than a generic
//! `impl<S: SqlBackend> AuditRepository for S`: the generic form works (a
//! probe of the audit aggregate compiled, `async_trait`'s `Send` futures
//! included) but needs, on every impl and every helper, the executor bounds
//! (`for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database =
//! DB>`, the same for `&Pool<DB>`), `IntoArguments` for the argument buffer,
//! `FromRow` for each row struct and `Encode + Type` for each bound value
//! type: eleven where-clause lines for audit's two statements, some twenty
//! value types for runs and the queue, repeated on each of the ten
//! repository impls because where-clauses on a trait are not implied where
//! it is used. Compiled per backend, the code is checked against concrete
//! types and keeps the SQL and its binds as they were. (A `macro_rules!`
//! per aggregate, expanded for each backend, does the same, but rustfmt and
//! rust-analyzer do not read macro bodies.)
//!
//! What needs no database type is compiled once, in the modules declared
//! here: the dialect trait, the transaction and query-builder helpers below
//! (generic over the database, with the few bounds they need), and the pure
//! rules of an aggregate under its name (`tenants::MembershipChange`,
//! `progress::already_recorded`, `queue::ORPHANED_RUNS` and `lease_expiry`,
//! `run_lists::bucket_counts` and `push_run_filter`, `retention`'s batch
//! sizes), so a unit test of them runs once, not once per backend. An
//! aggregate can still move to the generic form on its own.

use super::{Backend, DbSessionStore, StoreError, StoreResult};
use crate::domain::*;
use sqlx::migrate::Migrator;
use sqlx::{Database, Encode, Pool, QueryBuilder, Transaction, Type};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod findings;
pub mod progress;
pub mod queue;
pub mod retention;
pub mod run_lists;
pub mod tenants;

/// What differs between the backends inside otherwise shared SQL.
pub trait SqlDialect {
    /// Starts a transaction that will write. SQLite needs `BEGIN IMMEDIATE`:
    /// a deferred transaction that reads first fails with SQLITE_BUSY when it
    /// later tries to write.
    const BEGIN_WRITE: &'static str;
    /// How long one batch of background work (the prune's) may take.
    /// Batches go between the foreground's writes (`WriteGate`), so a run
    /// being queued meets at most the batch under way then: on SQLite it
    /// waits for that batch's turn to end; on PostgreSQL its commit flushes
    /// the WAL the batch wrote so far. Batches shrink (down to one row)
    /// until each fits in this.
    const BATCH_BUDGET: Duration;
    /// Appended to the queue's row-picking SELECTs: PostgreSQL skips rows
    /// another worker has locked; SQLite serialises writers anyway.
    const SKIP_LOCKED: &'static str;
    /// Appended to a SELECT whose rows must not change until the transaction
    /// ends: PostgreSQL locks them; SQLite's write transaction already
    /// excludes every other writer.
    const LOCK_ROWS: &'static str;
    /// Run inside the transaction that queues a run, to wake other
    /// processes' workers (PostgreSQL NOTIFY); empty where there are none.
    /// Its `$1` is [`SqlDialect::instance_tag`].
    const NOTIFY_QUEUED: &'static str;

    /// Which database this is.
    const BACKEND: Backend;

    /// What adding a policy the backup set already holds does to that
    /// row. SQLite writes it again unchanged, so that `RETURNING` names it
    /// and one statement tells added from present: its writes take turns,
    /// and a look-up after the insert would be a second statement in every
    /// turn that adds a policy twice. PostgreSQL leaves it (`DO NOTHING`):
    /// a rewrite there is a new row version with its index entries.
    const ON_POLICY_IN_SET: &'static str;

    /// Put after a text column so it compares in byte (code point) order,
    /// as prefix searches need: PostgreSQL's `COLLATE "C"` (its indexes for
    /// them are built so), SQLite's default `BINARY`.
    const BYTE_ORDER: &'static str;

    /// The statements taking and giving back the lock that lets one
    /// instance prune at a time (a PostgreSQL advisory lock; each returns one
    /// bool); `None` where one process owns the database file (SQLite),
    /// whose write turn already orders the prune's batches with every other
    /// write.
    const PRUNE_LOCK: Option<(&'static str, &'static str)>;
    /// Deleted rows stay in table and indexes until a vacuum
    /// (PostgreSQL), so a prune batch that searched from the start would
    /// read every row the batches before it removed: there, batches walk
    /// in the order of each kind's index (`Walk::Time`). SQLite removes
    /// them, and its tables' order is the order rows were written, which
    /// a walk by time would trade for pages scattered over the file.
    const DELETED_ROWS_LINGER: bool;
    /// A row's physical address, for deleting rows of a table without a
    /// single-column key in batches: SQLite's `rowid`, PostgreSQL's `ctid`.
    const ROW_ADDRESS: &'static str;
    /// What goes around a subquery picking the keys of a batch to delete:
    /// `key IN (…)` on SQLite. PostgreSQL plans `IN (…)` as a join and
    /// estimates it by reading the key index's ends, walking over every
    /// entry the prune deleted so far (not vacuumed yet): 66 ms of planning
    /// per batch after 850,000 findings; `= ANY(ARRAY(…))` needs no join.
    const IN_SUBQUERY: (&'static str, &'static str);
    /// The sign-in session table (tower-sessions' own).
    const SESSIONS_TABLE: &'static str;
    /// `x.expiry_date` as a value comparable with a bound `Timestamp`.
    const SESSION_EXPIRY: &'static str;

    /// The text of the JSON key `key` of `item_ids` of the run aliased `run`.
    fn scope_text(run: &str, key: &str) -> String;
    /// The id column `column` as uuid text (`0190…-…`), as JSON holds it.
    fn uuid_text(column: &str) -> String;

    /// Names this store in the wake-ups it sends other processes, so that
    /// its own listener passes them by: its workers were woken in-process.
    fn instance_tag(&self) -> &str;

    /// This dialect's migrations (`migrations/sqlite` or `migrations/postgres`).
    fn migrator() -> &'static Migrator;

    /// The sign-in session store, in this same database.
    fn session_store(&self) -> DbSessionStore;

    /// Where this store's writers meet before the database sees them
    /// (see `WriteGate`).
    fn write_gate(&self) -> &WriteGate;
}

/// Turns the rows of a keyset query (fetched with `limit + 1` to learn
/// whether more exist) into a newest-first page with neighbour cursors.
pub fn finish_page<T>(
    mut rows: Vec<T>,
    request: &PageRequest,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let limit = request.effective_limit() as usize;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    match request.direction {
        Direction::Older => Page {
            older: if has_more {
                rows.last().map(&cursor_of)
            } else {
                None
            },
            newer: if request.cursor.is_some() {
                rows.first().map(&cursor_of)
            } else {
                None
            },
            items: rows,
        },
        Direction::Newer => {
            rows.reverse();
            Page {
                newer: if has_more {
                    rows.first().map(&cursor_of)
                } else {
                    None
                },
                older: rows.last().map(&cursor_of),
                items: rows,
            }
        }
    }
}

/// Connections of `pool` lent out now (open ones not idle).
pub fn in_use<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> usize {
    (pool.size() as usize).saturating_sub(pool.num_idle())
}

/// `NotFound` unless a statement that targets one row changed it.
pub fn one_row_changed(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// SQL list of quoted status names, e.g. `'pending', 'running'`. Only ever
/// built from our own enum, never from input.
pub fn status_list(statuses: &[RunStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where writers meet, in process. Where the database allows one writer at
/// a time (SQLite) they take turns here: waiting on an in-process lock is
/// far cheaper than SQLITE_BUSY back-off sleeps. Background work (the
/// prune, checkpoints) goes between the foreground's writes: on SQLite a
/// queued run would otherwise wait for a prune batch before it is queued
/// and again before it is claimed; on PostgreSQL, whose writers write side
/// by side, its commit would flush the WAL of the batch beside it.
pub struct WriteGate {
    /// The one writer's turn; `None` where writers write side by side.
    turn: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Told whenever a writer takes its turn: work that follows writes
    /// (SQLite's checkpoints) waits on it instead of polling.
    wrote: tokio::sync::Notify,
    foreground: Arc<tokio::sync::watch::Sender<Foreground>>,
}

/// The foreground writers, as background work reads them.
#[derive(Clone, Copy, Debug, Default)]
struct Foreground {
    /// Waiting for their turn or in it.
    writers: usize,
    /// When the last one left its turn.
    last_left: Option<Instant>,
}

/// How long background work leaves the turn free after a foreground
/// writer's: the write that follows one (the claim after a run is
/// queued, the progress after a claim) comes within it.
pub const FOLLOW_UP_GRACE: Duration = Duration::from_millis(1);
/// The longest background work yields to a foreground that never pauses:
/// then it takes its turn in line, so it is slowed, never starved.
pub const LONGEST_YIELD: Duration = Duration::from_millis(50);

/// What background work that has yielded for a while does next.
#[derive(Debug, PartialEq, Eq)]
enum Yield {
    /// Waits until no foreground writer waits or writes.
    UntilQuiet,
    /// Leaves the turn free for a follow-up write this long.
    For(Duration),
    /// Takes its turn, in line with any writer who comes meanwhile.
    Done,
}

impl Foreground {
    fn background_yields(&self, now: Instant, yielded: Duration) -> Yield {
        if yielded >= LONGEST_YIELD {
            return Yield::Done;
        }
        if self.writers > 0 {
            return Yield::UntilQuiet;
        }
        let since = self
            .last_left
            .map(|left| now.saturating_duration_since(left));
        match since.map(|since| FOLLOW_UP_GRACE.saturating_sub(since)) {
            Some(grace) if !grace.is_zero() => Yield::For(grace),
            _ => Yield::Done,
        }
    }
}

impl WriteGate {
    /// For a database that allows one writer at a time.
    pub fn one_writer() -> Self {
        Self::with_turn(Some(Arc::default()))
    }

    /// For a database whose writers write side by side.
    pub fn side_by_side() -> Self {
        Self::with_turn(None)
    }

    fn with_turn(turn: Option<Arc<tokio::sync::Mutex<()>>>) -> Self {
        Self {
            turn,
            wrote: tokio::sync::Notify::new(),
            foreground: Arc::default(),
        }
    }

    async fn take(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Some(self.turn.clone()?.lock_owned().await)
    }

    /// Returns once a writer has taken its turn since the last return.
    pub async fn written(&self) {
        self.wrote.notified().await
    }

    /// A background turn that writes no rows (a checkpoint's), so it tells
    /// no one.
    pub async fn hold_in_background(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let yielding = Instant::now();
        let mut foreground = self.foreground.subscribe();
        loop {
            let yielded = yielding.elapsed();
            let most = LONGEST_YIELD.saturating_sub(yielded);
            let next = foreground
                .borrow_and_update()
                .background_yields(Instant::now(), yielded);
            match next {
                Yield::Done => break,
                Yield::UntilQuiet => {
                    let _ = tokio::time::timeout(most, foreground.changed()).await;
                }
                // The whole grace: a writer who comes and goes meanwhile
                // leaves a grace of its own, checked on waking.
                Yield::For(grace) => tokio::time::sleep(grace.min(most)).await,
            }
        }
        self.take().await
    }

    async fn hold_in_foreground(&self) -> Turn {
        let writer = ForegroundWriter::arrives(self.foreground.clone());
        let turn = self.take().await;
        Turn {
            _turn: turn,
            _writer: Some(writer),
        }
    }
}

/// A foreground writer, counted from when it starts to wait until it
/// leaves its turn or gives up waiting (its future dropped).
struct ForegroundWriter(Arc<tokio::sync::watch::Sender<Foreground>>);

impl ForegroundWriter {
    fn arrives(foreground: Arc<tokio::sync::watch::Sender<Foreground>>) -> Self {
        foreground.send_modify(|f| f.writers += 1);
        Self(foreground)
    }
}

impl Drop for ForegroundWriter {
    fn drop(&mut self) {
        self.0.send_modify(|f| {
            f.writers -= 1;
            f.last_left = Some(Instant::now());
        });
    }
}

/// A writer's turn at the gate (see `SqlDialect::write_gate`); it ends
/// when dropped.
pub struct Turn {
    /// Held where writers take turns.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Set for a foreground writer's turn.
    _writer: Option<ForegroundWriter>,
}

/// Waits for this writer's turn.
pub async fn take_turn(gate: &WriteGate) -> Turn {
    let turn = gate.hold_in_foreground().await;
    gate.wrote.notify_one();
    turn
}

/// Waits for a background writer's turn (the prune's), which yields to
/// the foreground's (see `WriteGate`).
pub async fn take_background_turn(gate: &WriteGate) -> Turn {
    let turn = gate.hold_in_background().await;
    gate.wrote.notify_one();
    Turn {
        _turn: turn,
        _writer: None,
    }
}

/// A write transaction on `pool`, begun with the dialect's `BEGIN_WRITE`
/// in this writer's `turn`.
pub async fn begin_write<DB: Database>(
    turn: Turn,
    pool: &Pool<DB>,
    begin: &'static str,
) -> StoreResult<(Turn, Transaction<'static, DB>)> {
    Ok((turn, pool.begin_with(begin).await?))
}

/// Appends the keyset condition and order for a newest-first list
/// over `<alias>.created_at, <alias>.id`.
pub fn push_keyset<'a, DB>(qb: &mut QueryBuilder<'a, DB>, alias: &str, page: &PageRequest)
where
    DB: Database,
    Timestamp: Encode<'a, DB> + Type<DB>,
    uuid::Uuid: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let (created_at, id) = (format!("{alias}.created_at"), format!("{alias}.id"));
    push_keyset_on(qb, &created_at, &id, page);
}

/// `push_keyset` over the given creation-time and id columns.
pub fn push_keyset_on<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    created_at: &str,
    id: &str,
    page: &PageRequest,
) where
    DB: Database,
    Timestamp: Encode<'a, DB> + Type<DB>,
    uuid::Uuid: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let (op, order) = match page.direction {
        Direction::Older => ("<", "DESC"),
        Direction::Newer => (">", "ASC"),
    };
    if let Some(cursor) = page.cursor {
        qb.push(format!(" AND ({created_at}, {id}) {op} ("));
        qb.push_bind(cursor.at);
        qb.push(", ");
        qb.push_bind(cursor.id);
        qb.push(")");
    }
    qb.push(format!(
        " ORDER BY {created_at} {order}, {id} {order} LIMIT "
    ));
    qb.push_bind(i64::from(page.effective_limit()) + 1);
}

/// Appends `?, ?, …` binding each id, for an `IN (…)` list.
pub fn push_id_list<'a, DB, T>(qb: &mut QueryBuilder<'a, DB>, ids: &[T])
where
    DB: Database,
    T: Copy + Send + 'a + Encode<'a, DB> + Type<DB>,
{
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreground(writers: usize, left_ago: Option<Duration>, now: Instant) -> Foreground {
        Foreground {
            writers,
            last_left: left_ago.map(|ago| now - ago),
        }
    }

    #[test]
    fn background_work_yields_to_foreground_writers_and_their_follow_ups() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Someone waits or writes: until they are done.
        let busy = foreground(2, Some(ms(5)), now);
        assert_eq!(busy.background_yields(now, ms(0)), Yield::UntilQuiet);
        // One just left: the rest of the grace, for the write that follows.
        let just_left = foreground(0, Some(FOLLOW_UP_GRACE / 4), now);
        assert_eq!(
            just_left.background_yields(now, ms(0)),
            Yield::For(FOLLOW_UP_GRACE - FOLLOW_UP_GRACE / 4)
        );
        // Quiet past the grace, or never written: at once.
        let quiet = foreground(0, Some(FOLLOW_UP_GRACE), now);
        assert_eq!(quiet.background_yields(now, ms(0)), Yield::Done);
        assert_eq!(
            Foreground::default().background_yields(now, ms(0)),
            Yield::Done
        );
        // Yielded its longest: in line, however busy the foreground.
        assert_eq!(busy.background_yields(now, LONGEST_YIELD), Yield::Done);
        assert_eq!(just_left.background_yields(now, LONGEST_YIELD), Yield::Done);
    }

    #[tokio::test]
    async fn a_background_turn_comes_after_the_foreground_writers_waiting_for_theirs() {
        let gate = Arc::new(WriteGate::one_writer());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let first = take_turn(&gate).await;
        let background = tokio::spawn({
            let (gate, order) = (gate.clone(), order.clone());
            async move {
                let _turn = take_background_turn(&gate).await;
                order.lock().unwrap().push("background");
            }
        });
        // The background asks first; a foreground writer asks after it.
        tokio::task::yield_now().await;
        let second = tokio::spawn({
            let (gate, order) = (gate.clone(), order.clone());
            async move {
                let _turn = take_turn(&gate).await;
                order.lock().unwrap().push("foreground");
            }
        });
        tokio::task::yield_now().await;
        drop(first);
        background.await.unwrap();
        second.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["foreground", "background"]);
    }

    #[tokio::test]
    async fn side_by_side_writers_share_the_gate_and_background_work_still_waits_for_them() {
        let gate = Arc::new(WriteGate::side_by_side());
        // Two foreground writers at once: neither waits for the other.
        let first = take_turn(&gate).await;
        let second = tokio::time::timeout(Duration::from_secs(5), take_turn(&gate))
            .await
            .expect("a second writer writes beside the first");
        let background = tokio::spawn({
            let gate = gate.clone();
            async move { drop(take_background_turn(&gate).await) }
        });
        tokio::task::yield_now().await;
        assert!(
            !background.is_finished(),
            "background work waits while they write"
        );
        drop((first, second));
        background.await.unwrap();
    }

    #[tokio::test]
    async fn a_foreground_writer_that_gives_up_waiting_is_no_longer_counted() {
        let gate = WriteGate::one_writer();
        let held = take_turn(&gate).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), take_turn(&gate)).await;
        assert!(gave_up.is_err(), "the turn was held");
        assert_eq!(gate.foreground.borrow().writers, 1);
        drop(held);
        assert_eq!(gate.foreground.borrow().writers, 0);
    }

    #[tokio::test]
    async fn a_foreground_that_never_pauses_slows_background_work_but_never_starves_it() {
        let gate = Arc::new(WriteGate::one_writer());
        let mut held = take_turn(&gate).await;
        let background = tokio::spawn({
            let gate = gate.clone();
            async move { take_background_turn(&gate).await._turn.is_some() }
        });
        // Each writer asks before the one in its turn leaves: there is
        // always a foreground writer waiting or writing.
        let mut turns = 0;
        while !background.is_finished() {
            let next = tokio::spawn({
                let gate = gate.clone();
                async move { take_turn(&gate).await }
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(held);
            held = next.await.unwrap();
            turns += 1;
            assert!(turns < 100_000, "the background never got its turn");
        }
        assert!(background.await.unwrap());
    }
}
