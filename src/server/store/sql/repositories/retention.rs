//! Retention: `RetentionRepository::prune` executes the policy of
//! `server::retention` in small batches, each its own short write
//! transaction (SQLite: in the store's write turn), sized to the
//! dialect's `BATCH_BUDGET` and going between the foreground's writes
//! (`sql::WriteGate`), so a prune never holds a lock for long nor slows
//! the engine's claims.
//!
//! What goes, kind by kind, in this order (each kind sees what the ones
//! before removed):
//! - findings: acknowledged ones by `acknowledged_at`; new ones stay.
//! - runs: terminal ones whose `finished_at` passed their status's cutoff,
//!   except one a kept finding names as the run that produced it
//!   (`produced_by_run_id`; the findings went first, so an acknowledged
//!   finding's run can go in the same pass). `run_joins`, `run_watchers`,
//!   `run_attempts` and `run_failed_items` go with them (ON DELETE
//!   CASCADE). The other provenance links to a pruned run are nulled by
//!   their foreign keys (`retry_of_run_id`,
//!   `backup_set_items.added_by_run_id`): keeping runs for them would keep
//!   every add-policies run as long as its backup set. Notifications about
//!   a run are governed by their own retention.
//! - notifications: read ones by `read_at`, unread ones by `created_at`.
//! - audit entries by `created_at`, except one a kept run points to
//!   (`audit_log_id`, the record of its start).
//! - inventory syncs (with their items) that ended before the cutoff,
//!   except those a kept finding (`baseline_run_id`/`current_run_id`) or a
//!   kept drift run (`item_ids`) names, and the two newest completed syncs
//!   of each scope (the next drift's inputs).
//! - Insights rollups (the three `run_*rollups` tables) of hours before
//!   their cutoff; they do not follow their runs, which go much sooner.
//! - sessions whose expiry passed.
//!
//! A dry run counts with the same rules, treating records the pass would
//! remove as gone, so it reports what the pass would remove.
//!
//! Here: `RetentionRepository`; the batch sizes are in `sql/retention.rs`.

use super::{Builder, Store};
use crate::domain::*;
use crate::server::retention::{Cutoffs, PruneReport, RetentionPolicy};
use crate::server::store::sql::retention::{next_batch, BATCH, RUN_BATCH, SYNC_BATCH};
use crate::server::store::sql::SqlDialect;
use crate::server::store::{RetentionRepository, StoreResult};
use async_trait::async_trait;

/// `(<alias> prunable)` for runs: terminal and past their status's cutoff.
fn push_run_prunable(qb: &mut Builder<'_>, alias: &str, cutoffs: &Cutoffs) {
    qb.push("(1 = 0");
    for (status, cutoff) in &cutoffs.runs {
        qb.push(format!(
            " OR ({alias}.status = '{}' AND {alias}.finished_at < ",
            status.as_str()
        ));
        qb.push_bind(*cutoff);
        qb.push(")");
    }
    qb.push(")");
}

/// `(<alias> prunable)` for findings: acknowledged before the cutoff.
fn push_finding_prunable(qb: &mut Builder<'_>, alias: &str, cutoffs: &Cutoffs) {
    match cutoffs.acknowledged_findings {
        Some(cutoff) => {
            qb.push(format!(
                "({alias}.status = 'acknowledged' AND {alias}.acknowledged_at < "
            ));
            qb.push_bind(cutoff);
            qb.push(")");
        }
        None => {
            qb.push("(1 = 0)");
        }
    }
}

/// Where a record is kept because a kept one refers to it: `refs`
/// names the referring rows (`FROM … WHERE <link>`). In a pass the
/// referrers that go are already gone, so any referrer keeps it (and
/// one that became prunable meanwhile cannot make a delete fail on
/// its foreign key); a dry run leaves out the referrers it would
/// remove.
fn push_not_referenced(
    qb: &mut Builder<'_>,
    refs: &str,
    dry_run: bool,
    cutoffs: &Cutoffs,
    prunable: fn(&mut Builder<'_>, &str, &Cutoffs),
    alias: &str,
) {
    qb.push(format!(" AND NOT EXISTS (SELECT 1 {refs}"));
    if dry_run {
        qb.push(" AND NOT ");
        prunable(qb, alias, cutoffs);
    }
    // The OFFSET keeps this a probe of the referrers' index per candidate
    // (PostgreSQL turns no sublink with an OFFSET into a join; SQLite takes
    // one only after a LIMIT): as an anti-join it would hash the whole
    // referring table, with the dead rows the pass just left, every batch.
    qb.push(" LIMIT 1 OFFSET 0)");
}

/// Leaves out (`x`) runs a kept finding names as the run that produced it:
/// the run is the finding's provenance, and keeping it spares the prune
/// rewriting every such finding, with all its index entries, to null.
fn push_kept_by_findings(qb: &mut Builder<'_>, run: &str, dry_run: bool, cutoffs: &Cutoffs) {
    push_not_referenced(
        qb,
        &format!("FROM findings f WHERE f.produced_by_run_id = {run}.id"),
        dry_run,
        cutoffs,
        push_finding_prunable,
        "f",
    );
}

/// `x.id IN (the batch's next prunable runs by when they ended)`: one
/// range of the `(status, finished_at)` index per status, merged in time
/// order, each resumed where the last batch stopped.
fn push_runs_due_in_order(qb: &mut Builder<'_>, cutoffs: &Cutoffs, batch: Batch<'_>) {
    qb.push("x.id IN (SELECT due.id FROM (");
    for (i, (status, cutoff)) in cutoffs.runs.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push(format!(
            "(SELECT r.id, r.finished_at FROM bulk_operation_runs r \
             WHERE r.status = '{}' AND r.finished_at < ",
            status.as_str()
        ));
        qb.push_bind(*cutoff);
        batch.push_resume(qb, "r");
        push_kept_by_findings(qb, "r", false, cutoffs);
        qb.push(" ORDER BY r.finished_at LIMIT ");
        qb.push_bind(batch.limit);
        qb.push(")");
    }
    qb.push(") due ORDER BY due.finished_at LIMIT ");
    qb.push_bind(batch.limit);
    qb.push(")");
}

/// How a kind's batches find their rows.
#[derive(Clone, Copy)]
enum Walk {
    /// Each batch looks from the start (small tables, few batches).
    FromStart,
    /// Each batch looks only from where the batch before stopped, in the
    /// order of the index the pick uses: it reads its own rows, not the
    /// ones the batches before it removed (they stay in heap and index
    /// until a vacuum) nor, for a kind whose kept rows are many, the kept
    /// ones again. `Time` walks a timestamp expression of the table's
    /// columns (ties with the last batch's latest stay in reach) where
    /// deleted rows linger (`SqlDialect::DELETED_ROWS_LINGER`), and
    /// searches from the start elsewhere; `Key` walks the table's key.
    Time(&'static str),
    Key,
}

/// Where a walk stopped.
#[derive(Clone, Copy)]
enum WalkedTo {
    Time(Timestamp),
    Key(uuid::Uuid),
}

/// What one batch of a pass picks: the rows after where the walk
/// stopped, at most `limit` of them. A dry run's count has none.
#[derive(Clone, Copy)]
struct Batch<'k> {
    /// The kind's key, which a `Walk::Key` walks.
    key: &'k str,
    walk: Walk,
    walked_to: Option<WalkedTo>,
    limit: i64,
}

impl Batch<'_> {
    /// ` AND <row> comes after the last batch's` for the rows of `alias`
    /// (a time tie with the last batch's latest stays in reach).
    fn push_resume(&self, qb: &mut Builder<'_>, alias: &str) {
        match (self.walk, self.walked_to) {
            (Walk::Time(time), Some(WalkedTo::Time(last))) => {
                qb.push(format!(" AND {alias}.{time} >= "));
                qb.push_bind(last);
            }
            (Walk::Key, Some(WalkedTo::Key(last))) => {
                qb.push(format!(" AND {alias}.{} > ", self.key));
                qb.push_bind(last);
            }
            _ => {}
        }
    }
}

impl Store {
    /// Counts (dry) or deletes, batch by batch, the rows of `table`
    /// that `pick` selects (`FROM <table> x WHERE …`, keyed by `key`;
    /// a pick that walks an index of its own resumes it inside).
    async fn prune_kind(
        &self,
        table: &str,
        key: &str,
        batch: i64,
        walk: Walk,
        dry_run: bool,
        pick: impl Fn(&mut Builder<'_>, Option<Batch<'_>>),
    ) -> StoreResult<u64> {
        if dry_run {
            let mut qb = Builder::new("SELECT COUNT(*)");
            pick(&mut qb, None);
            let (count,): (i64,) = qb.build_query_as().fetch_one(&self.pool).await?;
            return Ok(count.unsigned_abs());
        }
        let walk = match walk {
            Walk::Time(_) if !<Store as SqlDialect>::DELETED_ROWS_LINGER => Walk::FromStart,
            walk => walk,
        };
        let mut total = 0;
        let mut walked_to: Option<WalkedTo> = None;
        let mut limit = batch;
        loop {
            let this_batch = Batch {
                key,
                walk,
                walked_to,
                limit,
            };
            let (open, close) = <Store as SqlDialect>::IN_SUBQUERY;
            let mut qb = Builder::new(format!(
                "DELETE FROM {table} WHERE {key} {open}SELECT x.{key}"
            ));
            pick(&mut qb, Some(this_batch));
            this_batch.push_resume(&mut qb, "x");
            let order = match walk {
                Walk::FromStart => None,
                Walk::Time(time) => Some(time),
                Walk::Key => Some(key),
            };
            if let Some(order) = order {
                qb.push(format!(" ORDER BY {order}"));
            }
            qb.push(" LIMIT ");
            qb.push_bind(limit);
            // Rows another transaction holds are left for the next
            // pass (PostgreSQL), so pruning never waits on users.
            qb.push(<Store as SqlDialect>::SKIP_LOCKED);
            qb.push(close);
            if let Some(order) = order {
                qb.push(format!(" RETURNING {order}"));
            }
            let (_turn, mut tx) = self.begin_background_write().await?;
            let held_from = std::time::Instant::now();
            let (removed, reached) = match walk {
                Walk::FromStart => (qb.build().execute(&mut *tx).await?.rows_affected(), None),
                Walk::Time(_) => {
                    let times: Vec<Timestamp> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
                    (
                        times.len() as u64,
                        times.into_iter().max().map(WalkedTo::Time),
                    )
                }
                Walk::Key => {
                    let keys: Vec<uuid::Uuid> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
                    (keys.len() as u64, keys.into_iter().max().map(WalkedTo::Key))
                }
            };
            tx.commit().await?;
            let held = held_from.elapsed();
            walked_to = reached.or(walked_to);
            total += removed;
            if removed < limit.unsigned_abs() {
                return Ok(total);
            }
            limit = next_batch(limit, batch, held, <Store as SqlDialect>::BATCH_BUDGET);
        }
    }

    async fn prune_pass(&self, cutoffs: &Cutoffs, dry_run: bool) -> StoreResult<PruneReport> {
        let mut report = PruneReport::default();
        if cutoffs.acknowledged_findings.is_some() {
            report.findings = self
                .prune_kind(
                    "findings",
                    "id",
                    BATCH,
                    Walk::Time("acknowledged_at"),
                    dry_run,
                    |qb, _| {
                        qb.push(" FROM findings x WHERE ");
                        push_finding_prunable(qb, "x", cutoffs);
                    },
                )
                .await?;
        }
        if !cutoffs.runs.is_empty() {
            // Where deleted rows linger, the batches walk the runs of every
            // status together in the order they ended, which is about the
            // order they were written: each batch takes its runs from the
            // same few pages (and a run's failed items, joins and attempts
            // from theirs), where a walk per status would come back to
            // every page once per status, each time a new full-page image
            // in the WAL if a checkpoint came between (at 1,000,000 runs:
            // 235,000 images instead of 423,000).
            report.runs = self
                .prune_kind(
                    "bulk_operation_runs",
                    "id",
                    RUN_BATCH,
                    Walk::Time("finished_at"),
                    dry_run,
                    |qb, batch| {
                        qb.push(" FROM bulk_operation_runs x WHERE ");
                        match batch.filter(|batch| matches!(batch.walk, Walk::Time(_))) {
                            Some(batch) => push_runs_due_in_order(qb, cutoffs, batch),
                            None => {
                                push_run_prunable(qb, "x", cutoffs);
                                push_kept_by_findings(qb, "x", dry_run, cutoffs);
                            }
                        }
                    },
                )
                .await?;
        }
        if report.runs > 0 && !dry_run {
            // The hub's remembered counts of long-ended runs included them.
            self.settled_counts.forget_all();
        }
        // Read ones by when they were read, unread ones by age.
        let (read, unread) = (cutoffs.read_notifications, cutoffs.unread_notifications);
        if <Store as SqlDialect>::DELETED_ROWS_LINGER {
            // Each in the order of its own index.
            for (cutoff, walk, pick) in [
                (read, "read_at", "x.read_at IS NOT NULL AND x.read_at < "),
                (
                    unread,
                    "created_at",
                    "x.read_at IS NULL AND x.created_at < ",
                ),
            ] {
                let Some(cutoff) = cutoff else { continue };
                report.notifications += self
                    .prune_kind(
                        "notifications",
                        "id",
                        BATCH,
                        Walk::Time(walk),
                        dry_run,
                        |qb, _| {
                            qb.push(format!(" FROM notifications x WHERE {pick}"));
                            qb.push_bind(cutoff);
                        },
                    )
                    .await?;
            }
        } else if read.is_some() || unread.is_some() {
            report.notifications = self
                .prune_kind(
                    "notifications",
                    "id",
                    BATCH,
                    Walk::FromStart,
                    dry_run,
                    |qb, _| {
                        qb.push(" FROM notifications x WHERE (1 = 0");
                        if let Some(cutoff) = read {
                            qb.push(" OR (x.read_at IS NOT NULL AND x.read_at < ");
                            qb.push_bind(cutoff);
                            qb.push(")");
                        }
                        if let Some(cutoff) = unread {
                            qb.push(" OR (x.read_at IS NULL AND x.created_at < ");
                            qb.push_bind(cutoff);
                            qb.push(")");
                        }
                        qb.push(")");
                    },
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.audit {
            report.audit_entries = self
                .prune_kind(
                    "audit_logs",
                    "id",
                    BATCH,
                    Walk::Time("created_at"),
                    dry_run,
                    |qb, _| {
                        qb.push(" FROM audit_logs x WHERE x.created_at < ");
                        qb.push_bind(cutoff);
                        push_not_referenced(
                            qb,
                            "FROM bulk_operation_runs r WHERE r.audit_log_id = x.id",
                            dry_run,
                            cutoffs,
                            push_run_prunable,
                            "r",
                        );
                    },
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.unused_syncs {
            let sync_id = <Store as SqlDialect>::uuid_text("x.id");
            report.inventory_syncs = self
                .prune_kind("inventory_sync_runs", "id", SYNC_BATCH, Walk::Key, dry_run, |qb, _| {
                    qb.push(
                        " FROM inventory_sync_runs x WHERE x.status IN ('completed', 'failed') \
                         AND COALESCE(x.finished_at, x.created_at) < ",
                    );
                    qb.push_bind(cutoff);
                    qb.push(
                        " AND x.id NOT IN (SELECT n.id FROM inventory_sync_runs n \
                         WHERE n.tenant_id = x.tenant_id AND n.selection_hash = x.selection_hash \
                         AND n.status = 'completed' ORDER BY n.finished_at DESC, n.id DESC LIMIT 2)",
                    );
                    for column in ["baseline_run_id", "current_run_id"] {
                        push_not_referenced(
                            qb,
                            &format!("FROM findings f WHERE f.{column} = x.id"),
                            dry_run,
                            cutoffs,
                            push_finding_prunable,
                            "f",
                        );
                        let named = <Store as SqlDialect>::scope_text("r", column);
                        push_not_referenced(
                            qb,
                            &format!(
                                "FROM bulk_operation_runs r WHERE r.resource = 'drift' AND {named} = {sync_id}"
                            ),
                            dry_run,
                            cutoffs,
                            push_run_prunable,
                            "r",
                        );
                    }
                })
                .await?;
        }
        if let Some(cutoff) = cutoffs.rollups {
            let row = <Store as SqlDialect>::ROW_ADDRESS;
            for table in ["run_rollups", "run_duration_rollups", "run_reason_rollups"] {
                report.rollups += self
                    .prune_kind(table, row, BATCH, Walk::Time("hour"), dry_run, |qb, _| {
                        qb.push(format!(" FROM {table} x WHERE x.hour < "));
                        qb.push_bind(cutoff);
                    })
                    .await?;
            }
        }
        report.sessions = self
            .prune_kind(
                <Store as SqlDialect>::SESSIONS_TABLE,
                "id",
                BATCH,
                Walk::FromStart,
                dry_run,
                |qb, _| {
                    qb.push(format!(
                        " FROM {} x WHERE {} < ",
                        <Store as SqlDialect>::SESSIONS_TABLE,
                        <Store as SqlDialect>::SESSION_EXPIRY
                    ));
                    qb.push_bind(cutoffs.sessions);
                },
            )
            .await?;
        Ok(report)
    }
}

#[async_trait]
impl RetentionRepository for Store {
    async fn prune(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
        dry_run: bool,
    ) -> StoreResult<Option<PruneReport>> {
        let cutoffs = policy.cutoffs(now);
        let Some((lock, unlock)) = <Store as SqlDialect>::PRUNE_LOCK.filter(|_| !dry_run) else {
            return self.prune_pass(&cutoffs, dry_run).await.map(Some);
        };
        // A session lock, on a connection of its own for the pass.
        let mut conn = self.pool.acquire().await?;
        let (locked,): (bool,) = sqlx::query_as(lock).fetch_one(&mut *conn).await?;
        if !locked {
            return Ok(None);
        }
        let report = self.prune_pass(&cutoffs, dry_run).await;
        let unlocked: Result<(bool,), _> = sqlx::query_as(unlock).fetch_one(&mut *conn).await;
        if unlocked.is_err() {
            // The lock must not stay with a pooled connection.
            conn.close_on_drop();
        }
        report.map(Some)
    }
}
