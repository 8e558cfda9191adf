//! `tessera license import` and `export-all` with the real binaries
//! (docs/PROTOCOL.md §30): CSV, JSON lines and Keygen's export with their
//! keys kept (and validated as they are); every bad row named by its line
//! with nothing imported; a 2 GB line, UTF-16 and Latin-1 refused; a
//! crashed import resumed without duplicates; a backup restored into
//! another authority, its keys still working.

use std::process::Output;

use serde_json::{Value, json};

mod common;

use common::Workdir;
use tessera_testkit::process::ServerProcess;

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn count(server: &ServerProcess) -> usize {
    let (_, v) = server.admin_get("/v1/admin/licenses?limit=1000").await;
    v["items"].as_array().unwrap().len()
}

async fn valid(server: &ServerProcess, key: &str) -> Value {
    let (status, v) = server
        .process
        .post("/v1/validate", json!({"token": key}), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["verdict"].clone()
}

const KEYGEN_KEY: &str = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";

#[tokio::test]
async fn licenses_are_imported_with_their_keys_from_csv_jsonl_and_keygen() {
    let (w, server) = Workdir::with_server();
    assert_eq!(
        server
            .admin("/v1/admin/products", json!({"name": "ee"}))
            .await
            .0,
        201
    );
    let csv = w.dir.path().join("a.csv");
    std::fs::write(
        &csv,
        "\u{feff}key,customer,product,plan,features,expires_at,max_users,metadata\r\n\
         ACME-KEY-0001,Acme,ee,enterprise,\"sso, audit\",2099-01-01,10,\"{\"\"crm\"\": \"\"A-1\"\"}\"\r\n\
         \r\n\
         ,Beta,,pro,sso,2099-06-01,,\r\n",
    )
    .unwrap();
    let keys = w.dir.path().join("keys.jsonl");
    let (ok, _, err) = text(&w.tessera(
        &server,
        &[
            "license",
            "import",
            csv.to_str().unwrap(),
            "--keys-out",
            keys.to_str().unwrap(),
        ],
    ));
    assert!(ok, "{err}");
    assert!(err.contains("Imported 2 licenses"), "{err}");
    let v = valid(&server, "ACME-KEY-0001").await;
    assert_eq!(
        (v["status"].as_str(), v["valid"].as_bool()),
        (Some("active"), Some(true)),
        "{v}"
    );
    assert_eq!(v["features"], json!(["sso", "audit"]));
    let made: Value = serde_json::from_str(std::fs::read_to_string(&keys).unwrap().trim()).unwrap();
    assert_eq!(
        (made["row"].as_u64(), made["customer"].as_str()),
        (Some(4), Some("Beta"))
    );
    assert_eq!(
        valid(&server, made["key"].as_str().unwrap()).await["valid"],
        true
    );

    let jsonl = w.dir.path().join("b.jsonl");
    std::fs::write(&jsonl, format!(
        "{}\n{}\n",
        json!({"key": "JSONL-KEY-0002", "customer": "Gamma", "plan": "p", "state": "suspended", "metadata": {"from": "crm"}}),
        json!({"key": "JSONL-KEY-0003", "customer": "Delta", "plan": "p", "valid_from": "2026-01-01", "expires_at": "2026-06-01"}),
    )).unwrap();
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", jsonl.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert_eq!(
        valid(&server, "JSONL-KEY-0002").await["status"],
        "suspended"
    );
    assert_eq!(valid(&server, "JSONL-KEY-0003").await["status"], "expired");

    // Keygen's export: JSON:API licenses, keys kept, ids in the metadata.
    let keygen = w.dir.path().join("keygen.json");
    std::fs::write(&keygen, json!({"data": [{
        "id": "b1a9c0de-0000-4000-8000-000000000001", "type": "licenses",
        "attributes": {"name": "Initech", "key": KEYGEN_KEY, "expiry": "2099-03-01T00:00:00.000Z",
            "status": "ACTIVE", "suspended": false, "maxMachines": 3, "maxUsers": null,
            "metadata": {"email": "it@initech.example"}, "created": "2024-05-01T10:00:00.000Z"},
        "relationships": {"policy": {"data": {"type": "policies", "id": "p-1"}},
                          "product": {"data": {"type": "products", "id": "k-1"}}}
    }]}).to_string()).unwrap();
    let (ok, _, err) = text(&w.tessera(
        &server,
        &[
            "license",
            "import",
            keygen.to_str().unwrap(),
            "--product",
            "ee",
            "--plan",
            "pro",
        ],
    ));
    assert!(ok, "{err}");
    let (_, list) = server
        .admin_get("/v1/admin/licenses?product=ee&limit=100")
        .await;
    let initech = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["customer"] == "Initech")
        .expect("imported")
        .clone();
    assert_eq!(
        (initech["plan"].as_str(), initech["max_machines"].as_u64()),
        (Some("pro"), Some(3))
    );
    assert_eq!(
        initech["metadata"]["keygen"]["id"],
        "b1a9c0de-0000-4000-8000-000000000001"
    );
    assert_eq!(initech["valid_from"], "2024-05-01T10:00:00Z");
    // It counts machines, so a bare validation says so: the key was found.
    assert_eq!(valid(&server, KEYGEN_KEY).await["status"], "not_activated");
    assert_eq!(count(&server).await, 5);
}

#[tokio::test]
async fn every_bad_row_is_named_and_one_imports_nothing() {
    let (w, server) = Workdir::with_server();
    server.issue_for("Existing", "30d").await;
    let path = w.dir.path().join("bad.csv");
    let mut bytes = b"key,customer,product,plan,valid_from,expires_at\n".to_vec();
    bytes.extend_from_slice(b"GOOD-KEY-0001,Good,,p,,2099-01-01\n");
    bytes.extend_from_slice(b"DUP-KEY-00001,A,,p,,2099-01-01\n");
    bytes.extend_from_slice(b"DUP-KEY-00001,B,,p,,2099-01-01\n");
    bytes.extend_from_slice(b"UNK-PRODUCT-1,C,nope,p,,2099-01-01\n");
    bytes.extend_from_slice(b"OUT-OF-RANGE1,D,,p,,10000-01-01\n");
    bytes.extend_from_slice(b"BACKWARDS-001,E,,p,2030-01-01,2029-01-01\n");
    bytes.extend_from_slice(b"LATIN1-KEY-01,Caf\xe9,,p,,2099-01-01\n");
    bytes.extend_from_slice(b"SHORT,F,,p,,2099-01-01\n");
    bytes.extend_from_slice(b"NO-PLAN-KEY-1,G,,,,2099-01-01\n");
    std::fs::write(&path, &bytes).unwrap();
    let file = path.to_str().unwrap();

    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", file, "--dry-run"]));
    assert!(!ok, "a dry run with bad rows fails");
    for (line, why) in [
        (4, "the same key as line 3"),
        (5, "unknown product \"nope\""),
        (6, "expires_at"),
        (7, "expires_at is not after valid_from"),
        (8, "not UTF-8"),
        (9, "8–512 printable ASCII"),
        (10, "plan"),
    ] {
        let found = err
            .lines()
            .find(|l| l.starts_with(&format!("line {line}: ")));
        assert!(
            found.is_some_and(|l| l.contains(why)),
            "line {line} ({why}) in:\n{err}"
        );
    }
    assert!(
        !err.contains("line 2:") && !err.contains("line 3:"),
        "{err}"
    );
    assert!(
        err.contains("2 of 9 rows can be imported, 7 cannot"),
        "{err}"
    );
    assert_eq!(count(&server).await, 1, "a dry run imports nothing");

    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", file]));
    assert!(
        !ok && err.contains("7 bad rows: nothing was imported"),
        "{err}"
    );
    assert_eq!(count(&server).await, 1, "one bad row imports nothing");

    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", file, "--skip-invalid"]));
    assert!(ok, "{err}");
    assert!(
        err.contains("Imported 2 licenses") && err.contains("7 bad rows left out"),
        "{err}"
    );
    assert_eq!(count(&server).await, 3);
    assert_eq!(valid(&server, "DUP-KEY-00001").await["valid"], true);

    // A 2 GB line (a sparse file: no disk used), UTF-16, an unknown column.
    let huge = w.dir.path().join("huge.jsonl");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let started = std::time::Instant::now();
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", huge.to_str().unwrap()]));
    assert!(!ok && err.contains("line 1 is longer than 1 MiB"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "it stops at the limit"
    );
    let utf16 = w.dir.path().join("u16.csv");
    std::fs::write(&utf16, [0xFF, 0xFE, b'k', 0, b'e', 0, b'y', 0]).unwrap();
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", utf16.to_str().unwrap()]));
    assert!(!ok && err.contains("UTF-16"), "{err}");
    let typo = w.dir.path().join("typo.jsonl");
    std::fs::write(&typo, "{\"key\": \"TYPO-KEY-0001\", \"customer\": \"T\", \"plan\": \"p\", \"expiers_at\": \"2099-01-01\"}\n").unwrap();
    let (ok, _, err) = text(&w.tessera(
        &server,
        &["license", "import", typo.to_str().unwrap(), "--dry-run"],
    ));
    assert!(
        !ok && err.contains("line 1: unknown field \"expiers_at\""),
        "{err}"
    );
    let columns = w.dir.path().join("cols.csv");
    std::fs::write(&columns, "key,customer,plan,colour\n").unwrap();
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", columns.to_str().unwrap()]));
    assert!(!ok && err.contains("unknown column \"colour\""), "{err}");
    assert_eq!(count(&server).await, 3);
}

#[tokio::test]
async fn a_crashed_import_resumes_and_a_backup_restores_elsewhere() {
    let (w, server) = Workdir::with_server();
    let path = w.dir.path().join("many.jsonl");
    let rows: Vec<String> = (1..=7)
        .map(|i| {
            json!({"key": format!("RESUME-KEY-{i:04}"), "customer": format!("C{i}"), "plan": "p"})
                .to_string()
        })
        .collect();
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    let file = path.to_str().unwrap();
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", file, "--dry-run"]));
    assert!(ok, "{err}");
    let id = err
        .split("Dry run of import ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    // A run that committed lines 1–3, then crashed.
    let first: Vec<Value> = rows[..3]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v: Value = serde_json::from_str(r).unwrap();
            v["row"] = json!(i + 1);
            v
        })
        .collect();
    let (status, v) = server
        .admin(
            "/v1/admin/licenses/import",
            json!({"import": id, "first_row": 1, "next_row": 4, "rows": first}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // The same batch again (a retried request) writes nothing twice.
    let (_, again) = server
        .admin(
            "/v1/admin/licenses/import",
            json!({"import": id, "first_row": 1, "next_row": 4, "rows": []}),
        )
        .await;
    assert_eq!(
        (again["next_row"].as_u64(), again["imported"].as_u64()),
        (Some(4), Some(3)),
        "{again}"
    );
    let (ok, _, err) = text(&w.tessera(&server, &["license", "import", file, "--batch", "2"]));
    assert!(ok, "{err}");
    assert!(
        err.contains("Resuming import") && err.contains("3 licenses imported before, from line 4"),
        "{err}"
    );
    assert!(err.contains("Imported 7 licenses (4 in this run"), "{err}");
    assert_eq!(count(&server).await, 7, "no duplicates");
    let (_, events) = server.admin_get("/v1/admin/events?limit=100").await;
    let batches = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "licenses.imported")
        .count();
    assert_eq!(batches, 3, "one event per batch: 1–3, 4–5, 6–7");

    // Backup, and restore into another authority: the keys still work.
    let backup = w.dir.path().join("backup.jsonl");
    let (ok, _, err) = text(&w.tessera(
        &server,
        &[
            "license",
            "export-all",
            "--format",
            "jsonl",
            "-o",
            backup.to_str().unwrap(),
        ],
    ));
    assert!(ok && err.contains("Exported 7 licenses"), "{err}");
    let text_backup = std::fs::read_to_string(&backup).unwrap();
    assert!(
        !text_backup.contains("RESUME-KEY"),
        "an export holds no keys"
    );
    let (w2, other) = Workdir::with_server();
    let (ok, _, err) = text(&w2.tessera(&other, &["license", "import", backup.to_str().unwrap()]));
    assert!(ok, "{err}");
    assert_eq!(count(&other).await, 7);
    assert_eq!(valid(&other, "RESUME-KEY-0005").await["valid"], true);
    let (_, restored) = other.admin_get("/v1/admin/licenses?limit=1").await;
    assert_eq!(restored["items"][0]["token_last4"], "0001");
}
