//! The spec's data contract, read as the rest of the platform reads it: raw
//! SQL against the tables on both databases, and data an earlier release
//! wrote read back after upgrading.

mod support;

use opshub::domain::*;
use opshub::server::operations::{self, StartRequest};
use opshub::server::store::*;
use support::engine::*;
use support::*;

/// An id as a SQL literal of the database's own type.
fn id_sql(db: &TestDb, id: uuid::Uuid) -> String {
    if db.is_sqlite() {
        format!("X'{}'", id.simple())
    } else {
        format!("'{id}'::uuid")
    }
}

/// A time (microseconds since the epoch) as a SQL literal.
fn at_sql(db: &TestDb, micros: i64) -> String {
    if db.is_sqlite() {
        micros.to_string()
    } else {
        format!("'epoch'::timestamptz + {micros} * interval '1 microsecond'")
    }
}

fn texts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

on_both! { db =>
    async fn findings_have_the_specs_columns(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (baseline, current) = two_syncs(store, &f).await;
        let request = StartRequest::Drift { scope_key: "devices".into() };
        operations::start(store, &f.tenant, &f.user, &request).await.unwrap();
        drain(&worker(&db.store, "w1")).await;

        let os_after = if db.is_sqlite() {
            "json_extract(evidence_jsonb, '$.fields.os.after')"
        } else {
            "evidence_jsonb #>> '{fields,os,after}'"
        };
        let rows = db
            .texts(&format!(
                "SELECT finding_type || ' ' || change_kind || ' ' || subject_external_id || ' ' \
                 || COALESCE({os_after}, '-') FROM findings ORDER BY subject_external_id"
            ))
            .await;
        assert_eq!(rows, texts(&["drift changed dev-1 11", "drift removed dev-2 -", "drift added dev-3 11"]));

        // The spec's Phase 1 link: scope key + baseline + current.
        let (b, c) = (id_sql(db, baseline.0), id_sql(db, current.0));
        let linked = format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM findings \
             WHERE scope_key = 'devices' AND baseline_run_id = {b} AND current_run_id = {c}"
        );
        assert_eq!(db.texts(&linked).await, texts(&["3"]));

        // Both syncs are nullable, and a finding without them reads back.
        db.execute(
            "UPDATE findings SET baseline_run_id = NULL, current_run_id = NULL \
             WHERE subject_external_id = 'dev-2'",
        )
        .await;
        assert_eq!(db.texts(&linked).await, texts(&["2"]));
        let all = store.list_findings(f.tenant.id, &FindingFilter::default(), PageRequest::first(10)).await.unwrap().items;
        let unlinked = all.iter().find(|x| x.subject_external_id == "dev-2").unwrap();
        assert_eq!((unlinked.baseline_run_id, unlinked.current_run_id), (None, None));
        assert_eq!(unlinked.change_kind, ChangeKind::Removed);

        // The schema refuses what the spec does not allow.
        for refused in [
            "UPDATE findings SET finding_type = 'changed'",
            "UPDATE findings SET change_kind = 'drift'",
        ] {
            assert!(db.try_execute(refused).await.is_err(), "{refused} was accepted");
        }
    }

    // Whatever writes the table, a run's status moves only the ways
    // `RunStatus::can_transition_to` allows: every pair is tried.
    async fn the_database_refuses_every_illegal_status_move(db) {
        let f = fixture(db.store.as_ref(), "acme").await;
        let now = at_sql(db, Timestamp::now().0);
        let (t, u) = (id_sql(db, f.tenant.id.0), id_sql(db, f.user.id.0));
        // Times as each status requires (CHECKs), so only the move is judged.
        let times = |status: RunStatus| {
            let started = if status == RunStatus::Pending { "NULL" } else { now.as_str() };
            let finished = if status.is_terminal() { now.as_str() } else { "NULL" };
            (started, finished)
        };
        let mut legal = 0;
        for from in RunStatus::ALL {
            for to in RunStatus::ALL.into_iter().filter(|to| *to != from) {
                let run = id_sql(db, uuid::Uuid::now_v7());
                let (started, finished) = times(from);
                db.execute(&format!(
                    "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, \
                     idempotency_key, status, created_at, updated_at, started_at, finished_at) \
                     VALUES ({run}, {t}, {u}, 'drift', 'generate', '{from}-{to}', '{from}', {now}, {now}, \
                     {started}, {finished})"
                ))
                .await;
                let (started, finished) = times(to);
                let moved = db
                    .try_execute(&format!(
                        "UPDATE bulk_operation_runs SET status = '{to}', started_at = {started}, \
                         finished_at = {finished} WHERE id = {run}"
                    ))
                    .await;
                match moved {
                    Ok(()) => {
                        assert!(from.can_transition_to(to), "{from} -> {to} was accepted");
                        legal += 1;
                    }
                    Err(refused) => {
                        assert!(!from.can_transition_to(to), "{from} -> {to} was refused: {refused}");
                        assert!(refused.contains("status cannot move"), "{from} -> {to}: {refused}");
                    }
                }
            }
        }
        assert_eq!(legal, 6, "pending -> running | aborted; running -> the four ends");
    }
}

on_both! { db =>
    // Runs as other code reads them: item_ids is the spec's object per
    // operation, failure entries have the spec's fields, and a retry's
    // item_ids name exactly what it re-runs.
    async fn runs_have_the_specs_item_ids_and_failures(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (baseline, current) = two_syncs(store, &f).await;
        let drift = operations::start(store, &f.tenant, &f.user, &StartRequest::Drift { scope_key: "devices".into() })
            .await
            .unwrap()
            .run
            .summary
            .id;
        let field = |path: &str| {
            if db.is_sqlite() {
                format!("json_extract(item_ids, '$.{path}')")
            } else {
                format!("item_ids #>> '{{{}}}'", path.replace('.', ","))
            }
        };
        let read = |column: String| {
            let run = id_sql(db, drift.0);
            async move { db.texts(&format!("SELECT {column} FROM bulk_operation_runs WHERE id = {run}")).await }
        };
        assert_eq!(read(field("scope_key")).await, texts(&["devices"]));
        assert_eq!(read(field("baseline_run_id")).await, texts(&[&baseline.to_string()]));
        assert_eq!(read(field("current_run_id")).await, texts(&[&current.to_string()]));
        assert_eq!(read("failures".into()).await, vec![None], "no failures yet: null");

        // An add-policies run where one policy is there and one is gone.
        let present = store
            .create_policy(NewPolicy {
                tenant_id: f.tenant.id,
                external_id: "p-1".into(),
                name: "Present".into(),
                policy_type: "compliance".into(),
                payload: serde_json::json!({}),
            })
            .await
            .unwrap();
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        store
            .add_to_backup_set(NewBackupSetItem {
                tenant_id: f.tenant.id,
                backup_set_id: set.id,
                policy_id: present.id,
                snapshot: serde_json::json!({}),
                added_by_run_id: None,
            })
            .await
            .unwrap();
        let gone = PolicyId(uuid::Uuid::now_v7());
        let add = queue_add_policies(store, &f, set.id, "mixed", vec![present.id.to_string(), gone.to_string()], 3).await;
        drain(&worker(&db.store, "w")).await;
        let run = id_sql(db, add.0);
        let failures = if db.is_sqlite() {
            format!("SELECT e.value FROM bulk_operation_runs r, json_each(r.failures) e WHERE r.id = {run} ORDER BY e.key")
        } else {
            format!(
                "SELECT e::text FROM bulk_operation_runs r, jsonb_array_elements(r.failures) WITH ORDINALITY AS x(e, n) \
                 WHERE r.id = {run} ORDER BY n"
            )
        };
        let entries: Vec<serde_json::Value> = db
            .texts(&failures)
            .await
            .into_iter()
            .map(|entry| serde_json::from_str(&entry.unwrap()).unwrap())
            .collect();
        let mut expected = vec![
            serde_json::json!({ "reason_code": "already_present", "item_id": present.id, "type": "skipped" }),
            serde_json::json!({ "reason_code": "policy_not_found", "item_id": gone }),
        ];
        expected.sort_by_key(|e| e["item_id"].as_str().unwrap().to_string());
        let shapes: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
                let mut shape = e.clone();
                shape.as_object_mut().unwrap().remove("reason");
                shape
            })
            .collect();
        assert_eq!(shapes, expected, "only a skipped entry says its type");
        assert_eq!(db.texts(&format!("SELECT item_id FROM run_failed_items WHERE run_id = {run}")).await, texts(&[&gone.to_string()]));

        // A run-level failure says so: item_id null, scope "run".
        let lost = queue_add_policies(store, &f, set.id, "lost", vec![gone.to_string()], 1).await;
        store.claim_runs("gone", std::time::Duration::from_millis(1), ClaimLimit { runs: 10, items: 100 }).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(store.rescue_expired().await.unwrap().failed, 1);
        let run = id_sql(db, lost.0);
        let last = if db.is_sqlite() {
            format!("SELECT json_extract(failures, '$[0].scope') || ' ' || json_type(failures, '$[0].item_id') FROM bulk_operation_runs WHERE id = {run}")
        } else {
            format!("SELECT (failures->0->>'scope') || ' ' || jsonb_typeof(failures->0->'item_id') FROM bulk_operation_runs WHERE id = {run}")
        };
        assert_eq!(db.texts(&last).await, texts(&["run null"]));
    }

    // A run without an idempotency key is never joined: the active-key
    // index holds keys only, and every reader takes the null.
    async fn a_run_without_a_key_is_never_joined(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (t, u, now) = (id_sql(db, f.tenant.id.0), id_sql(db, f.user.id.0), at_sql(db, Timestamp::now().0));
        let ids = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
        for id in ids {
            db.execute(&format!(
                "INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, idempotency_key, \
                 status, item_ids, created_at, updated_at) \
                 VALUES ({}, {t}, {u}, 'drift', 'generate', NULL, 'pending', '{{}}', {now}, {now})",
                id_sql(db, id)
            ))
            .await;
        }
        let listed = store.list_runs(f.tenant.id, &RunFilter::default(), PageRequest::first(10)).await.unwrap().items;
        assert_eq!(listed.len(), 2, "both active, neither joined the other");
        assert!(listed.iter().all(|run| run.idempotency_key.is_none()));
        let detail = store.run(f.tenant.id, RunId(ids[0])).await.unwrap().unwrap();
        assert_eq!((detail.summary.idempotency_key, detail.failures.len()), (None, 0));
        let counts = store.count_runs_by_bucket(f.tenant.id, &RunFilter::default()).await.unwrap();
        assert_eq!(counts.queued, 2);
    }
}

on_both! { backend =>
    /// Findings an earlier release wrote (schema at migration 0003: the kind of
    /// change in `finding_type`, the evidence in `evidence`) read back unchanged
    /// after upgrading, in the new shape.
    async fn findings_survive_the_upgrade(backend) {
        let db = TestDb::at_migration(backend, 3).await;
        let (tenant, user) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (baseline, current) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (changed, removed) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (t, u, b, c) = (
            id_sql(&db, tenant),
            id_sql(&db, user),
            id_sql(&db, baseline),
            id_sql(&db, current),
        );
        let (yesterday, today) = (
            at_sql(&db, 1_700_000_000_000_001),
            at_sql(&db, 1_700_086_400_000_002),
        );
        let evidence = r#"{"fields": {"os": {"before": "10", "after": "11"}}, "note": "Zürich 🏔"}"#;
        db.execute(&format!(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES ({t}, 'acme', 'Acme', {yesterday});
             INSERT INTO users (id, email, display_name, created_at) VALUES ({u}, 'op@acme.example', 'Op', {yesterday});
             INSERT INTO inventory_sync_runs (id, tenant_id, selection_hash, status, item_count, created_at, finished_at)
                 VALUES ({b}, {t}, 'devices', 'completed', 2, {yesterday}, {yesterday}),
                        ({c}, {t}, 'devices', 'completed', 2, {today}, {today});
             INSERT INTO findings (id, tenant_id, finding_type, scope_key, baseline_run_id, current_run_id,
                     fingerprint, subject_type, subject_external_id, status, evidence, acknowledged_by,
                     acknowledged_at, created_at, updated_at)
                 VALUES ({}, {t}, 'changed', 'devices', {b}, {c}, 'drift:one', 'device', 'dev-1', 'new',
                         '{evidence}', NULL, NULL, {today}, {today}),
                        ({}, {t}, 'removed', 'devices', {b}, {c}, 'drift:two', 'device', 'dev-2', 'acknowledged',
                         '{{}}', {u}, {today}, {today}, {today});",
            id_sql(&db, changed),
            id_sql(&db, removed),
        ))
        .await;

        db.store.migrate().await.expect("upgrade");

        let tenant = TenantId(tenant);
        let store = db.store.as_ref();
        let found = |id| async move {
            store
                .finding(tenant, FindingId(id))
                .await
                .unwrap()
                .expect("kept")
        };
        let one = found(changed).await;
        assert_eq!(
            (one.finding_type, one.change_kind, one.status),
            (FindingType::Drift, ChangeKind::Changed, FindingStatus::New)
        );
        assert_eq!(
            one.evidence,
            serde_json::from_str::<serde_json::Value>(evidence).unwrap()
        );
        assert_eq!(
            (one.baseline_run_id, one.current_run_id),
            (
                Some(InventorySyncRunId(baseline)),
                Some(InventorySyncRunId(current))
            )
        );
        assert_eq!(
            (one.fingerprint.as_str(), one.subject_external_id.as_str()),
            ("drift:one", "dev-1")
        );
        assert_eq!(one.created_at, Timestamp(1_700_086_400_000_002));
        let two = found(removed).await;
        assert_eq!(
            (two.change_kind, two.status),
            (ChangeKind::Removed, FindingStatus::Acknowledged)
        );
        assert_eq!(two.acknowledged_by, Some(UserId(user)));

        // The comparison lists both, through the index the upgrade added.
        let comparison = FindingFilter {
            scope_key: Some("devices".into()),
            baseline: Some(InventorySyncRunId(baseline)),
            current: Some(InventorySyncRunId(current)),
            ..FindingFilter::default()
        };
        let listed = db
            .store
            .list_findings(tenant, &comparison, PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 2);
    }
}

on_both! { backend =>
    /// Runs and notifications an earlier release wrote (schema at migration
    /// 0003: `item_ids` an array, `params` beside it, failure entries with
    /// `"type": "failed"`, notices without tenant or run type) read back after
    /// upgrading in the spec's shapes, and the engine still runs them.
    async fn runs_survive_the_upgrade(backend) {
        let db = TestDb::at_migration(backend, 3).await;
        let (tenant, user) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (baseline, current) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (drift, retry, add) = (
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
        );
        let mut policies = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
        policies.sort();
        let [t, u, b, c] = [tenant, user, baseline, current].map(|id| id_sql(&db, id));
        let now = at_sql(&db, 1_700_000_000_000_000);
        let drift_params = format!(
            r#"{{"scope_key": "devices", "baseline_run_id": "{baseline}", "current_run_id": "{current}"}}"#
        );
        let failures = r#"[{"item_id": "device:b", "reason_code": "internal_error", "reason": "broke", "type": "failed"},
            {"item_id": "device:c", "reason_code": "already_present", "reason": "there", "type": "skipped"},
            {"reason_code": "worker_lost", "reason": "gone", "type": "failed"}]"#;
        db.execute(&format!(
            "INSERT INTO tenants (id, slug, name, created_at) VALUES ({t}, 'acme', 'Acme', {now});
             INSERT INTO users (id, email, display_name, created_at) VALUES ({u}, 'op@acme.example', 'Op', {now});
             INSERT INTO inventory_sync_runs (id, tenant_id, selection_hash, status, item_count, created_at, finished_at)
                 VALUES ({b}, {t}, 'devices', 'completed', 0, {now}, {now}), ({c}, {t}, 'devices', 'completed', 0, {now}, {now});
             INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, idempotency_key, status,
                     total_items, processed_items, succeeded, failed, skipped, item_ids, params, failures,
                     attempt, created_at, updated_at, started_at, finished_at)
                 VALUES ({}, {t}, {u}, 'drift', 'generate', 'drift-key', 'completed_with_errors', 3, 3, 1, 1, 1,
                         '[\"device:a\", \"device:b\", \"device:c\"]', '{drift_params}', '{failures}', 1, {now}, {now}, {now}, {now});
             INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, idempotency_key, status,
                     item_ids, params, created_at, updated_at, finished_at, retry_of_run_id)
                 VALUES ({}, {t}, {u}, 'drift', 'generate', 'retry-key', 'aborted', '[\"device:b\"]', '{drift_params}',
                         {now}, {now}, {now}, {});
             INSERT INTO bulk_operation_runs (id, tenant_id, user_id, resource, action, idempotency_key, status,
                     total_items, item_ids, params, created_at, updated_at)
                 VALUES ({}, {t}, {u}, 'backup_set', 'add_policies', 'add-key', 'pending', 2,
                         '[\"{}\", \"{}\"]', '{{\"backup_set_id\": \"{}\", \"backup_set_name\": \"Nightly\", \"include_payload\": true}}',
                         {now}, {now});",
            id_sql(&db, drift),
            id_sql(&db, retry),
            id_sql(&db, drift),
            id_sql(&db, add),
            policies[0],
            policies[1],
            uuid::Uuid::nil(),
        ))
        .await;

        // The "completed" notice an earlier release wrote for the drift run.
        let notice = serde_json::json!({
            "run_id": drift,
            "operation": "drift_generate",
            "bucket": "partially_succeeded",
            "counters": { "total": 3, "processed": 3, "succeeded": 1, "failed": 1, "skipped": 1 },
            "error_summary": "1 failed: internal_error ×1",
            "link": format!("/t/acme/operations/{drift}"),
        });
        db.execute(&format!(
            "INSERT INTO notifications (id, tenant_id, user_id, kind, payload, created_at)
                 VALUES ({}, {t}, {u}, 'run_completed', '{notice}', {now})",
            id_sql(&db, uuid::Uuid::now_v7()),
        ))
        .await;

        db.store.migrate().await.expect("upgrade");

        let store = db.store.as_ref();
        let tenant = TenantId(tenant);
        let feed = store
            .list_notifications(tenant, UserId(user), &NotificationFilter::default(), PageRequest::first(10))
            .await
            .unwrap()
            .items;
        assert_eq!(feed.len(), 1);
        let read_back = &feed[0].notice;
        assert_eq!(
            (read_back.run_id, read_back.operation),
            (RunId(drift), OperationKind::DriftGenerate)
        );
        assert_eq!(read_back.bucket, StatusBucket::PartiallySucceeded);
        assert_eq!(
            read_back.counters,
            Counters {
                total: 3,
                processed: 3,
                succeeded: 1,
                failed: 1,
                skipped: 1
            }
        );
        assert_eq!(
            read_back.error_summary.as_deref(),
            Some("1 failed: internal_error ×1")
        );
        assert_eq!(read_back.link, format!("/t/acme/operations/{drift}"));
        let read = |id| async move { store.run(tenant, RunId(id)).await.unwrap().expect("kept") };
        let ended = read(drift).await;
        let scope = |run: &RunDetail| RunScope::parse(run.summary.operation, &run.item_ids).unwrap();
        let comparison = DriftScope {
            scope_key: "devices".into(),
            baseline_run_id: InventorySyncRunId(baseline),
            current_run_id: InventorySyncRunId(current),
            subjects: None,
        };
        assert_eq!(scope(&ended), RunScope::Drift(comparison.clone()));
        assert_eq!(ended.summary.idempotency_key.as_deref(), Some("drift-key"));
        assert_eq!(
            ended.summary.counters,
            Counters {
                total: 3,
                processed: 3,
                succeeded: 1,
                failed: 1,
                skipped: 1
            }
        );
        assert_eq!(
            ended.failures,
            vec![
                FailureEntry::failed(Some("device:b".into()), ReasonCode::InternalError, "broke"),
                FailureEntry::skipped(Some("device:c".into()), ReasonCode::AlreadyPresent, "there"),
                FailureEntry::failed(None, ReasonCode::WorkerLost, "gone"),
            ]
        );
        assert_eq!(
            store.failed_items(tenant, RunId(drift)).await.unwrap(),
            vec!["device:b".to_string()]
        );
        let retried = read(retry).await;
        assert_eq!(
            scope(&retried),
            RunScope::Drift(DriftScope {
                subjects: Some(vec!["device:b".into()]),
                ..comparison
            })
        );
        assert_eq!(retried.retry_of, Some(RunId(drift)));

        let queued = read(add).await;
        assert_eq!(
            scope(&queued),
            RunScope::AddPolicies(AddPoliciesScope {
                backup_set_id: BackupSetId(uuid::Uuid::nil()),
                policy_ids: policies.map(PolicyId).to_vec(),
                options: AddPoliciesOptions {
                    include_payload: true
                },
            })
        );
        // The engine runs what an earlier release queued: both policies are
        // gone from this tenant, so both fail, each with its id.
        drain(&worker(&db.store, "w")).await;
        let done = read(add).await;
        assert_eq!(done.summary.status, RunStatus::Failed);
        let items: Vec<Option<String>> = done.failures.iter().map(|f| f.item_id.clone()).collect();
        assert_eq!(items, policies.map(|p| Some(p.to_string())).to_vec());
    }
}
