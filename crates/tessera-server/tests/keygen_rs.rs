//! The Keygen-compatible API (docs/KEYGEN.md) driven by `keygen-rs`, a
//! Keygen client nobody here wrote, against a real Tessera server, with
//! its response-signature verification on: validate a key, activate a
//! machine, validate with a fingerprint scope, heartbeat, deactivate, an
//! imported Keygen key, a suspension made in Tessera, and answers altered
//! on the way refused.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use keygen_rs::config::KeygenConfig;
use keygen_rs::errors::Error as KeygenError;
use keygen_rs::license::{License, LicenseValidationRequest, LicenseValidationScope};
use serde_json::json;
use tessera_testkit::TestServer;

fn config(s: &TestServer, url: &str, key: &str) -> KeygenConfig {
    KeygenConfig {
        api_url: url.to_owned(),
        account: tessera_server::keygen::account_id(&s.public_key),
        product: "default".to_owned(),
        license_key: Some(key.to_owned()),
        public_key: Some(hex(s.public_key.raw_bytes())),
        verify_keygen_signature: Some(true),
        ..KeygenConfig::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint_scope(fingerprint: &str) -> LicenseValidationRequest {
    LicenseValidationRequest::for_fingerprint(fingerprint.to_owned())
}

#[tokio::test]
async fn keygen_rs_validates_activates_beats_and_deactivates() {
    let s = TestServer::start().await;
    let (id, key) = s
        .issue(
            json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": ["sso"],
                      "max_machines": 2, "machine_mode": "floating", "lease_ttl": "10m"}),
        )
        .await;
    let cfg = config(&s, &s.url, &key);

    // Validate the key: keygen-rs verifies the signature of every answer.
    let result = keygen_rs::validate_with_config(cfg.clone(), &LicenseValidationRequest::default())
        .await
        .expect("validate-key");
    assert_eq!(
        result.meta.code, "NO_MACHINES",
        "floating, nothing activated: {:?}",
        result.meta
    );
    assert!(!result.meta.valid);
    let license = result.license.expect("the license resource");
    assert_eq!(license.id, id);
    assert_eq!(license.key, key);
    assert_eq!(license.floating, Some(true));
    assert_eq!(license.max_machines, Some(2));

    // Activate; until its first heartbeat the machine has not started.
    let machine = license
        .activate("host-a-fingerprint", &[])
        .await
        .expect("activate");
    assert_eq!(machine.fingerprint, "host-a-fingerprint");
    assert_eq!(machine.heartbeat_status, "NOT_STARTED");
    assert!(machine.require_heartbeat);
    let v = license
        .validate_key(&fingerprint_scope("host-a-fingerprint"))
        .await
        .unwrap();
    assert_eq!(
        (v.meta.valid, v.meta.code.as_str()),
        (false, "HEARTBEAT_NOT_STARTED")
    );

    // Heartbeat: valid for that fingerprint, not for another.
    let beat = machine.ping().await.expect("ping");
    assert_eq!(beat.heartbeat_status, "ALIVE");
    let v = license
        .validate_key(&fingerprint_scope("host-a-fingerprint"))
        .await
        .unwrap();
    assert_eq!(
        (v.meta.valid, v.meta.code.as_str()),
        (true, "VALID"),
        "{:?}",
        v.meta
    );
    let v = license
        .validate_key(&fingerprint_scope("host-b"))
        .await
        .unwrap();
    assert_eq!(v.meta.code, "FINGERPRINT_SCOPE_MISMATCH");
    // Validation by id, authenticated by the key, and the machine read back.
    let v = license
        .validate(&fingerprint_scope("host-a-fingerprint"))
        .await
        .unwrap();
    assert_eq!(v.meta.code, "VALID");
    let read = license.machine(&machine.id).await.expect("machine");
    assert_eq!(
        (read.id.as_str(), read.heartbeat_status.as_str()),
        (machine.id.as_str(), "ALIVE")
    );
    // The same fingerprint twice: Keygen's refusal.
    match license.activate("host-a-fingerprint", &[]).await {
        Err(KeygenError::Api(doc)) => {
            assert_eq!(
                doc.primary().and_then(|e| e.code()),
                Some("FINGERPRINT_TAKEN")
            );
        }
        other => panic!("expected FINGERPRINT_TAKEN, got {other:?}"),
    }
    let entitlements = license.entitlements(None).await.expect("entitlements");
    assert_eq!(
        entitlements
            .data
            .iter()
            .map(|e| e.code.as_str())
            .collect::<Vec<_>>(),
        ["sso"]
    );

    // The activation is a Tessera machine: the admin API lists it.
    let (_, list) = s
        .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
        .await;
    assert_eq!(list["items"][0]["id"], machine.id.as_str(), "{list}");

    // Deactivate: the place is given back.
    machine.deactivate().await.expect("deactivate");
    let v = license
        .validate_key(&fingerprint_scope("host-a-fingerprint"))
        .await
        .unwrap();
    assert_eq!(v.meta.code, "NO_MACHINES");
    assert!(
        license.machine(&machine.id).await.is_err(),
        "gone, as Keygen forgets it"
    );
}

#[tokio::test]
async fn an_imported_keygen_key_validates_and_a_suspension_in_tessera_is_what_keygen_rs_sees() {
    let s = TestServer::start().await;
    let key = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";
    let (status, p) = s
        .admin_post(
            "/v1/admin/licenses/import",
            json!({"import": "kg", "first_row": 1, "next_row": 2,
                   "rows": [{"row": 1, "key": key, "customer": "Acme", "plan": "pro",
                             "features": ["sso", "audit"], "expires_at": "2099-01-01"}]}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let cfg = config(&s, &s.url, key);
    let scope = |entitlements: &[&str]| {
        LicenseValidationRequest::new(LicenseValidationScope {
            entitlements: Some(entitlements.iter().map(|e| (*e).to_owned()).collect()),
            ..LicenseValidationScope::default()
        })
    };
    let license = License::from_key(key).with_config(cfg.clone());
    let v = license
        .validate_key(&scope(&["sso"]))
        .await
        .expect("validate");
    assert_eq!(
        (v.meta.valid, v.meta.code.as_str()),
        (true, "VALID"),
        "{:?}",
        v.meta
    );
    let v = license
        .validate_key(&scope(&["sso", "scim"]))
        .await
        .unwrap();
    assert_eq!(v.meta.code, "ENTITLEMENTS_MISSING");
    let id = v.license.unwrap().id;

    assert_eq!(s.act(&id, "suspend").await.0, 200);
    let v = keygen_rs::validate_with_config(cfg.clone(), &LicenseValidationRequest::default())
        .await
        .unwrap();
    assert_eq!((v.meta.valid, v.meta.code.as_str()), (false, "SUSPENDED"));
    assert_eq!(v.license.unwrap().status.as_deref(), Some("SUSPENDED"));

    let unknown = License::from_key("NO-SUCH-KEY-0000").with_config(cfg);
    let v = unknown
        .validate_key(&LicenseValidationRequest::default())
        .await
        .unwrap();
    assert_eq!((v.meta.valid, v.meta.code.as_str()), (false, "NOT_FOUND"));
    assert!(v.license.is_none());
}

/// What the proxy does to each answer on its way back.
#[derive(Clone, Copy)]
enum Tamper {
    Nothing,
    Body,
    Date,
}

/// A proxy on port 0 in front of `upstream` that forwards each request
/// (its `Host` header as the client sent it) and alters the answers.
async fn proxy(upstream: String, tamper: Tamper) -> SocketAddr {
    async fn forward(State((upstream, tamper)): State<(String, Tamper)>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let url = format!("{upstream}{}", parts.uri.path_and_query().unwrap());
        let mut out = reqwest::Client::new().request(parts.method, url).body(body);
        for (name, value) in &parts.headers {
            out = out.header(name, value);
        }
        let answer = out.send().await.unwrap();
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name == "date" && matches!(tamper, Tamper::Date) {
                response = response.header(name, "Mon, 01 Jan 2024 00:00:00 GMT");
                continue;
            }
            if name == "keygen-date" && matches!(tamper, Tamper::Date) {
                response = response.header(name, "Mon, 01 Jan 2024 00:00:00 GMT");
                continue;
            }
            response = response.header(name, value);
        }
        let mut bytes = answer.bytes().await.unwrap().to_vec();
        if matches!(tamper, Tamper::Body) {
            let text = String::from_utf8(bytes).unwrap();
            bytes = text
                .replace("\"valid\":false", "\"valid\":true ")
                .into_bytes();
        }
        response.body(Body::from(bytes)).unwrap()
    }
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((upstream, tamper));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn answers_altered_on_the_way_are_refused_by_keygen_rs() {
    let s = TestServer::start().await;
    let (id, key) = s.issue_default().await;
    assert_eq!(s.act(&id, "suspend").await.0, 200);
    // Through an honest proxy the signature holds: it covers the Host the
    // client sent (the proxy's), not the authority's own address.
    let honest = proxy(s.url.clone(), Tamper::Nothing).await;
    let v = keygen_rs::validate_with_config(
        config(&s, &format!("http://{honest}"), &key),
        &LicenseValidationRequest::default(),
    )
    .await
    .expect("an unaltered answer verifies");
    assert_eq!((v.meta.valid, v.meta.code.as_str()), (false, "SUSPENDED"));
    for tamper in [Tamper::Body, Tamper::Date] {
        let addr = proxy(s.url.clone(), tamper).await;
        let got = keygen_rs::validate_with_config(
            config(&s, &format!("http://{addr}"), &key),
            &LicenseValidationRequest::default(),
        )
        .await;
        assert!(
            matches!(got, Err(KeygenError::KeygenSignatureInvalid { .. })),
            "an altered answer must be refused: {got:?}"
        );
    }
    // A key of another authority refuses this one's answers.
    let mut other = config(&s, &s.url, &key);
    other.public_key = Some(hex(
        tessera_protocol::SigningKey::generate(&mut rand::rng())
            .public_key()
            .raw_bytes(),
    ));
    let got = keygen_rs::validate_with_config(other, &LicenseValidationRequest::default()).await;
    assert!(
        matches!(got, Err(KeygenError::KeygenSignatureInvalid { .. })),
        "{got:?}"
    );
}
