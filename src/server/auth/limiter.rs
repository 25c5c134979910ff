//! Slows brute force down: after `max_failures` failed sign-ins for one
//! account within `window`, further attempts for it are refused until the
//! oldest failure leaves the window. A client address gets four times as many
//! (colleagues behind one NAT must not lock each other out). Nobody is locked
//! out for good. Kept in memory: each server process counts its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many more failures a client address may have than one account.
const CLIENT_ALLOWANCE: usize = 4;

pub struct SignInLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// The keys a sign-in attempt counts against: the account first, then the
/// client address.
pub fn keys(email: &str, client: Option<IpAddr>) -> Vec<String> {
    let mut keys = vec![format!("account:{email}")];
    if let Some(ip) = client {
        keys.push(format!("client:{ip}"));
    }
    keys
}

impl SignInLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1) as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when any key has used up its failures.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now())
    }

    fn check_at(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                prune(times, now, self.window);
                let max = self.max_for(key);
                if times.len() >= max {
                    let oldest = times[times.len() - max];
                    wait = wait.max(self.window.saturating_sub(now - oldest));
                }
            }
        }
        failures.retain(|_, times| !times.is_empty());
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    fn max_for(&self, key: &str) -> usize {
        if key.starts_with("client:") {
            self.max_failures * CLIENT_ALLOWANCE
        } else {
            self.max_failures
        }
    }

    pub fn record_failure(&self, keys: &[String]) {
        self.record_failure_at(keys, Instant::now());
    }

    fn record_failure_at(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            prune(times, now, self.window);
            times.push_back(now);
        }
    }

    /// Forgets the failures of these keys (after a successful sign-in).
    pub fn clear(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            failures.remove(key);
        }
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures_until_the_window_passes() {
        let limiter = SignInLimiter::new(3, Duration::from_secs(60));
        let keys = keys("a@x.test", Some("10.0.0.1".parse().unwrap()));
        let start = Instant::now();
        for n in 0..3 {
            assert!(limiter
                .check_at(&keys, start + Duration::from_secs(n))
                .is_ok());
            limiter.record_failure_at(&keys, start + Duration::from_secs(n));
        }
        let wait = limiter
            .check_at(&keys, start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter
            .check_at(&keys, start + Duration::from_secs(61))
            .is_ok());
    }

    #[test]
    fn one_address_trying_many_accounts_is_slowed_too() {
        let limiter = SignInLimiter::new(2, Duration::from_secs(60));
        let ip = Some("10.0.0.2".parse().unwrap());
        for n in 0..(2 * CLIENT_ALLOWANCE) {
            assert!(limiter.check(&keys("c@x.test", ip)).is_ok(), "attempt {n}");
            limiter.record_failure(&keys(&format!("user{n}@x.test"), ip));
        }
        assert!(limiter.check(&keys("c@x.test", ip)).is_err());
        assert!(limiter.check(&keys("c@x.test", None)).is_ok());
        limiter.clear(&keys("c@x.test", ip)[..1]);
        assert!(
            limiter.check(&keys("c@x.test", ip)).is_err(),
            "clearing the account keeps the address count"
        );
    }
}
