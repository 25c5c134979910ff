//! `opshub bench scale`: every page a viewer opens, timed through the real
//! HTTP server (a TCP listener, a keep-alive HTTP/1.1 client, brotli as a
//! browser asks for it) on two platforms of 1,000 tenants loaded in bulk
//! (`dataset`), one with the full run count and one with a small one, on
//! each database; the two are timed side by side, a request to each in
//! turn. Prints p50/p99 per page and, per database, the worst page: its p99
//! and how much it grew from the small platform to the large one.

use super::client::Client;
use super::dataset::{self, Dataset, Loader, Shape, BIG_TENANT, VIEWER_EMAIL, VIEWER_PASSWORD};
use super::engine::percentile;
use super::{backend_name, LocalServer, ScratchDb};
use crate::domain::*;
use crate::server::config::Settings;
use crate::server::store::{self, Backend, Store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use std::sync::Arc;
use std::time::Instant;

const TENANTS: usize = 1_000;
/// Timed requests per page, after a few that warm caches and connections.
const REQUESTS: usize = 100;
const WARM_UP: usize = 5;
/// How deep the deep page is, in hub pages.
const DEEP_PAGES: usize = 200;

pub async fn run(
    postgres_admin_url: &str,
    runs: usize,
    small_runs: usize,
    backends: &[Backend],
    keep: bool,
) -> Result<(), String> {
    for &backend in backends {
        let small = Platform::load(backend, postgres_admin_url, small_runs).await?;
        let large = match Platform::load(backend, postgres_admin_url, runs).await {
            Ok(large) => large,
            Err(e) => {
                small.remove(keep).await;
                return Err(e);
            }
        };
        let timed = time_pages(&small, &large).await;
        small.remove(keep).await;
        large.remove(keep).await;
        let (small, large) = timed?;
        report(backend, runs, small_runs, &small, &large);
    }
    Ok(())
}

/// One page's figures.
struct PageTiming {
    label: &'static str,
    path: String,
    p50_ms: f64,
    p99_ms: f64,
}

fn report(
    backend: Backend,
    runs: usize,
    small_runs: usize,
    small: &[PageTiming],
    large: &[PageTiming],
) {
    let name = backend_name(backend);
    let mut worst: Option<(&PageTiming, f64)> = None;
    let mut worst_ratio = 0.0f64;
    for page in large {
        let base = small.iter().find(|p| p.label == page.label);
        let ratio = base.map_or(f64::NAN, |b| page.p99_ms / b.p99_ms);
        worst_ratio = worst_ratio.max(ratio);
        crate::outln!(
            "  {name} {:<28} p50 {:>6.2} ms  p99 {:>6.2} ms  (at {small_runs} runs p99 {:>6.2} ms, ×{ratio:.2})  {}",
            page.label,
            page.p50_ms,
            page.p99_ms,
            base.map_or(f64::NAN, |b| b.p99_ms),
            page.path
        );
        if worst.is_none_or(|(w, _)| page.p99_ms > w.p99_ms) {
            worst = Some((page, ratio));
        }
    }
    if let Some((page, _)) = worst {
        crate::outln!(
            "scale backend={name} runs={runs} worst_page={} worst_p99_ms={:.2} worst_ratio={worst_ratio:.2}",
            page.path,
            page.p99_ms
        );
    }
}

/// A platform of `runs` runs loaded into a scratch database, with the
/// store a server starting on it would have.
struct Platform {
    db: ScratchDb,
    store: Arc<dyn Store>,
    data: Dataset,
}

impl Platform {
    async fn load(backend: Backend, postgres_admin_url: &str, runs: usize) -> Result<Self, String> {
        let name = format!("opshub_scale_{}_{runs}", std::process::id());
        let db = ScratchDb::create(backend, postgres_admin_url, &name).await?;
        match Self::fill(backend, &db.url, runs).await {
            Ok((store, data)) => Ok(Self { db, store, data }),
            Err(e) => {
                db.remove().await;
                Err(e)
            }
        }
    }

    async fn fill(
        backend: Backend,
        url: &str,
        runs: usize,
    ) -> Result<(Arc<dyn Store>, Dataset), String> {
        let fail = |e: store::StoreError| e.to_string();
        let schema = store::connect(url, 2).await.map_err(fail)?;
        schema.migrate().await.map_err(fail)?;
        schema.close().await;

        let hash = crate::server::auth::hash_password(VIEWER_PASSWORD.into())
            .await
            .map_err(|e| e.to_string())?;
        let loader = Loader::connect(url).await?;
        let started = Instant::now();
        let data = dataset::load(
            &loader,
            Shape {
                tenants: TENANTS,
                runs,
                acknowledged_findings_percent: 30,
            },
            Timestamp::now(),
            &hash,
        )
        .await?;
        loader.settle().await?;
        loader.close().await;
        let rows: u64 = data.rows.iter().map(|(_, n)| n).sum();
        crate::outln!(
            "scale backend={} runs={runs}: loaded {rows} rows in {:.1} s ({})",
            backend_name(backend),
            started.elapsed().as_secs_f64(),
            data.rows
                .iter()
                .map(|(table, n)| format!("{table} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::outln!(
            "scale backend={} runs={runs}: `opshub serve` ready {:.2} s after it started",
            backend_name(backend),
            time_start_up(url).await?
        );
        // A fresh store, as a server starting on this database would have.
        let store = store::connect(url, Settings::default().database_max_connections)
            .await
            .map_err(fail)?;
        Ok((store, data))
    }

    async fn remove(self, keep: bool) {
        self.store.close().await;
        if keep {
            crate::outln!(
                "scale backend={} runs={}: kept {}",
                backend_name(self.db.backend),
                self.data.shape.runs,
                self.db.url
            );
        } else {
            self.db.remove().await;
        }
    }
}

/// Starts `opshub serve` (this very binary) on the database at `url` and
/// returns the seconds until its `/readyz` answers 200.
async fn time_start_up(url: &str) -> Result<f64, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|free| free.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut server = std::process::Command::new(exe)
        .arg("serve")
        .env("OPSHUB_DATABASE_URL", url)
        .env("OPSHUB_LISTEN", addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start opshub serve: {e}"))?;
    let ready = probe(addr, "/readyz").await;
    let _ = server.kill();
    let _ = server.wait();
    ready.map(|()| started.elapsed().as_secs_f64())
}

/// Polls `path` every 10 ms until it answers 200 (a minute at most).
async fn probe(addr: std::net::SocketAddr, path: &str) -> Result<(), String> {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut client) = Client::connect(addr).await {
            let request = Request::get(path)
                .body(Body::empty())
                .map_err(|e| e.to_string())?;
            if let Ok((StatusCode::OK, _, _)) = client.exchange(request).await {
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(format!("{path} did not answer 200 within a minute"))
}

/// A signed-in viewer of a platform's server, and the pages to time there.
struct Viewer {
    server: LocalServer,
    client: Client,
    probes: Vec<Probe>,
    runs: usize,
}

impl Viewer {
    async fn open(platform: &Platform) -> Result<Self, String> {
        let server = LocalServer::start(platform.store.clone()).await?;
        let mut client = Client::connect(server.addr).await?;
        client.sign_in(VIEWER_EMAIL, VIEWER_PASSWORD).await?;
        let probes = probes(platform.store.as_ref(), &platform.data).await?;
        Ok(Self {
            server,
            client,
            probes,
            runs: platform.data.shape.runs,
        })
    }

    /// Milliseconds of one request of probe `index` (after checking its 200).
    async fn time(&mut self, index: usize) -> Result<f64, String> {
        let probe = &self.probes[index];
        let request = probe.request()?;
        let started = Instant::now();
        let (status, _, _) = self.client.exchange(request).await?;
        let millis = started.elapsed().as_secs_f64() * 1_000.0;
        if status != StatusCode::OK {
            return Err(format!("{} answered {status}", probe.path));
        }
        Ok(millis)
    }
}

/// Times every page on both platforms, a request to one then the same to
/// the other, so whatever else the shared machine does at a moment falls on
/// both sizes alike and their ratio shows the data, not the moment.
async fn time_pages(
    small: &Platform,
    large: &Platform,
) -> Result<(Vec<PageTiming>, Vec<PageTiming>), String> {
    let mut viewers = [Viewer::open(small).await?, Viewer::open(large).await?];
    let mut timings: [Vec<PageTiming>; 2] = Default::default();
    for index in 0..viewers[0].probes.len() {
        let mut millis: [Vec<f64>; 2] = Default::default();
        for round in 0..WARM_UP + REQUESTS {
            for (viewer, millis) in viewers.iter_mut().zip(&mut millis) {
                let elapsed = viewer.time(index).await?;
                if round >= WARM_UP {
                    millis.push(elapsed);
                }
            }
        }
        for ((viewer, millis), timings) in viewers.iter().zip(&mut millis).zip(&mut timings) {
            let probe = &viewer.probes[index];
            let timing = PageTiming {
                label: probe.label,
                path: probe.shown(),
                p50_ms: percentile(millis, 0.50),
                p99_ms: percentile(millis, 0.99),
            };
            crate::outln!(
                "    runs={} {}: p50 {:.2} ms, p99 {:.2} ms",
                viewer.runs,
                timing.label,
                timing.p50_ms,
                timing.p99_ms
            );
            timings.push(timing);
        }
    }
    let [small_viewer, large_viewer] = viewers;
    small_viewer.server.stop().await;
    large_viewer.server.stop().await;
    let [small, large] = timings;
    Ok((small, large))
}

/// One page (or the API call a page makes) to time.
struct Probe {
    label: &'static str,
    path: String,
    /// A server function's JSON arguments: sent as the browser's POST.
    body: Option<serde_json::Value>,
    /// Said after the path in the report.
    note: String,
}

impl Probe {
    fn page(label: &'static str, path: String) -> Self {
        Probe {
            label,
            path,
            body: None,
            note: String::new(),
        }
    }

    fn call(label: &'static str, path: &str, body: serde_json::Value) -> Self {
        Probe {
            label,
            path: path.to_string(),
            body: Some(body),
            note: String::new(),
        }
    }

    /// The request a browser sends for it.
    fn request(&self) -> Result<Request<Body>, String> {
        match &self.body {
            Some(body) => Request::post(self.path.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(body.to_string())),
            None => Request::get(self.path.as_str()).body(Body::empty()),
        }
        .map_err(|e| e.to_string())
    }

    fn shown(&self) -> String {
        match &self.body {
            Some(body) => format!("POST {} {body}{}", self.path, self.note),
            None => format!("{}{}", self.path, self.note),
        }
    }
}

/// Every page of the list, on the big tenant.
async fn probes(store: &dyn Store, data: &Dataset) -> Result<Vec<Probe>, String> {
    let hub = format!("/t/{BIG_TENANT}/operations");
    let findings = format!("/t/{BIG_TENANT}/findings");
    let mut probes = vec![Probe::page("hub", hub.clone())];
    for bucket in StatusBucket::ALL {
        probes.push(Probe::page(
            bucket_label(bucket),
            format!("{hub}?bucket={}", bucket.as_str()),
        ));
    }
    let day = |days_ago: i64| {
        Timestamp(data.now.0 - days_ago * 86_400_000_000)
            .to_datetime()
            .format("%Y-%m-%d")
            .to_string()
    };
    let id_prefix: String = data.sample_run.to_string().chars().take(8).collect();
    let key_prefix: String = data.sample_key.chars().take(20).collect();
    let (deep, depth) = deep_cursor(store, data).await?;
    probes.extend([
        Probe::page(
            "hub operation",
            format!(
                "{hub}?operation={}",
                OperationKind::BackupSetAddPolicies.code()
            ),
        ),
        Probe::page(
            "hub initiator",
            format!("{hub}?initiator={}", data.initiators[3]),
        ),
        // Someone who never started a run: nothing matches.
        Probe::page(
            "hub initiator of none",
            format!("{hub}?initiator={}", data.viewer),
        ),
        Probe::page(
            "hub days",
            format!("{hub}?from={}&to={}", day(200), day(170)),
        ),
        Probe::page(
            "hub reason",
            format!("{hub}?reason={}", ReasonCode::Timeout.as_str()),
        ),
        // A reason a handful of runs failed with: fewer than a page.
        Probe::page(
            "hub reason rare",
            format!("{hub}?reason={}", dataset::RARE_REASON.as_str()),
        ),
        Probe::page("hub search run id", format!("{hub}?q={id_prefix}")),
        Probe::page(
            "hub search key",
            format!("{hub}?q={}", encode_component(&key_prefix)),
        ),
        Probe {
            note: format!(" (page {depth})"),
            ..Probe::page("hub deep page", format!("{hub}?older={deep}"))
        },
        Probe::call(
            "tab counts",
            "/api/runs/counts",
            serde_json::json!({ "tenant": BIG_TENANT, "query": {} }),
        ),
        Probe::page(
            "run with most failures",
            run_path(BIG_TENANT, data.worst_run),
        ),
        Probe::page(
            "its failures by reason",
            format!(
                "{}?reason={}",
                run_path(BIG_TENANT, data.worst_run),
                ReasonCode::Timeout.as_str()
            ),
        ),
        Probe::page("findings", findings.clone()),
        Probe::page("findings status", format!("{findings}?status=new")),
        Probe::page("findings scope", format!("{findings}?scope=devices")),
        Probe::page(
            "findings scope of none",
            format!("{findings}?scope=printers"),
        ),
        Probe::page(
            "findings subject type",
            format!("{findings}?subject_type=policy"),
        ),
        Probe::page(
            "findings comparison",
            format!(
                "{findings}?scope={}&baseline={}&current={}",
                data.drift_scope.scope_key,
                data.drift_scope.baseline_run_id,
                data.drift_scope.current_run_id
            ),
        ),
        Probe::page(
            "findings of a run",
            format!("{findings}?run={}", data.drift_run),
        ),
        Probe::page(
            "notification feed",
            format!("/t/{BIG_TENANT}/notifications"),
        ),
        Probe::call(
            "unread count",
            "/api/notifications/unread",
            serde_json::json!({ "tenant": BIG_TENANT }),
        ),
    ]);
    Ok(probes)
}

fn bucket_label(bucket: StatusBucket) -> &'static str {
    match bucket {
        StatusBucket::Queued => "hub tab queued",
        StatusBucket::Running => "hub tab running",
        StatusBucket::Succeeded => "hub tab succeeded",
        StatusBucket::PartiallySucceeded => "hub tab partially succeeded",
        StatusBucket::Failed => "hub tab failed",
    }
}

/// The `older` link of hub page `DEEP_PAGES` (of the default size), or of
/// the last page where there are fewer, reached the way a viewer paging on
/// would; and that page's number.
async fn deep_cursor(store: &dyn Store, data: &Dataset) -> Result<(Cursor, usize), String> {
    let mut page = PageRequest::first(DEFAULT_PAGE_SIZE);
    let mut number = 1;
    while number < DEEP_PAGES {
        let listed = store
            .list_runs(data.big_tenant, &RunFilter::default(), page)
            .await
            .map_err(|e| e.to_string())?;
        match listed.older {
            Some(older) if listed.items.len() == DEFAULT_PAGE_SIZE as usize => {
                page = PageRequest::older_than(older, DEFAULT_PAGE_SIZE);
                number += 1;
            }
            _ => break,
        }
    }
    let cursor = page.cursor.ok_or("the hub has a single page")?;
    Ok((cursor, number))
}
