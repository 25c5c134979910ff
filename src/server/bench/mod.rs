//! `opshub bench …`: measurements that print figures and assert nothing
//! (the machine decides). Each runs in scratch databases of its own.

mod client;
pub mod dataset;
pub mod engine;
pub mod prune;
pub mod scale;
mod viewers;
pub mod web;

use crate::server::store::Backend;

/// A database of the bench's own, removed when done: a SQLite file in a
/// temporary directory, or a PostgreSQL database on the server of an admin
/// URL.
struct ScratchDb {
    url: String,
    backend: Backend,
    name: String,
    admin_url: String,
}

impl ScratchDb {
    async fn create(backend: Backend, admin_url: &str, name: &str) -> Result<Self, String> {
        let url = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                format!("sqlite://{}/bench.db", dir.display())
            }
            Backend::Postgres => scratch_postgres(admin_url, name).await?,
        };
        Ok(Self {
            url,
            backend,
            name: name.to_string(),
            admin_url: admin_url.to_string(),
        })
    }

    async fn remove(self) {
        match self.backend {
            Backend::Sqlite => {
                let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.name));
            }
            Backend::Postgres => drop_postgres(&self.admin_url, &self.name).await,
        }
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Creates (afresh) the database `name` on the server of `admin_url` and
/// returns its URL.
async fn scratch_postgres(admin_url: &str, name: &str) -> Result<String, String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("cannot reach PostgreSQL at {admin_url}: {e}"))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("cannot create database {name}: {e}"))?;
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let (server, _) = base
        .rsplit_once('/')
        .ok_or("the PostgreSQL URL names no database")?;
    Ok(format!("{server}/{name}"))
}

async fn drop_postgres(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}
