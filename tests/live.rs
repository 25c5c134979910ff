//! Live updates end to end on the server: real sessions open real SSE
//! streams through the router; changes made through the store arrive as
//! events, only on the streams they belong to, loaded once however many
//! streams are open, and (on PostgreSQL) across instances.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use opshub::domain::*;
use opshub::server::config::Settings;
use opshub::server::seed::{self, DEMO_PASSWORD};
use opshub::server::store::*;
use opshub::server::{http::router, AppState};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Generous: these machines are shared. Events normally take milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

struct App {
    state: AppState,
    router: axum::Router,
}

impl App {
    fn on(store: Arc<dyn Store>) -> Self {
        let leptos_options = leptos::prelude::LeptosOptions::builder()
            .output_name("opshub")
            .build();
        let state = AppState::new(leptos_options, store, Settings::default());
        Self {
            router: router(state.clone()),
            state,
        }
    }

    async fn request(&self, request: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn sign_in(&self, email: &str) -> String {
        let body = format!(
            "email={}&password={}",
            encode_component(email),
            encode_component(DEMO_PASSWORD)
        );
        let response = self
            .request(
                Request::post("/api/session/sign-in")
                    .header(header::HOST, "opshub.test")
                    .header("sec-fetch-site", "same-origin")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("opshub_session="))
            .map(|c| c.split(';').next().unwrap().to_string())
            .expect("a session cookie")
    }

    async fn open_stream(&self, tenant: &str, cookie: Option<&str>) -> axum::response::Response {
        let mut request = Request::get(live_path(tenant))
            .header(header::HOST, "opshub.test")
            .header(header::ACCEPT, "text/event-stream");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::empty()).unwrap()).await
    }

    async fn stream(&self, tenant: &str, email: &str) -> Events {
        let cookie = self.sign_in(email).await;
        self.stream_of(tenant, &cookie).await
    }

    /// A stream of the session whose cookie this is.
    async fn stream_of(&self, tenant: &str, cookie: &str) -> Events {
        let response = self.open_stream(tenant, Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Events {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    async fn sign_out(&self, cookie: &str) {
        let response = self
            .request(
                Request::post("/api/session/sign-out")
                    .header(header::HOST, "opshub.test")
                    .header("sec-fetch-site", "same-origin")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn tenant(&self, slug: &str) -> Tenant {
        self.state
            .store
            .tenant_by_slug(slug)
            .await
            .unwrap()
            .unwrap()
    }

    /// A queued run of the tenant (demo data has some).
    async fn queued_run(&self, tenant: &Tenant) -> RunSummary {
        let filter = RunFilter {
            bucket: Some(StatusBucket::Queued),
            ..RunFilter::default()
        };
        self.state
            .store
            .list_runs(tenant.id, &filter, PageRequest::first(1))
            .await
            .unwrap()
            .items
            .remove(0)
    }

    async fn user(&self, email: &str) -> User {
        self.state
            .store
            .user_credentials(email)
            .await
            .unwrap()
            .unwrap()
            .user
    }
}

/// A server-sent event as the browser sees it.
#[derive(Debug, PartialEq)]
struct Sse {
    event: String,
    data: String,
}

struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    /// The next event with a name (comments and keep-alives skipped), or
    /// `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = Sse {
                        event: String::new(),
                        data: String::new(),
                    };
                    for line in block.lines() {
                        if let Some(name) = line.strip_prefix("event:") {
                            event.event = name.trim().to_string();
                        } else if let Some(data) = line.strip_prefix("data:") {
                            event.data.push_str(data.trim_start());
                        }
                    }
                    if !event.event.is_empty() {
                        return Some(event);
                    }
                    continue;
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.buffer.push_str(&String::from_utf8_lossy(&data));
                        }
                    }
                    _ => return None,
                }
            }
        })
        .await
        .expect("a live event or the end of the stream in time")
    }

    /// The next event about a run, skipping the others.
    async fn next_run(&mut self) -> RunSummary {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if event.event == RUN_EVENT {
                return serde_json::from_str(&event.data).unwrap();
            }
        }
    }

    async fn next_unread(&mut self) -> i64 {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if event.event == UNREAD_EVENT {
                return event.data.parse().unwrap();
            }
        }
    }
}

async fn seeded(backend: Backend) -> support::TestDb {
    let db = support::TestDb::new(backend).await;
    seed::seed_demo(db.store.as_ref()).await.unwrap();
    db
}

on_both! { db = seeded =>
    async fn streams_carry_their_tenants_runs_and_their_own_bell_only(db) {
        let app = App::on(db.store.clone());
        let (acme, globex) = (app.tenant("acme").await, app.tenant("globex").await);
        let mut operator = app.stream("acme", "operator@acme.example").await;
        let mut viewer = app.stream("acme", "viewer@acme.example").await;
        let mut other_tenant = app.stream("globex", "operator@globex.example").await;

        // An acme start: both acme streams hear the run; only its initiator
        // hears the bell ("queued" notification).
        let initiator = app.user("operator@acme.example").await;
        let started = opshub::server::operations::start(
            app.state.store.as_ref(),
            &acme,
            &initiator,
            &opshub::server::operations::StartRequest::Drift { scope_key: "devices/windows".into() },
        )
        .await
        .unwrap();
        let run = started.run.summary;
        assert_eq!(operator.next_run().await, run);
        let unread = app.state.store.unread_count(acme.id, initiator.id).await.unwrap();
        assert!(unread > 0);
        assert_eq!(operator.next_unread().await, unread);
        assert_eq!(viewer.next_run().await, run);

        // Events go out in order, so what a stream hears first after a
        // change shows what it did not hear before: the globex stream's
        // first event is the globex change (no acme run reached it), and the
        // acme viewer's next is a run (neither the operator's bell nor the
        // globex run reached it).
        let globex_run = app.queued_run(&globex).await;
        app.state.store.transition_run(globex.id, globex_run.id, RunStatus::Running).await.unwrap();
        let heard = other_tenant.next().await.unwrap();
        assert_eq!(heard.event, RUN_EVENT, "{heard:?}");
        let heard: RunSummary = serde_json::from_str(&heard.data).unwrap();
        assert_eq!((heard.id, heard.status), (globex_run.id, RunStatus::Running));

        app.state.store.transition_run(acme.id, run.id, RunStatus::Running).await.unwrap();
        let next = viewer.next().await.unwrap();
        assert_eq!(next.event, RUN_EVENT, "the viewer hears no one else's bell: {next:?}");
        let next: RunSummary = serde_json::from_str(&next.data).unwrap();
        assert_eq!((next.id, next.status), (run.id, RunStatus::Running));
    }

    async fn streams_need_a_session_and_a_membership(db) {
        let app = App::on(db.store.clone());
        let signed_out = app.open_stream("acme", None).await;
        assert_eq!(signed_out.status(), StatusCode::UNAUTHORIZED);
        let cookie = app.sign_in("operator@acme.example").await;
        let foreign = app.open_stream("globex", Some(&cookie)).await;
        let missing = app.open_stream("no-such-tenant", Some(&cookie)).await;
        assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let body = |r: axum::response::Response| async move {
            r.into_body().collect().await.unwrap().to_bytes()
        };
        assert_eq!(body(foreign).await, body(missing).await, "another tenant looks missing");
    }

    async fn loading_a_change_costs_the_same_for_one_stream_or_forty(db) {
        let app = App::on(db.store.clone());
        let acme = app.tenant("acme").await;
        let mut one = app.stream("acme", "viewer@acme.example").await;
        let run = app.queued_run(&acme).await;
        let before = app.state.live.loads();
        app.state.store.transition_run(acme.id, run.id, RunStatus::Running).await.unwrap();
        assert_eq!(one.next_run().await.id, run.id);
        let with_one = app.state.live.loads() - before;

        // Ten streams for each of acme's four members (at most sixteen per
        // user stay open).
        let mut cookies = Vec::new();
        for email in ["viewer@acme.example", "operator@acme.example", "admin@acme.example", "multi@opshub.example"] {
            cookies.push(app.sign_in(email).await);
        }
        let mut many = Vec::new();
        for n in 0..40 {
            let response = app.open_stream("acme", Some(&cookies[n % cookies.len()])).await;
            many.push(Events { body: response.into_body(), buffer: String::new() });
        }
        let before = app.state.live.loads();
        app.state.store.transition_run(acme.id, run.id, RunStatus::Completed).await.unwrap();
        for events in many.iter_mut().chain(std::iter::once(&mut one)) {
            let heard = events.next_run().await;
            assert_eq!((heard.id, heard.status), (run.id, RunStatus::Completed));
        }
        let with_forty_one = app.state.live.loads() - before;
        assert_eq!(with_one, 1, "one query per changed run");
        assert_eq!(with_forty_one, with_one, "database work does not grow with streams");
    }

    async fn a_membership_change_or_shutdown_ends_streams(db) {
        let app = App::on(db.store.clone());
        let acme = app.tenant("acme").await;
        let mut removed = app.stream("acme", "viewer@acme.example").await;
        let mut staying = app.stream("acme", "operator@acme.example").await;
        let viewer = app.user("viewer@acme.example").await;
        app.state.store.remove_membership(acme.id, viewer.id, MembershipAudit::Unaudited).await.unwrap();
        assert_eq!(removed.next().await, None, "the removed member's stream ends");

        // The operator's stream goes on until the server shuts down.
        let run = app.queued_run(&acme).await;
        app.state.store.transition_run(acme.id, run.id, RunStatus::Running).await.unwrap();
        assert_eq!(staying.next_run().await.id, run.id);
        app.state.live.close();
        assert_eq!(staying.next().await, None, "shutdown ends open streams");
    }
}

/// Runs `opshub <args>` on the test's database as a separate process, as an
/// operator at a terminal would, and waits for it to succeed.
fn opshub(db: &support::TestDb, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_opshub"))
        .args(args)
        .env("OPSHUB_DATABASE_URL", &db.url)
        .env("OPSHUB_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start opshub");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let status = child.wait().unwrap();
    assert!(status.success(), "opshub {args:?}: {status}");
}

on_both! { db = seeded =>
    async fn sign_out_and_a_password_change_end_the_users_streams_at_once(db) {
        let app = App::on(db.store.clone());
        let acme = app.tenant("acme").await;
        let (first, second) = (app.sign_in("viewer@acme.example").await, app.sign_in("viewer@acme.example").await);
        let mut signing_out = app.stream_of("acme", &first).await;
        let mut elsewhere = app.stream_of("acme", &second).await;
        let mut operator = app.stream("acme", "operator@acme.example").await;
        app.sign_out(&first).await;
        assert_eq!(signing_out.next().await, None, "the signed-out session's stream ends");
        // Every stream of the user ends; the other session's browser
        // reconnects at once, and is let in.
        assert_eq!(elsewhere.next().await, None);
        let mut elsewhere = app.stream_of("acme", &second).await;
        assert_eq!(app.open_stream("acme", Some(&first)).await.status(), StatusCode::UNAUTHORIZED);

        let viewer = app.user("viewer@acme.example").await;
        let hash = opshub::server::auth::hash_password("a-new-long-password".into()).await.unwrap();
        app.state.store.set_password_hash(viewer.id, &hash).await.unwrap();
        assert_eq!(elsewhere.next().await, None, "a new password ends the streams");

        // Nobody else's stream ended.
        let run = app.queued_run(&acme).await;
        app.state.store.transition_run(acme.id, run.id, RunStatus::Running).await.unwrap();
        assert_eq!(operator.next_run().await.id, run.id);
    }

    async fn a_seventeenth_stream_closes_the_oldest(db) {
        let app = App::on(db.store.clone());
        let acme = app.tenant("acme").await;
        let viewer = app.user("viewer@acme.example").await;
        let cookie = app.sign_in("viewer@acme.example").await;
        let mut streams = Vec::new();
        for _ in 0..opshub::server::live::MAX_STREAMS_PER_USER {
            streams.push(app.stream_of("acme", &cookie).await);
        }
        assert_eq!(app.state.live.open_streams(viewer.id), 16);
        let other_user = app.stream_of("globex", &app.sign_in("multi@opshub.example").await).await;
        assert_eq!(app.state.live.open_streams(viewer.id), 16, "another user's stream counts for them");
        let mut seventeenth = app.stream_of("acme", &cookie).await;
        assert_eq!(streams[0].next().await, None, "the oldest ends");
        assert_eq!(app.state.live.open_streams(viewer.id), 16);
        let run = app.queued_run(&acme).await;
        app.state.store.transition_run(acme.id, run.id, RunStatus::Running).await.unwrap();
        for events in streams[1..].iter_mut().chain([&mut seventeenth]) {
            assert_eq!(events.next_run().await.id, run.id);
        }
        drop(other_user);
        // A stream that ends gives its place up.
        drop(streams);
        drop(seventeenth);
        let deadline = std::time::Instant::now() + PATIENCE;
        while app.state.live.open_streams(viewer.id) > 0 {
            assert!(std::time::Instant::now() < deadline, "closed streams are forgotten");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn user_commands_in_another_process_end_streams_at_once(db) {
        let app = App::on(db.store.clone());
        let mut viewer = app.stream("acme", "viewer@acme.example").await;
        opshub(db, &["user", "set-password", "--email", "viewer@acme.example"], Some("a-new-long-password\n"));
        assert_eq!(viewer.next().await, None, "set-password ends the user's streams");

        let mut operator = app.stream("acme", "operator@acme.example").await;
        let args = ["user", "set-role", "--email", "operator@acme.example", "--tenant", "acme", "--role", "viewer"];
        opshub(db, &args, None);
        assert_eq!(operator.next().await, None, "set-role ends their streams of the tenant");

        let mut operator = app.stream("acme", "operator@acme.example").await;
        opshub(db, &["user", "remove", "--email", "operator@acme.example", "--tenant", "acme"], None);
        assert_eq!(operator.next().await, None, "remove ends their streams of the tenant");
        assert_eq!(
            app.open_stream("acme", Some(&app.sign_in("operator@acme.example").await)).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

// Two instances on one database: a change made through one reaches the
// streams of the other (LISTEN/NOTIFY on PostgreSQL, datagrams between the
// processes on one SQLite file), as does a worker-only process's (it only
// publishes).
on_both! { db = seeded =>
    async fn changes_reach_the_streams_of_every_instance(db) {
        let first = App::on(db.store.clone());
        let second = App::on(connect(&db.url, 4).await.unwrap());
        let worker_only = connect(&db.url, 4).await.unwrap();
        worker_only.publish_changes();

        let acme = first.tenant("acme").await;
        let mut on_second = second.stream("acme", "viewer@acme.example").await;
        let run = first.queued_run(&acme).await;
        first
            .state
            .store
            .transition_run(acme.id, run.id, RunStatus::Running)
            .await
            .unwrap();
        let heard = on_second.next_run().await;
        assert_eq!((heard.id, heard.status), (run.id, RunStatus::Running));

        worker_only
            .transition_run(acme.id, run.id, RunStatus::Completed)
            .await
            .unwrap();
        let heard = on_second.next_run().await;
        assert_eq!((heard.id, heard.status), (run.id, RunStatus::Completed));
    }
}
