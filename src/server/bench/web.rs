//! `opshub bench web`: the hub page's server render time with a large tenant
//! (SQLite, in-process router, a signed-in viewer), the JS + WASM the browser
//! downloads to show the hub (compressed as the server sends them), and how
//! long a run's change takes to reach an open live stream (from the moment
//! the write starts to the event's bytes arriving; the browser then paints it
//! in its next frame). Then a thousand viewers' streams at once
//! (`viewers`).

use super::queued_run;
use crate::domain::*;
use crate::server::config::Settings;
use crate::server::store::{self, MembershipAudit, NewUser, RunRecord};
use crate::server::{http, AppState};
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use leptos::prelude::get_configuration;
use std::time::Instant;
use tower::ServiceExt;

const PASSWORD: &str = "bench-password";
const RENDERS: usize = 200;
/// Run changes timed on their way to a live stream.
const LIVE_CHANGES: usize = 200;

pub async fn run(runs: usize, streams: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("opshub-bench-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure(&format!("sqlite://{}/bench.db", dir.display()), runs).await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    super::viewers::run(streams).await
}

async fn measure(url: &str, runs: usize) -> Result<(), String> {
    let fail = |e: store::StoreError| e.to_string();
    let store = store::connect(url, 8).await.map_err(fail)?;
    store.migrate().await.map_err(fail)?;
    let slug = TenantSlug::parse("bench").map_err(|e| e.0)?;
    let tenant = store.create_tenant(&slug, "Bench").await.map_err(fail)?;
    let hash = crate::server::auth::hash_password(PASSWORD.into())
        .await
        .map_err(|e| e.to_string())?;
    let user = store
        .create_user(NewUser {
            email: "viewer@bench.example".into(),
            display_name: "Bench Viewer".into(),
            password_hash: Some(hash),
        })
        .await
        .map_err(fail)?;
    store
        .set_membership(tenant.id, user.id, Role::Viewer, MembershipAudit::Unaudited)
        .await
        .map_err(fail)?;
    let started = Instant::now();
    insert_history(store.as_ref(), tenant.id, user.id, runs).await?;
    crate::outln!(
        "web: {runs} runs in tenant `bench` written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let leptos_options = get_configuration(None)
        .map_err(|e| format!("leptos configuration: {e}"))?
        .leptos_options;
    let app = http::router(AppState::new(
        leptos_options,
        store.clone(),
        Settings::default(),
    ));
    let cookie = sign_in(&app).await?;
    let live = live_latencies(&app, store.as_ref(), &cookie, tenant.id, user.id).await?;

    let mut timings = Vec::with_capacity(RENDERS);
    for round in 0..RENDERS + 10 {
        let request = get(HUB, &cookie)?;
        let started = Instant::now();
        let (status, _, _) = send(&app, request).await?;
        if status != StatusCode::OK {
            return Err(format!("the hub answered {status}"));
        }
        // The first renders warm caches and connections.
        if round >= 10 {
            timings.push(started.elapsed().as_secs_f64() * 1_000.0);
        }
    }
    timings.sort_by(f64::total_cmp);
    let percentile = |p: f64| timings[((timings.len() - 1) as f64 * p).round() as usize];

    // The bundle is what the hub, where people land, makes the browser
    // fetch; every other page's first visit is printed beside it.
    let (bundle, assets) = page_download(&app, &cookie, HUB).await?;
    for (asset, bytes, encoding) in &assets {
        crate::outln!("  {asset}: {bytes} bytes ({encoding})");
    }
    let hub_page = send(&app, get(HUB, &cookie)?).await?.2;
    let run = first_run_link(&String::from_utf8_lossy(&hub_page))
        .ok_or("the hub page links to no run")?;
    let mut first_visits = Vec::new();
    for path in [
        run.as_str(),
        "/t/bench/findings",
        "/t/bench/notifications",
        "/t/bench/members",
        "/",
        "/sign-in",
    ] {
        let (bytes, _) = page_download(&app, &cookie, path).await?;
        first_visits.push(format!("{path} {} KB", bytes.div_ceil(1024)));
    }
    crate::outln!(
        "  first visit elsewhere (JS + WASM, br): {}",
        first_visits.join(", ")
    );
    crate::outln!(
        "  bundle: the JS + WASM the hub page downloads (its preloads and their imports)"
    );
    crate::outln!("  hub render over {RENDERS} requests (first page, 50 rows, counts per bucket)");
    crate::outln!(
        "  live: {LIVE_CHANGES} run changes to an open stream, p50 {:.2} ms, max {:.2} ms",
        live.percentile(0.50),
        live.percentile(1.0)
    );
    crate::outln!(
        "web hub_render_p50_ms={:.2} hub_render_p99_ms={:.2} bundle_kb={} live_p95_ms={:.2}",
        percentile(0.50),
        percentile(0.99),
        bundle.div_ceil(1024),
        live.percentile(0.95)
    );
    Ok(())
}

struct Timings(Vec<f64>);

impl Timings {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

/// Opens the tenant's live stream as a browser does, then moves queued runs
/// to running one at a time, timing each until its event arrives.
async fn live_latencies(
    app: &axum::Router,
    store: &dyn store::Store,
    cookie: &str,
    tenant: TenantId,
    user: UserId,
) -> Result<Timings, String> {
    use futures_util::StreamExt;
    let now = Timestamp::now();
    let runs: Vec<RunRecord> = (0..LIVE_CHANGES)
        .map(|n| queued_run(tenant, user, format!("bench-live-{n}"), now))
        .collect();
    store
        .insert_run_records(&runs)
        .await
        .map_err(|e| e.to_string())?;
    let request = Request::get(live_path("bench"))
        .header(header::HOST, "bench.local")
        .header(header::COOKIE, cookie)
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("the live stream answered {}", response.status()));
    }
    let mut body = response.into_body().into_data_stream();
    let mut received = String::new();
    let mut timings = Vec::with_capacity(LIVE_CHANGES);
    for run in &runs {
        let started = Instant::now();
        store
            .transition_run(tenant, run.id, RunStatus::Running)
            .await
            .map_err(|e| e.to_string())?;
        let wanted = run.id.to_string();
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !received.contains(&wanted) {
                match body.next().await {
                    Some(Ok(data)) => received.push_str(&String::from_utf8_lossy(&data)),
                    _ => return false,
                }
            }
            true
        })
        .await;
        if arrived != Ok(true) {
            return Err(format!(
                "the change of run {wanted} never reached the stream"
            ));
        }
        timings.push(started.elapsed().as_secs_f64() * 1_000.0);
        received.clear();
    }
    Ok(Timings(timings))
}

/// `runs` ended runs over the last 90 days, in every terminal status.
async fn insert_history(
    store: &dyn store::Store,
    tenant: TenantId,
    user: UserId,
    runs: usize,
) -> Result<(), String> {
    let now = Timestamp::now();
    let span = 90 * 86_400_000_000i64;
    let statuses = [
        RunStatus::Completed,
        RunStatus::Completed,
        RunStatus::CompletedWithErrors,
        RunStatus::Failed,
        RunStatus::Aborted,
    ];
    let records: Vec<RunRecord> = (0..runs)
        .map(|n| {
            let created_at = Timestamp(now.0 - span + span / runs.max(1) as i64 * n as i64);
            let status = statuses[n % statuses.len()];
            let failed = i64::from(status != RunStatus::Completed);
            RunRecord {
                id: RunId::generate(),
                tenant_id: tenant,
                user_id: user,
                operation: listing_scope(n).operation(),
                idempotency_key: Some(format!("bench-{n}")),
                status,
                counters: Counters {
                    total: 10,
                    processed: 10,
                    succeeded: 10 - failed,
                    failed,
                    skipped: 0,
                },
                item_ids: listing_scope(n),
                work_items: Vec::new(),
                failures: Vec::new(),
                attempt: 1,
                created_at,
                started_at: Some(created_at.plus_millis(500)),
                finished_at: Some(created_at.plus_millis(5_000)),
            }
        })
        .collect();
    for chunk in records.chunks(10_000) {
        store
            .insert_run_records(chunk)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn sign_in(app: &axum::Router) -> Result<String, String> {
    let form = format!(
        "email={}&password={}",
        encode_component("viewer@bench.example"),
        encode_component(PASSWORD)
    );
    let request = Request::post("/api/session/sign-in")
        .header(header::HOST, "bench.local")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(form))
        .map_err(|e| e.to_string())?;
    let (status, headers, _) = send(app, request).await?;
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("opshub_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| format!("signing in failed ({status})"))
}

const HUB: &str = "/t/bench/operations";

fn get(path: &str, cookie: &str) -> Result<Request<Body>, String> {
    Request::get(path)
        .header(header::HOST, "bench.local")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .map_err(|e| e.to_string())
}

/// What a first visit to `path` makes the browser fetch: the JS and WASM the
/// page's `<head>` preloads (the main module and the chunks of the page's
/// lazy route) and the modules those import, compressed as the server sends
/// them. Returns their total size and each asset with its size and encoding.
async fn page_download(
    app: &axum::Router,
    cookie: &str,
    path: &str,
) -> Result<(usize, Vec<(String, usize, String)>), String> {
    let (_, _, page) = send(app, get(path, cookie)?).await?;
    let mut assets = preloaded_scripts(&String::from_utf8_lossy(&page));
    let mut fetched = Vec::new();
    let mut next = 0;
    while let Some(asset) = assets.get(next).cloned() {
        next += 1;
        let request = Request::get(asset.as_str())
            .header(header::HOST, "bench.local")
            .header(header::ACCEPT_ENCODING, "br, gzip")
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let (status, headers, body) = send(app, request).await?;
        if status != StatusCode::OK {
            return Err(format!("{asset} answered {status} — build the site first (`make build`) and run from the repository root"));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity");
        fetched.push((asset.clone(), body.len(), encoding.to_string()));
        if asset.ends_with(".js") {
            let (_, _, source) = send(app, get(&asset, cookie)?).await?;
            let dir = &asset[..=asset.rfind('/').unwrap_or(0)];
            for module in static_imports(&String::from_utf8_lossy(&source)) {
                let path = format!("{dir}{module}");
                if !assets.contains(&path) {
                    assets.push(path);
                }
            }
        }
    }
    Ok((fetched.iter().map(|(_, bytes, _)| bytes).sum(), fetched))
}

/// The first link to a run's page on a hub page.
fn first_run_link(html: &str) -> Option<String> {
    let start = html.find(r#"href="/t/bench/operations/"#)? + r#"href=""#.len();
    let link = html[start..].split('"').next()?;
    Some(link.to_string())
}

/// The `.js` and `.wasm` hrefs of a page's `<link rel="modulepreload">` and
/// `<link rel="preload">` tags.
fn preloaded_scripts(html: &str) -> Vec<String> {
    html.split("<link")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let preload =
                tag.contains(r#"rel="modulepreload""#) || tag.contains(r#"rel="preload""#);
            let href = tag.split(r#"href=""#).nth(1)?.split('"').next()?;
            let script = href.ends_with(".js") || href.ends_with(".wasm");
            (preload && script).then(|| href.to_string())
        })
        .collect()
}

/// The modules a JS module imports statically (`from "./x.js"`), relative to
/// its directory: the browser fetches them before running it.
fn static_imports(js: &str) -> Vec<String> {
    js.split("from")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let path = rest[1..].split(quote).next()?;
            path.strip_prefix("./").map(str::to_string)
        })
        .collect()
}

/// One request through the in-process router, its whole body read.
async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> Result<(StatusCode, HeaderMap, axum::body::Bytes), String> {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    Ok((parts.status, parts.headers, body))
}

/// What the `n`th listed run works on (every third adds policies): nothing
/// the bench executes.
fn listing_scope(n: usize) -> RunScope {
    if n.is_multiple_of(3) {
        RunScope::AddPolicies(AddPoliciesScope {
            backup_set_id: BackupSetId(uuid::Uuid::nil()),
            policy_ids: Vec::new(),
            options: AddPoliciesOptions::default(),
        })
    } else {
        RunScope::Drift(DriftScope {
            scope_key: "bench".into(),
            baseline_run_id: InventorySyncRunId(uuid::Uuid::nil()),
            current_run_id: InventorySyncRunId(uuid::Uuid::nil()),
            subjects: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_page_makes_the_browser_fetch() {
        let head = r#"<link rel="modulepreload" href="/pkg/app.js" crossorigin=""><link rel="preload" href="/pkg/app.wasm" as="fetch" type="application/wasm"><link rel="stylesheet" href="/pkg/app.css"><link rel="icon" href="/favicon.ico">"#;
        assert_eq!(preloaded_scripts(head), ["/pkg/app.js", "/pkg/app.wasm"]);
        let js =
            r#"import*as a from"./split.js";import { b } from './b.js';const c=Array.from(d);"#;
        assert_eq!(static_imports(js), ["split.js", "b.js"]);
        let hub = r#"<a href="/t/bench/operations?bucket=failed">Failed</a><a href="/t/bench/operations/0190">Generate drift</a>"#;
        assert_eq!(
            first_run_link(hub).as_deref(),
            Some("/t/bench/operations/0190")
        );
        assert_eq!(first_run_link("<p>No runs</p>"), None);
    }
}
