//! `tessera agent` end to end: the real server binary, the real agent binary,
//! a temp directory each; the status page in headless Chromium.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_testkit::browser::Browser;
use tessera_testkit::process::{Process, ServerProcess, eventually, free_addr};

mod common;

use common::{BIN, Workdir};
const WAIT: Duration = Duration::from_secs(30);

async fn status(agent: &Process) -> Value {
    let (code, v) = agent.get("/v1/status").await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn wait_state(agent: &Process, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(what, WAIT, async || {
        let v = status(agent).await;
        pred(&v).then_some(v)
    })
    .await
}

async fn post(agent: &Process, path: &str, body: Value) -> (u16, Value) {
    agent.post(path, body, None).await
}

#[tokio::test]
async fn seed_bug_metabase_56808_renewal_shows_on_refresh_and_on_reentering_the_same_token() {
    // The seed bug: a license cache keyed by the token text and held for
    // 12 hours kept a renewed license "expired" until a restart, and entering
    // the same token again changed nothing.
    let addr = free_addr();
    let (setup, server) = Workdir::serving(addr, "server1.log");
    let (id, token) = server
        .issue(json!({"customer": "Acme", "plan": "enterprise", "features": ["sso"], "duration": "4s"}))
        .await;
    let agent = setup.agent_for(&server, &token, "agent.log");
    wait_state(&agent, "valid", |v| v["state"] == "valid").await;

    // The authority goes away; the license runs out; the agent says so on its
    // own — no server call could have told it.
    server.process.kill9();
    let expired = wait_state(&agent, "expired", |v| v["state"] == "expired").await;
    assert_eq!(expired["valid"], false);
    assert_eq!(expired["revision"], 1);

    // The authority is back; the vendor renews.
    let server = setup.server(addr, "server2.log");
    server.extend(&id, json!({"by": "30d"})).await;

    // "Refresh now": valid at once with the new expiry and revision. No restart.
    let (code, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "valid");
    assert_eq!(v["valid"], true);
    assert_eq!(v["revision"], 2);
    assert_ne!(v["expires_at"], expired["expires_at"]);

    // Re-entering the very same token also asks the authority again.
    server
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "30d"}),
        )
        .await;
    let before = server.process.validations().await;
    let (code, v) = post(&agent, "/v1/activate", json!({"token": token})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "valid");
    assert_eq!(v["revision"], 3);
    assert!(server.process.validations().await > before);
}

#[tokio::test]
async fn offline_the_agent_restarts_valid_from_disk_and_recovers_by_itself() {
    let addr = free_addr();
    let (setup, server) = Workdir::serving(addr, "server1.log");
    let (_, token) = server.issue_for("Acme", "30d").await;
    let token_file = setup.token_file(&token);
    let agent = setup.agent(
        server.url(),
        &server.public_key,
        Some(&token_file),
        "agent1.log",
    );
    wait_state(&agent, "valid", |v| v["state"] == "valid").await;
    agent.terminate();

    let public_key = server.public_key.clone();
    let url = server.url().to_owned();
    server.process.kill9();
    let agent = setup.agent(&url, &public_key, Some(&token_file), "agent2.log");
    let v = status(&agent).await;
    assert_eq!(
        v["state"], "valid",
        "valid from disk before any network: {v}"
    );
    let v = wait_state(&agent, "offline_since", |v| !v["offline_since"].is_null()).await;
    assert_eq!(v["state"], "valid");
    assert_eq!(v["last_error"]["kind"], "network");
    let (_, metrics) = agent.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("tessera_license_offline 1")
    );

    let _server = setup.server(addr, "server2.log");
    let v = wait_state(&agent, "back online", |v| v["offline_since"].is_null()).await;
    assert_eq!(v["state"], "valid");
    assert!(v["last_error"].is_null());
}

#[tokio::test]
async fn a_typo_is_refused_without_a_request_and_answers_are_applied() {
    let (setup, server) = Workdir::serving(free_addr(), "server.log");
    let (id, token) = server.issue_for("Acme", "30d").await;
    let agent = setup.agent(server.url(), &server.public_key, None, "agent.log");
    let v = status(&agent).await;
    assert_eq!(
        (v["state"].as_str(), v["reason"].as_str()),
        (Some("unverified"), Some("no_document"))
    );

    let before = server.process.validations().await;
    let typo = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('a') { 'b' } else { 'a' }
    );
    let (code, v) = post(&agent, "/v1/activate", json!({"token": typo})).await;
    assert_eq!(code, 400);
    assert_eq!(v["error"]["code"], "invalid_token");
    assert!(v["error"]["message"].as_str().unwrap().contains("mistyped"));
    assert_eq!(
        server.process.validations().await,
        before,
        "no request was sent"
    );

    let (code, v) = post(&agent, "/v1/activate", json!({"token": token})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "valid");
    assert_eq!(server.process.validations().await, before + 1);

    server
        .admin(&format!("/v1/admin/licenses/{id}/suspend"), json!({}))
        .await;
    let (_, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(
        (v["state"].as_str(), v["valid"].as_bool()),
        (Some("suspended"), Some(false))
    );
    server
        .admin(&format!("/v1/admin/licenses/{id}/revoke"), json!({}))
        .await;
    let (_, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(v["state"], "revoked");
    let unknown = tessera_protocol::LicenseToken::generate(&mut rand::rng());
    let (_, v) = post(
        &agent,
        "/v1/activate",
        json!({"token": unknown.expose_secret()}),
    )
    .await;
    assert_eq!(v["state"], "not_found");
}

#[tokio::test]
async fn the_local_api_reports_metrics_and_refuses_foreign_pages() {
    let (setup, server) = Workdir::serving(free_addr(), "server.log");
    let (_, token) = server
        .issue(json!({"customer": "Acme", "plan": "p", "features": ["a"], "duration": "10d"}))
        .await;
    let agent = setup.agent_for(&server, &token, "agent.log");
    let v = wait_state(&agent, "valid", |v| v["state"] == "valid").await;
    for field in [
        "state",
        "valid",
        "plan",
        "features",
        "max_users",
        "expires_at",
        "days_left",
        "revision",
        "last_verified_at",
        "offline_since",
        "last_error",
    ] {
        assert!(v.get(field).is_some(), "status lacks {field}: {v}");
    }
    assert_eq!(v["days_left"], 10);
    let (_, text) = agent.get("/metrics").await;
    let text = text.as_str().unwrap().to_owned();
    for metric in [
        "tessera_license_valid 1",
        "tessera_license_revision 1",
        "tessera_license_offline 0",
        "tessera_license_expires_in_seconds ",
        "tessera_license_last_verified_age_seconds ",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }

    let http = reqwest::Client::new();
    let status = async |req: reqwest::RequestBuilder| req.send().await.unwrap().status();
    let refresh = format!("{}/v1/refresh", agent.url);
    let cross_origin = http.post(&refresh).header("origin", "http://evil.example");
    let cross_origin = cross_origin.json(&json!({}));
    assert_eq!(status(cross_origin).await, 403, "cross-origin post");
    let foreign_host = http.get(format!("{}/v1/status", agent.url));
    let foreign_host = foreign_host.header("host", "evil.example");
    assert_eq!(
        status(foreign_host).await,
        403,
        "DNS rebinding: foreign Host"
    );
    let form = http.post(&refresh).body("token=x");
    let form = form.header("content-type", "application/x-www-form-urlencoded");
    let why = "form posts (cross-site forms) are refused";
    assert_eq!(status(form).await, 415, "{why}");
    let (code, page) = agent.get("/").await;
    assert_eq!(code, 200);
    let page = page.as_str().unwrap().to_owned();
    assert!(
        page.contains("Refresh now")
            && page.contains("10 days left")
            && page.contains("expires in 10 days"),
        "{page}"
    );
    // Hardening item 12: no page of the agent may be framed (clickjacking).
    for path in ["/", "/v1/status"] {
        let res = http
            .get(format!("{}{path}", agent.url))
            .send()
            .await
            .unwrap();
        let h = res.headers();
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{path}");
        assert!(
            h.get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("frame-ancestors 'none'")),
            "{path}: {h:?}"
        );
    }
}

#[tokio::test]
async fn status_page_in_chromium_shows_the_renewal_after_refresh_now() {
    let (setup, server) = Workdir::serving(free_addr(), "server.log");
    let (id, token) = server.issue(json!({"customer": "Acme", "plan": "enterprise", "features": ["sso", "audit"], "duration": "20d"})).await;
    let agent = setup.agent_for(&server, &token, "agent.log");
    wait_state(&agent, "valid", |v| v["state"] == "valid").await;

    let browser = Browser::start().await;
    browser.client.goto(&agent.url).await.unwrap();
    let before = browser
        .wait_text("#expires", "expiry", |t| t.contains("20 days left"))
        .await;
    assert_eq!(browser.text("#state").await, "Valid");
    assert!(browser.text("#warning").await.contains("20 days"));
    browser.screenshot("agent-status-before").await;

    server.extend(&id, json!({"by": "30d"})).await;
    browser.click("#refresh").await;
    let after = browser
        .wait_text("#expires", "the new expiry", |t| t.contains("50 days left"))
        .await;
    assert_ne!(before, after);
    assert_eq!(browser.text("#revision").await, "2");
    browser.screenshot("agent-status-after-refresh").await;

    // A typo in the activate form is explained on the page.
    browser.fill("#token", "tsr_typo").await;
    browser.click("#activate").await;
    browser
        .wait_text("#message", "the error", |t| t.contains("malformed token"))
        .await;
    browser.screenshot("agent-status-activate-error").await;
    browser.close().await;
}

#[tokio::test]
async fn forged_and_rolled_back_answers_leave_the_agent_and_its_disk_unchanged() {
    use tessera_testkit::fake::{Fake, FakeAuthority};
    let clock = std::sync::Arc::new(tessera_protocol::clock::ManualClock::new(chrono::Utc::now()));
    let fake = FakeAuthority::start(clock).await;
    fake.fake
        .revision
        .store(7, std::sync::atomic::Ordering::SeqCst);
    let setup = Workdir::new();
    let token = tessera_protocol::LicenseToken::generate(&mut rand::rng());
    let key = fake.fake.public_key().to_paserk();
    let agent = setup.agent(
        &fake.url,
        &key,
        Some(&setup.token_file(token.expose_secret())),
        "agent.log",
    );
    let good = wait_state(&agent, "valid", |v| v["state"] == "valid").await;
    assert_eq!(good["revision"], 7);
    let state_file = setup
        .dir
        .path()
        .join("agent-state")
        .join("tessera-state.json");
    let on_disk = std::fs::read(&state_file).unwrap();

    fake.fake.set(|f, req, _| {
        let mut c = f.claims_for(req);
        c.rev = 3;
        Fake::answer(c, &f.key)
    });
    let (code, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (502, Some("rollback")),
        "{v}"
    );
    fake.fake.set(|f, req, _| {
        let mut c = f.claims_for(req);
        c.rev = 8;
        Fake::answer(c, &tessera_protocol::SigningKey::generate(&mut rand::rng()))
    });
    let (code, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (502, Some("verification_failed")),
        "{v}"
    );
    fake.fake
        .answer_raw(502, "text/html", "<html>proxy error</html>");
    let (code, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (502, Some("authority_unreachable")),
        "{v}"
    );

    let now = status(&agent).await;
    assert_eq!(
        (now["state"].as_str(), now["revision"].as_u64()),
        (Some("valid"), Some(7))
    );
    assert_eq!(now["last_error"]["kind"], "http_status");
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        on_disk,
        "state file unchanged byte for byte"
    );
}

#[tokio::test]
async fn changes_reach_the_agent_pushed_and_survive_an_authority_restart() {
    let addr = free_addr();
    let (setup, server) = Workdir::serving(addr, "server1.log");
    let (id, token) = server.issue_for("Acme", "30d").await;
    let agent = setup.agent_for(&server, &token, "agent.log");
    wait_state(&agent, "valid and live", |v| {
        v["state"] == "valid" && v["stream_connected"] == true
    })
    .await;
    let validations = server.process.validations().await;

    let pushed_within = |rev: u64, state: &'static str| {
        let agent = &agent;
        async move {
            let started = std::time::Instant::now();
            let v = eventually(
                &format!("revision {rev} ({state}) pushed"),
                Duration::from_secs(2),
                async || {
                    let v = status(agent).await;
                    (v["revision"] == rev && v["state"] == state).then_some(v)
                },
            )
            .await;
            (v, started.elapsed())
        }
    };
    server
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "30d"}),
        )
        .await;
    let (v, took) = pushed_within(2, "valid").await;
    assert_eq!(v["days_left"], 60);
    eprintln!("extend reached the agent in {took:?}");
    server
        .admin(&format!("/v1/admin/licenses/{id}/suspend"), json!({}))
        .await;
    pushed_within(3, "suspended").await;
    server
        .admin(&format!("/v1/admin/licenses/{id}/reinstate"), json!({}))
        .await;
    pushed_within(4, "valid").await;
    assert_eq!(
        server.process.validations().await,
        validations,
        "no refresh, no poll: pushed"
    );

    // The fleet view (CLI) shows the delivery.
    let instances = eventually("delivered to 1 of 1", Duration::from_secs(10), async || {
        let out = std::process::Command::new(BIN)
            .args([
                "license",
                "instances",
                &id,
                "--server",
                server.url(),
                "--data-dir",
            ])
            .arg(setup.data())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.contains("delivered to 1 of 1").then_some(text)
    })
    .await;
    assert!(instances.contains("open"), "{instances}");

    // The authority restarts: the agent reconnects and resyncs by itself.
    server.process.kill9();
    wait_state(&agent, "stream lost", |v| v["stream_connected"] == false).await;
    let server = setup.server(addr, "server2.log");
    wait_state(&agent, "stream back", |v| v["stream_connected"] == true).await;
    server
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "1d"}),
        )
        .await;
    pushed_within(5, "valid").await;

    // Revoked: denied at once.
    server
        .admin(&format!("/v1/admin/licenses/{id}/revoke"), json!({}))
        .await;
    let (v, _) = pushed_within(6, "revoked").await;
    assert_eq!(v["valid"], false);
}

/// Lifecycle end to end: the scheduler renews an auto-renewing license and
/// the running agent holds the renewal without any call; metering posted to
/// the agent reaches the authority's fleet view and comes back as
/// `seats_exceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_sees_an_automatic_renewal_pushed_and_reports_usage() {
    let s = Workdir::new();
    let server = ServerProcess::start_with(
        BIN,
        &s.data(),
        free_addr(),
        "server.log",
        &["--scheduler-interval", "1s"],
        None,
    );
    let (status_code, policy) = server
        .admin(
            "/v1/admin/policies",
            json!({"name": "yearly", "duration": "365d", "auto_renew": true, "renew_before": "30d"}),
        )
        .await;
    assert_eq!(status_code, 201, "{policy}");
    // Issued with 10 days left: inside the 30-day window, so the next tick
    // renews it by a year.
    let (id, token) = server
        .issue(json!({"customer": "Acme", "plan": "gold", "policy": "yearly", "duration": "10d", "max_users": 3}))
        .await;
    let agent = s.agent(
        server.url(),
        &server.public_key,
        Some(&s.token_file(&token)),
        "agent.log",
    );
    let renewed = wait_state(&agent, "the automatic renewal, pushed", |v| {
        v["revision"] == 2
    })
    .await;
    assert_eq!(renewed["state"], "valid");
    assert!(renewed["days_left"].as_i64().unwrap() > 370, "{renewed}");
    let (_, events) = server
        .admin_get(&format!("/v1/admin/events?license={id}"))
        .await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "license.auto_renewed")
            .count(),
        1,
        "{kinds:?}"
    );
    // Metering: the product tells the agent; the agent tells the authority.
    let (code, _) = post(&agent, "/v1/usage", json!({"users": 5})).await;
    assert_eq!(code, 202);
    let fleet = eventually("usage in the fleet view", WAIT, async || {
        let (_, fleet) = server
            .admin_get(&format!("/v1/admin/licenses/{id}/instances"))
            .await;
        (fleet["summary"]["seats_in_use"] == 5).then_some(fleet)
    })
    .await;
    assert_eq!(fleet["summary"]["seats_exceeded"], true);
    let v = wait_state(&agent, "seats_exceeded pushed back", |v| {
        v["seats_exceeded"] == true
    })
    .await;
    assert_eq!(v["state"], "valid", "informational only");
    let (code, err) = post(&agent, "/v1/usage", json!({"users": "many"})).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
}

/// Machines holding a place on license `id`.
async fn active_machines(server: &ServerProcess, id: &str) -> Value {
    let (_, list) = server
        .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
        .await;
    list["active"].clone()
}

#[tokio::test]
async fn the_agent_holds_a_floating_place_shows_it_and_gives_it_back() {
    let (setup, server) = Workdir::serving(free_addr(), "server.log");
    let body = json!({"customer": "Acme", "plan": "p", "duration": "30d", "max_machines": 2, "machine_mode": "floating", "lease_ttl": "15m"});
    let (id, token) = server.issue(body).await;
    let token_file = setup.token_file(&token);
    let envs = [("TESSERA_FINGERPRINT", "node-1")];
    let agent = setup.agent_with(
        server.url(),
        &server.public_key,
        Some(&token_file),
        "agent.log",
        &envs,
    );
    let v = wait_state(&agent, "the agent activated", |v| v["state"] == "valid").await;
    let m = &v["machine"];
    assert_eq!(
        (m["used"].as_u64(), m["max"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(m["mode"], "floating");
    assert_eq!(m["lease_renews_every_secs"], 300);
    let (_, page) = agent.get("/").await;
    let page = page.as_str().unwrap().to_owned();
    assert!(
        page.contains("machine 1 of 2 · lease renews every 5 min"),
        "{page}"
    );
    assert_eq!(active_machines(&server, &id).await, 1);
    let (code, v) = post(&agent, "/v1/deactivate", json!({})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "not_activated");
    assert_eq!(active_machines(&server, &id).await, 0);

    // Taken again, then given back by a clean stop (SIGTERM).
    let (code, v) = post(&agent, "/v1/refresh", json!({})).await;
    assert_eq!(
        (code, &v["state"]),
        (200, &json!("not_activated")),
        "it stays without a place: {v}"
    );
    drop(agent);
    let again = setup.agent_with(
        server.url(),
        &server.public_key,
        Some(&token_file),
        "agent2.log",
        &envs,
    );
    wait_state(&again, "activated on start", |v| v["state"] == "valid").await;
    assert_eq!(active_machines(&server, &id).await, 1);
    let status = again.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        active_machines(&server, &id).await,
        0,
        "the place was given back on stop"
    );
}

#[tokio::test]
async fn the_agent_meters_consumption_for_the_product() {
    let (setup, server) = Workdir::with_server();
    let (id, token) = server
        .issue(json!({"customer": "Acme", "plan": "p", "features": ["sso", "api_calls=10/day"], "duration": "30d"}))
        .await;
    let token_file = setup.token_file(&token);
    let agent = setup.agent_with(
        server.url(),
        &server.public_key,
        Some(&token_file),
        "agent.log",
        &[("TESSERA_CONSUMPTION_INTERVAL", "1h")],
    );
    wait_state(&agent, "valid", |v| v["state"] == "valid").await;
    let (code, v) = post(
        &agent,
        "/v1/consume",
        json!({"feature": "api_calls", "amount": 4}),
    )
    .await;
    assert_eq!((code, &v["remaining"]), (200, &json!(6)), "{v}");
    let (code, v) = post(
        &agent,
        "/v1/consume",
        json!({"feature": "api_calls", "amount": 7}),
    )
    .await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (409, &json!("quota_exhausted")),
        "{v}"
    );
    let (code, v) = post(
        &agent,
        "/v1/consume",
        json!({"feature": "sso", "amount": 1}),
    )
    .await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (422, &json!("unknown_feature")),
        "{v}"
    );
    let (code, v) = post(
        &agent,
        "/v1/consume",
        json!({"feature": "audit", "amount": 1}),
    )
    .await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (403, &json!("not_granted")),
        "{v}"
    );
    for bad in [
        json!({"feature": "api_calls", "amount": -1}),
        json!({"feature": "api_calls"}),
        json!({"feature": "api_calls", "amount": 1.5}),
    ] {
        let (code, v) = post(&agent, "/v1/consume", bad).await;
        assert_eq!(
            (code, &v["error"]["code"]),
            (400, &json!("invalid_json")),
            "{v}"
        );
    }
    let (code, v) = post(
        &agent,
        "/v1/consume",
        json!({"feature": "api_calls", "amount": (1u64 << 53) + 1}),
    )
    .await;
    assert_eq!(
        (code, &v["error"]["code"]),
        (422, &json!("invalid_amount")),
        "{v}"
    );
    let v = status(&agent).await;
    assert_eq!(v["entitlements"]["api_calls"]["quota"]["used"], 4, "{v}");
    let (code, page) = agent.get("/").await;
    assert_eq!(code, 200);
    assert!(
        page.as_str()
            .unwrap_or_default()
            .contains("api_calls (4 of 10 today)"),
        "{page}"
    );
    // Reported every hour here: nothing has gone yet. A clean stop sends
    // what is pending rather than losing it with the process.
    let (_, q) = server
        .admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls"))
        .await;
    assert_eq!(q["quota"]["used"], 0, "{q}");
    assert!(agent.terminate().success());
    let (_, q) = server
        .admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls"))
        .await;
    assert_eq!(
        (q["quota"]["used"].as_u64(), q["remaining"].as_u64()),
        (Some(4), Some(6)),
        "{q}"
    );
    server.process.terminate();
}

#[tokio::test]
async fn the_agent_starts_a_trial_when_it_has_no_token() {
    let (setup, server) = Workdir::with_server();
    let (status, p) = server
        .admin(
            "/v1/admin/policies",
            json!({"name": "eval", "trial": true, "duration": "14d", "features": ["sso"]}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let agent = setup.agent_with(
        server.url(),
        &server.public_key,
        None,
        "agent.log",
        &[("TESSERA_TRIAL_POLICY", "eval")],
    );
    let v = wait_state(&agent, "the trial", |v| v["state"] == "valid").await;
    assert_eq!(v["features"], json!(["sso"]), "{v}");
    assert!(
        v["days_left"]
            .as_i64()
            .is_some_and(|d| (13..=14).contains(&d)),
        "{v}"
    );
    let (_, list) = server.admin_get("/v1/admin/licenses?limit=10").await;
    assert_eq!(list["items"][0]["trial"], true, "{list}");
    agent.terminate();
    server.process.terminate();
}

#[tokio::test]
async fn under_a_policy_that_warns_an_expired_license_stays_valid_with_a_warning() {
    let (setup, server) = Workdir::with_server();
    let (status, p) = server
        .admin(
            "/v1/admin/policies",
            json!({"name": "soft", "duration": "30d", "enforcement": "warn"}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let (_, token) = server
        .issue(json!({"customer": "Acme", "plan": "p", "policy": "soft", "features": ["sso"], "duration": "3s"}))
        .await;
    let agent = setup.agent_for(&server, &token, "agent.log");
    wait_state(&agent, "valid", |v| v["state"] == "valid").await;
    // Expired by the clock: still valid, the refusal named.
    let v = wait_state(&agent, "the warning", |v| {
        v["warnings"] == json!(["expired"])
    })
    .await;
    assert_eq!(
        (&v["state"], &v["valid"], &v["enforcement"]),
        (&json!("valid"), &json!(true), &json!("warn")),
        "{v}"
    );
    let (code, page) = agent.get("/").await;
    assert_eq!(code, 200);
    assert!(
        page.as_str()
            .unwrap_or_default()
            .contains("policy would refuse this (expired)"),
        "{page}"
    );
    agent.terminate();
    server.process.terminate();
}
