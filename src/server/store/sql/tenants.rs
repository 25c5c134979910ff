//! Memberships, what needs no database: what a change does and the audit
//! entry it makes. The tenants repository is `repositories/tenants.rs`.

use crate::domain::*;
use crate::server::store::NewAuditEntry;

/// What `change_membership` does to a membership.
#[derive(Clone, Copy, Debug)]
pub enum MembershipChange {
    /// Sets the role, member or not.
    Grant(Role),
    /// Sets the role of a member (`NotFound` for anyone else).
    ChangeRole(Role),
    Remove,
}

impl MembershipChange {
    /// The role after the change (`None`: no membership).
    pub fn role(self) -> Option<Role> {
        match self {
            MembershipChange::Grant(role) | MembershipChange::ChangeRole(role) => Some(role),
            MembershipChange::Remove => None,
        }
    }

    pub fn members_only(self) -> bool {
        !matches!(self, MembershipChange::Grant(_))
    }

    /// The audit entry of this change of `user`'s membership, which had
    /// the role `before`.
    pub fn audit_entry(
        self,
        tenant: TenantId,
        user: UserId,
        before: Option<Role>,
        actor: Option<UserId>,
    ) -> NewAuditEntry {
        let (action, metadata) = match (self, before) {
            (MembershipChange::Grant(role), None) => (
                audit_names::MEMBERSHIP_GRANT,
                serde_json::json!({ "role": role.as_str() }),
            ),
            (MembershipChange::Grant(role), Some(from)) => (
                audit_names::MEMBERSHIP_GRANT,
                serde_json::json!({ "role": role.as_str(), "from": from.as_str() }),
            ),
            (MembershipChange::ChangeRole(role), _) => (
                audit_names::MEMBERSHIP_ROLE_CHANGE,
                serde_json::json!({ "from": before.map(Role::as_str), "to": role.as_str() }),
            ),
            (MembershipChange::Remove, _) => (
                audit_names::MEMBERSHIP_REMOVE,
                serde_json::json!({ "role": before.map(Role::as_str) }),
            ),
        };
        NewAuditEntry {
            tenant_id: tenant,
            user_id: actor,
            action: action.to_string(),
            resource: audit_names::MEMBERSHIP.to_string(),
            resource_id: Some(user.to_string()),
            metadata,
        }
    }
}
