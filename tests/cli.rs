//! The `opshub` command as a shell user runs it: output into a pipe whose
//! reader has gone (`opshub start … | head -1`) ends it quietly, an
//! import file over `import_max_bytes` is refused before it is read, and
//! `opshub prune` prints what goes per kind, and a benchmark does not
//! touch the configured database.

mod support;

use opshub::server::store::Backend;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use support::TestDb;

fn opshub(db: &TestDb, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opshub"));
    command
        .args(args)
        .env("OPSHUB_DATABASE_URL", &db.url)
        .env("OPSHUB_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs the command with its standard output a pipe that is closed before
/// the command writes anything, and its standard error captured.
fn with_closed_stdout(mut command: Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start opshub");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

fn run(mut command: Command) -> Output {
    command.output().expect("run opshub")
}

#[tokio::test]
async fn a_closed_output_pipe_ends_every_command_quietly() {
    let db = TestDb::new(Backend::Sqlite).await;
    for args in [
        &["migrate"][..],
        &["seed-demo"],
        &[
            "start",
            "drift",
            "--tenant",
            "acme",
            "--scope",
            "devices/windows",
            "--as",
            "operator@acme.example",
        ],
        &["--help"],
        &["--version"],
    ] {
        let (status, stderr) = with_closed_stdout(opshub(&db, args));
        assert!(
            stderr.is_empty(),
            "opshub {args:?} wrote to standard error: {stderr}"
        );
        assert!(status.success(), "opshub {args:?}: {status}");
    }
    // The command did its work: the drift run was queued (a second start joins it).
    let joined = run(opshub(
        &db,
        &[
            "start",
            "drift",
            "--tenant",
            "acme",
            "--scope",
            "devices/windows",
            "--as",
            "operator@acme.example",
        ],
    ));
    assert!(joined.status.success(), "{joined:?}");
    assert!(
        String::from_utf8_lossy(&joined.stdout).starts_with("joined active run"),
        "{joined:?}"
    );
}

#[tokio::test]
async fn an_import_file_over_the_size_setting_is_refused_before_it_is_read() {
    let db = TestDb::new(Backend::Sqlite).await;
    assert!(run(opshub(&db, &["seed-demo"])).status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.json");
    let items: Vec<String> = (0..20)
        .map(|n| {
            format!(
                r#"{{"subject_type":"device","external_id":"d{n}","display_name":"Gerät {n}"}}"#
            )
        })
        .collect();
    let text = format!("[{}]", items.join(","));
    std::fs::write(&file, &text).unwrap();
    let import = |max_bytes: usize| {
        let mut command = opshub(
            &db,
            &[
                "inventory",
                "import",
                "--tenant",
                "acme",
                "--scope",
                "lab",
                file.to_str().unwrap(),
            ],
        );
        command.env("OPSHUB_IMPORT_MAX_BYTES", max_bytes.to_string());
        run(command)
    };
    let before = db.count_rows().await;
    let refused = import(text.len() - 1);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("is larger than {} bytes", text.len() - 1))
            && stderr.contains("import_max_bytes"),
        "{stderr}"
    );
    assert_eq!(db.count_rows().await, before, "a refused import wrote rows");

    let accepted = import(text.len());
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(
        String::from_utf8_lossy(&accepted.stdout).contains("with 20 items"),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn prune_prints_what_goes_per_kind_and_a_dry_run_deletes_nothing() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.execute(
        "INSERT INTO tower_sessions (id, data, expiry_date) \
         VALUES ('expired', x'00', datetime('now', '-1 hour'))",
    )
    .await;
    let sessions = || db.texts("SELECT id FROM tower_sessions");
    let prune = |args: &[&str]| {
        let output = run(opshub(&db, args));
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    let dry = prune(&["prune", "--dry-run"]);
    assert!(dry.lines().any(|l| l == "sessions 1"), "{dry}");
    assert!(dry.lines().any(|l| l == "runs 0"), "{dry}");
    assert!(dry.contains("total 1 would be removed"), "{dry}");
    assert_eq!(sessions().await.len(), 1, "a dry run deleted");

    let done = prune(&["prune"]);
    assert!(done.lines().any(|l| l == "sessions 1"), "{done}");
    assert!(done.contains("total 1 removed"), "{done}");
    assert!(sessions().await.is_empty());
    assert!(prune(&["prune"]).contains("total 0 removed"));

    let mut bad = opshub(&db, &["prune"]);
    bad.env("OPSHUB_RETAIN_AUDIT_DAYS", "a year");
    let refused = run(bad);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OPSHUB_RETAIN_AUDIT_DAYS"));
}

#[test]
fn a_benchmark_leaves_the_configured_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let configured = dir.path().join("configured.db");
    // A PostgreSQL no one listens on: the benchmark skips it at once.
    let mut command = Command::new(env!("CARGO_BIN_EXE_opshub"));
    command
        .args([
            "bench",
            "engine",
            "--backend",
            "postgres",
            "--postgres",
            "postgres://postgres@127.0.0.1:1/postgres",
        ])
        .env(
            "OPSHUB_DATABASE_URL",
            format!("sqlite://{}", configured.display()),
        )
        .env("OPSHUB_LOG", "warn")
        .stdin(Stdio::null());
    let bench = run(command);
    assert!(
        String::from_utf8_lossy(&bench.stdout).contains("skipped"),
        "{bench:?}"
    );
    assert!(
        !configured.exists(),
        "the benchmark created the configured database"
    );
}
