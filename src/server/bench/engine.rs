//! `opshub bench engine`: measures the engine on each backend, in a fresh
//! scratch database, and prints figures. No assertions: the machine decides.
//!
//! Phases per backend:
//! 1. floor: the claim and complete statements alone, four tasks in a loop;
//! 2. runs: the worker pool (4 workers) draining one-item runs — 1 and 2
//!    alternate for `ROUNDS` rounds, and their medians are reported;
//! 3. items: the pool executing large drift runs;
//! 4. latency: runs queued one at a time into an idle pool, queued→claimed.

use super::{backend_name, ScratchDb};
use crate::domain::*;
use crate::server::config::Settings;
use crate::server::engine::{self, EngineSettings};

use crate::server::store::{
    self, Backend, BatchEnd, NewInventoryItem, NewInventorySync, NewPolicy, NewRun, NewUser,
    RunProgress, Store,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const SUBJECTS: usize = 20_000;
const DRIFT_RUNS: usize = 4;
const LATENCY_RUNS: usize = 200;
/// Floor and engine phases, alternating.
const ROUNDS: usize = 5;

pub(super) struct Fixture {
    pub(super) tenant: TenantId,
    user: UserId,
    set: BackupSetId,
    policies: Vec<PolicyId>,
    /// One comparison per drift run: two active runs never compare the
    /// same pair (the idempotency key joins them).
    comparisons: Vec<DriftScope>,
    subjects: Vec<String>,
}

pub async fn run(
    postgres_admin_url: &str,
    runs: usize,
    backends: &[Backend],
) -> Result<(), String> {
    let name = format!("opshub_bench_{}", std::process::id());
    for &backend in backends {
        let db = match ScratchDb::create(backend, postgres_admin_url, &name).await {
            Ok(db) => db,
            // Without a PostgreSQL server, SQLite's figures still print.
            Err(e) if backend == Backend::Postgres => {
                crate::outln!("engine backend=postgres skipped: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let result = bench_backend(backend_name(backend), &db.url, runs).await;
        db.remove().await;
        result?;
    }
    Ok(())
}

/// The engine's worker pool, running on a store until `stop`.
pub(super) struct RunningEngine {
    stop: tokio::sync::watch::Sender<bool>,
    pool: tokio::task::JoinHandle<()>,
}

impl RunningEngine {
    pub(super) fn start(store: &Arc<dyn Store>, settings: EngineSettings) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let health = engine::EngineHealth::new(&settings);
        let pool = tokio::spawn(engine::run(store.clone(), settings, health, stopped));
        Self { stop, pool }
    }

    /// Lets the runs in flight finish, as a shutdown does.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.pool.await;
    }
}

/// The engine as the benches run it: as configured by default, with
/// `WORKERS` workers and no prune pass during a measurement.
pub(super) fn bench_settings() -> EngineSettings {
    EngineSettings {
        workers: WORKERS,
        prune_interval: Duration::from_secs(3_600),
        ..EngineSettings::from_settings(&Settings::default())
    }
}

async fn bench_backend(backend: &str, url: &str, runs: usize) -> Result<(), String> {
    let store = store::connect(url, (WORKERS * 2 + 2) as u32)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let fixture = fixture(store.as_ref(), DRIFT_RUNS)
        .await
        .map_err(|e| e.to_string())?;
    crate::outln!("backend={backend}: {runs} runs per throughput phase, {DRIFT_RUNS} drift runs of {SUBJECTS} subjects, {LATENCY_RUNS} latency runs");

    let settings = bench_settings();

    // 1.–2. The floor and the engine, in rounds that alternate: a phase
    //    lasts about a second, and whatever else the machine does then
    //    falls on both sides; the medians are reported.
    let (mut floors, mut engines) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let raw = floor_runs_per_s(&store, &fixture, settings, round, runs).await?;
        let ended_before = store.metrics().runs_ended_so_far();
        enqueue_policy_runs(store.as_ref(), &fixture, &format!("engine-{round}"), runs).await?;
        let engine = RunningEngine::start(&store, settings);
        let started = Instant::now();
        ended(store.as_ref(), ended_before + runs as u64).await;
        let executed = runs as f64 / started.elapsed().as_secs_f64();
        engine.stop().await;
        crate::outln!(
            "  round {round}: floor {raw:.0} runs/s (claimed+completed by bare statements), engine {executed:.0} runs/s (one-item runs, {WORKERS} workers), {:.2}×",
            executed / raw
        );
        floors.push(raw);
        engines.push(executed);
    }
    let raw_runs_per_s = percentile(&mut floors, 0.5);
    let runs_per_s = percentile(&mut engines, 0.5);

    // 3.–4. Drift items, then latency, on a fresh pool.
    let engine = RunningEngine::start(&store, settings);
    let ended_before = store.metrics().runs_ended_so_far();
    let started = Instant::now();
    for (index, comparison) in fixture.comparisons.iter().enumerate() {
        enqueue(
            store.as_ref(),
            &fixture,
            format!("items-{index}"),
            RunScope::Drift(comparison.clone()),
            fixture.subjects.clone(),
        )
        .await?;
    }
    ended(store.as_ref(), ended_before + DRIFT_RUNS as u64).await;
    let items = DRIFT_RUNS * fixture.subjects.len();
    let items_per_s = items as f64 / started.elapsed().as_secs_f64();
    crate::outln!(
        "  items: {items} drift items in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut latencies =
        claim_latencies(store.as_ref(), &fixture, "latency", LATENCY_RUNS, || false).await?;
    engine.stop().await;
    crate::outln!(
        "engine backend={backend} runs_per_s={runs_per_s:.0} raw_runs_per_s={raw_runs_per_s:.0} floor_ratio={:.2} items_per_s={items_per_s:.0} claim_p50_ms={:.2} claim_p99_ms={:.2}",
        runs_per_s / raw_runs_per_s,
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99)
    );
    Ok(())
}

/// The floor: `runs` one-item runs claimed and completed by the engine's
/// claim and progress statements alone, `WORKERS` tasks in a loop.
async fn floor_runs_per_s(
    store: &Arc<dyn Store>,
    fixture: &Fixture,
    settings: EngineSettings,
    round: usize,
    runs: usize,
) -> Result<f64, String> {
    enqueue_policy_runs(store.as_ref(), fixture, &format!("floor-{round}"), runs).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..WORKERS {
        let store = store.clone();
        tasks.spawn(async move {
            let owner = format!("floor-{task}");
            loop {
                let claimed = store
                    .claim_runs(&owner, settings.lease, settings.claim_limit())
                    .await?;
                if claimed.is_empty() {
                    return Ok::<_, store::StoreError>(());
                }
                let completions = claimed
                    .into_iter()
                    .map(|run| RunProgress {
                        lease: run.lease,
                        recorded_before: run.resume_at as i64,
                        items: Vec::new(),
                        end: BatchEnd::Finishes,
                    })
                    .collect::<Vec<_>>();
                store.record_progress(settings.lease, &completions).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(runs as f64 / started.elapsed().as_secs_f64())
}

/// Queues one-item runs 10 ms apart, `min_runs` of them and then more
/// while `keep_going` says so, waits until all ran, and returns each one's
/// time from queued to claimed, in ms.
pub(super) async fn claim_latencies(
    store: &dyn Store,
    fixture: &Fixture,
    tag: &str,
    min_runs: usize,
    keep_going: impl Fn() -> bool,
) -> Result<Vec<f64>, String> {
    let ended_before = store.metrics().runs_ended_so_far();
    let mut ids = Vec::new();
    while ids.len() < min_runs || keep_going() {
        let index = ids.len();
        let policy = fixture.policies[index % fixture.policies.len()];
        ids.push(
            enqueue(
                store,
                fixture,
                format!("{tag}-{index}"),
                add_scope(fixture, policy),
                vec![policy.to_string()],
            )
            .await?,
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ended(store, ended_before + ids.len() as u64).await;
    let mut latencies = Vec::with_capacity(ids.len());
    for id in ids {
        let run = store
            .run(fixture.tenant, id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("run vanished")?;
        let claimed = run.summary.started_at.ok_or("run never started")?;
        latencies.push((claimed.0 - run.summary.created_at.0) as f64 / 1_000.0);
    }
    Ok(latencies)
}

/// The `p` quantile (0–1) of `values`, sorting them.
pub(super) fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Waits until this process's store has ended `runs_ended` runs in all. Its
/// own count, read without a query: polling the database would take from
/// the engine it measures, and see the end only at its next poll.
pub(super) async fn ended(store: &dyn Store, runs_ended: u64) {
    while store.metrics().runs_ended_so_far() < runs_ended {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn add_scope(fixture: &Fixture, policy: PolicyId) -> RunScope {
    RunScope::AddPolicies(AddPoliciesScope {
        backup_set_id: fixture.set,
        policy_ids: vec![policy],
        options: AddPoliciesOptions {
            include_payload: true,
        },
    })
}

async fn enqueue_policy_runs(
    store: &dyn Store,
    fixture: &Fixture,
    phase: &str,
    runs: usize,
) -> Result<(), String> {
    for index in 0..runs {
        let policy = fixture.policies[index % fixture.policies.len()];
        enqueue(
            store,
            fixture,
            format!("{phase}-{index}"),
            add_scope(fixture, policy),
            vec![policy.to_string()],
        )
        .await?;
    }
    Ok(())
}

async fn enqueue(
    store: &dyn Store,
    fixture: &Fixture,
    key: String,
    item_ids: RunScope,
    work_items: Vec<String>,
) -> Result<RunId, String> {
    let started = store
        .start_run(NewRun {
            id: RunId::generate(),
            tenant_id: fixture.tenant,
            user_id: fixture.user,
            operation: item_ids.operation(),
            idempotency_key: key,
            item_ids,
            work_items,
            max_attempts: 3,
            audit: None,
            notification: None,
            retry_of: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.run.summary.id)
}

/// A tenant with a backup set, 64 policies and `comparisons` scopes of two
/// inventory snapshots each.
pub(super) async fn fixture(
    store: &dyn Store,
    comparisons: usize,
) -> Result<Fixture, store::StoreError> {
    let tenant = store
        .create_tenant(
            &TenantSlug::parse("bench").map_err(|e| store::StoreError::Invalid(e.0))?,
            "Bench",
        )
        .await?;
    let user = store
        .create_user(NewUser {
            email: "bench@opshub.example".into(),
            display_name: "Bench".into(),
            password_hash: None,
        })
        .await?;
    let mut policies = Vec::new();
    for n in 0..64 {
        let policy = store
            .create_policy(NewPolicy {
                tenant_id: tenant.id,
                external_id: format!("policy-{n}"),
                name: format!("Policy {n}"),
                policy_type: "compliance".into(),
                payload: serde_json::json!({ "settings": { "level": n % 3 } }),
            })
            .await?;
        policies.push(policy.id);
    }
    let set = store.create_backup_set(tenant.id, "bench").await?;
    // Two snapshots: a quarter of the subjects changed, a few added and removed.
    let snapshot = |sync: usize| -> Vec<NewInventoryItem> {
        (0..SUBJECTS + 100)
            .filter(|n| if sync == 0 { *n < SUBJECTS } else { *n >= 100 })
            .map(|n| NewInventoryItem {
                subject_type: "device".into(),
                external_id: format!("device-{n:06}"),
                display_name: format!("Device {n}"),
                payload: serde_json::json!({
                    "os_version": if n % 4 == 0 { format!("10.{sync}") } else { "10.0".into() },
                    "owner": "it-ops",
                }),
            })
            .collect()
    };
    let mut drifts = Vec::with_capacity(comparisons);
    for comparison in 0..comparisons {
        let scope_key = format!("bench/devices-{comparison}");
        let mut syncs = Vec::new();
        for sync in 0..2 {
            let recorded = store
                .record_inventory_sync(NewInventorySync {
                    tenant_id: tenant.id,
                    selection_hash: scope_key.clone(),
                    finished_at: Timestamp::now(),
                    items: snapshot(sync),
                })
                .await?;
            syncs.push(recorded.id);
        }
        drifts.push(DriftScope {
            scope_key,
            baseline_run_id: syncs[0],
            current_run_id: syncs[1],
            subjects: None,
        });
    }
    let mut subjects: Vec<String> = (0..SUBJECTS + 100)
        .map(|n| format!("device:device-{n:06}"))
        .collect();
    subjects.sort();
    Ok(Fixture {
        tenant: tenant.id,
        user: user.id,
        set: set.id,
        policies,
        comparisons: drifts,
        subjects,
    })
}
