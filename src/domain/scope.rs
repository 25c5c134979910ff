//! A run's `item_ids`: the spec's object naming the stable identifiers of
//! what the run works on. Other code reads it straight from the table
//! (`item_ids->>'scope_key'`), so its shape is a contract.

use super::{BackupSetId, InventorySyncRunId, OperationKind, ParseError, PolicyId};
use serde::{Deserialize, Serialize};

/// What a run works on, per operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RunScope {
    Drift(DriftScope),
    AddPolicies(AddPoliciesScope),
}

/// `drift.generate`: `{scope_key, baseline_run_id, current_run_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftScope {
    pub scope_key: String,
    pub baseline_run_id: InventorySyncRunId,
    pub current_run_id: InventorySyncRunId,
    /// A retry names the subjects it compares again; a whole run has none
    /// (it compares every subject of either sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<String>>,
}

/// `backup_set.add_policies`: `{backup_set_id, policy_ids, options}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPoliciesScope {
    pub backup_set_id: BackupSetId,
    /// Sorted and distinct; a retry's are the policies it adds again.
    pub policy_ids: Vec<PolicyId>,
    pub options: AddPoliciesOptions,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPoliciesOptions {
    /// Snapshot each policy's full payload, not only its metadata.
    #[serde(default)]
    pub include_payload: bool,
}

impl RunScope {
    /// Reads a run's stored `item_ids` as its operation shapes them.
    pub fn parse(
        operation: OperationKind,
        item_ids: &serde_json::Value,
    ) -> Result<Self, ParseError> {
        let malformed = |e: serde_json::Error| {
            ParseError(format!(
                "the run's item_ids do not describe a {} run: {e}",
                operation.code()
            ))
        };
        Ok(match operation {
            OperationKind::DriftGenerate => {
                RunScope::Drift(serde_json::from_value(item_ids.clone()).map_err(malformed)?)
            }
            OperationKind::BackupSetAddPolicies => {
                RunScope::AddPolicies(serde_json::from_value(item_ids.clone()).map_err(malformed)?)
            }
        })
    }

    pub fn operation(&self) -> OperationKind {
        match self {
            RunScope::Drift(_) => OperationKind::DriftGenerate,
            RunScope::AddPolicies(_) => OperationKind::BackupSetAddPolicies,
        }
    }

    /// The stored form.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a scope is plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_ids_have_the_specs_fields_and_read_back() {
        let baseline = InventorySyncRunId(uuid::Uuid::from_u128(1));
        let current = InventorySyncRunId(uuid::Uuid::from_u128(2));
        let drift = RunScope::Drift(DriftScope {
            scope_key: "devices".into(),
            baseline_run_id: baseline,
            current_run_id: current,
            subjects: None,
        });
        assert_eq!(
            drift.to_value(),
            json!({ "scope_key": "devices", "baseline_run_id": baseline, "current_run_id": current })
        );
        assert_eq!(
            RunScope::parse(OperationKind::DriftGenerate, &drift.to_value()),
            Ok(drift)
        );

        let set = BackupSetId(uuid::Uuid::from_u128(3));
        let policy = PolicyId(uuid::Uuid::from_u128(4));
        let add = RunScope::AddPolicies(AddPoliciesScope {
            backup_set_id: set,
            policy_ids: vec![policy],
            options: AddPoliciesOptions {
                include_payload: true,
            },
        });
        assert_eq!(
            add.to_value(),
            json!({ "backup_set_id": set, "policy_ids": [policy], "options": { "include_payload": true } })
        );
        assert_eq!(
            RunScope::parse(OperationKind::BackupSetAddPolicies, &add.to_value()),
            Ok(add.clone())
        );
        assert_eq!(add.operation(), OperationKind::BackupSetAddPolicies);

        // Read as the operation says, never guessed from the shape.
        let err = RunScope::parse(OperationKind::DriftGenerate, &add.to_value()).unwrap_err();
        assert!(err.0.contains("drift.generate"), "{err}");
        assert!(RunScope::parse(OperationKind::DriftGenerate, &json!([])).is_err());
    }
}
