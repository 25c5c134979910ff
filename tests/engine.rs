//! The operations engine on both databases: executing drift and add-policies
//! for real, fencing, rescue, abort, wake-ups and shutdown. Workers are
//! driven step by step (`Worker::step` until the queue is empty) wherever
//! the test is about outcomes rather than the pool itself.

mod support;

use futures_util::FutureExt;
use opshub::domain::*;
use opshub::server::engine::{self, EngineSettings, RunEnd, Worker};
use opshub::server::operations::{self, AddPoliciesOptions, StartRequest};
use opshub::server::store::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::engine::*;
use support::{fixture, two_syncs, Fixture};

/// Claims the oldest pending run alone, as a worker whose lease lasts `lease_for`.
async fn claim_one(store: &dyn Store, owner: &str, lease_for: Duration) -> Option<ClaimedRun> {
    store
        .claim_runs(owner, lease_for, ClaimLimit::ONE)
        .await
        .unwrap()
        .pop()
}

/// Writes one run's batch on its own, after `recorded_before` of its items.
async fn record(
    store: &dyn Store,
    lease: &Lease,
    lease_for: Duration,
    recorded_before: i64,
    items: Vec<ItemResult>,
    end: BatchEnd,
) -> ProgressOutcome {
    let progress = [RunProgress {
        lease: lease.clone(),
        recorded_before,
        items,
        end,
    }];
    let outcomes = store.record_progress(lease_for, &progress).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes[0]
}

/// Everything observable about a run and what it produced, to prove a write changed nothing.
async fn snapshot(store: &dyn Store, f: &Fixture, run: RunId, set: BackupSetId) -> String {
    let detail = detail(store, f, run).await;
    let items = store.backup_set_items(f.tenant.id, set).await.unwrap();
    let feed = store
        .list_notifications(
            f.tenant.id,
            f.user.id,
            &NotificationFilter::default(),
            PageRequest::first(100),
        )
        .await
        .unwrap();
    format!("{detail:?}|{items:?}|{:?}", feed.items)
}

/// A 400-item run in flight in a one-worker pool that writes every item on
/// its own (so the run takes a while): returned once its first item is recorded.
struct LongRun {
    f: Fixture,
    run: RunId,
    set: BackupSetId,
    policy_ids: Vec<String>,
    stop: tokio::sync::watch::Sender<bool>,
    pool: tokio::task::JoinHandle<()>,
}

async fn long_run_in_flight(db: &support::TestDb) -> LongRun {
    let store = db.store.as_ref();
    let f = fixture(store, "acme").await;
    let names: Vec<String> = (0..400).map(|i| format!("P{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = policies(store, &f, &names).await;
    let set = store
        .create_backup_set(f.tenant.id, "Nightly")
        .await
        .unwrap();
    let policy_ids: Vec<String> = all.iter().map(|p| p.id.to_string()).collect();
    let run = queue_add_policies(store, &f, set.id, "long", policy_ids.clone(), 3).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let slow = EngineSettings {
        workers: 1,
        batch_max_items: 1,
        heartbeat: Duration::from_secs(1),
        poll_interval: Duration::from_millis(20),
        ..settings()
    };
    let health = engine::EngineHealth::new(&slow);
    let pool = tokio::spawn(engine::run(db.store.clone(), slow, health, stopped));
    let deadline = Instant::now() + Duration::from_secs(20);
    while detail(store, &f, run).await.summary.counters.processed == 0 {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    LongRun {
        f,
        run,
        set: set.id,
        policy_ids,
        stop,
        pool,
    }
}
on_both! { db =>
    async fn drift_turns_changes_into_findings_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (baseline, current) = two_syncs(store, &f).await;
        let request = StartRequest::Drift { scope_key: "devices".into() };
        let run = operations::start(store, &f.tenant, &f.user, &request).await.unwrap().run.summary.id;
        let executed = drain(&worker(&db.store, "w1")).await;
        assert_eq!(executed.len(), 1);
        assert_eq!(executed[0].end, RunEnd::Finished(RunStatus::Completed));

        let done = detail(store, &f, run).await;
        assert_eq!(done.summary.status, RunStatus::Completed);
        assert_eq!(done.summary.counters, Counters { total: 3, processed: 3, succeeded: 3, failed: 0, skipped: 0 });
        assert_eq!(done.attempt, 1);
        assert!(done.summary.finished_at.is_some());
        let findings = store
            .list_findings(f.tenant.id, &FindingFilter::default(), PageRequest::first(50))
            .await
            .unwrap()
            .items;
        let mut kinds: Vec<(String, ChangeKind)> =
            findings.iter().map(|x| (x.subject_external_id.clone(), x.change_kind)).collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(kinds, vec![
            ("dev-1".into(), ChangeKind::Changed),
            ("dev-2".into(), ChangeKind::Removed),
            ("dev-3".into(), ChangeKind::Added),
        ]);
        assert!(findings.iter().all(|x| x.finding_type == FindingType::Drift
            && x.produced_by_run_id == Some(run)
            && x.scope_key == "devices"
            && (x.baseline_run_id, x.current_run_id) == (Some(baseline), Some(current))));
        let changed = findings.iter().find(|x| x.change_kind == ChangeKind::Changed).unwrap();
        assert_eq!(changed.evidence["fields"]["os"], serde_json::json!({ "before": "10", "after": "11" }));

        let notices = completed_notices(store, &f, run).await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].bucket, StatusBucket::Succeeded);
        assert_eq!(notices[0].counters, done.summary.counters);
        assert_eq!(notices[0].link, format!("/t/acme/operations/{run}"));
        assert_eq!(notices[0].error_summary, None);

        // Generating again: a new run (the first ended), the same findings.
        let again = operations::start(store, &f.tenant, &f.user, &request).await.unwrap();
        assert!(!again.joined);
        drain(&worker(&db.store, "w2")).await;
        assert_eq!(detail(store, &f, again.run.summary.id).await.summary.status, RunStatus::Completed);
        let after = store
            .list_findings(f.tenant.id, &FindingFilter::default(), PageRequest::first(50))
            .await
            .unwrap()
            .items;
        assert_eq!(after.len(), 3, "no duplicate findings");
        // They stay the first run's, and the comparison (the spec's link)
        // lists them for either run.
        assert!(after.iter().all(|x| x.produced_by_run_id == Some(run)));
        let comparison = FindingFilter {
            scope_key: Some("devices".into()),
            baseline: Some(baseline),
            current: Some(current),
            ..FindingFilter::default()
        };
        let listed = store.list_findings(f.tenant.id, &comparison, PageRequest::first(50)).await.unwrap().items;
        assert_eq!(listed.len(), 3);
        for (baseline, current) in [(Some(current), Some(current)), (Some(baseline), Some(baseline))] {
            let other = FindingFilter { baseline, current, ..comparison.clone() };
            assert!(store.list_findings(f.tenant.id, &other, PageRequest::first(50)).await.unwrap().items.is_empty());
        }
    }

    async fn add_policies_adds_skips_and_fails_per_policy(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let g = fixture(store, "globex").await;
        let mine = policies(store, &f, &["Present", "New"]).await;
        let foreign = policies(store, &g, &["Theirs"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        store
            .add_to_backup_set(NewBackupSetItem {
                tenant_id: f.tenant.id,
                backup_set_id: set.id,
                policy_id: mine[0].id,
                snapshot: serde_json::json!({}),
                added_by_run_id: None,
            })
            .await
            .unwrap();
        let missing = PolicyId(uuid::Uuid::now_v7());
        let items = vec![mine[0].id.to_string(), mine[1].id.to_string(), foreign[0].id.to_string(), missing.to_string()];
        let run = queue_add_policies(store, &f, set.id, "mixed", items, 3).await;
        drain(&worker(&db.store, "w")).await;

        let done = detail(store, &f, run).await;
        assert_eq!(done.summary.status, RunStatus::CompletedWithErrors);
        assert_eq!(done.summary.counters, Counters { total: 4, processed: 4, succeeded: 1, failed: 2, skipped: 1 });
        let codes: Vec<(Option<String>, ReasonCode, FailureKind)> =
            done.failures.iter().map(|e| (e.item_id.clone(), e.reason_code, e.kind)).collect();
        assert_eq!(codes, vec![
            (Some(mine[0].id.to_string()), ReasonCode::AlreadyPresent, FailureKind::Skipped),
            (Some(foreign[0].id.to_string()), ReasonCode::PolicyNotFound, FailureKind::Failed),
            (Some(missing.to_string()), ReasonCode::PolicyNotFound, FailureKind::Failed),
        ]);
        let in_set = store.backup_set_items(f.tenant.id, set.id).await.unwrap();
        assert_eq!(in_set.len(), 2);
        let added = in_set.iter().find(|i| i.policy_id == mine[1].id).unwrap();
        assert_eq!(added.added_by_run_id, Some(run));
        assert_eq!(added.snapshot["name"], "New");
        // The policy the set held is left as it was: no run took it over.
        let held = in_set.iter().find(|i| i.policy_id == mine[0].id).unwrap();
        assert_eq!((held.added_by_run_id, &held.snapshot), (None, &serde_json::json!({})));
        assert!(store.backup_set_items(g.tenant.id, set.id).await.unwrap().is_empty());
        let notice = &completed_notices(store, &f, run).await[0];
        assert_eq!(notice.bucket, StatusBucket::PartiallySucceeded);
        assert_eq!(notice.error_summary.as_deref(), Some("2 failed: policy_not_found ×2"));

        // Failures and nothing succeeded: failed.
        let hopeless = queue_add_policies(store, &f, set.id, "hopeless", vec![missing.to_string()], 3).await;
        drain(&worker(&db.store, "w")).await;
        assert_eq!(detail(store, &f, hopeless).await.summary.status, RunStatus::Failed);

        // Two runs of one claim add the same policy: the one write of their
        // batch adds it once, and the other run skips it as present.
        let fresh = policies(store, &f, &["Fresh"]).await[0].id;
        let first = queue_add_policies(store, &f, set.id, "first", vec![fresh.to_string()], 3).await;
        let second = queue_add_policies(store, &f, set.id, "second", vec![fresh.to_string()], 3).await;
        let executed = worker(&db.store, "w").step().await.unwrap();
        assert_eq!(executed.len(), 2, "both runs in one claim");
        let counters = [detail(store, &f, first).await, detail(store, &f, second).await].map(|d| d.summary.counters);
        assert_eq!(counters.map(|c| (c.succeeded, c.skipped)), [(1, 0), (0, 1)]);
        let second_failures = detail(store, &f, second).await.failures;
        assert_eq!(second_failures[0].reason_code, ReasonCode::AlreadyPresent);
        assert_eq!(store.backup_set_items(f.tenant.id, set.id).await.unwrap().len(), 3);
    }

    async fn retrying_failed_items_makes_a_linked_run_and_duplicate_starts_join(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["Good"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let gone = [PolicyId(uuid::Uuid::now_v7()), PolicyId(uuid::Uuid::now_v7())];
        let items = vec![mine[0].id.to_string(), gone[0].to_string(), gone[1].to_string()];
        let original = queue_add_policies(store, &f, set.id, "partly", items, 3).await;
        let retry = StartRequest::Retry { run_id: original };
        let err = operations::start(store, &f.tenant, &f.user, &retry).await.unwrap_err();
        assert!(err.to_string().contains("still active"), "{err}");
        drain(&worker(&db.store, "w")).await;
        assert_eq!(detail(store, &f, original).await.summary.status, RunStatus::CompletedWithErrors);

        let started = operations::start(store, &f.tenant, &f.user, &retry).await.unwrap();
        assert!(!started.joined);
        let again = fixture(store, "acme-2").await; // another operator, same tenant
        store.set_membership(f.tenant.id, again.user.id, Role::Operator, MembershipAudit::Unaudited).await.unwrap();
        let joined = operations::start(store, &f.tenant, &again.user, &retry).await.unwrap();
        assert!(joined.joined);
        assert_eq!(joined.run.summary.id, started.run.summary.id);
        let retried = started.run;
        assert_eq!(retried.retry_of, Some(original));
        // Its item_ids name exactly the items it re-runs, in the run's scope.
        let mut failed = gone.to_vec();
        failed.sort();
        assert_eq!(
            retried.item_ids,
            serde_json::json!({ "backup_set_id": set.id, "policy_ids": failed, "options": { "include_payload": true } })
        );
        assert_eq!(retried.summary.counters.total, 2);
        let listed: Vec<RunId> = store.retries_of(f.tenant.id, original).await.unwrap().iter().map(|r| r.id).collect();
        assert_eq!(listed, vec![retried.summary.id]);
        let joins = store.run_joins(f.tenant.id, retried.summary.id).await.unwrap();
        assert_eq!(joins.iter().map(|j| j.user_id).collect::<Vec<_>>(), vec![again.user.id]);
        assert!(store.run_joins(again.tenant.id, retried.summary.id).await.unwrap().is_empty(), "tenant-scoped");

        drain(&worker(&db.store, "w")).await;
        assert_eq!(detail(store, &f, retried.summary.id).await.summary.status, RunStatus::Failed);
        let clean = queue_add_policies(store, &f, set.id, "clean", vec![mine[0].id.to_string()], 3).await;
        drain(&worker(&db.store, "w")).await;
        let err = operations::start(store, &f.tenant, &f.user, &StartRequest::Retry { run_id: clean }).await.unwrap_err();
        assert!(err.to_string().contains("no failed items"), "{err}");

        // A retry covers every failed item, not only the entries kept for display.
        let many: Vec<String> = (0..MAX_STORED_FAILURES + 20).map(|_| PolicyId(uuid::Uuid::now_v7()).to_string()).collect();
        let crowded = queue_add_policies(store, &f, set.id, "crowded", many.clone(), 3).await;
        drain(&worker(&db.store, "w")).await;
        let ended = detail(store, &f, crowded).await;
        assert_eq!((ended.summary.counters.failed, ended.failures.len()), (many.len() as i64, MAX_STORED_FAILURES));
        let retry = operations::start(store, &f.tenant, &f.user, &StartRequest::Retry { run_id: crowded }).await.unwrap();
        assert_eq!(retry.run.summary.counters.total, many.len() as i64);
        assert_eq!(retry.run.item_ids["policy_ids"].as_array().unwrap().len(), many.len());
    }

    async fn the_demo_runs_execute_for_real(db) {
        let store = db.store.as_ref();
        opshub::server::seed::seed_demo(store).await.unwrap();
        // Demo "running" runs have no worker: a worker takes them over as
        // they are (rescue has nothing to release), and they stay running.
        assert_eq!(store.rescue_expired().await.unwrap(), RescueReport::default());
        let executed = drain(&worker(&db.store, "w")).await;
        assert_eq!(executed.len(), 18, "3 queued + 3 taken over per tenant");
        for tenant in store.list_tenants().await.unwrap() {
            let counts = store.count_runs_by_bucket(tenant.id, &RunFilter::default()).await.unwrap();
            assert_eq!(counts.queued + counts.running, 0, "{}", tenant.slug);
        }
        for run in executed {
            assert!(matches!(run.end, RunEnd::Finished(_)), "{run:?}");
        }
        let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
        let failed = store
            .list_runs(acme.id, &RunFilter { bucket: Some(StatusBucket::Failed), ..Default::default() }, PageRequest::first(200))
            .await
            .unwrap();
        for run in failed.items {
            let detail = store.run(acme.id, run.id).await.unwrap().unwrap();
            assert!(
                detail.failures.iter().all(|f| !f.reason.contains("malformed")),
                "the demo's parameters are real: {:?}",
                detail.failures
            );
        }
    }

    async fn a_stale_worker_changes_nothing(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids = mine.iter().map(|p| p.id.to_string()).collect();
        let run = queue_add_policies(store, &f, set.id, "stale", ids, 3).await;

        // The first worker claims with a lease that lapses at once, and pauses.
        let stale = claim_one(store, "paused", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap(), RescueReport { released: 1, ..Default::default() });
        let fresh = claim_one(store, "fresh", Duration::from_secs(30)).await.unwrap();
        assert_eq!(fresh.lease.attempt, stale.lease.attempt + 1);

        let before = snapshot(store, &f, run, set.id).await;
        let items: Vec<ItemResult> = mine
            .iter()
            .map(|p| ItemResult {
                item_id: p.id.to_string(),
                outcome: ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(NewBackupSetItem {
                    tenant_id: f.tenant.id,
                    backup_set_id: set.id,
                    policy_id: p.id,
                    snapshot: serde_json::json!({ "by": "stale" }),
                    added_by_run_id: Some(run),
                }))),
            })
            .collect();
        let lease = Duration::from_secs(30);
        assert_eq!(record(store, &stale.lease, lease, 0, items.clone(), BatchEnd::Finishes).await, ProgressOutcome::LeaseLost);
        assert_eq!(record(store, &stale.lease, lease, 0, items, BatchEnd::Continues).await, ProgressOutcome::LeaseLost);
        assert_eq!(store.renew_lease(&stale.lease, lease).await.unwrap(), LeaseState::Lost);
        assert!(!store.finish_aborted(&stale.lease).await.unwrap());
        assert_eq!(snapshot(store, &f, run, set.id).await, before, "the stale worker changed something");

        // The fresh claim is unaffected and finishes the run.
        assert_eq!(store.renew_lease(&fresh.lease, lease).await.unwrap(), LeaseState::Held);
        assert_eq!(
            record(store, &fresh.lease, lease, 0, Vec::new(), BatchEnd::Finishes).await,
            ProgressOutcome::Recorded(RunStatus::Completed)
        );
    }

    async fn a_progress_write_sent_again_after_its_commit_landed_counts_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids = mine.iter().map(|p| p.id.to_string()).collect();
        let run = queue_add_policies(store, &f, set.id, "again", ids, 3).await;
        let claim = claim_one(store, "w", Duration::from_secs(30)).await.unwrap();
        let lease = Duration::from_secs(30);
        let add = |policy: &Policy| ItemResult {
            item_id: policy.id.to_string(),
            outcome: ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(NewBackupSetItem {
                tenant_id: f.tenant.id,
                backup_set_id: set.id,
                policy_id: policy.id,
                snapshot: serde_json::json!({}),
                added_by_run_id: Some(run),
            }))),
        };
        let first = vec![add(&mine[0]), add(&mine[1])];
        for _ in 0..2 {
            // The second time is a worker whose answer was lost sending again.
            assert_eq!(
                record(store, &claim.lease, lease, 0, first.clone(), BatchEnd::Continues).await,
                ProgressOutcome::Recorded(RunStatus::Running)
            );
        }
        let halfway = snapshot(store, &f, run, set.id).await;
        assert_eq!(detail(store, &f, run).await.summary.counters.processed, 2);
        // A batch that does not follow what is recorded is refused whole.
        let last = vec![add(&mine[2])];
        for wrong in [1, 3] {
            assert_eq!(
                record(store, &claim.lease, lease, wrong, last.clone(), BatchEnd::Finishes).await,
                ProgressOutcome::LeaseLost
            );
        }
        assert_eq!(snapshot(store, &f, run, set.id).await, halfway);
        for _ in 0..2 {
            assert_eq!(
                record(store, &claim.lease, lease, 2, last.clone(), BatchEnd::Finishes).await,
                ProgressOutcome::Recorded(RunStatus::Completed)
            );
        }
        let done = detail(store, &f, run).await;
        assert_eq!(done.summary.counters, Counters { total: 3, processed: 3, succeeded: 3, failed: 0, skipped: 0 });
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert_eq!(store.backup_set_items(f.tenant.id, set.id).await.unwrap().len(), 3);
        assert_eq!(completed_notices(store, &f, run).await.len(), 1);
    }

    async fn a_broken_down_run_fails_with_its_entry_and_the_work_it_did(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids = mine.iter().map(|p| p.id.to_string()).collect();
        let run = queue_add_policies(store, &f, set.id, "broken", ids, 3).await;
        let claim = claim_one(store, "w", Duration::from_secs(30)).await.unwrap();
        let done = vec![ItemResult { item_id: mine[0].id.to_string(), outcome: ItemOutcome::Succeeded(None) }];
        let entry = FailureEntry::failed(
            Some(mine[1].id.to_string()),
            ReasonCode::InternalError,
            "the operation broke down processing an item: password=hunter2",
        );
        assert_eq!(
            record(store, &claim.lease, Duration::from_secs(30), 0, done, BatchEnd::BrokeDown(entry.clone())).await,
            ProgressOutcome::Recorded(RunStatus::Failed),
            "failed, though every item written succeeded"
        );
        let failed = detail(store, &f, run).await;
        assert_eq!(failed.summary.status, RunStatus::Failed);
        assert_eq!(failed.summary.counters, Counters { total: 3, processed: 1, succeeded: 1, failed: 0, skipped: 0 });
        assert_eq!(failed.failures, vec![entry]);
        assert!(!failed.failures[0].reason.contains("hunter2"));
        let notice = &completed_notices(store, &f, run).await[0];
        assert_eq!(notice.bucket, StatusBucket::Failed);
        assert_eq!(notice.error_summary.as_deref(), Some("internal_error ×1"));
    }

    async fn a_run_stored_with_fewer_items_than_it_counts_processed_fails_clearly(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        // Written by an import, not the engine: three of five counted, two listed.
        let id = RunId::generate();
        store.insert_run_records(&[RunRecord {
            id,
            tenant_id: f.tenant.id,
            user_id: f.user.id,
            operation: OperationKind::BackupSetAddPolicies,
            idempotency_key: Some("imported".into()),
            status: RunStatus::Pending,
            counters: Counters { total: 5, processed: 3, succeeded: 3, failed: 0, skipped: 0 },
            item_ids: RunScope::AddPolicies(AddPoliciesScope {
                backup_set_id: set.id,
                policy_ids: vec![mine[0].id],
                options: AddPoliciesOptions::default(),
            }),
            work_items: vec![mine[0].id.to_string(), "p-2".into()],
            failures: Vec::new(),
            attempt: 0,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: None,
        }]).await.unwrap();
        let fine = queue_add_policies(store, &f, set.id, "fine", vec![mine[0].id.to_string()], 1).await;
        let executed = drain(&worker(&db.store, "w")).await;
        assert_eq!(executed.len(), 2, "{executed:?}");
        let failed = detail(store, &f, id).await;
        assert_eq!(failed.summary.status, RunStatus::Failed);
        assert_eq!(failed.summary.counters.processed, 3, "nothing counted twice or lost");
        assert_eq!(failed.failures.len(), 1);
        let entry = &failed.failures[0];
        assert_eq!((entry.item_id.as_ref(), entry.reason_code), (None, ReasonCode::InternalError));
        assert_eq!(entry.reason, "the operation broke down resuming: it has 2 work items but counts 3 processed");
        assert_eq!(detail(store, &f, fine).await.summary.status, RunStatus::Completed);
    }

    async fn a_worker_takes_back_runs_its_lost_claim_took(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let mut queued = Vec::new();
        for key in ["first", "second", "rescued"] {
            queued.push(queue_add_policies(store, &f, set.id, key, vec![format!("{key}-item")], 3).await);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let lease = Duration::from_secs(30);
        // A claim whose answer never arrived: the runs are the worker's.
        let lost = store.claim_runs("w", lease, ClaimLimit { runs: 2, items: 100 }).await.unwrap();
        assert_eq!(lost.len(), 2);
        // One more, claimed by the same worker with a lease that lapses and is rescued.
        claim_one(store, "w", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap().released, 1);

        assert!(store.reclaim_runs("someone-else", lease).await.unwrap().is_empty());
        let held = store.reclaim_runs("w", lease).await.unwrap();
        let ids: Vec<RunId> = held.iter().map(|run| run.lease.run_id).collect();
        assert_eq!(ids, queued[..2], "the worker's running runs, oldest first; not the rescued one");
        for (again, before) in held.iter().zip(&lost) {
            assert_eq!(again.lease, before.lease, "the same claim, the same attempt");
            assert_eq!(again.resume_at, 0);
        }
        // The worker finishes them under that claim.
        let drained = drain(&worker(&db.store, "w")).await;
        assert_eq!(drained.len(), 1, "only the rescued run was left to claim");
        for run in &held {
            assert_eq!(
                record(store, &run.lease, lease, 0, Vec::new(), BatchEnd::Finishes).await,
                ProgressOutcome::Recorded(RunStatus::Completed)
            );
        }
        assert!(store.reclaim_runs("w", lease).await.unwrap().is_empty());
    }

    /// A run never starts before it was queued, whatever the claim's clock
    /// read: one queued (stamped) after that reading, as can happen while
    /// the claim waits for its turn to write, starts at its queue time.
    async fn a_claimed_run_never_starts_before_it_was_queued(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let id = queue_add_policies(store, &f, set.id, "ahead", vec!["item".into()], 1).await;
        let ahead = if db.is_sqlite() {
            "created_at + 60000000"
        } else {
            "created_at + interval '1 minute'"
        };
        db.execute(&format!(
            "UPDATE bulk_operation_runs SET created_at = {ahead} WHERE idempotency_key = 'ahead'"
        ))
        .await;
        let queued = detail(store, &f, id).await.summary.created_at;
        claim_one(store, "w", Duration::from_secs(30)).await.unwrap();
        let claimed = detail(store, &f, id).await.summary;
        assert_eq!(claimed.status, RunStatus::Running);
        assert_eq!(claimed.started_at, Some(queued));
    }

    async fn a_claim_takes_small_runs_together_and_a_large_run_alone(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let mut queued = Vec::new();
        for (key, items) in [("s1", 2), ("s2", 2), ("s3", 2), ("large", 8), ("after", 1), ("t1", 1), ("t2", 1)] {
            let ids = (0..items).map(|i| format!("{key}-{i}")).collect();
            queued.push(queue_add_policies(store, &f, set.id, key, ids, 3).await);
            // Distinct creation times: the queue's order is the test's order.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let lease = Duration::from_secs(30);
        let claim = |limit| async move {
            let runs = store.claim_runs("w", lease, limit).await.unwrap();
            runs.into_iter().map(|run| run.lease.run_id).collect::<Vec<_>>()
        };

        // 2 + 2 + 2 items fit in 6; the large run would not fit beside them.
        assert_eq!(claim(ClaimLimit { runs: 32, items: 6 }).await, queued[0..3]);
        // The oldest is always taken, alone when nothing more fits beside it.
        assert_eq!(claim(ClaimLimit { runs: 32, items: 6 }).await, queued[3..4]);
        // The run count bounds a claim too.
        assert_eq!(claim(ClaimLimit { runs: 2, items: 100 }).await, queued[4..6]);
        assert_eq!(claim(ClaimLimit::ONE).await, queued[6..7]);
        assert!(claim(ClaimLimit { runs: 32, items: 100 }).await.is_empty());
        for id in &queued {
            let run = detail(store, &f, *id).await;
            assert_eq!((run.summary.status, run.attempt), (RunStatus::Running, 1));
            assert_eq!(run.lease_owner.as_deref(), Some("w"));
        }
    }

    async fn one_write_completes_many_runs_and_refuses_only_the_runs_it_must(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B", "C", "D"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let mut runs = Vec::new();
        for (key, policy) in ["kept", "aborted", "stale", "also-kept"].iter().zip(&mine) {
            runs.push(queue_add_policies(store, &f, set.id, key, vec![policy.id.to_string()], 3).await);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let lease = Duration::from_secs(30);
        let claimed = store.claim_runs("w", lease, ClaimLimit { runs: 32, items: 500 }).await.unwrap();
        assert_eq!(claimed.iter().map(|run| run.lease.run_id).collect::<Vec<_>>(), runs);
        assert_eq!(operations::abort(store, &f.tenant, &f.user, runs[1]).await.unwrap(), AbortOutcome::Requested);
        let refused = [runs[1], runs[2]];
        let mut before = Vec::new();
        for run in refused {
            before.push(format!("{:?}", detail(store, &f, run).await));
        }

        let progress = claimed
            .iter()
            .zip(&mine)
            .map(|(run, policy)| RunProgress {
                lease: match run.lease.run_id == runs[2] {
                    // A claim this worker no longer holds.
                    true => Lease { attempt: run.lease.attempt + 1, ..run.lease.clone() },
                    false => run.lease.clone(),
                },
                recorded_before: 0,
                items: vec![ItemResult {
                    item_id: policy.id.to_string(),
                    outcome: ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(NewBackupSetItem {
                        tenant_id: f.tenant.id,
                        backup_set_id: set.id,
                        policy_id: policy.id,
                        snapshot: serde_json::json!({ "name": policy.name }),
                        added_by_run_id: Some(run.lease.run_id),
                    }))),
                }],
                end: BatchEnd::Finishes,
            })
            .collect::<Vec<_>>();
        assert_eq!(
            store.record_progress(lease, &progress).await.unwrap(),
            [
                ProgressOutcome::Recorded(RunStatus::Completed),
                ProgressOutcome::AbortRequested,
                ProgressOutcome::LeaseLost,
                ProgressOutcome::Recorded(RunStatus::Completed),
            ]
        );
        for kept in [runs[0], runs[3]] {
            let run = detail(store, &f, kept).await;
            assert_eq!((run.summary.status, run.summary.counters.succeeded), (RunStatus::Completed, 1));
            assert_eq!(completed_notices(store, &f, kept).await.len(), 1);
        }
        // Nothing of the refused runs was written: no item, no counter, no notice.
        let added: Vec<PolicyId> = store
            .backup_set_items(f.tenant.id, set.id)
            .await
            .unwrap()
            .iter()
            .map(|item| item.policy_id)
            .collect();
        assert_eq!(added.len(), 2);
        assert!(added.contains(&mine[0].id) && added.contains(&mine[3].id));
        for (run, before) in refused.into_iter().zip(before) {
            assert_eq!(format!("{:?}", detail(store, &f, run).await), before);
            assert!(completed_notices(store, &f, run).await.is_empty());
        }
    }

    async fn expired_leases_are_retried_then_fail_worker_lost(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids = mine.iter().map(|p| p.id.to_string()).collect();
        let run = queue_add_policies(store, &f, set.id, "lost", ids, 2).await;

        // Attempt 1 records one item, then its worker vanishes.
        let first = claim_one(store, "gone-1", Duration::from_millis(1)).await.unwrap();
        let one = vec![ItemResult {
            item_id: mine[0].id.to_string(),
            outcome: ItemOutcome::Succeeded(None),
        }];
        assert_eq!(
            record(store, &first.lease, Duration::from_millis(1), 0, one, BatchEnd::Continues).await,
            ProgressOutcome::Recorded(RunStatus::Running)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap().released, 1);
        let released = detail(store, &f, run).await;
        assert_eq!((released.summary.status, released.attempt), (RunStatus::Running, 1), "never back to pending");
        assert!(released.lease_owner.is_none());

        // Attempt 2 resumes after the recorded item, and vanishes too.
        let second = claim_one(store, "gone-2", Duration::from_millis(1)).await.unwrap();
        assert_eq!((second.lease.attempt, second.resume_at), (2, 1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap(), RescueReport { failed: 1, ..Default::default() });
        let failed = detail(store, &f, run).await;
        assert_eq!(failed.summary.status, RunStatus::Failed);
        assert_eq!(failed.summary.counters.processed, 1, "work done stays counted");
        assert_eq!(failed.failures.last().unwrap().reason_code, ReasonCode::WorkerLost);
        let notice = &completed_notices(store, &f, run).await[0];
        assert_eq!(notice.bucket, StatusBucket::Failed);
        assert_eq!(notice.error_summary.as_deref(), Some("worker_lost ×1"));
        assert!(claim_one(store, "late", Duration::from_secs(1)).await.is_none());

        // Each attempt is on record: who, from when to when, why it ended.
        let attempts = store.run_attempts(f.tenant.id, run).await.unwrap();
        let seen: Vec<(i64, &str, Option<AttemptEnd>)> =
            attempts.iter().map(|a| (a.attempt, a.worker.as_str(), a.end)).collect();
        assert_eq!(seen, vec![
            (1, "gone-1", Some(AttemptEnd::LeaseExpired)),
            (2, "gone-2", Some(AttemptEnd::Ended(RunStatus::Failed))),
        ]);
        assert!(attempts.iter().all(|a| a.ended_at.is_some_and(|end| end >= a.started_at)));
        assert!(attempts[0].ended_at <= Some(attempts[1].started_at));
        let other = fixture(store, "globex").await;
        assert!(store.run_attempts(other.tenant.id, run).await.unwrap().is_empty(), "tenant-scoped");
    }

    async fn abort_ends_pending_runs_at_once_and_running_runs_through_their_worker(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let g = fixture(store, "globex").await;
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids: Vec<String> = mine.iter().map(|p| p.id.to_string()).collect();

        let pending = queue_add_policies(store, &f, set.id, "pending", ids.clone(), 3).await;
        assert!(matches!(
            operations::abort(store, &g.tenant, &g.user, pending).await,
            Err(operations::AbortError::NotFound)
        ));
        assert_eq!(operations::abort(store, &f.tenant, &f.user, pending).await.unwrap(), AbortOutcome::Aborted);
        let aborted = detail(store, &f, pending).await;
        assert_eq!(aborted.summary.status, RunStatus::Aborted);
        assert!(aborted.cancel_requested_at.is_some() && aborted.summary.finished_at.is_some());
        assert_eq!(completed_notices(store, &f, pending).await[0].bucket, StatusBucket::Failed);
        assert!(matches!(
            operations::abort(store, &f.tenant, &f.user, pending).await,
            Err(operations::AbortError::AlreadyFinished(RunStatus::Aborted))
        ));
        assert_eq!(store.list_audit(f.tenant.id, 10).await.unwrap()[0].action, "run.abort");

        let running = queue_add_policies(store, &f, set.id, "running", ids, 3).await;
        let claim = claim_one(store, "w", Duration::from_secs(30)).await.unwrap();
        let first = vec![ItemResult { item_id: mine[0].id.to_string(), outcome: ItemOutcome::Succeeded(None) }];
        let lease = Duration::from_secs(30);
        record(store, &claim.lease, lease, 0, first, BatchEnd::Continues).await;
        assert_eq!(operations::abort(store, &f.tenant, &f.user, running).await.unwrap(), AbortOutcome::Requested);
        assert_eq!(store.renew_lease(&claim.lease, lease).await.unwrap(), LeaseState::AbortRequested);
        let rest = vec![ItemResult { item_id: mine[1].id.to_string(), outcome: ItemOutcome::Succeeded(None) }];
        assert_eq!(
            record(store, &claim.lease, lease, 1, rest, BatchEnd::Finishes).await,
            ProgressOutcome::AbortRequested
        );
        assert!(store.finish_aborted(&claim.lease).await.unwrap());
        let done = detail(store, &f, running).await;
        assert_eq!(done.summary.status, RunStatus::Aborted);
        assert_eq!(done.summary.counters.processed, 1, "the work done is counted, nothing after the abort");
        assert_eq!(
            completed_notices(store, &f, running).await[0].error_summary.as_deref(),
            Some("aborted after 1 of 3 items")
        );
    }

    async fn abort_racing_completion_ends_in_exactly_one_terminal_state(db) {
        const ROUNDS: usize = 500;
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids: Vec<String> = mine.iter().map(|p| p.id.to_string()).collect();
        // One item per batch, so an abort can land between any two writes.
        let racer = Worker::new(db.store.clone(), "racer", EngineSettings { batch_max_items: 1, ..settings() });
        let mut ended = [0usize; 3];
        for round in 0..ROUNDS {
            let run = queue_add_policies(store, &f, set.id, &format!("race-{round}"), ids.clone(), 3).await;
            let f = &f;
            let abort = async move {
                // Land the abort before the claim, right after it, or late in the run.
                let wait_until = |processed: i64| async move {
                    loop {
                        let run = detail(store, f, run).await;
                        let reached = match processed {
                            0 => run.summary.status != RunStatus::Pending,
                            n => run.summary.counters.processed >= n,
                        };
                        if reached || run.summary.status.is_terminal() {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                };
                match round % 3 {
                    1 => wait_until(0).await,
                    2 => wait_until(2).await,
                    _ => {}
                }
                let outcome = operations::abort(store, &f.tenant, &f.user, run).await;
                let at_abort = detail(store, f, run).await.summary.counters;
                (outcome, at_abort)
            };
            let (executed, (outcome, at_abort)) = futures::join!(racer.step(), abort);
            executed.unwrap();
            let done = detail(store, f, run).await;
            assert!(done.summary.status.is_terminal(), "round {round}: {:?}", done.summary.status);
            assert_eq!(completed_notices(store, f, run).await.len(), 1, "round {round}");
            match outcome {
                Ok(outcome) => {
                    assert_eq!(done.summary.status, RunStatus::Aborted, "round {round}");
                    assert_eq!(done.summary.counters, at_abort, "round {round}: counters moved after the abort");
                    ended[usize::from(outcome == AbortOutcome::Requested)] += 1;
                }
                Err(operations::AbortError::AlreadyFinished(status)) => {
                    assert_eq!(status, done.summary.status, "round {round}");
                    assert_eq!(done.summary.status, RunStatus::Completed, "round {round}");
                    ended[2] += 1;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        println!(
            "of {ROUNDS} rounds: aborted while queued {}, aborted while running {}, completed first {}",
            ended[0], ended[1], ended[2]
        );
    }

    async fn two_thousand_runs_four_workers_each_executed_once(db) {
        const RUNS: usize = 2_000;
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let names: Vec<String> = (0..RUNS * 2).map(|i| format!("Policy {i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let all = policies(store, &f, &names).await;
        let mut runs = HashSet::new();
        for (i, pair) in all.chunks(2).enumerate() {
            let ids = pair.iter().map(|p| p.id.to_string()).collect();
            runs.insert(queue_add_policies(store, &f, set.id, &format!("bulk-{i}"), ids, 3).await);
        }
        let workers: Vec<Worker> = (0..4).map(|i| worker(&db.store, &format!("w{i}"))).collect();
        let executed: Vec<engine::Executed> =
            futures::future::join_all(workers.iter().map(drain)).await.into_iter().flatten().collect();
        let executed_ids: HashSet<RunId> = executed.iter().map(|e| e.run_id).collect();
        assert_eq!(executed.len(), RUNS, "runs executed more than once");
        assert_eq!(executed_ids, runs);
        assert!(executed.iter().all(|e| e.attempt == 1 && e.end == RunEnd::Finished(RunStatus::Completed)));
        let counts = store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap();
        assert_eq!(counts.succeeded, RUNS as i64);
        let items = store.backup_set_items(f.tenant.id, set.id).await.unwrap();
        assert_eq!(items.len(), RUNS * 2);
        for run in runs.iter().take(50) {
            let done = detail(store, &f, *run).await;
            assert_eq!(done.summary.counters, Counters { total: 2, processed: 2, succeeded: 2, failed: 0, skipped: 0 });
            assert_eq!(items.iter().filter(|i| i.added_by_run_id == Some(*run)).count(), 2);
        }
    }

    async fn canary_secrets_appear_nowhere(db) {
        const CANARY: &str = "CANARY7f3a9";
        support::server_log();
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        // Secrets in inventory names and payloads (drift evidence)...
        let item = |id: &str, name: String, payload: serde_json::Value| NewInventoryItem {
            subject_type: "device".into(),
            external_id: id.into(),
            display_name: name,
            payload,
        };
        for (n, os) in [(0, "10"), (1, "11")] {
            store
                .record_inventory_sync(NewInventorySync {
                    tenant_id: f.tenant.id,
                    selection_hash: "devices".into(),
                    finished_at: Timestamp::now().plus_millis(n - 10),
                    items: vec![
                        item("d1", format!("laptop Bearer {CANARY}-bearer"), serde_json::json!({
                            "os": format!("{os} password={CANARY}-pw"),
                            "client_secret": format!("{CANARY}-secret"),
                            "owner": format!("ops-{CANARY}@example.com"),
                            "db": format!("postgres://app:{CANARY}-conn@db.internal/prod"),
                        })),
                        item(&format!("d{}", n + 2), format!("api_key: {CANARY}-key"), serde_json::json!({
                            "version": format!("https://user:{CANARY}-url@host/x"),
                        })),
                    ],
                })
                .await
                .unwrap();
        }
        let drift = operations::start(store, &f.tenant, &f.user, &StartRequest::Drift { scope_key: "devices".into() })
            .await
            .unwrap();
        // ...and in a policy whose snapshot is refused (its name is quoted in the reason).
        let big = store
            .create_policy(NewPolicy {
                tenant_id: f.tenant.id,
                external_id: "big".into(),
                name: format!("big token={CANARY}-token"),
                policy_type: "compliance".into(),
                payload: serde_json::json!({ "blob": "x".repeat(300 * 1024) }),
            })
            .await
            .unwrap();
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let add = StartRequest::AddPolicies {
            backup_set_id: set.id,
            policy_ids: vec![big.id],
            options: AddPoliciesOptions { include_payload: true },
        };
        let refused = operations::start(store, &f.tenant, &f.user, &add).await.unwrap();
        // A bad request quoting a secret is answered without it.
        let err = operations::start(store, &f.tenant, &f.user, &StartRequest::Drift {
            scope_key: format!("scope password={CANARY}-input"),
        })
        .await
        .unwrap_err();
        assert!(!err.to_string().contains(CANARY), "{err}");
        drain(&worker(&db.store, "w")).await;

        let refused = detail(store, &f, refused.run.summary.id).await;
        assert_eq!(refused.summary.status, RunStatus::Failed);
        assert_eq!(refused.failures[0].reason_code, ReasonCode::InvalidPayload);
        assert!(refused.failures[0].reason.contains("snapshot limit"));
        let drift = detail(store, &f, drift.run.summary.id).await;
        assert_eq!(drift.summary.status, RunStatus::Completed);

        let mut seen = String::new();
        for run in store.list_runs(f.tenant.id, &RunFilter::default(), PageRequest::first(50)).await.unwrap().items {
            seen.push_str(&format!("{:?}", detail(store, &f, run.id).await));
        }
        seen.push_str(&format!("{:?}", store.list_notifications(f.tenant.id, f.user.id, &NotificationFilter::default(), PageRequest::first(50)).await.unwrap()));
        seen.push_str(&format!("{:?}", store.list_audit(f.tenant.id, 50).await.unwrap()));
        let findings = store.list_findings(f.tenant.id, &FindingFilter::default(), PageRequest::first(50)).await.unwrap();
        assert_eq!(findings.items.len(), 3);
        for finding in &findings.items {
            seen.push_str(&finding.evidence.to_string());
        }
        tracing::info!("canary check of the server log");
        let log = support::server_log_text();
        assert!(log.contains("canary check of the server log"), "the server log is kept");
        seen.push_str(&log);
        if let Some((before, _)) = seen.split_once(CANARY) {
            let context: String = before.chars().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("a canary leaked after: {context}");
        }
    }

    async fn a_queued_run_wakes_an_idle_pool_without_polling(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Polling once a minute: only the wake-up can explain a prompt claim.
        let health = engine::EngineHealth::new(&settings());
        let pool = tokio::spawn(engine::run(db.store.clone(), settings(), health, stopped));
        tokio::time::sleep(Duration::from_millis(200)).await; // the pool goes idle
        // On PostgreSQL the run is queued through another connection pool, as
        // another process would: only LISTEN/NOTIFY reaches the idle workers.
        let other = match store.backend() {
            Backend::Postgres => connect(&db.url, 2).await.unwrap(),
            Backend::Sqlite => db.store.clone(),
        };
        let run = queue_add_policies(other.as_ref(), &f, set.id, "wake", vec![mine[0].id.to_string()], 3).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while detail(store, &f, run).await.summary.status.is_active() {
            assert!(Instant::now() < deadline, "the queued run was not picked up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        pool.await.unwrap();
    }

    async fn a_queued_run_wakes_one_idle_worker_not_every_one(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let mine = policies(store, &f, &["A"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        // On PostgreSQL the listener wakes every waiting worker once it is
        // connected (it may have missed runs): wait for that first.
        if store.backend() == Backend::Postgres {
            let listening = store.queued().notified();
            tokio::pin!(listening);
            listening.as_mut().enable();
            store.listen_across_processes().await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), listening).await.expect("the listener connected");
        }
        // Three idle workers wait; one run is queued.
        let mut idle: Vec<_> = (0..3).map(|_| Box::pin(store.queued().notified())).collect();
        for worker in &mut idle {
            worker.as_mut().enable();
        }
        queue_add_policies(store, &f, set.id, "one", vec![mine[0].id.to_string()], 3).await;
        // Time for this store's own NOTIFY to come back on PostgreSQL.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let woken = idle.iter_mut().map(|worker| worker.as_mut().now_or_never()).filter(Option::is_some).count();
        assert_eq!(woken, 1, "one run wakes one worker: the others would claim nothing");
    }

    async fn a_running_run_observes_its_abort_within_two_seconds(db) {
        let store = db.store.as_ref();
        let LongRun { f, run, stop, pool, .. } = long_run_in_flight(db).await;
        assert_eq!(operations::abort(store, &f.tenant, &f.user, run).await.unwrap(), AbortOutcome::Requested);
        let requested = Instant::now();
        let at_abort = detail(store, &f, run).await.summary.counters;
        while detail(store, &f, run).await.summary.status == RunStatus::Running {
            assert!(requested.elapsed() < Duration::from_secs(2), "the worker did not observe the abort within 2 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let aborted = detail(store, &f, run).await;
        assert_eq!(aborted.summary.status, RunStatus::Aborted);
        assert_eq!(aborted.summary.counters, at_abort, "the work done is counted, nothing after");
        assert!(aborted.summary.counters.processed < 400);
        stop.send(true).unwrap();
        pool.await.unwrap();
    }

    async fn shutdown_stops_claiming_and_lets_runs_in_flight_finish(db) {
        let store = db.store.as_ref();
        let LongRun { f, run: long, set, policy_ids, stop, pool } = long_run_in_flight(db).await;
        stop.send(true).unwrap();
        let after_signal = queue_add_policies(store, &f, set, "after", policy_ids[..1].to_vec(), 3).await;
        pool.await.unwrap();
        let finished = detail(store, &f, long).await;
        assert_eq!(finished.summary.status, RunStatus::Completed, "the run in flight finished");
        assert_eq!(finished.summary.counters.processed, 400);
        let untouched = detail(store, &f, after_signal).await;
        assert_eq!((untouched.summary.status, untouched.attempt), (RunStatus::Pending, 0), "claimed after the signal");
    }
}

/// `/healthz` and `/readyz` as a load balancer sees them: public, and
/// `/readyz` honest about the database and the engine.
async fn readiness_tells_the_truth(backend: Backend) {
    use axum::http::StatusCode;
    use support::app::{probe, send_to, App};
    let app = App::new(backend, Default::default()).await;
    let answer = |router: axum::Router, path: &'static str| async move {
        let reply = send_to(&router, probe(path)).await;
        (reply.status, reply.body)
    };
    // A process that only serves: ready when the database is.
    assert_eq!(
        answer(app.router.clone(), "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        answer(app.router.clone(), "/readyz").await,
        (StatusCode::OK, "ready".into())
    );

    // With an engine: ready only while every worker is alive and rescue runs.
    let with_workers = EngineSettings {
        workers: 2,
        ..settings()
    };
    let health = engine::EngineHealth::new(&with_workers);
    let router = opshub::server::http::router(app.state.clone().with_engine_health(health.clone()));
    assert_eq!(
        answer(router.clone(), "/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: 0 of 2 workers alive".into()
        )
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pool = tokio::spawn(engine::run(
        app.db.store.clone(),
        with_workers,
        health.clone(),
        stopped,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while answer(router.clone(), "/readyz").await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "the engine never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(health.workers_alive(), 2);
    stop.send(true).unwrap();
    pool.await.unwrap();
    let (status, reason) = answer(router.clone(), "/readyz").await;
    assert_eq!(
        (status, reason.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: 0 of 2 workers alive"
        )
    );

    // A database that does not answer: not ready, though the process is up.
    app.db.store.close().await;
    assert_eq!(
        answer(app.router.clone(), "/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database: the database is unavailable".into()
        )
    );
    assert_eq!(
        answer(app.router.clone(), "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
}

on_both! { backend =>
    async fn readiness(backend) {
        readiness_tells_the_truth(backend).await;
    }
}
