//! The spec's data contract, read as the rest of the platform reads it: raw
//! SQL against the tables on both databases, and data an earlier release
//! wrote read back after upgrading.

mod support;

use opshub::domain::*;
use opshub::server::operations::{self, StartRequest};
use opshub::server::store::Backend;
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

on_both! {
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

/// Findings an earlier release wrote (schema at migration 0004: the kind of
/// change in `finding_type`, the evidence in `evidence`) read back unchanged
/// after upgrading, in the new shape.
async fn findings_survive_the_upgrade(backend: Backend) {
    let db = TestDb::at_migration(backend, 4).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_survive_the_upgrade_on_sqlite() {
    findings_survive_the_upgrade(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_survive_the_upgrade_on_postgres() {
    findings_survive_the_upgrade(Backend::Postgres).await;
}
