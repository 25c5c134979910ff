//! One conformance suite, run against SQLite and PostgreSQL: every store
//! method behaves the same on both.

mod support;

use opshub::domain::*;
use opshub::server::store::*;
use std::collections::HashSet;
use support::{devices_scope, fixture, new_run};

on_both! { store =>
    async fn duplicate_active_key_joins_and_terminal_key_starts_anew(store) {
        let f = fixture(store, "acme").await;
        let first = store.start_run(new_run(&f, "k1")).await.unwrap();
        assert!(!first.joined);
        assert_eq!(first.run.summary.status, RunStatus::Pending);
        assert_eq!(first.run.summary.counters.total, 3);
        assert_eq!(first.run.item_ids, devices_scope().to_value());

        let second = store.start_run(new_run(&f, "k1")).await.unwrap();
        assert!(second.joined);
        assert_eq!(second.run.summary.id, first.run.summary.id);

        // Another key, or the same key in another tenant, is another run.
        let other_key = store.start_run(new_run(&f, "k2")).await.unwrap();
        assert!(!other_key.joined);
        let g = fixture(store, "globex").await;
        let other_tenant = store.start_run(new_run(&g, "k1")).await.unwrap();
        assert!(!other_tenant.joined);

        // Still active while running.
        let id = first.run.summary.id;
        store.transition_run(f.tenant.id, id, RunStatus::Running).await.unwrap();
        assert!(store.start_run(new_run(&f, "k1")).await.unwrap().joined);

        store.transition_run(f.tenant.id, id, RunStatus::Completed).await.unwrap();
        let third = store.start_run(new_run(&f, "k1")).await.unwrap();
        assert!(!third.joined);
        assert_ne!(third.run.summary.id, id);
    }

    async fn concurrent_starts_of_one_key_make_one_run(store) {
        let f = fixture(store, "acme").await;
        let starts = (0..16).map(|_| store.start_run(new_run(&f, "same")));
        let results = futures::future::join_all(starts).await;
        let ids: HashSet<RunId> = results.iter().map(|r| r.as_ref().unwrap().run.summary.id).collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(results.iter().filter(|r| !r.as_ref().unwrap().joined).count(), 1);
    }

    async fn transitions_follow_the_lifecycle(store) {
        let f = fixture(store, "acme").await;
        let id = store.start_run(new_run(&f, "k")).await.unwrap().run.summary.id;

        let err = store.transition_run(f.tenant.id, id, RunStatus::Completed).await.unwrap_err();
        assert!(matches!(err, StoreError::IllegalTransition { from: RunStatus::Pending, to: RunStatus::Completed }), "{err:?}");
        let err = store.transition_run(f.tenant.id, id, RunStatus::Pending).await.unwrap_err();
        assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err:?}");

        let running = store.transition_run(f.tenant.id, id, RunStatus::Running).await.unwrap();
        assert_eq!(running.summary.status, RunStatus::Running);
        assert!(running.summary.started_at.is_some());
        assert!(running.summary.finished_at.is_none());

        let done = store.transition_run(f.tenant.id, id, RunStatus::CompletedWithErrors).await.unwrap();
        assert_eq!(done.summary.status, RunStatus::CompletedWithErrors);
        assert!(done.summary.finished_at.is_some());

        for next in RunStatus::ALL {
            let err = store.transition_run(f.tenant.id, id, next).await.unwrap_err();
            assert!(matches!(err, StoreError::IllegalTransition { .. }), "{next}: {err:?}");
        }
        let unchanged = store.run(f.tenant.id, id).await.unwrap().unwrap();
        assert_eq!(unchanged.summary.status, RunStatus::CompletedWithErrors);

        // A pending run can be aborted before any worker claims it.
        let pending = store.start_run(new_run(&f, "k2")).await.unwrap().run.summary.id;
        let aborted = store.transition_run(f.tenant.id, pending, RunStatus::Aborted).await.unwrap();
        assert_eq!(aborted.summary.bucket(), StatusBucket::Failed);

        let missing = RunId(uuid::Uuid::now_v7());
        let err = store.transition_run(f.tenant.id, missing, RunStatus::Running).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
    }

    async fn another_tenants_run_is_not_found(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let run = store.start_run(new_run(&a, "k")).await.unwrap().run.summary.id;

        assert!(store.run(b.tenant.id, run).await.unwrap().is_none());
        let err = store.transition_run(b.tenant.id, run, RunStatus::Running).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        let page = store.list_runs(b.tenant.id, &RunFilter::default(), PageRequest::first(50)).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(store.count_runs_by_bucket(b.tenant.id, &RunFilter::default()).await.unwrap().total(), 0);
        // And the run is untouched.
        let still = store.run(a.tenant.id, run).await.unwrap().unwrap();
        assert_eq!(still.summary.status, RunStatus::Pending);
    }

    async fn keyset_pages_neither_skip_nor_repeat_while_runs_arrive(store) {
        let f = fixture(store, "acme").await;
        let mut originals = Vec::new();
        for n in 0..30 {
            originals.push(store.start_run(new_run(&f, &format!("k{n}"))).await.unwrap().run.summary.id);
        }
        let mut seen = Vec::new();
        let mut page = store.list_runs(f.tenant.id, &RunFilter::default(), PageRequest::first(7)).await.unwrap();
        assert!(page.newer.is_none());
        let mut pages = 0;
        loop {
            pages += 1;
            seen.extend(page.items.iter().map(|r| r.id));
            // New runs arrive between page loads.
            store.start_run(new_run(&f, &format!("late{pages}"))).await.unwrap();
            let Some(cursor) = page.older else { break };
            page = store
                .list_runs(f.tenant.id, &RunFilter::default(), PageRequest::older_than(cursor, 7))
                .await
                .unwrap();
            assert!(page.newer.is_some());
        }
        assert_eq!(pages, 5);
        let expected: Vec<RunId> = originals.iter().rev().copied().collect();
        assert_eq!(seen, expected, "newest first, each run exactly once");

        // Paging back towards newer rows returns the same pages.
        let first = store.list_runs(f.tenant.id, &RunFilter::default(), PageRequest::first(7)).await.unwrap();
        let second = store
            .list_runs(f.tenant.id, &RunFilter::default(), PageRequest::older_than(first.older.unwrap(), 7))
            .await
            .unwrap();
        let third = store
            .list_runs(f.tenant.id, &RunFilter::default(), PageRequest::older_than(second.older.unwrap(), 7))
            .await
            .unwrap();
        let back = store
            .list_runs(f.tenant.id, &RunFilter::default(), PageRequest::newer_than(third.newer.unwrap(), 7))
            .await
            .unwrap();
        assert_eq!(back.items, second.items);
        assert!(back.older.is_some());
    }

    /// The hub's search: a run id prefix or an idempotency key prefix, in
    /// byte order on both databases (any Unicode; `%` and `_` are no
    /// wildcards), counted the same way as listed.
    async fn search_by_run_id_or_key_prefix(store) {
        let f = fixture(store, "acme").await;
        let mut ids = Vec::new();
        for key in ["zürich-1", "zürich-2", "zürichx", "zz", "50%_off", "500", "Zürich-3"] {
            ids.push(store.start_run(new_run(&f, key)).await.unwrap().run.summary.id);
        }
        let found = |text: &'static str| {
            let filter = RunFilter { search: Some(RunSearch::parse(text)), ..RunFilter::default() };
            async move {
                let page = store.list_runs(f.tenant.id, &filter, PageRequest::first(50)).await.unwrap();
                let counted = store.count_runs_by_bucket(f.tenant.id, &filter).await.unwrap();
                assert_eq!(counted.queued as usize, page.items.len(), "{text}: counted as listed");
                let mut keys: Vec<String> = page.items.into_iter().map(|r| r.idempotency_key.unwrap()).collect();
                keys.sort();
                keys
            }
        };
        assert_eq!(found("zürich-").await, vec!["zürich-1", "zürich-2"]);
        assert_eq!(found("zürich").await, vec!["zürich-1", "zürich-2", "zürichx"]);
        assert_eq!(found("z").await, vec!["zz", "zürich-1", "zürich-2", "zürichx"]);
        assert_eq!(found("50%").await, vec!["50%_off"], "% is no wildcard");
        assert_eq!(found("5_").await, Vec::<String>::new(), "_ is no wildcard");
        assert_eq!(found("Zürich").await, vec!["Zürich-3"], "case counts");
        assert!(found("nothing").await.is_empty());

        // An id prefix, with or without its hyphens, and a whole id.
        let target = ids[3];
        let text = target.to_string();
        let by_id = |text: String| {
            let filter = RunFilter { search: Some(RunSearch::parse(&text)), ..RunFilter::default() };
            async move {
                store.list_runs(f.tenant.id, &filter, PageRequest::first(50)).await.unwrap().items.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(by_id(text.clone()).await, vec![target]);
        assert_eq!(by_id(text.to_uppercase()).await, vec![target]);
        // UUIDv7 ids made in a row share their first digits: a prefix finds
        // every run whose id starts so, and no other.
        let prefix: String = text.chars().take(28).collect();
        let expected: Vec<RunId> = ids.iter().rev().copied().filter(|id| id.to_string().starts_with(&prefix)).collect();
        assert!(expected.contains(&target));
        assert_eq!(by_id(prefix).await, expected);
        // Another tenant's runs are never found.
        let g = fixture(store, "globex").await;
        let filter = RunFilter { search: Some(RunSearch::parse("z")), ..RunFilter::default() };
        assert!(store.list_runs(g.tenant.id, &filter, PageRequest::first(50)).await.unwrap().items.is_empty());
    }

    async fn filters_and_bucket_counts(store) {
        let f = fixture(store, "acme").await;
        let other = store
            .create_user(NewUser { email: "Second@Acme.test".into(), display_name: "Second".into(), password_hash: None })
            .await
            .unwrap();
        assert_eq!(other.email, "second@acme.test");
        let mut ids = Vec::new();
        for n in 0..6 {
            let mut run = new_run(&f, &format!("k{n}"));
            if n % 2 == 1 {
                run.operation = OperationKind::BackupSetAddPolicies;
                run.user_id = other.id;
            }
            ids.push(store.start_run(run).await.unwrap().run.summary.id);
        }
        let t = f.tenant.id;
        store.transition_run(t, ids[0], RunStatus::Running).await.unwrap();
        store.transition_run(t, ids[1], RunStatus::Running).await.unwrap();
        store.transition_run(t, ids[1], RunStatus::Completed).await.unwrap();
        store.transition_run(t, ids[2], RunStatus::Running).await.unwrap();
        store.transition_run(t, ids[2], RunStatus::CompletedWithErrors).await.unwrap();
        store.transition_run(t, ids[3], RunStatus::Aborted).await.unwrap();
        store.transition_run(t, ids[4], RunStatus::Running).await.unwrap();
        store.transition_run(t, ids[4], RunStatus::Failed).await.unwrap();

        let counts = store.count_runs_by_bucket(t, &RunFilter::default()).await.unwrap();
        assert_eq!(counts, BucketCounts { queued: 1, running: 1, succeeded: 1, partially_succeeded: 1, failed: 2 });

        let list = |filter: RunFilter| async move {
            store.list_runs(t, &filter, PageRequest::first(50)).await.unwrap().items.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(list(RunFilter { bucket: Some(StatusBucket::Failed), ..Default::default() }).await, vec![ids[4], ids[3]]);
        assert_eq!(list(RunFilter { operation: Some(OperationKind::BackupSetAddPolicies), ..Default::default() }).await, vec![ids[5], ids[3], ids[1]]);
        assert_eq!(list(RunFilter { initiator: Some(other.id), bucket: Some(StatusBucket::Queued), ..Default::default() }).await, vec![ids[5]]);
        let by_op = store
            .count_runs_by_bucket(t, &RunFilter { operation: Some(OperationKind::DriftGenerate), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(by_op.total(), 3);

        let all = store.list_runs(t, &RunFilter::default(), PageRequest::first(50)).await.unwrap().items;
        let third_newest = all[2].created_at;
        let recent = list(RunFilter { created_from: Some(third_newest), ..Default::default() }).await;
        assert_eq!(recent, vec![ids[5], ids[4], ids[3]]);
        let older = list(RunFilter { created_before: Some(third_newest), ..Default::default() }).await;
        assert_eq!(older, vec![ids[2], ids[1], ids[0]]);
        assert_eq!(all[0].initiator_name, "Second");
    }

    async fn bucket_counts_stay_exact_when_old_runs_end_after_being_counted(store) {
        let f = fixture(store, "acme").await;
        let hours_ago = |h: i64| Timestamp(Timestamp::now().0 - h * 3_600_000_000);
        let record = |key: &str, status: RunStatus, created: Timestamp| RunRecord {
            id: RunId(uuid::Uuid::now_v7()),
            tenant_id: f.tenant.id,
            user_id: f.user.id,
            operation: OperationKind::DriftGenerate,
            idempotency_key: Some(key.into()),
            status,
            counters: Counters {
                total: 1,
                processed: i64::from(status.is_terminal()),
                succeeded: i64::from(status == RunStatus::Completed),
                failed: i64::from(status == RunStatus::Failed),
                skipped: 0,
            },
            item_ids: devices_scope(),
            work_items: vec!["a".into()],
            failures: vec![],
            attempt: i64::from(status != RunStatus::Pending),
            created_at: created,
            started_at: (status != RunStatus::Pending).then_some(created),
            finished_at: status.is_terminal().then_some(created.plus_millis(1_000)),
        };
        let stale = record("stale", RunStatus::Pending, hours_ago(72));
        store
            .insert_run_records(&[
                record("a", RunStatus::Completed, hours_ago(72)),
                record("b", RunStatus::Completed, hours_ago(48)),
                record("c", RunStatus::Failed, hours_ago(30)),
                record("d", RunStatus::Running, hours_ago(3)),
                stale.clone(),
            ])
            .await
            .unwrap();
        let counts = || async { store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap() };
        let first = counts().await;
        assert_eq!(
            (first.succeeded, first.failed, first.running, first.queued),
            (2, 1, 1, 1),
            "{first:?}"
        );
        // An old run ends after its tenant's history was counted (and
        // remembered); a new run arrives. Both show at once.
        store.transition_run(f.tenant.id, stale.id, RunStatus::Running).await.unwrap();
        store.transition_run(f.tenant.id, stale.id, RunStatus::Completed).await.unwrap();
        store.start_run(new_run(&f, "new")).await.unwrap();
        let second = counts().await;
        assert_eq!(
            (second.succeeded, second.failed, second.running, second.queued),
            (3, 1, 1, 1),
            "{second:?}"
        );
        let drift_only = store
            .count_runs_by_bucket(f.tenant.id, &RunFilter { operation: Some(OperationKind::DriftGenerate), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(drift_only, second, "every run here is a drift run");
        let other = store
            .count_runs_by_bucket(f.tenant.id, &RunFilter { operation: Some(OperationKind::BackupSetAddPolicies), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(other.total(), 0);
    }

    async fn constraint_violations_are_domain_errors(store) {
        let f = fixture(store, "acme").await;
        let err = store.create_tenant(&TenantSlug::parse("acme").unwrap(), "Again").await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { what: "tenant slug" }), "{err:?}");
        let err = store
            .create_user(NewUser { email: "OP@acme.test".into(), display_name: "Dup".into(), password_hash: None })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { what: "user email" }), "{err:?}");
        let err = store
            .set_membership(f.tenant.id, UserId(uuid::Uuid::now_v7()), Role::Viewer, MembershipAudit::Unaudited)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingReference), "{err:?}");

        // Counters that do not add up are refused by the database itself.
        let bad = RunRecord {
            id: RunId(uuid::Uuid::now_v7()),
            tenant_id: f.tenant.id,
            user_id: f.user.id,
            operation: OperationKind::DriftGenerate,
            idempotency_key: Some("bad".into()),
            status: RunStatus::Completed,
            counters: Counters { total: 3, processed: 3, succeeded: 1, failed: 0, skipped: 0 },
            item_ids: devices_scope(),
            work_items: vec![],
            failures: vec![],
            attempt: 1,
            created_at: Timestamp::now(),
            started_at: Some(Timestamp::now()),
            finished_at: Some(Timestamp::now()),
        };
        let err = store.insert_run_records(std::slice::from_ref(&bad)).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        // A terminal run without a finish time breaks the lifecycle rule.
        let err = store
            .insert_run_records(&[RunRecord {
                counters: Counters { total: 3, processed: 3, succeeded: 3, failed: 0, skipped: 0 },
                finished_at: None,
                ..bad.clone()
            }])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

        for err in [
            StoreError::Duplicate { what: "tenant slug" },
            StoreError::Invalid("a value breaks a rule of the data model".into()),
        ] {
            let text = err.to_string().to_lowercase();
            for leak in ["insert", "select", "constraint failed", "violates", "sqlite", "postgres"] {
                assert!(!text.contains(leak), "{text:?} leaks {leak:?}");
            }
        }
        // Nothing was written by the refused inserts.
        assert!(store.list_runs(f.tenant.id, &RunFilter::default(), PageRequest::first(10)).await.unwrap().items.is_empty());
        assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    }

    async fn tenants_users_and_memberships(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "beta").await;
        store.set_membership(b.tenant.id, a.user.id, Role::Viewer, MembershipAudit::Unaudited).await.unwrap();
        store.set_membership(b.tenant.id, a.user.id, Role::Admin, MembershipAudit::Unaudited).await.unwrap();
        let memberships = store.memberships(a.user.id).await.unwrap();
        let pairs: Vec<(String, Role)> = memberships.into_iter().map(|m| (m.tenant.slug, m.role)).collect();
        assert_eq!(pairs, vec![("acme".into(), Role::Operator), ("beta".into(), Role::Admin)]);
        assert_eq!(store.tenant_by_slug("beta").await.unwrap().unwrap().id, b.tenant.id);
        assert!(store.tenant_by_slug("nope").await.unwrap().is_none());
        let names: Vec<String> = store.list_tenants().await.unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["Tenant acme", "Tenant beta"]);
        assert!(!store.is_empty().await.unwrap());
    }

    async fn findings_upsert_by_fingerprint_list_and_acknowledge(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let (baseline, current) = support::two_syncs(store, &a).await;
        let finding = |fingerprint: &str, subject_type: &str| NewFinding {
            tenant_id: a.tenant.id,
            finding_type: FindingType::Drift,
            change_kind: ChangeKind::Changed,
            scope_key: "devices".into(),
            baseline_run_id: baseline,
            current_run_id: current,
            produced_by_run_id: None,
            fingerprint: fingerprint.into(),
            subject_type: subject_type.into(),
            subject_external_id: "dev-1".into(),
            evidence: serde_json::json!({ "field": "os_version", "before": "1", "after": "2" }),
        };
        let first = store.upsert_finding(finding("fp-1", "device")).await.unwrap();
        assert!(first.inserted);
        let again = store.upsert_finding(finding("fp-1", "device")).await.unwrap();
        assert!(!again.inserted);
        assert_eq!(again.value.id, first.value.id);
        store.upsert_finding(finding("fp-2", "app")).await.unwrap();

        let all = store.list_findings(a.tenant.id, &FindingFilter::default(), PageRequest::first(10)).await.unwrap();
        assert_eq!(all.items.len(), 2);
        let apps = store
            .list_findings(a.tenant.id, &FindingFilter { subject_type: Some("app".into()), ..Default::default() }, PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(apps.items.len(), 1);

        // Another tenant can neither see nor acknowledge them.
        assert!(store.finding(b.tenant.id, first.value.id).await.unwrap().is_none());
        assert_eq!(store.acknowledge_findings(b.tenant.id, &[first.value.id], b.user.id).await.unwrap(), 0);
        assert_eq!(store.acknowledge_findings(a.tenant.id, &[first.value.id], a.user.id).await.unwrap(), 1);
        assert_eq!(store.acknowledge_findings(a.tenant.id, &[first.value.id], a.user.id).await.unwrap(), 0);
        let acked = store.finding(a.tenant.id, first.value.id).await.unwrap().unwrap();
        assert_eq!(acked.status, FindingStatus::Acknowledged);
        assert_eq!(acked.acknowledged_by, Some(a.user.id));
        let new_only = store
            .list_findings(a.tenant.id, &FindingFilter { status: Some(FindingStatus::New), ..Default::default() }, PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(new_only.items.len(), 1);

        // A finding must point at the tenant's own syncs.
        let mut foreign = finding("fp-3", "device");
        foreign.tenant_id = b.tenant.id;
        let err = store.upsert_finding(foreign).await.unwrap_err();
        assert!(matches!(err, StoreError::MissingReference), "{err:?}");
    }

    async fn inventory_syncs_and_items(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let (baseline, current) = support::two_syncs(store, &a).await;
        let syncs = store.completed_syncs(a.tenant.id, "devices", 5).await.unwrap();
        assert_eq!(syncs.iter().map(|s| s.id).collect::<Vec<_>>(), vec![current, baseline]);
        assert_eq!(syncs[0].item_count, 2);
        // In no order; each payload as the JSON text of what was recorded.
        let mut items = store.inventory_items(a.tenant.id, current).await.unwrap();
        items.sort_by(|x, y| x.external_id.cmp(&y.external_id));
        assert_eq!(items.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>(), vec!["dev-1", "dev-3"]);
        let payload: serde_json::Value = serde_json::from_str(items[0].payload.get()).unwrap();
        assert_eq!(payload["os"], "11");
        let scopes = store.inventory_scopes(a.tenant.id).await.unwrap();
        assert_eq!(scopes, vec![InventoryScope { selection_hash: "devices".into(), completed_syncs: 2 }]);
        assert!(store.inventory_items(b.tenant.id, current).await.unwrap().is_empty());
        // A drift's subjects: those of either sync, each once, never another tenant's.
        let mut subjects = store.inventory_subjects(a.tenant.id, [baseline, current]).await.unwrap();
        subjects.sort();
        let pair = |id: &str| ("device".to_string(), id.to_string());
        assert_eq!(subjects, vec![pair("dev-1"), pair("dev-2"), pair("dev-3")]);
        assert!(store.inventory_subjects(b.tenant.id, [baseline, current]).await.unwrap().is_empty());
        // Names by a drift run's subject keys, from either sync, never another tenant's.
        let keys = ["device:dev-3".to_string(), "device:dev-2".to_string(), "device:none".to_string()];
        let mut names = store.inventory_item_names(a.tenant.id, [current, baseline], &keys).await.unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![("device:dev-2".to_string(), "DEV-2".to_string()), ("device:dev-3".to_string(), "DEV-3".to_string())]
        );
        assert!(store.inventory_item_names(b.tenant.id, [current, baseline], &keys).await.unwrap().is_empty());
        assert!(store.completed_syncs(b.tenant.id, "devices", 5).await.unwrap().is_empty());

        // A duplicate item within one sync is refused whole: no sync is recorded.
        let item = NewInventoryItem { subject_type: "device".into(), external_id: "x".into(), display_name: "X".into(), payload: serde_json::json!({}) };
        let err = store
            .record_inventory_sync(NewInventorySync {
                tenant_id: a.tenant.id,
                selection_hash: "dups".into(),
                finished_at: Timestamp::now(),
                items: vec![item.clone(), item],
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { what: "inventory item" }), "{err:?}");
        assert!(store.completed_syncs(a.tenant.id, "dups", 5).await.unwrap().is_empty());
    }

    async fn backup_sets_and_policies(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let policy = |f: &support::Fixture, ext: &str| NewPolicy {
            tenant_id: f.tenant.id,
            external_id: ext.into(),
            name: format!("Policy {ext}"),
            policy_type: "compliance".into(),
            payload: serde_json::json!({ "level": 1 }),
        };
        let p1 = store.create_policy(policy(&a, "p1")).await.unwrap();
        let p2 = store.create_policy(policy(&a, "p2")).await.unwrap();
        let foreign = store.create_policy(policy(&b, "p1")).await.unwrap();
        let err = store.create_policy(policy(&a, "p1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { what: "policy" }), "{err:?}");
        assert_eq!(store.list_policies(a.tenant.id).await.unwrap().len(), 2);
        let found = store.policies_by_ids(a.tenant.id, &[p2.id, foreign.id, p1.id]).await.unwrap();
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), vec![p1.id, p2.id]);

        let set = store.create_backup_set(a.tenant.id, "Nightly").await.unwrap();
        assert_eq!(set.item_count, 0);
        let err = store.create_backup_set(a.tenant.id, "Nightly").await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { what: "backup set name" }), "{err:?}");
        let add = |policy: PolicyId| NewBackupSetItem {
            tenant_id: a.tenant.id,
            backup_set_id: set.id,
            policy_id: policy,
            snapshot: serde_json::json!({ "level": 1 }),
            added_by_run_id: None,
        };
        let AddOutcome::Added(added) = store.add_to_backup_set(add(p1.id)).await.unwrap() else {
            panic!("the first add adds");
        };
        let before = store.backup_set_items(a.tenant.id, set.id).await.unwrap();
        let again = NewBackupSetItem { snapshot: serde_json::json!({ "level": 2 }), ..add(p1.id) };
        assert_eq!(store.add_to_backup_set(again).await.unwrap(), AddOutcome::AlreadyPresent);
        // Present is left as it was: the same row, snapshot and time.
        let after = store.backup_set_items(a.tenant.id, set.id).await.unwrap();
        assert_eq!(after.iter().map(|i| (i.id, &i.snapshot, i.created_at)).collect::<Vec<_>>(),
                   before.iter().map(|i| (i.id, &i.snapshot, i.created_at)).collect::<Vec<_>>());
        assert_eq!(after[0].id, added);
        let err = store.add_to_backup_set(add(foreign.id)).await.unwrap_err();
        assert!(matches!(err, StoreError::MissingReference), "{err:?}");
        let items = store.backup_set_items(a.tenant.id, set.id).await.unwrap();
        assert_eq!(items.iter().map(|i| i.policy_id).collect::<Vec<_>>(), vec![p1.id]);
        assert_eq!(store.backup_set(a.tenant.id, set.id).await.unwrap().unwrap().item_count, 1);
        assert!(store.backup_set(b.tenant.id, set.id).await.unwrap().is_none());
        assert!(store.backup_set_items(b.tenant.id, set.id).await.unwrap().is_empty());
        assert_eq!(store.list_backup_sets(b.tenant.id).await.unwrap().len(), 0);
    }

    async fn notifications_per_user(store) {
        let a = fixture(store, "acme").await;
        let colleague = store
            .create_user(NewUser { email: "c@acme.test".into(), display_name: "C".into(), password_hash: None })
            .await
            .unwrap();
        let run = store.start_run(new_run(&a, "k")).await.unwrap().run.summary;
        let notice = RunNotice::queued((&a.tenant).into(), run.id, run.operation, run.counters.total);
        let mut created = Vec::new();
        for kind in [NotificationKind::RunQueued, NotificationKind::RunCompleted, NotificationKind::RunQueued] {
            created.push(
                store
                    .create_notification(NewNotification { tenant_id: a.tenant.id, user_id: a.user.id, kind, notice: notice.clone() })
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(created[0].notice, notice);
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 3);
        assert_eq!(store.unread_count(a.tenant.id, colleague.id).await.unwrap(), 0);
        let page = store.list_notifications(a.tenant.id, a.user.id, &NotificationFilter::default(), PageRequest::first(2)).await.unwrap();
        assert_eq!(page.items.iter().map(|n| n.id).collect::<Vec<_>>(), vec![created[2].id, created[1].id]);
        assert!(page.older.is_some());
        assert!(store.list_notifications(a.tenant.id, colleague.id, &NotificationFilter::default(), PageRequest::first(5)).await.unwrap().items.is_empty());

        let err = store.mark_read(a.tenant.id, colleague.id, created[0].id).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        store.mark_read(a.tenant.id, a.user.id, created[0].id).await.unwrap();
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 2);
        assert_eq!(store.mark_all_read(a.tenant.id, a.user.id, None).await.unwrap(), 2);
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 0);

        // The count stops at the cap (the bell says 99+); marking all read
        // still reaches every one.
        let beyond = UNREAD_COUNT_CAP as usize + 5;
        for _ in 0..beyond {
            store
                .create_notification(NewNotification { tenant_id: a.tenant.id, user_id: a.user.id, kind: NotificationKind::RunQueued, notice: notice.clone() })
                .await
                .unwrap();
        }
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), UNREAD_COUNT_CAP);
        assert_eq!(store.mark_all_read(a.tenant.id, a.user.id, None).await.unwrap(), beyond as u64);
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 0);
    }

    async fn the_feed_filters_by_kind_and_unread_and_marks_a_kind_read(store) {
        let a = fixture(store, "acme").await;
        let run = store.start_run(new_run(&a, "k")).await.unwrap().run.summary;
        let notice = RunNotice::queued((&a.tenant).into(), run.id, run.operation, run.counters.total);
        let mut created = Vec::new();
        for kind in [NotificationKind::RunQueued, NotificationKind::RunCompleted, NotificationKind::RunQueued, NotificationKind::RunCompleted] {
            created.push(
                store
                    .create_notification(NewNotification { tenant_id: a.tenant.id, user_id: a.user.id, kind, notice: notice.clone() })
                    .await
                    .unwrap()
                    .id,
            );
        }
        store.mark_read(a.tenant.id, a.user.id, created[3]).await.unwrap();
        let listed = |filter: NotificationFilter, limit: u32| async move {
            store
                .list_notifications(a.tenant.id, a.user.id, &filter, PageRequest::first(limit))
                .await
                .unwrap()
        };
        let ids = |page: Page<Notification>| page.items.iter().map(|n| n.id).collect::<Vec<_>>();
        let completed = NotificationFilter { kind: Some(NotificationKind::RunCompleted), unread_only: false };
        let unread = NotificationFilter { kind: None, unread_only: true };
        let unread_queued = NotificationFilter { kind: Some(NotificationKind::RunQueued), unread_only: true };
        assert_eq!(ids(listed(completed, 10).await), vec![created[3], created[1]]);
        assert_eq!(ids(listed(unread, 10).await), vec![created[2], created[1], created[0]]);
        // Pages of a filtered feed go on under the same filter.
        let first = listed(unread_queued, 1).await;
        assert_eq!(ids(first.clone()), vec![created[2]]);
        let older = PageRequest::older_than(first.older.unwrap(), 1);
        let next = store.list_notifications(a.tenant.id, a.user.id, &unread_queued, older).await.unwrap();
        assert_eq!(ids(next), vec![created[0]]);

        // Marking one kind read leaves the other kind unread.
        assert_eq!(store.mark_all_read(a.tenant.id, a.user.id, Some(NotificationKind::RunQueued)).await.unwrap(), 2);
        assert_eq!(ids(listed(unread, 10).await), vec![created[1]]);
        assert_eq!(store.mark_all_read(a.tenant.id, a.user.id, Some(NotificationKind::RunQueued)).await.unwrap(), 0);
        assert_eq!(store.mark_all_read(a.tenant.id, a.user.id, None).await.unwrap(), 1);
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 0);
    }

    async fn members_watch_runs_of_their_tenant_only(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let run = store.start_run(new_run(&a, "k")).await.unwrap().run.summary.id;
        let foreign = store.start_run(new_run(&b, "k")).await.unwrap().run.summary.id;
        assert!(!store.is_watching(a.tenant.id, run, a.user.id).await.unwrap());
        // Watching twice is watching; unwatching twice is not watching.
        store.watch_run(a.tenant.id, run, a.user.id).await.unwrap();
        store.watch_run(a.tenant.id, run, a.user.id).await.unwrap();
        assert!(store.is_watching(a.tenant.id, run, a.user.id).await.unwrap());
        store.unwatch_run(a.tenant.id, run, a.user.id).await.unwrap();
        store.unwatch_run(a.tenant.id, run, a.user.id).await.unwrap();
        assert!(!store.is_watching(a.tenant.id, run, a.user.id).await.unwrap());
        // Another tenant's run is as missing as one that never was.
        for missing in [foreign, RunId(uuid::Uuid::now_v7())] {
            let err = store.watch_run(a.tenant.id, missing, a.user.id).await.unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{err:?}");
            let err = store.unwatch_run(a.tenant.id, missing, a.user.id).await.unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{err:?}");
        }
        assert!(!store.is_watching(b.tenant.id, foreign, a.user.id).await.unwrap());
        // Only a member of the run's tenant can be a watcher.
        let err = store.watch_run(b.tenant.id, foreign, a.user.id).await.unwrap_err();
        assert!(matches!(err, StoreError::MissingReference), "{err:?}");

        // Subscriptions: on once however often set, per tenant.
        assert!(store.subscriptions(a.tenant.id, a.user.id).await.unwrap().is_empty());
        for _ in 0..2 {
            store.set_subscription(a.tenant.id, a.user.id, Subscription::FailedOrPartial, true).await.unwrap();
        }
        assert_eq!(store.subscriptions(a.tenant.id, a.user.id).await.unwrap(), vec![Subscription::FailedOrPartial]);
        assert!(store.subscriptions(b.tenant.id, a.user.id).await.unwrap().is_empty());
        store.set_subscription(a.tenant.id, a.user.id, Subscription::FailedOrPartial, false).await.unwrap();
        assert!(store.subscriptions(a.tenant.id, a.user.id).await.unwrap().is_empty());

        // Both go with the membership.
        store.watch_run(a.tenant.id, run, a.user.id).await.unwrap();
        store.set_subscription(a.tenant.id, a.user.id, Subscription::FailedOrPartial, true).await.unwrap();
        let admin = store
            .create_user(NewUser { email: "admin@acme.test".into(), display_name: "Admin".into(), password_hash: None })
            .await
            .unwrap();
        store.set_membership(a.tenant.id, admin.id, Role::Admin, MembershipAudit::Unaudited).await.unwrap();
        store.remove_membership(a.tenant.id, a.user.id, MembershipAudit::Unaudited).await.unwrap();
        assert!(!store.is_watching(a.tenant.id, run, a.user.id).await.unwrap());
        assert!(store.subscriptions(a.tenant.id, a.user.id).await.unwrap().is_empty());
    }

    async fn audit_log(store) {
        let a = fixture(store, "acme").await;
        let b = fixture(store, "globex").await;
        let entry = store
            .record_audit(NewAuditEntry {
                tenant_id: a.tenant.id,
                user_id: Some(a.user.id),
                action: "run.start".into(),
                resource: "bulk_operation_run".into(),
                resource_id: Some("r1".into()),
                metadata: serde_json::json!({ "operation": "drift.generate" }),
            })
            .await
            .unwrap();
        assert_eq!(store.audit_entry(a.tenant.id, entry.id).await.unwrap(), Some(entry.clone()));
        assert!(store.audit_entry(b.tenant.id, entry.id).await.unwrap().is_none());
        assert_eq!(store.list_audit(a.tenant.id, 10).await.unwrap(), vec![entry.clone()]);
        // Starting a run writes its audit entry and notification with it,
        // atomically; joining the active run writes a join entry on it and
        // no notification.
        let mut run = new_run(&a, "audited");
        let start = |run_id: RunId| NewAuditEntry {
            tenant_id: a.tenant.id,
            user_id: Some(a.user.id),
            action: "run.start".into(),
            resource: "bulk_operation_run".into(),
            resource_id: Some(run_id.to_string()),
            metadata: serde_json::json!({}),
        };
        run.audit = Some(start(run.id));
        run.notification = Some(NewNotification {
            tenant_id: a.tenant.id,
            user_id: a.user.id,
            kind: NotificationKind::RunQueued,
            notice: RunNotice::queued((&a.tenant).into(), run.id, run.operation, 3),
        });
        let started = store.start_run(run.clone()).await.unwrap();
        assert!(!started.joined);
        let audit_id = started.run.audit_log_id.expect("linked audit entry");
        let linked = store.audit_entry(a.tenant.id, audit_id).await.unwrap().unwrap();
        assert_eq!(linked.resource_id, Some(started.run.summary.id.to_string()));
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 1);

        let again = store.start_run(NewRun { id: RunId::generate(), ..run }).await.unwrap();
        assert!(again.joined);
        let entries = store.list_audit(a.tenant.id, 10).await.unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].action, "run.join");
        assert_eq!(entries[0].resource_id, Some(started.run.summary.id.to_string()));
        assert_eq!(again.run.audit_log_id, Some(audit_id), "still the start's");
        assert_eq!(store.unread_count(a.tenant.id, a.user.id).await.unwrap(), 1);
    }

    async fn demo_seed_fills_every_status_with_consistent_counters(store) {
        assert!(store.is_empty().await.unwrap());
        let summary = opshub::server::seed::seed_demo(store).await.unwrap();
        assert_eq!(summary.tenants, 3);
        for tenant in store.list_tenants().await.unwrap() {
            let counts = store.count_runs_by_bucket(tenant.id, &RunFilter::default()).await.unwrap();
            assert!(counts.total() >= 200, "{counts:?}");
            for bucket in StatusBucket::ALL {
                assert!(counts.get(bucket) > 0, "{} has no {bucket} runs", tenant.slug);
            }
            let mut cursor = None;
            let mut statuses = HashSet::new();
            loop {
                let request = cursor.map_or(PageRequest::first(200), |c| PageRequest::older_than(c, 200));
                let page = store.list_runs(tenant.id, &RunFilter::default(), request).await.unwrap();
                for run in &page.items {
                    assert!(run.counters.is_consistent(), "{:?}", run.counters);
                    statuses.insert(run.status);
                }
                match page.older {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(statuses.len(), RunStatus::ALL.len());
            assert_eq!(store.completed_syncs(tenant.id, "devices/windows", 5).await.unwrap().len(), 3);
        }
        // Seeding twice is refused and changes nothing.
        let before = store.list_tenants().await.unwrap();
        assert!(opshub::server::seed::seed_demo(store).await.is_err());
        assert_eq!(store.list_tenants().await.unwrap(), before);
    }
}

/// SQLite copies a commit's pages back into the database file in the
/// background, soon after the write: not in whichever commit crosses 1,000
/// pages of WAL, inside the one write turn every writer waits for.
#[tokio::test]
async fn sqlite_checkpoints_a_write_into_the_database_file_in_the_background() {
    let db = support::TestDb::new(Backend::Sqlite).await;
    let store = db.store.as_ref();
    let f = fixture(store, "acme").await;
    let key = "key-that-reaches-the-database-file";
    store.start_run(new_run(&f, key)).await.unwrap();

    let file = db.url.strip_prefix("sqlite://").expect("a file database");
    let holds_key = || {
        let bytes = std::fs::read(file).expect("read the database file");
        bytes.windows(key.len()).any(|w| w == key.as_bytes())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !holds_key() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(holds_key(), "the run's row is still only in the WAL");
}

/// SQLite's WAL starts over at the front even while writes never pause (a
/// checkpoint beside them never catches up by itself: a prune that wrote
/// without a pause filled the disk with WAL).
#[tokio::test]
async fn sqlite_keeps_its_wal_small_while_writes_never_pause() {
    const WRITERS: usize = 2;
    const RUNS_EACH: usize = 300;
    let db = support::TestDb::new(Backend::Sqlite).await;
    let f = fixture(db.store.as_ref(), "acme").await;
    // Each run's row carries ~60 KB of work items: 36 MB written in all.
    let work_items: Vec<String> = (0..1_000).map(|i| format!("{i:060}")).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = db.store.clone();
            let runs: Vec<NewRun> = (0..RUNS_EACH)
                .map(|i| NewRun {
                    work_items: work_items.clone(),
                    ..new_run(&f, &format!("w{writer}-{i}"))
                })
                .collect();
            tokio::spawn(async move {
                for run in runs {
                    store.start_run(run).await.unwrap();
                }
            })
        })
        .collect();
    let wal = format!("{}-wal", db.url.strip_prefix("sqlite://").unwrap());
    let mut largest = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(largest < 16 << 20, "the WAL grew to {} MB", largest >> 20);
}
