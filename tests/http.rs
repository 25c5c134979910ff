//! The HTTP surface, driven in-process through the real router on a fresh
//! seeded database of each backend: pages render on the server, every page
//! and server function resolves the tenant through the session, cross-site
//! writes are refused, sessions behave, brute force is slowed.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use opshub::domain::*;
use opshub::server::config::Settings;
use opshub::server::seed::DEMO_PASSWORD;
use opshub::server::store::*;
use std::time::Duration;
use support::app::*;

/// Checks the headers every answer carries; `what` names the answer.
fn assert_security_headers(headers: &axum::http::HeaderMap, https: bool, what: &str) {
    use opshub::server::security_headers::CONTENT_SECURITY_POLICY;
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY,
        "{what}"
    );
    let csp = CONTENT_SECURITY_POLICY;
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval';") && !csp.contains("unsafe-inline")
    );
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"));
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin", "{what}");
    assert_eq!(
        headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        https,
        "{what}"
    );
}

/// Every `<script>` of a page is a file or non-executable JSON, and its
/// hydration data is there (as JSON) when the page has any.
fn assert_no_inline_script(page: &str, what: &str) -> serde_json::Value {
    let mut data = serde_json::Value::Null;
    for (at, _) in page.match_indices("<script") {
        let tag = &page[at..at + page[at..].find('>').unwrap()];
        if tag.contains(" src=") {
            continue;
        }
        assert!(
            tag.contains("type=\"application/json\""),
            "{what}: an inline script: {tag}"
        );
        let body_start = at + tag.len() + 1;
        let body = &page[body_start..body_start + page[body_start..].find("</script>").unwrap()];
        data = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    }
    assert!(
        page.contains("<script type=\"module\" src=\"/hydrate.js\""),
        "{what}: no hydration"
    );
    data
}

on_both! { app =>
    async fn next_never_leads_off_the_site_and_never_panics(app) {
        let same = |path: &str| path.to_string();
        let cases = [
            ("/t/acme/operations?bucket=failed&limit=5", same("/t/acme/operations?bucket=failed&limit=5")),
            ("/t/zürich/operations", same("/t/zürich/operations")),
            ("/\t/evil.example", "/".into()),
            ("/\n/evil.example", "/".into()),
            ("/\r\n/evil.example", "/".into()),
            ("/\u{7}", "/".into()),
            ("/a\u{0}b", "/".into()),
            ("/\u{7f}", "/".into()),
            ("/ /evil.example", "/".into()),
            ("//evil.example", "/".into()),
            ("/\\evil.example", "/".into()),
            ("https://evil.example/", "/".into()),
            ("", "/".into()),
        ];
        for (next, expected) in cases {
            // As the hydrated app posts it, and as a plain form (no JavaScript).
            for accept in ["application/json", "text/html"] {
                let (content_type, body) = form(&[
                    ("email", "operator@acme.example"),
                    ("password", DEMO_PASSWORD),
                    ("next", next),
                ]);
                let request = Request::post("/api/session/sign-in")
                    .header(header::HOST, "opshub.test")
                    .header("sec-fetch-site", "same-origin")
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::ACCEPT, accept)
                    .body(Body::from(body))
                    .unwrap();
                let reply = app.send(request).await;
                assert!(reply.status.is_success() || reply.status == StatusCode::FOUND, "{next:?}: {}", reply.status);
                let location = reply.headers.get(header::LOCATION).map(|v| v.as_bytes().to_vec());
                assert_eq!(location, Some(expected.clone().into_bytes()), "next={next:?} ({accept})");
                assert!(reply.session_cookie().is_some(), "{next:?}: signed in");
            }
        }
        // The page guard puts the request's own path and query in `next`:
        // whatever they hold, the redirect is a valid header.
        for path in ["/t/acme/operations?q=%00%07%0A%0D%09", "/t/acme/operations?q=%E2%80%AE%F0%9F%99%82", "/t/%FF%FE/operations"] {
            let reply = app.get(path, None).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(reply.location(), sign_in_path(path), "{path}");
        }
    }

    async fn every_answer_carries_the_security_headers(app) {
        let viewer = app.sign_in("viewer@acme.example").await;
        let hub = serde_json::json!({ "tenant": "acme", "query": {} });
        let cross_site = Request::post("/api/runs/hub")
            .header(header::HOST, "opshub.test")
            .header("sec-fetch-site", "cross-site")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(hub.to_string()))
            .unwrap();
        let answers = [
            ("page", app.get("/t/acme/operations", Some(&viewer)).await),
            ("sign-in page", app.get("/sign-in", None).await),
            ("redirect to sign in", app.get("/t/acme/operations", None).await),
            ("server function", app.post_json("/api/runs/hub", hub.clone(), Some(&viewer)).await),
            ("server function error", app.post_json("/api/runs/hub", hub.clone(), None).await),
            ("bad request", app.post_json("/api/runs/hub", serde_json::json!({ "tenant": 7 }), Some(&viewer)).await),
            ("cross-site refusal", app.send(cross_site).await),
            ("missing page", app.get("/no/such/page", Some(&viewer)).await),
            ("asset", app.get("/pkg/opshub.css", None).await),
            ("bootstrap", app.get("/hydrate.js", None).await),
            ("health", app.get("/healthz", None).await),
        ];
        for (what, reply) in &answers {
            assert_security_headers(&reply.headers, false, what);
        }
        assert_eq!(answers[2].1.status, StatusCode::SEE_OTHER);
        assert_eq!(answers[6].1.status, StatusCode::FORBIDDEN);
        // A live stream: only its headers are read (it does not end).
        let stream = Request::get("/api/live/acme")
            .header(header::HOST, "opshub.test")
            .header(header::ACCEPT, "text/event-stream")
            .header(header::COOKIE, &viewer)
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(app.router.clone(), stream).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_security_headers(response.headers(), false, "live stream");
    }

    async fn pages_render_while_other_routers_are_built(app) {
        // Building a router once generated the route list, which suppresses
        // resource loading process-wide: a page whose data began loading
        // meanwhile waited forever (503 after the 30 s timeout).
        let admin = app.sign_in("admin@acme.example").await;
        let run = app.newest_run("acme").await.id.to_string();
        let state = app.state.clone();
        let building = tokio::task::spawn_blocking(move || {
            for _ in 0..40 {
                drop(opshub::server::http::router(state.clone()));
            }
        });
        for _ in 0..40 {
            let reply = app.get(&format!("/t/acme/operations/{run}"), Some(&admin)).await;
            assert_eq!(reply.status, StatusCode::OK);
        }
        building.await.unwrap();
    }

    async fn icons_are_drawn_not_emoji(app) {
        // Chromium without an emoji font shows an emoji as an empty box.
        let admin = app.sign_in("admin@acme.example").await;
        let reply = app.get("/t/acme/operations", Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let bell = &reply.body[reply.body.find(r#"data-testid="bell""#).unwrap()..];
        let bell = &bell[..bell.find("</summary>").unwrap()];
        assert!(bell.contains("<svg") && bell.contains(r#"aria-hidden="true""#), "{bell}");
        assert!(bell.contains("aria-label=\"Notifications, "), "{bell}");
        let emoji: Vec<char> = reply.body.chars().filter(|c| ('\u{1F000}'..='\u{1FAFF}').contains(c)).collect();
        assert!(emoji.is_empty(), "{emoji:?}");
    }

    async fn pages_carry_no_inline_script(app) {
        let admin = app.sign_in("admin@acme.example").await;
        let run = app.newest_run("acme").await.id.to_string();
        let mut pages = vec![("/sign-in".to_string(), None), ("/no/such/page".to_string(), Some(&admin))];
        for route in page_routes() {
            if route != "/" && route != "/sign-in" {
                pages.push((fill(&route, "acme", &run), Some(&admin)));
            }
        }
        for (path, cookie) in pages {
            let reply = app.get(&path, cookie.map(String::as_str)).await;
            assert!(reply.status == StatusCode::OK || reply.status == StatusCode::NOT_FOUND, "{path}: {}", reply.status);
            let data = assert_no_inline_script(&reply.body, &path);
            assert!(data["resources"].is_array(), "{path}: hydration data {data}");
        }
        // A data page's resources arrive whole: the run page carries its run.
        let reply = app.get(&format!("/t/acme/operations/{run}"), Some(&admin)).await;
        let data = assert_no_inline_script(&reply.body, "run page");
        assert!(data["resources"].to_string().contains(&run), "{data}");
    }

    async fn operators_abort_runs_and_ended_runs_answer_409(app) {
        let operator = app.sign_in("operator@acme.example").await;
        let store = app.state.store.clone();
        let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
        let start = [("tenant", "acme"), ("scope_key", "devices/windows")];
        let reply = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let run: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let run_id = run["run_id"].as_str().unwrap().to_string();
        let reply = app.post_form("/api/operations/abort", &[("tenant", "acme"), ("run_id", &run_id)], Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let id = RunId::parse(&run_id).unwrap();
        let after = store.run(acme.id, id).await.unwrap().unwrap();
        // No engine runs here: a queued run ends at once, a running one is flagged.
        assert!(after.summary.status == RunStatus::Aborted || after.cancel_requested_at.is_some(), "{after:?}");
        // The run page carries its whole audit trail: who started it, who aborted it.
        let detail = serde_json::json!({ "tenant": "acme", "run_id": run_id });
        let reply = app.post_json("/api/runs/detail", detail, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let page: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let trail: Vec<(&str, &str)> = page["trail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["entry"]["action"].as_str().unwrap(), t["actor_name"].as_str().unwrap()))
            .collect();
        assert_eq!(trail, vec![("run.start", "Olivia Operator"), ("run.abort", "Olivia Operator")]);
        assert_eq!(page["trail"][0]["entry"]["id"], page["run"]["audit_log_id"]);
        let html = app.get(&format!("/t/acme/operations/{run_id}"), Some(&operator)).await;
        assert_eq!(html.body.matches("data-testid=\"audit-entry\"").count(), 2, "{}", html.body);

        let ended = store
            .list_runs(acme.id, &RunFilter { bucket: Some(StatusBucket::Succeeded), ..Default::default() }, PageRequest::first(1))
            .await
            .unwrap()
            .items[0]
            .id;
        let before = app.db.count_rows().await;
        let ended = ended.to_string();
        let reply = app.post_form("/api/operations/abort", &[("tenant", "acme"), ("run_id", &ended)], Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert!(reply.body.contains("already ended as completed"), "{}", reply.body);
        let reply = app.post_form("/api/operations/abort", &[("tenant", "acme"), ("run_id", "not-a-run")], Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(app.db.count_rows().await, before, "refused aborts wrote something");

        // A scope key carrying a secret is refused without being echoed.
        let start = [("tenant", "acme"), ("scope_key", "x password=CANARY51c0")];
        let reply = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(reply.body.contains("a scope key is an identifier") && !reply.body.contains("CANARY51c0"), "{}", reply.body);
    }

    async fn hub_filters_live_in_the_url(app) {
        let viewer = app.sign_in("viewer@acme.example").await;
        let newest = app.newest_run("acme").await;
        // Search by run id: exactly that run, whatever else is there.
        let page = app.get(&format!("/t/acme/operations?q={}&limit=20", newest.id), Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body.matches("data-testid=\"run-row\"").count(), 1, "{}", page.body);
        assert!(page.body.contains(&newest.id.to_string()));
        assert!(!page.body.contains("start-forms"), "viewers get no start forms");
        // By the start of an id or a key: the runs that start so.
        let id_start: String = newest.id.to_string().chars().take(13).collect();
        let page = app.get(&format!("/t/acme/operations?q={id_start}&limit=100"), Some(&viewer)).await;
        assert!(page.body.contains(&newest.id.to_string()), "{id_start}");
        let acme = app.state.store.tenant_by_slug("acme").await.unwrap().unwrap();
        let mut runs = Vec::new();
        let mut page = PageRequest::first(MAX_PAGE_SIZE);
        loop {
            let listed = app.state.store.list_runs(acme.id, &RunFilter::default(), page).await.unwrap();
            runs.extend(listed.items);
            match listed.older {
                Some(cursor) => page = PageRequest::older_than(cursor, MAX_PAGE_SIZE),
                None => break,
            }
        }
        let drift_keys = runs
            .iter()
            .filter(|run| run.idempotency_key.as_deref().is_some_and(|key| key.starts_with("drift.generate:")))
            .count();
        assert!(drift_keys > 0 && drift_keys < runs.len() && drift_keys <= 200, "a mix, one page of drift runs");
        let page = app.get("/t/acme/operations?q=drift.generate%3A&limit=200", Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body.matches("data-testid=\"run-row\"").count(), drift_keys, "the runs whose key starts so");
        // By idempotency key, operation and initiator, within a day range.
        let day = newest.created_at.to_rfc3339()[..10].to_string();
        let url = format!(
            "/t/acme/operations?q={}&operation={}&initiator={}&from={day}&to={day}",
            encode_component(newest.idempotency_key.as_deref().unwrap()),
            newest.operation.code(),
            newest.initiator_id
        );
        let page = app.get(&url, Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(&newest.id.to_string()), "{url}");
        // The filter form shows what is applied.
        assert!(page.body.contains(&format!("value=\"{day}\"")), "{}", page.body);
        // Bad filters are refused with a clear message, not ignored.
        let page = app.get("/t/acme/operations?from=yesterday", Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("must be a date"), "{}", page.body);
        let operator = app.sign_in("operator@acme.example").await;
        let page = app.get("/t/acme/operations", Some(&operator)).await;
        assert!(page.body.contains("data-testid=\"start-forms\""));
    }

    async fn pages_render_completely_on_the_server(app) {
        let operator = app.sign_in("operator@acme.example").await;
        // One tenant: `/` goes straight to its hub.
        let reply = app.get("/", Some(&operator)).await;
        assert!(reply.status.is_redirection(), "{}", reply.status);
        assert_eq!(reply.location(), "/t/acme/operations");

        let multi = app.sign_in("multi@opshub.example").await;
        let reply = app.get("/", Some(&multi)).await;
        assert_eq!(reply.status, StatusCode::OK);
        for slug in ["acme", "globex", "initech"] {
            assert!(reply.body.contains(&format!("/t/{slug}/operations")), "{slug}");
        }
        assert!(reply.body.contains("Morgan Multi"));

        let reply = app.get("/t/acme/operations", Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.matches("data-testid=\"run-row\"").count(), DEFAULT_PAGE_SIZE as usize);
        assert!(reply.body.contains("Older"), "a second page is linked");

        let run = app.newest_run("acme").await;
        let reply = app.get(&format!("/t/acme/operations/{}", run.id), Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.contains(&run.id.to_string()) && reply.body.contains(run.idempotency_key.as_deref().unwrap()));

        let reply = app.get("/t/acme/operations?bucket=failed&limit=5", Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.matches("data-testid=\"run-row\"").count(), 5);
        assert!(!reply.body.contains(">Queued</span>"), "only failed runs are listed");
    }

    async fn bad_input_is_a_clear_400_without_internals(app) {
        let cookie = app.sign_in("viewer@acme.example").await;
        let hub = |query: serde_json::Value| serde_json::json!({ "tenant": "acme", "query": query });
        let reply = app.post_json("/api/runs/hub", hub(serde_json::json!({ "limit": "0" })), Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(reply.body.contains("page size"), "{}", reply.body);
        let reply = app.post_json("/api/runs/hub", hub(serde_json::json!({ "bucket": "done" })), Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(reply.body.contains("not a status bucket"), "{}", reply.body);
        for leak in ["SELECT", "sqlx", "constraint"] {
            assert!(!reply.body.contains(leak), "{}", reply.body);
        }
        // A body that does not decode is a 400 too, not a server error.
        let reply = app.post_json("/api/runs/hub", serde_json::json!({ "tenant": 7 }), Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        let reply = app.post_json("/api/runs/hub", hub(serde_json::json!({})), Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = app.get("/t/acme/operations?older=garbage", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        // Health needs no session.
        let reply = app.get("/healthz", None).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
    }

    async fn every_endpoint_keeps_tenants_apart(app) {
        let operator = app.sign_in("operator@acme.example").await;
        let admin = app.sign_in("admin@acme.example").await;
        let viewer = app.sign_in("viewer@acme.example").await;
        let acme_run = app.newest_run("acme").await.id.to_string();
        let globex_run = app.newest_run("globex").await.id.to_string();
        let globex_user = app.state.store.user_credentials("viewer@globex.example").await.unwrap().unwrap().user.id.to_string();
        let random_id = uuid::Uuid::now_v7().to_string();

        let paths = server_fn_paths();
        assert!(paths.len() >= 10, "{paths:?}");
        for path in &paths {
            let case = server_fn_case(path)
                .unwrap_or_else(|| panic!("{path} is not in the matrix: add it to server_fn_case"));
            let call = |slug: &str, id: &str, cookie: Option<&str>| {
                let (content_type, body) = (case.body)(slug, id);
                let cookie = cookie.map(str::to_string);
                async move { app.post(path, content_type, body, cookie.as_deref()).await }
            };
            // Each call is made by a user whose role suffices in their own tenant.
            let strong = if case.needs == Some(Role::Admin) { &admin } else { &operator };
            if case.tenant_scoped {
                let before = app.db.count_rows().await;
                let foreign = call("globex", &random_id, Some(strong)).await;
                let missing = call("no-such-tenant", &random_id, Some(strong)).await;
                assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{path}: {}", foreign.body);
                assert_eq!((foreign.status, &foreign.body), (missing.status, &missing.body), "{path}");
                // The user's own tenant naming another tenant's run or user:
                // exactly like an id that does not exist.
                if let Some(kind) = case.takes {
                    let foreign_id = if kind == IdKind::Run { &globex_run } else { &globex_user };
                    let foreign = call("acme", foreign_id, Some(strong)).await;
                    let missing = call("acme", &random_id, Some(strong)).await;
                    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{path}: {}", foreign.body);
                    assert_eq!(foreign.body, missing.body, "{path}");
                }
                assert_eq!(app.db.count_rows().await, before, "{path} wrote rows");
            }
            if case.takes == Some(IdKind::Run) {
                // The tenant's own run is found by someone allowed to act on it
                // (who may still be told the run is not in a state for it).
                let cookie = if case.needs == Some(Role::Viewer) { &viewer } else { strong };
                let reply = call("acme", &acme_run, Some(cookie)).await;
                let refused = [StatusCode::NOT_FOUND, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
                assert!(!refused.contains(&reply.status), "{path}: {} {}", reply.status, reply.body);
            }
            if let Some(needed) = case.needs {
                let before = app.db.count_rows().await;
                let reply = call("acme", &random_id, None).await;
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} without a session");
                for (role, cookie) in [(Role::Viewer, &viewer), (Role::Operator, &operator)] {
                    if role < needed {
                        let reply = call("acme", &random_id, Some(cookie)).await;
                        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} as {role:?}: {}", reply.body);
                    }
                }
                assert_eq!(app.db.count_rows().await, before, "{path} wrote rows for a refused caller");
            }
        }

        let routes = page_routes();
        assert!(routes.len() >= 5, "{routes:?}");
        for route in &routes {
            if route == "/sign-in" {
                assert_eq!(app.get(route, None).await.status, StatusCode::OK);
                continue;
            }
            // Signed out: sign in first, then come back.
            let path = fill(route, "acme", &acme_run);
            // An admin sees every page of their own tenant (`/` sends a
            // single-tenant user on to the hub).
            let status = app.get(&path, Some(&admin)).await.status;
            assert!(status == StatusCode::OK || (path == "/" && status.is_redirection()), "{path}: {status}");
            let reply = app.get(&path, None).await;
            assert!(reply.status.is_redirection(), "{path}: {}", reply.status);
            assert_eq!(reply.location(), sign_in_path(&path), "{path}");
            if route.contains("tenant") {
                let foreign = app.get(&fill(route, "globex", &globex_run), Some(&admin)).await;
                let missing = app.get(&fill(route, "no-such-tenant", &random_id), Some(&admin)).await;
                assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{route}");
                assert_eq!(without_nonces(&foreign.body), without_nonces(&missing.body), "{route}");
            }
            if route.contains("run_id") {
                let foreign = app.get(&fill(route, "acme", &globex_run), Some(&admin)).await;
                let missing = app.get(&fill(route, "acme", &random_id), Some(&admin)).await;
                assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{route}");
                assert_eq!(without_nonces(&foreign.body), without_nonces(&missing.body), "{route}");
            }
        }
    }

    async fn members_watch_runs_and_admins_subscribe_to_failures(app) {
        let operator = app.sign_in("operator@acme.example").await;
        let viewer = app.sign_in("viewer@acme.example").await;
        let admin = app.sign_in("admin@acme.example").await;
        let store = app.state.store.clone();
        let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
        let viewer_id = store.user_credentials("viewer@acme.example").await.unwrap().unwrap().user.id;
        let start = [("tenant", "acme"), ("scope_key", "devices/windows")];
        let reply = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let started: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let run_id = started["run_id"].as_str().unwrap().to_string();
        let run = RunId::parse(&run_id).unwrap();
        let page = format!("/t/acme/operations/{run_id}");

        // A viewer watches the active run with a form post (twice is once),
        // and the page says so.
        let html = app.get(&page, Some(&viewer)).await;
        assert!(html.body.contains("data-watching=\"false\""), "{}", html.body);
        let fields = [("tenant", "acme"), ("run_id", run_id.as_str())];
        for _ in 0..2 {
            let reply = app.post_form("/api/runs/watch", &fields, Some(&viewer)).await;
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "true"));
        }
        assert!(store.is_watching(acme.id, run, viewer_id).await.unwrap());
        let html = app.get(&page, Some(&viewer)).await;
        assert!(html.body.contains("data-watching=\"true\"") && html.body.contains("Stop watching"), "{}", html.body);
        let reply = app.post_form("/api/runs/unwatch", &fields, Some(&viewer)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "false"));
        assert!(!store.is_watching(acme.id, run, viewer_id).await.unwrap());
        // Another tenant's run cannot be watched: as missing as no run.
        let before = app.db.count_rows().await;
        let globex_run = app.newest_run("globex").await.id.to_string();
        for id in [globex_run.as_str(), "not-a-run"] {
            let reply = app.post_form("/api/runs/watch", &[("tenant", "acme"), ("run_id", id)], Some(&viewer)).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}: {}", reply.body);
        }
        assert_eq!(app.db.count_rows().await, before);

        // Watching again, the viewer hears of its end once, as "completed".
        app.post_form("/api/runs/watch", &fields, Some(&viewer)).await;
        support::engine::drain(&support::engine::worker(&app.state.store, "w")).await;
        let feed = |query: serde_json::Value, cookie: String| async move {
            let reply = app.post_json("/api/notifications/feed", serde_json::json!({ "tenant": "acme", "query": query }), Some(&cookie)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let feed: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            feed["notifications"]["items"].as_array().unwrap().iter()
                .map(|n| (n["kind"].as_str().unwrap().to_string(), n["notice"]["run_id"].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        };
        let completed = serde_json::json!({ "kind": "completed", "unread": "1" });
        assert_eq!(feed(completed.clone(), viewer.clone()).await, vec![("run_completed".to_string(), run_id.clone())]);
        assert!(feed(serde_json::json!({ "kind": "queued" }), viewer.clone()).await.is_empty());
        // Marking the completed ones read empties that view.
        let reply = app.post_form("/api/notifications/read-all", &[("tenant", "acme"), ("kind", "completed")], Some(&viewer)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "1"));
        assert!(feed(completed.clone(), viewer.clone()).await.is_empty());
        assert_eq!(feed(serde_json::json!({ "kind": "" }), viewer.clone()).await.len(), 1);
        let reply = app.post_form("/api/notifications/read-all", &[("tenant", "acme"), ("kind", "everything")], Some(&viewer)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        // The page's filters are its URL; a bad one is a 400.
        let html = app.get("/t/acme/notifications?kind=completed&unread=1", Some(&viewer)).await;
        assert_eq!(html.status, StatusCode::OK);
        assert!(html.body.contains("No notifications match."), "{}", html.body);
        assert!(!html.body.contains("failed-or-partial-subscription"), "viewers cannot subscribe");
        for bad in ["kind=run_completed", "unread=yes"] {
            let html = app.get(&format!("/t/acme/notifications?{bad}"), Some(&viewer)).await;
            assert_eq!(html.status, StatusCode::BAD_REQUEST, "{bad}");
        }

        // Only admins subscribe; a refused request writes nothing.
        let on = [("tenant", "acme"), ("subscribed", "true")];
        let before = app.db.count_rows().await;
        for cookie in [&viewer, &operator] {
            let reply = app.post_form("/api/notifications/subscription", &on, Some(cookie)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        }
        let reply = app.post_form("/api/notifications/subscription", &[("tenant", "acme"), ("subscribed", "yes")], Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(app.db.count_rows().await, before);
        let html = app.get("/t/acme/notifications", Some(&admin)).await;
        assert!(html.body.contains("aria-pressed=\"false\""), "{}", html.body);
        let reply = app.post_form("/api/notifications/subscription", &on, Some(&admin)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "true"));
        let html = app.get("/t/acme/notifications", Some(&admin)).await;
        assert!(html.body.contains("aria-pressed=\"true\""), "{}", html.body);
        let off = [("tenant", "acme"), ("subscribed", "false")];
        let reply = app.post_form("/api/notifications/subscription", &off, Some(&admin)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "false"));
        let admin_id = store.user_credentials("admin@acme.example").await.unwrap().unwrap().user.id;
        assert!(store.subscriptions(acme.id, admin_id).await.unwrap().is_empty());
    }

    async fn admins_manage_members_and_others_cannot(app) {
        let admin = app.sign_in("admin@acme.example").await;
        let operator = app.sign_in("operator@acme.example").await;
        let members = |cookie: String| async move {
            let reply = app.post_json("/api/members/list", serde_json::json!({ "tenant": "acme" }), Some(&cookie)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            serde_json::from_str::<Vec<Member>>(&reply.body).unwrap()
        };
        let listed = members(admin.clone()).await;
        assert_eq!(listed.len(), 4, "operator, viewer, admin and Morgan Multi");
        let viewer = listed.iter().find(|m| m.user.email == "viewer@acme.example").unwrap().user.id.to_string();

        let post = |path: &'static str, pairs: Vec<(&'static str, String)>, cookie: String| async move {
            let body = pairs.iter().map(|(k, v)| format!("{k}={}", encode_component(v))).collect::<Vec<_>>().join("&");
            app.post(path, "application/x-www-form-urlencoded", body, Some(&cookie)).await
        };
        let promote = vec![("tenant", "acme".to_string()), ("user_id", viewer.clone()), ("role", "operator".to_string())];
        assert_eq!(post("/api/members/set-role", promote.clone(), operator.clone()).await.status, StatusCode::FORBIDDEN);
        assert_eq!(post("/api/members/set-role", promote, admin.clone()).await.status, StatusCode::OK);
        let bad_role = vec![("tenant", "acme".to_string()), ("user_id", viewer.clone()), ("role", "root".to_string())];
        assert_eq!(post("/api/members/set-role", bad_role, admin.clone()).await.status, StatusCode::BAD_REQUEST);

        let add = vec![("tenant", "acme".to_string()), ("email", "viewer@globex.example".to_string()), ("role", "viewer".to_string())];
        assert_eq!(post("/api/members/add", add, admin.clone()).await.status, StatusCode::OK);
        let unknown = vec![("tenant", "acme".to_string()), ("email", "ghost@nowhere.example".to_string()), ("role", "viewer".to_string())];
        let reply = post("/api/members/add", unknown, admin.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

        let remove = vec![("tenant", "acme".to_string()), ("user_id", viewer.clone())];
        assert_eq!(post("/api/members/remove", remove, admin.clone()).await.status, StatusCode::OK);
        let roles: Vec<(String, Role)> = members(admin.clone()).await.into_iter().map(|m| (m.user.email, m.role)).collect();
        assert!(roles.contains(&("viewer@globex.example".to_string(), Role::Viewer)), "{roles:?}");
        assert!(!roles.iter().any(|(email, _)| email == "viewer@acme.example"), "{roles:?}");

        // The last admin cannot remove themselves.
        let me = listed.iter().find(|m| m.user.email == "admin@acme.example").unwrap().user.id.to_string();
        let reply = post("/api/members/remove", vec![("tenant", "acme".to_string()), ("user_id", me)], admin.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(reply.body.contains("at least one admin"), "{}", reply.body);

        let actions = app.audit_actions("acme").await;
        for action in ["membership.role_change", "membership.grant", "membership.remove"] {
            assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
        }
        let page = app.get("/t/acme/members", Some(&admin)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("viewer@globex.example"));
        assert_eq!(app.get("/t/acme/members", Some(&operator)).await.status, StatusCode::FORBIDDEN);
    }

    async fn operators_start_operations_and_duplicates_join(app) {
        let operator = app.sign_in("operator@acme.example").await;
        let start = [("tenant", "acme"), ("scope_key", "apps/managed")];
        let first = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let first: serde_json::Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(first["joined"], false);
        let again = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        let again: serde_json::Value = serde_json::from_str(&again.body).unwrap();
        assert_eq!(again["joined"], true);
        assert_eq!(again["run_id"], first["run_id"]);
        assert_eq!(again["link"], format!("/t/acme/operations/{}", first["run_id"].as_str().unwrap()));

        let unknown = [("tenant", "acme"), ("scope_key", "no/such/scope")];
        let reply = app.post_form("/api/operations/start-drift", &unknown, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(reply.body.contains("drift needs two"), "{}", reply.body);
        let malformed = [("tenant", "acme"), ("backup_set_id", "nope")];
        let reply = app.post_form("/api/operations/start-add-policies", &malformed, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

        // The hub's add-policies form: one `policy_ids[]` per ticked box.
        let acme = app.state.store.tenant_by_slug("acme").await.unwrap().unwrap();
        let set = app.state.store.list_backup_sets(acme.id).await.unwrap()[0].id.to_string();
        let policies = app.state.store.list_policies(acme.id).await.unwrap();
        let (p1, p2) = (policies[0].id.to_string(), policies[1].id.to_string());
        let fields = [("tenant", "acme"), ("backup_set_id", set.as_str()), ("policy_ids[]", p1.as_str()),
            ("policy_ids[]", p2.as_str()), ("include_payload", "true")];
        let reply = app.post_form("/api/operations/start-add-policies", &fields, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let started: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let run = RunId::parse(started["run_id"].as_str().unwrap()).unwrap();
        let run = app.state.store.run(acme.id, run).await.unwrap().unwrap();
        let mut expected = vec![p1, p2];
        expected.sort();
        assert_eq!(run.item_ids["policy_ids"], serde_json::json!(expected));
        assert_eq!(run.item_ids["options"]["include_payload"], true);
        assert!(app.audit_actions("acme").await.iter().any(|a| a == "run.start"));

        // The same form once hydrated: the ActionForm numbers the entries.
        let (p3, p4) = (policies[2].id.to_string(), policies[3].id.to_string());
        let fields = [("tenant", "acme"), ("backup_set_id", set.as_str()), ("policy_ids[0]", p3.as_str()),
            ("policy_ids[1]", p4.as_str())];
        let reply = app.post_form("/api/operations/start-add-policies", &fields, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let started: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let run = RunId::parse(started["run_id"].as_str().unwrap()).unwrap();
        let run = app.state.store.run(acme.id, run).await.unwrap().unwrap();
        let mut expected = vec![p3, p4];
        expected.sort();
        assert_eq!(run.item_ids["policy_ids"], serde_json::json!(expected));
        assert_eq!(run.item_ids["options"]["include_payload"], false);
    }

    /// The spec's Phase 1 link: a drift run lists its comparison's findings
    /// (scope key + baseline + current), also when an earlier run over the
    /// same syncs found them first.
    async fn a_repeated_drift_run_lists_its_comparisons_findings(app) {
        let operator = app.sign_in("operator@acme.example").await;
        let start = [("tenant", "acme"), ("scope_key", "apps/managed")];
        let mut pages = Vec::new();
        for worker in ["w1", "w2"] {
            let reply = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let started: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(started["joined"], false, "the first run ended before the second start");
            support::engine::drain(&support::engine::worker(&app.state.store, worker)).await;
            let run = RunId::parse(started["run_id"].as_str().unwrap()).unwrap();
            let ended = app.state.store.run_summaries(&[run]).await.unwrap();
            assert_eq!(ended[0].status, RunStatus::Completed);
            let page = app.get(started["link"].as_str().unwrap(), Some(&operator)).await;
            assert_eq!(page.status, StatusCode::OK);
            // Its one attempt: the worker that ran it, ended as completed.
            assert_eq!(page.body.matches("data-testid=\"run-attempt\"").count(), 1);
            assert!(page.body.contains("data-end=\"completed\"") && page.body.contains(worker), "{}", page.body);
            pages.push(page.body);
        }
        let listed = |page: &str| {
            let list = &page[page.find("data-testid=\"run-findings\"").expect("findings listed")..];
            list[..list.find("</ul>").unwrap()].matches("<li").count()
        };
        assert!(listed(&pages[0]) > 0);
        assert_eq!(listed(&pages[1]), listed(&pages[0]), "the repeat run lists the same findings");

        let link = pages[1]
            .split("data-testid=\"run-findings-link\" href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .replace("&amp;", "&");
        assert!(link.starts_with("/t/acme/findings?scope=apps%2Fmanaged&baseline="), "{link}");
        assert!(link.contains("&current="), "{link}");
        let findings = app.get(&link, Some(&operator)).await;
        assert_eq!(findings.status, StatusCode::OK);
        assert!(findings.body.matches("data-testid=\"finding-row\"").count() >= listed(&pages[1]));

        // The filters are checked: a sync id that is no UUID is a clear 400.
        let reply = app.get("/t/acme/findings?baseline=yesterday", Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("not a valid InventorySyncRunId"), "{}", reply.body);
    }

    /// The Insights page counts a run as soon as it ends, draws its
    /// charts on the server with a table for each, and its figures link to
    /// the hub filtered to the runs they count.
    async fn insights_count_a_run_that_just_ended(app) {
        let viewer = app.sign_in("viewer@acme.example").await;
        let ended = |body: &str| -> i64 {
            let after = body.split("data-testid=\"total-ended\"><strong>").nth(1).expect("a total");
            after.split('<').next().unwrap().parse().unwrap()
        };
        // The demo's queued runs end first, so that only ours ends below.
        support::engine::drain(&support::engine::worker(&app.state.store, "w0")).await;
        let before = app.get("/t/acme/insights?operation=drift.generate", Some(&viewer)).await;
        assert_eq!(before.status, StatusCode::OK, "{}", before.body);
        assert_eq!(before.body.matches("<svg class=\"chart\"").count(), 5);
        assert_eq!(before.body.matches("class=\"entries chart-table\"").count(), 5);

        let operator = app.sign_in("operator@acme.example").await;
        let start = [("tenant", "acme"), ("scope_key", "apps/managed")];
        let reply = app.post_form("/api/operations/start-drift", &start, Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let started: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        support::engine::drain(&support::engine::worker(&app.state.store, "w1")).await;

        let after = app.get("/t/acme/insights?operation=drift.generate", Some(&viewer)).await;
        assert_eq!(ended(&after.body), ended(&before.body) + 1);
        let link = after
            .body
            .split("data-testid=\"total-ended\"")
            .next()
            .and_then(|head| head.rsplit("href=\"").next())
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .replace("&amp;", "&");
        assert!(link.starts_with("/t/acme/operations?operation=drift.generate&from="), "{link}");
        let hub = app.get(&link, Some(&viewer)).await;
        assert_eq!(hub.status, StatusCode::OK, "{link}");
        assert!(hub.body.contains(started["run_id"].as_str().unwrap()), "{link}");

        // The run page compares the run with its operation's week.
        let page = app.get(started["link"].as_str().unwrap(), Some(&viewer)).await;
        let comparison = page.body.split("data-testid=\"run-comparison\"").nth(1).expect("a comparison");
        assert!(comparison.contains("this operation"), "{comparison}");

        // A failure reason's total links to the hub filtered by that reason
        // (the demo's month of runs has some); a code that is none is a 400.
        let page = app.get("/t/acme/insights?window=90d", Some(&viewer)).await;
        let link = page
            .body
            .split("href=\"")
            .find(|rest| rest.split('"').next().unwrap().contains("reason="))
            .and_then(|rest| rest.split('"').next())
            .expect("a reason total's link")
            .replace("&amp;", "&");
        assert!(link.starts_with("/t/acme/operations?from=") && link.contains("&reason="), "{link}");
        let hub = app.get(&link, Some(&viewer)).await;
        assert_eq!(hub.status, StatusCode::OK, "{link}");
        assert!(hub.body.contains("data-testid=\"run-row\""), "{link} lists runs");
        let bad = app.get("/t/acme/operations?reason=nonsense", Some(&viewer)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);

        // Every window reads; anything else is a clear 400.
        for window in ["24h", "7d", "30d", "90d"] {
            let page = app.get(&format!("/t/acme/insights?window={window}"), Some(&viewer)).await;
            assert_eq!(page.status, StatusCode::OK, "{window}");
        }
        let bad = app.get("/t/acme/insights?window=1y", Some(&viewer)).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("`window` must be one of 24h, 7d, 30d, 90d"), "{}", bad.body);
    }

    /// A finished run's bar shows its outcome (succeeded, failed and
    /// skipped stretches, and in words), and its failure and skipped rows
    /// name their items beside their ids.
    async fn run_pages_show_outcomes_and_item_names(app) {
        let store = app.state.store.as_ref();
        let tenant = store.tenant_by_slug("acme").await.unwrap().unwrap();
        let user = store.members(tenant.id).await.unwrap().remove(0).user;
        let f = support::Fixture { tenant, user };
        let mine = support::engine::policies(store, &f, &["Firewall baseline", "Disk encryption"]).await;
        let set = store.create_backup_set(f.tenant.id, "Named items").await.unwrap();
        let (first, second) = (mine[0].id.to_string(), mine[1].id.to_string());
        support::engine::queue_add_policies(store, &f, set.id, "names-1", vec![first.clone()], 3).await;
        let worker = support::engine::worker(&app.state.store, "w1");
        support::engine::drain(&worker).await;
        let missing = PolicyId::generate().to_string();
        let run = support::engine::queue_add_policies(
            store, &f, set.id, "names-2", vec![first.clone(), second, missing.clone()], 3,
        )
        .await;
        support::engine::drain(&worker).await;

        let viewer = app.sign_in("viewer@acme.example").await;
        let page = app.get(&format!("/t/acme/operations/{run}"), Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        assert!(body.contains("3 of 3 processed: 1 succeeded, 1 failed, 1 skipped"), "{body}");
        assert!(body.contains("fill=\"url(#bar-failed)\""));
        assert_eq!(body.matches("id=\"bar-failed\"").count(), 1, "the pattern is defined once");
        let skipped = &body[body.find("data-testid=\"skipped-table\"").expect("skipped rows")..];
        let skipped = &skipped[..skipped.find("</table>").unwrap()];
        assert!(skipped.contains(&first) && skipped.contains("Firewall baseline"), "{skipped}");
        let failed = &body[body.find("data-testid=\"failures-table\"").expect("failure rows")..];
        let failed = &failed[..failed.find("</table>").unwrap()];
        assert!(failed.contains(&missing), "{failed}");
        assert!(!failed.contains("data-testid=\"item-name\""), "a policy that does not exist has no name");
    }

    async fn cross_site_writes_are_refused(app) {
        let form = format!("email=operator%40acme.example&password={DEMO_PASSWORD}");
        let attempt = |site: Option<&'static str>, origin: Option<&'static str>| {
            let form = form.clone();
            async move {
                let mut request = Request::post("/api/session/sign-in")
                    .header(header::HOST, "opshub.test")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ACCEPT, "application/json");
                if let Some(site) = site {
                    request = request.header("sec-fetch-site", site);
                }
                if let Some(origin) = origin {
                    request = request.header(header::ORIGIN, origin);
                }
                app.send(request.body(Body::from(form)).unwrap()).await
            }
        };
        let before = app.db.count_rows().await;
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), Some("http://opshub.test")),
            (None, Some("https://evil.example")),
            (None, None),
        ] {
            let reply = attempt(site, origin).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{site:?} {origin:?}");
            assert!(reply.session_cookie().is_none());
        }
        assert_eq!(app.db.count_rows().await, before, "refused requests wrote nothing");
        for (site, origin) in [(Some("same-origin"), None), (Some("none"), None), (None, Some("http://opshub.test"))] {
            let reply = attempt(site, origin).await;
            assert!(reply.status.is_success(), "{site:?} {origin:?}: {}", reply.status);
        }
    }

    async fn sessions_cycle_at_sign_in_and_die_at_sign_out(app) {
        // A planted session id is never adopted (session fixation).
        let planted = "opshub_session=planted-by-an-attacker";
        let reply = app.sign_in_reply("operator@acme.example", DEMO_PASSWORD, Some(planted)).await;
        let cookie = reply.session_cookie().unwrap();
        assert_ne!(cookie, planted);
        let flags = reply.set_cookie().unwrap().to_ascii_lowercase();
        assert!(flags.contains("httponly"), "{flags}");
        assert!(flags.contains("samesite=lax"), "{flags}");
        assert!(!flags.contains("secure"), "plain http by default: {flags}");
        assert_eq!(app.get("/t/acme/operations", Some(&cookie)).await.status, StatusCode::OK);

        let again = app.sign_in("operator@acme.example").await;
        assert_ne!(again, cookie, "every sign-in gets its own session id");

        let reply = app.post("/api/session/sign-out", "application/x-www-form-urlencoded", String::new(), Some(&cookie)).await;
        assert!(reply.status.is_success() || reply.status.is_redirection(), "{}", reply.status);
        // The old cookie is dead: pages send it to sign in, server functions say 401.
        assert!(app.get("/t/acme/operations", Some(&cookie)).await.status.is_redirection());
        let reply = app.post_json("/api/runs/hub", serde_json::json!({ "tenant": "acme", "query": {} }), Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        // The other session lives on.
        assert_eq!(app.get("/t/acme/operations", Some(&again)).await.status, StatusCode::OK);

        let actions = app.audit_actions("acme").await;
        assert!(actions.iter().any(|a| a == "auth.sign_in"), "{actions:?}");
        assert!(actions.iter().any(|a| a == "auth.sign_out"), "{actions:?}");
    }

    async fn wrong_passwords_get_one_answer_and_are_slowed_down(app) {
        let unknown = app.sign_in_reply("nobody@acme.example", "whatever-password", None).await;
        let wrong = app.sign_in_reply("viewer@acme.example", "not-the-password", None).await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
        assert_eq!(wrong.body, r#""InvalidCredentials""#);
        assert!(wrong.session_cookie().is_none());
        assert!(app.audit_actions("acme").await.iter().any(|a| a == "auth.sign_in_failed"));

        // Up to the limit in the window (one failure above already counts).
        for _ in 1..MAX_FAILURES {
            let reply = app.sign_in_reply("viewer@acme.example", "not-the-password", None).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
        // The next attempt is refused, even with the right password...
        let refused = app.sign_in_reply("viewer@acme.example", DEMO_PASSWORD, None).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
        assert!(refused.body.contains("TooManyAttempts"), "{}", refused.body);
        // ...other accounts are not affected...
        app.sign_in("operator@acme.example").await;
        // ...and once the window has passed, the right password works again.
        tokio::time::sleep(SIGN_IN_WINDOW + Duration::from_millis(100)).await;
        app.sign_in("viewer@acme.example").await;
    }
}

#[tokio::test]
async fn secure_cookies_when_served_over_https() {
    let settings = Settings {
        secure_cookies: true,
        ..Settings::default()
    };
    let app = App::new(Backend::Sqlite, settings).await;
    let reply = app
        .sign_in_reply("operator@acme.example", DEMO_PASSWORD, None)
        .await;
    assert!(reply
        .set_cookie()
        .unwrap()
        .to_ascii_lowercase()
        .contains("secure"));
    // Browsers are told to come back over https only.
    assert_security_headers(&reply.headers, true, "sign-in over https");
    let page = app.get("/sign-in", None).await;
    assert_security_headers(&page.headers, true, "page over https");
}
