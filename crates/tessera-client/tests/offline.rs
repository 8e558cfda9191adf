//! Offline activation end to end (docs/PROTOCOL.md §25), with no network
//! path from the isolated machines to the authority: the request is
//! carried by hand (its code read back as text), the response imported
//! from bytes. The attacks are each refused with their reason: a response
//! replayed on a second machine, a response to another request's nonce, an
//! older response after a renewal, the clock set back; and the place counts
//! against `max_machines` like an online activation.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tessera_client::clock::ManualClock;
use tessera_client::{Client, Error, UnverifiedReason, VerdictState};
use tessera_protocol::offline::OfflineRequest;
use tessera_testkit::{Options, TestServer};

/// An isolated machine: no server, its state in `dir`, the token, this
/// fingerprint, its time from `clock`.
fn isolated(
    s: &TestServer,
    dir: &std::path::Path,
    token: &str,
    fp: &str,
    clock: &Arc<ManualClock>,
) -> Client {
    Client::builder()
        .public_key(s.public_key.clone())
        .state_dir(dir)
        .token(token)
        .fingerprint(fp)
        .app_version("5.2.0")
        .clock(clock.clone())
        .start()
        .unwrap()
}

/// The vendor answers a request (`POST /v1/admin/offline-activations`).
async fn respond(s: &TestServer, request: &str, ttl: &str) -> (u16, Value) {
    let (status, v) = s
        .admin_post(
            "/v1/admin/offline-activations",
            json!({"request": request, "ttl": ttl}),
        )
        .await;
    (status.as_u16(), v)
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test]
async fn a_machine_activates_by_file_and_every_attack_is_refused() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let (id, token) = s
        .issue(json!({"customer": "Bank", "plan": "p", "features": ["sso"], "duration": "30d", "max_machines": 1}))
        .await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = isolated(&s, dir_a.path(), &token, "vault-a", &clock);
    assert_eq!(a.verdict().state, VerdictState::Unverified);

    // The request: short, checksummed, naming neither the token nor the
    // fingerprint in clear.
    let request = a.offline_request().unwrap();
    let code = request.lines().last().unwrap();
    assert!(code.starts_with("TSRQ1-") && code.len() <= 200, "{code}");
    assert!(!request.contains(&token) && !request.contains("vault-a"));
    let decoded = OfflineRequest::decode(&request).unwrap();
    assert_eq!(decoded.app_version.as_deref(), Some("5.2.0"));
    // A misread character is refused before anything is signed.
    let mut misread = code.to_owned();
    let last = misread.pop().unwrap();
    misread.push(if last == 'A' { 'B' } else { 'A' });
    let (status, v) = respond(&s, &misread, "365d").await;
    assert_eq!(status, 400, "{v}");

    // The vendor answers it (read over the phone: lower case, spaces).
    let spoken = code.to_lowercase().replace('-', " ");
    let (status, response) = respond(&s, &spoken, "365d").await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["status"], "active");
    assert!(response["machine"].as_str().unwrap().starts_with("mch_"));
    let v = a.import_offline(&bytes(&response)).await.unwrap();
    assert_eq!(v.state, VerdictState::Valid);
    assert!(a.has_feature("sso"));
    let fresh = v.license.as_ref().unwrap().fresh_until;
    assert!(
        fresh > Utc::now() + Duration::days(360),
        "lives its ttl: {fresh}"
    );
    // It counts against max_machines like an online activation.
    let (_, machines) = s
        .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
        .await;
    assert_eq!(machines["active"], 1, "{machines}");

    // The same response on another machine: fingerprint_mismatch.
    let b = isolated(&s, dir_b.path(), &token, "vault-b", &clock);
    let e = b.import_offline(&bytes(&response)).await.unwrap_err();
    assert!(
        matches!(&e, Error::Verification(p) if p.code() == "fingerprint_mismatch"),
        "{e}"
    );
    assert_eq!(b.verdict().state, VerdictState::Unverified);
    // Its own request is refused a place: one machine only.
    let (_, refused) = respond(&s, &b.offline_request().unwrap(), "365d").await;
    assert_eq!(refused["status"], "too_many_machines", "{refused}");
    let v = b.import_offline(&bytes(&refused)).await.unwrap();
    assert_eq!(v.state, VerdictState::TooManyMachines);

    // A response to another request's nonce (one this machine never made).
    let mut forged = OfflineRequest::decode(&a.offline_request().unwrap()).unwrap();
    forged.nonce = "00000000000000000000".into();
    let (_, other) = respond(&s, &forged.encode().unwrap(), "365d").await;
    let e = a.import_offline(&bytes(&other)).await.unwrap_err();
    assert!(
        matches!(&e, Error::Verification(p) if p.code() == "nonce_mismatch"),
        "{e}"
    );

    // Renewal by file: the license extended, answered again, taken with no
    // restart; the older response is then refused by the rollback rule.
    s.extend(&id, json!({"by": "30d"})).await;
    let (_, renewal) = respond(&s, &request, "365d").await;
    let v = a.import_offline(&bytes(&renewal)).await.unwrap();
    assert_eq!(v.license.as_ref().unwrap().revision, 2);
    let e = a.import_offline(&bytes(&response)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rollback {
                held_rev: 2,
                new_rev: 1
            }
        ),
        "{e}"
    );

    // A restart from disk keeps it; the nonces survive for later renewals.
    a.shutdown();
    drop(a);
    let a = isolated(&s, dir_a.path(), &token, "vault-a", &clock);
    assert_eq!(a.verdict().state, VerdictState::Valid);
    assert_eq!(a.verdict().license.as_ref().unwrap().revision, 2);

    // Setting the clock back does not bring anything back: a day back is
    // past the tolerance, and the verdict says so.
    clock.set(Utc::now() - Duration::days(1));
    let a2 = isolated(&s, dir_a.path(), &token, "vault-a", &clock);
    assert_eq!(a2.verdict().reason, Some(UnverifiedReason::ClockTampered));
    assert!(!a2.has_feature("sso"));
}

#[tokio::test]
async fn the_vendor_is_told_what_cannot_be_answered() {
    let s = TestServer::start().await;
    let (id, token) = s
        .issue(json!({"customer": "Plant", "plan": "p", "duration": "30d", "max_machines": 3, "machine_mode": "floating"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let c = isolated(&s, dir.path(), &token, "line-1", &clock);
    let request = c.offline_request().unwrap();
    let (status, v) = respond(&s, &request, "365d").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("offline_floating")),
        "{v}"
    );
    let (status, v) = respond(&s, "TSRQ1-00000", "365d").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = respond(&s, &request, "900d").await;
    assert_eq!(status, 422, "{v}");
    let _ = id;
    let dir = tempfile::tempdir().unwrap();
    let (revoked_id, revoked_token) = s
        .issue(json!({"customer": "Y", "plan": "p", "duration": "1d"}))
        .await;
    s.act(&revoked_id, "revoke").await;
    let c = isolated(&s, dir.path(), &revoked_token, "y", &clock);
    let (status, v) = respond(&s, &c.offline_request().unwrap(), "30d").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("license_revoked")),
        "{v}"
    );
}
