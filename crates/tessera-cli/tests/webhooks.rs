//! Webhooks against the real binary: nothing lost when the authority is
//! killed with `kill -9` in the middle of deliveries, and the CLI.

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tessera_protocol::webhook::verify_signature;
use tessera_testkit::process::{ServerProcess, eventually, free_addr};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// (event seq, delivery id, signature ok) of every request, in arrival order.
type Seen = Arc<Mutex<Vec<(i64, i64, bool)>>>;

/// A receiver that records each request when it arrives, then holds it
/// `hold` before answering 200, so a kill lands while deliveries are in flight.
async fn receiver(secret: Arc<Mutex<String>>, hold: Duration) -> (Seen, String) {
    let seen: Seen = Arc::default();
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (seen, secret) = (state.clone(), secret.clone());
            async move {
                let payload: Value = serde_json::from_slice(&body).unwrap();
                let signature = headers["tessera-signature"].to_str().unwrap().to_owned();
                let ok = verify_signature(
                    &signature,
                    &secret.lock().unwrap(),
                    &body,
                    chrono::Utc::now(),
                    300,
                )
                .is_ok();
                seen.lock().unwrap().push((
                    payload["event"]["seq"].as_i64().unwrap(),
                    payload["delivery"].as_i64().unwrap(),
                    ok,
                ));
                tokio::time::sleep(hold).await;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url)
}

fn tessera(server: &ServerProcess, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("TESSERA_SERVER", server.url())
        .env("TESSERA_DATA_DIR", &server.data_dir)
        .env_remove("TESSERA_ADMIN_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn all_event_seqs(server: &ServerProcess) -> BTreeSet<i64> {
    let (status, page) = server.admin_get("/v1/admin/events?limit=1000").await;
    assert_eq!(status, 200);
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = Arc::new(Mutex::new(String::new()));
    let (seen, url) = receiver(secret.clone(), Duration::from_millis(400)).await;
    // The receiver listens on loopback: allowed explicitly.
    let server = ServerProcess::start_with(
        BIN,
        &data,
        free_addr(),
        "server.log",
        &["--allow-private-webhooks"],
        None,
    );
    let added: Value = serde_json::from_str(&tessera(
        &server,
        &["webhook", "add", &url, "--events", "*", "--json"],
    ))
    .unwrap();
    *secret.lock().unwrap() = added["secret"].as_str().unwrap().to_owned();
    let hook = added["id"].as_str().unwrap().to_owned();
    let (id, _) = server
        .issue(json!({"customer": "Acme", "plan": "gold", "duration": "30d"}))
        .await;
    for _ in 0..30 {
        server.extend(&id, json!({"by": "1d"})).await;
    }
    let expected = all_event_seqs(&server).await;
    assert_eq!(expected.len(), 32, "webhook.created, issued, 30 extensions");
    // Kill while deliveries are in flight (arrived, not yet answered).
    eventually(
        "deliveries in flight",
        Duration::from_secs(20),
        async || (seen.lock().unwrap().len() >= 3).then_some(()),
    )
    .await;
    server.process.kill9();
    let in_flight: BTreeSet<i64> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert!(in_flight.len() < expected.len(), "killed before the end");

    let server = ServerProcess::start_with(
        BIN,
        &data,
        free_addr(),
        "server2.log",
        &["--allow-private-webhooks"],
        None,
    );
    let got = eventually(
        "every event delivered",
        Duration::from_secs(60),
        async || {
            let got: BTreeSet<i64> = seen.lock().unwrap().iter().map(|s| s.0).collect();
            (got == expected).then_some(got)
        },
    )
    .await;
    assert_eq!(got, expected);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| s.2),
        "every request carried a valid signature"
    );
    // At least once: what was in flight at the kill came again, with the
    // same delivery id (receivers deduplicate on it).
    let mut by_delivery: HashMap<i64, usize> = HashMap::new();
    for s in &seen {
        *by_delivery.entry(s.1).or_default() += 1;
    }
    assert!(
        by_delivery.values().any(|n| *n > 1),
        "in-flight deliveries were resent"
    );
    assert_eq!(by_delivery.len(), expected.len(), "one delivery per event");

    // The CLI shows the log and manages endpoints.
    let log = eventually(
        "all marked delivered",
        Duration::from_secs(20),
        async || {
            let text = tessera(
                &server,
                &["webhook", "deliveries", &hook, "--limit", "100", "--json"],
            );
            let items: Vec<Value> = serde_json::from_str(&text).unwrap();
            items
                .iter()
                .all(|d| d["state"] == "delivered")
                .then_some(items)
        },
    )
    .await;
    assert_eq!(log.len(), 32);
    let table = tessera(&server, &["webhook", "deliveries", &hook]);
    assert!(
        table.contains("license.extended") && table.contains("delivered"),
        "{table}"
    );
    let list = tessera(&server, &["webhook", "list"]);
    assert!(list.contains(&hook) && list.contains(&url), "{list}");
    assert!(
        !list.contains(&*secret.lock().unwrap()),
        "no secret in the list"
    );
    assert!(tessera(&server, &["webhook", "remove", &hook]).contains("Removed"));
    assert!(tessera(&server, &["webhook", "list"]).contains("No webhooks"));
    server.process.terminate();
}
