//! Trials from the SDK (docs/PROTOCOL.md §23): with no token the client
//! starts this machine's trial by itself; a reinstall gets the same trial;
//! activating a paid token ends the trial.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use serde_json::json;
use tessera_client::clock::ManualClock;
use tessera_client::{Client, Error};
use tessera_testkit::{Options, TestServer};

fn without_token(
    s: &TestServer,
    clock: &Arc<ManualClock>,
    dir: &std::path::Path,
) -> tessera_client::Builder {
    common::builder(&s.url, s.public_key.clone(), dir, clock.clone())
        .tick(StdDuration::from_millis(20))
}

#[tokio::test]
async fn a_product_without_a_token_starts_its_trial_and_a_reinstall_gets_it_back() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let (status, p) = s
        .admin_post(
            "/v1/admin/policies",
            json!({"name": "eval", "trial": true, "duration": "14d", "features": ["sso"]}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let first_dir = tempfile::tempdir().unwrap();
    let first = without_token(&s, &clock, first_dir.path())
        .trial("eval")
        .start()
        .unwrap();
    let v = common::until(&first, "the trial", |v| v.is_valid()).await;
    let license = v.license.as_ref().unwrap();
    assert_eq!(license.status, tessera_protocol::Status::Trial);
    assert!(first.has_feature("sso"));
    let trial_id = license.id.clone().unwrap();
    let ends = license.expires_at;
    drop(first);

    // Reinstalled (its state gone) a day later: the same trial, same end.
    clock.advance(chrono::Duration::days(1));
    let second_dir = tempfile::tempdir().unwrap();
    let second: Client = without_token(&s, &clock, second_dir.path())
        .trial("eval")
        .start()
        .unwrap();
    let v = common::until(&second, "the same trial", |v| v.is_valid()).await;
    let license = v.license.as_ref().unwrap();
    assert_eq!(
        (license.id.clone().unwrap(), license.expires_at),
        (trial_id.clone(), ends)
    );

    // Bought: the paid token replaces the trial, which ends.
    let (_, paid) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "365d", "features": ["sso"]}))
        .await;
    let v = second.activate(&paid).await.unwrap();
    assert_eq!(
        v.license.as_ref().unwrap().status,
        tessera_protocol::Status::Active
    );
    let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{trial_id}")).await;
    assert_eq!(view["state"], "revoked", "{view}");

    // A policy that is not a trial policy is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let c = without_token(&s, &clock, dir.path()).start().unwrap();
    let err = c.start_trial("default", None).await.unwrap_err();
    assert!(
        matches!(&err, Error::HttpStatus { status: 422, message, .. } if message.contains("not_a_trial_policy")),
        "{err}"
    );
}
