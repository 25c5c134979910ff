use super::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Every entity is identified by a UUID. Ids are generated on the server only
/// (UUIDv7, so they sort by creation time and keep indexes compact).
macro_rules! uuid_id {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "ssr", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(pub Uuid);

        impl $name {
            #[cfg(feature = "ssr")]
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(input: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(input.trim()).map(Self).map_err(|_| {
                    ParseError(format!("not a valid {} (expected a UUID)", stringify!($name)))
                })
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    )+};
}

uuid_id!(
    TenantId,
    UserId,
    RunId,
    FindingId,
    NotificationId,
    AuditLogId,
    InventorySyncRunId,
    InventoryItemId,
    PolicyId,
    BackupSetId,
    BackupSetItemId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_hyphenated_uuid() {
        let id = RunId::parse("0190a6b2-7c1e-7d3a-9f00-000000000001").unwrap();
        assert_eq!(id.to_string(), "0190a6b2-7c1e-7d3a-9f00-000000000001");
    }

    #[test]
    fn rejects_garbage_with_a_clear_message() {
        let err = RunId::parse("42; drop table").unwrap_err();
        assert!(err.0.contains("not a valid RunId"), "{}", err.0);
    }
}
