//! The committed fuzz corpus (`fuzz/corpus/`), replayed through the fuzz
//! targets' bodies as ordinary tests: no fuzzer needed in CI.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {target}");
    out
}

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let inputs = corpus(target);
    for (name, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| body(bytes));
        assert!(outcome.is_ok(), "{target} panicked on {name}");
    }
    inputs.len()
}

#[test]
fn token_parse_corpus() {
    assert!(replay("token_parse", tessera_protocol::fuzzing::token_parse) >= 5);
}

#[test]
fn document_verify_corpus() {
    assert!(
        replay(
            "document_verify",
            tessera_protocol::fuzzing::document_verify
        ) >= 14
    );
}

#[test]
fn validate_body_corpus() {
    assert!(replay("validate_body", tessera_protocol::fuzzing::validate_body) >= 3);
}
