//! Regression tests for the hostile review of the client (RELIABILITY.md,
//! "Hardening"): each test is named after the attack it pins.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use serde_json::json;
use tessera_client::clock::{Clock, ManualClock};
use tessera_client::{Client, UnverifiedReason, Verdict, VerdictState, Watching};
use tessera_testkit::fake::FakeAuthority;
use tessera_testkit::{Options, TestServer};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

/// Wait (bounded) until a *published* verdict satisfies `pred`. Reads only
/// the subscription, never `Client::verdict`, so it sees what the
/// background loop publishes by itself.
async fn published(client: &Client, what: &str, pred: impl Fn(&Verdict) -> bool) -> Arc<Verdict> {
    let mut rx = client.subscribe();
    let waited = tokio::time::timeout(StdDuration::from_secs(10), rx.wait_for(|v| pred(v)))
        .await
        .map(|r| r.map(|v| v.clone()));
    match waited {
        Ok(Ok(v)) => v,
        _ => panic!(
            "timed out waiting for {what}; last published {:#?}",
            rx.borrow()
        ),
    }
}

fn state_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join(tessera_client::state::STATE_FILE)
}

/// A client of a fake authority, activated: valid, expiring a day after
/// the document is signed (its `exp`, the grace, is 7 days).
async fn activated(
    dir: &tempfile::TempDir,
    clock: &Arc<ManualClock>,
    tick: StdDuration,
) -> (FakeAuthority, Client, String) {
    let fake = FakeAuthority::start(clock.clone()).await;
    fake.fake.answer_expiring(Duration::days(1));
    let token = tessera_testkit::random_token();
    let client = common::builder(&fake.url, fake.fake.public_key(), dir.path(), clock.clone())
        .tick(tick)
        .watch(Watching::Off)
        .start()
        .unwrap();
    client.activate(&token).await.unwrap();
    assert!(client.is_valid());
    (fake, client, token)
}

/// Item 1: a 503 with `Retry-After: u64::MAX` overflowed `Instant +
/// Duration`, panicked the refresh loop, and the verdict stayed valid past
/// expiry. The wait is now capped and the loop lives on: it publishes the
/// expiry by itself.
#[tokio::test]
async fn a_huge_retry_after_does_not_kill_the_refresh_loop() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, _) = activated(&dir, &clock, StdDuration::from_millis(20)).await;
    fake.fake.set(|_, _, _| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "18446744073709551615")],
            "busy",
        )
            .into_response()
    });
    let before = fake.fake.requests();
    // Past refresh_after: the loop polls and meets the 503.
    clock.advance(Duration::hours(2));
    let v = published(&client, "the 503 recorded", |v| v.last_error.is_some()).await;
    assert_eq!(v.last_error.as_ref().unwrap().kind, "http_status");
    assert!(fake.fake.requests() > before);
    // Past expires_at: the (living) loop publishes the expiry on its own.
    clock.advance(Duration::days(1));
    let v = published(&client, "expired", |v| v.state == VerdictState::Expired).await;
    assert!(!v.is_valid());
}

/// Item 1, second half: no single task's death may freeze the verdict.
/// Here the refresh loop sleeps a whole hour (its tick) while the clock
/// jumps past the expiry and then past the grace: the deadline thread,
/// independent of the loop and the runtime, publishes both on time.
#[tokio::test]
async fn the_expiry_is_published_even_when_the_refresh_loop_sleeps() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (_fake, client, _) = activated(&dir, &clock, StdDuration::from_secs(3_600)).await;
    assert!(client.has_feature("sso"));
    let sso = client.feature("sso");
    assert!(sso.is_enabled());
    let expires_at = client
        .verdict()
        .license
        .as_ref()
        .unwrap()
        .expires_at
        .unwrap();
    clock.set(expires_at);
    let v = published(&client, "expired", |v| v.state == VerdictState::Expired).await;
    assert!(!v.is_valid());
    assert!(
        !client.is_valid(),
        "is_valid after the expiry was published"
    );
    assert!(
        !client.has_feature("sso"),
        "has_feature after the expiry was published"
    );
    assert!(
        !sso.is_enabled(),
        "a feature handle after the expiry was published"
    );
    // And past the grace (`exp`), stale: again without the loop.
    let exp = v.license.as_ref().unwrap().fresh_until;
    clock.set(exp + Duration::seconds(2));
    published(&client, "stale", |v| {
        v.reason == Some(UnverifiedReason::Stale)
    })
    .await;
}

/// Item 3: with `high_water_mark` nulled (or lowered) in the state file and
/// the clock set back before the document was signed, an expired license
/// came back valid. The mark in force is at least the document's `iat`
/// (less the drift), and the file is repaired.
#[tokio::test]
async fn a_removed_clock_mark_cannot_take_the_clock_back() {
    for edit in ["null", "lowered"] {
        let clock = clock();
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeAuthority::start(clock.clone()).await;
        // A license that expires an hour after the document is signed.
        fake.fake.answer_expiring(Duration::hours(1));
        let token = tessera_testkit::random_token();
        let start = || {
            common::builder(
                "http://127.0.0.1:9",
                fake.fake.public_key(),
                dir.path(),
                clock.clone(),
            )
            .watch(Watching::Off)
        };
        let signed_at = clock.now();
        {
            let client =
                common::builder(&fake.url, fake.fake.public_key(), dir.path(), clock.clone())
                    .watch(Watching::Off)
                    .start()
                    .unwrap();
            client.activate(&token).await.unwrap();
            clock.advance(Duration::hours(2));
            published(&client, "expired", |v| v.state == VerdictState::Expired).await;
        }
        // The licensee edits the mark and sets the clock back 3 h, before
        // the document was signed.
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state_path(&dir)).unwrap()).unwrap();
        state["high_water_mark"] = match edit {
            "null" => serde_json::Value::Null,
            _ => json!(tessera_protocol::time::format(
                &(signed_at - Duration::days(10))
            )),
        };
        std::fs::write(state_path(&dir), serde_json::to_vec(&state).unwrap()).unwrap();
        clock.set(signed_at - Duration::hours(3));
        let client = start().start().unwrap();
        let v = client.verdict();
        assert_eq!(v.state, VerdictState::Unverified, "{edit}: {v:?}");
        assert_eq!(v.reason, Some(UnverifiedReason::ClockTampered), "{edit}");
        assert!(!client.has_feature("sso"));
        // The file was repaired: its mark is at least the document's iat.
        let repaired: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state_path(&dir)).unwrap()).unwrap();
        let mark = chrono::DateTime::parse_from_rfc3339(
            repaired["high_water_mark"].as_str().expect("a mark"),
        )
        .unwrap();
        assert!(mark.to_utc() >= signed_at, "{edit}: repaired mark {mark}");
    }
}

/// Item 4: a clock one year ahead for four seconds raised the mark for
/// good; after the clock was corrected every verdict said
/// `clock_tampered` until the state was deleted. An answer to the
/// client's own nonce re-bases the mark to the authority's time.
#[tokio::test]
async fn a_clock_ahead_for_seconds_does_not_lock_the_client_out() {
    let server_clock = clock();
    let client_clock = Arc::new(ManualClock::new(server_clock.now()));
    let dir = tempfile::tempdir().unwrap();
    let (s, client) = common::licensed(&server_clock, &client_clock, dir.path()).await;
    assert!(client.is_valid());
    // Ahead by a year, long enough for the loop to raise (and store) the mark.
    client_clock.advance(Duration::days(365));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    // Corrected: the mark is a year ahead of the clock.
    client_clock.advance(-Duration::days(365));
    published(&client, "clock_tampered", |v| {
        v.reason == Some(UnverifiedReason::ClockTampered)
    })
    .await;
    // A fresh answer to our nonce re-bases the mark: valid again.
    let v = client.refresh().await.unwrap();
    assert_eq!(v.state, VerdictState::Valid, "{v:?}");
    assert!(client.is_valid());
    // And it stays valid across a restart (the re-based mark was stored).
    drop(client);
    let again = common::builder(
        "http://127.0.0.1:9",
        s.public_key.clone(),
        dir.path(),
        client_clock.clone(),
    )
    .watch(Watching::Off)
    .start()
    .unwrap();
    assert_eq!(again.verdict().state, VerdictState::Valid);
}

/// A raw HTTP server answering every request `500` with a 400 MiB body it
/// writes as fast as the reader takes it; counts the bytes it got out.
fn huge_error_server() -> (String, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head);
                let _ = conn.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 419430400\r\n\r\n",
                );
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0u64;
                while sent < 419_430_400 {
                    match conn.write(&chunk) {
                        Ok(n) if n > 0 => {
                            sent += n as u64;
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            });
        }
    });
    (url, written)
}

/// Item 5: error bodies on `/v1/watch` were read whole (a 400 MiB body took
/// the agent to 865 MB), again on every reconnect. Every body is read at
/// most 64 KiB and under a timeout; the connection is then dropped.
#[tokio::test]
async fn huge_error_bodies_are_cut_off_not_read() {
    let (url, written) = huge_error_server();
    let token = tessera_testkit::random_token();
    let client = Client::builder()
        .server(&url)
        .public_key(
            tessera_protocol::SigningKey::generate(&mut rand::rng())
                .public_key()
                .clone(),
        )
        .token(&token)
        .request_timeout(StdDuration::from_secs(2))
        .stream_read_timeout(StdDuration::from_secs(2))
        .start()
        .unwrap();
    let v = published(&client, "the failure recorded", |v| v.last_error.is_some()).await;
    assert!(!v.is_valid());
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let total = written.load(Ordering::Relaxed);
    // What the kernel buffers on loopback plus 64 KiB per attempt; reading
    // the bodies whole would be hundreds of MiB.
    assert!(
        total < 48 * 1024 * 1024,
        "the client took {} MiB of error bodies",
        total / (1024 * 1024)
    );
    drop(client);
}

/// Item 6: an unsigned `304` set `last_verified_at` and cleared
/// `offline_since`, so a fake endpoint silenced the offline alert. Only a
/// signed answer does that now; while flagged, the client asks with a
/// nonce and no `If-None-Match`, and a `304` to that is an error.
#[tokio::test]
async fn an_unsigned_304_is_not_contact() {
    let clock = clock();
    let dir = tempfile::tempdir().unwrap();
    let (fake, client, _) = activated(&dir, &clock, StdDuration::from_millis(20)).await;
    let verified = client.verdict().last_verified_at;
    fake.fake.answer_raw(503, "text/plain", "down");
    assert!(client.refresh().await.is_err());
    let offline = client.verdict().offline_since;
    assert!(offline.is_some());
    // The endpoint now answers 304 to everything.
    fake.fake
        .set(|_, _, _| StatusCode::NOT_MODIFIED.into_response());
    clock.advance(Duration::minutes(5));
    assert!(client.refresh().await.is_err(), "a 304 to a forced request");
    // The background poll (past refresh_after) meets the same 304.
    let before = fake.fake.requests();
    clock.advance(Duration::hours(2));
    tokio::time::timeout(StdDuration::from_secs(10), async {
        while fake.fake.requests() == before {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    })
    .await
    .expect("the loop polls");
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    let v = client.verdict();
    assert_eq!(v.offline_since, offline, "still offline");
    assert_eq!(v.last_verified_at, verified, "no new verified contact");
    // A signed answer clears it.
    fake.fake.answer_valid();
    let v = client.refresh().await.unwrap();
    assert!(v.offline_since.is_none());
    assert!(v.last_verified_at > verified);
}

/// Item 15: an ack answered 204 could be lost (a replica killed before its
/// batch was written) and was sent again only after the next change, so
/// the fleet view stayed wrong. The client re-acks its held revision when
/// its stream (re)connects (and every 5 minutes).
#[tokio::test]
async fn a_lost_ack_is_sent_again_when_the_stream_reconnects() {
    use sqlx::Connection;
    let clock = clock();
    let options = || Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let s = TestServer::start_with(options()).await;
    let (id, token) = s.issue_default().await;
    let client = Client::builder()
        .server(&s.url)
        .public_key(s.public_key.clone())
        .token(&token)
        .clock(clock.clone())
        .tick(StdDuration::from_millis(20))
        .start()
        .unwrap();
    async fn held(s: &TestServer, id: &str) -> Option<u64> {
        let fleet = s.fleet(id).await;
        fleet["instances"][0]["held_revision"].as_u64()
    }
    async fn wait_held(s: &TestServer, id: &str, what: &str) {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
        while held(s, id).await != Some(1) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    }
    wait_held(&s, &id, "the first ack").await;
    // The authority stops; the ack it had is lost.
    let stopped = s.stop().await;
    let db = stopped.dir.path().join("data").join("tessera.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE instances SET held_revision = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let s = TestServer::restart(stopped, options()).await;
    assert_eq!(held(&s, &id).await, None, "the ack is gone");
    // No change is made: the client reports again as its stream reconnects.
    wait_held(&s, &id, "re-acked after the reconnect").await;
    drop(client);
}

/// A refresh that joined a poll already on its way gets the poll's answer;
/// when a newer document arrived meanwhile (pushed, or imported), that
/// answer — no older than what was held when asking — is superseded, not a
/// rollback error (CI saw `refresh()` fail so after a suspension pushed on
/// the stream). An answer older than what was held when asking stays an
/// error (the hostile fixtures' `lower-revision`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_crossing_a_newer_document_is_superseded_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (fake, client, token) = activated(&dir, &clock, StdDuration::from_secs(3600)).await;
    assert_eq!(client.verdict().license.as_ref().unwrap().revision, 1);
    // The authority answers revision 1, slowly.
    fake.fake.set(|f, req, _| {
        let answer = tessera_testkit::fake::Fake::answer(f.claims_for(req), &f.key);
        // Blocking, but telling the runtime so: its timers and other tasks
        // move to another thread meanwhile.
        tokio::task::block_in_place(|| std::thread::sleep(StdDuration::from_millis(400)));
        answer
    });
    let asking = {
        let client = client.clone();
        tokio::spawn(async move { client.refresh().await })
    };
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    // Meanwhile revision 2 arrives (here as an offline file; on the stream
    // in the field).
    let tfp = tessera_protocol::LicenseToken::parse(&token)
        .unwrap()
        .fingerprint();
    let mut newer = tessera_protocol::StatusClaims::sample(tfp, clock.now());
    newer.rev = 2;
    let doc = tessera_protocol::sign(&newer, &fake.fake.key).unwrap();
    let v = client.import_offline(doc.as_bytes()).await.unwrap();
    assert!(!asking.is_finished(), "the answer is still on its way");
    assert_eq!(v.license.as_ref().unwrap().revision, 2);
    let answered = asking.await.unwrap().expect("superseded, not an error");
    assert_eq!(answered.license.as_ref().unwrap().revision, 2);
    assert!(
        client.verdict().last_error.is_none(),
        "{:?}",
        client.verdict().last_error
    );
}
