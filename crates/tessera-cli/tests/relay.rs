//! A site relay with the real binaries (docs/PROTOCOL.md §26): the relay's
//! `tessera relay init`, the vendor's `tessera site create`, the relay run
//! with the bundle file handed over, an agent and `tessera check` that know
//! only the relay's address, and the exported audit log.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_testkit::process::{Process, eventually};

mod common;

use common::{BIN, Workdir};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_site_runs_on_its_relay_with_the_bundle_carried_by_hand() {
    let (w, server) = Workdir::with_server();
    let (floating, floating_token) = server
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "90d",
                      "max_machines": 2, "machine_mode": "floating", "lease_ttl": "1m"}),
        )
        .await;
    let (plain, plain_token) = server
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["audit"], "duration": "90d"}),
        )
        .await;
    let relay_dir = w.dir.path().join("relay");
    let relay_dir_arg = relay_dir.to_str().unwrap();
    let relay_key = ok(&Command::new(BIN)
        .args(["relay", "init", "--data-dir", relay_dir_arg])
        .output()
        .unwrap());
    let relay_key = relay_key.trim();
    assert!(relay_key.starts_with("k4.public."), "{relay_key}");
    // Again: the same key (made once).
    let again = ok(&Command::new(BIN)
        .args(["relay", "init", "--data-dir", relay_dir_arg])
        .output()
        .unwrap());
    assert_eq!(again.trim(), relay_key);

    let bundle = w.dir.path().join("bundle.json");
    let out = w.tessera(
        &server,
        &[
            "site",
            "create",
            "plant-7",
            "--relay-key",
            relay_key,
            "--license",
            &format!("{floating}:2"),
            "--license",
            &plain,
            "--valid-for",
            "30d",
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid until"));
    let bad = w.tessera(
        &server,
        &[
            "site",
            "create",
            "plant-8",
            "--relay-key",
            "k4.public.x",
            "--license",
            &plain,
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid_site"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // The relay: no route to the authority, only the file.
    let relay = Process::spawn(
        BIN,
        &[
            "relay",
            "--data-dir",
            relay_dir_arg,
            "--listen",
            "127.0.0.1:0",
            "--public-key",
            &server.public_key,
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        &w.dir.path().join("relay.log"),
        &[],
    );
    let (code, status) = relay.get("/v1/relay/status").await;
    assert_eq!(
        (code, status["site"].as_str()),
        (200, Some("plant-7")),
        "{status}"
    );

    // `tessera check` through the relay, pinning the authority's key.
    let out = Command::new(BIN)
        .args([
            "check",
            "--server",
            &relay.url,
            "--public-key",
            &server.public_key,
            &plain_token,
        ])
        .env_remove("TESSERA_SERVER")
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("audit"), "{text}");
    // An agent of the floating license through the relay takes a seat.
    let token_file = w.token_file(&floating_token);
    let agent = w.agent(
        &relay.url,
        &server.public_key,
        Some(&token_file),
        "agent.log",
    );
    eventually(
        "the agent valid through the relay",
        Duration::from_secs(30),
        async || {
            let (_, v) = agent.get("/v1/status").await;
            (v["state"] == "valid").then_some(v)
        },
    )
    .await;
    let (_, status) = relay.get("/v1/relay/status").await;
    let machines: Vec<Value> = status["licenses"].as_array().unwrap().clone();
    assert!(
        machines
            .iter()
            .any(|l| l["license"] == floating && l["machines"] == 1),
        "{status}"
    );
    // A building's relay certified from the command line while the site's
    // relay runs: its seat is taken there within a second.
    let hall_dir = w.dir.path().join("hall");
    let hall_key = ok(&Command::new(BIN)
        .args(["relay", "init", "--data-dir", hall_dir.to_str().unwrap()])
        .output()
        .unwrap());
    let hall_bundle = w.dir.path().join("hall.json");
    let out = Command::new(BIN)
        .args([
            "relay",
            "child",
            "plant-7/hall-b",
            "--data-dir",
            relay_dir_arg,
            "--public-key",
            &server.public_key,
            "--relay-key",
            hall_key.trim(),
            "--license",
            &format!("{floating}:1"),
            "-o",
            hall_bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    ok(&out);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&hall_bundle).unwrap()).unwrap();
    assert_eq!(file["site"], "plant-7/hall-b");
    eventually(
        "the hall's seat taken at the site",
        Duration::from_secs(10),
        async || {
            let (_, status) = relay.get("/v1/relay/status").await;
            status["licenses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["license"] == floating && l["machines"] == 2)
                .then_some(())
        },
    )
    .await;
    // The site has no seat left for a second hall.
    let out = Command::new(BIN)
        .args([
            "relay",
            "child",
            "plant-7/hall-c",
            "--data-dir",
            relay_dir_arg,
            "--public-key",
            &server.public_key,
            "--relay-key",
            hall_key.trim(),
            "--license",
            &format!("{floating}:1"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("places free"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.terminate();
    relay.terminate();

    // The audit log, exported with its chain checked.
    let out = Command::new(BIN)
        .args(["relay", "audit", "--data-dir", relay_dir_arg])
        .output()
        .unwrap();
    let lines = ok(&out);
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["kind"], "bundle.taken");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "machine.activated" && e["license"] == floating)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("hash chain intact"));
    // The vendor sees the site.
    let out = w.tessera(&server, &["site", "list"]);
    assert!(ok(&out).contains("plant-7"));
}
