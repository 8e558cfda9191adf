//! A client configured for a product refuses licenses of another
//! (docs/PROTOCOL.md §28): online, and from an offline license file.

mod common;

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use tessera_client::clock::ManualClock;
use tessera_client::{Client, Error, VerdictState};
use tessera_testkit::{Options, TestServer};

#[tokio::test]
async fn a_client_of_another_product_refuses_the_license_online_and_offline() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let (status, v) = s
        .admin_post("/v1/admin/products", json!({"name": "metabase-ee"}))
        .await;
    assert_eq!(status, 201, "{v}");
    let (id, token) = s
        .issue(json!({"customer": "A", "plan": "p", "features": ["sso"], "duration": "30d", "product": "metabase-ee"}))
        .await;

    let client = |product: &str, dir: &std::path::Path| {
        common::polling(&s.url, s.public_key.clone(), dir, clock.clone())
            .token(&token)
            .product(product)
            .start()
            .unwrap()
    };
    let (right_dir, wrong_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let right = client("metabase-ee", right_dir.path());
    right.refresh().await.unwrap();
    assert!(right.has_feature("sso"));

    let wrong = client("metabase", wrong_dir.path());
    match wrong.refresh().await {
        Err(Error::Verification(e)) => assert_eq!(e.code(), "wrong_product", "{e}"),
        other => panic!("another product's license was taken: {other:?}"),
    }
    let verdict = wrong.verdict();
    assert!(!wrong.has_feature("sso"));
    assert_ne!(verdict.state, VerdictState::Valid);
    let last = verdict
        .last_error
        .as_ref()
        .expect("the refusal is recorded");
    assert!(last.message.contains("metabase-ee"), "{}", last.message);

    // Offline: the license file of another product is refused the same way.
    let (status, file) = s
        .admin_post(
            &format!("/v1/admin/licenses/{id}/export"),
            json!({"ttl": "30d"}),
        )
        .await;
    assert_eq!(status, 200, "{file}");
    let isolated_dir = tempfile::tempdir().unwrap();
    let isolated = Client::builder()
        .public_key(s.public_key.clone())
        .state_dir(isolated_dir.path())
        .token(&token)
        .product("metabase")
        .clock(clock.clone())
        .start()
        .unwrap();
    match isolated
        .import_offline(&serde_json::to_vec(&file).unwrap())
        .await
    {
        Err(Error::Verification(e)) => assert_eq!(e.code(), "wrong_product", "{e}"),
        other => panic!("another product's offline license was taken: {other:?}"),
    }
    assert!(!isolated.has_feature("sso"));
}
