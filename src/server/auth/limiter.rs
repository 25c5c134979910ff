//! Slows brute force down without handing anyone a way to lock an owner out.
//!
//! Every sign-in attempt first takes a password-hashing slot (at most
//! `sign_in_max_concurrent_hashes` hash at once, each argon2 hash holding
//! ~19 MiB; with none free it is refused at once), then reserves one attempt
//! against three counts before any hashing — so a burst of parallel guesses
//! is hashed at most as often as the counts allow:
//!
//! - the account from this client address: `max_failures` per window, then
//!   locked until the window ends;
//! - the client address across accounts (credential stuffing): four times
//!   as many, then locked;
//! - the account across addresses: four times as many, then *throttled* to
//!   one attempt per window / (4 × max_failures) — never locked, so guesses
//!   from elsewhere cannot keep the owner out, only make them wait seconds.
//!
//! A successful sign-in gives its reservation back. The counts live in the
//! database (`SignInLimitRepository`), so every instance sharing it counts
//! together; expired ones are pruned. IPv6 clients count per /64, the block
//! one subscriber usually holds.

use super::{verify_password, AuthError};
use crate::domain::Timestamp;
use crate::server::store::{LimitRule, Store};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many more attempts a client address, and an account across all
/// addresses, get than one account from one address.
const WIDER_ALLOWANCE: u32 = 4;
/// Expired counts are pruned at most this often per process.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct SignInLimiter {
    store: Arc<dyn Store>,
    max_failures: u32,
    window: Duration,
    hash_slots: Arc<Semaphore>,
    hashes: AtomicU64,
    last_prune: Mutex<Option<Instant>>,
}

/// An attempt that may hash a password: it holds a hashing slot and a
/// reserved attempt.
pub struct Admitted {
    keys: Vec<String>,
    _slot: OwnedSemaphorePermit,
}

impl SignInLimiter {
    pub fn new(
        store: Arc<dyn Store>,
        max_failures: u32,
        window: Duration,
        max_concurrent_hashes: u32,
    ) -> Self {
        Self {
            store,
            max_failures: max_failures.max(1),
            window,
            hash_slots: Arc::new(Semaphore::new(max_concurrent_hashes.max(1) as usize)),
            hashes: AtomicU64::new(0),
            last_prune: Mutex::new(None),
        }
    }

    /// The counts an attempt by `email` from `client` reserves against.
    fn rules(&self, email: &str, client: Option<IpAddr>) -> Vec<LimitRule> {
        let client = client_key(client);
        let wider = i64::from(self.max_failures.saturating_mul(WIDER_ALLOWANCE));
        vec![
            LimitRule {
                key: digest(&["pair", email, &client]),
                limit: i64::from(self.max_failures),
                spacing: self.window,
            },
            LimitRule {
                key: digest(&["client", &client]),
                limit: wider,
                spacing: self.window,
            },
            LimitRule {
                key: digest(&["account", email]),
                limit: wider,
                spacing: self.window / self.max_failures.saturating_mul(WIDER_ALLOWANCE),
            },
        ]
    }

    /// Admits an attempt (`email` already normalised): a hashing slot, then
    /// a reserved attempt on every count. `Busy` when every slot is taken,
    /// `Throttled` when a count refuses; neither hashes anything.
    pub async fn admit(&self, email: &str, client: Option<IpAddr>) -> Result<Admitted, AuthError> {
        let slot = self
            .hash_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        let rules = self.rules(email, client);
        let now = Timestamp::now();
        if let Err(retry_after) = self.store.reserve_sign_in(&rules, self.window, now).await? {
            return Err(AuthError::Throttled { retry_after });
        }
        self.prune_now_and_then(now).await;
        Ok(Admitted {
            keys: rules.into_iter().map(|rule| rule.key).collect(),
            _slot: slot,
        })
    }

    /// Checks the password (argon2, off the async workers) for an admitted
    /// attempt.
    pub async fn verify(
        &self,
        _admitted: &Admitted,
        hash: Option<String>,
        password: String,
    ) -> Result<bool, AuthError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        verify_password(hash, password).await
    }

    /// The attempt succeeded: its reservation is given back.
    pub async fn succeeded(&self, admitted: Admitted) {
        if let Err(e) = self.store.release_sign_in(&admitted.keys).await {
            tracing::warn!(error = %e, "cannot give back a sign-in reservation");
        }
    }

    /// Password hashes this limiter let run (tests count them).
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// The hashing slots (tests hold them all to see attempts refused).
    pub fn hash_slots(&self) -> Arc<Semaphore> {
        self.hash_slots.clone()
    }

    async fn prune_now_and_then(&self, now: Timestamp) {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.store.prune_sign_in_limits(now).await {
            tracing::warn!(error = %e, "cannot prune expired sign-in counts");
        }
    }
}

/// The address as counted: IPv6 per /64; an unknown peer counts as one
/// address of its own.
fn client_key(client: Option<IpAddr>) -> String {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let prefix = v6.to_bits() >> 64;
            format!("{prefix:016x}::/64")
        }
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    }
}

/// The stored key: a hash, so typed emails (or passwords typed into the
/// email field) are never written down.
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashes_and_ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(Some(mapped)), "192.0.2.1");
        let key = digest(&["account", "someone@example.test"]);
        assert_eq!(key.len(), 64);
        assert!(!key.contains("someone"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
    }
}
