//! The admin console in real headless Chromium: the server and agent
//! binaries, a browser session, screenshots of each page under
//! `target/screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;
use tessera_testkit::browser::Browser;
use tessera_testkit::process::{Process, ServerProcess, eventually, free_addr};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

async fn path(b: &Browser) -> String {
    b.client.current_url().await.unwrap().path().to_owned()
}

async fn sign_in(b: &Browser, url: &str, key: &str) {
    b.client.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(path(b).await, "/login", "the console asks to sign in first");
    b.fill("#key", key).await;
    b.click("#sign-in").await;
    b.wait_text("h1", "the dashboard", |t| t == "Dashboard")
        .await;
}

#[tokio::test]
async fn a_desk_issues_extends_and_revokes_a_license_and_watches_the_renewal_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(BIN, &dir.path().join("data"), free_addr(), "server.log");
    let url = server.url().to_owned();
    let b = Browser::start().await;

    // A wrong admin key is refused, with a sentence for people.
    b.client.goto(&format!("{url}/login")).await.unwrap();
    b.screenshot("console-login").await;
    let wrong = tessera_protocol::AdminKey::generate(&mut rand::rng());
    b.fill("#key", wrong.expose_secret()).await;
    b.click("#sign-in").await;
    let error = b
        .wait_text("#login-error", "the refusal", |t| !t.is_empty())
        .await;
    assert!(error.contains("not valid"), "{error}");
    b.client.goto(&format!("{url}/licenses")).await.unwrap();
    assert_eq!(path(&b).await, "/login", "no session after a wrong key");

    sign_in(&b, &url, &server.admin_key).await;
    assert_eq!(b.text("#count-active").await, "0");
    b.screenshot("console-dashboard-empty").await;

    // Issue: the token is shown once, with a warning and a copy button.
    b.click("header a[href='/licenses/new']").await;
    b.wait_text("h1", "the issue form", |t| t == "Issue a license")
        .await;
    b.fill("#customer", "Acme Corp").await;
    b.fill("#plan", "enterprise").await;
    b.fill("#features", "sso, audit").await;
    b.fill("#max_users", "25").await;
    b.fill("#duration", "20d").await;
    b.screenshot("console-issue").await;
    b.click("#issue").await;
    b.wait_text("h1", "the issued page", |t| t == "License issued")
        .await;
    let token = b.value("#token").await;
    assert!(
        tessera_protocol::LicenseToken::parse(&token).is_ok(),
        "{token}"
    );
    assert!(
        b.text("#token-warning")
            .await
            .contains("only time it is shown")
    );
    assert!(b.client.find(Locator::Css("#copy")).await.is_ok());
    b.screenshot("console-issued").await;
    b.click("#to-license").await;
    b.wait_text("h1", "the license page", |t| t.starts_with("License lic_"))
        .await;
    let license_path = path(&b).await;
    let id = license_path.trim_start_matches("/licenses/").to_owned();
    assert!(
        !b.client.source().await.unwrap().contains(&token),
        "the token is never shown again"
    );
    assert!(b.text("#fleet-empty").await.contains("No installation"));

    // An agent starts watching the license.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let state = dir.path().join("agent");
    let agent = Process::spawn(
        BIN,
        &[
            "agent",
            "--server",
            &url,
            "--public-key",
            &server.public_key,
            "--token-file",
            token_file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &dir.path().join("agent.log"),
        &[],
    );
    // The open page picks the instance up by itself.
    b.wait_text("#delivered", "delivered to 1 of 1", |t| {
        t == "Delivered to 1 of 1"
    })
    .await;
    b.client
        .execute("window.__stillTheSamePage = 42;", vec![])
        .await
        .unwrap();

    // Extended through the API while the page is open: the fleet view first
    // shows the new revision undelivered, then delivered, with no reload.
    server.extend(&id, json!({"by": "30d"})).await;
    b.wait_text("#fleet-rows", "revision 2 delivered", |t| {
        t.contains("2 (current)")
    })
    .await;
    assert_eq!(b.text("#delivered").await, "Delivered to 1 of 1");
    let same = b
        .client
        .execute("return window.__stillTheSamePage;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(42), "the page was not reloaded");
    b.screenshot("console-license-delivered").await;
    let (_, status) = agent.get("/v1/status").await;
    assert_eq!(status["revision"], 2);

    // Extend in the console, through its confirmation page.
    b.client
        .goto(&format!("{url}{license_path}"))
        .await
        .unwrap();
    b.click("#extend").await;
    let consequence = b
        .wait_text("#consequence", "the confirmation", |t| {
            t.contains("moves from")
        })
        .await;
    assert!(consequence.contains("to"), "{consequence}");
    b.screenshot("console-confirm-extend").await;
    b.click("#confirm").await;
    b.wait_text("#done", "the result", |t| t.starts_with("Extended"))
        .await;
    assert_eq!(b.text("#revision").await, "3");
    eventually(
        "the agent got revision 3",
        Duration::from_secs(5),
        async || {
            let (_, s) = agent.get("/v1/status").await;
            (s["revision"] == 3).then_some(())
        },
    )
    .await;

    // Revoke, with confirmation and a reason.
    b.click("#revoke").await;
    let warning = b
        .wait_text("#consequence", "the revoke warning", |t| {
            t.contains("cannot be undone")
        })
        .await;
    assert!(warning.contains("token stops working"));
    b.fill("#reason", "contract ended").await;
    b.screenshot("console-confirm-revoke").await;
    b.click("#confirm").await;
    b.wait_text("#done", "revoked", |t| t.starts_with("Revoked"))
        .await;
    assert!(b.text("#status").await.contains("revoked"));
    let history = b.text("#events").await;
    assert!(
        history.contains("license.revoked") && history.contains("reason: contract ended"),
        "{history}"
    );
    assert!(
        history.contains("admin"),
        "actions are recorded with the key's name: {history}"
    );
    b.screenshot("console-license-revoked").await;
    eventually("the agent is denied", Duration::from_secs(5), async || {
        let (_, s) = agent.get("/v1/status").await;
        (s["state"] == "revoked").then_some(())
    })
    .await;

    // The other pages.
    b.client
        .goto(&format!("{url}/licenses?q=acme"))
        .await
        .unwrap();
    assert!(b.text("#licenses").await.contains(&id));
    b.screenshot("console-licenses").await;
    b.client
        .goto(&format!("{url}/licenses?q=nobody"))
        .await
        .unwrap();
    assert!(b.text("#no-licenses").await.contains("No license matches"));
    b.client.goto(&format!("{url}/policies")).await.unwrap();
    b.fill("#name", "gold").await;
    b.fill("#duration", "365d").await;
    b.click("#create-policy").await;
    b.wait_text("#done", "policy created", |t| t == "Policy created.")
        .await;
    assert!(b.text("#policies").await.contains("gold"));
    b.screenshot("console-policies").await;
    b.client.goto(&format!("{url}/events")).await.unwrap();
    b.screenshot("console-events").await;
    b.client.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(b.text("#count-revoked").await, "1");
    b.screenshot("console-dashboard").await;
    b.client
        .goto(&format!(
            "{url}/licenses/lic_01936b2e-7c3a-7def-8a12-0123456789ab"
        ))
        .await
        .unwrap();
    assert!(
        b.text("#error-message")
            .await
            .contains("There is no license")
    );
    b.screenshot("console-not-found").await;

    // A form posted without the CSRF token is refused, even with the session.
    let cookie = b.client.get_named_cookie("tessera_session").await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (other, _) = server.issue_for("Beta", "10d").await;
    let res = http
        .post(format!("{url}/licenses/{other}/suspend"))
        .header("cookie", format!("tessera_session={}", cookie.value()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("This form cannot be accepted")
    );
    let (_, l) = server
        .admin_get(&format!("/v1/admin/licenses/{other}"))
        .await;
    assert_eq!(l["state"], "active", "nothing changed");

    // Log out: the session is gone.
    b.client.goto(&format!("{url}/")).await.unwrap();
    b.click("#logout").await;
    b.wait_text("h1", "the sign-in page", |t| t.starts_with("Sign in"))
        .await;
    let res = http
        .get(format!("{url}/licenses"))
        .header("cookie", format!("tessera_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the old session cookie no longer works");
    b.close().await;
}

#[tokio::test]
async fn a_desk_issues_a_machine_license_and_releases_a_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(BIN, &dir.path().join("data"), free_addr(), "server.log");
    let url = server.url().to_owned();
    let b = Browser::start().await;
    sign_in(&b, &url, &server.admin_key).await;
    // Issue with a machine limit, floating, from the form.
    b.click("header a[href='/licenses/new']").await;
    b.wait_text("h1", "the issue form", |t| t == "Issue a license")
        .await;
    b.fill("#customer", "Acme Corp").await;
    b.fill("#plan", "enterprise").await;
    b.fill("#duration", "30d").await;
    b.fill("#max_machines", "2").await;
    b.fill("#lease_ttl", "10m").await;
    b.click("#floating").await;
    b.click("#issue").await;
    b.wait_text("h1", "the issued page", |t| t == "License issued")
        .await;
    let token = b.value("#token").await;
    b.click("#to-license").await;
    b.wait_text("#machines-count", "no machines yet", |t| {
        t.starts_with("0 of 2 machines")
    })
    .await;
    // A machine activates; the page lists it with a Release button.
    let body = json!({"token": token, "fingerprint": "desk-1", "name": "front desk"});
    let (status, v) = server
        .process
        .post("/v1/machines/activate", body, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"]["status"], "active");
    b.client.refresh().await.unwrap();
    let count = b
        .wait_text("#machines-count", "one machine", |t| {
            t.starts_with("1 of 2 machines")
        })
        .await;
    assert!(count.contains("floating"), "{count}");
    assert!(b.text("#machines").await.contains("front desk"));
    b.screenshot("console-machines").await;
    b.click("#machines button.release").await;
    b.wait_text("#done", "the release", |t| t.starts_with("Released"))
        .await;
    let count = b.text("#machines-count").await;
    assert!(count.starts_with("0 of 2 machines"), "{count}");
    let (status, v) = server
        .process
        .post(
            "/v1/machines/heartbeat",
            json!({"token": token, "fingerprint": "desk-1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, &v["verdict"]["status"]),
        (200, &json!("not_activated"))
    );
    b.close().await;
}
