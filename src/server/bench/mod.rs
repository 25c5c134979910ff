//! `opshub bench …`: measurements that print figures and assert nothing
//! (the machine decides). Each runs in scratch databases of its own.

mod client;
pub mod dataset;
pub mod engine;
pub mod prune;
pub mod scale;
mod viewers;
pub mod web;

use crate::domain::*;
use crate::server::config::Settings;
use crate::server::live::LiveHub;
use crate::server::store::{Backend, RunRecord, Store};
use crate::server::{http, AppState};
use std::sync::Arc;

/// The app served over TCP on a free port, in this process, as a browser
/// reaches it. Run from the repository root (the Leptos configuration).
struct LocalServer {
    addr: std::net::SocketAddr,
    live: Arc<LiveHub>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    async fn start(store: Arc<dyn Store>) -> Result<Self, String> {
        let leptos_options = leptos::prelude::get_configuration(None)
            .map_err(|e| format!("leptos configuration: {e}"))?
            .leptos_options;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = AppState::new(leptos_options, store, Settings::default());
        let live = state.live.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(http::serve(state, listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            live,
            stop,
            serving,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }
}

/// A queued drift run of `tenant` whose scope names nothing: for live
/// views to be told about, never executed.
fn queued_run(tenant: TenantId, user: UserId, key: String, created_at: Timestamp) -> RunRecord {
    RunRecord {
        id: RunId::generate(),
        tenant_id: tenant,
        user_id: user,
        operation: OperationKind::DriftGenerate,
        idempotency_key: Some(key),
        status: RunStatus::Pending,
        counters: Counters::default(),
        item_ids: RunScope::Drift(DriftScope {
            scope_key: "bench".into(),
            baseline_run_id: InventorySyncRunId(uuid::Uuid::nil()),
            current_run_id: InventorySyncRunId(uuid::Uuid::nil()),
            subjects: None,
        }),
        work_items: Vec::new(),
        failures: Vec::new(),
        attempt: 0,
        created_at,
        started_at: None,
        finished_at: None,
    }
}

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
