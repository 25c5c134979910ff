//! The HTTP application: Leptos pages and server functions, health check,
//! static assets, compression, tracing and timeouts.

use super::auth::{self, AuthBackend};
use super::metrics::{Metrics, UNMATCHED_ROUTE};
use super::security_headers::{add_security_headers, SecurityHeaders};
use super::AppState;
use crate::api::AppError;
use crate::ui::{shell, App};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_login::AuthManagerLayerBuilder;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::{time, SameSite};
use tower_sessions::{Expiry, SessionManagerLayer};

/// The app's page routes, generated once per process. Generating them runs
/// the app with resource loading suppressed process-wide (a global flag in
/// Leptos): a page rendering meanwhile, in another router of the same
/// process (tests and benches build many), would wait forever on its data.
pub fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

pub fn router(state: AppState) -> Router {
    let routes = route_list();
    let context_state = state.clone();
    let settings = &state.settings;
    let sessions = SessionManagerLayer::new(state.store.session_store())
        .with_name("opshub_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            i64::try_from(settings.session_idle_minutes).unwrap_or(i64::MAX),
        )));
    let auth_layer = AuthManagerLayerBuilder::new(
        AuthBackend::new(state.store.clone(), state.sign_in_limiter.clone()),
        sessions,
    )
    .build();
    let absolute_limit = Duration::from_secs(settings.session_absolute_hours.saturating_mul(3_600));
    Router::new()
        .route("/healthz", get(super::health::healthz))
        .route("/readyz", get(super::health::readyz))
        .route("/api/live/{tenant}", get(super::live::live_stream))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context_state.clone()),
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Pages carry no inline script (the CSP allows none).
        .layer(middleware::from_fn(
            super::hydration_data::without_inline_scripts,
        ))
        .layer(middleware::from_fn(server_fn_error_status))
        .layer(middleware::from_fn(super::request_check::check_request))
        // Innermost first: pages need a session; old sessions end; the
        // session itself; cross-site writes are refused before anything runs.
        .layer(middleware::from_fn(auth::page_guard))
        .layer(middleware::from_fn_with_state(
            absolute_limit,
            auth::absolute_expiry,
        ))
        .layer(auth_layer)
        .layer(middleware::from_fn(auth::same_origin_only))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        // A bug that panics answers 500 and is logged, rather than dropping
        // the connection; tests fail on any 5xx.
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(TraceLayer::new_for_http())
        // Outermost: every answer carries them, the layers' own included.
        .layer(middleware::from_fn_with_state(
            SecurityHeaders::new(settings.secure_cookies),
            add_security_headers,
        ))
        // Around all the rest: the time a request takes, as its client sees it.
        .layer(middleware::from_fn_with_state(
            state.store.metrics().clone(),
            time_request,
        ))
        .with_state(state)
}

/// Records how long the request took under its route template: a raw path
/// names tenants and runs, which would make every request a new series.
async fn time_request(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_request(&route, response.status(), started.elapsed());
    response
}

/// Leptos answers a server function that fails before our code runs (a body
/// that does not decode) with 500. `AppError` knows the right status, so it
/// is read back from the error body; errors our code returns already carry it.
async fn server_fn_error_status(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = error.http_status();
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a request panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        AppError::Internal.to_string(),
    )
        .into_response()
}

/// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let live = state.live.clone();
    // The client address feeds the sign-in limiter.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open live streams would hold the graceful shutdown forever.
            live.close();
        })
        .await
}

/// A channel that turns true on SIGTERM or Ctrl-C: the HTTP server and the
/// engine both stop on it.
pub fn shutdown_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {},
            () = terminate => {},
        }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });
    stopped
}
