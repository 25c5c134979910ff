//! Stalled runs (issue 15 §2), on both databases: a running run whose
//! progress stands still past its operation's threshold while its lease is
//! held is flagged once (badge data, a notice to whoever asked, an audit
//! entry, a metric), progress clears it, a lost lease is rescue's, and the
//! threshold follows the operation's history. The last test runs the whole
//! engine with its pause hook.

mod support;

use opshub::domain::*;
use opshub::server::engine::{self, check_stalls, EngineHealth, EngineSettings, StallReport};
use opshub::server::metrics;
use opshub::server::operations::{self, StartRequest};
use opshub::server::store::*;
use std::time::Duration;
use support::{colleague, fixture, new_run, two_syncs, Fixture};

const MINUTE: i64 = 60_000_000;

/// A minute's floor, an hour's ceiling.
fn policy() -> StallPolicy {
    StallPolicy::new(60_000, 3_600_000)
}

fn later(minutes: i64) -> Timestamp {
    Timestamp(Timestamp::now().0 + minutes * MINUTE)
}

/// A queued drift run claimed by a worker that holds it for `lease`.
async fn claimed_run(store: &dyn Store, f: &Fixture, key: &str, lease: Duration) -> ClaimedRun {
    let id = store
        .start_run(new_run(f, key))
        .await
        .unwrap()
        .run
        .summary
        .id;
    let claimed = store
        .claim_runs("stuck-worker", lease, ClaimLimit { runs: 1, items: 1 })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.run_id, id);
    claimed.into_iter().next().unwrap()
}

async fn stalled_notices(store: &dyn Store, f: &Fixture, user: UserId) -> Vec<Notification> {
    let filter = NotificationFilter {
        kind: Some(NotificationKind::RunStalled),
        unread_only: false,
    };
    store
        .list_notifications(f.tenant.id, user, &filter, PageRequest::first(50))
        .await
        .unwrap()
        .items
}

async fn trail_actions(store: &dyn Store, f: &Fixture, run: RunId) -> Vec<String> {
    store
        .run_audit_trail(f.tenant.id, run)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.entry.action)
        .collect()
}

/// The value of `opshub_runs_stalled_total` for `operation` (0 when absent).
async fn stalled_metric(store: &dyn Store, operation: OperationKind) -> f64 {
    let text = metrics::exposition(store).await.unwrap();
    let series = format!(
        "opshub_runs_stalled_total{{operation=\"{}\"}} ",
        operation.code()
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

async fn summary(store: &dyn Store, f: &Fixture, run: RunId) -> RunSummary {
    store.run(f.tenant.id, run).await.unwrap().unwrap().summary
}

/// One item's progress under `lease`, the run's first batch.
fn one_item(lease: &Lease, recorded_before: i64, end: BatchEnd) -> RunProgress {
    RunProgress {
        lease: lease.clone(),
        recorded_before,
        items: vec![ItemResult {
            item_id: ["a", "b", "c"][recorded_before as usize].into(),
            outcome: ItemOutcome::Succeeded(None),
        }],
        end,
    }
}

on_both! { store =>
    async fn a_run_standing_still_is_flagged_once_and_progress_clears_it(store) {
        let f = fixture(store, "acme").await;
        let (bea, wes) = (colleague(store, &f, "Bea").await, colleague(store, &f, "Wes").await);
        let run = claimed_run(store, &f, "stuck", Duration::from_secs(3_600)).await;
        let id = run.lease.run_id;
        // Bea asks for it too (her start joins it); Wes watches it.
        let mut again = new_run(&f, "stuck");
        again.user_id = bea.id;
        assert!(store.start_run(again).await.unwrap().joined);
        store.watch_run(f.tenant.id, id, wes.id).await.unwrap();
        let before = stalled_metric(store, OperationKind::DriftGenerate).await;

        // Within the floor: nothing to weigh.
        assert_eq!(check_stalls(store, policy(), Timestamp::now()).await.unwrap(), StallReport::default());
        assert_eq!(summary(store, &f, id).await.stalled_since(), None);

        // Past it, without history: flagged, once, however often it is checked.
        let at = later(2);
        assert_eq!(
            check_stalls(store, policy(), at).await.unwrap(),
            StallReport { weighed: 1, flagged: 1 }
        );
        assert_eq!(
            check_stalls(store, policy(), later(3)).await.unwrap(),
            StallReport::default(),
            "a flagged run is not weighed again"
        );
        let flagged = summary(store, &f, id).await;
        assert_eq!(flagged.status, RunStatus::Running);
        assert_eq!(flagged.stalled_since(), Some(at));
        for user in [f.user.id, bea.id, wes.id] {
            let notices = stalled_notices(store, &f, user).await;
            assert_eq!(notices.len(), 1, "one stalled notice each");
            let notice = &notices[0].notice;
            assert_eq!((notice.run_id, notice.bucket), (id, StatusBucket::Running));
            assert!(notice.error_summary.as_deref().unwrap().starts_with("no progress for "));
            assert_eq!(notice.link, run_path("acme", id));
        }
        assert_eq!(trail_actions(store, &f, id).await.last().unwrap(), audit_names::RUN_STALL);
        assert_eq!(stalled_metric(store, OperationKind::DriftGenerate).await, before + 1.0);

        // Progress moves: the flag goes, and the trail says so.
        let outcomes = store
            .record_progress(Duration::from_secs(3_600), &[one_item(&run.lease, 0, BatchEnd::Continues)])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![ProgressOutcome::Recorded(RunStatus::Running)]);
        assert_eq!(summary(store, &f, id).await.stalled_at, None);
        assert_eq!(trail_actions(store, &f, id).await.last().unwrap(), audit_names::RUN_STALL_CLEAR);
        // It moved just now: nothing to weigh until it stands still again,
        // and then it is a new stall, told again.
        assert_eq!(check_stalls(store, policy(), Timestamp::now()).await.unwrap().weighed, 0);
        assert_eq!(check_stalls(store, policy(), later(2)).await.unwrap().flagged, 1);
        assert_eq!(stalled_notices(store, &f, f.user.id).await.len(), 2);

        // A run that ends stalled keeps the moment, but is no longer stalled.
        store
            .record_progress(Duration::from_secs(3_600), &[one_item(&run.lease, 1, BatchEnd::Continues)])
            .await
            .unwrap();
        check_stalls(store, policy(), later(2)).await.unwrap();
        store.request_abort(f.tenant.id, id, abort_entry(&f, id)).await.unwrap();
        assert!(store.finish_aborted(&run.lease).await.unwrap());
        let ended = summary(store, &f, id).await;
        assert_eq!(ended.status, RunStatus::Aborted);
        assert!(ended.stalled_at.is_some());
        assert_eq!(ended.stalled_since(), None);
    }

    async fn a_lost_lease_and_a_queued_run_are_not_stalls(store) {
        let f = fixture(store, "acme").await;
        // Its worker stopped renewing: rescue's business, not a stall.
        let lost = claimed_run(store, &f, "lost", Duration::from_secs(1)).await;
        // Never claimed: waiting, not stalled.
        store.start_run(new_run(&f, "queued")).await.unwrap();
        assert_eq!(check_stalls(store, policy(), later(30)).await.unwrap(), StallReport::default());
        assert_eq!(summary(store, &f, lost.lease.run_id).await.stalled_at, None);
        assert!(stalled_notices(store, &f, f.user.id).await.is_empty());
    }

    async fn the_threshold_is_twice_the_operations_p95_this_week(store) {
        let f = fixture(store, "acme").await;
        let other = fixture(store, "globex").await;
        // This week acme's drift runs took 10 minutes each.
        let now = Timestamp::now();
        let ten_minute_runs: Vec<RunRecord> = (0..20)
            .map(|n| {
                let started = Timestamp(now.0 - (n + 1) * 60 * MINUTE);
                RunRecord {
                    id: RunId::generate(),
                    tenant_id: f.tenant.id,
                    user_id: f.user.id,
                    operation: OperationKind::DriftGenerate,
                    idempotency_key: Some(format!("done-{n}")),
                    status: RunStatus::Completed,
                    counters: Counters { total: 1, processed: 1, succeeded: 1, failed: 0, skipped: 0 },
                    item_ids: support::devices_scope(),
                    work_items: vec!["a".into()],
                    failures: vec![],
                    attempt: 1,
                    created_at: started,
                    started_at: Some(started),
                    finished_at: Some(Timestamp(started.0 + 10 * MINUTE)),
                }
            })
            .collect();
        store.insert_run_records(&ten_minute_runs).await.unwrap();
        let acme = claimed_run(store, &f, "slow", Duration::from_secs(7_200)).await;
        let globex = claimed_run(store, &other, "quick", Duration::from_secs(7_200)).await;

        // Five minutes still: normal for acme's drift, a stall for globex,
        // which has no history (the floor).
        let report = check_stalls(store, policy(), later(5)).await.unwrap();
        assert_eq!(report, StallReport { weighed: 2, flagged: 1 });
        assert_eq!(summary(store, &f, acme.lease.run_id).await.stalled_at, None);
        assert!(summary(store, &other, globex.lease.run_id).await.stalled_at.is_some());
        // Twenty-five minutes: past twice acme's p95 (10 min, read from its
        // histogram bucket at most 19% over).
        let report = check_stalls(store, policy(), later(25)).await.unwrap();
        assert_eq!(report, StallReport { weighed: 1, flagged: 1 });
        assert!(summary(store, &f, acme.lease.run_id).await.stalled_at.is_some());
    }
}

fn abort_entry(f: &Fixture, run: RunId) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: f.tenant.id,
        user_id: Some(f.user.id),
        action: audit_names::RUN_ABORT.into(),
        resource: audit_names::RUN.into(),
        resource_id: Some(run.to_string()),
        metadata: serde_json::json!({}),
    }
}

/// Waits (up to 20 s) until `done` holds of the run; its last state.
async fn wait_for(
    store: &dyn Store,
    f: &Fixture,
    run: RunId,
    done: impl Fn(&RunSummary) -> bool,
) -> RunSummary {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = summary(store, f, run).await;
        if done(&now) || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both! { db =>
    async fn the_engine_flags_a_paused_run_and_clears_it_when_it_resumes(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        two_syncs(store, &f).await;
        // The pause hook's file, present before the run starts: its worker
        // claims it and holds it before the first batch.
        let dir = tempfile::tempdir().unwrap();
        let pause = dir.path().join("pause");
        std::fs::write(&pause, b"").unwrap();
        let settings = EngineSettings {
            workers: 1,
            stalls: StallPolicy::new(1_000, 1_000),
            pause_file: Some(Box::leak(pause.clone().into_boxed_path())),
            ..support::engine::settings()
        };
        let health = EngineHealth::new(&settings);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let pool = tokio::spawn(engine::run(db.store.clone(), settings, health, stopped));

        let drift = StartRequest::Drift { scope_key: "devices".into() };
        let id = operations::start(store, &f.tenant, &f.user, &drift).await.unwrap().run.summary.id;
        let held = wait_for(store, &f, id, |run| run.stalled_since().is_some()).await;
        assert!(held.stalled_since().is_some(), "flagged while paused: {held:?}");
        assert_eq!((held.status, held.counters.processed), (RunStatus::Running, 0));
        assert_eq!(stalled_notices(store, &f, f.user.id).await.len(), 1);

        std::fs::remove_file(&pause).unwrap();
        let ended = wait_for(store, &f, id, |run| run.status.is_terminal()).await;
        assert_eq!(ended.status, RunStatus::Completed);
        assert_eq!(ended.stalled_at, None, "its progress cleared the flag");
        let actions = trail_actions(store, &f, id).await;
        assert!(actions.ends_with(&[audit_names::RUN_STALL.into(), audit_names::RUN_STALL_CLEAR.into()]), "{actions:?}");
        assert_eq!(stalled_notices(store, &f, f.user.id).await.len(), 1, "told once");

        stop.send(true).unwrap();
        pool.await.unwrap();
    }
}
