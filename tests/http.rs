//! The HTTP surface, driven in-process through the real router on a fresh
//! seeded SQLite database: pages render on the server, missing things are
//! 404s, and server functions answer with safe errors.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use opshub::domain::*;
use opshub::server::store::*;
use opshub::server::{http::router, seed, AppState};
use tower::ServiceExt;

struct App {
    state: AppState,
    _db: support::TestDb,
}

async fn app() -> App {
    let db = support::TestDb::new(Backend::Sqlite).await;
    seed::seed_demo(db.store.as_ref()).await.unwrap();
    let leptos_options = leptos::prelude::LeptosOptions::builder()
        .output_name("opshub")
        .build();
    App {
        state: AppState {
            leptos_options,
            store: db.store.clone(),
        },
        _db: db,
    }
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, String) {
    let response = router(app.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &App, path: &str) -> (StatusCode, String) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post_json(app: &App, path: &str, body: serde_json::Value) -> (StatusCode, String) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await
}

async fn newest_run(app: &App, slug: &str) -> RunSummary {
    let tenant = app.state.store.tenant_by_slug(slug).await.unwrap().unwrap();
    let page = app
        .state
        .store
        .list_runs(tenant.id, &RunFilter::default(), PageRequest::first(1))
        .await
        .unwrap();
    page.items.into_iter().next().unwrap()
}

#[tokio::test]
async fn pages_render_completely_on_the_server() {
    let app = app().await;
    let (status, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Acme Corp") && body.contains("/t/globex/operations"),
        "{body}"
    );

    let (status, body) = get(&app, "/t/acme/operations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.matches("data-testid=\"run-row\"").count(),
        DEFAULT_PAGE_SIZE as usize
    );
    assert!(body.contains("Older"), "a second page is linked");

    let run = newest_run(&app, "acme").await;
    let (status, body) = get(&app, &format!("/t/acme/operations/{}", run.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&run.id.to_string()) && body.contains(&run.idempotency_key),
        "{body}"
    );

    let (status, body) = get(&app, "/t/acme/operations?bucket=failed&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches("data-testid=\"run-row\"").count(), 5);
    assert!(
        !body.contains(">Queued</span>"),
        "only failed runs are listed"
    );
}

#[tokio::test]
async fn unknown_and_foreign_things_are_the_same_404() {
    let app = app().await;
    let acme_run = newest_run(&app, "acme").await;
    let cases = [
        "/t/nope/operations".to_string(),
        "/t/acme/operations/00000000-0000-0000-0000-000000000000".to_string(),
        "/t/acme/operations/not-a-uuid".to_string(),
        format!("/t/globex/operations/{}", acme_run.id),
        "/no/such/page".to_string(),
    ];
    for path in cases {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("Not found"), "{path}: {body}");
    }

    // Server function: another tenant's run answers exactly like a missing one.
    let detail = |run_id: String| serde_json::json!({ "tenant": "globex", "run_id": run_id });
    let foreign = post_json(&app, "/api/runs/detail", detail(acme_run.id.to_string())).await;
    let missing = post_json(
        &app,
        "/api/runs/detail",
        detail("0190a6b2-7c1e-7d3a-9f00-000000000001".into()),
    )
    .await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND);
    assert_eq!(foreign, missing);
}

#[tokio::test]
async fn bad_input_is_a_clear_400_without_internals() {
    let app = app().await;
    let hub = |query: serde_json::Value| serde_json::json!({ "tenant": "acme", "query": query });
    let (status, body) = post_json(
        &app,
        "/api/runs/hub",
        hub(serde_json::json!({ "limit": "0" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("page size"), "{body}");
    let (status, body) = post_json(
        &app,
        "/api/runs/hub",
        hub(serde_json::json!({ "bucket": "done" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not a status bucket"), "{body}");
    // A body that does not decode is a 400 too, not a server error.
    let (status, body) = post_json(&app, "/api/runs/hub", serde_json::json!({ "tenant": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post_json(&app, "/api/runs/hub", hub(serde_json::json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    for leak in ["SELECT", "sqlx", "constraint"] {
        assert!(!body.contains(leak), "{body}");
    }
    let (status, _) = get(&app, "/t/acme/operations?older=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_check_answers() {
    let app = app().await;
    assert_eq!(
        get(&app, "/healthz").await,
        (StatusCode::OK, "ok".to_string())
    );
}
