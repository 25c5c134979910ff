//! The Insights rollups on both databases: every way a run ends adds it to
//! the rollups exactly once, in the transaction that ends it, and a
//! tenant's rollups are its own.

mod support;

use opshub::domain::*;
use opshub::server::store::*;
use support::engine::*;
use support::{fixture, Fixture};

/// The start of the current UTC hour, a little before anything the test made.
fn this_hour() -> Timestamp {
    let now = Timestamp::now().0;
    Timestamp(now.div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR - MICROS_PER_HOUR)
}

async fn rollups(store: &dyn Store, f: &Fixture, operation: Option<OperationKind>) -> Rollups {
    store
        .rollups(f.tenant.id, this_hour(), operation)
        .await
        .unwrap()
}

fn runs_by_outcome(rollups: &Rollups) -> Vec<(RunStatus, i64)> {
    let mut by_outcome: Vec<(RunStatus, i64)> = Vec::new();
    for row in &rollups.outcomes {
        match by_outcome.iter_mut().find(|(o, _)| *o == row.outcome) {
            Some((_, n)) => *n += row.runs,
            None => by_outcome.push((row.outcome, row.runs)),
        }
    }
    by_outcome.sort_by_key(|(o, _)| o.as_str());
    by_outcome
}

fn histogram_runs(rollups: &Rollups, phase: Phase) -> i64 {
    rollups
        .durations
        .iter()
        .filter(|d| d.phase == phase)
        .map(|d| d.runs)
        .sum()
}

on_both! { db =>
    /// A partial run, a clean one, a failed one and a run aborted while
    /// queued: each lands in its outcome's row once, with its items, its
    /// durations (only runs that started have them) and its failure
    /// reasons, and in no other tenant's rollups.
    async fn every_ended_run_is_counted_once(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let other = fixture(store, "globex").await;
        let all = policies(store, &f, &["A", "B", "C"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let ids: Vec<String> = all.iter().map(|p| p.id.to_string()).collect();
        let mut with_missing = ids.clone();
        with_missing.push(PolicyId::generate().to_string());
        with_missing.push(PolicyId::generate().to_string());
        queue_add_policies(store, &f, set.id, "partial", with_missing, 3).await;
        let worker = worker(&db.store, "w1");
        drain(&worker).await;
        let clean_set = store.create_backup_set(f.tenant.id, "Weekly").await.unwrap();
        queue_add_policies(store, &f, clean_set.id, "clean", ids.clone(), 3).await;
        // Every item of this one is unknown: it ends failed.
        let unknown = vec![PolicyId::generate().to_string()];
        queue_add_policies(store, &f, clean_set.id, "failed", unknown, 3).await;
        drain(&worker).await;
        let queued = queue_add_policies(store, &f, set.id, "aborted", ids.clone(), 3).await;
        store.transition_run(f.tenant.id, queued, RunStatus::Aborted).await.unwrap();

        let seen = rollups(store, &f, None).await;
        assert_eq!(
            runs_by_outcome(&seen),
            vec![
                (RunStatus::Aborted, 1),
                (RunStatus::Completed, 1),
                (RunStatus::CompletedWithErrors, 1),
                (RunStatus::Failed, 1),
            ]
        );
        let partial = seen.outcomes.iter().find(|r| r.outcome == RunStatus::CompletedWithErrors).unwrap();
        assert_eq!(
            (partial.items_processed, partial.items_succeeded, partial.items_failed, partial.items_skipped),
            (5, 3, 2, 0)
        );
        assert_eq!(partial.operation, OperationKind::BackupSetAddPolicies);
        let aborted = seen.outcomes.iter().find(|r| r.outcome == RunStatus::Aborted).unwrap();
        assert_eq!((aborted.started_runs, aborted.run_millis), (0, 0));
        assert_eq!(histogram_runs(&seen, Phase::Queue), 3);
        assert_eq!(histogram_runs(&seen, Phase::Run), 3);
        let reasons: i64 = seen
            .reasons
            .iter()
            .filter(|r| r.reason_code == ReasonCode::PolicyNotFound)
            .map(|r| r.failures)
            .sum();
        assert_eq!(reasons, 3, "{:?}", seen.reasons);

        // Draining again ends nothing: nothing more is counted.
        drain(&worker).await;
        assert_eq!(rollups(store, &f, None).await, seen);
        assert_eq!(rollups(store, &f, Some(OperationKind::DriftGenerate)).await, Rollups::default());
        assert_eq!(rollups(store, &other, None).await, Rollups::default());

        // The page's figures agree with the runs.
        let insights = Insights::from_rollups(InsightsWindow::Day, None, Timestamp::now(), &seen);
        assert_eq!(insights.totals.outcomes.total(), 4);
        assert_eq!(insights.totals.items_processed, 5 + 3 + 1);
        assert_eq!(insights.reasons[0].reason_code, ReasonCode::PolicyNotFound);
        assert!(insights.totals.run.p95_millis.is_some());
    }

    /// A run that ends because its worker was lost counts that failure
    /// once, as worker_lost; a rescue that only releases a run to another
    /// worker counts nothing.
    async fn a_lost_worker_is_counted_when_the_run_fails(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let all = policies(store, &f, &["A"]).await;
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let run = queue_add_policies(store, &f, set.id, "lost", vec![all[0].id.to_string()], 2).await;
        let short = std::time::Duration::from_millis(1);
        for attempt in 1..=2 {
            let claimed = store.claim_runs("gone", short, ClaimLimit::ONE).await.unwrap();
            assert_eq!(claimed.len(), 1);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            store.rescue_expired().await.unwrap();
            if attempt == 1 {
                assert_eq!(rollups(store, &f, None).await, Rollups::default(), "released, not ended");
            }
        }
        assert_eq!(detail(store, &f, run).await.summary.status, RunStatus::Failed);
        let seen = rollups(store, &f, None).await;
        assert_eq!(runs_by_outcome(&seen), vec![(RunStatus::Failed, 1)]);
        assert_eq!(
            seen.reasons.iter().map(|r| (r.reason_code, r.failures)).collect::<Vec<_>>(),
            vec![(ReasonCode::WorkerLost, 1)]
        );
    }

    /// The hub's reason filter lists exactly the runs the Insights reason
    /// totals count: runs that failed items with the code, or failed with
    /// it themselves (a lost worker); skipped items are not failures. Its
    /// tab counts agree.
    async fn the_hub_lists_exactly_the_runs_a_reason_counts(db) {
        let store = db.store.as_ref();
        let f = fixture(store, "acme").await;
        let all = policies(store, &f, &["A", "B"]).await;
        let ids: Vec<String> = all.iter().map(|p| p.id.to_string()).collect();
        let set = store.create_backup_set(f.tenant.id, "Nightly").await.unwrap();
        let worker = worker(&db.store, "w1");
        let mut with_missing = ids.clone();
        with_missing.push(PolicyId::generate().to_string());
        let partial = queue_add_policies(store, &f, set.id, "partial", with_missing, 3).await;
        drain(&worker).await;
        let unknown = vec![PolicyId::generate().to_string(), PolicyId::generate().to_string()];
        let failed = queue_add_policies(store, &f, set.id, "failed", unknown, 3).await;
        // Both policies are in the set by now: skipped, not failed.
        let skipped = queue_add_policies(store, &f, set.id, "skipped", ids.clone(), 3).await;
        drain(&worker).await;
        let lost = queue_add_policies(store, &f, set.id, "lost", ids.clone(), 1).await;
        store.claim_runs("gone", std::time::Duration::from_millis(1), ClaimLimit::ONE).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store.rescue_expired().await.unwrap();
        assert_eq!(detail(store, &f, skipped).await.summary.counters.skipped, 2);

        let tenant = f.tenant.id;
        let listed = |reason: ReasonCode| async move {
            let filter = RunFilter { reason: Some(reason), ..RunFilter::default() };
            let mut ids: Vec<RunId> = store
                .list_runs(tenant, &filter, PageRequest::first(50))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|run| run.id)
                .collect();
            ids.sort();
            let counts = store.count_runs_by_bucket(tenant, &filter).await.unwrap();
            (ids, counts.total())
        };
        let mut not_found = vec![partial, failed];
        not_found.sort();
        assert_eq!(listed(ReasonCode::PolicyNotFound).await, (not_found, 2));
        assert_eq!(listed(ReasonCode::WorkerLost).await, (vec![lost], 1));
        assert_eq!(listed(ReasonCode::AlreadyPresent).await, (vec![], 0));
        // The same runs the rollups count the codes of.
        let seen = rollups(store, &f, None).await;
        let mut codes: Vec<ReasonCode> = seen.reasons.iter().map(|r| r.reason_code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes, vec![ReasonCode::PolicyNotFound, ReasonCode::WorkerLost]);
        // Runs recorded before the table existed get their codes from the
        // failures they kept: the migration's backfill finds the same.
        let migration = std::fs::read_to_string(format!(
            "migrations/{}/0015_failure_reasons.sql",
            db.dialect()
        ))
        .unwrap();
        let backfill = migration.split("-- Runs recorded before").nth(1).unwrap();
        db.execute("DELETE FROM run_failure_reasons").await;
        assert_eq!(listed(ReasonCode::WorkerLost).await, (vec![], 0), "emptied");
        db.execute(&format!("-- {backfill}")).await;
        let mut not_found = vec![partial, failed];
        not_found.sort();
        assert_eq!(listed(ReasonCode::PolicyNotFound).await, (not_found, 2));
        assert_eq!(listed(ReasonCode::WorkerLost).await, (vec![lost], 1));
        assert_eq!(listed(ReasonCode::AlreadyPresent).await, (vec![], 0));

        // Paged one at a time, newest first, through the reason's index.
        let filter = RunFilter { reason: Some(ReasonCode::PolicyNotFound), ..RunFilter::default() };
        let first = store.list_runs(tenant, &filter, PageRequest::first(1)).await.unwrap();
        assert_eq!(first.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![failed]);
        let next = PageRequest::older_than(first.older.expect("an older page"), 1);
        let second = store.list_runs(tenant, &filter, next).await.unwrap();
        assert_eq!(second.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![partial]);
        assert!(second.older.is_none());

        // Filters combine: the partial run's bucket only.
        let filter = RunFilter {
            reason: Some(ReasonCode::PolicyNotFound),
            bucket: Some(StatusBucket::PartiallySucceeded),
            ..RunFilter::default()
        };
        let page = store.list_runs(f.tenant.id, &filter, PageRequest::first(50)).await.unwrap();
        assert_eq!(page.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![partial]);
    }
}
