//! Offline activation with the real binaries (docs/PROTOCOL.md §25): the
//! isolated machine's `tessera offline request`, the vendor's `tessera
//! license offline-activate`, an agent with no server watching its offline
//! file — activated, then renewed by dropping a new response in place, with
//! no restart — and the agent's own request/import API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::browser::Browser;
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

/// An agent with no server: its state in `state`, this machine's
/// fingerprint, its license by `offline` (a file or a directory, watched).
fn isolated_agent(
    w: &Workdir,
    public_key: &str,
    token_file: &std::path::Path,
    state: &std::path::Path,
    fingerprint: &str,
    offline: &std::path::Path,
) -> Process {
    Process::spawn(
        BIN,
        &[
            "agent",
            "--public-key",
            public_key,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--fingerprint",
            fingerprint,
            "--offline-file",
            offline.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &w.dir.path().join("agent.log"),
        &[],
    )
}

async fn revision(agent: &Process) -> Value {
    agent.get("/v1/status").await.1["revision"].clone()
}

#[tokio::test]
async fn an_isolated_agent_activates_and_renews_by_file() {
    let (w, server) = Workdir::with_server();
    let (id, token) = server
        .issue(json!({"customer": "Bank", "plan": "p", "features": ["sso"], "duration": "30d", "max_machines": 2}))
        .await;
    let token_file = w.token_file(&token);
    let state = w.dir.path().join("agent-state");
    let local = |cmd: &str, extra: &[&str]| {
        let mut args = vec![
            "offline",
            cmd,
            "--public-key",
            &server.public_key,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--fingerprint",
            "vault-1",
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap()
    };
    let request = w.dir.path().join("request.txt");
    let out = local("request", &["-o", request.to_str().unwrap()]);
    ok(&out);
    let text = std::fs::read_to_string(&request).unwrap();
    assert!(!text.contains(&token), "the token never leaves the machine");
    let code = text.lines().last().unwrap();
    assert!(code.starts_with("TSRQ1-") && code.len() <= 200, "{code}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(code),
        "the code is shown to read out"
    );

    // The vendor answers it.
    let response = w.dir.path().join("response.json");
    let out = w.tessera(
        &server,
        &[
            "license",
            "offline-activate",
            request.to_str().unwrap(),
            "--ttl",
            "365d",
            "-o",
            response.to_str().unwrap(),
        ],
    );
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("active"),
        "{out:?}"
    );

    // The isolated agent: no server, the response as its offline file.
    let agent = isolated_agent(
        &w,
        &server.public_key,
        &token_file,
        &state,
        "vault-1",
        &response,
    );
    let (_, v) = agent.get("/v1/status").await;
    assert_eq!(
        (v["state"].as_str(), v["revision"].as_u64()),
        (Some("valid"), Some(1)),
        "{v}"
    );
    // Its page says how it renews, and when the next file is due (the
    // license's end, 30 days, before the response's 365).
    let (_, page) = agent.get("/").await;
    let page = page.as_str().unwrap_or_default().to_owned();
    assert!(
        page.contains("offline license, renews by file, next due in 30 days"),
        "{page}"
    );

    // Renewal by file: extended, answered again, moved into place.
    let first = std::fs::read(&response).unwrap();
    server.extend(&id, json!({"by": "30d"})).await;
    let renewed = w.dir.path().join("renewed.json");
    ok(&w.tessera(
        &server,
        &[
            "license",
            "offline-activate",
            request.to_str().unwrap(),
            "-o",
            renewed.to_str().unwrap(),
        ],
    ));
    let moved = Instant::now();
    std::fs::rename(&renewed, &response).unwrap();
    eventually("the renewal taken", Duration::from_secs(10), async || {
        (revision(&agent).await == 2).then_some(())
    })
    .await;
    // The target is a second (measured in bench/offline-renewal.sh); this
    // bound only catches a watcher that does not work.
    assert!(
        moved.elapsed() < Duration::from_secs(5),
        "{:?}",
        moved.elapsed()
    );

    // An older response dropped in its place is refused; the agent keeps 2.
    std::fs::write(&response, &first).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(revision(&agent).await, 2);

    // The agent's own API: a request, and a response posted back.
    let (status, r) = agent.post("/v1/offline/request", json!({}), None).await;
    assert_eq!(status, 200, "{r}");
    assert!(r["code"].as_str().unwrap().starts_with("TSRQ1-"));
    let (status, answer) = server
        .admin(
            "/v1/admin/offline-activations",
            json!({"request": r["request"], "ttl": "30d"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, v) = agent
        .post("/v1/offline/import", json!({"response": answer}), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "valid");
    // The agent's page, in Chromium: make a request, paste the response.
    server.extend(&id, json!({"by": "30d"})).await;
    let browser = Browser::start().await;
    browser.client.goto(&agent.url).await.unwrap();
    browser.click("#offline summary").await;
    browser.click("#offline-request").await;
    let shown = browser
        .wait_text("#offline-code", "the request", |t| t.contains("TSRQ1-"))
        .await;
    let (status, answer) = server
        .admin(
            "/v1/admin/offline-activations",
            json!({"request": shown, "ttl": "30d"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    browser.fill("#offline-response", &answer.to_string()).await;
    browser.click("#offline-import").await;
    browser
        .wait_text("#revision", "the imported revision", |t| t == "3")
        .await;
    browser.screenshot("agent-offline-import").await;
    browser.close().await;

    // Garbage through the API: refused, nothing changes.
    let (status, v) = agent
        .post(
            "/v1/offline/import",
            json!({"response": "v4.public.AAAA"}),
            None,
        )
        .await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(agent.get("/v1/status").await.1["state"], "valid");

    // `tessera offline import` from the command line, on a second machine:
    // the first machine's response is refused there.
    let out = std::process::Command::new(BIN)
        .args([
            "offline",
            "import",
            response.to_str().unwrap(),
            "--public-key",
            &server.public_key,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            w.dir.path().join("other-state").to_str().unwrap(),
            "--fingerprint",
            "vault-2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bound to another machine"),
        "{out:?}"
    );
}

/// The agent's offline file may be a directory: its newest file is used,
/// and a renewal dropped into it is taken with no restart.
#[tokio::test]
async fn an_agent_watches_a_directory_of_offline_files() {
    let (w, server) = Workdir::with_server();
    let (id, token) = server
        .issue(json!({"customer": "Plant", "plan": "p", "features": ["sso"], "duration": "30d", "max_machines": 1}))
        .await;
    let token_file = w.token_file(&token);
    let state = w.dir.path().join("agent-state");
    let request = w.dir.path().join("request.txt");
    ok(&std::process::Command::new(BIN)
        .args([
            "offline",
            "request",
            "--public-key",
            &server.public_key,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--fingerprint",
            "line-1",
            "-o",
            request.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    let inbox = w.dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let answer = |name: &str| {
        ok(&w.tessera(
            &server,
            &[
                "license",
                "offline-activate",
                request.to_str().unwrap(),
                "-o",
                inbox.join(name).to_str().unwrap(),
            ],
        ));
    };
    answer("2026-12-01.json");
    let agent = isolated_agent(
        &w,
        &server.public_key,
        &token_file,
        &state,
        "line-1",
        &inbox,
    );
    eventually(
        "the inbox's response taken",
        Duration::from_secs(10),
        async || (revision(&agent).await == 1).then_some(()),
    )
    .await;
    server.extend(&id, json!({"by": "30d"})).await;
    // A later file in the same directory (the copy lands under a .tmp name
    // first, as a careful copy does, then is renamed).
    tokio::time::sleep(Duration::from_millis(20)).await;
    answer("renewal.json.tmp");
    std::fs::rename(
        inbox.join("renewal.json.tmp"),
        inbox.join("2027-01-01.json"),
    )
    .unwrap();
    eventually("the renewal taken", Duration::from_secs(10), async || {
        (revision(&agent).await == 2).then_some(())
    })
    .await;
    assert_eq!(agent.get("/v1/status").await.1["state"], "valid");
}
