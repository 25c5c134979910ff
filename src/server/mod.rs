//! Everything that only runs on the server.

pub mod config;
pub mod http;
pub mod seed;
pub mod store;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;
use store::Store;

/// Shared by every request: axum handlers get it as state, server functions
/// and pages through Leptos context.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Arc<dyn Store>,
}
