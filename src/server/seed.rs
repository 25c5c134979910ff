//! `opshub seed-demo`: a realistic, deterministic data set for local use and
//! the browser tests — 3 tenants, users, inventory, policies, backup sets and
//! a history of runs in every status.

use crate::domain::*;
use crate::server::store::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const RUNS_PER_TENANT: usize = 220;

/// The password of every demo user (listed in the README, for local use only).
pub const DEMO_PASSWORD: &str = "opshub-demo";

const TENANTS: [(&str, &str); 3] = [
    ("acme", "Acme Corp"),
    ("globex", "Globex Corporation"),
    ("initech", "Initech"),
];

/// (email local part, display name, role) per tenant.
const MEMBERS: [(&str, &str, Role); 3] = [
    ("operator", "Olivia Operator", Role::Operator),
    ("viewer", "Victor Viewer", Role::Viewer),
    ("admin", "Ada Admin", Role::Admin),
];

const SCOPES: [&str; 2] = ["devices/windows", "apps/managed"];

const FAILURE_REASONS: [(ReasonCode, &str); 6] = [
    (
        ReasonCode::PermissionDenied,
        "Graph API returned 403: the app lacks DeviceManagementConfiguration.ReadWrite.All",
    ),
    (
        ReasonCode::UpstreamUnavailable,
        "Upstream returned 503 Service Unavailable after 3 retries",
    ),
    (
        ReasonCode::RateLimited,
        "Throttled by upstream (429); retry-after 30s exceeded the run's budget",
    ),
    (
        ReasonCode::InvalidPayload,
        "Policy payload failed validation: missing field `settings`",
    ),
    (ReasonCode::Timeout, "Snapshot request timed out after 30s"),
    (
        ReasonCode::PolicyNotFound,
        "Policy no longer exists in the tenant",
    ),
];

/// Seeds an empty database; refuses to touch one that has tenants.
pub async fn seed_demo(store: &dyn Store) -> Result<SeedSummary, StoreError> {
    if !store.is_empty().await? {
        return Err(StoreError::Invalid(
            "the database already has tenants; seed-demo only fills an empty database".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(0x0b5_40b);
    let now = Timestamp::now();
    let mut summary = SeedSummary::default();
    // One hash for all demo users: argon2 is deliberately slow.
    let password_hash = crate::server::auth::hash_password(DEMO_PASSWORD.to_string())
        .await
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let multi = store
        .create_user(NewUser {
            email: "multi@opshub.example".into(),
            display_name: "Morgan Multi".into(),
            password_hash: Some(password_hash.clone()),
        })
        .await?;
    summary.users += 1;
    for (slug, name) in TENANTS {
        let tenant = store
            .create_tenant(
                &TenantSlug::parse(slug).map_err(|e| StoreError::Invalid(e.0))?,
                name,
            )
            .await?;
        summary.tenants += 1;
        let mut users = Vec::new();
        for (local, display, role) in MEMBERS {
            let user = store
                .create_user(NewUser {
                    email: format!("{local}@{slug}.example"),
                    display_name: display.to_string(),
                    password_hash: Some(password_hash.clone()),
                })
                .await?;
            store
                .set_membership(tenant.id, user.id, role, MembershipAudit::Unaudited)
                .await?;
            users.push(user);
        }
        summary.users += users.len();
        store
            .set_membership(
                tenant.id,
                multi.id,
                Role::Operator,
                MembershipAudit::Unaudited,
            )
            .await?;
        let scopes = seed_inventory(store, &tenant, &mut rng, now).await?;
        let policies = seed_policies(store, &tenant).await?;
        let set = seed_backup_sets(store, &tenant, &policies).await?;
        let inputs = RunInputs {
            scopes,
            policies,
            set,
        };
        summary.runs += seed_runs(store, &tenant, &users, &inputs, &mut rng, now).await?;
    }
    Ok(summary)
}

#[derive(Debug, Default)]
pub struct SeedSummary {
    pub tenants: usize,
    pub users: usize,
    pub runs: usize,
}

/// What the demo runs work on: real scopes, policies and a backup set, so
/// that the engine can execute (and retry) them like any other run.
struct RunInputs {
    /// Per scope: drift parameters over its last two syncs, and its subjects.
    scopes: Vec<(DriftScope, Vec<String>)>,
    policies: Vec<Policy>,
    set: BackupSet,
}

async fn seed_inventory(
    store: &dyn Store,
    tenant: &Tenant,
    rng: &mut StdRng,
    now: Timestamp,
) -> Result<Vec<(DriftScope, Vec<String>)>, StoreError> {
    let mut scopes = Vec::new();
    for (scope_index, scope) in SCOPES.iter().enumerate() {
        let mut syncs = Vec::new();
        let subject_type = if scope_index == 0 { "device" } else { "app" };
        // Three syncs a day apart; each drops, adds and changes a few subjects.
        for sync in 0..3i64 {
            let items = (0..40)
                .filter(|n| (n + sync) % 13 != 0)
                .map(|n| {
                    let version = if n % 7 == 0 { sync } else { 0 };
                    NewInventoryItem {
                        subject_type: subject_type.to_string(),
                        external_id: format!("{subject_type}-{n:03}"),
                        display_name: format!("{} {}", subject_type.to_uppercase(), n),
                        payload: serde_json::json!({
                            "os_version": format!("10.0.{}", 19_040 + version),
                            "compliant": (n + sync) % 5 != 0,
                            "owner": "it-ops",
                            "sample": rng.gen_range(0..1_000),
                        }),
                    }
                })
                .collect();
            let recorded = store
                .record_inventory_sync(NewInventorySync {
                    tenant_id: tenant.id,
                    selection_hash: scope.to_string(),
                    finished_at: now.plus_millis(-(3 - sync) * 86_400_000),
                    items,
                })
                .await?;
            syncs.push(recorded.id);
        }
        let params = DriftScope {
            scope_key: scope.to_string(),
            baseline_run_id: syncs[1],
            current_run_id: syncs[2],
            subjects: None,
        };
        let subjects = (0..40)
            .map(|n| format!("{subject_type}:{subject_type}-{n:03}"))
            .collect();
        scopes.push((params, subjects));
    }
    Ok(scopes)
}

async fn seed_policies(store: &dyn Store, tenant: &Tenant) -> Result<Vec<Policy>, StoreError> {
    let kinds = [
        "compliance",
        "configuration",
        "app_protection",
        "conditional_access",
    ];
    let mut policies = Vec::new();
    for n in 0..12 {
        let policy_type = kinds[n % kinds.len()];
        policies.push(
            store
                .create_policy(NewPolicy {
                    tenant_id: tenant.id,
                    external_id: format!("pol-{n:03}"),
                    name: format!("{} baseline {}", policy_type.replace('_', " "), n + 1),
                    policy_type: policy_type.to_string(),
                    payload: serde_json::json!({ "settings": { "level": n % 3 }, "version": 1 }),
                })
                .await?,
        );
    }
    Ok(policies)
}

/// The three demo sets; returns the first, which the demo runs fill.
async fn seed_backup_sets(
    store: &dyn Store,
    tenant: &Tenant,
    policies: &[Policy],
) -> Result<BackupSet, StoreError> {
    let mut sets = Vec::new();
    for (index, name) in ["Nightly baseline", "Pre-change snapshot", "Quarterly audit"]
        .iter()
        .enumerate()
    {
        let set = store.create_backup_set(tenant.id, name).await?;
        sets.push(set.clone());
        for policy in policies.iter().skip(index).step_by(3).take(2) {
            store
                .add_to_backup_set(NewBackupSetItem {
                    tenant_id: tenant.id,
                    backup_set_id: set.id,
                    policy_id: policy.id,
                    snapshot: policy.payload.clone(),
                    added_by_run_id: None,
                })
                .await?;
        }
    }
    Ok(sets.swap_remove(0))
}

/// A history of runs over the last 30 days with the newest few still active.
async fn seed_runs(
    store: &dyn Store,
    tenant: &Tenant,
    users: &[User],
    inputs: &RunInputs,
    rng: &mut StdRng,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let policies = &inputs.policies;
    let span_micros = 30 * 86_400_000_000i64;
    let mut runs = Vec::with_capacity(RUNS_PER_TENANT);
    for n in 0..RUNS_PER_TENANT {
        // Oldest first; run n is created (RUNS - n) steps before now.
        let age = span_micros * (RUNS_PER_TENANT - n) as i64 / RUNS_PER_TENANT as i64;
        let created_at = Timestamp(now.0 - age);
        let newest = RUNS_PER_TENANT - n;
        let status = match newest {
            1..=3 => RunStatus::Pending,
            4..=6 => RunStatus::Running,
            _ => match rng.gen_range(0..100) {
                0..=59 => RunStatus::Completed,
                60..=79 => RunStatus::CompletedWithErrors,
                80..=92 => RunStatus::Failed,
                _ => RunStatus::Aborted,
            },
        };
        let operation = if n % 3 == 0 {
            OperationKind::BackupSetAddPolicies
        } else {
            OperationKind::DriftGenerate
        };
        let (work_items, item_ids, scope_parts) = match operation {
            OperationKind::BackupSetAddPolicies => {
                let count = rng.gen_range(2..=policies.len());
                let ids: Vec<String> = policies
                    .iter()
                    .take(count)
                    .map(|p| p.id.to_string())
                    .collect();
                let mut scope: Vec<String> = ids.iter().map(|id| format!("policy:{id}")).collect();
                scope.push(format!("set:{n}"));
                let item_ids = RunScope::AddPolicies(AddPoliciesScope {
                    backup_set_id: inputs.set.id,
                    policy_ids: policies.iter().take(count).map(|p| p.id).collect(),
                    options: AddPoliciesOptions::default(),
                });
                (ids, item_ids, scope)
            }
            OperationKind::DriftGenerate => {
                let (params, subjects) = &inputs.scopes[n % inputs.scopes.len()];
                let ids: Vec<String> = subjects
                    .iter()
                    .take(rng.gen_range(20..=40))
                    .cloned()
                    .collect();
                let scope = vec![format!("scope:{}:{n}", params.scope_key)];
                (ids, RunScope::Drift(params.clone()), scope)
            }
        };
        let total = work_items.len() as i64;
        let (counters, failures) = outcome(status, &work_items, rng);
        let started_at = (status != RunStatus::Pending)
            .then(|| created_at.plus_millis(rng.gen_range(200..5_000)));
        let finished_at = status.is_terminal().then(|| {
            started_at
                .unwrap_or(created_at)
                .plus_millis(rng.gen_range(2_000..600_000))
        });
        let scope_refs: Vec<&str> = scope_parts.iter().map(String::as_str).collect();
        runs.push(RunRecord {
            id: RunId::generate(),
            tenant_id: tenant.id,
            user_id: users[n % 2 * 2].id,
            operation,
            idempotency_key: Some(idempotency_key(tenant.id, operation, &scope_refs)),
            status,
            counters: Counters { total, ..counters },
            item_ids,
            work_items,
            failures,
            attempt: i64::from(status != RunStatus::Pending),
            created_at,
            started_at,
            finished_at,
        });
    }
    store.insert_run_records(&runs).await?;
    Ok(RUNS_PER_TENANT)
}

/// Counters and failure entries that add up for a run in `status`.
fn outcome(status: RunStatus, items: &[String], rng: &mut StdRng) -> (Counters, Vec<FailureEntry>) {
    let total = items.len() as i64;
    let processed = match status {
        RunStatus::Pending => 0,
        RunStatus::Running | RunStatus::Aborted => rng.gen_range(0..=total),
        _ => total,
    };
    let (failed, skipped) = match status {
        RunStatus::Completed => (0, rng.gen_range(0..=processed.min(2))),
        RunStatus::CompletedWithErrors => {
            let failed = rng.gen_range(1..=processed.clamp(1, 5));
            (failed, rng.gen_range(0..=(processed - failed).min(2)))
        }
        RunStatus::Failed => (processed, 0),
        _ => {
            let failed = rng.gen_range(0..=processed.min(2));
            (failed, 0)
        }
    };
    let succeeded = processed - failed - skipped;
    let mut failures = Vec::new();
    for (index, item) in items.iter().enumerate().take((failed + skipped) as usize) {
        if (index as i64) < failed {
            let (code, reason) = FAILURE_REASONS[rng.gen_range(0..FAILURE_REASONS.len())];
            failures.push(FailureEntry::failed(Some(item.clone()), code, reason));
        } else {
            failures.push(FailureEntry::skipped(
                Some(item.clone()),
                ReasonCode::AlreadyPresent,
                "Already present in the backup set; left unchanged",
            ));
        }
    }
    (
        Counters {
            total,
            processed,
            succeeded,
            failed,
            skipped,
        },
        failures,
    )
}
