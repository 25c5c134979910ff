//! `opshub bench web`: the hub page's server render time with a large tenant
//! (SQLite, in-process router, a signed-in viewer), what the browser
//! downloads (JS + WASM, compressed as the server sends them), and how long a
//! run's change takes to reach an open live stream (from the moment the
//! write starts to the event's bytes arriving; the browser then paints it in
//! its next frame).

use crate::domain::*;
use crate::server::config::Settings;
use crate::server::store::{self, NewUser, RunRecord};
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

pub async fn run(runs: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("opshub-bench-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure(&format!("sqlite://{}/bench.db", dir.display()), runs).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
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
        .set_membership(tenant.id, user.id, Role::Viewer)
        .await
        .map_err(fail)?;
    let started = Instant::now();
    insert_history(store.as_ref(), tenant.id, user.id, runs).await?;
    println!(
        "web: {runs} runs in tenant `bench` written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let leptos_options = get_configuration(None)
        .map_err(|e| format!("leptos configuration: {e}"))?
        .leptos_options;
    let pkg_dir = format!(
        "{}/{}",
        leptos_options.site_root, leptos_options.site_pkg_dir
    );
    let app = http::router(AppState::new(
        leptos_options,
        store.clone(),
        Settings::default(),
    ));
    let cookie = sign_in(&app).await?;
    let live = live_latencies(&app, store.as_ref(), &cookie, tenant.id, user.id).await?;

    let mut timings = Vec::with_capacity(RENDERS);
    for round in 0..RENDERS + 10 {
        let request = Request::get("/t/bench/operations")
            .header(header::HOST, "bench.local")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
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

    // The browser downloads the bundle's JS and WASM; ask for each the way it does.
    let assets: Vec<String> = std::fs::read_dir(&pkg_dir)
        .map_err(|e| {
            format!("{pkg_dir}: {e} — build the site first (`cargo leptos build --release`) and run from the repository root")
        })?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".js") || name.ends_with(".wasm"))
        .map(|name| format!("/pkg/{name}"))
        .collect();
    let mut bundle = 0usize;
    for asset in &assets {
        let request = Request::get(asset.as_str())
            .header(header::HOST, "bench.local")
            .header(header::ACCEPT_ENCODING, "br, gzip")
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let (status, headers, body) = send(&app, request).await?;
        if status != StatusCode::OK {
            return Err(format!("{asset} answered {status}"));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity");
        println!("  {asset}: {} bytes ({encoding})", body.len());
        bundle += body.len();
    }
    println!("  hub render over {RENDERS} requests (first page, 50 rows, counts per bucket)");
    println!(
        "  live: {LIVE_CHANGES} run changes to an open stream, p50 {:.2} ms, max {:.2} ms",
        live.percentile(0.50),
        live.percentile(1.0)
    );
    println!(
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
        .map(|n| RunRecord {
            id: RunId::generate(),
            tenant_id: tenant,
            user_id: user,
            operation: OperationKind::DriftGenerate,
            idempotency_key: format!("bench-live-{n}"),
            status: RunStatus::Pending,
            counters: Counters::default(),
            item_ids: Vec::new(),
            params: serde_json::json!({}),
            failures: Vec::new(),
            attempt: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
        })
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
                operation: if n % 3 == 0 {
                    OperationKind::BackupSetAddPolicies
                } else {
                    OperationKind::DriftGenerate
                },
                idempotency_key: format!("bench-{n}"),
                status,
                counters: Counters {
                    total: 10,
                    processed: 10,
                    succeeded: 10 - failed,
                    failed,
                    skipped: 0,
                },
                item_ids: Vec::new(),
                params: serde_json::json!({}),
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
