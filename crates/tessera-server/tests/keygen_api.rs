//! The Keygen-compatible API by hand (docs/KEYGEN.md): each endpoint's
//! JSON:API shape as Keygen's API reference and serializers name its
//! fields, under both URL forms; every answer (errors included) signed as
//! Keygen signs, over the `Host` the client sent; malformed documents,
//! unknown scopes, wrong content types and credentials answered with
//! Keygen's error document; and a bounded fuzz run over every route with no
//! 5xx.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::{RngExt, SeedableRng};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::Digest;
use tessera_testkit::{TestServer, backend_tests};

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request as a Keygen client sends it; `host` overrides the Host header.
async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    license: Option<&str>,
    host: Option<&str>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", s.url))
        .header("accept", "application/vnd.api+json");
    if let Some((content_type, bytes)) = body {
        req = req.header("content-type", content_type).body(bytes);
    }
    if let Some(key) = license {
        req = req.header("authorization", format!("License {key}"));
    }
    let host = host.map_or_else(
        || s.url.trim_start_matches("http://").to_owned(),
        str::to_owned,
    );
    req = req.header("host", &host);
    let res = req.send().await.unwrap();
    let answer = Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.bytes().await.unwrap().to_vec(),
    };
    verify(s, method.as_str(), path, &host, &answer);
    answer
}

async fn post(s: &TestServer, path: &str, doc: Value, license: Option<&str>) -> Answer {
    let body = Some(("application/vnd.api+json", doc.to_string().into_bytes()));
    call(s, "POST", path, body, license, None).await
}

/// Keygen's signature check, as its SDKs do it.
fn verify(s: &TestServer, method: &str, path: &str, host: &str, a: &Answer) {
    let header = |name: &str| {
        a.headers
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing on {method} {path} ({})", a.status))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let digest = format!("sha-256={}", BASE64.encode(sha2::Sha256::digest(&a.body)));
    assert_eq!(header("digest"), digest);
    assert_eq!(header("keygen-digest"), digest);
    let date = header("date");
    assert_eq!(header("keygen-date"), date);
    let signature = header("keygen-signature");
    let account = tessera_server::keygen::account_id(&s.public_key);
    assert!(
        signature.starts_with(&format!(
            "keyid=\"{account}\", algorithm=\"ed25519\", signature=\""
        )),
        "{signature}"
    );
    assert!(
        signature.ends_with("headers=\"(request-target) host date digest\""),
        "{signature}"
    );
    let b64 = signature
        .split("signature=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let signed = format!(
        "(request-target): {} {path}\nhost: {host}\ndate: {date}\ndigest: {digest}",
        method.to_lowercase()
    );
    let key = ed25519_compact::PublicKey::from_slice(s.public_key.raw_bytes()).unwrap();
    let sig = ed25519_compact::Signature::from_slice(&BASE64.decode(b64).unwrap()).unwrap();
    key.verify(signed.as_bytes(), &sig)
        .unwrap_or_else(|e| panic!("{method} {path} ({}): bad signature: {e}", a.status));
    if !a.body.is_empty() {
        assert_eq!(
            header("content-type"),
            "application/vnd.api+json; charset=utf-8"
        );
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

const LICENSE_ATTRIBUTES: [&str; 28] = [
    "created",
    "encrypted",
    "expiry",
    "floating",
    "key",
    "lastCheckIn",
    "lastCheckOut",
    "lastValidated",
    "maxCores",
    "maxDisk",
    "maxMachines",
    "maxMemory",
    "maxProcesses",
    "maxUsers",
    "maxUses",
    "metadata",
    "name",
    "nextCheckIn",
    "protected",
    "requireCheckIn",
    "requireHeartbeat",
    "scheme",
    "status",
    "strict",
    "suspended",
    "updated",
    "uses",
    "version",
];

fn assert_license(data: &Value, id: &str, key: &str) {
    assert_eq!(data["type"], "licenses");
    assert_eq!(data["id"], id);
    let attributes = &data["attributes"];
    for k in LICENSE_ATTRIBUTES {
        assert!(
            attributes.get(k).is_some(),
            "license attribute {k} missing: {attributes}"
        );
    }
    assert_eq!(attributes["key"], key);
    for r in [
        "account",
        "product",
        "policy",
        "group",
        "owner",
        "users",
        "machines",
        "entitlements",
    ] {
        assert!(data["relationships"].get(r).is_some(), "relationship {r}");
    }
    assert!(data["relationships"]["account"]["data"]["id"].is_string());
    assert!(
        data["links"]["self"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/licenses/{id}"))
    );
}

/// `meta` of `validate-key` for `key` with `scope` (which must answer 200).
async fn validation(s: &TestServer, key: &str, scope: Value) -> Value {
    let doc = json!({"meta": {"key": key, "scope": scope}});
    let a = post(s, "/v1/licenses/actions/validate-key", doc, None).await;
    assert_eq!(a.status, 200, "{}", a.json());
    a.json()["meta"].clone()
}

fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    let doc = a.json();
    let e = &doc["errors"][0];
    assert_eq!(e["code"], code, "{doc}");
    assert!(e["title"].is_string() && e["detail"].is_string(), "{doc}");
}

backend_tests! {
    async fn every_endpoint_answers_keygens_shapes(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let account = tessera_server::keygen::account_id(&s.public_key);
        let (id, key) = s
            .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": ["sso", "audit"],
                          "max_machines": 1}))
            .await;
        for prefix in ["/v1".to_owned(), format!("/v1/accounts/{account}")] {
            // validate-key: meta and the license resource.
            let a = post(&s, &format!("{prefix}/licenses/actions/validate-key"),
                json!({"meta": {"key": key, "nonce": 42, "scope": {"product": "default"}}}), None).await;
            assert_eq!(a.status, 200);
            let doc = a.json();
            assert_eq!(keys(&doc["meta"]), ["code", "detail", "nonce", "scope", "ts", "valid"]);
            assert_eq!((doc["meta"]["code"].as_str(), doc["meta"]["valid"].as_bool()), (Some("NO_MACHINE"), Some(false)));
            assert_eq!(doc["meta"]["nonce"], 42);
            assert_eq!(doc["meta"]["scope"], json!({"product": "default"}));
            assert_license(&doc["data"], &id, &key);
            assert_eq!(doc["data"]["attributes"]["status"], "ACTIVE");
            assert_eq!(doc["data"]["attributes"]["maxMachines"], 1);

            // An unknown key: 200, NOT_FOUND, no data.
            let a = post(&s, &format!("{prefix}/licenses/actions/validate-key"),
                json!({"meta": {"key": "NOPE-NOPE-NOPE"}}), None).await;
            assert_eq!(a.status, 200);
            let doc = a.json();
            assert_eq!((doc["meta"]["code"].as_str(), doc["data"].is_null()), (Some("NOT_FOUND"), true));
            assert!(doc["meta"].get("scope").is_none(), "no scope sent, none echoed");

            // me.
            let a = call(&s, "GET", &format!("{prefix}/me"), None, Some(&key), None).await;
            assert_eq!(a.status, 200);
            assert_license(&a.json()["data"], &id, &key);

            // Entitlements.
            let a = call(&s, "GET", &format!("{prefix}/licenses/{id}/entitlements"), None, Some(&key), None).await;
            assert_eq!(a.status, 200);
            let doc = a.json();
            let codes: Vec<&str> = doc["data"].as_array().unwrap().iter().map(|e| e["attributes"]["code"].as_str().unwrap()).collect();
            assert_eq!(codes, ["audit", "sso"]);
            assert_eq!(keys(&doc["data"][0]["attributes"]), ["code", "created", "metadata", "name", "updated"]);
            assert_eq!(doc["data"][0]["type"], "entitlements");

            // Activate, read, ping, validate by id, deactivate.
            let a = post(&s, &format!("{prefix}/machines"), json!({"data": {"type": "machines",
                "attributes": {"fingerprint": "fp-1", "hostname": "box", "platform": "linux", "cores": 8},
                "relationships": {"license": {"data": {"type": "licenses", "id": id}}}}}), Some(&key)).await;
            assert_eq!(a.status, 201, "{}", a.json());
            let machine = a.json()["data"].clone();
            assert_eq!(machine["type"], "machines");
            for k in ["fingerprint", "cores", "ip", "hostname", "platform", "name", "requireHeartbeat",
                      "heartbeatStatus", "heartbeatDuration", "lastHeartbeat", "nextHeartbeat", "metadata", "created", "updated"] {
                assert!(machine["attributes"].get(k).is_some(), "machine attribute {k}: {machine}");
            }
            assert_eq!(machine["attributes"]["fingerprint"], "fp-1");
            assert_eq!(machine["attributes"]["hostname"], "box");
            assert_eq!(machine["relationships"]["license"]["data"]["id"], id.as_str());
            let mid = machine["id"].as_str().unwrap().to_owned();
            assert_error(&post(&s, &format!("{prefix}/machines"), json!({"data": {"type": "machines",
                "attributes": {"fingerprint": "fp-2"}}}), Some(&key)).await, 422, "MACHINE_LIMIT_EXCEEDED");
            let a = call(&s, "GET", &format!("{prefix}/machines/{mid}"), None, Some(&key), None).await;
            assert_eq!((a.status, a.json()["data"]["id"].as_str()), (200, Some(mid.as_str())));
            let a = call(&s, "POST", &format!("{prefix}/machines/{mid}/actions/ping"), None, Some(&key), None).await;
            assert_eq!((a.status, a.json()["data"]["attributes"]["heartbeatStatus"].as_str()), (200, Some("ALIVE")));
            let a = post(&s, &format!("{prefix}/licenses/{id}/actions/validate"),
                json!({"meta": {"scope": {"fingerprint": "fp-1"}}}), Some(&key)).await;
            assert_eq!((a.status, a.json()["meta"]["code"].as_str()), (200, Some("VALID")), "{}", a.json());
            let a = call(&s, "POST", &format!("{prefix}/licenses/{id}/actions/validate"), None, Some(&key), None).await;
            assert_eq!(a.json()["meta"]["code"], "FINGERPRINT_SCOPE_REQUIRED", "no scope, a license counting machines");
            let a = call(&s, "DELETE", &format!("{prefix}/machines/{mid}"), None, Some(&key), None).await;
            assert_eq!((a.status, a.body.len()), (204, 0));
            assert_error(&call(&s, "GET", &format!("{prefix}/machines/{mid}"), None, Some(&key), None).await, 404, "MACHINE_NOT_FOUND");
        }
        // The Keygen validations were sightings, named as Keygen's.
        let fleet = s.fleet(&id).await;
        let keygen: Vec<&Value> = fleet["instances"].as_array().unwrap().iter().filter(|i| i["keygen_api"] == true).collect();
        assert!(!keygen.is_empty(), "{fleet}");
        assert!(keygen.iter().all(|i| i["instance_id"].as_str().unwrap().starts_with("keygen.")), "{fleet}");
    }
}

#[tokio::test]
async fn the_signature_covers_the_host_the_client_sent() {
    let s = TestServer::start().await;
    let (_, key) = s.issue_default().await;
    let doc = json!({"meta": {"key": key}}).to_string().into_bytes();
    let body = Some(("application/vnd.api+json", doc));
    // `call` verifies over the Host given; a proxy or custom domain in
    // front of the authority is what the client names.
    let a = call(
        &s,
        "POST",
        "/v1/licenses/actions/validate-key?x=1",
        body,
        None,
        Some("licensing.example.com"),
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn bad_requests_get_keygens_error_document() {
    let s = TestServer::start().await;
    let (id, key) = s.issue_default().await;
    let validate = "/v1/licenses/actions/validate-key";
    let raw = |t: &str, b: &str| Some((t.to_owned(), b.as_bytes().to_vec()));
    for (content_type, body, status, code) in [
        (
            "application/vnd.api+json",
            "{\"meta\": ",
            400,
            "PARAMETER_INVALID",
        ),
        ("application/vnd.api+json", "[]", 400, "PARAMETER_INVALID"),
        (
            "application/vnd.api+json",
            "{\"data\": {}}",
            400,
            "PARAMETER_UNPERMITTED",
        ),
        (
            "application/vnd.api+json",
            "{\"meta\": {}}",
            400,
            "PARAMETER_INVALID",
        ),
        (
            "application/vnd.api+json",
            "{\"meta\": {\"key\": 7}}",
            400,
            "PARAMETER_INVALID",
        ),
        (
            "application/vnd.api+json",
            &json!({"meta": {"key": key, "scope": {"galaxy": "far"}}}).to_string(),
            400,
            "PARAMETER_UNPERMITTED",
        ),
        (
            "application/vnd.api+json",
            &json!({"meta": {"key": key, "nonce": "x"}}).to_string(),
            400,
            "PARAMETER_INVALID",
        ),
        (
            "text/plain",
            &json!({"meta": {"key": key}}).to_string(),
            415,
            "CONTENT_TYPE_INVALID",
        ),
        ("application/xml", "<meta/>", 415, "CONTENT_TYPE_INVALID"),
    ] {
        let (t, b) = raw(content_type, body).unwrap();
        let a = call(&s, "POST", validate, Some((t.as_str(), b)), None, None).await;
        assert_error(&a, status, code);
    }
    let a = call(&s, "POST", validate, None, None, None).await;
    assert_error(&a, 415, "CONTENT_TYPE_INVALID");
    // Credentials.
    assert_error(
        &call(&s, "GET", "/v1/me", None, None, None).await,
        401,
        "TOKEN_MISSING",
    );
    assert_error(
        &call(&s, "GET", "/v1/me", None, Some("NOT-A-KEY"), None).await,
        401,
        "LICENSE_INVALID",
    );
    let bearer = reqwest::Client::new()
        .get(format!("{}/v1/me", s.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let doc: Value = bearer.json().await.unwrap();
    assert_eq!(doc["errors"][0]["code"], "TOKEN_INVALID");
    // Another license's id, an unknown account, a machine of nobody.
    let (other, _) = s.issue_default().await;
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/v1/licenses/{other}/entitlements"),
            None,
            Some(&key),
            None,
        )
        .await,
        404,
        "LICENSE_NOT_FOUND",
    );
    assert_error(
        &call(
            &s,
            "GET",
            "/v1/accounts/not-ours/me",
            None,
            Some(&key),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &call(&s, "GET", "/v1/machines/mch_nobody", None, Some(&key), None).await,
        404,
        "MACHINE_NOT_FOUND",
    );
    let doc = json!({"data": {"type": "users", "attributes": {"fingerprint": "x"}}});
    assert_error(
        &post(&s, "/v1/machines", doc, Some(&key)).await,
        400,
        "PARAMETER_INVALID",
    );
    let doc = json!({"data": {"type": "machines", "attributes": {"fingerprint": ""}}});
    assert_error(
        &post(&s, "/v1/machines", doc, Some(&key)).await,
        422,
        "FINGERPRINT_INVALID",
    );
    // The license id in the relationships must be the authenticated one.
    let doc = json!({"data": {"type": "machines", "attributes": {"fingerprint": "x"},
        "relationships": {"license": {"data": {"type": "licenses", "id": other}}}}});
    assert_error(
        &post(&s, "/v1/machines", doc, Some(&key)).await,
        404,
        "LICENSE_NOT_FOUND",
    );
    assert_error(
        &call(
            &s,
            "GET",
            &format!("/v1/licenses/{id}/entitlements"),
            None,
            Some("NOPE-KEY-1"),
            None,
        )
        .await,
        401,
        "LICENSE_INVALID",
    );
}

/// A bounded fuzz run: random and mutated documents to every route, with
/// and without the license's key; never a 5xx, always a signed answer and,
/// for errors, Keygen's error document.
#[tokio::test]
async fn fuzzed_documents_never_break_the_keygen_routes() {
    let s = TestServer::start().await;
    let (id, key) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "max_machines": 3}))
        .await;
    let runs: usize = std::env::var("TESSERA_KEYGEN_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b65_7967_656e);
    let seeds = [
        json!({"meta": {"key": key, "scope": {"fingerprint": "f", "entitlements": ["a"]}}}),
        json!({"meta": {"scope": {"fingerprints": ["a", "b"], "machine": "mch_x", "policy": "p"}}}),
        json!({"data": {"type": "machines", "attributes": {"fingerprint": "fz", "hostname": "h"}}}),
    ];
    let routes = [
        ("POST", "/v1/licenses/actions/validate-key".to_owned()),
        ("POST", format!("/v1/licenses/{id}/actions/validate")),
        ("GET", "/v1/me".to_owned()),
        ("POST", "/v1/machines".to_owned()),
        ("GET", "/v1/machines/mch_x".to_owned()),
        ("DELETE", "/v1/machines/mch_x".to_owned()),
        ("POST", "/v1/machines/mch_x/actions/ping".to_owned()),
        ("GET", format!("/v1/licenses/{id}/entitlements")),
    ];
    for n in 0..runs {
        let (method, path) = &routes[n % routes.len()];
        let mut text = seeds[rng.random_range(0..seeds.len())]
            .to_string()
            .into_bytes();
        for _ in 0..rng.random_range(0..4) {
            match rng.random_range(0..3) {
                0 if !text.is_empty() => {
                    let i = rng.random_range(0..text.len());
                    text[i] = rng.random();
                }
                1 if !text.is_empty() => {
                    let i = rng.random_range(0..text.len());
                    text.truncate(i);
                }
                _ => text.extend_from_slice(b"\"\\u0000{[,"),
            }
        }
        let license = rng.random_bool(0.7).then_some(key.as_str());
        let a = call(
            &s,
            method,
            path,
            Some(("application/vnd.api+json", text)),
            license,
            None,
        )
        .await;
        assert!(
            a.status < 500,
            "{method} {path}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        if a.status >= 400 {
            assert!(
                a.json()["errors"][0]["code"].is_string(),
                "{method} {path}: {}",
                String::from_utf8_lossy(&a.body)
            );
        }
    }
}

#[tokio::test]
async fn a_lease_run_out_is_a_dead_heartbeat() {
    let s = TestServer::start().await;
    let (_, key) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d",
                      "max_machines": 2, "machine_mode": "floating", "lease_ttl": "10s"}))
        .await;
    let doc = json!({"data": {"type": "machines", "attributes": {"fingerprint": "fp-dead"}}});
    let a = post(&s, "/v1/machines", doc, Some(&key)).await;
    assert_eq!(a.status, 201, "{}", a.json());
    let machine = a.json()["data"].clone();
    assert_eq!(machine["attributes"]["heartbeatStatus"], "NOT_STARTED");
    assert_eq!(machine["attributes"]["heartbeatDuration"], 10);
    let mid = machine["id"].as_str().unwrap();
    let scope = json!({"fingerprint": "fp-dead"});
    let ping_path = format!("/v1/machines/{mid}/actions/ping");
    let ping = async || call(&s, "POST", &ping_path, None, Some(&key), None).await;
    assert_eq!(
        validation(&s, &key, scope.clone()).await["code"],
        "HEARTBEAT_NOT_STARTED"
    );
    let a = ping().await;
    assert_eq!(a.status, 200);
    assert_eq!(validation(&s, &key, scope.clone()).await["code"], "VALID");
    // No heartbeat for longer than the lease: dead.
    s.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(
        validation(&s, &key, scope.clone()).await["code"],
        "HEARTBEAT_DEAD"
    );
    let a = ping().await;
    assert_error(&a, 422, "MACHINE_HEARTBEAT_DEAD");
}

#[tokio::test]
async fn expiry_answers_by_the_policy_and_the_product_scope_is_checked() {
    let s = TestServer::start().await;
    for (name, rule) in [("keep", "keep_access"), ("lose", "lose_access")] {
        let policy = json!({"name": name, "duration": "30d", "on_expiry": rule});
        assert_eq!(s.admin_post("/v1/admin/policies", policy).await.0, 201);
    }
    let issue = |policy: &str| json!({"customer": "Acme", "plan": "p", "policy": policy, "duration": "1d", "max_machines": 2});
    let (_, keep) = s.issue(issue("keep")).await;
    let (_, lose) = s.issue(issue("lose")).await;
    let m = validation(&s, &keep, json!({"product": "other"})).await;
    assert_eq!(
        (&m["code"], &m["valid"]),
        (&json!("PRODUCT_SCOPE_MISMATCH"), &json!(false))
    );
    let m = validation(&s, &keep, json!({"policy": "lose"})).await;
    assert_eq!(m["code"], "POLICY_SCOPE_MISMATCH");
    s.clock.advance(chrono::Duration::days(2));
    let activate = |key: &str| json!({"data": {"type": "machines", "attributes": {"fingerprint": format!("fp-{}", &key[..8])}}});
    // Kept past expiry: it activates, and validates EXPIRED, valid.
    let a = post(&s, "/v1/machines", activate(&keep), Some(&keep)).await;
    assert_eq!(a.status, 201, "{}", a.json());
    let m = validation(
        &s,
        &keep,
        json!({"fingerprint": format!("fp-{}", &keep[..8])}),
    )
    .await;
    assert_eq!(
        (&m["code"], &m["valid"]),
        (&json!("EXPIRED"), &json!(true)),
        "{m}"
    );
    // Lost at expiry: EXPIRED, not valid, before any scope; no activation.
    let m = validation(&s, &lose, json!({"product": "other"})).await;
    assert_eq!(
        (&m["code"], &m["valid"]),
        (&json!("EXPIRED"), &json!(false)),
        "{m}"
    );
    assert_error(
        &post(&s, "/v1/machines", activate(&lose), Some(&lose)).await,
        403,
        "LICENSE_EXPIRED",
    );
    let a = call(&s, "GET", "/v1/me", None, Some(&lose), None).await;
    assert_eq!(a.json()["data"]["attributes"]["status"], "EXPIRED");
}

#[tokio::test]
async fn the_console_marks_installations_on_the_keygen_api() {
    let s = TestServer::start().await;
    let (id, key) = s.issue_default().await;
    let (status, _) = s
        .validate(json!({"token": key, "instance_id": "moved-to-tessera"}))
        .await;
    assert_eq!(status, 200);
    let doc = json!({"meta": {"key": key, "scope": {"fingerprint": "old-install"}}});
    assert_eq!(
        post(&s, "/v1/licenses/actions/validate-key", doc, None)
            .await
            .status,
        200
    );
    let mut c = tessera_testkit::Browserless::new(&s);
    c.sign_in(&s.admin_key).await;
    let (_, page, _) = c.get(&format!("/licenses/{id}")).await;
    assert_eq!(
        page.matches("Keygen API</span>").count(),
        1,
        "one badge: {page}"
    );
    let row = |needle: &str| {
        let at = page
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not on the page"));
        page[at..].split("</td>").next().unwrap().to_owned()
    };
    assert!(row("keygen.").contains("Keygen API"));
    assert!(!row("moved-to-tessera").contains("Keygen API"));
}
