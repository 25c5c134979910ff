use super::sql::{impl_sql_repositories, SqlDialect};
use super::{Backend, DbSessionStore, SchemaRepository, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The production database; several opshub instances may share one.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

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
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Connect(format!("cannot reach PostgreSQL at {target}: {e}"))
            })?;
        Ok(Self { pool })
    }
}

impl SqlDialect for PgStore {
    const BEGIN_WRITE: &'static str = "BEGIN";
}

#[async_trait]
impl SchemaRepository for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn session_store(&self) -> DbSessionStore {
        DbSessionStore::Postgres(tower_sessions_sqlx_store::PostgresStore::new(
            self.pool.clone(),
        ))
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Invalid(format!("migration failed: {e}")))?;
        self.session_store().migrate().await
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        let (empty,): (bool,) = sqlx::query_as("SELECT NOT EXISTS (SELECT 1 FROM tenants)")
            .fetch_one(&self.pool)
            .await?;
        Ok(empty)
    }
}

impl_sql_repositories!(PgStore, sqlx::Postgres);
