//! `tessera keys --keygen` prints what a Keygen SDK needs: the account id
//! and the hex Ed25519 key its answers verify with (docs/KEYGEN.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::Digest;

mod common;

use common::Workdir;

#[tokio::test]
async fn keys_keygen_prints_the_account_and_the_key_keygen_answers_verify_with() {
    let (w, server) = Workdir::with_server();
    let out = w.tessera(&server, &["keys", "--keygen", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings: Value = serde_json::from_slice(&out.stdout).unwrap();
    let account = settings["account"].as_str().unwrap();
    let hex = settings["public_key"].as_str().unwrap();
    assert_eq!(hex.len(), 64, "{settings}");
    let text = w.tessera(&server, &["keys", "--keygen"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(account));

    let (_, key) = server.issue_for("Acme", "30d").await;
    let url = format!(
        "{}/v1/accounts/{account}/licenses/actions/validate-key",
        server.url()
    );
    let path = format!("/v1/accounts/{account}/licenses/actions/validate-key");
    let res = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/vnd.api+json")
        .body(json!({"meta": {"key": key}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let header = |n: &str| res.headers()[n].to_str().unwrap().to_owned();
    let (date, digest, signature) = (header("date"), header("digest"), header("keygen-signature"));
    let body = res.bytes().await.unwrap();
    assert_eq!(
        digest,
        format!("sha-256={}", BASE64.encode(sha2::Sha256::digest(&body)))
    );
    assert!(
        signature.starts_with(&format!("keyid=\"{account}\"")),
        "{signature}"
    );
    let sig = signature
        .split("signature=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let host = server.url().trim_start_matches("http://").to_owned();
    let signed =
        format!("(request-target): post {path}\nhost: {host}\ndate: {date}\ndigest: {digest}");
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let public = ed25519_compact::PublicKey::from_slice(&bytes).unwrap();
    let sig = ed25519_compact::Signature::from_slice(&BASE64.decode(sig).unwrap()).unwrap();
    public
        .verify(signed.as_bytes(), &sig)
        .expect("the printed key verifies the answer");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["meta"]["code"], "VALID");
}
