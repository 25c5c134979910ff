//! Bounded work over HTTP: search and filter text is short (at most 200
//! characters, else a clear 400), and what a viewer reads names people
//! without their email addresses.

mod support;

use axum::http::StatusCode;
use opshub::api::runs::HubData;
use opshub::domain::*;
use support::app::*;

on_both! { app =>
    async fn search_and_filter_text_is_at_most_200_characters(app) {
        let viewer = app.sign_in("viewer@acme.example").await;
        let hub = |q: String| serde_json::json!({ "tenant": "acme", "query": { "q": q } });
        for path in ["/api/runs/hub", "/api/runs/counts"] {
            // Characters, not bytes: 200 umlauts are 400 bytes.
            let reply = app.post_json(path, hub("ü".repeat(MAX_SEARCH_CHARS)), Some(&viewer)).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
            let reply = app.post_json(path, hub("ü".repeat(MAX_SEARCH_CHARS + 1)), Some(&viewer)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.body);
            assert!(reply.body.contains("`q` is too long: at most 200 characters"), "{}", reply.body);
        }
        // The 1.5 MB searches: refused, and not echoed.
        let reply = app.post_json("/api/runs/counts", hub("x".repeat(1_500_000)), Some(&viewer)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.len() < 200, "{} bytes", reply.body.len());
        let reply = app.post_json("/api/runs/hub", hub("drift:\u{0}".into()), Some(&viewer)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("`q` must not contain control characters"), "{}", reply.body);

        // Every other filter field too, of the hub and of the findings.
        for field in ["bucket", "operation", "initiator", "from", "to", "older", "newer", "limit"] {
            let query = serde_json::json!({ "tenant": "acme", "query": { field: "x".repeat(201) } });
            let reply = app.post_json("/api/runs/hub", query, Some(&viewer)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
            assert!(reply.body.contains(&format!("`{field}` is too long")), "{}", reply.body);
        }
        for field in ["status", "scope", "subject_type", "run", "older", "newer"] {
            let query = serde_json::json!({ "tenant": "acme", "query": { field: "ü".repeat(201) } });
            let reply = app.post_json("/api/findings/list", query, Some(&viewer)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
            assert!(reply.body.contains(&format!("`{field}` is too long")), "{}", reply.body);
        }
        let scope = serde_json::json!({ "tenant": "acme", "query": { "scope": "ü".repeat(200) } });
        assert_eq!(app.post_json("/api/findings/list", scope, Some(&viewer)).await.status, StatusCode::OK);

        // The pages say so.
        let long = encode_component(&"ü".repeat(MAX_SEARCH_CHARS + 1));
        let page = app.get(&format!("/t/acme/operations?q={long}"), Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("is too long: at most 200 characters"), "{}", page.body);
        let page = app.get(&format!("/t/acme/findings?subject_type={long}"), Some(&viewer)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        let fine = encode_component(&"ü".repeat(MAX_SEARCH_CHARS));
        assert_eq!(app.get(&format!("/t/acme/operations?q={fine}"), Some(&viewer)).await.status, StatusCode::OK);

        // Form fields: an email of more than 254 characters, a role of more than 200.
        let admin = app.sign_in("admin@acme.example").await;
        let operator = app.sign_in("operator@acme.example").await;
        let before = app.db.count_rows().await;
        let email = format!("{}@acme.example", "a".repeat(250));
        let reply = app.post_form("/api/members/add", &[("tenant", "acme"), ("email", &email), ("role", "viewer")], Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("`email` is too long: at most 254 characters"), "{}", reply.body);
        let role = "x".repeat(100_000);
        let reply = app.post_form("/api/members/add", &[("tenant", "acme"), ("email", "viewer@globex.example"), ("role", &role)], Some(&admin)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("`role` is too long") && reply.body.len() < 200, "{}", reply.body);
        let run_id = "1".repeat(100_000);
        let reply = app.post_form("/api/operations/abort", &[("tenant", "acme"), ("run_id", &run_id)], Some(&operator)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.len() < 200, "{}", reply.body);
        assert_eq!(app.db.count_rows().await, before, "refused requests wrote rows");
    }

    async fn viewers_see_initiators_names_and_no_one_elses_email(app) {
        let me = "viewer@acme.example";
        let viewer = app.sign_in(me).await;
        let store = &app.state.store;
        let mut others = Vec::new();
        for slug in ["acme", "globex", "initech"] {
            let tenant = store.tenant_by_slug(slug).await.unwrap().unwrap();
            for member in store.members(tenant.id).await.unwrap() {
                if member.user.email != me && !others.contains(&member.user.email) {
                    others.push(member.user.email);
                }
            }
        }
        assert!(others.len() >= 5, "{others:?}");
        let acme_run = app.newest_run("acme").await.id.to_string();
        let my_id = store.user_credentials(me).await.unwrap().unwrap().user.id.to_string();

        // Every server function with a valid request, and every page, as the viewer.
        let mut answers = Vec::new();
        for path in server_fn_paths() {
            if path == "/api/session/sign-out" {
                continue;
            }
            let case = server_fn_case(&path).unwrap_or_else(|| panic!("{path} is not in the matrix"));
            let id = if case.takes == Some(IdKind::User) { &my_id } else { &acme_run };
            let (content_type, body) = (case.body)("acme", id);
            let reply = app.post(&path, content_type, body, Some(&viewer)).await;
            answers.push((path, reply));
        }
        let hub = app.post_json("/api/runs/hub", serde_json::json!({ "tenant": "acme", "query": {} }), Some(&viewer)).await;
        assert_eq!(hub.status, StatusCode::OK, "{}", hub.body);
        let data: HubData = serde_json::from_str(&hub.body).unwrap();
        let names: Vec<&str> = data.initiators.iter().map(|i| i.display_name.as_str()).collect();
        assert!(names.contains(&"Morgan Multi"), "the filter names initiators: {names:?}");
        answers.push(("hub without filters".into(), hub));
        for route in page_routes() {
            let path = fill(&route, "acme", &acme_run);
            let reply = app.get(&path, Some(&viewer)).await;
            answers.push((path, reply));
        }
        for (what, reply) in &answers {
            for email in &others {
                assert!(!reply.body.contains(email.as_str()), "{what} ({}) shows {email}", reply.status);
            }
        }

        // Admins still see members' emails on the members page.
        let admin = app.sign_in("admin@acme.example").await;
        let page = app.get("/t/acme/members", Some(&admin)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("operator@acme.example") && page.body.contains(me), "{}", page.body);
    }
}
