//! The `opshub` command as a shell user runs it: an import file over
//! `import_max_bytes` is refused before it is read.

mod support;

use opshub::server::store::Backend;
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

fn run(mut command: Command) -> Output {
    command.output().expect("run opshub")
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
