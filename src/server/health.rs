//! `/healthz` and `/readyz`, for load balancers and orchestrators: public,
//! cheap, plain text.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;

/// A database that takes longer than this to answer `SELECT 1` is not fit
/// to serve.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Fit to take traffic: the database answers, and (where this process runs
/// workers) every worker is alive and rescue is running. 503 with the
/// reason otherwise.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let database = match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("database: {e}")),
        Err(_) => Some(format!(
            "database: no answer within {} s",
            PING_TIMEOUT.as_secs()
        )),
    };
    match database.or_else(|| state.engine_health.problem()) {
        None => (StatusCode::OK, "ready".into()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}
