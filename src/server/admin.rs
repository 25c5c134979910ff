//! Administration of users and memberships: one code path for the
//! `opshub user …` CLI and the admins' members page. Every change is
//! validated first and audited in the tenant it touches (a membership
//! change in its own transaction, by the store).

use crate::domain::{Role, Tenant, User, UserId};
use crate::server::auth::hash_password;
use crate::server::store::{MembershipAudit, NewAuditEntry, NewUser, Store, StoreError};

pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

pub fn validate_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// An e-mail address as accounts are keyed by it: trimmed, lower case.
pub fn normalise_email(email: &str) -> Result<String, AdminError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{} is not an email address",
            crate::domain::quote_input(&email)
        )));
    }
    Ok(email)
}

/// Who made a change: a signed-in admin, or the command line (`None`).
pub type Actor = Option<UserId>;

/// Grants `role` in `tenant` to an existing user (by email). For a member
/// already this changes their role, under the same rule as `change_role`.
pub async fn grant(
    store: &dyn Store,
    actor: Actor,
    tenant: &Tenant,
    email: &str,
    role: Role,
) -> Result<User, AdminError> {
    let user = store
        .user_credentials(email)
        .await?
        .map(|found| found.user)
        .ok_or_else(|| invalid(format!("no user with email {:?}", email.trim())))?;
    store
        .set_membership(tenant.id, user.id, role, MembershipAudit::By(actor))
        .await
        .map_err(membership_error)?;
    Ok(user)
}

/// Changes a member's role. A tenant always keeps at least one admin: the
/// store checks and changes in one transaction, so two admins demoting each
/// other at once leave one of them admin.
pub async fn change_role(
    store: &dyn Store,
    actor: Actor,
    tenant: &Tenant,
    user: UserId,
    role: Role,
) -> Result<(), AdminError> {
    store
        .change_member_role(tenant.id, user, role, MembershipAudit::By(actor))
        .await
        .map_err(membership_error)?;
    Ok(())
}

/// Removes a membership. A tenant always keeps at least one admin (checked
/// atomically, as in `change_role`).
pub async fn remove(
    store: &dyn Store,
    actor: Actor,
    tenant: &Tenant,
    user: UserId,
) -> Result<(), AdminError> {
    store
        .remove_membership(tenant.id, user, MembershipAudit::By(actor))
        .await
        .map_err(membership_error)?;
    Ok(())
}

fn membership_error(error: StoreError) -> AdminError {
    match error {
        StoreError::NotFound => AdminError::NotFound,
        StoreError::LastAdmin => invalid(StoreError::LastAdmin.to_string()),
        other => other.into(),
    }
}

/// The CLI's ways in: tenants by slug, users by email.
pub mod cli {
    use super::*;

    async fn tenant(store: &dyn Store, slug: &str) -> Result<Tenant, AdminError> {
        store
            .tenant_by_slug(slug)
            .await?
            .ok_or_else(|| invalid(format!("no tenant with slug {slug:?}")))
    }

    async fn user(store: &dyn Store, email: &str) -> Result<User, AdminError> {
        store
            .user_credentials(email)
            .await?
            .map(|found| found.user)
            .ok_or_else(|| invalid(format!("no user with email {email:?}")))
    }

    fn not_member(user: &User, tenant: &Tenant) -> impl FnOnce(AdminError) -> AdminError {
        let message = format!("{} is not a member of {}", user.email, tenant.slug);
        move |e| match e {
            AdminError::NotFound => invalid(message),
            other => other,
        }
    }

    /// Creates the user if the email is new (a password and a name are then
    /// required) and grants `role` in the tenant.
    pub async fn add_user(
        store: &dyn Store,
        email: &str,
        display_name: &str,
        tenant_slug: &str,
        role: Role,
        password: Option<String>,
    ) -> Result<User, AdminError> {
        let email = normalise_email(email)?;
        let tenant = tenant(store, tenant_slug).await?;
        if store.user_credentials(&email).await?.is_none() {
            let password = password
                .ok_or_else(|| invalid("a new user needs a password (--password-stdin)"))?;
            validate_password(&password)?;
            if display_name.trim().is_empty() {
                return Err(invalid("a new user needs a name (--name)"));
            }
            let hash = hash_password(password)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            store
                .create_user(NewUser {
                    email: email.clone(),
                    display_name: display_name.to_string(),
                    password_hash: Some(hash),
                })
                .await?;
        }
        grant(store, None, &tenant, &email, role).await
    }

    pub async fn set_role(
        store: &dyn Store,
        email: &str,
        tenant_slug: &str,
        role: Role,
    ) -> Result<(), AdminError> {
        let tenant = tenant(store, tenant_slug).await?;
        let user = user(store, email).await?;
        change_role(store, None, &tenant, user.id, role)
            .await
            .map_err(not_member(&user, &tenant))
    }

    pub async fn remove_membership(
        store: &dyn Store,
        email: &str,
        tenant_slug: &str,
    ) -> Result<(), AdminError> {
        let tenant = tenant(store, tenant_slug).await?;
        let user = user(store, email).await?;
        remove(store, None, &tenant, user.id)
            .await
            .map_err(not_member(&user, &tenant))
    }

    /// Sets a new password; every existing session of the user ends with it.
    pub async fn set_password(
        store: &dyn Store,
        email: &str,
        password: String,
    ) -> Result<(), AdminError> {
        validate_password(&password)?;
        let user = user(store, email).await?;
        let hash = hash_password(password)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        store.set_password_hash(user.id, &hash).await?;
        for membership in store.memberships(user.id).await? {
            store
                .record_audit(NewAuditEntry {
                    tenant_id: membership.tenant.id,
                    user_id: None,
                    action: "user.password_change".to_string(),
                    resource: "user".to_string(),
                    resource_id: Some(user.id.to_string()),
                    metadata: serde_json::json!({}),
                })
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::arbitrary::{self, hostile_text};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn passwords_and_emails_are_checked_without_panicking(text in hostile_text()) {
            prop_assert_eq!(
                validate_password(&text).is_ok(),
                text.chars().count() >= MIN_PASSWORD_CHARS
            );
            match normalise_email(&text) {
                Ok(email) => {
                    prop_assert!(email.contains('@') && email.len() <= 254);
                    prop_assert_eq!(normalise_email(&email).unwrap(), email);
                }
                Err(error) => prop_assert!(error.to_string().chars().count() < 120),
            }
        }
    }
}
