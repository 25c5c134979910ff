//! What the engine's tests share: settings that make a pool quick to
//! observe, driving workers, queueing runs straight into the store, reading
//! runs back.

use super::Fixture;
use opshub::domain::*;
use opshub::server::engine::{self, EngineSettings, Worker};
use opshub::server::store::*;
use std::sync::Arc;
use std::time::Duration;

pub fn settings() -> EngineSettings {
    EngineSettings {
        workers: 4,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_millis(200),
        rescue_interval: Duration::from_millis(200),
        poll_interval: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(20),
        batch_max_items: 500,
        batch_max_time: Duration::from_millis(250),
        claim_max_runs: 32,
        // Not within a test: tests/retention.rs sets its own.
        prune_interval: Duration::from_secs(3_600),
        retention: Default::default(),
        stalls: opshub::domain::StallPolicy::new(120_000, 3_600_000),
        pause_file: None,
    }
}

pub fn worker(store: &Arc<dyn Store>, name: &str) -> Worker {
    Worker::new(store.clone(), name, settings())
}

/// Steps one worker until the queue is empty; what it executed.
pub async fn drain(worker: &Worker) -> Vec<engine::Executed> {
    let mut executed = Vec::new();
    loop {
        let step = worker.step().await.unwrap();
        if step.is_empty() {
            return executed;
        }
        executed.extend(step);
    }
}

pub async fn detail(store: &dyn Store, f: &Fixture, id: RunId) -> RunDetail {
    store.run(f.tenant.id, id).await.unwrap().unwrap()
}

pub async fn policies(store: &dyn Store, f: &Fixture, names: &[&str]) -> Vec<Policy> {
    let mut created = Vec::new();
    for (i, name) in names.iter().enumerate() {
        created.push(
            store
                .create_policy(NewPolicy {
                    tenant_id: f.tenant.id,
                    external_id: format!("ext-{i}-{}", uuid::Uuid::now_v7().simple()),
                    name: name.to_string(),
                    policy_type: "compliance".into(),
                    payload: serde_json::json!({ "level": i }),
                })
                .await
                .unwrap(),
        );
    }
    created
}

/// A run queued straight into the store (what `operations::start` writes,
/// minus validation), so tests can queue what validation would refuse.
pub async fn queue_add_policies(
    store: &dyn Store,
    f: &Fixture,
    set: BackupSetId,
    key: &str,
    item_ids: Vec<String>,
    max_attempts: i64,
) -> RunId {
    // Items that are no policy id stay work items (they fail as not found).
    let scope = RunScope::AddPolicies(AddPoliciesScope {
        backup_set_id: set,
        policy_ids: item_ids
            .iter()
            .filter_map(|id| PolicyId::parse(id).ok())
            .collect(),
        options: AddPoliciesOptions {
            include_payload: true,
        },
    });
    store
        .start_run(NewRun {
            id: RunId::generate(),
            tenant_id: f.tenant.id,
            user_id: f.user.id,
            operation: OperationKind::BackupSetAddPolicies,
            idempotency_key: key.into(),
            item_ids: scope,
            work_items: item_ids,
            max_attempts,
            audit: None,
            notification: None,
            retry_of: None,
        })
        .await
        .unwrap()
        .run
        .summary
        .id
}

pub async fn completed_notices(store: &dyn Store, f: &Fixture, run: RunId) -> Vec<RunNotice> {
    store
        .list_notifications(
            f.tenant.id,
            f.user.id,
            &NotificationFilter::default(),
            PageRequest::first(100),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| n.kind == NotificationKind::RunCompleted && n.notice.run_id == run)
        .map(|n| n.notice)
        .collect()
}
