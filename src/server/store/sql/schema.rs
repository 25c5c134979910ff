//! The schema and the connection as a whole: migrations (the dialect's
//! directory), readiness, closing. One implementation for both backends.

/// Schema: `SchemaRepository`.
/// Expanded by `impl_sql_repositories!` (see `sql/mod.rs`) for `$store` on
/// database `$db`; the expansion's scope brings the imports and the
/// helpers the other aggregates define.
macro_rules! impl_schema {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl SchemaRepository for $store {
            fn backend(&self) -> Backend {
                <$store as SqlDialect>::BACKEND
            }

            fn session_store(&self) -> DbSessionStore {
                <$store as SqlDialect>::session_store(self)
            }

            async fn migrate(&self) -> StoreResult<()> {
                <$store as SqlDialect>::migrator()
                    .run(&self.pool)
                    .await
                    .map_err(|e| StoreError::Invalid(format!("migration failed: {e}")))?;
                <$store as SqlDialect>::session_store(self).migrate().await
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
    };
}
pub(crate) use impl_schema;
