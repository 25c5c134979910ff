//! Secrets stay out, by construction: a corpus of canaries — every shape
//! the sanitiser knows, each with a token of its own — is planted in
//! inventory payloads, display names, policy payloads and names, a backup
//! set's name, scope keys and inputs whose errors quote them. After a drift
//! run and add-policies runs (with and without payloads, one policy over
//! the snapshot limit), no canary may appear in the runs, findings,
//! notifications or audit rows, the server log, any page for any role, or
//! any server function's answer.

mod support;

use axum::http::StatusCode;
use opshub::domain::*;
use opshub::server::store::*;
use support::app::*;

/// Shapes of secrets, `{c}` standing for the canary.
const SHAPES: [&str; 36] = [
    "password={c}",
    "password: {c}",
    "password = {c}",
    r#"{"password":"{c}"}"#,
    r#"{"clientSecret": "{c} more"}"#,
    "{'api_key': '{c}'}",
    "clientSecret={c} second",
    "passphrase={c}",
    "accessToken={c}",
    "credential={c}",
    "cookie: a={c}; b=2",
    "private-key={c}",
    "aws_secret_access_key={c}",
    "x-api-key: {c}",
    "db.password={c}",
    "sessionId={c}",
    "sig={c}",
    "Server=db;Pwd={c};",
    r#"ConnectionString="Server=x;Password={c}""#,
    "Authorization: Bearer {c}",
    "sent Bearer {c}",
    "sent Basic {c}",
    "postgres://admin:{c}@db.internal/prod",
    "mongodb+srv://u:{c}@cluster.example.net/db",
    "jdbc:sqlserver://db;password={c}",
    "https://deploy:{c}@api.example.com/v1",
    "https://api.example.com/cb?access_token={c}&x=1",
    "eyJhbGciOiJIUzI1NiJ9.eyJ{c}.sig",
    "-----BEGIN PRIVATE KEY----- {c} -----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY----- {c}",
    "ghp_{c}",
    "glpat-{c}",
    "xoxb-12-{c}",
    "{c}@example.com",
    "sk_live_{c}",
    "owner {c}@contoso.com",
];

/// The planted texts and the canaries in them.
struct Corpus {
    canaries: Vec<String>,
    run: String,
}

impl Corpus {
    fn new() -> Self {
        Self {
            canaries: Vec::new(),
            run: uuid::Uuid::now_v7().simple().to_string(),
        }
    }

    /// A fresh canary: unique, with digits and both cases, so it reads as a
    /// credential wherever a shape needs one.
    fn canary(&mut self) -> String {
        let canary = format!("Cq{}{:03}Zk", &self.run[20..], self.canaries.len());
        self.canaries.push(canary.clone());
        canary
    }

    /// Every shape once, each with a canary of its own, plus the shapes
    /// that need a canary of their own form.
    fn texts(&mut self) -> Vec<String> {
        let mut texts: Vec<String> = SHAPES
            .iter()
            .map(|shape| {
                let canary = self.canary();
                shape.replace("{c}", &canary)
            })
            .collect();
        let upper = self.canary().to_ascii_uppercase();
        *self.canaries.last_mut().unwrap() = upper.clone();
        texts.push(format!("key AKIA{upper}"));
        // A random-looking token and a hex digest, canaries themselves.
        let random: String = self
            .run
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let d = c.to_digit(16).unwrap() as u8;
                match i % 3 {
                    0 => (b'a' + d) as char,
                    1 => (b'0' + d % 10) as char,
                    _ => (b'A' + d) as char,
                }
            })
            .collect();
        self.canaries.push(random.clone());
        texts.push(format!("token {random}"));
        let hex = format!("a1{}", self.run);
        self.canaries.push(hex.clone());
        texts.push(format!("sha1 {hex}"));
        texts
    }

    fn assert_absent(&self, what: &str, text: &str) {
        for canary in &self.canaries {
            assert!(
                !text.contains(canary.as_str()),
                "canary {canary} leaked into {what}: …{}…",
                excerpt(text, canary)
            );
        }
    }
}

/// The text around the canary (`find` answers a char boundary).
fn excerpt(text: &str, canary: &str) -> String {
    let at = text.find(canary).unwrap_or(0);
    let before: Vec<char> = text[..at].chars().rev().take(120).collect();
    let after: String = text[at..].chars().take(canary.len() + 60).collect();
    before.into_iter().rev().chain(after.chars()).collect()
}

async fn run_queue_dry(app: &App) {
    support::engine::drain(&support::engine::worker(&app.state.store, "canary-worker")).await;
}

/// Every row of `table`, every column as text.
async fn dump(app: &App, table: &str) -> String {
    use sqlx::{Connection, Row};
    let mut out = String::new();
    if app.db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("name"))
            .collect();
        let select = columns
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        for row in sqlx::query(&format!("SELECT {select} FROM {table}"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            out.push_str(&row.get::<String, _>(0));
            out.push('\n');
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        for row in sqlx::query(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            out.push_str(&row.get::<String, _>(0));
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "{table} has no rows to check");
    out
}

fn item(id: usize, name: &str, payload: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "subject_type": "device",
        "external_id": format!("dev-{id}"),
        "display_name": name,
        "payload": payload,
    })
}

on_both! { app =>
    async fn no_canary_reaches_a_viewer_a_row_or_the_log(app) {
        let store = app.state.store.clone();
        let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
        let mut corpus = Corpus::new();
        let texts = corpus.texts();

        // Inventory: two syncs where every device changes, its name, an
        // allowlisted field, an unlisted one and a key named like a secret
        // all carrying canaries.
        let sync = |generation: usize, texts: &[String]| {
            let items: Vec<serde_json::Value> = texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    item(
                        i,
                        &format!("{text} {generation}"),
                        serde_json::json!({
                            "owner": format!("{text} {generation}"),
                            "state": text,
                            "notes": format!("{generation} {text}"),
                            text.clone(): generation,
                        }),
                    )
                })
                .collect();
            serde_json::to_vec(&items).unwrap()
        };
        for generation in 0..2 {
            opshub::server::inventory::import(
                store.as_ref(),
                &acme,
                "canaries",
                sync(generation, &texts),
            )
            .await
            .unwrap();
        }
        // A scope key carrying a secret is refused, with nothing stored.
        for text in &texts {
            let err =
                opshub::server::inventory::import(store.as_ref(), &acme, text, sync(0, &texts))
                    .await
                    .map(|_| ())
                    .expect_err("a scope key with a secret is refused");
            corpus.assert_absent("an import error", &err.to_string());
        }

        // Policies named and filled with canaries, one over the snapshot
        // limit, in a backup set whose name is a canary too.
        let set = store.create_backup_set(acme.id, &texts[0]).await.unwrap();
        let mut policy_ids = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let payload = if i == 1 {
                serde_json::json!({ "blob": "x".repeat(300 * 1024), "secret": text })
            } else {
                serde_json::json!({ "settings": text, text.clone(): i })
            };
            let policy = store
                .create_policy(NewPolicy {
                    tenant_id: acme.id,
                    external_id: format!("canary-{i}"),
                    name: text.clone(),
                    policy_type: "compliance".into(),
                    payload,
                })
                .await
                .unwrap();
            policy_ids.push(policy.id.to_string());
        }

        let operator = app.sign_in("operator@acme.example").await;
        let admin = app.sign_in("admin@acme.example").await;
        let viewer = app.sign_in("viewer@acme.example").await;

        // Starts through the real server functions; scope keys carrying a
        // secret are refused without being echoed.
        let drift = app
            .post_form(
                "/api/operations/start-drift",
                &[("tenant", "acme"), ("scope_key", "canaries")],
                Some(&operator),
            )
            .await;
        assert!(
            drift.status.is_success() || drift.status.is_redirection(),
            "{}: {}",
            drift.status,
            drift.body
        );
        for text in &texts {
            let refused = app
                .post_form(
                    "/api/operations/start-drift",
                    &[("tenant", "acme"), ("scope_key", text)],
                    Some(&operator),
                )
                .await;
            assert_eq!(
                refused.status,
                StatusCode::BAD_REQUEST,
                "{text}: {}",
                refused.body
            );
            corpus.assert_absent("a start-drift answer", &refused.body);
        }
        let set_id = set.id.to_string();
        let start_policies = |include: &'static str| {
            let mut fields: Vec<(&str, &str)> = vec![
                ("tenant", "acme"),
                ("backup_set_id", &set_id),
                ("include_payload", include),
            ];
            fields.extend(policy_ids.iter().map(|id| ("policy_ids[]", id.as_str())));
            let (content_type, body) = form(&fields);
            app.post(
                "/api/operations/start-add-policies",
                content_type,
                body,
                Some(&operator),
            )
        };
        let with_payload = start_policies("true").await;
        assert!(
            with_payload.status.is_success() || with_payload.status.is_redirection(),
            "{}",
            with_payload.body
        );
        run_queue_dry(app).await;
        // The second run adds nothing new but meets the same names again.
        let metadata_only = start_policies("").await;
        assert!(
            metadata_only.status.is_success() || metadata_only.status.is_redirection(),
            "{}",
            metadata_only.body
        );
        run_queue_dry(app).await;

        // Error paths whose messages quote their input.
        for text in &texts {
            let answers = [
                app.post_form("/api/operations/start-add-policies", &[("tenant", "acme"), ("backup_set_id", text)], Some(&operator)).await,
                app.post_json("/api/runs/hub", serde_json::json!({ "tenant": "acme", "query": { "bucket": text, "limit": text } }), Some(&viewer)).await,
                app.post_json("/api/runs/hub", serde_json::json!({ "tenant": "acme", "query": { "from": text } }), Some(&viewer)).await,
                app.post_json("/api/findings/list", serde_json::json!({ "tenant": "acme", "query": { "status": text, "run": text } }), Some(&viewer)).await,
                app.post_json("/api/findings/list", serde_json::json!({ "tenant": "acme", "query": { "older": text } }), Some(&viewer)).await,
                app.post_form("/api/findings/acknowledge", &[("tenant", "acme"), ("ids", text)], Some(&operator)).await,
                app.post_form("/api/members/set-role", &[("tenant", "acme"), ("user_id", text), ("role", text)], Some(&admin)).await,
                app.post_form("/api/operations/retry", &[("tenant", "acme"), ("run_id", text)], Some(&operator)).await,
                app.post_json("/api/runs/hub", serde_json::json!({ "tenant": "acme", "query": { "limit": 5, "bucket": [text] } }), Some(&viewer)).await,
            ];
            for answer in answers {
                assert!(
                    answer.status.is_client_error(),
                    "{text}: {} {}",
                    answer.status,
                    answer.body
                );
                corpus.assert_absent("an error answer", &answer.body);
            }
        }

        // What the runs made of it all.
        let runs = store
            .list_runs(acme.id, &RunFilter::default(), PageRequest::first(200))
            .await
            .unwrap()
            .items;
        // The newest three: the drift run and the two add-policies runs.
        let mine: Vec<&RunSummary> = runs.iter().take(3).collect();
        assert!(mine
            .iter()
            .any(|r| r.operation == OperationKind::DriftGenerate && r.status.is_terminal()));
        let policy_runs: Vec<RunDetail> = {
            let mut found = Vec::new();
            for run in mine
                .iter()
                .filter(|r| r.operation == OperationKind::BackupSetAddPolicies)
                .take(2)
            {
                found.push(store.run(acme.id, run.id).await.unwrap().unwrap());
            }
            found
        };
        assert!(
            policy_runs.iter().any(|run| run
                .failures
                .iter()
                .any(|f| f.reason_code == ReasonCode::InvalidPayload)),
            "the policy over the limit failed with a reason quoting its name"
        );
        let findings = store
            .list_findings(
                acme.id,
                &FindingFilter {
                    scope_key: Some("canaries".into()),
                    ..Default::default()
                },
                PageRequest::first(200),
            )
            .await
            .unwrap();
        assert_eq!(findings.items.len(), texts.len(), "every device changed");

        for table in [
            "bulk_operation_runs",
            "findings",
            "notifications",
            "audit_logs",
        ] {
            corpus.assert_absent(table, &dump(app, table).await);
        }

        // Every page and every server function, for every role.
        let run_ids: Vec<String> = mine.iter().map(|r| r.id.to_string()).collect();
        for cookie in [&viewer, &operator, &admin] {
            for route in page_routes() {
                let runs = if route.contains("run_id") {
                    &run_ids[..]
                } else {
                    &run_ids[..1]
                };
                for run in runs {
                    let page = app.get(&fill(&route, "acme", run), Some(cookie)).await;
                    corpus.assert_absent(&format!("page {route}"), &page.body);
                }
            }
            for path in server_fn_paths() {
                let case =
                    server_fn_case(&path).unwrap_or_else(|| panic!("{path} is not in the matrix"));
                if matches!(
                    path.as_str(),
                    "/api/members/remove"
                        | "/api/members/set-role"
                        | "/api/session/sign-out"
                        | "/api/operations/abort"
                ) {
                    continue; // would change who may look, not what is shown
                }
                let runs = if case.takes.is_some() {
                    &run_ids[..]
                } else {
                    &run_ids[..1]
                };
                for run in runs {
                    let (content_type, body) = (case.body)("acme", run);
                    let answer = app.post(&path, content_type, body, Some(cookie)).await;
                    corpus.assert_absent(&format!("server function {path}"), &answer.body);
                }
            }
            let findings = app
                .get("/t/acme/findings?scope=canaries", Some(cookie))
                .await;
            assert_eq!(findings.status, StatusCode::OK);
            assert!(
                findings.body.contains("other_changed_fields"),
                "the evidence is on the page"
            );
            corpus.assert_absent("the findings page", &findings.body);
        }

        tracing::info!(
            canaries = corpus.canaries.len(),
            "canary check of the server log"
        );
        let log = support::server_log_text();
        assert!(
            log.contains("canary check of the server log"),
            "the log is captured"
        );
        eprintln!("checked {} bytes of server log", log.len());
        corpus.assert_absent("the server log", &log);
    }

    /// Text with letters from anywhere is ordinary input: a scope key and
    /// device names like `Zürich:HQ` import, start and execute.
    async fn non_ascii_names_are_ordinary_input(app) {
        let store = app.state.store.clone();
        let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
        for generation in 0..2 {
            let items = serde_json::json!([
                item(
                    0,
                    "Zürich:HQ",
                    serde_json::json!({ "os": format!("11.{generation}") })
                ),
                item(
                    1,
                    "Gerät=1",
                    serde_json::json!({ "state": format!("Zürich:HQ {generation}") })
                ),
            ]);
            opshub::server::inventory::import(
                store.as_ref(),
                &acme,
                "Zürich:HQ",
                items.to_string(),
            )
            .await
            .unwrap();
        }
        let operator = app.sign_in("operator@acme.example").await;
        let started = app
            .post_form(
                "/api/operations/start-drift",
                &[("tenant", "acme"), ("scope_key", "Zürich:HQ")],
                Some(&operator),
            )
            .await;
        assert!(
            started.status.is_success() || started.status.is_redirection(),
            "{}: {}",
            started.status,
            started.body
        );
        run_queue_dry(app).await;
        let run = app.newest_run("acme").await;
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        let findings = store
            .list_findings(
                acme.id,
                &FindingFilter {
                    scope_key: Some("Zürich:HQ".into()),
                    ..Default::default()
                },
                PageRequest::first(10),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(findings.len(), 2);
        assert!(findings
            .iter()
            .any(|f| f.evidence["display_name"]["after"] == "Zürich:HQ"));
        assert!(findings
            .iter()
            .any(|f| f.evidence["display_name"]["after"] == "Gerät=1"));
    }
}
