//! The Rust SDK replays the language-neutral conformance suite
//! (`tests/conformance/cases.json`, see its README): every case through the
//! real client — its held state written to disk, the offered document given
//! as an offline file, its clock moved step by step.
//!
//! Regenerate the file after a deliberate change with
//! `TESSERA_WRITE_FIXTURES=1 cargo test -p tessera-client --test conformance`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use serde_json::Value;
use tessera_client::clock::ManualClock;
use tessera_client::state::{DiskState, StateFile};
use tessera_client::{Client, Error, PublicKey, Timestamp, Verdict, Watching};
use tessera_protocol::LicenseToken;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/cases.json")
}

fn time(v: &Value) -> Timestamp {
    tessera_protocol::human::parse_date_or_time(v.as_str().unwrap()).unwrap()
}

#[test]
fn the_committed_suite_is_what_the_generator_makes() {
    let made = serde_json::to_string_pretty(&tessera_testkit::conformance::suite()).unwrap() + "\n";
    if std::env::var_os("TESSERA_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(path().parent().unwrap()).unwrap();
        std::fs::write(path(), &made).unwrap();
    }
    let committed = std::fs::read_to_string(path()).unwrap();
    assert_eq!(
        committed, made,
        "tests/conformance/cases.json differs from its generator"
    );
}

/// Whether `v` is the step's verdict.
fn matches(v: &Verdict, step: &Value) -> bool {
    v.state.as_str() == step["state"].as_str().unwrap()
        && v.reason.map(|r| r.as_str()) == step["reason"].as_str()
        && v.license.as_ref().map(|l| l.revision) == step["revision"].as_u64()
}

#[tokio::test]
async fn every_case_holds_for_the_rust_sdk() {
    let suite: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    assert_eq!(suite["format"], tessera_testkit::conformance::FORMAT);
    let key: PublicKey = suite["keys"][0].as_str().unwrap().parse().unwrap();
    let token = LicenseToken::parse(suite["token"].as_str().unwrap()).unwrap();
    let cases = suite["cases"].as_array().unwrap();
    assert!(cases.len() >= 25, "{}", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let state = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let held = case["held"]["document"].as_str().unwrap();
        let mut disk = DiskState::new("conformance".into());
        disk.token = Some(token.expose_secret().to_owned());
        disk.configured = Some(token.fingerprint());
        disk.document = Some(held.to_owned());
        disk.high_water_mark = case["held"]["high_water_mark"]
            .as_str()
            .map(|t| time(&Value::from(t)));
        StateFile::new(state.path()).store(&disk).unwrap();
        let first = case["offer"]["at"].as_str().map_or_else(
            || time(&case["timeline"][0]["now"]),
            |t| time(&Value::from(t)),
        );
        let clock = Arc::new(ManualClock::new(first));
        let builder = || {
            Client::builder()
                .public_key(key.clone())
                .state_dir(state.path())
                .token(token.expose_secret())
                .clock(clock.clone())
                .tick(Duration::from_millis(10))
                .watch(Watching::Off)
        };
        let start = |file: PathBuf| builder().offline_file(file).start();
        // With no offer (or a refused one), the client starts from its
        // held state alone: an authority that cannot be reached changes
        // nothing of the verdict.
        let from_disk = || {
            builder()
                .server("http://127.0.0.1:9")
                .start()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let client = match case.get("offer") {
            None => from_disk(),
            Some(offer) => {
                let bytes = Base64::decode_vec(offer["document_b64"].as_str().unwrap()).unwrap();
                let file = files.path().join("offer.paseto");
                std::fs::write(&file, bytes).unwrap();
                let expect = case["expect_offer"].as_str().unwrap();
                match (start(file), expect.strip_prefix("refused:")) {
                    (Err(Error::Verification(e)), Some(code)) => {
                        assert_eq!(e.code(), code, "{name}: {e}");
                        from_disk()
                    }
                    (Ok(client), None) => client,
                    (other, _) => panic!(
                        "{name}: expected {expect}, got {:?}",
                        other.map(|c| c.verdict())
                    ),
                }
            }
        };
        for step in case["timeline"].as_array().unwrap() {
            clock.set(time(&step["now"]));
            let mut rx = client.subscribe();
            let reached =
                tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|v| matches(v, step)))
                    .await;
            assert!(
                reached.is_ok(),
                "{name} at {}: expected {step}, got {:#?}",
                step["now"],
                client.verdict()
            );
        }
        client.shutdown();
    }
}
