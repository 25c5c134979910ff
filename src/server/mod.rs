//! Everything that only runs on the server.

pub mod admin;
pub mod auth;
pub mod bench;
pub mod charts;
pub mod config;
pub mod engine;
pub mod health;
pub mod http;
pub mod hydration_data;
pub mod inventory;
pub mod live;
pub mod metrics;
pub mod operations;
pub mod output;
mod request_check;
pub mod retention;
pub mod security_headers;
pub mod seed;
pub mod store;

use auth::SignInLimiter;
use axum::extract::FromRef;
use config::Settings;
use engine::EngineHealth;
use leptos::prelude::LeptosOptions;
use live::LiveHub;
use std::sync::Arc;
use store::Store;

/// Shared by every request: axum handlers get it as state, server functions
/// and pages through Leptos context.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub sign_in_limiter: Arc<SignInLimiter>,
    pub live: Arc<LiveHub>,
    /// What `/readyz` reads of the engine; a process that only serves has
    /// nothing in it.
    pub engine_health: Arc<EngineHealth>,
}

impl AppState {
    /// Starts the live hub too, so it must run inside the tokio runtime.
    pub fn new(leptos_options: LeptosOptions, store: Arc<dyn Store>, settings: Settings) -> Self {
        let sign_in_limiter = Arc::new(SignInLimiter::new(
            store.clone(),
            settings.sign_in_max_failures,
            std::time::Duration::from_secs(settings.sign_in_window_secs),
            settings.sign_in_max_concurrent_hashes,
        ));
        Self {
            leptos_options,
            live: LiveHub::start(store.clone()),
            store,
            settings: Arc::new(settings),
            sign_in_limiter,
            engine_health: EngineHealth::serve_only(),
        }
    }

    /// The health of the engine this process runs beside the server.
    pub fn with_engine_health(mut self, health: Arc<EngineHealth>) -> Self {
        self.engine_health = health;
        self
    }
}
