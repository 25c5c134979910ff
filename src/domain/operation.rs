use super::ParseError;
use serde::{Deserialize, Serialize};

/// The closed list of operations a run can perform. Stored as the pair
/// (`resource`, `action`) of the spec; the database CHECKs the same pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    DriftGenerate,
    BackupSetAddPolicies,
}

impl OperationKind {
    pub const ALL: [OperationKind; 2] = [
        OperationKind::DriftGenerate,
        OperationKind::BackupSetAddPolicies,
    ];

    pub fn resource(self) -> &'static str {
        match self {
            OperationKind::DriftGenerate => "drift",
            OperationKind::BackupSetAddPolicies => "backup_set",
        }
    }

    pub fn action(self) -> &'static str {
        match self {
            OperationKind::DriftGenerate => "generate",
            OperationKind::BackupSetAddPolicies => "add_policies",
        }
    }

    /// `drift.generate`: the stable name used in URLs, filters and keys.
    pub fn code(self) -> &'static str {
        match self {
            OperationKind::DriftGenerate => "drift.generate",
            OperationKind::BackupSetAddPolicies => "backup_set.add_policies",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OperationKind::DriftGenerate => "Generate drift",
            OperationKind::BackupSetAddPolicies => "Add policies to backup set",
        }
    }

    pub fn from_parts(resource: &str, action: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.resource() == resource && kind.action() == action)
            .ok_or_else(Self::unknown)
    }

    pub fn parse(code: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.code() == code)
            .ok_or_else(Self::unknown)
    }

    fn unknown() -> ParseError {
        ParseError::not_one_of("an operation", Self::ALL.into_iter().map(Self::code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_parts_round_trip() {
        for kind in OperationKind::ALL {
            assert_eq!(OperationKind::parse(kind.code()).unwrap(), kind);
            assert_eq!(
                OperationKind::from_parts(kind.resource(), kind.action()).unwrap(),
                kind
            );
        }
        assert!(OperationKind::parse("drift.delete").is_err());
    }
}

/// Every input that changes what a run does. Two starts with equal inputs
/// are the same request (the second joins the first while it is active); a
/// start that differs in any of them is another run.
pub enum KeyInputs<'a> {
    /// Drift over one scope between two particular syncs: a newer sync makes
    /// another comparison.
    Drift {
        scope_key: &'a str,
        baseline: super::InventorySyncRunId,
        current: super::InventorySyncRunId,
    },
    /// A set of policies (in any order) into one backup set, with options.
    AddPolicies {
        backup_set: super::BackupSetId,
        policies: &'a [super::PolicyId],
        include_payload: bool,
    },
    /// The failed items (in any order) of one ended run, with that run's
    /// own inputs.
    Retry {
        operation: OperationKind,
        of_run: super::RunId,
        items: &'a [String],
    },
}

impl KeyInputs<'_> {
    pub fn operation(&self) -> OperationKind {
        match self {
            KeyInputs::Drift { .. } => OperationKind::DriftGenerate,
            KeyInputs::AddPolicies { .. } => OperationKind::BackupSetAddPolicies,
            KeyInputs::Retry { operation, .. } => *operation,
        }
    }

    /// The run's idempotency key in `tenant`.
    pub fn key(&self, tenant: super::TenantId) -> String {
        let parts: Vec<String> = match self {
            KeyInputs::Drift {
                scope_key,
                baseline,
                current,
            } => vec![
                format!("scope:{scope_key}"),
                format!("baseline:{baseline}"),
                format!("current:{current}"),
            ],
            KeyInputs::AddPolicies {
                backup_set,
                policies,
                include_payload,
            } => policies
                .iter()
                .map(|id| format!("policy:{id}"))
                .chain([
                    format!("set:{backup_set}"),
                    format!("include_payload:{include_payload}"),
                ])
                .collect(),
            KeyInputs::Retry { of_run, items, .. } => items
                .iter()
                .map(|id| format!("item:{id}"))
                .chain([format!("retry_of:{of_run}")])
                .collect(),
        };
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        idempotency_key(tenant, self.operation(), &parts)
    }
}

/// The deterministic idempotency key of an operation over a scope: the same
/// tenant, operation and scope always give the same key; scope parts are
/// order-insensitive (policy ids `[a, b]` and `[b, a]` are one scope).
/// Starts derive it from [`KeyInputs`]; the demo seed fabricates scopes.
pub fn idempotency_key(
    tenant: super::TenantId,
    operation: OperationKind,
    scope: &[&str],
) -> String {
    use sha2::{Digest, Sha256};
    let mut parts: Vec<&str> = scope.to_vec();
    parts.sort_unstable();
    parts.dedup();
    let mut hasher = Sha256::new();
    hasher.update(tenant.0.as_bytes());
    hasher.update(operation.code().as_bytes());
    for part in parts {
        // Length-prefixed so ["ab", "c"] and ["a", "bc"] differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}", operation.code())
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use crate::domain::{BackupSetId, InventorySyncRunId, PolicyId, RunId, TenantId};
    use uuid::Uuid;

    #[test]
    fn keys_are_deterministic_and_order_insensitive() {
        let tenant = TenantId(Uuid::from_u128(7));
        let op = OperationKind::BackupSetAddPolicies;
        let a = idempotency_key(tenant, op, &["set-1", "p1", "p2"]);
        assert_eq!(a, idempotency_key(tenant, op, &["p2", "set-1", "p1"]));
        assert!(a.starts_with("backup_set.add_policies:"));
        assert_ne!(a, idempotency_key(tenant, op, &["set-1", "p1"]));
        assert_ne!(
            a,
            idempotency_key(TenantId(Uuid::from_u128(8)), op, &["set-1", "p1", "p2"])
        );
        assert_ne!(
            idempotency_key(tenant, op, &["ab", "c"]),
            idempotency_key(tenant, op, &["a", "bc"])
        );
    }

    #[test]
    fn every_drift_input_is_in_the_key() {
        let tenant = TenantId(Uuid::from_u128(7));
        let sync = |n| InventorySyncRunId(Uuid::from_u128(n));
        let drift = |scope_key, baseline, current| KeyInputs::Drift {
            scope_key,
            baseline: sync(baseline),
            current: sync(current),
        };
        let key = drift("devices", 1, 2).key(tenant);
        assert!(key.starts_with("drift.generate:"));
        assert_eq!(key, drift("devices", 1, 2).key(tenant));
        // A newer sync arrived: another comparison, another run.
        assert_ne!(key, drift("devices", 2, 3).key(tenant));
        assert_ne!(key, drift("devices", 1, 3).key(tenant));
        assert_ne!(key, drift("printers", 1, 2).key(tenant));
        // Baseline and current are not interchangeable.
        assert_ne!(key, drift("devices", 2, 1).key(tenant));
        assert_ne!(
            key,
            drift("devices", 1, 2).key(TenantId(Uuid::from_u128(8)))
        );
    }

    #[test]
    fn every_add_policies_input_is_in_the_key() {
        let tenant = TenantId(Uuid::from_u128(7));
        let set = BackupSetId(Uuid::from_u128(1));
        let (p1, p2) = (PolicyId(Uuid::from_u128(2)), PolicyId(Uuid::from_u128(3)));
        let add = |backup_set, policies: &[PolicyId], include_payload| {
            KeyInputs::AddPolicies {
                backup_set,
                policies,
                include_payload,
            }
            .key(tenant)
        };
        let key = add(set, &[p1, p2], false);
        assert!(key.starts_with("backup_set.add_policies:"));
        assert_eq!(key, add(set, &[p2, p1], false));
        assert_ne!(key, add(set, &[p1, p2], true));
        assert_ne!(key, add(set, &[p1], false));
        assert_ne!(key, add(BackupSetId(Uuid::from_u128(9)), &[p1, p2], false));
    }

    #[test]
    fn a_retry_key_names_its_run_and_items() {
        let tenant = TenantId(Uuid::from_u128(7));
        let retry = |of_run: u128, items: &[String]| {
            KeyInputs::Retry {
                operation: OperationKind::DriftGenerate,
                of_run: RunId(Uuid::from_u128(of_run)),
                items,
            }
            .key(tenant)
        };
        let (a, b) = ("device:a".to_string(), "device:b".to_string());
        let key = retry(1, &[a.clone(), b.clone()]);
        assert_eq!(key, retry(1, &[b.clone(), a.clone()]));
        assert_ne!(key, retry(1, std::slice::from_ref(&a)));
        assert_ne!(key, retry(2, &[a, b]));
    }
}
