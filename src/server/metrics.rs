//! Prometheus metrics of one process, served on `metrics_listen` as
//! `GET /metrics` in the text format (off unless that is set).
//!
//! Each store owns one `Metrics` (`StoreMetrics::metrics`): the store is
//! what `serve`, `worker`, the engine, the HTTP app and every test share,
//! and it counts runs where their start, claim and end commit, whichever
//! path ends them (a batch, an abort, rescue). No process-global recorder,
//! so two stores in one test binary never mix their figures.
//!
//! Labels take bounded values only: operation kinds, run statuses, route
//! templates, fixed words. Never a tenant (unbounded, and per-tenant figures
//! are the Insights page's).

use crate::domain::{OperationKind, RunStatus, Timestamp};
use crate::server::store::{ClaimedRun, RescueReport, Store};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// The `route` of a request no route matched: static files and not-found
/// answers (their raw paths would be unbounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How long a scrape waits for the queue figures before leaving them out.
const QUEUE_SAMPLE_PATIENCE: Duration = Duration::from_secs(2);

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

pub struct Metrics {
    /// Exported on every scrape.
    registry: Registry,
    /// Read from the database at each scrape, and left out of one that
    /// could not read them rather than reported stale.
    queue_registry: Registry,
    runs_started: Family<Operation, Counter>,
    runs_ended: Family<Ended, Counter>,
    /// `runs_ended` summed, for code that waits on it (the benches); not
    /// exported, a scrape sums the family itself.
    runs_ended_in_all: Counter,
    claim_latency: HistogramFamily<Operation>,
    run_duration: HistogramFamily<Operation>,
    items_processed: Family<Operation, Counter>,
    rescues: Family<Rescue, Counter>,
    runs_stalled: Family<Operation, Counter>,
    workers_busy: Gauge,
    live_streams_open: Gauge,
    http_request_duration: HistogramFamily<HttpRequest>,
    db_connections_in_use: Gauge,
    queue_depth: Gauge,
    queue_oldest_age: Gauge<f64, AtomicU64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: OperationKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Ended {
    operation: OperationKind,
    status: RunStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rescue {
    /// `released`, `failed` or `aborted` (`RescueReport`'s fields).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequest {
    /// The route template (`/t/{tenant}/operations/{run_id}`), never the raw path.
    route: String,
    /// `2xx` … `5xx`.
    status: &'static str,
}

impl EncodeLabelValue for OperationKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.code(), encoder)
    }
}

impl EncodeLabelValue for RunStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Counts one in a gauge while held (also when the holder unwinds).
pub struct Held(Gauge);

impl Held {
    fn on(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    // Microseconds; clocks of two processes may disagree a little.
    (to.0.saturating_sub(from.0)).max(0) as f64 / 1e6
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // From 5 ms: a claim normally follows the start at once (a worker
        // is woken), minutes mean the workers cannot keep up.
        let claim_latency: HistogramFamily<Operation> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 16)));
        // 50 ms to ~1.8 h.
        let run_duration: HistogramFamily<Operation> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 18)));
        // 1 ms to ~33 s (requests time out at 30 s).
        let http_request_duration: HistogramFamily<HttpRequest> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let metrics = Self {
            registry: Registry::with_prefix("opshub"),
            queue_registry: Registry::with_prefix("opshub"),
            runs_started: Family::default(),
            runs_ended: Family::default(),
            runs_ended_in_all: Counter::default(),
            claim_latency,
            run_duration,
            items_processed: Family::default(),
            rescues: Family::default(),
            runs_stalled: Family::default(),
            workers_busy: Gauge::default(),
            live_streams_open: Gauge::default(),
            http_request_duration,
            db_connections_in_use: Gauge::default(),
            queue_depth: Gauge::default(),
            queue_oldest_age: Gauge::default(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "runs_started",
            "Runs queued by this process, by operation (a start that joined an active run is not one)",
            self.runs_started.clone(),
        );
        r.register(
            "runs_ended",
            "Runs this process ended (a batch, an abort or rescue), by operation and final status",
            self.runs_ended.clone(),
        );
        r.register_with_unit(
            "run_claim_latency",
            "Time from queueing a run to its first claim, by operation",
            Unit::Seconds,
            self.claim_latency.clone(),
        );
        r.register_with_unit(
            "run_duration",
            "Time from a run's first claim to its end, by operation (runs aborted while queued have none)",
            Unit::Seconds,
            self.run_duration.clone(),
        );
        r.register(
            "items_processed",
            "Items whose outcome a worker of this process recorded, by operation",
            self.items_processed.clone(),
        );
        r.register(
            "rescues",
            "Runs whose lease expired that rescue released for another attempt, failed (out of attempts) or aborted",
            self.rescues.clone(),
        );
        r.register(
            "runs_stalled",
            "Running runs this process flagged stalled (progress stood still past its threshold while the lease was held), by operation",
            self.runs_stalled.clone(),
        );
        r.register(
            "workers_busy",
            "Workers of this process executing a claim now",
            self.workers_busy.clone(),
        );
        r.register(
            "live_streams_open",
            "Live update streams (SSE) open on this process",
            self.live_streams_open.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (until the answer starts), by route template and status class",
            Unit::Seconds,
            self.http_request_duration.clone(),
        );
        r.register(
            "db_connections_in_use",
            "Database connections of this process's pools in use",
            self.db_connections_in_use.clone(),
        );
        let q = &mut self.queue_registry;
        q.register(
            "queue_depth",
            "Runs waiting to be claimed (the database's figure: every process reports the same)",
            self.queue_depth.clone(),
        );
        q.register_with_unit(
            "queue_oldest_age",
            "How long the oldest waiting run has waited (0 when none waits)",
            Unit::Seconds,
            self.queue_oldest_age.clone(),
        );
        self
    }

    /// A run was queued (the start committed and did not join another).
    pub fn run_started(&self, operation: OperationKind) {
        self.runs_started
            .get_or_create(&Operation { operation })
            .inc();
    }

    /// A run ended in `status`; `started_at` is its first claim, if it had one.
    pub fn run_ended(
        &self,
        operation: OperationKind,
        status: RunStatus,
        started_at: Option<Timestamp>,
        ended_at: Timestamp,
    ) {
        self.runs_ended
            .get_or_create(&Ended { operation, status })
            .inc();
        self.runs_ended_in_all.inc();
        if let Some(started_at) = started_at {
            self.run_duration
                .get_or_create(&Operation { operation })
                .observe(seconds_between(started_at, ended_at));
        }
    }

    /// Runs this process's store has ended since it started.
    pub fn runs_ended_so_far(&self) -> u64 {
        self.runs_ended_in_all.get()
    }

    /// Runs were claimed: how long each waited since it was queued. A run
    /// taken over after rescue is not waiting in the queue, so only first
    /// attempts count.
    pub fn runs_claimed(&self, runs: &[ClaimedRun]) {
        for run in runs.iter().filter(|run| run.lease.attempt == 1) {
            self.claim_latency
                .get_or_create(&Operation {
                    operation: run.operation,
                })
                .observe(seconds_between(run.created_at, run.claimed_at));
        }
    }

    pub fn items_processed(&self, operation: OperationKind, items: usize) {
        self.items_processed
            .get_or_create(&Operation { operation })
            .inc_by(items as u64);
    }

    /// A running run was flagged stalled.
    pub fn run_stalled(&self, operation: OperationKind) {
        self.runs_stalled
            .get_or_create(&Operation { operation })
            .inc();
    }

    pub fn rescued(&self, report: &RescueReport) {
        for (outcome, count) in [
            ("released", report.released),
            ("failed", report.failed),
            ("aborted", report.aborted),
        ] {
            if count > 0 {
                self.rescues
                    .get_or_create(&Rescue { outcome })
                    .inc_by(count);
            }
        }
    }

    /// A worker is busy with a claim until the guard drops.
    pub fn worker_busy(&self) -> Held {
        Held::on(&self.workers_busy)
    }

    /// A live stream is open until the guard drops.
    pub fn live_stream_opened(&self) -> Held {
        Held::on(&self.live_streams_open)
    }

    /// `route` is the matched route template, or [`UNMATCHED_ROUTE`].
    pub fn http_request(&self, route: &str, status: StatusCode, took: Duration) {
        self.http_request_duration
            .get_or_create(&HttpRequest {
                route: route.to_owned(),
                status: status_class(status),
            })
            .observe(took.as_secs_f64());
    }
}

/// The text exposition of `store`'s metrics, with what is sampled at
/// scrape time (connections in use, the queue) read now.
pub async fn exposition(store: &dyn Store) -> Result<String, std::fmt::Error> {
    let metrics = store.metrics();
    metrics
        .db_connections_in_use
        .set(i64::try_from(store.connections_in_use()).unwrap_or(i64::MAX));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &metrics.registry)?;
    match tokio::time::timeout(QUEUE_SAMPLE_PATIENCE, store.queue_depth()).await {
        Ok(Ok(queue)) => {
            metrics.queue_depth.set(queue.waiting);
            metrics.queue_oldest_age.set(
                queue
                    .oldest_created_at
                    .map_or(0.0, |oldest| seconds_between(oldest, Timestamp::now())),
            );
            prometheus_text::encode(&mut text, &metrics.queue_registry)?;
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::domain::sanitize_reason(&e.to_string()), "metrics: cannot read the queue; its figures are left out")
        }
        Err(_) => {
            tracing::warn!("metrics: the queue took too long to read; its figures are left out")
        }
    }
    Ok(text)
}

async fn scrape(State(store): State<Arc<dyn Store>>) -> Response {
    match exposition(store.as_ref()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => {
            tracing::error!("metrics: encoding failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(store);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_codes_people_read_elsewhere() {
        let metrics = Metrics::new();
        metrics.run_ended(
            OperationKind::DriftGenerate,
            RunStatus::CompletedWithErrors,
            Some(Timestamp(0)),
            Timestamp(1_500_000),
        );
        metrics.http_request(
            "/t/{tenant}",
            StatusCode::NOT_FOUND,
            Duration::from_millis(3),
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(
                "opshub_runs_ended_total{operation=\"drift.generate\",status=\"completed_with_errors\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("opshub_run_duration_seconds_sum{operation=\"drift.generate\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains(
                "opshub_http_request_duration_seconds_count{route=\"/t/{tenant}\",status=\"4xx\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_held_gauge_counts_until_dropped() {
        let metrics = Metrics::new();
        let first = metrics.worker_busy();
        let second = metrics.worker_busy();
        assert_eq!(metrics.workers_busy.get(), 2);
        drop(first);
        drop(second);
        assert_eq!(metrics.workers_busy.get(), 0);
    }
}
