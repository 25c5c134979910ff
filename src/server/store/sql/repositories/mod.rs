//! The repositories, one file per aggregate, in plain Rust over one
//! backend's concrete types: `Store` (the store) and `Db` (its sqlx
//! database), which the module that includes this directory defines.
//! `sqlite.rs` and `postgres.rs` each include it (`#[path]`), so it is
//! compiled once for each backend; see `sql/mod.rs` for why.

use super::{Db, Store};
use crate::domain::Timestamp;
use crate::server::store::rows::RunStateRow;
use crate::server::store::sql::{self, SqlDialect, Turn};
use crate::server::store::StoreResult;

mod audit;
mod backups;
mod findings;
mod insights;
mod inventory;
mod notifications;
mod progress;
mod queue;
mod retention;
mod run_lists;
mod runs;
mod schema;
mod sign_in_limits;
mod stalls;
mod tenants;

/// This backend's query builder.
type Builder<'a> = sqlx::QueryBuilder<'a, Db>;
/// This backend's connection (a transaction derefs to one).
type Connection = <Db as sqlx::Database>::Connection;

impl Store {
    /// Inside a transaction that queues runs: wakes other processes'
    /// workers once it commits (`SqlDialect::NOTIFY_QUEUED`, naming this
    /// store so that its own listener passes it by).
    async fn notify_queued(&self, conn: &mut Connection) -> StoreResult<()> {
        if !<Store as SqlDialect>::NOTIFY_QUEUED.is_empty() {
            sqlx::query(<Store as SqlDialect>::NOTIFY_QUEUED)
                .bind(self.instance_tag())
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    async fn write_turn(&self) -> Turn {
        sql::take_turn(self.write_gate()).await
    }

    /// A write transaction, in this writer's turn.
    async fn begin_write(&self) -> StoreResult<(Turn, sqlx::Transaction<'static, Db>)> {
        let begin = <Store as SqlDialect>::BEGIN_WRITE;
        sql::begin_write(self.write_turn().await, &self.pool, begin).await
    }

    /// One of the engine's own write transactions (progress,
    /// rescue), on the engine's connections (see `engine_pool`).
    async fn begin_engine_write(&self) -> StoreResult<(Turn, sqlx::Transaction<'static, Db>)> {
        let begin = <Store as SqlDialect>::BEGIN_WRITE;
        sql::begin_write(self.write_turn().await, &self.engine_pool, begin).await
    }

    /// A write transaction of background work (the prune), in a turn that
    /// yields to the foreground's (see `sql::WriteGate`).
    async fn begin_background_write(&self) -> StoreResult<(Turn, sqlx::Transaction<'static, Db>)> {
        let begin = <Store as SqlDialect>::BEGIN_WRITE;
        let turn = sql::take_background_turn(self.write_gate()).await;
        sql::begin_write(turn, &self.pool, begin).await
    }

    /// Counts the runs a committed transaction ended at `at` (their
    /// operation was read already: `runs_ended` refuses a bad one).
    fn count_ended(&self, ended: &[RunStateRow], at: Timestamp) {
        for run in ended {
            if let Ok(operation) = run.operation() {
                self.metrics
                    .run_ended(operation, run.status, run.started_at, at);
            }
        }
    }
}
