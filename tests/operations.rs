//! Starting operations (`server::operations`), the code path of the server
//! functions and the CLI: validation, idempotency, audit and notification,
//! on both databases.

mod support;

use opshub::domain::*;
use opshub::server::operations::{self, AddPoliciesOptions, StartError, StartRequest};
use opshub::server::store::*;
use std::collections::HashSet;
use support::{fixture, two_syncs, Fixture};

fn drift(scope: &str) -> StartRequest {
    StartRequest::Drift {
        scope_key: scope.into(),
    }
}

async fn policies(store: &dyn Store, f: &Fixture, n: usize) -> (BackupSet, Vec<PolicyId>) {
    let set = store
        .create_backup_set(f.tenant.id, "Nightly")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let policy = store
            .create_policy(NewPolicy {
                tenant_id: f.tenant.id,
                external_id: format!("p{i}"),
                name: format!("Policy {i}"),
                policy_type: "compliance".into(),
                payload: serde_json::json!({ "level": i }),
            })
            .await
            .unwrap();
        ids.push(policy.id);
    }
    (set, ids)
}

fn add(set: &BackupSet, ids: Vec<PolicyId>) -> StartRequest {
    StartRequest::AddPolicies {
        backup_set_id: set.id,
        policy_ids: ids,
        options: AddPoliciesOptions::default(),
    }
}

/// Queued + running runs of the tenant.
async fn active_runs(store: &dyn Store, tenant: TenantId) -> i64 {
    let counts = store
        .count_runs_by_bucket(tenant, &RunFilter::default())
        .await
        .unwrap();
    counts.queued + counts.running
}

async fn finish(store: &dyn Store, tenant: TenantId, run: RunId) {
    store
        .transition_run(tenant, run, RunStatus::Running)
        .await
        .unwrap();
    store
        .transition_run(tenant, run, RunStatus::Completed)
        .await
        .unwrap();
}

on_both! { store =>
    async fn drift_compares_the_last_two_syncs_and_joins_while_active(store) {
        let f = fixture(store, "acme").await;
        let (baseline, current) = two_syncs(store, &f).await;
        let started = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap();
        assert!(!started.joined);
        let run = &started.run;
        assert_eq!(run.summary.operation, OperationKind::DriftGenerate);
        assert_eq!(run.summary.status, RunStatus::Pending);
        // dev-1 changed, dev-2 removed, dev-3 added: three subjects compared.
        assert_eq!(run.summary.counters.total, 3);
        // item_ids is the spec's object: what the run compares.
        assert_eq!(
            run.item_ids,
            serde_json::json!({ "scope_key": "devices", "baseline_run_id": baseline, "current_run_id": current })
        );
        assert!(run.summary.idempotency_key.as_deref().unwrap().starts_with("drift.generate:"));

        let audit = store.audit_entry(f.tenant.id, run.audit_log_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(audit.action, "run.start");
        assert_eq!(audit.user_id, Some(f.user.id));
        let feed = store.list_notifications(f.tenant.id, f.user.id, &NotificationFilter::default(), PageRequest::first(10)).await.unwrap();
        assert_eq!(feed.items.len(), 1);
        assert_eq!(feed.items[0].kind, NotificationKind::RunQueued);
        assert_eq!(feed.items[0].notice.link, format!("/t/acme/operations/{}", run.summary.id));

        let again = operations::start(store, &f.tenant, &f.user, &drift(" devices ")).await.unwrap();
        assert!(again.joined);
        assert_eq!(again.run.summary.id, run.summary.id);
        // The join is audited on the run joined; no second "queued" notice.
        let actions: Vec<String> = store.list_audit(f.tenant.id, 10).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, vec!["run.join", "run.start"]);
        assert_eq!(again.run.audit_log_id, run.audit_log_id);
        assert_eq!(store.unread_count(f.tenant.id, f.user.id).await.unwrap(), 1);

        finish(store, f.tenant.id, run.summary.id).await;
        let fresh = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap();
        assert!(!fresh.joined);
    }

    async fn imported_inventory_feeds_drift(store) {
        use opshub::server::inventory::{import, ImportError};
        let f = fixture(store, "acme").await;
        let before = r#"[{"subject_type":"app","external_id":"a1","display_name":"A1","payload":{"v":1}}]"#;
        let after = r#"[{"subject_type":"app","external_id":"a1","display_name":"A1","payload":{"v":2}},
                        {"subject_type":"app","external_id":"a2","display_name":"A2","payload":{}}]"#;
        import(store, &f.tenant, "apps", before).await.unwrap();
        // A malformed file is refused whole: no sync is recorded.
        let err = import(store, &f.tenant, "apps", "[{\"subject_type\": 1}]").await.unwrap_err();
        assert!(matches!(&err, ImportError::Invalid(m) if m.starts_with("line 1")), "{err}");
        assert_eq!(store.completed_syncs(f.tenant.id, "apps", 5).await.unwrap().len(), 1);
        let sync = import(store, &f.tenant, "apps", after).await.unwrap();
        assert_eq!(sync.item_count, 2);
        let started = operations::start(store, &f.tenant, &f.user, &drift("apps")).await.unwrap();
        assert_eq!(started.run.summary.counters.total, 2, "app:a1 and app:a2 compared");
        assert_eq!(started.run.item_ids["current_run_id"], serde_json::json!(sync.id));
    }

    async fn bad_requests_are_refused_and_write_nothing(store) {
        let f = fixture(store, "acme").await;
        let g = fixture(store, "globex").await;
        let (set, ids) = policies(store, &f, 2).await;
        let (foreign_set, foreign_ids) = policies(store, &g, 1).await;
        store
            .record_inventory_sync(NewInventorySync {
                tenant_id: f.tenant.id,
                selection_hash: "one-sync".into(),
                finished_at: Timestamp::now(),
                items: vec![],
            })
            .await
            .unwrap();
        let db_before = (store.list_audit(f.tenant.id, 100).await.unwrap().len(), active_runs(store, f.tenant.id).await);
        let cases = [
            (drift("one-sync"), "drift needs two"),
            (drift("never-synced"), "drift needs two"),
            (drift("  "), "scope key"),
            (add(&foreign_set, ids.clone()), "no backup set"),
            (add(&set, vec![ids[0], foreign_ids[0]]), "no such policy"),
            (add(&set, vec![]), "choose 1"),
        ];
        for (request, expected) in cases {
            let err = operations::start(store, &f.tenant, &f.user, &request).await.unwrap_err();
            assert!(matches!(&err, StartError::Invalid(m) if m.contains(expected)), "{request:?}: {err}");
        }
        let db_after = (store.list_audit(f.tenant.id, 100).await.unwrap().len(), active_runs(store, f.tenant.id).await);
        assert_eq!(db_after, db_before);
        assert_eq!(store.unread_count(f.tenant.id, f.user.id).await.unwrap(), 0);
    }

    async fn policy_order_does_not_change_the_key(store) {
        let f = fixture(store, "acme").await;
        let (set, ids) = policies(store, &f, 3).await;
        let first = operations::start(store, &f.tenant, &f.user, &add(&set, vec![ids[0], ids[1]])).await.unwrap();
        let swapped = operations::start(store, &f.tenant, &f.user, &add(&set, vec![ids[1], ids[0], ids[1]])).await.unwrap();
        assert!(swapped.joined);
        assert_eq!(swapped.run.summary.id, first.run.summary.id);
        assert_eq!(first.run.summary.counters.total, 2, "duplicates are dropped");
        let other = operations::start(store, &f.tenant, &f.user, &add(&set, vec![ids[0], ids[2]])).await.unwrap();
        assert!(!other.joined);
        let mut sorted = vec![ids[0], ids[1]];
        sorted.sort();
        assert_eq!(
            first.run.item_ids,
            serde_json::json!({ "backup_set_id": set.id, "policy_ids": sorted, "options": { "include_payload": false } })
        );
    }

    async fn a_start_that_differs_in_any_input_never_joins(store) {
        let f = fixture(store, "acme").await;
        let (set, ids) = policies(store, &f, 2).await;
        let plain = operations::start(store, &f.tenant, &f.user, &add(&set, ids.clone())).await.unwrap();
        let with_payload = StartRequest::AddPolicies {
            backup_set_id: set.id,
            policy_ids: ids,
            options: AddPoliciesOptions { include_payload: true },
        };
        let full = operations::start(store, &f.tenant, &f.user, &with_payload).await.unwrap();
        assert!(!full.joined, "include_payload changes what the run does");
        assert_ne!(full.run.summary.idempotency_key, plain.run.summary.idempotency_key);
        assert_eq!(full.run.item_ids["options"]["include_payload"], true);
        assert_eq!(plain.run.item_ids["options"]["include_payload"], false);

        let (_, current) = two_syncs(store, &f).await;
        let first = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap();
        let newer = store
            .record_inventory_sync(NewInventorySync {
                tenant_id: f.tenant.id,
                selection_hash: "devices".into(),
                finished_at: Timestamp::now().plus_millis(1_000),
                items: vec![],
            })
            .await
            .unwrap();
        let second = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap();
        assert!(!second.joined, "a newer sync is another comparison");
        assert_ne!(second.run.summary.id, first.run.summary.id);
        assert_eq!(second.run.item_ids["baseline_run_id"], serde_json::json!(current));
        assert_eq!(second.run.item_ids["current_run_id"], serde_json::json!(newer.id));
        // Both keep their own active run; the same inputs still join.
        assert_eq!(active_runs(store, f.tenant.id).await, 4);
        let again = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap();
        assert!(again.joined);
        assert_eq!(again.run.summary.id, second.run.summary.id);
    }

    async fn concurrent_starts_make_exactly_one_run_per_round(store) {
        const CALLERS: usize = 64;
        const ROUNDS: usize = 200;
        let f = fixture(store, "acme").await;
        two_syncs(store, &f).await;
        let mut seen = HashSet::new();
        for round in 0..ROUNDS {
            let request = drift("devices");
            let starts = (0..CALLERS).map(|_| operations::start(store, &f.tenant, &f.user, &request));
            let results = futures::future::join_all(starts).await;
            let ids: HashSet<RunId> = results
                .iter()
                .map(|r| r.as_ref().unwrap_or_else(|e| panic!("round {round}: {e}")).run.summary.id)
                .collect();
            assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
            assert_eq!(results.iter().filter(|r| !r.as_ref().unwrap().joined).count(), 1, "round {round}");
            let id = *ids.iter().next().unwrap();
            assert!(seen.insert(id), "round {round} reused an old run");
            finish(store, f.tenant.id, id).await;
        }
        assert_eq!(store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap().succeeded, ROUNDS as i64);
    }

    async fn a_start_racing_completion_never_leaves_two_active_runs(store) {
        let f = fixture(store, "acme").await;
        two_syncs(store, &f).await;
        for round in 0..100 {
            let active = operations::start(store, &f.tenant, &f.user, &drift("devices")).await.unwrap().run.summary.id;
            store.transition_run(f.tenant.id, active, RunStatus::Running).await.unwrap();
            let complete = store.transition_run(f.tenant.id, active, RunStatus::Completed);
            let request = drift("devices");
            let start = operations::start(store, &f.tenant, &f.user, &request);
            let (completed, started) = futures::join!(complete, start);
            completed.unwrap();
            let started = started.unwrap_or_else(|e| panic!("round {round}: {e}"));
            // Either it joined the run just before it completed, or it started anew.
            assert_eq!(started.joined, started.run.summary.id == active, "round {round}");
            assert!(active_runs(store, f.tenant.id).await <= 1, "round {round}");
            if started.joined {
                continue;
            }
            finish(store, f.tenant.id, started.run.summary.id).await;
        }
        assert_eq!(active_runs(store, f.tenant.id).await, 0);
    }
}
