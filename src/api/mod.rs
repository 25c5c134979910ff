//! Server functions by area. Thin: resolve the tenant, call the store, return
//! domain types. Compiled for both targets; the bodies run on the server only.

mod codec;
mod error;
pub mod findings;
pub mod insights;
pub mod members;
pub mod notifications;
pub mod operations;
#[cfg(test)]
mod proptests;
pub mod runs;
pub mod session;
pub mod tenants;

pub use error::AppError;

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::AppError;
    use crate::domain::{Role, Tenant, TenantId, TenantSlug, User, UserId};
    use crate::server::auth::AuthSession;
    use crate::server::store::{NewAuditEntry, Store};
    use crate::server::AppState;
    use leptos::prelude::*;
    use std::sync::Arc;

    pub fn store() -> Result<Arc<dyn Store>, AppError> {
        use_context::<AppState>()
            .map(|state| state.store.clone())
            .ok_or_else(|| {
                tracing::error!("AppState missing from the server function context");
                AppError::Internal
            })
    }

    /// Gives a server function's response the HTTP status of its error.
    pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(err) = &result {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(err.http_status());
            }
        }
        result
    }

    /// The request's session. Every real request has one (the auth layer
    /// adds it); the render that lists the routes at start-up has none and
    /// counts as signed out.
    pub async fn auth_session() -> Result<AuthSession, AppError> {
        leptos_axum::extract::<AuthSession>().await.map_err(|e| {
            tracing::debug!(error = %e, "no auth session in this request");
            AppError::Unauthorized
        })
    }

    /// The signed-in user, or 401.
    pub async fn signed_in_user() -> Result<User, AppError> {
        auth_session()
            .await?
            .user
            .map(|session_user| session_user.user)
            .ok_or(AppError::Unauthorized)
    }

    /// Who acts, in which tenant.
    pub struct Access {
        pub tenant: Tenant,
        pub user: User,
        /// The user's role in the tenant (at least the one asked for).
        pub role: Role,
    }

    /// Resolves the tenant named in the URL through the session's
    /// memberships and checks the role. No session: 401. A tenant the user is
    /// not a member of answers exactly like one that does not exist: 404.
    /// Too weak a role: 403.
    pub async fn authorize(slug: &str, needed: Role) -> Result<Access, AppError> {
        let user = signed_in_user().await?;
        // Text that cannot be a slug names no tenant; the database is not asked.
        if TenantSlug::parse(slug).is_err() {
            return Err(AppError::NotFound);
        }
        let membership = store()?
            .membership(user.id, slug)
            .await?
            .ok_or(AppError::NotFound)?;
        if membership.role < needed {
            return Err(AppError::Forbidden);
        }
        Ok(Access {
            tenant: membership.tenant,
            user,
            role: membership.role,
        })
    }

    /// Writes an audit entry; a failure is logged and does not undo the action
    /// that already happened.
    pub async fn audit(
        tenant: TenantId,
        user: Option<UserId>,
        action: &str,
        resource: &str,
        resource_id: Option<String>,
        metadata: serde_json::Value,
    ) {
        let entry = NewAuditEntry {
            tenant_id: tenant,
            user_id: user,
            action: action.to_string(),
            resource: resource.to_string(),
            resource_id,
            metadata,
        };
        match store() {
            Ok(store) => {
                if let Err(e) = store.record_audit(entry).await {
                    tracing::error!(error = %e, action, "could not write an audit entry");
                }
            }
            Err(_) => tracing::error!(action, "no store to write an audit entry"),
        }
    }
}
