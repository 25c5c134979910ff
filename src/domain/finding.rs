use super::{FindingId, InventorySyncRunId, ParseError, RunId, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// What kind of artifact a finding is (the spec's `finding_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingType {
    Drift,
}

/// How a drift finding's subject differs between the two syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    New,
    Acknowledged,
}

/// Text forms shared by storage, URLs and the UI.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(input: &str) -> Result<Self, ParseError> {
                match input {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::not_one_of(
                        concat!("a ", stringify!($name)),
                        Self::ALL.iter().map(|value| value.as_str()),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(FindingType { Drift => "drift" });
text_enum!(ChangeKind { Added => "added", Removed => "removed", Changed => "changed" });
text_enum!(FindingStatus { New => "new", Acknowledged => "acknowledged" });

/// A drift finding: one subject that differs between two inventory syncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: FindingId,
    pub tenant_id: TenantId,
    pub finding_type: FindingType,
    pub change_kind: ChangeKind,
    pub scope_key: String,
    /// The two syncs compared; nullable, as the spec has them.
    pub baseline_run_id: Option<InventorySyncRunId>,
    pub current_run_id: Option<InventorySyncRunId>,
    /// The run that first found it (ours, beyond the spec's Phase 1 link).
    pub produced_by_run_id: Option<RunId>,
    pub fingerprint: String,
    pub subject_type: String,
    pub subject_external_id: String,
    pub status: FindingStatus,
    /// Stored as `evidence_jsonb`.
    pub evidence: serde_json::Value,
    pub acknowledged_by: Option<UserId>,
    pub acknowledged_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingFilter {
    pub status: Option<FindingStatus>,
    pub scope_key: Option<String>,
    pub subject_type: Option<String>,
    /// The spec's Phase 1 link between a drift run and its findings is
    /// scope key + baseline + current: these two with `scope_key`.
    pub baseline: Option<InventorySyncRunId>,
    pub current: Option<InventorySyncRunId>,
    pub produced_by: Option<RunId>,
}
