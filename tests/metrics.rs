//! `/metrics` on both databases: served over real HTTP on its own listener,
//! its run counters move by exactly the runs made (by operation and final
//! status, whichever path ended them), HTTP requests are timed under their
//! route template, and no label names a tenant. `opshub worker` serves it
//! on `metrics_listen` and closes it when it stops.

mod support;

use opshub::domain::*;
use opshub::server::metrics;
use opshub::server::operations::{self, AddPoliciesOptions, StartRequest};
use opshub::server::store::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::app::{fill, page_routes, probe};
use support::engine::{detail, drain, policies, queue_add_policies, worker};
use support::{fixture, two_syncs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metrics listener of a test: `GET /metrics` on a port of its own.
struct MetricsServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    async fn start(store: Arc<dyn Store>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(metrics::serve(store, listener, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, served }
    }

    async fn scrape(&self) -> Exposition {
        scrape(self.addr)
            .await
            .expect("the metrics listener answers")
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.served.await.unwrap().unwrap();
    }
}

/// One scrape, as Prometheus makes it: a plain HTTP/1.1 GET. None while
/// nothing listens.
async fn scrape(addr: std::net::SocketAddr) -> Option<Exposition> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.ok()?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    Some(Exposition::parse(body))
}

/// A scrape's samples by series (`name{label="value",…}`) and its text.
struct Exposition {
    text: String,
    samples: HashMap<String, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Self {
            text: text.to_string(),
            samples,
        }
    }

    /// A series' value; one never written reads 0, as a counter would.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.samples.get(&series).copied().unwrap_or(0.0)
    }

    /// How much a series moved since `before`.
    fn moved(&self, before: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels) - before.value(name, labels)
    }
}

on_both! { db =>
    /// Runs started through every path (queued, joined, aborted while
    /// queued, failed by rescue, executed by a worker) move the counters by
    /// exactly the runs made.
    async fn runs_move_the_counters_by_exactly_the_runs_made(db) {
        let store = db.store.as_ref();
        let server = MetricsServer::start(db.store.clone()).await;
        let before = server.scrape().await;
        let f = fixture(store, "metrics-probe").await;
        let mut made = Vec::new();

        // Lost by its worker and out of attempts: rescue fails it.
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let lost = queue_add_policies(store, &f, set.id, "lost", vec![mine[0].id.to_string()], 1).await;
        made.push(lost);
        let claimed = store.claim_runs("gone", Duration::from_millis(1), ClaimLimit::ONE).await.unwrap();
        assert_eq!(claimed.len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap(), RescueReport { failed: 1, ..Default::default() });

        // Drift, and a second start that joins it (not a run of its own).
        two_syncs(store, &f).await;
        let drift = StartRequest::Drift { scope_key: "devices".into() };
        let started = operations::start(store, &f.tenant, &f.user, &drift).await.unwrap();
        made.push(started.run.summary.id);
        assert!(operations::start(store, &f.tenant, &f.user, &drift).await.unwrap().joined);
        // Add policies, one of them aborted while queued.
        let add = |policy_ids: Vec<PolicyId>| StartRequest::AddPolicies {
            backup_set_id: set.id,
            policy_ids,
            options: AddPoliciesOptions { include_payload: false },
        };
        let added = operations::start(store, &f.tenant, &f.user, &add(vec![mine[1].id, mine[2].id])).await.unwrap();
        made.push(added.run.summary.id);
        let aborted = operations::start(store, &f.tenant, &f.user, &add(vec![mine[2].id])).await.unwrap();
        made.push(aborted.run.summary.id);
        operations::abort(store, &f.tenant, &f.user, aborted.run.summary.id).await.unwrap();
        // One whose items name no policy: it ends with failures.
        made.push(queue_add_policies(store, &f, set.id, "strays", vec!["stray-1".into(), "stray-2".into()], 3).await);
        drain(&worker(&db.store, "w1")).await;

        let after = server.scrape().await;
        // What the database says the runs became, counted as the metrics should.
        let mut started_by: HashMap<OperationKind, f64> = HashMap::new();
        let mut ended_by: HashMap<(OperationKind, RunStatus), f64> = HashMap::new();
        let mut claimed_by: HashMap<OperationKind, f64> = HashMap::new();
        let mut items_by: HashMap<OperationKind, f64> = HashMap::new();
        for &run in &made {
            let run = detail(store, &f, run).await;
            let operation = run.summary.operation;
            assert!(run.summary.status.is_terminal(), "{:?} ended", run.summary.status);
            *started_by.entry(operation).or_default() += 1.0;
            *ended_by.entry((operation, run.summary.status)).or_default() += 1.0;
            if run.attempt > 0 {
                *claimed_by.entry(operation).or_default() += 1.0;
            }
            *items_by.entry(operation).or_default() += run.summary.counters.processed as f64;
        }
        assert!(ended_by.len() >= 4, "completed, aborted and failed runs of both operations: {ended_by:?}");
        for operation in OperationKind::ALL {
            let op = [("operation", operation.code())];
            let expected = |counts: &HashMap<OperationKind, f64>| counts.get(&operation).copied().unwrap_or(0.0);
            assert_eq!(after.moved(&before, "opshub_runs_started_total", &op), expected(&started_by), "started {op:?}");
            assert_eq!(after.moved(&before, "opshub_run_claim_latency_seconds_count", &op), expected(&claimed_by), "claimed {op:?}");
            // Every run that was claimed ran for a while before it ended.
            assert_eq!(after.moved(&before, "opshub_run_duration_seconds_count", &op), expected(&claimed_by), "ran {op:?}");
            assert_eq!(after.moved(&before, "opshub_items_processed_total", &op), expected(&items_by), "items {op:?}");
            for status in RunStatus::ALL {
                let labels = [("operation", operation.code()), ("status", status.as_str())];
                let expected = ended_by.get(&(operation, status)).copied().unwrap_or(0.0);
                assert_eq!(after.moved(&before, "opshub_runs_ended_total", &labels), expected, "ended {labels:?}");
            }
        }
        assert_eq!(after.moved(&before, "opshub_rescues_total", &[("outcome", "failed")]), 1.0);
        assert_eq!(after.value("opshub_queue_depth", &[]), 0.0);
        assert_eq!(after.value("opshub_queue_oldest_age_seconds", &[]), 0.0);
        assert_eq!(after.value("opshub_workers_busy", &[]), 0.0);
        assert_eq!(after.value("opshub_live_streams_open", &[]), 0.0);
        assert!(after.text.contains("\nopshub_db_connections_in_use "), "{}", after.text);
        for name in [&f.tenant.slug.to_string(), &f.tenant.id.to_string()] {
            assert!(!after.text.contains(name.as_str()), "{name} in\n{}", after.text);
        }
        server.stop().await;
    }

    /// A queued run shows in the queue figures until it is claimed.
    async fn the_queue_is_read_at_scrape_time(db) {
        let store = db.store.as_ref();
        let server = MetricsServer::start(db.store.clone()).await;
        let f = fixture(store, "metrics-queue").await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        queue_add_policies(store, &f, set.id, "first", vec!["x".into()], 3).await;
        queue_add_policies(store, &f, set.id, "second", vec!["y".into()], 3).await;
        let queued = server.scrape().await;
        assert_eq!(queued.value("opshub_queue_depth", &[]), 2.0);
        assert!(queued.value("opshub_queue_oldest_age_seconds", &[]) > 0.0);
        drain(&worker(&db.store, "w1")).await;
        let drained = server.scrape().await;
        assert_eq!(drained.value("opshub_queue_depth", &[]), 0.0);
        server.stop().await;
    }
}

on_both! { app =>
    /// Every request is timed under the route that matched it; paths no
    /// route matches share one label, so raw paths (tenants, runs) never
    /// become series.
    async fn http_requests_are_timed_by_route_template(app) {
        let store = app.db.store.as_ref();
        let before = metrics::exposition(store).await.unwrap();
        let before = Exposition::parse(&before);
        let run = app.newest_run("acme").await.id.to_string();
        let routes: Vec<String> = page_routes().into_iter().filter(|r| r.contains("tenant")).collect();
        for route in &routes {
            app.get(&fill(route, "acme", &run), None).await;
        }
        assert_eq!(app.send(probe("/healthz")).await.status, 200);
        app.send(probe("/no/such/page")).await;

        let after = Exposition::parse(&metrics::exposition(store).await.unwrap());
        let duration = "opshub_http_request_duration_seconds_count";
        assert_eq!(after.moved(&before, duration, &[("route", "/healthz"), ("status", "2xx")]), 1.0);
        let answered = |route: &str| -> f64 {
            ["2xx", "3xx", "4xx", "5xx"]
                .iter()
                .map(|status| after.moved(&before, duration, &[("route", route), ("status", status)]))
                .sum()
        };
        assert_eq!(answered(metrics::UNMATCHED_ROUTE), 1.0, "{}", after.text);
        for route in &routes {
            assert_eq!(answered(route), 1.0, "{route} in\n{}", after.text);
        }
        for tenant in store.list_tenants().await.unwrap() {
            for name in [tenant.slug.to_string(), tenant.id.to_string()] {
                assert!(!after.text.contains(&format!("\"{name}")), "{name} in\n{}", after.text);
                assert!(!after.text.contains(&format!("/{name}")), "{name} in\n{}", after.text);
            }
        }
    }
}

/// `opshub worker` with `metrics_listen` serves `/metrics` beside its
/// workers, counts the runs they end, and closes it when it stops.
#[tokio::test]
async fn a_worker_process_serves_its_metrics_until_it_stops() {
    let db = support::TestDb::new(Backend::Sqlite).await;
    let store = db.store.as_ref();
    let addr: std::net::SocketAddr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_opshub"))
        .arg("worker")
        .env("OPSHUB_DATABASE_URL", &db.url)
        .env("OPSHUB_METRICS_LISTEN", addr.to_string())
        .env("OPSHUB_WORKER_POLL_INTERVAL_MS", "100")
        .env("OPSHUB_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start opshub worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let until = |what: &str| {
        assert!(std::time::Instant::now() < deadline, "{what} within 30 s");
    };
    let before = loop {
        if let Some(scraped) = scrape(addr).await {
            break scraped;
        }
        until("the worker's metrics listener answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let f = fixture(store, "metrics-process").await;
    let set = store
        .create_backup_set(f.tenant.id, "Nightly")
        .await
        .unwrap();
    queue_add_policies(store, &f, set.id, "elsewhere", vec!["stray".into()], 3).await;
    let ended = [
        ("operation", "backup_set.add_policies"),
        ("status", "failed"),
    ];
    loop {
        let now = scrape(addr).await.expect("still listening");
        if now.moved(&before, "opshub_runs_ended_total", &ended) == 1.0 {
            break;
        }
        until("the worker ends the run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        until("the worker exits");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        scrape(addr).await.is_none(),
        "the listener closed with the process"
    );
}

/// A `metrics_listen` that is no address stops start-up, naming the key.
#[tokio::test]
async fn a_bad_metrics_address_stops_start_up() {
    let db = support::TestDb::new(Backend::Sqlite).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_opshub"))
        .arg("worker")
        .env("OPSHUB_DATABASE_URL", &db.url)
        .env("OPSHUB_METRICS_LISTEN", "localhost")
        .output()
        .expect("run opshub worker");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OPSHUB_METRICS_LISTEN"), "{stderr}");
}
