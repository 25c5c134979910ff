//! `opshub bench prune`: a platform whose whole year of records is past its
//! retention (`dataset`, dated a year further back), pruned with the
//! default policy while the engine runs. Prints rows pruned per second, and
//! the engine's queued→claimed latency before and during the prune: pruning
//! goes in small batches so that it never holds the engine up for long.

use super::dataset::{self, Loader, Shape};
use super::engine::{bench_settings, claim_latencies, fixture, percentile, RunningEngine};
use super::{backend_name, ScratchDb};
use crate::domain::*;
use crate::server::retention::RetentionPolicy;
use crate::server::store::{self, Backend};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANTS: usize = 1_000;
/// Runs timed from queued to claimed before the prune (and at least as
/// many during it).
const LATENCY_RUNS: usize = 1_000;
/// How far before now the dataset's year ends: past every default cutoff
/// (the longest, audit entries, is 365 days).
const AGE_DAYS: i64 = 400;
/// The kinds in the order a prune pass takes them, each with the tables it
/// empties (a run takes its failed items, failure reasons, joins and
/// attempts along).
const KINDS: [(&str, &[&str]); 5] = [
    ("findings", &["findings"]),
    (
        "runs",
        &[
            "bulk_operation_runs",
            "run_failed_items",
            "run_failure_reasons",
            "run_joins",
            "run_attempts",
        ],
    ),
    ("notifications", &["notifications"]),
    ("audit_entries", &["audit_logs"]),
    (
        "inventory_syncs",
        &["inventory_sync_runs", "inventory_items"],
    ),
];

/// The default policy for `kind` alone: every other kind is kept.
fn policy_for(kind: &str) -> RetentionPolicy {
    let all = RetentionPolicy::default();
    let mut only = RetentionPolicy::keep_forever();
    match kind {
        "runs" => {
            only.succeeded_runs_days = all.succeeded_runs_days;
            only.partial_runs_days = all.partial_runs_days;
            only.failed_runs_days = all.failed_runs_days;
        }
        "notifications" => {
            only.read_notifications_days = all.read_notifications_days;
            only.unread_notifications_days = all.unread_notifications_days;
        }
        "findings" => only.acknowledged_findings_days = all.acknowledged_findings_days,
        "audit_entries" => only.audit_days = all.audit_days,
        _ => only.unused_syncs_days = all.unused_syncs_days,
    }
    only
}

pub async fn run(
    postgres_admin_url: &str,
    runs: usize,
    backends: &[Backend],
) -> Result<(), String> {
    for &backend in backends {
        let name = format!("opshub_prune_{}", std::process::id());
        let db = ScratchDb::create(backend, postgres_admin_url, &name).await?;
        let result = load_and_prune(backend, &db.url, runs).await;
        db.remove().await;
        result?;
    }
    Ok(())
}

async fn load_and_prune(backend: Backend, url: &str, runs: usize) -> Result<(), String> {
    let name = backend_name(backend);
    let fail = |e: store::StoreError| e.to_string();
    let settings = bench_settings();
    let store = store::connect(url, (settings.workers * 2 + 2) as u32)
        .await
        .map_err(fail)?;
    store.migrate().await.map_err(fail)?;

    let loader = Loader::connect(url).await?;
    let now = Timestamp::now();
    let started = Instant::now();
    // Every finding acknowledged: a kept (new) finding keeps the drift run
    // that produced it, so only then has every run of the year expired.
    let shape = Shape {
        tenants: TENANTS,
        runs,
        acknowledged_findings_percent: 100,
    };
    // No one signs in: the viewer's password hash is never checked.
    let data = dataset::load(
        &loader,
        shape,
        Timestamp(now.0 - AGE_DAYS * 86_400_000_000),
        "-",
    )
    .await?;
    loader.settle().await?;
    let loaded: u64 = data.rows.iter().map(|(_, n)| n).sum();
    crate::outln!(
        "prune backend={name}: loaded {loaded} rows ({runs} runs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let fixture = fixture(store.as_ref(), 0).await.map_err(fail)?;
    let engine = RunningEngine::start(&store, settings);

    // The dataset's queued and running runs (their workers long gone:
    // rescue takes them over) go first, so the idle figure is idle.
    let waited = Instant::now();
    while loader
        .count("bulk_operation_runs WHERE status IN ('pending', 'running')")
        .await?
        > 0
    {
        if waited.elapsed() > Duration::from_secs(600) {
            return Err("the dataset's active runs did not finish within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::outln!(
        "  the dataset's active runs executed in {:.1} s",
        waited.elapsed().as_secs_f64()
    );
    let mut idle =
        claim_latencies(store.as_ref(), &fixture, "idle", LATENCY_RUNS, || false).await?;

    // One pass per kind, in the order a full pass takes them, so each
    // kind's rate shows; the engine runs throughout. Rows are counted
    // before and after, not between kinds: counting millions of rows
    // would compete with the claims timed during the prune. No kind
    // removes another's rows, and the engine's runs are the fixture's.
    let not_fixture = format!("tenant_id <> {}", tenant_literal(backend, fixture.tenant));
    let before = count_kinds(&loader, &not_fixture).await?;
    let pruning = Arc::new(AtomicBool::new(true));
    let prune = tokio::spawn({
        let store = store.clone();
        let pruning = pruning.clone();
        async move {
            let mut took = Vec::new();
            for (kind, _) in KINDS {
                let started = Instant::now();
                store
                    .prune(&policy_for(kind), now, false)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("another process held the prune lock")?;
                took.push(started.elapsed());
            }
            pruning.store(false, Ordering::Relaxed);
            Ok::<_, String>(took)
        }
    });
    let mut during = claim_latencies(store.as_ref(), &fixture, "during", LATENCY_RUNS, || {
        pruning.load(Ordering::Relaxed)
    })
    .await?;
    let took = prune.await.map_err(|e| e.to_string())??;
    engine.stop().await;
    let after = count_kinds(&loader, &not_fixture).await?;
    let passes: Vec<(&str, u64, Duration)> = KINDS
        .iter()
        .zip(before.iter().zip(&after))
        .zip(took)
        .map(|(((kind, _), (before, after)), took)| (*kind, before - after, took))
        .collect();

    let removed: u64 = passes.iter().map(|(_, rows, _)| rows).sum();
    let seconds: f64 = passes.iter().map(|(_, _, took)| took.as_secs_f64()).sum();
    for (kind, rows, took) in &passes {
        crate::outln!(
            "  {kind}: {rows} rows in {:.1} s ({:.0} rows/s)",
            took.as_secs_f64(),
            *rows as f64 / took.as_secs_f64()
        );
    }
    // Where the tail sits tells a general slowdown from a few stalls.
    let spread = |latencies: &mut [f64]| {
        [0.5, 0.9, 0.99, 1.0]
            .map(|p| format!("{:.2}", percentile(latencies, p)))
            .join("/")
    };
    crate::outln!(
        "  queued->claimed ms (p50/p90/p99/max): idle {}, during the prune {} ({} runs)",
        spread(&mut idle),
        spread(&mut during),
        during.len()
    );
    let (idle_p99, during_p99) = (percentile(&mut idle, 0.99), percentile(&mut during, 0.99));
    let (_, run_rows, runs_took) = passes
        .iter()
        .find(|(kind, _, _)| *kind == "runs")
        .expect("runs are a kind");
    crate::outln!(
        "prune backend={name} runs={runs} pruned_rows={removed} prune_s={seconds:.1} rows_per_s={:.0} run_rows_per_s={:.0} claim_p99_idle_ms={idle_p99:.2} claim_p99_during_ms={during_p99:.2} claim_ratio={:.2}",
        removed as f64 / seconds,
        *run_rows as f64 / runs_took.as_secs_f64(),
        during_p99 / idle_p99
    );
    Ok(())
}

/// Rows of each kind's tables outside the fixture's tenant, in `KINDS` order.
async fn count_kinds(loader: &Loader, not_fixture: &str) -> Result<Vec<u64>, String> {
    let mut counts = Vec::with_capacity(KINDS.len());
    for (_, tables) in KINDS {
        let mut rows = 0;
        for table in tables {
            rows += loader
                .count(&format!("{table} WHERE {not_fixture}"))
                .await?;
        }
        counts.push(rows);
    }
    Ok(counts)
}

/// `tenant` as a literal of the backend's id column.
fn tenant_literal(backend: Backend, tenant: TenantId) -> String {
    match backend {
        Backend::Postgres => format!("'{}'", tenant.0),
        Backend::Sqlite => format!("X'{}'", tenant.0.simple()),
    }
}
