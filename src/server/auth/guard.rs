//! Request guards around the whole application.

use super::AuthSession;
use crate::domain::{sign_in_path, Timestamp};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::time::Duration;

/// Session key holding when the user signed in (for the absolute expiry).
pub const SIGNED_IN_AT: &str = "opshub.signed_in_at";

/// Paths anyone may GET: the sign-in page, health, assets (the sign-in page
/// hydrates with `/hydrate.js` and `/pkg/…`). Server functions
/// (`/api/…`) answer 401 themselves instead of redirecting.
fn is_public(path: &str) -> bool {
    path == "/sign-in"
        || path == "/healthz"
        || path == "/readyz"
        || path == "/favicon.ico"
        || path == "/hydrate.js"
        || path.starts_with("/pkg/")
        || path.starts_with("/api/")
}

/// Refuses state-changing requests from other sites (403) unless the browser
/// says the request is same-origin (or user-initiated, `none`); without
/// `Sec-Fetch-Site`, the `Origin` must match the `Host`.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || is_same_origin(&request) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
    (StatusCode::FORBIDDEN, "Cross-site request refused").into_response()
}

fn is_same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// Pages need a session: a signed-out visitor is sent to sign in and comes
/// back to the page afterwards (`?next=`).
pub async fn page_guard(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let signed_in = request
        .extensions()
        .get::<AuthSession>()
        .is_some_and(|auth| auth.user.is_some());
    if signed_in || is_public(path) {
        return next.run(request).await;
    }
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Redirect::to(&sign_in_path(target)).into_response()
}

/// Ends sessions older than the absolute limit, however active they are.
pub async fn absolute_expiry(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(mut auth) = request.extensions().get::<AuthSession>().cloned() {
        if auth.user.is_some() {
            let signed_in_at: Option<Timestamp> =
                auth.session.get(SIGNED_IN_AT).await.ok().flatten();
            if outlived(signed_in_at, Timestamp::now(), limit) {
                let _ = auth.logout().await;
                // Continue signed out: this request sees no user.
                let mut request = request;
                request.extensions_mut().insert(auth);
                return next.run(request).await;
            }
        }
    }
    next.run(request).await
}

/// True when a session that began at `signed_in_at` is older than `limit`
/// at `now`. A session without a start time is treated as expired.
fn outlived(signed_in_at: Option<Timestamp>, now: Timestamp, limit: Duration) -> bool {
    let limit_micros = i64::try_from(limit.as_micros()).unwrap_or(i64::MAX);
    signed_in_at.is_none_or(|at| now.0.saturating_sub(at.0) > limit_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_at_the_absolute_limit() {
        let start = Timestamp(1_000_000_000_000);
        let day = Duration::from_secs(86_400);
        assert!(!outlived(Some(start), start.plus_millis(1_000), day));
        assert!(!outlived(Some(start), start.plus_millis(86_400_000), day));
        assert!(outlived(Some(start), start.plus_millis(86_400_001), day));
        assert!(outlived(None, start, day), "no start time: expired");
    }
}
