use super::ParseError;
use serde::{Deserialize, Serialize};

/// The closed list of operations a run can perform. Stored as the pair
/// (`resource`, `action`) of the spec; the database CHECKs the same pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
            .ok_or_else(|| {
                ParseError(format!(
                    "unknown operation {}.{}",
                    super::quote_input(resource),
                    super::quote_input(action)
                ))
            })
    }

    pub fn parse(code: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.code() == code)
            .ok_or_else(|| ParseError(format!("{} is not an operation", super::quote_input(code))))
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

/// The deterministic idempotency key of an operation over a scope: the same
/// tenant, operation and scope always give the same key; scope parts are
/// order-insensitive (policy ids `[a, b]` and `[b, a]` are one scope).
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
    use crate::domain::TenantId;

    #[test]
    fn keys_are_deterministic_and_order_insensitive() {
        let tenant = TenantId(uuid::Uuid::from_u128(7));
        let op = OperationKind::BackupSetAddPolicies;
        let a = idempotency_key(tenant, op, &["set-1", "p1", "p2"]);
        assert_eq!(a, idempotency_key(tenant, op, &["p2", "set-1", "p1"]));
        assert!(a.starts_with("backup_set.add_policies:"));
        assert_ne!(a, idempotency_key(tenant, op, &["set-1", "p1"]));
        assert_ne!(
            a,
            idempotency_key(
                TenantId(uuid::Uuid::from_u128(8)),
                op,
                &["set-1", "p1", "p2"]
            )
        );
        assert_ne!(
            idempotency_key(tenant, op, &["ab", "c"]),
            idempotency_key(tenant, op, &["a", "bc"])
        );
    }
}
