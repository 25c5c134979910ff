//! The schema and the connection as a whole: migrations (the dialect's
//! directory), readiness, closing. One implementation for both backends.
//!
//! Here: `SchemaRepository`.

use super::Store;
use crate::server::store::sql::SqlDialect;
use crate::server::store::{Backend, DbSessionStore, SchemaRepository, StoreError, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl SchemaRepository for Store {
    fn backend(&self) -> Backend {
        <Store as SqlDialect>::BACKEND
    }

    fn session_store(&self) -> DbSessionStore {
        <Store as SqlDialect>::session_store(self)
    }

    async fn migrate(&self) -> StoreResult<()> {
        <Store as SqlDialect>::migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Invalid(format!("migration failed: {e}")))?;
        <Store as SqlDialect>::session_store(self).migrate().await
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        let (empty,): (bool,) = sqlx::query_as("SELECT NOT EXISTS (SELECT 1 FROM tenants)")
            .fetch_one(&self.pool)
            .await?;
        Ok(empty)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes both pools; where they are one (SQLite), the second
    /// close finds it closed and returns at once.
    async fn close(&self) {
        self.pool.close().await;
        self.engine_pool.close().await;
    }
}
