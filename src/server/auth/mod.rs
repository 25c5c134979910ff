//! Sign-in: users, password hashes, the axum-login backend, the brute-force
//! limiter, and the middleware that guards pages and state-changing requests.

mod client;
mod guard;
mod limiter;
mod password;

pub use client::{client_address, TrustedProxies};
pub use guard::{absolute_expiry, page_guard, same_origin_only, SIGNED_IN_AT};
pub use limiter::{Admitted, SignInLimiter};
pub use password::{hash_password, verify_password};

use crate::domain::{User, UserId};
use crate::server::store::{Store, StoreError};
use axum_login::{AuthUser, AuthnBackend};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub type AuthSession = axum_login::AuthSession<AuthBackend>;

/// The signed-in user as the session knows them.
#[derive(Clone)]
pub struct SessionUser {
    pub user: User,
    /// Changing the password changes this and so ends every other session.
    auth_hash: Vec<u8>,
}

impl std::fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash.
        f.debug_struct("SessionUser")
            .field("user", &self.user)
            .finish()
    }
}

impl AuthUser for SessionUser {
    type Id = UserId;

    fn id(&self) -> UserId {
        self.user.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

pub struct Credentials {
    pub email: String,
    pub password: String,
    pub client: Option<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("too many sign-in attempts; try again in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    /// Every password-hashing slot is taken.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hashing,
}

/// How often a signed-in request tries to read its user through transient
/// database errors, and the pause between tries.
const USER_READ_TRIES: u32 = 3;
const USER_READ_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct AuthBackend {
    store: Arc<dyn Store>,
    limiter: Arc<SignInLimiter>,
}

impl AuthBackend {
    pub fn new(store: Arc<dyn Store>, limiter: Arc<SignInLimiter>) -> Self {
        Self { store, limiter }
    }
}

impl AuthnBackend for AuthBackend {
    type User = SessionUser;
    type Credentials = Credentials;
    type Error = AuthError;

    async fn authenticate(
        &self,
        credentials: Credentials,
    ) -> Result<Option<SessionUser>, AuthError> {
        let email = credentials.email.trim().to_lowercase();
        // Before any hashing: a reserved attempt (a failure unless given back).
        let admitted = self.limiter.admit(&email, credentials.client).await?;
        let found = self.store.user_credentials(&email).await?;
        let hash = found.as_ref().and_then(|c| c.password_hash.clone());
        // Unknown users cost the same hashing time as known ones, so timing
        // does not tell which emails exist.
        let valid = self
            .limiter
            .verify(&admitted, hash, credentials.password)
            .await?;
        match found {
            Some(found) if valid => {
                self.limiter.succeeded(admitted).await;
                let auth_hash = found.password_hash.unwrap_or_default().into_bytes();
                Ok(Some(SessionUser {
                    user: found.user,
                    auth_hash,
                }))
            }
            _ => Ok(None),
        }
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<SessionUser>, AuthError> {
        // Every signed-in request reads its user: a connection cut mid-query
        // would otherwise answer 500 (axum-login's answer to any backend
        // error). The read is safe to repeat; a cut can take every pooled
        // connection at once, so the tries wait a moment for fresh ones.
        let mut tries_left = USER_READ_TRIES;
        let found = loop {
            tries_left -= 1;
            match self.store.user_credentials_by_id(*id).await {
                Err(error) if error.is_transient() && tries_left > 0 => {
                    tracing::warn!(%error, tries_left, "reading the session's user failed; trying again");
                    tokio::time::sleep(USER_READ_PAUSE).await;
                }
                outcome => break outcome,
            }
        }?;
        Ok(found.map(|found| SessionUser {
            auth_hash: found.password_hash.unwrap_or_default().into_bytes(),
            user: found.user,
        }))
    }
}
