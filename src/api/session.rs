//! Signing in and out, and who is signed in.

use super::codec::JsonText;
use super::AppError;
use crate::domain::{Membership, User};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: User,
    pub memberships: Vec<Membership>,
}

/// The signed-in user and their tenants; `None` when signed out.
#[server(endpoint = "session/current", input = Json, output = JsonText)]
pub async fn current_session() -> Result<Option<SessionInfo>, AppError> {
    let info = async {
        let Some(session_user) = super::ssr::auth_session().await?.user else {
            return Ok(None);
        };
        let memberships = super::ssr::store()?
            .memberships(session_user.user.id)
            .await?;
        Ok(Some(SessionInfo {
            user: session_user.user,
            memberships,
        }))
    }
    .await;
    super::ssr::respond(info)
}

/// Form-encoded so that the sign-in form also works without JavaScript.
/// On success the browser goes to `next` (a path on this site) or `/`.
#[server(endpoint = "session/sign-in", output = JsonText)]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    super::ssr::respond(ssr::sign_in(email, password, next).await)
}

/// Form-encoded (no arguments) so the sign-out button is a plain form.
#[server(endpoint = "session/sign-out", output = JsonText)]
pub async fn sign_out() -> Result<(), AppError> {
    super::ssr::respond(ssr::sign_out().await)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::super::ssr::{audit, auth_session, store};
    use super::AppError;
    use crate::domain::safe_next;
    use crate::domain::{Timestamp, UserId};
    use crate::server::auth::{client_address, AuthError, Credentials, SIGNED_IN_AT};
    use crate::server::store::Change;
    use crate::server::AppState;
    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    use leptos::prelude::use_context;
    use std::net::SocketAddr;

    const MAX_INPUT: usize = 1_024;

    pub async fn sign_in(
        email: String,
        password: String,
        next: Option<String>,
    ) -> Result<(), AppError> {
        if email.trim().is_empty() || password.is_empty() {
            return Err(AppError::BadRequest(
                "Enter your email and password.".into(),
            ));
        }
        // No account's email holds a control character (PostgreSQL cannot
        // even look one with NUL up).
        if email.len() > MAX_INPUT
            || password.len() > MAX_INPUT
            || email.chars().any(char::is_control)
        {
            return Err(AppError::InvalidCredentials);
        }
        let peer = leptos_axum::extract::<ConnectInfo<SocketAddr>>()
            .await
            .ok()
            .map(|ConnectInfo(addr)| addr.ip());
        let headers: HeaderMap = leptos_axum::extract().await.unwrap_or_default();
        let state = use_context::<AppState>().ok_or(AppError::Internal)?;
        let client = client_address(peer, &headers, &state.settings.trusted_proxies);
        let mut auth = auth_session().await?;
        let credentials = Credentials {
            email: email.clone(),
            password,
            client,
        };
        let user = match auth.authenticate(credentials).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                audit_tenants_of(&email, None, "auth.sign_in_failed").await;
                return Err(AppError::InvalidCredentials);
            }
            Err(axum_login::Error::Backend(AuthError::Throttled { retry_after })) => {
                tracing::warn!(client = ?client, "sign-in throttled");
                return Err(AppError::TooManyAttempts {
                    retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
            Err(axum_login::Error::Backend(AuthError::Busy)) => {
                tracing::warn!(client = ?client, "sign-in refused: every password-hashing slot is busy");
                return Err(AppError::TooManyAttempts {
                    retry_after_secs: 1,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "sign-in failed");
                return Err(AppError::Internal);
            }
        };
        // `login` cycles the session id (no session fixation).
        auth.login(&user).await.map_err(|e| {
            tracing::error!(error = %e, "could not store the session");
            AppError::Internal
        })?;
        auth.session
            .insert(SIGNED_IN_AT, Timestamp::now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not store the session");
                AppError::Internal
            })?;
        audit_tenants_of(&user.user.email, Some(user.user.id), "auth.sign_in").await;
        leptos_axum::redirect(&safe_next(next.as_deref()));
        Ok(())
    }

    pub async fn sign_out() -> Result<(), AppError> {
        let mut auth = auth_session().await?;
        let user = auth.logout().await.map_err(|e| {
            tracing::error!(error = %e, "could not end the session");
            AppError::Internal
        })?;
        if let Some(user) = user {
            // Their live streams end now (in every process); other browsers'
            // reconnect at once, authorised by their own sessions.
            store()?
                .change_log()
                .record([Change::User { user: user.user.id }]);
            audit_tenants_of(&user.user.email, Some(user.user.id), "auth.sign_out").await;
        }
        leptos_axum::redirect("/sign-in");
        Ok(())
    }

    /// Sign-in events are recorded in every tenant the account belongs to;
    /// attempts on unknown emails only reach the server log.
    async fn audit_tenants_of(email: &str, actor: Option<UserId>, action: &str) {
        let Ok(store) = store() else { return };
        let Ok(Some(found)) = store.user_credentials(email).await else {
            tracing::info!(action, "sign-in attempt for an unknown account");
            return;
        };
        let memberships = store.memberships(found.user.id).await.unwrap_or_default();
        for membership in memberships {
            audit(
                membership.tenant.id,
                actor.or(Some(found.user.id)),
                action,
                "user",
                Some(found.user.id.to_string()),
                serde_json::json!({}),
            )
            .await;
        }
    }
}
