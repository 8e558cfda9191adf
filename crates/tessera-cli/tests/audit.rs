//! `tessera events verify|export` with the real binaries (docs/PROTOCOL.md
//! §27): the chain checked page by page, the log written as JSON lines or
//! CSV, and an event changed in the database named by `verify`.

use std::process::Output;

use serde_json::{Value, json};

mod common;

use common::Workdir;

fn ok(out: &Output) -> (String, String) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_audit_log_is_verified_and_exported_page_by_page() {
    let (w, server) = Workdir::with_server();
    // More events than a page (1,000), so the cursor is followed.
    for i in 0..1_100 {
        server.issue_for(&format!("Customer {i}"), "30d").await;
    }
    let (_, err) = ok(&w.tessera(&server, &["events", "verify"]));
    assert!(err.contains("1100 events, hash chain intact"), "{err}");
    let (lines, err) = ok(&w.tessera(&server, &["events", "export", "--format", "jsonl"]));
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1_100, "{err}");
    assert_eq!(events[0]["kind"], "license.issued");
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    let (csv, _) = ok(&w.tessera(&server, &["events", "export", "--format", "csv"]));
    assert!(csv.starts_with("seq,at,actor,kind,license,revision,before,after,prev_hash,hash\n"));
    assert_eq!(csv.lines().count(), 1_101);
    let (none, err) = ok(&w.tessera(&server, &["events", "export", "--since", "2999-01-01"]));
    assert!(none.is_empty() && err.contains("0 events written"), "{err}");
    let bad = w.tessera(&server, &["events", "export", "--format", "xml"]);
    assert!(!bad.status.success());

    // An event changed in the database: verify names it and fails.
    let addr = server
        .process
        .url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    server.process.terminate();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&format!(
        "sqlite://{}",
        w.data().join("tessera.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE events SET after = $1 WHERE seq = 500")
        .bind(json!({"customer": "Mallory"}).to_string())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let server = w.server(addr, "server-2.log");
    let out = w.tessera(&server, &["events", "verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("event 500 was changed"), "{err}");
    let out = w.tessera(&server, &["events", "export"]);
    assert!(!out.status.success(), "an export stops at the broken link");
}
