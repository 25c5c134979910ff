//! Notifications in the spec's shape and the audit trail (issue 13 §4 and
//! §5), on both databases: the payload as other code reads it from the
//! table, who gets a run's "completed" notice, the migration that rewrites
//! payloads written before, and audit entries written in the same
//! transaction as the change they record.

mod support;

use opshub::domain::*;
use opshub::server::admin;
use opshub::server::operations::{self, StartRequest};
use opshub::server::store::*;
use sqlx::Connection;
use support::engine::*;
use support::{colleague, fixture, member, two_syncs, TestDb};

fn drift() -> StartRequest {
    StartRequest::Drift {
        scope_key: "devices".into(),
    }
}

/// The payloads of a user's notifications of one kind, oldest first, read
/// straight from the table.
async fn raw_payloads(db: &TestDb, user: UserId, kind: &str) -> Vec<serde_json::Value> {
    let sql = "SELECT CAST(payload AS TEXT) FROM notifications \
               WHERE user_id = $1 AND kind = $2 ORDER BY created_at, id";
    let texts: Vec<String> = if db.is_sqlite() {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(user)
            .bind(kind)
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(user)
            .bind(kind)
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    texts
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect()
}

/// "completed" rows per user for this run, from the table.
async fn completed_rows(db: &TestDb, run: RunId) -> Vec<UserId> {
    let sql = if db.is_sqlite() {
        "SELECT user_id FROM notifications WHERE kind = 'run_completed' \
         AND json_extract(payload, '$.run_id') = $1 ORDER BY user_id"
    } else {
        "SELECT user_id FROM notifications WHERE kind = 'run_completed' \
         AND payload ->> 'run_id' = $1 ORDER BY user_id"
    };
    if db.is_sqlite() {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(run.to_string())
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(run.to_string())
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }
}

/// Makes every audit insert fail, as a database refusing the write would.
async fn refuse_audit(db: &TestDb) {
    db.execute(if db.is_sqlite() {
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;"
    } else {
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
    })
    .await;
}

async fn allow_audit(db: &TestDb) {
    db.execute(if db.is_sqlite() {
        "DROP TRIGGER refuse_audit;"
    } else {
        "DROP TRIGGER refuse_audit ON audit_logs; DROP FUNCTION refuse_audit();"
    })
    .await;
}

fn actions(trail: &[TrailEntry]) -> Vec<(&str, Option<&str>)> {
    trail
        .iter()
        .map(|t| (t.entry.action.as_str(), t.actor_name.as_deref()))
        .collect()
}

on_both! { db =>
    async fn payloads_carry_every_field_the_spec_names(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        two_syncs(store, &f).await;
        let run = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        drain(&worker(&db.store, "w")).await;
        let tenant = serde_json::json!({ "id": f.tenant.id.to_string(), "slug": "acme" });
        let link = format!("/t/acme/operations/{run}");
        assert_eq!(raw_payloads(db, f.user.id, "run_queued").await, vec![serde_json::json!({
            "tenant": tenant,
            "run_id": run.to_string(),
            "run_type": "bulk_operation_run",
            "operation": "drift.generate",
            "bucket": "queued",
            "counters": { "total": 3, "processed": 0, "succeeded": 0, "failed": 0, "skipped": 0 },
            "error_summary": null,
            "link": link,
        })]);
        assert_eq!(raw_payloads(db, f.user.id, "run_completed").await, vec![serde_json::json!({
            "tenant": tenant,
            "run_id": run.to_string(),
            "run_type": "bulk_operation_run",
            "operation": "drift.generate",
            "bucket": "succeeded",
            "counters": { "total": 3, "processed": 3, "succeeded": 3, "failed": 0, "skipped": 0 },
            "error_summary": null,
            "link": link,
        })]);

        // Partly failed: the spec's `partial`, and a safe summary of why.
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let good = policies(store, &f, &["Good"]).await;
        let gone = PolicyId(uuid::Uuid::now_v7());
        let items = vec![good[0].id.to_string(), gone.to_string()];
        let partly = queue_add_policies(store, &f, set.id, "partly", items, 3).await;
        drain(&worker(&db.store, "w")).await;
        let completed = raw_payloads(db, f.user.id, "run_completed").await;
        let payload = completed.last().unwrap();
        assert_eq!(payload["run_id"], partly.to_string());
        assert_eq!(payload["operation"], "backup_set.add_policies");
        assert_eq!(payload["bucket"], "partial");
        assert_eq!(payload["error_summary"], "1 failed: policy_not_found ×1");
        assert_eq!(payload["counters"], serde_json::json!({ "total": 2, "processed": 2, "succeeded": 1, "failed": 1, "skipped": 0 }));

        // Aborted before it ran: failed, and says so.
        two_syncs(store, &f).await;
        let aborted = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary;
        operations::abort(store, &f.tenant, &f.user, aborted.id).await.unwrap();
        let payload = raw_payloads(db, f.user.id, "run_completed").await.pop().unwrap();
        assert_eq!(payload["run_id"], aborted.id.to_string());
        assert_eq!(payload["bucket"], "failed");
        assert_eq!(payload["error_summary"], format!("aborted after 0 of {} items", aborted.counters.total));
        let aborted = aborted.id;

        // The app reads the same rows back: the feed links to the runs.
        let feed = store.list_notifications(f.tenant.id, f.user.id, &NotificationFilter::default(), PageRequest::first(10)).await.unwrap();
        let newest = &feed.items[0].notice;
        assert_eq!((newest.run_id, newest.bucket), (aborted, StatusBucket::Failed));
        assert_eq!(newest.tenant, NoticeTenant { id: f.tenant.id, slug: "acme".into() });
        assert_eq!(newest.link, format!("/t/acme/operations/{aborted}"));
        let partial = feed.items.iter().find(|n| n.notice.run_id == partly && n.kind == NotificationKind::RunCompleted).unwrap();
        assert_eq!(partial.notice.bucket, StatusBucket::PartiallySucceeded);
    }

    async fn everyone_who_asked_for_a_run_gets_its_completed_notice_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (b, c, bystander) = (
            colleague(store, &f, "Bea").await,
            colleague(store, &f, "Cem").await,
            colleague(store, &f, "Dee").await,
        );
        two_syncs(store, &f).await;
        let run = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        // Bea twice, the initiator again, Cem once: all join the one run.
        for user in [&b, &b, &f.user, &c] {
            let joined = operations::start(store, &f.tenant, user, &drift()).await.unwrap();
            assert!(joined.joined);
            assert_eq!(joined.run.summary.id, run);
        }
        drain(&worker(&db.store, "w")).await;
        let mut expected = vec![f.user.id, b.id, c.id];
        expected.sort();
        assert_eq!(completed_rows(db, run).await, expected);
        for user in [f.user.id, b.id, c.id] {
            let notices = raw_payloads(db, user, "run_completed").await;
            assert_eq!(notices.len(), 1, "{user}");
            assert_eq!(notices[0]["bucket"], "succeeded");
        }
        // Only the initiator was told it was queued; a bystander hears nothing.
        assert_eq!(raw_payloads(db, b.id, "run_queued").await.len(), 0);
        assert_eq!(store.unread_count(f.tenant.id, bystander.id).await.unwrap(), 0);
        assert_eq!(store.unread_count(f.tenant.id, b.id).await.unwrap(), 1);

        // A run ended by an abort (here while pending) notifies them too.
        two_syncs(store, &f).await;
        let aborted = operations::start(store, &f.tenant, &b, &drift()).await.unwrap().run.summary.id;
        assert!(operations::start(store, &f.tenant, &c, &drift()).await.unwrap().joined);
        operations::abort(store, &f.tenant, &f.user, aborted).await.unwrap();
        let mut expected = vec![b.id, c.id];
        expected.sort();
        assert_eq!(completed_rows(db, aborted).await, expected);
    }

    async fn watchers_hear_once_with_the_initiator_and_joiners(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let (bea, wes, viewer) = (
            colleague(store, &f, "Bea").await,
            colleague(store, &f, "Wes").await,
            member(store, &f, "Vic", Role::Viewer).await,
        );
        two_syncs(store, &f).await;
        let run = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        // The initiator also joins and watches; Bea joins and watches; Wes
        // and a viewer only watch (twice, for Wes).
        assert!(operations::start(store, &f.tenant, &bea, &drift()).await.unwrap().joined);
        assert!(operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().joined);
        for user in [&f.user, &bea, &wes, &wes, &viewer] {
            store.watch_run(f.tenant.id, run, user.id).await.unwrap();
        }
        // Watching and then not watching is not watching.
        let quitter = member(store, &f, "Quinn", Role::Viewer).await;
        store.watch_run(f.tenant.id, run, quitter.id).await.unwrap();
        store.unwatch_run(f.tenant.id, run, quitter.id).await.unwrap();
        drain(&worker(&db.store, "w")).await;
        let mut expected = vec![f.user.id, bea.id, wes.id, viewer.id];
        expected.sort();
        assert_eq!(completed_rows(db, run).await, expected);
        assert_eq!(store.unread_count(f.tenant.id, quitter.id).await.unwrap(), 0);
        // A watcher hears only of the end, never that it was queued.
        assert!(raw_payloads(db, wes.id, "run_queued").await.is_empty());
        assert_eq!(raw_payloads(db, wes.id, "run_completed").await[0]["bucket"], "succeeded");

        // A run aborted while pending tells its watchers too.
        two_syncs(store, &f).await;
        let aborted = operations::start(store, &f.tenant, &bea, &drift()).await.unwrap().run.summary.id;
        store.watch_run(f.tenant.id, aborted, wes.id).await.unwrap();
        operations::abort(store, &f.tenant, &f.user, aborted).await.unwrap();
        let mut expected = vec![bea.id, wes.id];
        expected.sort();
        assert_eq!(completed_rows(db, aborted).await, expected);
    }

    async fn subscribed_admins_hear_of_failed_and_partial_runs_while_admins(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let g = fixture(store, "globex").await;
        let (ada, abe, op) = (
            member(store, &f, "Ada", Role::Admin).await,
            member(store, &f, "Abe", Role::Admin).await,
            colleague(store, &f, "Oli").await,
        );
        // Ada subscribes; Abe does not; an operator's row (which the app
        // refuses to write) counts for nothing; Ada's subscription is
        // acme's only.
        store.set_subscription(f.tenant.id, ada.id, Subscription::FailedOrPartial, true).await.unwrap();
        store.set_subscription(f.tenant.id, op.id, Subscription::FailedOrPartial, true).await.unwrap();
        store.set_membership(g.tenant.id, ada.id, Role::Admin, MembershipAudit::Unaudited).await.unwrap();

        // One batch ends a succeeded, a partial and a failed run of acme
        // and a failed run of globex.
        two_syncs(store, &f).await;
        let succeeded = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let good = policies(store, &f, &["Good"]).await;
        let gone = PolicyId(uuid::Uuid::now_v7()).to_string();
        let partial = queue_add_policies(store, &f, set.id, "partly", vec![good[0].id.to_string(), gone.clone()], 3).await;
        let failed = queue_add_policies(store, &f, set.id, "hopeless", vec![gone.clone()], 3).await;
        let g_set = store.create_backup_set(g.tenant.id, "Nightly").await.unwrap();
        let elsewhere = queue_add_policies(store, &g, g_set.id, "hopeless", vec![gone.clone()], 3).await;
        // Ada also watches the partial run: still one notice.
        store.watch_run(f.tenant.id, partial, ada.id).await.unwrap();
        drain(&worker(&db.store, "w")).await;
        assert_eq!(detail(store, &f, partial).await.summary.status, RunStatus::CompletedWithErrors);
        assert_eq!(detail(store, &f, failed).await.summary.status, RunStatus::Failed);
        assert_eq!(completed_rows(db, succeeded).await, vec![f.user.id]);
        for run in [partial, failed] {
            let mut expected = vec![f.user.id, ada.id];
            expected.sort();
            assert_eq!(completed_rows(db, run).await, expected, "{run}");
        }
        assert_eq!(completed_rows(db, elsewhere).await, vec![g.user.id]);
        assert_eq!(store.unread_count(f.tenant.id, abe.id).await.unwrap(), 0);
        assert_eq!(store.unread_count(f.tenant.id, op.id).await.unwrap(), 0);

        // An aborted run is not one they asked for: someone chose to stop it.
        two_syncs(store, &f).await;
        let aborted = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        operations::abort(store, &f.tenant, &f.user, aborted).await.unwrap();
        assert_eq!(completed_rows(db, aborted).await, vec![f.user.id]);

        // Demoted, Ada hears no more, though her row stays.
        admin::change_role(store, Some(abe.id), &f.tenant, ada.id, Role::Operator).await.unwrap();
        let again = queue_add_policies(store, &f, set.id, "hopeless again", vec![gone], 3).await;
        drain(&worker(&db.store, "w")).await;
        assert_eq!(detail(store, &f, again).await.summary.status, RunStatus::Failed);
        assert_eq!(completed_rows(db, again).await, vec![f.user.id]);
        assert_eq!(store.subscriptions(f.tenant.id, ada.id).await.unwrap(), vec![Subscription::FailedOrPartial]);
    }

    async fn audit_entries_are_written_with_the_change_or_not_at_all(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let b = colleague(store, &f, "Bea").await;
        two_syncs(store, &f).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let gone = PolicyId(uuid::Uuid::now_v7());
        let failed = queue_add_policies(store, &f, set.id, "hopeless", vec![gone.to_string()], 3).await;
        let drifted = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run.summary.id;
        drain(&worker(&db.store, "w")).await;
        let findings: Vec<FindingId> = store
            .list_findings(f.tenant.id, &FindingFilter::default(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .iter()
            .map(|finding| finding.id)
            .collect();
        assert_eq!(findings.len(), 3);
        two_syncs(store, &f).await;
        let run = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run;
        let before = db.count_rows().await;
        let audited = store.list_audit(f.tenant.id, 100).await.unwrap().len();

        // Each action fails when its audit entry cannot be written, and
        // nothing of it stays: the entry and the change are one transaction.
        refuse_audit(db).await;
        assert!(operations::start(store, &f.tenant, &b, &drift()).await.is_err(), "join");
        assert!(store.run_joins(f.tenant.id, run.summary.id).await.unwrap().is_empty());
        assert!(operations::abort(store, &f.tenant, &f.user, run.summary.id).await.is_err(), "abort");
        assert_eq!(detail(store, &f, run.summary.id).await.summary.status, RunStatus::Pending);
        let retry = StartRequest::Retry { run_id: failed };
        assert!(operations::start(store, &f.tenant, &f.user, &retry).await.is_err(), "retry");
        assert!(store.retries_of(f.tenant.id, failed).await.unwrap().is_empty());
        assert!(store.acknowledge_findings(f.tenant.id, &findings, b.id).await.is_err(), "acknowledge");
        let new = FindingFilter { status: Some(FindingStatus::New), ..FindingFilter::default() };
        assert_eq!(store.list_findings(f.tenant.id, &new, PageRequest::first(10)).await.unwrap().items.len(), 3);
        assert!(admin::change_role(store, Some(f.user.id), &f.tenant, b.id, Role::Viewer).await.is_err());
        assert!(admin::remove(store, Some(f.user.id), &f.tenant, b.id).await.is_err());
        assert_eq!(store.membership(b.id, "acme").await.unwrap().unwrap().role, Role::Operator);
        assert_eq!(db.count_rows().await, before, "a refused action wrote something");
        allow_audit(db).await;

        // Refused for a reason of their own: no entry either.
        assert!(operations::abort(store, &f.tenant, &f.user, drifted).await.is_err(), "already ended");
        assert!(admin::change_role(store, None, &f.tenant, f.user.id, Role::Viewer).await.is_ok());
        let err = admin::remove(store, None, &f.tenant, UserId(uuid::Uuid::now_v7())).await.unwrap_err();
        assert!(matches!(err, admin::AdminError::NotFound), "{err:?}");
        let entries = store.list_audit(f.tenant.id, 100).await.unwrap();
        assert_eq!(entries.len(), audited + 1, "only the role change: {entries:?}");
        assert_eq!(entries[0].action, "membership.role_change");
        assert_eq!(entries[0].user_id, None, "the command line");
        assert_eq!(entries[0].metadata, serde_json::json!({ "from": "operator", "to": "viewer" }));

        // Allowed, each action writes its entry, linked to what it acts on.
        assert!(operations::start(store, &f.tenant, &b, &drift()).await.unwrap().joined);
        operations::abort(store, &f.tenant, &b, run.summary.id).await.unwrap();
        let retried = operations::start(store, &f.tenant, &b, &retry).await.unwrap().run;
        assert_eq!(store.acknowledge_findings(f.tenant.id, &findings[..2], b.id).await.unwrap(), 2);
        // One entry per finding that changed: the two already acknowledged
        // are not acted on again.
        assert_eq!(store.acknowledge_findings(f.tenant.id, &findings, b.id).await.unwrap(), 1);
        admin::grant(store, Some(b.id), &f.tenant, "op@acme.test", Role::Operator).await.unwrap();

        let entries = store.list_audit(f.tenant.id, 100).await.unwrap();
        let mut acknowledged: Vec<String> = entries
            .iter()
            .filter(|e| e.action == "finding.acknowledge")
            .map(|e| {
                assert_eq!((e.resource.as_str(), e.user_id), ("finding", Some(b.id)));
                e.resource_id.clone().unwrap()
            })
            .collect();
        acknowledged.sort();
        let mut expected: Vec<String> = findings.iter().map(ToString::to_string).collect();
        expected.sort();
        assert_eq!(acknowledged, expected);
        let grant = &entries[0];
        assert_eq!((grant.action.as_str(), grant.resource.as_str()), ("membership.grant", "membership"));
        assert_eq!(grant.resource_id, Some(f.user.id.to_string()));
        assert_eq!(grant.metadata, serde_json::json!({ "role": "operator", "from": "viewer" }));

        // The retry's start entry is `run.retry`, and its run points at it.
        let trail = store.run_audit_trail(f.tenant.id, retried.summary.id).await.unwrap();
        assert_eq!(actions(&trail), vec![("run.retry", Some("Bea"))]);
        assert_eq!(retried.audit_log_id, Some(trail[0].entry.id));
        assert_eq!(trail[0].entry.metadata["retry_of"], failed.to_string());
    }

    async fn a_runs_trail_is_its_whole_history_oldest_first(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let g = fixture(store, "globex").await;
        let b = colleague(store, &f, "Bea").await;
        two_syncs(store, &f).await;
        let run = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run;
        operations::start(store, &f.tenant, &b, &drift()).await.unwrap();
        operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap();
        operations::abort(store, &f.tenant, &b, run.summary.id).await.unwrap();
        let other = operations::start(store, &f.tenant, &f.user, &drift()).await.unwrap().run;
        assert_ne!(other.summary.id, run.summary.id, "the aborted run took no more joins");

        let trail = store.run_audit_trail(f.tenant.id, run.summary.id).await.unwrap();
        assert_eq!(
            actions(&trail),
            vec![
                ("run.start", Some("Operator of acme")),
                ("run.join", Some("Bea")),
                ("run.join", Some("Operator of acme")),
                ("run.abort", Some("Bea")),
            ]
        );
        assert!(trail.windows(2).all(|w| w[0].entry.created_at <= w[1].entry.created_at));
        assert!(trail.iter().all(|t| t.entry.resource == "bulk_operation_run"
            && t.entry.resource_id == Some(run.summary.id.to_string())));
        // `audit_log_id` still names the start.
        assert_eq!(run.audit_log_id, Some(trail[0].entry.id));
        assert_eq!(detail(store, &f, run.summary.id).await.audit_log_id, Some(trail[0].entry.id));
        // The next run has a trail of its own; another tenant sees none.
        assert_eq!(actions(&store.run_audit_trail(f.tenant.id, other.summary.id).await.unwrap()), vec![("run.start", Some("Operator of acme"))]);
        assert!(store.run_audit_trail(g.tenant.id, run.summary.id).await.unwrap().is_empty());
    }
}

/// Rows written the way the app wrote them before migration 0006, and the
/// app reading them after it.
async fn old_payloads_are_rewritten_by_the_migration(backend: Backend) {
    let db = TestDb::at_migration(backend, 5).await;
    let (tenant, user) = (TenantId(uuid::Uuid::now_v7()), UserId(uuid::Uuid::now_v7()));
    let (queued, partial) = (
        NotificationId(uuid::Uuid::now_v7()),
        NotificationId(uuid::Uuid::now_v7()),
    );
    let (run, retried) = (RunId(uuid::Uuid::now_v7()), RunId(uuid::Uuid::now_v7()));
    let old = |run: RunId, operation: &str, bucket: &str, failed: i64| {
        serde_json::json!({
            "run_id": run,
            "operation": operation,
            "bucket": bucket,
            "counters": { "total": 4, "processed": 4, "succeeded": 4 - failed, "failed": failed, "skipped": 0 },
            "error_summary": if failed > 0 { Some(format!("{failed} failed")) } else { None },
            "link": format!("/t/acme/operations/{run}"),
        })
    };
    let rows = [
        (
            queued,
            "run_queued",
            old(run, "drift_generate", "queued", 0),
        ),
        (
            partial,
            "run_completed",
            old(retried, "backup_set_add_policies", "partially_succeeded", 1),
        ),
    ];
    // The same statements on either backend's own connection type.
    macro_rules! write_old_rows {
        ($conn:ty) => {{
            let mut conn = <$conn>::connect(&db.url).await.unwrap();
            let now = Timestamp::now();
            sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, 'acme', 'Acme', $2)")
                .bind(tenant)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO users (id, email, display_name, created_at) VALUES ($1, 'op@acme.test', 'Op', $2)")
                .bind(user)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            for (id, kind, payload) in &rows {
                sqlx::query(
                    "INSERT INTO notifications (id, tenant_id, user_id, kind, payload, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(*id)
                .bind(tenant)
                .bind(user)
                .bind(*kind)
                .bind(sqlx::types::Json(payload))
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }};
    }
    if db.is_sqlite() {
        write_old_rows!(sqlx::SqliteConnection);
    } else {
        write_old_rows!(sqlx::PgConnection);
    }

    db.store.migrate().await.unwrap();
    let tenant_json = serde_json::json!({ "id": tenant.to_string(), "slug": "acme" });
    let payloads = raw_payloads(&db, user, "run_queued").await;
    let mut expected = rows[0].2.clone();
    expected["tenant"] = tenant_json.clone();
    expected["run_type"] = "bulk_operation_run".into();
    expected["operation"] = "drift.generate".into();
    assert_eq!(payloads, vec![expected]);
    let payloads = raw_payloads(&db, user, "run_completed").await;
    let mut expected = rows[1].2.clone();
    expected["tenant"] = tenant_json;
    expected["run_type"] = "bulk_operation_run".into();
    expected["operation"] = "backup_set.add_policies".into();
    expected["bucket"] = "partial".into();
    assert_eq!(payloads, vec![expected]);

    let feed = db
        .store
        .list_notifications(
            tenant,
            user,
            &NotificationFilter::default(),
            PageRequest::first(10),
        )
        .await
        .unwrap();
    let notices: Vec<(NotificationId, RunId, OperationKind, StatusBucket)> = feed
        .items
        .iter()
        .map(|n| (n.id, n.notice.run_id, n.notice.operation, n.notice.bucket))
        .collect();
    assert_eq!(notices.len(), 2);
    assert!(notices.contains(&(
        queued,
        run,
        OperationKind::DriftGenerate,
        StatusBucket::Queued
    )));
    assert!(notices.contains(&(
        partial,
        retried,
        OperationKind::BackupSetAddPolicies,
        StatusBucket::PartiallySucceeded
    )));
    assert!(feed
        .items
        .iter()
        .all(|n| n.notice.link.starts_with("/t/acme/operations/")));
}

on_both! { backend =>
    async fn old_payloads_are_rewritten(backend) {
        old_payloads_are_rewritten_by_the_migration(backend).await;
    }
}
