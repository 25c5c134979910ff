//! The sign-in limiter, on both databases: its counts in the store
//! (reservations are atomic and all-or-nothing, throttles space attempts,
//! expired counts are pruned) and over the real router (a burst of parallel
//! guesses is hashed at most `max_failures` times, busy hashing slots answer
//! 429 at once, an attacker cannot lock the owner out from elsewhere, one
//! address cannot try account after account, `X-Forwarded-For` counts only
//! from trusted proxies, and every instance on one database counts together).

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use opshub::domain::*;
use opshub::server::config::Settings;
use opshub::server::seed::DEMO_PASSWORD;
use opshub::server::store::*;
use opshub::server::{http::router, AppState};
use std::net::SocketAddr;
use std::time::Duration;
use support::app::{App, MAX_FAILURES};

const SECOND: i64 = 1_000_000;

fn rule(key: char, limit: i64, spacing: Duration) -> LimitRule {
    LimitRule {
        key: key.to_string().repeat(64),
        limit,
        spacing,
    }
}

on_both! { store =>
    async fn concurrent_reservations_never_overshoot(store) {
        let window = Duration::from_secs(60);
        let now = Timestamp::now();
        let rules = [rule('a', 5, window)];
        let attempts = (0..64).map(|_| store.reserve_sign_in(&rules, window, now));
        let results = futures::future::join_all(attempts).await;
        let reserved = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        assert_eq!(reserved, 5, "{results:?}");
        for result in results {
            let result = result.unwrap();
            if let Err(wait) = result {
                assert!(wait <= window && wait > Duration::ZERO, "{wait:?}");
            }
        }
    }

    async fn reservations_are_all_or_nothing_and_windows_restart(store) {
        let window = Duration::from_secs(60);
        let t0 = Timestamp(1_000 * SECOND);
        let (a, b) = (rule('a', 1, window), rule('b', 3, window));
        assert_eq!(store.reserve_sign_in(std::slice::from_ref(&a), window, t0).await.unwrap(), Ok(()));
        // `a` refuses, so `b` is not counted either.
        let refused = store.reserve_sign_in(&[b.clone(), a.clone()], window, t0).await.unwrap();
        assert_eq!(refused, Err(window));
        for n in 0..3 {
            assert_eq!(store.reserve_sign_in(std::slice::from_ref(&b), window, t0).await.unwrap(), Ok(()), "b #{n}");
        }
        assert!(store.reserve_sign_in(std::slice::from_ref(&b), window, t0).await.unwrap().is_err());
        // A success gives its attempt back.
        store.release_sign_in(std::slice::from_ref(&b.key)).await.unwrap();
        assert_eq!(store.reserve_sign_in(std::slice::from_ref(&b), window, t0).await.unwrap(), Ok(()));
        // Half-way through the window: still refused, for the rest of it.
        let half = Timestamp(t0.0 + 30 * SECOND);
        assert_eq!(store.reserve_sign_in(std::slice::from_ref(&a), window, half).await.unwrap(), Err(Duration::from_secs(30)));
        // Once it is over, everything starts again.
        let later = Timestamp(t0.0 + 60 * SECOND);
        assert_eq!(store.reserve_sign_in(&[a, b], window, later).await.unwrap(), Ok(()));
    }

    async fn throttles_space_attempts_instead_of_locking(store) {
        let window = Duration::from_secs(300);
        let spacing = Duration::from_secs(15);
        let t0 = Timestamp(5_000 * SECOND);
        let throttled = rule('c', 2, spacing);
        for _ in 0..2 {
            assert_eq!(store.reserve_sign_in(std::slice::from_ref(&throttled), window, t0).await.unwrap(), Ok(()));
        }
        // Past the limit: one attempt per spacing, not a lock for the window.
        assert_eq!(store.reserve_sign_in(std::slice::from_ref(&throttled), window, t0).await.unwrap(), Err(spacing));
        let t1 = Timestamp(t0.0 + 15 * SECOND);
        assert_eq!(store.reserve_sign_in(std::slice::from_ref(&throttled), window, t1).await.unwrap(), Ok(()));
        assert_eq!(
            store.reserve_sign_in(std::slice::from_ref(&throttled), window, Timestamp(t1.0 + 5 * SECOND)).await.unwrap(),
            Err(Duration::from_secs(10))
        );
        assert_eq!(
            store.reserve_sign_in(&[throttled], window, Timestamp(t1.0 + 15 * SECOND)).await.unwrap(),
            Ok(())
        );
    }

    async fn expired_counts_are_pruned(store) {
        let window = Duration::from_secs(60);
        let t0 = Timestamp(9_000 * SECOND);
        store.reserve_sign_in(&[rule('d', 1, window), rule('e', 1, window)], window, t0).await.unwrap().unwrap();
        store.reserve_sign_in(&[rule('f', 1, window)], window, Timestamp(t0.0 + 30 * SECOND)).await.unwrap().unwrap();
        assert_eq!(store.prune_sign_in_limits(Timestamp(t0.0 + 59 * SECOND)).await.unwrap(), 0);
        assert_eq!(store.prune_sign_in_limits(Timestamp(t0.0 + 60 * SECOND)).await.unwrap(), 2);
        // `f` lives on: still refused.
        assert!(store.reserve_sign_in(&[rule('f', 1, window)], window, Timestamp(t0.0 + 61 * SECOND)).await.unwrap().is_err());
        assert_eq!(store.prune_sign_in_limits(Timestamp(t0.0 + 90 * SECOND)).await.unwrap(), 1);
    }
}

fn settings(max_concurrent_hashes: u32) -> Settings {
    Settings {
        sign_in_max_failures: MAX_FAILURES,
        // Long: nothing here waits for a window to pass.
        sign_in_window_secs: 3_600,
        sign_in_max_concurrent_hashes: max_concurrent_hashes,
        trusted_proxies: "10.0.0.0/8".parse().unwrap(),
        ..Settings::default()
    }
}

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

/// A sign-in from `peer`, optionally through a proxy that says the client
/// was `forwarded_for`.
fn sign_in_request(
    email: &str,
    password: &str,
    peer: SocketAddr,
    forwarded_for: Option<&str>,
) -> Request<Body> {
    let form = format!(
        "email={}&password={}",
        encode_component(email),
        encode_component(password)
    );
    let mut request = Request::post("/api/session/sign-in")
        .header(header::HOST, "opshub.test")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let mut request = request.body(Body::from(form)).unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn attempt(app: &App, email: &str, password: &str, from: &str) -> StatusCode {
    app.send(sign_in_request(email, password, peer(from), None))
        .await
        .status
}

const VIEWER: &str = "viewer@acme.example";

on_both! { backend =>
    async fn a_parallel_burst_is_hashed_at_most_max_failures_times(backend) {
        let app = App::new(backend, settings(64)).await;
        let before = app.state.sign_in_limiter.hashes();
        let burst = (0..64).map(|_| {
            let router = app.router.clone();
            tokio::spawn(async move {
                use tower::ServiceExt;
                let request = sign_in_request(VIEWER, "not-the-password", peer("203.0.113.1"), None);
                router.oneshot(request).await.unwrap().status()
            })
        });
        let statuses: Vec<StatusCode> = futures::future::try_join_all(burst).await.unwrap();
        let hashed = app.state.sign_in_limiter.hashes() - before;
        let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
        let wrong = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
        assert_eq!(hashed, u64::from(MAX_FAILURES), "{statuses:?}");
        assert_eq!((wrong, refused), (MAX_FAILURES as usize, 64 - MAX_FAILURES as usize));
    }

    async fn busy_hashing_slots_answer_429_at_once(backend) {
        let app = App::new(backend, settings(2)).await;
        let slots = app.state.sign_in_limiter.hash_slots();
        let held = slots.clone().acquire_many_owned(2).await.unwrap();
        let before = app.state.sign_in_limiter.hashes();
        let reply = app.send(sign_in_request(VIEWER, DEMO_PASSWORD, peer("203.0.113.2"), None)).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
        assert!(reply.body.contains("TooManyAttempts"), "{}", reply.body);
        assert_eq!(app.state.sign_in_limiter.hashes(), before, "nothing was hashed");
        drop(held);
        // Nothing was counted against the account either.
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(attempt(&app, VIEWER, "wrong-password", "203.0.113.2").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, "203.0.113.2").await, StatusCode::OK);
        // Successful sign-ins give their reservation back: they never add up.
        for _ in 0..MAX_FAILURES {
            assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, "203.0.113.2").await, StatusCode::OK);
        }
    }

    async fn an_attacker_cannot_lock_the_owner_out_from_elsewhere(backend) {
        let app = App::new(backend, settings(8)).await;
        let attacker = "198.51.100.66";
        for _ in 0..MAX_FAILURES {
            assert_eq!(attempt(&app, VIEWER, "guess", attacker).await, StatusCode::UNAUTHORIZED);
        }
        // The attacker's address is locked for this account, right password or not...
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, attacker).await, StatusCode::TOO_MANY_REQUESTS);
        // ...the owner, elsewhere, is not.
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, "192.0.2.10").await, StatusCode::OK);
        // The attacker's address may still sign in to other accounts.
        assert_eq!(attempt(&app, "operator@acme.example", DEMO_PASSWORD, attacker).await, StatusCode::OK);
    }

    async fn guesses_from_many_addresses_throttle_the_account_but_never_lock_it(backend) {
        // A long window: the account's throttle spaces attempts by
        // window / (4 × max_failures) = 2 s here.
        let settings = Settings { sign_in_window_secs: 24, ..settings(8) };
        let app = App::new(backend, settings).await;
        let budget = 4 * MAX_FAILURES;
        for n in 0..budget {
            let from = format!("198.51.100.{n}");
            assert_eq!(attempt(&app, VIEWER, "guess", &from).await, StatusCode::UNAUTHORIZED, "guess {n}");
        }
        // Throttled: a fresh address is told to wait seconds, not the window.
        let reply = app.send(sign_in_request(VIEWER, "guess", peer("198.51.100.200"), None)).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
        let wait: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let wait = wait["TooManyAttempts"]["retry_after_secs"].as_u64().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        // The owner, from a clean address, gets in after such a wait.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = attempt(&app, VIEWER, DEMO_PASSWORD, "192.0.2.20").await;
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert!(tokio::time::Instant::now() < deadline, "the owner never got in");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn one_address_cannot_try_account_after_account(backend) {
        let app = App::new(backend, settings(8)).await;
        let stuffer = "198.51.100.99";
        for n in 0..4 * MAX_FAILURES {
            let email = format!("user{n}@acme.example");
            assert_eq!(attempt(&app, &email, "password1", stuffer).await, StatusCode::UNAUTHORIZED, "{email}");
        }
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, stuffer).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, "192.0.2.30").await, StatusCode::OK);
    }

    async fn forwarded_for_counts_only_from_trusted_proxies(backend) {
        let app = App::new(backend, settings(8)).await;
        let app = &app;
        let through = |client: &'static str, password: &'static str, from: &'static str| {
            let request = sign_in_request(VIEWER, password, peer(from), Some(client));
            async move { app.send(request).await.status }
        };
        // Behind the trusted proxy (10.0.0.0/8), each client counts alone.
        for _ in 0..MAX_FAILURES {
            assert_eq!(through("198.51.100.1", "guess", "10.0.0.5").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(through("198.51.100.1", DEMO_PASSWORD, "10.0.0.5").await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(through("198.51.100.2", DEMO_PASSWORD, "10.0.0.5").await, StatusCode::OK);
        // From anywhere else the header is ignored: changing it does not help.
        for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            assert_eq!(through(client, "guess", "203.0.113.50").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(through("192.0.2.4", DEMO_PASSWORD, "203.0.113.50").await, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn every_instance_on_the_database_counts_together(backend) {
        let app = App::new(backend, settings(8)).await;
        // A second instance on the same database.
        let leptos_options = leptos::prelude::LeptosOptions::builder().output_name("opshub").build();
        let other = AppState::new(leptos_options, connect(&app.db.url, 4).await.unwrap(), settings(8));
        let other = router(other);
        let on_other = |password: &'static str| {
            use tower::ServiceExt;
            let request = sign_in_request(VIEWER, password, peer("198.51.100.7"), None);
            let other = other.clone();
            async move { other.oneshot(request).await.unwrap().status() }
        };
        for n in 0..MAX_FAILURES {
            let status = if n % 2 == 0 {
                attempt(&app, VIEWER, "guess", "198.51.100.7").await
            } else {
                on_other("guess").await
            };
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(on_other(DEMO_PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(attempt(&app, VIEWER, DEMO_PASSWORD, "198.51.100.7").await, StatusCode::TOO_MANY_REQUESTS);
    }
}
