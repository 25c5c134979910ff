//! The operations: starting them (one code path for the server functions
//! and the CLI; input validated completely before anything is written; the
//! run, its audit entry — `run.start`, `run.retry`, or `run.join` when the
//! start joins an active run — and the "queued" notification written
//! together) and, in the submodules, executing them item by item for the
//! engine.

mod add_policies;
mod drift;

use crate::domain::*;
use crate::server::store::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use crate::domain::AddPoliciesOptions;

/// How many times a run is attempted before it fails with `worker_lost`.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;

/// What an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartRequest {
    /// Compare the last two completed inventory syncs of a scope.
    Drift { scope_key: String },
    /// Snapshot policies into a backup set.
    AddPolicies {
        backup_set_id: BackupSetId,
        policy_ids: Vec<PolicyId>,
        options: AddPoliciesOptions,
    },
    /// Re-run the failed items of an ended run, as a new run linked to it.
    Retry { run_id: RunId },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request names something that does not exist or cannot be used;
    /// the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The run to retry is not in this tenant.
    #[error("no such run")]
    RunNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> StartError {
    StartError::Invalid(message.into())
}

/// A validated request: everything the run row needs.
struct Plan {
    idempotency_key: String,
    scope: RunScope,
    /// What the engine processes, in order.
    work_items: Vec<String>,
    retry_of: Option<RunId>,
}

const MAX_SCOPE_KEY: usize = 200;
/// Why a scope key the sanitiser would change is refused: it is an
/// identifier shown to every viewer, so it may not carry what the
/// sanitiser hides. Said without echoing it.
pub const SCOPE_KEY_NOT_CLEAN: &str = "a scope key is an identifier every viewer reads: it may not hold a credential, token, e-mail address, control character or repeated whitespace";
/// The most policies one add-policies run takes.
pub const MAX_POLICIES: usize = 1_000;

async fn plan_drift(
    store: &dyn Store,
    tenant: &Tenant,
    scope_key: &str,
) -> Result<Plan, StartError> {
    let scope_key = scope_key.trim();
    if scope_key.is_empty() || scope_key.chars().nth(MAX_SCOPE_KEY).is_some() {
        return Err(invalid(format!(
            "a scope key has 1 to {MAX_SCOPE_KEY} characters"
        )));
    }
    if !is_clean_identifier(scope_key) {
        return Err(invalid(SCOPE_KEY_NOT_CLEAN));
    }
    let syncs = store.completed_syncs(tenant.id, scope_key, 2).await?;
    let [current, baseline] = syncs.as_slice() else {
        // The scope is echoed back sanitised: input can carry anything.
        return Err(invalid(format!(
            "scope {:?} has {} completed inventory sync(s); drift needs two",
            sanitize_reason(scope_key),
            syncs.len()
        )));
    };
    // One item per subject compared: everything in either snapshot.
    let mut subjects: Vec<String> = store
        .inventory_subjects(tenant.id, [baseline.id, current.id])
        .await?
        .iter()
        .map(|(subject_type, external_id)| drift::key_of_subject(subject_type, external_id))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    let key = KeyInputs::Drift {
        scope_key,
        baseline: baseline.id,
        current: current.id,
    };
    Ok(Plan {
        idempotency_key: key.key(tenant.id),
        scope: RunScope::Drift(DriftScope {
            scope_key: scope_key.to_string(),
            baseline_run_id: baseline.id,
            current_run_id: current.id,
            subjects: None,
        }),
        work_items: subjects,
        retry_of: None,
    })
}

async fn plan_add_policies(
    store: &dyn Store,
    tenant: &Tenant,
    set_id: BackupSetId,
    policy_ids: &[PolicyId],
    options: AddPoliciesOptions,
) -> Result<Plan, StartError> {
    let set = store
        .backup_set(tenant.id, set_id)
        .await?
        .ok_or_else(|| invalid(format!("no backup set {set_id} in this tenant")))?;
    let mut wanted: Vec<PolicyId> = policy_ids.to_vec();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() || wanted.len() > MAX_POLICIES {
        return Err(invalid(format!("choose 1 to {MAX_POLICIES} policies")));
    }
    let found = store.policies_by_ids(tenant.id, &wanted).await?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|id| !found.iter().any(|p| p.id == **id))
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "no such policy in this tenant: {}",
            missing.join(", ")
        )));
    }
    let key = KeyInputs::AddPolicies {
        backup_set: set.id,
        policies: &wanted,
        include_payload: options.include_payload,
    };
    Ok(Plan {
        idempotency_key: key.key(tenant.id),
        work_items: wanted.iter().map(ToString::to_string).collect(),
        scope: RunScope::AddPolicies(AddPoliciesScope {
            backup_set_id: set.id,
            policy_ids: wanted,
            options,
        }),
        retry_of: None,
    })
}

/// Every failed item of an ended run (not only the entries kept for
/// display), in the run's own scope, as a new run. Two retries of the same
/// items while one is active join each other.
async fn plan_retry(store: &dyn Store, tenant: &Tenant, run_id: RunId) -> Result<Plan, StartError> {
    let run = store
        .run(tenant.id, run_id)
        .await?
        .ok_or(StartError::RunNotFound)?;
    if run.summary.status.is_active() {
        return Err(invalid(
            "the run is still active; retry its failed items once it has ended",
        ));
    }
    let failed = store.failed_items(tenant.id, run_id).await?;
    if failed.is_empty() {
        return Err(invalid("the run has no failed items to retry"));
    }
    let scope = RunScope::parse(run.summary.operation, &run.item_ids)
        .map_err(|e| invalid(format!("the run cannot be retried: {e}")))?;
    // The retry's item_ids name exactly the items it re-runs.
    let scope = match scope {
        RunScope::Drift(drift) => RunScope::Drift(DriftScope {
            subjects: Some(failed.clone()),
            ..drift
        }),
        RunScope::AddPolicies(add) => RunScope::AddPolicies(AddPoliciesScope {
            // Items of an add-policies run are policy ids; one that does not
            // parse names no policy and is left out.
            policy_ids: failed
                .iter()
                .filter_map(|id| PolicyId::parse(id).ok())
                .collect(),
            ..add
        }),
    };
    let key = KeyInputs::Retry {
        operation: run.summary.operation,
        of_run: run_id,
        items: &failed,
    }
    .key(tenant.id);
    Ok(Plan {
        idempotency_key: key,
        scope,
        work_items: failed,
        retry_of: Some(run_id),
    })
}

/// Starts the operation, or joins the tenant's active run with the same key.
pub async fn start(
    store: &dyn Store,
    tenant: &Tenant,
    initiator: &User,
    request: &StartRequest,
) -> Result<StartedRun, StartError> {
    let plan = match request {
        StartRequest::Drift { scope_key } => plan_drift(store, tenant, scope_key).await?,
        StartRequest::AddPolicies {
            backup_set_id,
            policy_ids,
            options,
        } => plan_add_policies(store, tenant, *backup_set_id, policy_ids, *options).await?,
        StartRequest::Retry { run_id } => plan_retry(store, tenant, *run_id).await?,
    };
    let id = RunId::generate();
    let total = plan.work_items.len() as i64;
    let operation = plan.scope.operation();
    // A retry's start entry says which run it retries.
    let (action, metadata) = match plan.retry_of {
        None => (
            audit_names::RUN_START,
            serde_json::json!({ "operation": operation.code(), "item_ids": plan.scope }),
        ),
        Some(of) => (
            audit_names::RUN_RETRY,
            serde_json::json!({
                "operation": operation.code(),
                "item_ids": plan.scope,
                "retry_of": of,
            }),
        ),
    };
    let run = NewRun {
        id,
        tenant_id: tenant.id,
        user_id: initiator.id,
        operation,
        idempotency_key: plan.idempotency_key,
        item_ids: plan.scope.clone(),
        work_items: plan.work_items,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        audit: Some(NewAuditEntry {
            tenant_id: tenant.id,
            user_id: Some(initiator.id),
            action: action.to_string(),
            resource: audit_names::RUN.to_string(),
            resource_id: Some(id.to_string()),
            metadata,
        }),
        notification: Some(NewNotification {
            tenant_id: tenant.id,
            user_id: initiator.id,
            kind: NotificationKind::RunQueued,
            notice: RunNotice::queued(tenant.into(), id, operation, total),
        }),
        retry_of: plan.retry_of,
    };
    Ok(store.start_run(run).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum AbortError {
    #[error("no such run")]
    NotFound,
    #[error("the run already ended as {0}; there is nothing to abort")]
    AlreadyFinished(RunStatus),
    #[error(transparent)]
    Store(StoreError),
}

/// An operator's abort of a queued or running run, with its audit entry.
pub async fn abort(
    store: &dyn Store,
    tenant: &Tenant,
    by: &User,
    run: RunId,
) -> Result<AbortOutcome, AbortError> {
    let audit = NewAuditEntry {
        tenant_id: tenant.id,
        user_id: Some(by.id),
        action: audit_names::RUN_ABORT.to_string(),
        resource: audit_names::RUN.to_string(),
        resource_id: Some(run.to_string()),
        metadata: serde_json::json!({}),
    };
    match store.request_abort(tenant.id, run, audit).await {
        Ok(AbortOutcome::AlreadyFinished(status)) => Err(AbortError::AlreadyFinished(status)),
        Ok(outcome) => Ok(outcome),
        Err(StoreError::NotFound) => Err(AbortError::NotFound),
        Err(e) => Err(AbortError::Store(e)),
    }
}

/// What an abort did, in words for people.
pub fn describe_abort(outcome: AbortOutcome) -> String {
    match outcome {
        AbortOutcome::Aborted => "aborted (it had not started)".into(),
        AbortOutcome::Requested => "abort requested; the worker stops it within 2 seconds".into(),
        AbortOutcome::AlreadyFinished(status) => format!("already ended as {status}"),
    }
}

/// A claimed run made ready to execute: its inputs loaded once, so that
/// processing an item is a pure function and batches stay cheap.
pub enum Execution {
    Drift(drift::DriftExecution),
    AddPolicies(add_policies::AddPoliciesExecution),
    /// The run cannot be executed at all (its inputs are gone or malformed):
    /// every item fails with this reason.
    Unusable {
        reason_code: ReasonCode,
        reason: String,
    },
}

/// What the runs of one claim share as they are made ready: the policies of
/// all their add-policies runs, read in one query per tenant rather than one
/// per run.
pub struct Preparation {
    policies: HashMap<TenantId, HashMap<PolicyId, Policy>>,
}

impl Preparation {
    pub async fn load(store: &dyn Store, runs: &[ClaimedRun]) -> StoreResult<Self> {
        #[cfg(feature = "fault-injection")]
        crate::server::engine::fault::inject::at_shared_load(runs)?;
        let mut wanted: HashMap<TenantId, Vec<PolicyId>> = HashMap::new();
        for run in runs {
            if run.operation == OperationKind::BackupSetAddPolicies {
                wanted
                    .entry(run.lease.tenant_id)
                    .or_default()
                    .extend(add_policies::AddPoliciesExecution::wanted(run));
            }
        }
        let mut policies = HashMap::with_capacity(wanted.len());
        for (tenant, mut ids) in wanted {
            ids.sort_unstable();
            ids.dedup();
            let found = store.policies_by_ids(tenant, &ids).await?;
            policies.insert(
                tenant,
                found
                    .into_iter()
                    .map(|policy| (policy.id, policy))
                    .collect(),
            );
        }
        Ok(Self { policies })
    }
}

impl Execution {
    /// Loads what the run needs (beyond what `shared` holds). Store errors
    /// are returned (the worker retries transient ones; any other fails the
    /// run); a run that can never execute becomes `Unusable`.
    pub async fn prepare(
        store: &dyn Store,
        run: &ClaimedRun,
        shared: &Preparation,
    ) -> StoreResult<Self> {
        #[cfg(feature = "fault-injection")]
        crate::server::engine::fault::inject::at_prepare(run)?;
        let unusable = |reason: String| Execution::Unusable {
            reason_code: ReasonCode::InvalidPayload,
            reason,
        };
        Ok(match RunScope::parse(run.operation, &run.scope) {
            Ok(RunScope::Drift(scope)) => drift::DriftExecution::prepare(store, run, scope)
                .await?
                .map_or_else(unusable, Execution::Drift),
            Ok(RunScope::AddPolicies(scope)) => {
                let none = HashMap::new();
                let policies = shared.policies.get(&run.lease.tenant_id).unwrap_or(&none);
                Execution::AddPolicies(add_policies::AddPoliciesExecution::new(
                    run, scope, policies,
                ))
            }
            Err(e) => unusable(e.0),
        })
    }

    pub fn process(&self, item_id: &str) -> ItemOutcome {
        #[cfg(feature = "fault-injection")]
        crate::server::engine::fault::inject::at_process(item_id);
        match self {
            Execution::Drift(drift) => drift.process(item_id),
            Execution::AddPolicies(add) => add.process(item_id),
            Execution::Unusable {
                reason_code,
                reason,
            } => ItemOutcome::Failed {
                reason_code: *reason_code,
                reason: reason.clone(),
            },
        }
    }
}
