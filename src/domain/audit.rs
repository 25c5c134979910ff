use super::{AuditLogId, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// One entry of a tenant's audit log: who did what to which resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditLogId,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub action: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
}
