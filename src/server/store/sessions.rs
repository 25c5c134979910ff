//! Sign-in sessions live in the application's own database, whichever it is.

use super::{StoreError, StoreResult};
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

#[derive(Clone, Debug)]
pub enum DbSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    /// Creates the session table (the store owns its own schema).
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            DbSessionStore::Sqlite(store) => store.migrate().await,
            DbSessionStore::Postgres(store) => store.migrate().await,
        }
        .map_err(StoreError::from)
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(store) => store.create(record).await,
            DbSessionStore::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        twice(|| async {
            match self {
                DbSessionStore::Sqlite(store) => store.save(record).await,
                DbSessionStore::Postgres(store) => store.save(record).await,
            }
        })
        .await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        twice(|| async {
            match self {
                DbSessionStore::Sqlite(store) => store.load(id).await,
                DbSessionStore::Postgres(store) => store.load(id).await,
            }
        })
        .await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        twice(|| async {
            match self {
                DbSessionStore::Sqlite(store) => store.delete(id).await,
                DbSessionStore::Postgres(store) => store.delete(id).await,
            }
        })
        .await
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(store) => store.delete_expired().await,
            DbSessionStore::Postgres(store) => store.delete_expired().await,
        }
    }
}

/// Loads, upserts and deletes are safe to repeat: one the database failed
/// (a connection cut mid-query, most likely; the next gets a fresh one) is
/// tried once more before the request fails with a 500.
async fn twice<T, F, Fut>(mut call: F) -> session_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = session_store::Result<T>>,
{
    match call().await {
        Err(session_store::Error::Backend(error)) => {
            tracing::warn!(%error, "the session store failed; trying once more");
            call().await
        }
        outcome => outcome,
    }
}
