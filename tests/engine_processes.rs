//! The engine as separate `opshub worker` processes: killed with SIGKILL
//! mid-run (the run is rescued), stopped with SIGTERM (exit 0, no claims
//! after the signal), and two processes sharing one PostgreSQL queue; and
//! `opshub serve` on SQLite killed with SIGKILL and started again.

mod support;

use opshub::domain::*;
use opshub::server::operations::{self, StartRequest};
use opshub::server::store::*;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture, Fixture, TestDb};

const LEASE_SECS: u64 = 2;
const RESCUE_SECS: u64 = 1;
const SUBJECTS: usize = 3_000;

fn spawn_worker(db: &TestDb, workers: usize) -> Child {
    opshub(db, "worker", workers)
        .spawn()
        .expect("start opshub worker")
}

/// `opshub serve` with its workers, on `port`.
fn spawn_server(db: &TestDb, workers: usize, port: u16) -> Child {
    opshub(db, "serve", workers)
        .env("OPSHUB_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPSHUB_SEED_DEMO_WHEN_EMPTY", "false")
        .spawn()
        .expect("start opshub serve")
}

/// An opshub command on the test's database, with a short lease and rescue
/// interval.
fn opshub(db: &TestDb, command: &str, workers: usize) -> Command {
    let mut opshub = Command::new(env!("CARGO_BIN_EXE_opshub"));
    opshub
        .arg(command)
        .env("OPSHUB_DATABASE_URL", &db.url)
        .env("OPSHUB_WORKERS", workers.to_string())
        .env("OPSHUB_WORKER_LEASE_SECS", LEASE_SECS.to_string())
        .env(
            "OPSHUB_WORKER_RESCUE_INTERVAL_SECS",
            RESCUE_SECS.to_string(),
        )
        .env("OPSHUB_WORKER_POLL_INTERVAL_MS", "200")
        .env("OPSHUB_LOG", "warn")
        .stdout(Stdio::null());
    opshub
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The status of `GET path` on the local server, or None while nothing
/// answers.
async fn http_status(port: u16, path: &'static str) -> Option<u16> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).ok()?;
        String::from_utf8_lossy(&reply)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    })
    .await
    .unwrap()
}

/// What `PRAGMA integrity_check` says of the SQLite file.
async fn integrity(db: &TestDb) -> Vec<String> {
    use sqlx::Connection;
    let mut file = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let verdict = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut file)
        .await
        .unwrap();
    file.close().await.unwrap();
    verdict
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits for the process to exit, at most `within`.
async fn exit_status(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the worker process did not exit within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn detail(store: &dyn Store, f: &Fixture, id: RunId) -> RunDetail {
    store.run(f.tenant.id, id).await.unwrap().unwrap()
}

/// Polls the run until `done` says so, at most `within`.
async fn wait_for(
    store: &dyn Store,
    f: &Fixture,
    id: RunId,
    within: Duration,
    what: &str,
    done: impl Fn(&RunDetail) -> bool,
) -> RunDetail {
    let deadline = Instant::now() + within;
    loop {
        let run = detail(store, f, id).await;
        if done(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; run is {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A scope whose drift has `SUBJECTS` items: every subject changed.
async fn big_scope(store: &dyn Store, f: &Fixture, scope: &str) {
    for version in 0..2 {
        let items = (0..SUBJECTS)
            .map(|n| NewInventoryItem {
                subject_type: "device".into(),
                external_id: format!("device-{n:06}"),
                display_name: format!("Device {n}"),
                payload: serde_json::json!({ "version": format!("{scope}-{version}") }),
            })
            .collect();
        store
            .record_inventory_sync(NewInventorySync {
                tenant_id: f.tenant.id,
                selection_hash: scope.into(),
                finished_at: Timestamp::now().plus_millis(version - 10),
                items,
            })
            .await
            .unwrap();
    }
}

async fn start_drift(store: &dyn Store, f: &Fixture, scope: &str) -> RunId {
    let request = StartRequest::Drift {
        scope_key: scope.into(),
    };
    operations::start(store, &f.tenant, &f.user, &request)
        .await
        .unwrap()
        .run
        .summary
        .id
}

async fn findings_of(store: &dyn Store, f: &Fixture, run: RunId) -> usize {
    let filter = FindingFilter {
        produced_by: Some(run),
        ..FindingFilter::default()
    };
    let mut count = 0;
    let mut page = PageRequest::first(100);
    loop {
        let found = store
            .list_findings(f.tenant.id, &filter, page)
            .await
            .unwrap();
        count += found.items.len();
        match found.older {
            Some(cursor) => page = PageRequest::older_than(cursor, 100),
            None => return count,
        }
    }
}

on_both! { db =>
    async fn a_worker_killed_mid_run_is_rescued_by_another(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        big_scope(store, &f, "fleet").await;
        let run = start_drift(store, &f, "fleet").await;
        let mut doomed = spawn_worker(db, 1);
        let running = wait_for(store, &f, run, Duration::from_secs(60), "first batch recorded", |r| {
            r.summary.counters.processed > 0 || r.summary.status.is_terminal()
        })
        .await;
        assert_eq!(running.summary.status, RunStatus::Running, "the run finished before the kill");
        doomed.kill().unwrap(); // SIGKILL
        doomed.wait().unwrap();
        let killed_at = Instant::now();
        let at_kill = detail(store, &f, run).await;
        assert!(at_kill.summary.counters.processed < SUBJECTS as i64);

        let mut rescuer = spawn_worker(db, 1);
        let budget = Duration::from_secs(LEASE_SECS + RESCUE_SECS + 5);
        let done = wait_for(store, &f, run, Duration::from_secs(120), "rescued run finished", |r| {
            r.summary.status.is_terminal()
        })
        .await;
        let took = killed_at.elapsed();
        println!("rescued and finished {:.1} s after the kill (budget {budget:?})", took.as_secs_f64());
        assert!(took <= budget, "took {took:?}, over the {budget:?} budget");
        assert_eq!(done.summary.status, RunStatus::Completed);
        assert_eq!(done.attempt, 2, "exactly one extra attempt");
        let all = SUBJECTS as i64;
        assert_eq!(done.summary.counters, Counters { total: all, processed: all, succeeded: all, failed: 0, skipped: 0 });
        assert_eq!(findings_of(store, &f, run).await, SUBJECTS, "each subject's finding exactly once");

        signal(&rescuer, "TERM");
        assert!(exit_status(&mut rescuer, Duration::from_secs(30)).await.success());
    }

    async fn sigterm_lets_the_run_in_flight_finish_claims_nothing_more_and_exits_zero(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        big_scope(store, &f, "fleet").await;
        big_scope(store, &f, "other").await;
        let run = start_drift(store, &f, "fleet").await;
        let mut worker = spawn_worker(db, 1);
        wait_for(store, &f, run, Duration::from_secs(60), "run claimed", |r| r.summary.status != RunStatus::Pending).await;
        signal(&worker, "TERM");
        // Queued after the signal: must never be claimed.
        let after = start_drift(store, &f, "other").await;
        let status = exit_status(&mut worker, Duration::from_secs(60)).await;
        assert!(status.success(), "exit status {status:?}");
        let finished = detail(store, &f, run).await;
        assert_eq!(finished.summary.status, RunStatus::Completed, "the run in flight finished in the grace period");
        let untouched = detail(store, &f, after).await;
        assert_eq!((untouched.summary.status, untouched.attempt), (RunStatus::Pending, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_postgres_execute_each_run_once() {
    const RUNS: usize = 2_000;
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store.as_ref();
    let f = fixture(store, "acme").await;
    let set = store
        .create_backup_set(f.tenant.id, "Nightly")
        .await
        .unwrap();
    let mut runs = Vec::new();
    for i in 0..RUNS {
        let mut ids = Vec::new();
        for j in 0..2 {
            let policy = store
                .create_policy(NewPolicy {
                    tenant_id: f.tenant.id,
                    external_id: format!("p-{i}-{j}"),
                    name: format!("Policy {i}.{j}"),
                    policy_type: "compliance".into(),
                    payload: serde_json::json!({}),
                })
                .await
                .unwrap();
            ids.push(policy.id);
        }
        let request = StartRequest::AddPolicies {
            backup_set_id: set.id,
            policy_ids: ids,
            options: Default::default(),
        };
        runs.push(
            operations::start(store, &f.tenant, &f.user, &request)
                .await
                .unwrap()
                .run
                .summary
                .id,
        );
    }
    let mut processes = [spawn_worker(&db, 2), spawn_worker(&db, 2)];
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = store
            .count_runs_by_bucket(f.tenant.id, &RunFilter::default())
            .await
            .unwrap();
        if counts.queued + counts.running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "runs left: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut owners = HashSet::new();
    for run in &runs {
        let done = detail(store, &f, *run).await;
        assert_eq!(done.summary.status, RunStatus::Completed);
        assert_eq!(done.attempt, 1, "run {run} was claimed twice");
        assert_eq!(
            done.summary.counters,
            Counters {
                total: 2,
                processed: 2,
                succeeded: 2,
                failed: 0,
                skipped: 0
            }
        );
        let owner = done.lease_owner.unwrap();
        owners.insert(owner.split('/').next().unwrap().to_string());
    }
    assert_eq!(
        store
            .backup_set_items(f.tenant.id, set.id)
            .await
            .unwrap()
            .len(),
        RUNS * 2
    );
    assert_eq!(owners.len(), 2, "both processes executed runs: {owners:?}");
    for process in &mut processes {
        signal(process, "TERM");
        assert!(exit_status(process, Duration::from_secs(30))
            .await
            .success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_on_sqlite_resumes_when_started_again() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store.as_ref();
    let f = fixture(store, "acme").await;
    let mut runs = Vec::new();
    for scope in ["fleet", "other"] {
        big_scope(store, &f, scope).await;
        runs.push(start_drift(store, &f, scope).await);
    }
    let port = free_port();
    let mut server = spawn_server(&db, 2, port);
    for run in &runs {
        wait_for(
            store,
            &f,
            *run,
            Duration::from_secs(60),
            "first batch recorded",
            |r| r.summary.counters.processed > 0 || r.summary.status.is_terminal(),
        )
        .await;
    }
    server.kill().unwrap(); // SIGKILL, mid-write as likely as not
    server.wait().unwrap();
    let mut interrupted = 0;
    for run in &runs {
        let at_kill = detail(store, &f, *run).await;
        interrupted += usize::from(at_kill.summary.status == RunStatus::Running);
    }
    assert!(interrupted > 0, "both runs finished before the kill");
    assert_eq!(integrity(&db).await, ["ok"], "the file after the kill");

    let mut server = spawn_server(&db, 2, port);
    for run in &runs {
        let done = wait_for(
            store,
            &f,
            *run,
            Duration::from_secs(120),
            "run finished after the restart",
            |r| r.summary.status.is_terminal(),
        )
        .await;
        assert_eq!(done.summary.status, RunStatus::Completed);
        assert!(
            done.attempt <= 2,
            "one more attempt at most: {}",
            done.attempt
        );
        let all = SUBJECTS as i64;
        assert_eq!(
            done.summary.counters,
            Counters {
                total: all,
                processed: all,
                succeeded: all,
                failed: 0,
                skipped: 0
            }
        );
        assert_eq!(
            findings_of(store, &f, *run).await,
            SUBJECTS,
            "each subject's finding exactly once"
        );
    }
    // The restarted server is ready, and says so to anyone (no sign-in).
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(port, "/readyz").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "/readyz: {:?}",
            http_status(port, "/readyz").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_status(port, "/healthz").await, Some(200));
    signal(&server, "TERM");
    assert!(exit_status(&mut server, Duration::from_secs(60))
        .await
        .success());
    assert_eq!(integrity(&db).await, ["ok"], "the file after the restart");
}
