//! Bounded work over HTTP: search and filter text is short (at most 200
//! characters, else a clear 400).

mod support;

use axum::http::StatusCode;
use opshub::domain::*;
use support::app::*;

on_both_databases! {
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
}
