//! The HTTP surface in-process: the real router over a fresh seeded database
//! of each backend, requests as browsers send them, and the matrix of every
//! server function and page route (so a new endpoint cannot escape a test
//! that walks them).

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use opshub::domain::*;
use opshub::server::config::Settings;
use opshub::server::seed::DEMO_PASSWORD;
use opshub::server::store::*;
use opshub::server::{http::router, seed, AppState};
use std::time::Duration;
use tower::ServiceExt;

// Long enough that the failures below all fall inside it on a slow machine.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(3);
pub const MAX_FAILURES: u32 = 3;

pub struct App {
    pub state: AppState,
    /// Built once, as the server does: building it renders the route list.
    pub router: axum::Router,
    pub db: super::TestDb,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// `name=value` of the session cookie this reply sets, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookie()
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    pub fn set_cookie(&self) -> Option<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("opshub_session="))
    }
}

impl App {
    pub async fn new(backend: Backend, settings: Settings) -> Self {
        super::server_log();
        let db = super::TestDb::new(backend).await;
        seed::seed_demo(db.store.as_ref()).await.unwrap();
        let leptos_options = leptos::prelude::LeptosOptions::builder()
            .output_name("opshub")
            .build();
        let state = AppState::new(leptos_options, db.store.clone(), settings);
        let router = {
            let _alone = render_gate().write().await;
            router(state.clone())
        };
        App { router, state, db }
    }

    pub async fn start(backend: Backend) -> Self {
        let settings = Settings {
            sign_in_max_failures: MAX_FAILURES,
            sign_in_window_secs: SIGN_IN_WINDOW.as_secs(),
            ..Settings::default()
        };
        Self::new(backend, settings).await
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        send_to(&self.router, request).await
    }

    /// A page load, as a browser makes it.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::get(path)
            .header(header::HOST, "opshub.test")
            .header(header::ACCEPT, "text/html");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A same-origin POST, as the app's own pages send them.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        cookie: Option<&str>,
    ) -> Reply {
        let mut request = Request::post(path)
            .header(header::HOST, "opshub.test")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> Reply {
        let (content_type, body) = form(fields);
        self.post(path, content_type, body, cookie).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
        cookie: Option<&str>,
    ) -> Reply {
        self.post(path, "application/json", body.to_string(), cookie)
            .await
    }

    pub async fn sign_in_reply(&self, email: &str, password: &str, cookie: Option<&str>) -> Reply {
        let form = format!(
            "email={}&password={}",
            encode_component(email),
            encode_component(password)
        );
        self.post(
            "/api/session/sign-in",
            "application/x-www-form-urlencoded",
            form,
            cookie,
        )
        .await
    }

    /// Signs in and returns the session cookie.
    pub async fn sign_in(&self, email: &str) -> String {
        let reply = self.sign_in_reply(email, DEMO_PASSWORD, None).await;
        assert!(
            reply.status.is_success() || reply.status.is_redirection(),
            "{}: {}",
            reply.status,
            reply.body
        );
        reply.session_cookie().expect("a session cookie")
    }

    pub async fn newest_run(&self, slug: &str) -> RunSummary {
        let tenant = self
            .state
            .store
            .tenant_by_slug(slug)
            .await
            .unwrap()
            .unwrap();
        let page = self
            .state
            .store
            .list_runs(tenant.id, &RunFilter::default(), PageRequest::first(1))
            .await
            .unwrap();
        page.items.into_iter().next().unwrap()
    }

    pub async fn audit_actions(&self, slug: &str) -> Vec<String> {
        let tenant = self
            .state
            .store
            .tenant_by_slug(slug)
            .await
            .unwrap()
            .unwrap();
        self.state
            .store
            .list_audit(tenant.id, 200)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }
}

/// How the matrix calls one server function.
pub struct ServerFnCase {
    /// The request naming a tenant slug and, where the function takes one,
    /// the id of a run or a user.
    pub body: fn(slug: &str, id: &str) -> (&'static str, String),
    /// None: callable without a session.
    pub needs: Option<Role>,
    pub tenant_scoped: bool,
    pub takes: Option<IdKind>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum IdKind {
    Run,
    User,
}

pub fn form(pairs: &[(&str, &str)]) -> (&'static str, String) {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect::<Vec<_>>()
        .join("&");
    ("application/x-www-form-urlencoded", body)
}

pub fn json(value: serde_json::Value) -> (&'static str, String) {
    ("application/json", value.to_string())
}

/// Every server function the app registers must be listed here; the matrix
/// test fails for one that is not, so no endpoint escapes it.
pub fn server_fn_case(path: &str) -> Option<ServerFnCase> {
    let case = |needs, tenant_scoped, takes, body| ServerFnCase {
        body,
        needs,
        tenant_scoped,
        takes,
    };
    Some(match path {
        "/api/tenants/list" => case(Some(Role::Viewer), false, None, |_, _| {
            json(serde_json::json!({}))
        }),
        "/api/runs/hub" => case(Some(Role::Viewer), true, None, |slug, id| {
            json(serde_json::json!({ "tenant": slug, "query": every_hub_filter(id) }))
        }),
        "/api/runs/counts" => case(Some(Role::Viewer), true, None, |slug, id| {
            json(serde_json::json!({ "tenant": slug, "query": every_hub_filter(id) }))
        }),
        "/api/runs/detail" => case(Some(Role::Viewer), true, Some(IdKind::Run), |slug, run| {
            json(serde_json::json!({ "tenant": slug, "run_id": run }))
        }),
        "/api/runs/summary" => case(Some(Role::Viewer), true, Some(IdKind::Run), |slug, run| {
            json(serde_json::json!({ "tenant": slug, "run_id": run }))
        }),
        "/api/members/list" => case(Some(Role::Admin), true, None, |slug, _| {
            json(serde_json::json!({ "tenant": slug }))
        }),
        "/api/members/add" => case(Some(Role::Admin), true, None, |slug, _| {
            form(&[
                ("tenant", slug),
                ("email", "viewer@globex.example"),
                ("role", "viewer"),
            ])
        }),
        "/api/members/set-role" => {
            case(Some(Role::Admin), true, Some(IdKind::User), |slug, user| {
                form(&[("tenant", slug), ("user_id", user), ("role", "viewer")])
            })
        }
        "/api/members/remove" => case(Some(Role::Admin), true, Some(IdKind::User), |slug, user| {
            form(&[("tenant", slug), ("user_id", user)])
        }),
        "/api/operations/start-drift" => case(Some(Role::Operator), true, None, |slug, _| {
            form(&[("tenant", slug), ("scope_key", "devices/windows")])
        }),
        "/api/operations/start-add-policies" => {
            case(Some(Role::Operator), true, None, |slug, id| {
                form(&[
                    ("tenant", slug),
                    ("backup_set_id", id),
                    ("policy_ids[]", id),
                ])
            })
        }
        "/api/operations/abort" => case(
            Some(Role::Operator),
            true,
            Some(IdKind::Run),
            |slug, run| form(&[("tenant", slug), ("run_id", run)]),
        ),
        "/api/operations/retry" => case(
            Some(Role::Operator),
            true,
            Some(IdKind::Run),
            |slug, run| form(&[("tenant", slug), ("run_id", run)]),
        ),
        "/api/notifications/feed" => case(Some(Role::Viewer), true, None, |slug, id| {
            json(serde_json::json!({ "tenant": slug, "query": {
                "kind": "completed",
                "unread": "1",
                "older": format!("1764000000000000_{id}"),
            } }))
        }),
        "/api/notifications/unread" => case(Some(Role::Viewer), true, None, |slug, _| {
            json(serde_json::json!({ "tenant": slug }))
        }),
        "/api/notifications/open" => case(Some(Role::Viewer), true, None, |slug, id| {
            form(&[("tenant", slug), ("id", id)])
        }),
        "/api/notifications/read-all" => case(Some(Role::Viewer), true, None, |slug, _| {
            form(&[("tenant", slug), ("kind", "queued")])
        }),
        "/api/notifications/subscription" => case(Some(Role::Admin), true, None, |slug, _| {
            form(&[("tenant", slug), ("subscribed", "true")])
        }),
        "/api/runs/watch" => case(Some(Role::Viewer), true, Some(IdKind::Run), |slug, run| {
            form(&[("tenant", slug), ("run_id", run)])
        }),
        "/api/runs/unwatch" => case(Some(Role::Viewer), true, Some(IdKind::Run), |slug, run| {
            form(&[("tenant", slug), ("run_id", run)])
        }),
        "/api/findings/list" => case(Some(Role::Viewer), true, None, |slug, id| {
            json(serde_json::json!({ "tenant": slug, "query": {
                "status": "new",
                "scope": "devices/windows",
                "subject_type": "device",
                "run": id,
                "older": format!("1764000000000000_{id}"),
            } }))
        }),
        "/api/insights" => case(Some(Role::Viewer), true, None, |slug, _| {
            json(serde_json::json!({ "tenant": slug, "query": {
                "window": "7d",
                "operation": "backup_set.add_policies",
            } }))
        }),
        "/api/findings/acknowledge" => case(Some(Role::Operator), true, None, |slug, id| {
            form(&[("tenant", slug), ("ids", id)])
        }),
        "/api/session/current" => case(None, false, None, |_, _| json(serde_json::json!({}))),
        "/api/session/sign-in" => case(None, false, None, |_, _| {
            form(&[("email", "x@y.test"), ("password", "wrong")])
        }),
        "/api/session/sign-out" => case(None, false, None, |_, _| form(&[])),
        _ => return None,
    })
}

/// A valid hub query with every filter given (`id` names the initiator and
/// the cursor's run), so that walks of the matrix reach every field.
fn every_hub_filter(id: &str) -> serde_json::Value {
    serde_json::json!({
        "bucket": "failed",
        "operation": "drift.generate",
        "initiator": id,
        "from": "2026-01-01",
        "to": "2026-12-31",
        "q": "drift:devices",
        "reason": "timeout",
        "older": format!("1764000000000000_{id}"),
        "limit": "20",
    })
}

pub fn server_fn_paths() -> Vec<String> {
    let mut paths: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_string())
        .collect();
    paths.sort();
    paths
}

/// Page routes as the router knows them, with `{param}` placeholders.
pub fn page_routes() -> Vec<String> {
    let mut routes: Vec<String> = opshub::server::http::route_list()
        .iter()
        .map(|route| route.path().to_string())
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

/// A page without its per-response randomness (CSP nonces), so two answers
/// can be compared byte for byte.
pub fn without_nonces(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let next_attribute = |text: &str| {
        ["nonce=\"", "crossorigin=\""]
            .iter()
            .filter_map(|a| text.find(a))
            .min()
    };
    while let Some(start) = next_attribute(rest) {
        let value_start = start + rest[start..].find('"').unwrap() + 1;
        let value_end = value_start + rest[value_start..].find('"').unwrap();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

pub fn fill(route: &str, slug: &str, run_id: &str) -> String {
    route
        .replace("{tenant}", slug)
        .replace(":tenant", slug)
        .replace("{run_id}", run_id)
        .replace(":run_id", run_id)
}

/// Sends a request to `router` (an app built from a state of the test's own).
/// Building a router renders the app once to list its routes, in state
/// Leptos shares across the process; a page rendered by another test's
/// server meanwhile could wait for ever (the 30 s request timeout answered
/// 503, about one `tests/http.rs` run in three). The real server builds
/// its one router before it serves, so tests do the same: no request is
/// answered while a router is built.
fn render_gate() -> &'static tokio::sync::RwLock<()> {
    static GATE: std::sync::LazyLock<tokio::sync::RwLock<()>> =
        std::sync::LazyLock::new(|| tokio::sync::RwLock::new(()));
    &GATE
}

pub async fn send_to(router: &axum::Router, request: Request<Body>) -> Reply {
    let _serving = render_gate().read().await;
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A GET as a load balancer sends it: no session, no browser headers.
pub fn probe(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "opshub.test")
        .body(Body::empty())
        .unwrap()
}
