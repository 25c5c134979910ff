//! Administration of users and memberships, for the `opshub user …` CLI.
//! Every change is validated first and audited in the tenant it touches.

use crate::domain::{Role, Tenant, TenantId, User, UserId};
use crate::server::auth::hash_password;
use crate::server::store::{NewAuditEntry, NewUser, Store, StoreError};

pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
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

async fn audit(
    store: &dyn Store,
    tenant: TenantId,
    action: &str,
    subject: UserId,
    metadata: serde_json::Value,
) -> Result<(), AdminError> {
    store
        .record_audit(NewAuditEntry {
            tenant_id: tenant,
            // Changed from the command line: no signed-in actor.
            user_id: None,
            action: action.to_string(),
            resource: "membership".to_string(),
            resource_id: Some(subject.to_string()),
            metadata,
        })
        .await?;
    Ok(())
}

/// Creates the user if the email is new (a password is then required) and
/// grants `role` in the tenant.
pub async fn add_user(
    store: &dyn Store,
    email: &str,
    display_name: &str,
    tenant_slug: &str,
    role: Role,
    password: Option<String>,
) -> Result<User, AdminError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(invalid(format!("{email:?} is not an email address")));
    }
    let tenant = tenant(store, tenant_slug).await?;
    let existing = store.user_credentials(&email).await?;
    let user = match existing {
        Some(found) => found.user,
        None => {
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
                    email,
                    display_name: display_name.to_string(),
                    password_hash: Some(hash),
                })
                .await?
        }
    };
    store.set_membership(tenant.id, user.id, role).await?;
    audit(
        store,
        tenant.id,
        "membership.grant",
        user.id,
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    Ok(user)
}

pub async fn set_role(
    store: &dyn Store,
    email: &str,
    tenant_slug: &str,
    role: Role,
) -> Result<(), AdminError> {
    let tenant = tenant(store, tenant_slug).await?;
    let user = user(store, email).await?;
    let before = store
        .membership(user.id, &tenant.slug)
        .await?
        .ok_or_else(|| {
            invalid(format!(
                "{} is not a member of {}; use `opshub user add`",
                user.email, tenant.slug
            ))
        })?;
    store.set_membership(tenant.id, user.id, role).await?;
    audit(
        store,
        tenant.id,
        "membership.role_change",
        user.id,
        serde_json::json!({ "from": before.role.as_str(), "to": role.as_str() }),
    )
    .await
}

pub async fn remove_membership(
    store: &dyn Store,
    email: &str,
    tenant_slug: &str,
) -> Result<(), AdminError> {
    let tenant = tenant(store, tenant_slug).await?;
    let user = user(store, email).await?;
    store
        .remove_membership(tenant.id, user.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                invalid(format!("{} is not a member of {}", user.email, tenant.slug))
            }
            other => other.into(),
        })?;
    audit(
        store,
        tenant.id,
        "membership.remove",
        user.id,
        serde_json::json!({}),
    )
    .await
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
        audit(
            store,
            membership.tenant.id,
            "user.password_change",
            user.id,
            serde_json::json!({}),
        )
        .await?;
    }
    Ok(())
}
