//! `backup_set.add_policies`: snapshots each policy into a backup set. The
//! store decides "already present" and "gone meanwhile" in the transaction
//! that writes the snapshot.

use crate::domain::*;
use crate::server::store::*;
use std::collections::HashMap;

/// A snapshot larger than this is refused (`invalid_payload`): backup sets
/// hold configuration, not bulk data.
pub const MAX_SNAPSHOT_BYTES: usize = 256 * 1024;

pub struct AddPoliciesExecution {
    run_id: RunId,
    tenant_id: TenantId,
    params: AddPoliciesScope,
    policies: HashMap<String, Policy>,
}

impl AddPoliciesExecution {
    /// The policy ids the run has left to add (ids that do not parse name
    /// no policy: they fail as not found).
    pub fn wanted(run: &ClaimedRun) -> impl Iterator<Item = PolicyId> + '_ {
        run.remaining_items()
            .unwrap_or_default()
            .iter()
            .filter_map(|id| PolicyId::parse(id).ok())
    }

    /// `tenant_policies`: the run's tenant's policies among (at least) those
    /// it wants — another tenant's id is "not found".
    pub fn new(
        run: &ClaimedRun,
        params: AddPoliciesScope,
        tenant_policies: &HashMap<PolicyId, Policy>,
    ) -> Self {
        let policies = Self::wanted(run)
            .filter_map(|id| tenant_policies.get(&id))
            .map(|policy| (policy.id.to_string(), policy.clone()))
            .collect();
        Self {
            run_id: run.lease.run_id,
            tenant_id: run.lease.tenant_id,
            params,
            policies,
        }
    }

    pub fn process(&self, item_id: &str) -> ItemOutcome {
        let Some(policy) = self.policies.get(item_id) else {
            return ItemOutcome::Failed {
                reason_code: ReasonCode::PolicyNotFound,
                reason: "the policy does not exist in this tenant".into(),
            };
        };
        let mut snapshot = serde_json::json!({
            "external_id": policy.external_id,
            "name": policy.name,
            "policy_type": policy.policy_type,
        });
        if self.params.options.include_payload {
            snapshot["payload"] = policy.payload.clone();
        }
        let size = snapshot.to_string().len();
        if size > MAX_SNAPSHOT_BYTES {
            return ItemOutcome::Failed {
                reason_code: ReasonCode::InvalidPayload,
                reason: format!(
                    "policy {:?} is {size} bytes, over the {MAX_SNAPSHOT_BYTES}-byte snapshot limit",
                    policy.name
                ),
            };
        }
        ItemOutcome::Succeeded(Some(Artifact::BackupSetItem(NewBackupSetItem {
            tenant_id: self.tenant_id,
            backup_set_id: self.params.backup_set_id,
            policy_id: policy.id,
            snapshot,
            added_by_run_id: Some(self.run_id),
        })))
    }
}
