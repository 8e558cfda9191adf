//! A relay that turned hostile (its key stolen, or its owner greedy) and
//! signs whatever it likes: the instance, pinning only the authority's
//! key, refuses each attack with its reason and keeps what it held.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use chrono::Duration;
use common::{create_site, relay_dir};
use serde_json::json;
use tessera_client::Client;
use tessera_client::clock::{Clock, ManualClock};
use tessera_protocol::bundle::sign_relayed;
use tessera_protocol::wire::{MachineMode, ValidateRequest, ValidateResponse};
use tessera_protocol::{LicenseToken, MachineClaim, SigningKey, Status, StatusClaims};
use tessera_testkit::TestServer;

/// What the hostile relay signs: claims (the request's nonce and instance
/// echoed) and the bundle it carries.
type Script = Arc<Mutex<Option<(StatusClaims, String)>>>;

/// A "relay" answering every validation as the test scripts it, signing
/// with the stolen key.
async fn hostile_relay(script: Script, key: Arc<SigningKey>) -> String {
    let app = Router::new().route(
        "/v1/validate",
        post(move |body: axum::body::Bytes| {
            let script = script.lock().unwrap().clone();
            let key = key.clone();
            async move {
                let req: ValidateRequest = serde_json::from_slice(&body).unwrap();
                let (mut claims, bundle) = script.expect("scripted");
                claims.nonce = req.nonce;
                claims.iid = req.instance_id;
                let document = sign_relayed(&claims, &key, &bundle).unwrap();
                axum::Json(ValidateResponse {
                    document,
                    verdict: claims,
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_hostile_relay_cannot_grant_more_than_its_bundle() {
    let s = TestServer::start().await;
    let (id, token) = s
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "90d",
                      "max_machines": 20, "machine_mode": "floating"}),
        )
        .await;
    let (dir, relay_key) = relay_dir();
    let file: serde_json::Value = serde_json::from_str(
        &create_site(
            &s,
            "plant-7",
            &relay_key,
            json!([{"license": id, "max_machines": 20}]),
        )
        .await,
    )
    .unwrap();
    let bundle_text = file["bundle"].as_str().unwrap().to_owned();
    // The thief holds the relay's key.
    let stolen_text = std::fs::read_to_string(tessera_relay::key_path(dir.path())).unwrap();
    let stolen = SigningKey::from_paserk(stolen_text.trim()).unwrap();
    let tfp = LicenseToken::parse(&token).unwrap().fingerprint();
    let clock = Arc::new(ManualClock::new(s.now()));
    let honest = |used: u32| {
        let now = clock.now();
        StatusClaims {
            lic: Some(id.clone()),
            mfp: Some(tessera_protocol::wire::machine_fingerprint_hash("host-x")),
            machine: Some(MachineClaim {
                id: Some("mch_x".into()),
                activated_at: Some(now),
                mode: MachineMode::Floating,
                used,
                max: Some(20),
                lease_ttl: Some(900),
                lease_expires_at: Some(now + Duration::minutes(15)),
            }),
            features: vec!["sso".into()],
            customer: Some("Plant 7".into()),
            plan: Some("ent".into()),
            max_users: None,
            expires_at: Some(now + Duration::days(60)),
            exp: now + Duration::minutes(15),
            ..StatusClaims::sample(tfp.clone(), now)
        }
    };
    let script: Script = Arc::new(Mutex::new(None));
    let set = |claims: StatusClaims, bundle: &str| {
        *script.lock().unwrap() = Some((claims, bundle.to_owned()));
    };
    let url = hostile_relay(
        script.clone(),
        Arc::new(SigningKey::from_paserk(stolen_text.trim()).unwrap()),
    )
    .await;
    let idir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .server(&url)
        .public_key(s.public_key.clone())
        .state_dir(idir.path())
        .clock(clock.clone())
        .fingerprint("host-x")
        .watch(tessera_client::Watching::Off)
        .token(&token)
        .start()
        .unwrap();

    // The honest answer (the 20th seat of 20) is taken.
    set(honest(20), &bundle_text);
    let v = client.refresh().await.unwrap();
    assert!(v.is_valid(), "{v:#?}");

    let refused = |why: &'static str| {
        let client = &client;
        async move {
            let before = client.document();
            let e = client.refresh().await.unwrap_err();
            assert!(e.to_string().contains(why), "{e} (wanted: {why})");
            assert_eq!(client.document(), before, "the held document changed");
            assert!(client.is_valid());
        }
    };
    // The 21st seat of 20.
    clock.advance(Duration::seconds(2));
    set(honest(21), &bundle_text);
    refused("more than the bundle's 20 machines").await;
    // A feature the bundle does not grant.
    let mut extra = honest(5);
    extra.features.push("audit".into());
    set(extra, &bundle_text);
    refused("which the bundle does not").await;
    // A later end than the license's.
    let mut longer = honest(5);
    longer.expires_at = Some(clock.now() + Duration::days(900));
    set(longer, &bundle_text);
    refused("past the bundle's end").await;
    // An edited bundle (20 seats made 200 by changing its text).
    let mut edited = bundle_text.clone().into_bytes();
    let at = edited.len() / 2;
    edited[at] = if edited[at] == b'x' { b'y' } else { b'x' };
    set(honest(5), std::str::from_utf8(&edited).unwrap());
    let e = client.refresh().await.unwrap_err();
    assert!(
        e.to_string().contains("signature") || e.to_string().contains("bundle"),
        "{e}"
    );
    // A bundle the relay signed for itself.
    let mut own =
        tessera_protocol::bundle::verify_bundle(&bundle_text, &s.keys(), clock.now()).unwrap();
    own.licenses[0].max_machines = Some(200);
    let self_signed = tessera_protocol::bundle::sign_bundle(&own, &stolen).unwrap();
    set(honest(5), &self_signed);
    let e = client.refresh().await.unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");
    // The stolen key after its bundle's end (30 days): dead.
    clock.advance(Duration::days(31));
    let late = honest(5);
    set(late, &bundle_text);
    let e = client.refresh().await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // And a revocation at the relay it cannot hide forever: nothing it
    // signs outlives its bundle, so the instance goes stale offline.
    assert_ne!(
        client.verdict().license.as_ref().unwrap().status,
        Status::Revoked
    );
    client.shutdown();
}
