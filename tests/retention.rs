//! Retention: a prune removes exactly what the rules say, on both
//! databases — ended runs by status, notifications read or unread,
//! acknowledged findings, audit entries, unused inventory syncs, expired
//! sessions — never an active run nor anything a kept record points to; a
//! dry run reports the same and deletes nothing; `0` keeps forever; the
//! engine prunes on its interval.

mod support;

use opshub::domain::*;
use opshub::server::engine::{self, EngineHealth, EngineSettings};
use opshub::server::retention::{PruneReport, RetentionPolicy};
use opshub::server::store::*;
use std::time::Duration;
use support::{fixture, Fixture, TestDb};

const DAY_MS: i64 = 86_400_000;

fn days_ago(now: Timestamp, days: i64) -> Timestamp {
    now.plus_millis(-days * DAY_MS)
}

/// A time as a SQL literal of this database.
fn at(db: &TestDb, t: Timestamp) -> String {
    if db.is_sqlite() {
        t.0.to_string()
    } else {
        format!("to_timestamp({}::double precision / 1000000)", t.0)
    }
}

fn new_id(db: &TestDb) -> &'static str {
    if db.is_sqlite() {
        "randomblob(16)"
    } else {
        "gen_random_uuid()"
    }
}

async fn sorted(db: &TestDb, sql: &str) -> Vec<String> {
    let mut texts: Vec<String> = db.texts(sql).await.into_iter().flatten().collect();
    texts.sort();
    texts
}

/// Inventory syncs of scope `old`, told apart by their item count.
async fn sync(
    store: &dyn Store,
    f: &Fixture,
    finished_at: Timestamp,
    items: usize,
) -> InventorySyncRunId {
    let items = (0..items)
        .map(|i| NewInventoryItem {
            subject_type: "device".into(),
            external_id: format!("dev-{i}"),
            display_name: format!("DEV-{i}"),
            payload: serde_json::json!({}),
        })
        .collect();
    store
        .record_inventory_sync(NewInventorySync {
            tenant_id: f.tenant.id,
            selection_hash: "old".into(),
            finished_at,
            items,
        })
        .await
        .unwrap()
        .id
}

fn record(
    f: &Fixture,
    key: &str,
    status: RunStatus,
    created_at: Timestamp,
    scope: (InventorySyncRunId, InventorySyncRunId),
) -> RunRecord {
    let finished_at = status
        .is_terminal()
        .then_some(created_at.plus_millis(60_000));
    RunRecord {
        id: RunId::generate(),
        tenant_id: f.tenant.id,
        user_id: f.user.id,
        operation: OperationKind::DriftGenerate,
        idempotency_key: Some(key.into()),
        status,
        counters: Counters::default(),
        item_ids: RunScope::Drift(DriftScope {
            scope_key: "old".into(),
            baseline_run_id: scope.0,
            current_run_id: scope.1,
            subjects: None,
        }),
        work_items: vec![],
        failures: vec![],
        attempt: i64::from(status != RunStatus::Pending),
        created_at,
        started_at: (status != RunStatus::Pending).then_some(created_at),
        finished_at,
    }
}

async fn finding(
    store: &dyn Store,
    f: &Fixture,
    tag: &str,
    syncs: (InventorySyncRunId, InventorySyncRunId),
) -> FindingId {
    store
        .upsert_finding(NewFinding {
            tenant_id: f.tenant.id,
            finding_type: FindingType::Drift,
            change_kind: ChangeKind::Changed,
            scope_key: "old".into(),
            baseline_run_id: syncs.0,
            current_run_id: syncs.1,
            produced_by_run_id: None,
            fingerprint: tag.into(),
            subject_type: "device".into(),
            subject_external_id: tag.into(),
            evidence: serde_json::json!({}),
        })
        .await
        .unwrap()
        .value
        .id
}

/// Records on both sides of every cutoff of the default policy; what a
/// prune must remove is named `*gone*`.
async fn build(db: &TestDb, now: Timestamp) -> Fixture {
    let store = db.store.as_ref();
    let f = fixture(store, "acme").await;
    // Six ended syncs of one scope, 200 to 195 days old; o5 and o6 are the
    // scope's newest two.
    let mut o = Vec::new();
    for n in 1..=6 {
        o.push(sync(store, &f, days_ago(now, 201 - n as i64), n).await);
    }
    let (o1, o2, o3, o4, o5, o6) = (o[0], o[1], o[2], o[3], o[4], o[5]);

    store
        .insert_run_records(&[
            record(
                &f,
                "succeeded-100-gone",
                RunStatus::Completed,
                days_ago(now, 100),
                (o4, o6),
            ),
            record(
                &f,
                "succeeded-10",
                RunStatus::Completed,
                days_ago(now, 10),
                (o5, o6),
            ),
            // Kept: a kept finding names it as the run that produced it.
            record(
                &f,
                "succeeded-100-kept-by-finding",
                RunStatus::Completed,
                days_ago(now, 100),
                (o5, o6),
            ),
            record(
                &f,
                "partial-100",
                RunStatus::CompletedWithErrors,
                days_ago(now, 100),
                (o5, o6),
            ),
            record(
                &f,
                "partial-200-gone",
                RunStatus::CompletedWithErrors,
                days_ago(now, 200),
                (o5, o6),
            ),
            // Keeps o1 (its baseline) and its audit entry.
            record(
                &f,
                "failed-100",
                RunStatus::Failed,
                days_ago(now, 100),
                (o1, o6),
            ),
            record(
                &f,
                "aborted-200-gone",
                RunStatus::Aborted,
                days_ago(now, 200),
                (o5, o6),
            ),
            record(
                &f,
                "pending-400",
                RunStatus::Pending,
                days_ago(now, 400),
                (o5, o6),
            ),
            record(
                &f,
                "running-400",
                RunStatus::Running,
                days_ago(now, 400),
                (o5, o6),
            ),
        ])
        .await
        .unwrap();

    // Watchers go with their run.
    db.execute(&format!(
        "INSERT INTO run_watchers (tenant_id, run_id, user_id, created_at) \
         SELECT r.tenant_id, r.id, r.user_id, {} FROM bulk_operation_runs r \
         WHERE r.idempotency_key IN ('succeeded-100-gone', 'succeeded-10')",
        at(db, now)
    ))
    .await;

    finding(store, &f, "new-400", (o3, o5)).await;
    let ack_old = finding(store, &f, "ack-200-gone", (o2, o6)).await;
    let ack_recent = finding(store, &f, "ack-10", (o5, o6)).await;
    store
        .acknowledge_findings(f.tenant.id, &[ack_old, ack_recent], f.user.id)
        .await
        .unwrap();
    for (tag, created, acknowledged) in [
        ("new-400", 400, None),
        ("ack-200-gone", 200, Some(200)),
        ("ack-10", 10, Some(10)),
    ] {
        let acknowledged = acknowledged.map_or("NULL".into(), |d| at(db, days_ago(now, d)));
        db.execute(&format!(
            "UPDATE findings SET created_at = {}, acknowledged_at = {acknowledged} WHERE fingerprint = '{tag}'",
            at(db, days_ago(now, created)),
        ))
        .await;
    }

    // Which runs produced them: the pruned finding's run goes in the same
    // pass (findings go first), the kept one's stays.
    for (tag, run) in [
        ("new-400", "succeeded-100-kept-by-finding"),
        ("ack-200-gone", "succeeded-100-gone"),
    ] {
        db.execute(&format!(
            "UPDATE findings SET produced_by_run_id = \
             (SELECT id FROM bulk_operation_runs WHERE idempotency_key = '{run}') WHERE fingerprint = '{tag}'"
        ))
        .await;
    }

    // The acknowledgements' own audit entries are new; these are not.
    for (action, days) in [
        ("audit-400-gone", 400),
        ("audit-400-kept-by-run", 400),
        ("audit-300", 300),
    ] {
        db.execute(&format!(
            "INSERT INTO audit_logs (id, tenant_id, user_id, action, resource, resource_id, metadata, created_at) \
             SELECT {}, id, NULL, '{action}', 'test', NULL, '{{}}', {} FROM tenants",
            new_id(db),
            at(db, days_ago(now, days))
        ))
        .await;
    }
    db.execute(
        "UPDATE bulk_operation_runs SET audit_log_id = \
         (SELECT id FROM audit_logs WHERE action = 'audit-400-kept-by-run') WHERE idempotency_key = 'failed-100'",
    )
    .await;

    // Insights rollups outlive runs: only those of hours over 400 days ago go.
    for days in [401, 399] {
        let hour = at(db, days_ago(now, days));
        db.execute(&format!(
            "INSERT INTO run_rollups (tenant_id, hour, resource, action, outcome, runs, items_processed, \
             items_succeeded, items_failed, items_skipped, started_runs, queue_millis, run_millis) \
             SELECT id, {hour}, 'drift', 'generate', 'completed', 1, 0, 0, 0, 0, 1, 5, 10 FROM tenants"
        ))
        .await;
        db.execute(&format!(
            "INSERT INTO run_duration_rollups (tenant_id, hour, resource, action, phase, bucket, runs) \
             SELECT id, {hour}, 'drift', 'generate', 'run', 14, 1 FROM tenants"
        ))
        .await;
        db.execute(&format!(
            "INSERT INTO run_reason_rollups (tenant_id, hour, resource, action, reason_code, failures) \
             SELECT id, {hour}, 'drift', 'generate', 'timeout', 2 FROM tenants"
        ))
        .await;
    }

    for (tag, read, created) in [
        ("read-40-gone", Some(40), 50),
        ("read-10", Some(10), 100),
        ("unread-100-gone", None, 100),
        ("unread-40", None, 40),
    ] {
        let read = read.map_or("NULL".into(), |d| at(db, days_ago(now, d)));
        db.execute(&format!(
            "INSERT INTO notifications (id, tenant_id, user_id, kind, payload, read_at, created_at) \
             SELECT {}, t.id, u.id, 'run_completed', '{{\"tag\": \"{tag}\"}}', {read}, {} FROM tenants t, users u",
            new_id(db),
            at(db, days_ago(now, created))
        ))
        .await;
    }

    let (expired, valid) = if db.is_sqlite() {
        ("datetime('now', '-1 hour')", "datetime('now', '+1 hour')")
    } else {
        ("now() - interval '1 hour'", "now() + interval '1 hour'")
    };
    let (table, data) = if db.is_sqlite() {
        ("tower_sessions", "x'00'")
    } else {
        ("tower_sessions.session", "'\\x00'::bytea")
    };
    db.execute(&format!(
        "INSERT INTO {table} (id, data, expiry_date) VALUES ('expired-gone', {data}, {expired}), ('valid', {data}, {valid})"
    ))
    .await;
    f
}

const EXPECTED: PruneReport = PruneReport {
    runs: 3,
    notifications: 2,
    findings: 1,
    audit_entries: 1,
    // o2 (only the pruned finding named it) and o4 (only the pruned run).
    inventory_syncs: 2,
    rollups: 3,
    sessions: 1,
};

async fn what_is_left(db: &TestDb) -> Vec<Vec<String>> {
    let tag = if db.is_sqlite() {
        "json_extract(payload, '$.tag')"
    } else {
        "payload->>'tag'"
    };
    let sessions = if db.is_sqlite() {
        "tower_sessions"
    } else {
        "tower_sessions.session"
    };
    vec![
        sorted(db, "SELECT idempotency_key FROM bulk_operation_runs").await,
        sorted(db, &format!("SELECT {tag} FROM notifications")).await,
        sorted(db, "SELECT fingerprint FROM findings").await,
        sorted(db, "SELECT action FROM audit_logs WHERE resource = 'test'").await,
        sorted(
            db,
            "SELECT CAST(item_count AS TEXT) FROM inventory_sync_runs",
        )
        .await,
        sorted(
            db,
            "SELECT COALESCE(r.idempotency_key, 'no run') FROM run_watchers w \
             LEFT JOIN bulk_operation_runs r ON r.id = w.run_id",
        )
        .await,
        sorted(db, &format!("SELECT id FROM {sessions}")).await,
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

on_both! { db =>
    /// Every kind on both sides of its cutoff: a dry run reports what goes
    /// and deletes nothing, the prune removes exactly that, a second prune
    /// nothing.
    async fn a_prune_removes_exactly_what_the_rules_say(db) {
        let now = Timestamp::now();
        let f = build(db, now).await;
        let before = what_is_left(db).await;
        let policy = RetentionPolicy::default();
        // The hub's counts, remembered for runs that ended long ago.
        let counted = db.store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap();
        assert_eq!(counted.total(), 9);

        let dry = db.store.prune(&policy, now, true).await.unwrap().unwrap();
        assert_eq!(dry, EXPECTED);
        assert_eq!(what_is_left(db).await, before, "a dry run deletes nothing");

        let pruned = db.store.prune(&policy, now, false).await.unwrap().unwrap();
        assert_eq!(pruned, EXPECTED);
        let counted = db.store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap();
        assert_eq!(counted.total(), 6, "the hub counts no pruned run");
        assert_eq!(
            what_is_left(db).await,
            vec![
                strings(&[
                    "failed-100",
                    "partial-100",
                    "pending-400",
                    "running-400",
                    "succeeded-10",
                    "succeeded-100-kept-by-finding",
                ]),
                strings(&["read-10", "unread-40"]),
                strings(&["ack-10", "new-400"]),
                strings(&["audit-300", "audit-400-kept-by-run"]),
                // o1 (a kept run's baseline), o3 (a kept finding's), o5, o6 (the newest two).
                strings(&["1", "3", "5", "6"]),
                strings(&["succeeded-10"]),
                strings(&["valid"]),
            ]
        );
        // The kept run still points at its audit entry.
        let linked = db
            .texts("SELECT a.action FROM bulk_operation_runs r JOIN audit_logs a ON a.id = r.audit_log_id")
            .await;
        assert_eq!(linked, vec![Some("audit-400-kept-by-run".to_string())]);
        // The kept finding still names the run that produced it.
        let produced = db
            .texts(
                "SELECT r.idempotency_key FROM findings f \
                 JOIN bulk_operation_runs r ON r.id = f.produced_by_run_id",
            )
            .await;
        assert_eq!(produced, vec![Some("succeeded-100-kept-by-finding".to_string())]);
        // A pruned sync's items went with it.
        let items = db.texts("SELECT CAST(COUNT(*) AS TEXT) FROM inventory_items").await;
        assert_eq!(items, vec![Some((1 + 3 + 5 + 6).to_string())]);

        let again = db.store.prune(&policy, now, false).await.unwrap().unwrap();
        assert_eq!(again, PruneReport::default(), "pruning twice removes nothing the second time");
    }

    /// `0` keeps a kind forever; expired sessions still go.
    async fn a_prune_walks_past_kept_rows_over_many_batches(db) {
        let store = db.store.as_ref();
        let now = Timestamp::now();
        let f = fixture(store, "acme").await;
        // 70 old syncs (several batches of them), every third named by a
        // new finding; the two newest stay as the next drift's inputs.
        let mut syncs = Vec::new();
        for n in 0..70 {
            syncs.push(sync(store, &f, days_ago(now, 200 - n), n as usize).await);
        }
        let mut kept: Vec<usize> = vec![68, 69];
        for n in (0..68).step_by(3) {
            finding(store, &f, &format!("new-{n}"), (syncs[n], syncs[n])).await;
            kept.push(n);
        }
        let report = db.store.prune(&RetentionPolicy::default(), now, false).await.unwrap().unwrap();
        assert_eq!(report.inventory_syncs, 70 - kept.len() as u64);
        kept.sort();
        let mut left: Vec<usize> = sorted(db, "SELECT CAST(item_count AS TEXT) FROM inventory_sync_runs")
            .await
            .iter()
            .map(|count| count.parse().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, kept);
    }

    /// A kind of many rows goes in several batches, each resuming where
    /// the one before stopped, even when its rows share one instant:
    /// 450 runs (200 a batch) and 2,500 read notifications (1,000 a
    /// batch) that ended at the same microsecond all go; the recent ones
    /// stay.
    async fn a_prune_takes_rows_tied_in_time_over_many_batches(db) {
        let store = db.store.as_ref();
        let now = Timestamp::now();
        let f = fixture(store, "acme").await;
        let scope = (sync(store, &f, days_ago(now, 2), 1).await, sync(store, &f, days_ago(now, 1), 1).await);
        let mut runs: Vec<RunRecord> = (0..450)
            .map(|n| record(&f, &format!("old-{n}"), RunStatus::Completed, days_ago(now, 100), scope))
            .collect();
        runs.push(record(&f, "recent", RunStatus::Completed, days_ago(now, 10), scope));
        store.insert_run_records(&runs).await.unwrap();
        for (count, read_days_ago) in [(2_500, 40), (1, 10)] {
            db.execute(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
                 INSERT INTO notifications (id, tenant_id, user_id, kind, payload, read_at, created_at) \
                 SELECT {}, t.id, u.id, 'run_completed', '{{}}', {read}, {read} FROM n, tenants t, users u",
                new_id(db),
                read = at(db, days_ago(now, read_days_ago)),
            ))
            .await;
        }

        let report = db.store.prune(&RetentionPolicy::default(), now, false).await.unwrap().unwrap();
        assert_eq!((report.runs, report.notifications), (450, 2_500));
        assert_eq!(sorted(db, "SELECT idempotency_key FROM bulk_operation_runs").await, strings(&["recent"]));
        assert_eq!(db.texts("SELECT CAST(COUNT(*) AS TEXT) FROM notifications").await, vec![Some("1".to_string())]);
    }

    /// Runs of every status go in one walk over many batches, each
    /// status by its own cutoff: of 600 runs in four statuses, ended in
    /// turn 100–102 and 200–202 days ago (ties across batches), the ones
    /// of 200 days and the succeeded ones of 100 go (375); the others of
    /// 100 days, within their 180, stay.
    async fn a_prune_walks_runs_of_every_status_together(db) {
        let store = db.store.as_ref();
        let now = Timestamp::now();
        let f = fixture(store, "acme").await;
        let scope = (sync(store, &f, days_ago(now, 2), 1).await, sync(store, &f, days_ago(now, 1), 1).await);
        let statuses =
            [RunStatus::Completed, RunStatus::CompletedWithErrors, RunStatus::Failed, RunStatus::Aborted];
        let mut stays = Vec::new();
        let runs: Vec<RunRecord> = (0..600)
            .map(|n| {
                let status = statuses[n % 4];
                let age = if (n / 4) % 2 == 0 { 100 } else { 200 } + (n % 3) as i64;
                let key = format!("{}-{age}-{n}", status.as_str());
                if age < 180 && status != RunStatus::Completed {
                    stays.push(key.clone());
                }
                record(&f, &key, status, days_ago(now, age), scope)
            })
            .collect();
        store.insert_run_records(&runs).await.unwrap();

        let report = db.store.prune(&RetentionPolicy::default(), now, false).await.unwrap().unwrap();
        assert_eq!(report.runs, 375);
        stays.sort();
        assert_eq!(stays.len(), 225);
        assert_eq!(sorted(db, "SELECT idempotency_key FROM bulk_operation_runs").await, stays);
    }

    async fn zero_keeps_forever(db) {
        let now = Timestamp::now();
        build(db, now).await;
        let before = what_is_left(db).await;
        let pruned = db.store.prune(&RetentionPolicy::keep_forever(), now, false).await.unwrap().unwrap();
        assert_eq!(pruned, PruneReport { sessions: 1, ..Default::default() });
        let mut after = what_is_left(db).await;
        assert_eq!(after.pop(), Some(strings(&["valid"])));
        assert_eq!(after[..], before[..6]);

        // One kind at a time: only succeeded runs have a retention, and the
        // old one stays while the finding it produced, kept forever, names it.
        let only_succeeded = RetentionPolicy { succeeded_runs_days: 90, ..RetentionPolicy::keep_forever() };
        let pruned = db.store.prune(&only_succeeded, now, false).await.unwrap().unwrap();
        assert_eq!(pruned, PruneReport::default());
        let with_findings = RetentionPolicy { acknowledged_findings_days: 180, ..only_succeeded };
        let pruned = db.store.prune(&with_findings, now, false).await.unwrap().unwrap();
        assert_eq!(pruned, PruneReport { runs: 1, findings: 1, ..Default::default() });
    }

    /// The engine prunes on its interval.
    async fn the_engine_prunes_on_its_interval(db) {
        let now = Timestamp::now();
        build(db, now).await;
        let settings = EngineSettings {
            workers: 0,
            prune_interval: Duration::from_millis(100),
            ..support::engine::settings()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let health = EngineHealth::new(&settings);
        let pool = tokio::spawn(engine::run(db.store.clone(), settings, health, stopped));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !sorted(db, "SELECT idempotency_key FROM bulk_operation_runs WHERE idempotency_key LIKE '%gone'").await.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the engine never pruned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(true).unwrap();
        pool.await.unwrap();
    }
}

/// On PostgreSQL one instance prunes at a time: while another holds the
/// prune lock, a pass skips (None) and deletes nothing; once it is let go,
/// the next pass prunes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prunes_on_one_instance_at_a_time() {
    use sqlx::{Connection, Executor};
    let db = TestDb::new(Backend::Postgres).await;
    let now = Timestamp::now();
    build(&db, now).await;
    let before = what_is_left(&db).await;
    // Another instance: a connection of its own holding the lock.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (held,): (bool,) =
        sqlx::query_as(&format!("SELECT pg_try_advisory_lock({PRUNE_LOCK_KEY})"))
            .fetch_one(&mut other)
            .await
            .unwrap();
    assert!(held);
    let policy = RetentionPolicy::default();
    assert_eq!(db.store.prune(&policy, now, false).await.unwrap(), None);
    assert_eq!(
        what_is_left(&db).await,
        before,
        "the skipped pass deleted nothing"
    );

    other
        .execute(format!("SELECT pg_advisory_unlock({PRUNE_LOCK_KEY})").as_str())
        .await
        .unwrap();
    assert_eq!(
        db.store.prune(&policy, now, false).await.unwrap(),
        Some(EXPECTED)
    );
}

/// SQLite finds a deleted run's cascading rows by the run, in every table
/// (its planner, without statistics, once read all of the tenant's failure
/// reasons and watchers for every run a prune deleted).
#[tokio::test]
async fn sqlite_finds_a_deleted_runs_rows_by_the_run() {
    use sqlx::{Connection, Row};
    let db = TestDb::new(Backend::Sqlite).await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> =
        sqlx::query("EXPLAIN QUERY PLAN DELETE FROM bulk_operation_runs WHERE id = x'00'")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("detail"))
            .collect();
    for child in [
        "run_failure_reasons",
        "run_watchers",
        "run_failed_items",
        "run_attempts",
        "run_joins",
    ] {
        let lookup = plan
            .iter()
            .find(|step| step.starts_with(&format!("SEARCH {child} ")))
            .unwrap_or_else(|| panic!("no look-up of {child} in {plan:#?}"));
        assert!(lookup.contains("(run_id=?"), "{child} by the run: {lookup}");
    }
}
