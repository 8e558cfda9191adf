//! The client against the real authority (in process, sharing a hand-moved
//! clock) and against a fake one for hostile answers.

mod common;

use common::until;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;
use tessera_client::clock::ManualClock;
use tessera_client::{Client, Error, UnverifiedReason, Verdict, VerdictState, Watching};
use tessera_protocol::{LicenseToken, Status};
use tessera_testkit::fake::{Fake, FakeAuthority};
use tessera_testkit::{Backend, Options, TestServer, backend_tests};

const TICK: StdDuration = StdDuration::from_millis(20);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

async fn server(clock: &Arc<ManualClock>, backend: Backend) -> TestServer {
    TestServer::start_with(Options {
        backend,
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await
}

/// A client of the in-process authority on the test's clock.
fn on(s: &TestServer, clock: &Arc<ManualClock>) -> tessera_client::Builder {
    Client::builder()
        .server(&s.url)
        .public_key(s.public_key.clone())
        .clock(clock.clone())
        .tick(TICK)
}

/// A client on the fake authority, activated and valid at revision 5.
async fn fake_client(dir: &tempfile::TempDir) -> (FakeAuthority, Client, Arc<ManualClock>, String) {
    let clock = clock();
    let fake = FakeAuthority::start(clock.clone()).await;
    fake.fake
        .revision
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let token = tessera_testkit::random_token();
    let client = common::builder(&fake.url, fake.fake.public_key(), dir.path(), clock.clone())
        .start()
        .unwrap();
    client.activate(&token).await.unwrap();
    assert!(client.is_valid());
    (fake, client, clock, token)
}

fn state_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join(tessera_client::state::STATE_FILE)
}

#[tokio::test]
async fn start_never_waits_and_without_a_token_says_no_document() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: start must still return at once.
    let client = Client::builder()
        .server("http://127.0.0.1:9")
        .public_key(
            tessera_protocol::SigningKey::generate(&mut rand::rng())
                .public_key()
                .clone(),
        )
        .state_dir(dir.path())
        .clock(clock)
        .start()
        .unwrap();
    let v = client.verdict();
    assert_eq!(v.state, VerdictState::Unverified);
    assert_eq!(v.reason, Some(UnverifiedReason::NoDocument));
    assert!(!client.has_feature("sso"));
    assert!(matches!(client.refresh().await, Err(Error::NoToken)));
}

#[tokio::test]
async fn a_typo_is_refused_without_any_request() {
    let clock = clock();
    let fake = FakeAuthority::start(clock.clone()).await;
    let of_fake = || {
        Client::builder()
            .server(&fake.url)
            .public_key(fake.fake.public_key())
    };
    let client = of_fake().clock(clock).start().unwrap();
    let token = LicenseToken::generate(&mut rand::rng());
    let text = token.expose_secret();
    let typo = format!(
        "{}{}",
        &text[..text.len() - 1],
        if text.ends_with('a') { 'b' } else { 'a' }
    );
    let err = client.activate(&typo).await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken(_)), "{err}");
    assert_eq!(fake.fake.requests(), 0);
    // And a typo in configuration is refused at start.
    let err = of_fake().token(typo).start().unwrap_err();
    assert!(matches!(err, Error::InvalidToken(_)));
}

#[tokio::test]
async fn hostile_answers_are_rejected_and_leave_the_disk_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, clock, _) = fake_client(&dir).await;
    let before_disk = std::fs::read(state_file(&dir)).unwrap();
    let before = client.verdict();
    clock.advance(Duration::minutes(1));
    type Tamper =
        fn(&Fake, &mut tessera_protocol::StatusClaims) -> Option<tessera_protocol::SigningKey>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "lower revision",
            |_, c| {
                c.rev = 4;
                None
            },
            "rollback",
        ),
        (
            "same revision, older iat",
            |_, c| {
                c.iat -= Duration::minutes(5);
                None
            },
            "rollback",
        ),
        (
            "forged: another key",
            |_, _| Some(tessera_protocol::SigningKey::generate(&mut rand::rng())),
            "verification",
        ),
        (
            "expired exp",
            |_, c| {
                c.iat -= Duration::days(8);
                c.exp -= Duration::days(8);
                c.rev = 9;
                None
            },
            "verification",
        ),
        (
            "iat in the future",
            |_, c| {
                c.iat += Duration::hours(1);
                c.rev = 9;
                None
            },
            "verification",
        ),
        (
            "another token's document",
            |_, c| {
                c.tfp = LicenseToken::generate(&mut rand::rng()).fingerprint();
                c.rev = 9;
                None
            },
            "verification",
        ),
        (
            "nonce not echoed",
            |_, c| {
                c.nonce = Some("stale".into());
                c.rev = 9;
                None
            },
            "verification",
        ),
    ];
    for (name, tamper, kind) in cases {
        fake.fake.set(move |f, req, _| {
            let mut claims = f.claims_for(req);
            let key = tamper(f, &mut claims);
            Fake::answer(claims, key.as_ref().unwrap_or(&f.key))
        });
        let err = client.refresh().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        let after = client.verdict();
        assert_eq!(after.state, before.state, "{name}");
        assert_eq!(after.license, before.license, "{name}: verdict unchanged");
        assert_eq!(after.last_error.as_ref().unwrap().kind, kind, "{name}");
        assert_eq!(
            std::fs::read(state_file(&dir)).unwrap(),
            before_disk,
            "{name}: disk unchanged byte for byte"
        );
    }
    // Exact errors for two of them.
    fake.fake.set(|f, req, _| {
        let mut c = f.claims_for(req);
        c.rev = 4;
        Fake::answer(c, &f.key)
    });
    assert!(matches!(
        client.refresh().await.unwrap_err(),
        Error::Rollback {
            held_rev: 5,
            new_rev: 4
        }
    ));
    fake.fake.set(|f, req, _| {
        Fake::answer(
            f.claims_for(req),
            &tessera_protocol::SigningKey::generate(&mut rand::rng()),
        )
    });
    assert!(matches!(
        client.refresh().await.unwrap_err(),
        Error::Verification(tessera_protocol::Error::UnknownKeyId { .. })
    ));
    // A good answer is taken again afterwards.
    fake.fake.answer_valid();
    fake.fake
        .revision
        .store(6, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        client
            .refresh()
            .await
            .unwrap()
            .license
            .as_ref()
            .unwrap()
            .revision,
        6
    );
    assert!(client.verdict().last_error.is_none());
}

#[tokio::test]
async fn network_failures_5xx_and_proxy_pages_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, _, _) = fake_client(&dir).await;
    let before_disk = std::fs::read(state_file(&dir)).unwrap();
    let cases: [(u16, &'static str, &'static str, &str); 4] = [
        (
            502,
            "text/html",
            "<html><body>Bad Gateway</body></html>",
            "http_status",
        ),
        (
            500,
            "application/json",
            r#"{"error":{"code":"internal","message":"boom"}}"#,
            "http_status",
        ),
        (
            200,
            "text/html",
            "<html>captive portal</html>",
            "invalid_answer",
        ),
        (
            200,
            "application/json",
            r#"{"document": 5}"#,
            "invalid_answer",
        ),
    ];
    for (status, ctype, body, kind) in cases {
        fake.fake.answer_raw(status, ctype, body);
        let err = client.refresh().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status} {body}: {err}");
        assert!(client.is_valid());
        assert_eq!(client.verdict().last_error.as_ref().unwrap().kind, kind);
        assert!(client.verdict().offline_since.is_some());
    }
    fake.fake.set(|_, _, _| {
        use axum::response::IntoResponse;
        (axum::http::StatusCode::OK, "x".repeat(100_000)).into_response()
    });
    assert_eq!(client.refresh().await.unwrap_err().kind(), "invalid_answer");
    assert_eq!(std::fs::read(state_file(&dir)).unwrap(), before_disk);
}

#[tokio::test]
async fn concurrent_refreshes_share_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, _, _) = fake_client(&dir).await;
    let before = fake.fake.requests();
    fake.fake.set(|f, req, _| {
        std::thread::sleep(StdDuration::from_millis(300));
        Fake::answer(f.claims_for(req), &f.key)
    });
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.refresh().await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    assert_eq!(fake.fake.requests() - before, 1);
}

#[tokio::test]
async fn clock_set_back_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (_fake, client, clock, _) = fake_client(&dir).await;
    drop(client);
    let key = _fake.fake.public_key();
    let restart = || {
        common::builder(&_fake.url, key.clone(), dir.path(), clock.clone())
            .tick(TICK)
            .start()
            .unwrap()
    };
    // Half an hour back: within the tolerance.
    clock.advance(Duration::minutes(-30));
    let client = restart();
    assert!(client.is_valid());
    drop(client);
    // A day back: the high-water mark on disk says the clock lies.
    clock.advance(Duration::days(-1));
    let client = restart();
    let v = client.verdict();
    assert_eq!(v.reason, Some(UnverifiedReason::ClockTampered));
    assert!(!client.has_feature("sso"));
    // While running, too.
    clock.advance(Duration::days(1) + Duration::minutes(30));
    until(&client, "valid with the clock right", Verdict::is_valid).await;
    clock.advance(Duration::hours(-2));
    until(&client, "clock_tampered", |v| {
        v.reason == Some(UnverifiedReason::ClockTampered)
    })
    .await;
}

#[tokio::test]
async fn grace_runs_out_offline_the_verdict_goes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, clock, _) = fake_client(&dir).await;
    drop(client);
    fake.fake.answer_raw(503, "text/plain", "down");
    let client = common::builder(&fake.url, fake.fake.public_key(), dir.path(), clock.clone())
        .tick(TICK)
        .start()
        .unwrap();
    assert!(client.is_valid());
    clock.advance(Duration::days(6));
    until(&client, "still valid offline", |v| {
        v.is_valid() && v.offline_since.is_some()
    })
    .await;
    clock.advance(Duration::days(1) + Duration::seconds(2));
    let v = until(&client, "stale", |v| {
        v.reason == Some(UnverifiedReason::Stale)
    })
    .await;
    assert_eq!(
        v.license.as_ref().unwrap().status,
        Status::Active,
        "what it last knew stays visible"
    );
}

backend_tests! {
    async fn the_seed_bug_a_renewal_shows_after_refresh_or_reentering_the_same_token(backend: Backend) {
        // Metabase #56808: the answer was memoized by token, so a renewed license
        // kept saying "expired" until a restart.
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "features": ["sso"], "duration": "2d"})).await;
        let dir = tempfile::tempdir().unwrap();
        let client = on(&s, &clock)
            .state_dir(dir.path())
            .token(&token)
            .start()
            .unwrap();
        until(&client, "valid", Verdict::is_valid).await;
        assert!(client.has_feature("sso"));
        // A handle resolved once follows every change below.
        let sso = client.feature("sso");
        let unbought = client.feature("scim");
        assert!(sso.is_enabled() && !unbought.is_enabled());

        // The license runs out: the client sees it on its own, no request.
        let before = s.validations().await;
        clock.advance(Duration::days(3));
        let v = until(&client, "expired", |v| v.state == VerdictState::Expired).await;
        assert!(!v.has_feature("sso"));
        assert!(
            !client.has_feature("sso"),
            "no reader keeps a cached answer"
        );
        assert!(!sso.is_enabled(), "nor does a handle");
        assert_eq!(
            s.validations().await,
            before,
            "expiry needed no server call"
        );

        // The vendor renews. Refresh shows it at once.
        s.extend(&id, json!({"by": "30d"})).await;
        let v = client.refresh().await.unwrap();
        assert_eq!(v.state, VerdictState::Valid);
        assert_eq!(v.license.as_ref().unwrap().revision, 2);
        assert!(client.has_feature("sso"));
        assert!(sso.is_enabled() && !unbought.is_enabled(), "the handle sees the renewal");
        assert_eq!(client.feature("sso").name(), "sso");

        // Re-entering the same token also goes to the authority.
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "30d"}))
        .await;
        let v = client.activate(&token).await.unwrap();
        assert_eq!(v.license.as_ref().unwrap().revision, 3);
    }

    async fn state_survives_a_restart_and_the_authority_being_down(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (_, token) = s.issue_default().await;
        let dir = tempfile::tempdir().unwrap();
        let url = s.url.clone();
        let key = s.public_key.clone();
        let start = |server: &str| {
            common::builder(server, key.clone(), dir.path(), clock.clone())
                .tick(TICK)
                .request_timeout(StdDuration::from_secs(2))
        };
        let client = start(&url).token(&token).start().unwrap();
        until(&client, "valid", Verdict::is_valid).await;
        let instance = client.instance_id();
        drop(client);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state_file(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // Authority gone; the client restarts and is valid from disk at once.
        let stopped = s.stop().await;
        let client = start(&url).token(&token).start().unwrap();
        assert_eq!(
            client.verdict().state,
            VerdictState::Valid,
            "from disk, before any network"
        );
        assert_eq!(client.instance_id(), instance);
        let v = until(&client, "offline noticed", |v| v.offline_since.is_some()).await;
        assert!(v.is_valid());
        assert_eq!(v.last_error.as_ref().unwrap().kind, "network");
        assert!(client.refresh().await.is_err());
        assert!(
            client.verdict().is_valid(),
            "an error never changes the verdict"
        );

        // The authority returns on the same port; the client recovers by itself.
        let s = TestServer::restart(
            stopped,
            Options {
                clock: Some(clock.clone()),
                ..Options::default()
            },
        )
        .await;
        let v = until(&client, "back online", |v| v.offline_since.is_none()).await;
        assert!(v.is_valid());
        assert!(v.last_error.is_none());
        drop(s);
    }

    async fn denied_answers_are_applied(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (id, token) = s.issue_default().await;
        let client = on(&s, &clock).token(&token).start().unwrap();
        until(&client, "valid", Verdict::is_valid).await;
        s.act(&id, "suspend").await;
        assert_eq!(
            client.refresh().await.unwrap().state,
            VerdictState::Suspended
        );
        s.act(&id, "reinstate").await;
        assert_eq!(client.refresh().await.unwrap().state, VerdictState::Valid);
        s.act(&id, "revoke").await;
        let v = client.refresh().await.unwrap();
        assert_eq!(v.state, VerdictState::Revoked);
        assert!(!client.has_feature("sso"));
        let unknown = LicenseToken::generate(&mut rand::rng());
        let v = client.activate(unknown.expose_secret()).await.unwrap();
        assert_eq!(v.state, VerdictState::NotFound);
    }

    async fn background_refresh_polls_at_refresh_after_with_if_none_match(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (id, token) = s.issue_default().await;
        let client = on(&s, &clock)
            .watch(Watching::Off)
            .token(&token)
            .start()
            .unwrap();
        until(&client, "valid", Verdict::is_valid).await;
        let doc = client.document().unwrap();
        // A change while the client is not asking: seen at the next poll.
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "10d"}))
        .await;
        clock.advance(Duration::minutes(67));
        let v = until(&client, "revision 2", |v| {
            v.license.as_ref().is_some_and(|l| l.revision == 2)
        })
        .await;
        assert!(v.is_valid());
        assert_ne!(client.document().unwrap(), doc);
    }

    async fn offline_file_mode_needs_no_server(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "features": ["sso"], "duration": "400d"})).await;
        let (_, export) = s
            .admin_post(&format!("/v1/admin/licenses/{id}/export"), json!({"ttl": "365d"}))
            .await;
        let key = s.public_key.clone();
        drop(s);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme.license");
        std::fs::write(&file, serde_json::to_string_pretty(&export).unwrap()).unwrap();
        let start = |file: &std::path::Path| {
            Client::builder()
                .public_key(key.clone())
                .offline_file(file)
                .token(&token)
                .state_dir(dir.path().join("state"))
                .clock(clock.clone())
                .tick(TICK)
                .start()
        };
        let client = start(&file).unwrap();
        assert!(client.is_valid());
        assert!(client.has_feature("sso"));
        assert!(matches!(client.refresh().await, Err(Error::NoServer)));
        clock.advance(Duration::days(300));
        until(&client, "valid 300 days later", Verdict::is_valid).await;
        clock.advance(Duration::days(66));
        until(&client, "stale after the export's ttl", |v| {
            v.reason == Some(UnverifiedReason::Stale)
        })
        .await;
        drop(client);

        // A tampered file is refused at start.
        let text = std::fs::read_to_string(&file).unwrap();
        let tampered = text.replacen("v4.public.", "v4.public.A", 1);
        let bad = dir.path().join("tampered.license");
        std::fs::write(&bad, tampered).unwrap();
        assert!(matches!(start(&bad), Err(Error::Verification(_))));
    }

    async fn a_configured_token_change_wins_over_the_stored_one_but_not_otherwise(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (_, a) = s.issue_default().await;
        let (_, b) = s.issue_default().await;
        let (_, c) = s.issue_default().await;
        let dir = tempfile::tempdir().unwrap();
        let start = |token: &str| {
            on(&s, &clock)
                .state_dir(dir.path())
                .token(token)
                .start()
                .unwrap()
        };
        let lic = |client: &Client| client.verdict().license.as_ref().and_then(|l| l.id.clone());
        let client = start(&a);
        until(&client, "valid", Verdict::is_valid).await;
        let lic_a = lic(&client);
        // Activated at run time: B.
        client.activate(&b).await.unwrap();
        let lic_b = lic(&client);
        assert_ne!(lic_a, lic_b);
        drop(client);
        // Same configuration (A) as before: the activated B stays.
        let client = start(&a);
        assert_eq!(lic(&client), lic_b);
        drop(client);
        // The configuration now says C: the operator changed it, C wins.
        let client = start(&c);
        until(&client, "valid with C", |v| {
            v.is_valid() && v.license.as_ref().and_then(|l| l.id.clone()) != lic_b
        })
        .await;
    }

    async fn changes_are_pushed_without_any_refresh_and_delivery_is_reported(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (id, token) = s.issue_default().await;
        let client = on(&s, &clock).token(&token).start().unwrap();
        until(&client, "valid and connected", |v| {
            v.is_valid() && v.connected
        })
        .await;
        let validations = s.validations().await;

        let started = std::time::Instant::now();
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "30d"}))
        .await;
        until(&client, "revision 2 pushed", |v| {
            v.license.as_ref().is_some_and(|l| l.revision == 2)
        })
        .await;
        assert!(
            started.elapsed() < StdDuration::from_secs(2),
            "pushed in {:?}",
            started.elapsed()
        );
        assert_eq!(
            s.validations().await,
            validations,
            "no validation request: it was pushed"
        );

        // The authority learns the instance holds revision 2.
        let mut delivered = false;
        for _ in 0..100 {
            let fleet = s.fleet(&id).await;
            if fleet["summary"]["current"] == 1 && fleet["summary"]["total"] == 1 {
                assert_eq!(
                    fleet["instances"][0]["instance_id"],
                    client.instance_id().as_str()
                );
                assert_eq!(fleet["instances"][0]["stream_connected"], true);
                delivered = true;
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        assert!(delivered, "fleet view shows delivery");

        s.act(&id, "revoke").await;
        let v = until(&client, "revoked pushed", |v| {
            v.state == VerdictState::Revoked
        })
        .await;
        assert!(!v.has_feature("sso"));
        assert!(!client.has_feature("sso"));
    }

    async fn a_new_token_moves_the_stream_to_its_license(backend: Backend) {
        let clock = clock();
        let s = server(&clock, backend.clone()).await;
        let (_, a) = s.issue_default().await;
        let (b_id, b) = s.issue_default().await;
        let client = on(&s, &clock)
            .token(&a)
            .start()
            .unwrap();
        until(&client, "connected", |v| v.connected).await;
        client.activate(&b).await.unwrap();
        until(&client, "connected with B", |v| {
            v.connected && v.license.as_ref().and_then(|l| l.id.as_deref()) == Some(b_id.as_str())
        })
        .await;
        s.admin("POST", &format!("/v1/admin/licenses/{b_id}/suspend"), None)
            .await;
        until(&client, "B's change pushed", |v| {
            v.state == VerdictState::Suspended
        })
        .await;
    }
}

#[tokio::test]
async fn an_unreachable_server_is_skipped_within_the_same_call() {
    let clock = clock();
    let down = FakeAuthority::start(clock.clone()).await;
    down.fake
        .answer_raw(502, "text/html", "<html>bad gateway</html>");
    let up = FakeAuthority::start(clock.clone()).await;
    // Both sign with their own key here; pin both (as during a key rotation).
    let client = Client::builder()
        .servers([down.url.clone(), up.url.clone()])
        .public_key(down.fake.public_key())
        .public_key(up.fake.public_key())
        .watch(Watching::Off)
        .clock(clock.clone())
        .start()
        .unwrap();
    let token = LicenseToken::generate(&mut rand::rng());
    let v = client.activate(token.expose_secret()).await.unwrap();
    assert!(v.is_valid());
    assert_eq!(client.current_server().as_deref(), Some(up.url.as_str()));
    assert_eq!((down.fake.requests(), up.fake.requests()), (1, 1));
}

/// Metering from the SDK: the product's user count reaches the fleet view
/// at once and every interval; going over the seat limit comes back pushed
/// in the document, while the license stays valid.
#[tokio::test]
async fn usage_is_reported_and_seats_exceeded_comes_back() {
    let clock = clock();
    let s = server(&clock, Backend::Sqlite).await;
    let (id, token) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "max_users": 5}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = on(&s, &clock)
        .state_dir(dir.path())
        .token(&token)
        .usage_interval(StdDuration::from_millis(200))
        .start()
        .unwrap();
    until(&client, "valid and connected", |v| {
        v.is_valid() && v.connected
    })
    .await;
    let users_in_fleet = async || {
        let fleet = s.fleet(&id).await;
        fleet["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == client.instance_id().as_str())
            .and_then(|i| i["users"].as_u64())
    };
    client.set_users(4);
    tessera_testkit::process::eventually(
        "4 users in the fleet view",
        StdDuration::from_secs(10),
        async || (users_in_fleet().await == Some(4)).then_some(()),
    )
    .await;
    client.set_users(9);
    let v = until(&client, "seats exceeded, pushed", |v| {
        v.license.as_ref().is_some_and(|l| l.seats_exceeded)
    })
    .await;
    assert!(v.is_valid(), "informational: still valid");
    assert_eq!(users_in_fleet().await, Some(9));
}

/// A feature bought for a while turns off at its end by the client's own
/// clock: no request reaches the authority for it (docs/PROTOCOL.md §20).
#[tokio::test]
async fn a_feature_turns_off_at_its_end_without_asking() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let end = s.now() + Duration::minutes(30);
    let features = json!([
        "sso",
        format!("audit@{}", tessera_protocol::time::format(&end))
    ]);
    let (_, token) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": features}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = common::builder(&s.url, s.public_key.clone(), dir.path(), clock.clone())
        .tick(StdDuration::from_millis(20))
        .token(&token)
        .start()
        .unwrap();
    until(&client, "audit granted", |v| v.has_feature("audit")).await;
    let (audit, sso) = (client.feature("audit"), client.feature("sso"));
    assert!(audit.is_enabled() && sso.is_enabled());
    let answered = s.validations().await;
    clock.advance(Duration::minutes(31));
    let v = until(&client, "audit off at its end", |v| !v.has_feature("audit")).await;
    assert!(v.is_valid() && v.has_feature("sso"));
    assert!(
        !audit.is_enabled() && sso.is_enabled(),
        "handles follow a feature's own end"
    );
    assert_eq!(
        v.license.as_ref().unwrap().entitlements["audit"].expires_at,
        Some(end)
    );
    assert_eq!(
        s.validations().await,
        answered,
        "decided offline, by the clock"
    );
}
