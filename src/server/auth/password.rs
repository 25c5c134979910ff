use super::AuthError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use std::sync::LazyLock;

/// Verified against when the user is unknown or has no password, so that
/// every failed sign-in costs the same.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password_blocking("not a real password").unwrap_or_default());

/// argon2id with the crate's recommended parameters, as a PHC string.
pub async fn hash_password(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|_| AuthError::Hashing)?
}

fn hash_password_blocking(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| AuthError::Hashing)
}

/// True when `password` matches `hash`; a missing hash never matches.
/// Hashing is CPU-bound, so it runs off the async workers.
pub async fn verify_password(hash: Option<String>, password: String) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let matches = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && matches
    })
    .await
    .map_err(|_| AuthError::Hashing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse".into()).await.unwrap();
        let b = hash_password("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify_password(Some(a.clone()), "correct horse".into())
            .await
            .unwrap());
        assert!(!verify_password(Some(a), "wrong".into()).await.unwrap());
        assert!(!verify_password(None, "not a real password".into())
            .await
            .unwrap());
        assert!(!verify_password(Some("garbage".into()), "x".into())
            .await
            .unwrap());
    }
}
