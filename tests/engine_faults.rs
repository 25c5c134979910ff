//! Faults inside the engine, planted with the `fault-injection` feature
//! (only tests enable it; `scripts/test.sh` builds the suite with it): an
//! operation that panics or fails, a worker task that dies, answers lost on
//! their way back from the database — and, on PostgreSQL, every connection
//! cut twice while 500 runs execute.

mod support;

use opshub::domain::*;
use opshub::server::engine::fault::inject::{self, Site};
use opshub::server::engine::{self, EngineHealth, EngineSettings, RunEnd, Worker};
use opshub::server::store::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::engine::*;
use support::{fixture, Fixture, TestDb};

/// A secret in every planted fault's message: it must reach no run, no
/// notice and no log line.
const CANARY: &str = "CANARY5e1f0";

fn fault_message(what: &str) -> String {
    format!("{what}; token={CANARY}-token password={CANARY}-pw")
}

/// Panics go to the captured log, sanitised, as in `opshub serve`.
fn watch_logs() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    let logs = support::server_log();
    engine::fault::log_panics();
    logs
}

fn assert_no_canary(logs: &std::sync::Mutex<Vec<u8>>, seen: &str) {
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the server log is kept");
    for text in [seen, logs.as_str()] {
        if let Some(at) = text.find(CANARY) {
            let before: Vec<char> = text[..at].chars().rev().take(200).collect();
            panic!(
                "a canary leaked after: {}",
                before.iter().rev().collect::<String>()
            );
        }
    }
}

/// `n` policies of the tenant, as the item ids of a run.
async fn policy_ids(store: &dyn Store, f: &Fixture, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("Policy {i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    policies(store, f, &names)
        .await
        .iter()
        .map(|p| p.id.to_string())
        .collect()
}

/// A run adding `items` to a backup set of its own.
async fn queue_run(store: &dyn Store, f: &Fixture, key: &str, items: Vec<String>) -> RunId {
    let set = store
        .create_backup_set(f.tenant.id, &format!("set {key}"))
        .await
        .unwrap();
    queue_add_policies(store, f, set.id, key, items, 3).await
}

/// Waits until no run of these tenants is queued or running.
async fn all_ended(store: &dyn Store, tenants: &[&Fixture], within: Duration) {
    let deadline = Instant::now() + within;
    for f in tenants {
        loop {
            let counts = store
                .count_runs_by_bucket(f.tenant.id, &RunFilter::default())
                .await
                .unwrap();
            if counts.queued + counts.running == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "runs still active: {counts:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn all_done(total: i64) -> Counters {
    Counters {
        total,
        processed: total,
        succeeded: total,
        failed: 0,
        skipped: 0,
    }
}

fn pool(
    db: &TestDb,
    settings: EngineSettings,
) -> (
    Arc<EngineHealth>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let health = EngineHealth::new(&settings);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(engine::run(
        db.store.clone(),
        settings,
        health.clone(),
        stopped,
    ));
    (health, stop, running)
}

on_both! { db =>
    async fn a_panicking_operation_fails_its_run_and_the_pool_goes_on(db) {
        let logs = watch_logs();
        let store = db.store.as_ref();
        let acme = fixture(store, "acme").await;
        let items = policy_ids(store, &acme, 4).await;
        let faulty = queue_run(store, &acme, "faulty", items.clone()).await;
        inject::arm(Site::Process, &items[2], 1, &fault_message("index out of bounds"));
        // Other tenants' runs queued behind it.
        let mut others = Vec::new();
        let tenants = [fixture(store, "globex").await, fixture(store, "initech").await];
        for f in &tenants {
            for n in 0..3 {
                let items = policy_ids(store, f, 2).await;
                others.push((f, queue_run(store, f, &format!("other-{n}"), items).await));
            }
        }
        let (health, stop, running) = pool(db, EngineSettings { workers: 2, batch_max_items: 2, ..settings() });
        all_ended(store, &[&acme, &tenants[0], &tenants[1]], Duration::from_secs(60)).await;

        let failed = detail(store, &acme, faulty).await;
        assert_eq!(failed.summary.status, RunStatus::Failed);
        assert_eq!(
            failed.summary.counters,
            Counters { total: 4, processed: 2, succeeded: 2, failed: 0, skipped: 0 },
            "the items before the fault counted as they were, nothing after"
        );
        assert_eq!(failed.failures.len(), 1, "{:?}", failed.failures);
        let entry = &failed.failures[0];
        assert_eq!((entry.item_id.as_deref(), entry.reason_code, entry.kind),
            (Some(items[2].as_str()), ReasonCode::InternalError, FailureKind::Failed));
        assert!(entry.reason.starts_with("the operation broke down processing an item: index out of bounds"), "{}", entry.reason);
        let set = BackupSetId::parse(failed.item_ids["backup_set_id"].as_str().unwrap()).unwrap();
        let added: Vec<String> = store.backup_set_items(acme.tenant.id, set).await.unwrap()
            .iter().map(|item| item.policy_id.to_string()).collect();
        assert_eq!(added.len(), 2);
        assert!(added.contains(&items[0]) && added.contains(&items[1]));
        let notice = &completed_notices(store, &acme, faulty).await[0];
        assert_eq!((notice.bucket, notice.error_summary.as_deref()), (StatusBucket::Failed, Some("internal_error ×1")));

        for (f, run) in &others {
            let done = detail(store, f, *run).await;
            assert_eq!((done.summary.status, done.summary.counters), (RunStatus::Completed, all_done(2)));
        }
        assert_eq!((health.workers_alive(), health.workers_replaced()), (2, 0), "the pool is whole");
        assert_eq!(health.problem(), None);
        stop.send(true).unwrap();
        running.await.unwrap();
        assert_no_canary(logs, &format!("{failed:?}{notice:?}"));
    }

    async fn an_operation_that_breaks_down_preparing_fails_alone(db) {
        let logs = watch_logs();
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mut runs = Vec::new();
        for key in ["panics", "errs", "fine"] {
            let items = policy_ids(store, &f, 2).await;
            runs.push((queue_run(store, &f, key, items.clone()).await, items));
        }
        inject::arm(Site::Prepare, &runs[0].1[0], 1, &fault_message("unwrap on None"));
        inject::arm(Site::PrepareError, &runs[1].1[0], 1, &fault_message("row decodes to nothing"));
        // One claim takes all three: the breakdowns stay with their runs.
        let executed = Worker::new(db.store.clone(), "w", settings()).step().await.unwrap();
        let ends: Vec<(RunId, RunEnd)> = executed.iter().map(|run| (run.run_id, run.end)).collect();
        assert_eq!(ends, vec![
            (runs[0].0, RunEnd::Finished(RunStatus::Failed)),
            (runs[1].0, RunEnd::Finished(RunStatus::Failed)),
            (runs[2].0, RunEnd::Finished(RunStatus::Completed)),
        ]);
        let mut seen = String::new();
        for ((run, _), doing) in runs.iter().zip(["unwrap on None", "invalid value: row decodes to nothing"]) {
            let failed = detail(store, &f, *run).await;
            assert_eq!(failed.summary.counters, Counters { total: 2, ..Counters::default() });
            assert_eq!(failed.failures.len(), 1);
            let entry = &failed.failures[0];
            assert_eq!((entry.item_id.as_ref(), entry.reason_code), (None, ReasonCode::InternalError));
            assert!(entry.reason.starts_with(&format!("the operation broke down preparing the run: {doing}")), "{}", entry.reason);
            seen.push_str(&format!("{failed:?}"));
        }
        assert_eq!(detail(store, &f, runs[2].0).await.summary.counters, all_done(2));
        assert_no_canary(logs, &seen);
    }

    async fn what_a_claim_shares_breaking_down_stays_with_the_run_it_is_in(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mut runs = Vec::new();
        for key in ["fine", "broken", "also-fine"] {
            let items = policy_ids(store, &f, 2).await;
            runs.push((queue_run(store, &f, key, items.clone()).await, items));
        }
        // Loading the claim's policies fails; so does the broken run's own
        // load after it; the other runs load theirs and complete.
        inject::arm(Site::SharedLoadError, &runs[1].1[0], 2, &fault_message("policy row decodes to nothing"));
        let executed = Worker::new(db.store.clone(), "w", settings()).step().await.unwrap();
        let ends: Vec<(RunId, RunEnd)> = executed.iter().map(|run| (run.run_id, run.end)).collect();
        assert_eq!(ends, vec![
            (runs[0].0, RunEnd::Finished(RunStatus::Completed)),
            (runs[1].0, RunEnd::Finished(RunStatus::Failed)),
            (runs[2].0, RunEnd::Finished(RunStatus::Completed)),
        ]);
        for (run, _) in [&runs[0], &runs[2]] {
            assert_eq!(detail(store, &f, *run).await.summary.counters, all_done(2));
        }
        let failed = detail(store, &f, runs[1].0).await;
        assert_eq!(failed.failures.len(), 1);
        assert!(failed.failures[0]
            .reason
            .starts_with("the operation broke down preparing the run: invalid value: policy row decodes to nothing"));
    }

    async fn progress_the_store_refuses_for_good_fails_only_its_run(db) {
        let logs = watch_logs();
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mut runs = Vec::new();
        for key in ["before", "refused", "after"] {
            let items = policy_ids(store, &f, 2).await;
            runs.push((queue_run(store, &f, key, items.clone()).await, items));
        }
        // Refused in the claim's shared write, and again written alone.
        inject::arm(Site::ProgressRefused, &runs[1].1[0], 2, &fault_message("artifact breaks a rule"));
        let executed = Worker::new(db.store.clone(), "w", settings()).step().await.unwrap();
        let ends: Vec<(RunId, RunEnd)> = executed.iter().map(|run| (run.run_id, run.end)).collect();
        assert_eq!(ends, vec![
            (runs[0].0, RunEnd::Finished(RunStatus::Completed)),
            (runs[1].0, RunEnd::Finished(RunStatus::Failed)),
            (runs[2].0, RunEnd::Finished(RunStatus::Completed)),
        ]);
        for (run, _) in [&runs[0], &runs[2]] {
            assert_eq!(detail(store, &f, *run).await.summary.counters, all_done(2));
        }
        let failed = detail(store, &f, runs[1].0).await;
        assert_eq!(failed.summary.counters, Counters { total: 2, ..Counters::default() }, "the refused batch is not counted");
        assert_eq!(failed.failures.len(), 1);
        let entry = &failed.failures[0];
        assert_eq!((entry.item_id.as_ref(), entry.reason_code), (None, ReasonCode::InternalError));
        assert!(
            entry.reason.starts_with("the run's progress could not be recorded: invalid value: artifact breaks a rule"),
            "{}",
            entry.reason
        );
        assert_no_canary(logs, &format!("{failed:?}"));
    }

    async fn a_worker_task_that_dies_is_replaced(db) {
        let logs = watch_logs();
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let doomed_items = policy_ids(store, &f, 3).await;
        let doomed = queue_run(store, &f, "doomed", doomed_items.clone()).await;
        inject::arm(Site::Claimed, &doomed_items[0], 1, &fault_message("worker bug"));
        let mut others = Vec::new();
        for n in 0..4 {
            let items = policy_ids(store, &f, 2).await;
            others.push(queue_run(store, &f, &format!("other-{n}"), items).await);
        }
        // A short lease: the run the dead worker held is rescued soon.
        let (health, stop, running) = pool(db, EngineSettings {
            workers: 2,
            lease: Duration::from_secs(1),
            heartbeat: Duration::from_millis(200),
            ..settings()
        });
        all_ended(store, &[&f], Duration::from_secs(60)).await;
        let rescued = detail(store, &f, doomed).await;
        assert_eq!((rescued.summary.status, rescued.summary.counters), (RunStatus::Completed, all_done(3)));
        assert_eq!(rescued.attempt, 2, "taken over once, by rescue");
        for run in &others {
            assert_eq!(detail(store, &f, *run).await.summary.status, RunStatus::Completed);
        }
        assert_eq!(health.workers_replaced(), 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while health.workers_alive() != 2 {
            assert!(Instant::now() < deadline, "the pool stayed at {} workers", health.workers_alive());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(health.problem(), None);
        stop.send(true).unwrap();
        running.await.unwrap();
        let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(log.contains("an engine task died; replacing it"), "the death is logged");
        assert_no_canary(logs, "");
    }

    async fn a_claim_whose_answer_was_lost_is_taken_back_at_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let items = policy_ids(store, &f, 2).await;
        let run = queue_run(store, &f, "lost-claim", items.clone()).await;
        inject::arm(Site::ClaimAnswerLost, &items[0], 1, "");
        let worker = Worker::new(db.store.clone(), "w", settings());
        assert!(worker.step().await.unwrap_err().is_transient());
        let held = detail(store, &f, run).await;
        assert_eq!((held.summary.status, held.lease_owner.as_deref()), (RunStatus::Running, Some("w")));
        // The next step takes it back under the same claim, not after the lease.
        let executed = worker.step().await.unwrap();
        assert_eq!(executed.len(), 1);
        assert_eq!((executed[0].run_id, executed[0].attempt, executed[0].end), (run, 1, RunEnd::Finished(RunStatus::Completed)));
        let done = detail(store, &f, run).await;
        assert_eq!((done.attempt, done.summary.counters), (1, all_done(2)));
    }

    async fn progress_whose_answer_was_lost_is_counted_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let items = policy_ids(store, &f, 5).await;
        let run = queue_run(store, &f, "lost-progress", items.clone()).await;
        // Batches [0, 1], [2, 3], [4]: the first and the last (which ends the
        // run) commit, but their answers are lost.
        inject::arm(Site::ProgressAnswerLost, &items[1], 1, "");
        inject::arm(Site::ProgressAnswerLost, &items[4], 1, "");
        let worker = Worker::new(db.store.clone(), "w", EngineSettings { batch_max_items: 2, ..settings() });
        let executed = drain(&worker).await;
        assert_eq!(executed.len(), 1);
        assert_eq!((executed[0].items, executed[0].end), (5, RunEnd::Finished(RunStatus::Completed)));
        let done = detail(store, &f, run).await;
        assert_eq!((done.attempt, done.summary.counters), (1, all_done(5)));
        assert!(done.failures.is_empty());
        let set = BackupSetId::parse(done.item_ids["backup_set_id"].as_str().unwrap()).unwrap();
        assert_eq!(store.backup_set_items(f.tenant.id, set).await.unwrap().len(), 5);
        assert_eq!(completed_notices(store, &f, run).await.len(), 1);
    }
}

/// Runs of the tenant that have ended, read over a connection of the
/// test's own (not an opshub one: the cuts spare it).
async fn ended_runs(observer: &mut sqlx::PgConnection, f: &Fixture) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM bulk_operation_runs \
         WHERE tenant_id = $1 AND status NOT IN ('pending', 'running')",
    )
    .bind(f.tenant.id.0)
    .fetch_one(observer)
    .await
    .unwrap()
}

/// Terminates every connection opshub holds to the test's database: the
/// web pool's, the engine's and the LISTEN ones. How many it ended.
async fn cut_every_connection(observer: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'opshub' \
         AND pid <> pg_backend_pid()) AS cut",
    )
    .fetch_one(observer)
    .await
    .unwrap()
}

/// What the HTTP side answered while the connections were cut.
#[derive(Debug, Default)]
struct Answers {
    ok: usize,
    unavailable: usize,
}

/// Asks for `/healthz`, `/readyz` and the hub's runs (signed in) until
/// `stop`; every request must answer within a generous deadline, with 200
/// or a clean 503.
async fn keep_asking(
    router: axum::Router,
    cookie: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Answers {
    use axum::http::{header, Request, StatusCode};
    use support::app::{probe, send_to};
    let mut answers = Answers::default();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let hub = Request::post("/api/runs/hub")
            .header(header::HOST, "opshub.test")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie)
            .body(axum::body::Body::from(
                serde_json::json!({ "tenant": "acme", "query": {} }).to_string(),
            ))
            .unwrap();
        for (what, request) in [
            ("/healthz", probe("/healthz")),
            ("/readyz", probe("/readyz")),
            ("/api/runs/hub", hub),
        ] {
            let reply = tokio::time::timeout(Duration::from_secs(30), send_to(&router, request))
                .await
                .unwrap_or_else(|_| panic!("{what} did not answer within 30 s"));
            match reply.status {
                StatusCode::OK => answers.ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => answers.unavailable += 1,
                other => panic!("{what} answered {other}: {}", reply.body),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    answers
}

/// Every opshub connection to PostgreSQL terminated twice while 500 runs
/// execute. Workers retry their own writes and take back their own claims,
/// so every run ends exactly once (attempt 1, exact counters, one artifact
/// per item, one notice) long before a lease — 90 s here — could have
/// expired and rescue stepped in; requests made meanwhile answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_under_load_recover_without_rescue() {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    use support::app::{probe, send_to, App};
    const RUNS: usize = 500;
    const ITEMS: usize = 4;
    watch_logs();
    let app = App::new(Backend::Postgres, Default::default()).await;
    let store = app.db.store.as_ref();
    let cookie = app.sign_in("viewer@acme.example").await;
    let f = fixture(store, "cutco").await;
    let items = policy_ids(store, &f, ITEMS).await;
    let mut runs = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        runs.push(queue_run(store, &f, &format!("cut-{n}"), items.clone()).await);
    }
    let mut observer = sqlx::postgres::PgConnectOptions::from_str(&app.db.url)
        .unwrap()
        .application_name("opshub-test-observer")
        .connect()
        .await
        .unwrap();

    // One item a write: many writes in flight when the connections go.
    let settings = EngineSettings {
        workers: 4,
        lease: Duration::from_secs(90),
        heartbeat: Duration::from_secs(1),
        rescue_interval: Duration::from_secs(1),
        poll_interval: Duration::from_millis(200),
        batch_max_items: 1,
        ..settings()
    };
    let (health, stop, running) = pool(&app.db, settings);
    let router = opshub::server::http::router(app.state.clone().with_engine_health(health.clone()));
    let stop_asking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = tokio::spawn(keep_asking(router.clone(), cookie, stop_asking.clone()));

    let deadline = Instant::now() + Duration::from_secs(120);
    // The first cut once a fifth of the runs ended, the second at three fifths.
    for threshold in [RUNS / 5, RUNS * 3 / 5] {
        while ended_runs(&mut observer, &f).await < threshold as i64 {
            assert!(Instant::now() < deadline, "the runs did not get going");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cut = cut_every_connection(&mut observer).await;
        let ended = ended_runs(&mut observer, &f).await;
        println!("cut {cut} connections with {ended} of {RUNS} runs ended");
        assert!(cut > 0, "no opshub connection to cut");
        assert!(ended < RUNS as i64, "the runs ended before the cut");
    }
    let last_cut = Instant::now();
    // A broken worker takes its own run up again at once. Rescue could not
    // act before the 90 s lease ran out: ending well within it is the proof.
    while ended_runs(&mut observer, &f).await < RUNS as i64 {
        assert!(
            last_cut.elapsed() < Duration::from_secs(60),
            "runs waited for rescue: {} of {RUNS} ended",
            ended_runs(&mut observer, &f).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "every run ended {:.1} s after the last cut",
        last_cut.elapsed().as_secs_f64()
    );

    for run in &runs {
        let done = detail(store, &f, *run).await;
        assert_eq!(
            (done.summary.status, done.attempt, done.summary.counters),
            (RunStatus::Completed, 1, all_done(ITEMS as i64)),
            "run {run}"
        );
        assert!(done.failures.is_empty(), "run {run}: {:?}", done.failures);
    }
    let (added, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT (i.backup_set_id, i.policy_id)) FROM backup_set_items i \
         JOIN bulk_operation_runs r ON r.id = i.added_by_run_id \
         WHERE i.tenant_id = $1 AND r.item_ids->>'backup_set_id' = i.backup_set_id::text",
    )
    .bind(f.tenant.id.0)
    .fetch_one(&mut observer)
    .await
    .unwrap();
    assert_eq!(
        (added, distinct),
        ((RUNS * ITEMS) as i64, (RUNS * ITEMS) as i64),
        "each item's artifact once, by its run"
    );
    let (notices, runs_noticed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT payload->>'run_id') FROM notifications \
         WHERE tenant_id = $1 AND kind = 'run_completed'",
    )
    .bind(f.tenant.id.0)
    .fetch_one(&mut observer)
    .await
    .unwrap();
    assert_eq!(
        (notices, runs_noticed),
        (RUNS as i64, RUNS as i64),
        "one completion notice per run"
    );

    // The server and the engine carry on without a restart.
    let more = queue_run(store, &f, "after-the-cuts", items.clone()).await;
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let ended = detail(store, &f, more).await.summary.status.is_terminal();
        let ready = send_to(&router, probe("/readyz")).await;
        if ended && ready.status.is_success() {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "not back: run ended {ended}, /readyz {} {}",
            ready.status,
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        detail(store, &f, more).await.summary.counters,
        all_done(ITEMS as i64)
    );
    assert_eq!((health.workers_alive(), health.workers_replaced()), (4, 0));
    stop_asking.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = asking.await.unwrap();
    println!("requests during the cuts: {answers:?}");
    assert!(answers.ok > 0);
    stop.send(true).unwrap();
    running.await.unwrap();
    observer.close().await.unwrap();
}
