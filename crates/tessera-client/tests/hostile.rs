//! The committed hostile fixtures (`tests/data/documents/`): each refused
//! with its exact error, every single-bit flip of a valid document refused,
//! and the client's disk state unchanged by any of them.
//!
//! Regenerate after a deliberate format change with
//! `TESSERA_WRITE_FIXTURES=1 cargo test -p tessera-client --test hostile`.

use std::path::PathBuf;

use tessera_client::clock::ManualClock;
use tessera_client::{Client, VerdictState};
use tessera_protocol::Expectations;
use tessera_protocol::bundle::verify_any as verify;
use tessera_protocol::rollback::{RollbackDecision, check_rollback};
use tessera_testkit::hostile::{self, Expect};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/documents")
}

fn expectations() -> Expectations {
    Expectations::for_token(hostile::token().fingerprint())
}

#[test]
fn the_committed_fixtures_are_what_the_generator_makes() {
    let write = std::env::var_os("TESSERA_WRITE_FIXTURES").is_some();
    let mut manifest = String::from("# name\texpected\twhat it tries\n");
    for f in hostile::fixtures() {
        let path = dir().join(format!("{}.paseto", f.name));
        let expected = match f.expect {
            Expect::Refused(code) => code.to_owned(),
            Expect::RolledBack => "rollback".to_owned(),
            Expect::Accepted => "accepted".to_owned(),
        };
        manifest.push_str(&format!("{}\t{expected}\t{}\n", f.name, f.what));
        if write {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &f.bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(committed, f.bytes, "{} differs from its generator", f.name);
    }
    let manifest_path = dir().join("MANIFEST.tsv");
    if write {
        std::fs::write(&manifest_path, &manifest).unwrap();
    }
    assert_eq!(std::fs::read_to_string(manifest_path).unwrap(), manifest);
}

#[test]
fn every_fixture_is_refused_with_its_exact_error() {
    let keys = hostile::trusted();
    let now = hostile::now();
    let held = verify(hostile::held().as_bytes(), &keys, &expectations(), now).unwrap();
    let held = (held.claims().rev, held.claims().iat);
    let mut refused = 0;
    for f in hostile::fixtures() {
        let bytes = std::fs::read(dir().join(format!("{}.paseto", f.name))).unwrap();
        let got = verify(&bytes, &keys, &expectations(), now);
        match f.expect {
            Expect::Refused(code) => {
                let err = got.err().unwrap_or_else(|| panic!("{} verified", f.name));
                assert_eq!(err.code(), code, "{}: {err}", f.name);
                refused += 1;
            }
            Expect::RolledBack | Expect::Accepted => {
                let doc = got.unwrap_or_else(|e| panic!("{}: {e}", f.name));
                let c = doc.claims();
                let rejected =
                    check_rollback(Some(held), (c.rev, c.iat)) == RollbackDecision::Reject;
                let expected = matches!(f.expect, Expect::RolledBack);
                assert_eq!(rejected, expected, "{}: rolled back", f.name);
                refused += usize::from(rejected);
            }
        }
    }
    assert_eq!(refused, 22);
}

#[test]
fn every_single_bit_flip_of_a_valid_document_is_refused() {
    let keys = hostile::trusted();
    let doc = std::fs::read(dir().join("newer.paseto")).unwrap();
    assert!(verify(&doc, &keys, &expectations(), hostile::now()).is_ok());
    let mut flips = 0;
    for i in 0..doc.len() {
        for bit in 0..8 {
            let mut flipped = doc.clone();
            flipped[i] ^= 1 << bit;
            assert!(
                verify(&flipped, &keys, &expectations(), hostile::now()).is_err(),
                "flip of bit {bit} in byte {i} verified"
            );
            flips += 1;
        }
    }
    assert_eq!(flips, doc.len() * 8);
    assert!(flips > 3_000, "{flips}");
}

/// A client holding revision 5 on disk, then offered each fixture as an
/// offline file (the path that takes a document without any request): the
/// state file's bytes never change, except for the one newer document.
#[tokio::test]
async fn no_fixture_changes_the_client_disk_state() {
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(hostile::now()));
    let start = |file: PathBuf| {
        Client::builder()
            .public_key(hostile::pinned_key().public_key().clone())
            .state_dir(state.path())
            .token(hostile::token().expose_secret())
            .offline_file(file)
            .clock(clock.clone())
            .start()
    };
    let held_file = files.path().join("held.paseto");
    std::fs::write(&held_file, hostile::held()).unwrap();
    let client = start(held_file).unwrap();
    assert_eq!(client.verdict().state, VerdictState::Valid);
    assert_eq!(
        client.verdict().license.as_ref().unwrap().revision,
        hostile::HELD_REV
    );
    client.shutdown();
    drop(client);
    let state_file = state.path().join(tessera_client::state::STATE_FILE);
    let before = std::fs::read(&state_file).unwrap();
    for f in hostile::fixtures() {
        if f.expect == Expect::Accepted {
            continue;
        }
        let file = files.path().join(format!("{}.paseto", f.name));
        std::fs::copy(dir().join(format!("{}.paseto", f.name)), &file).unwrap();
        let outcome = start(file);
        if let Ok(client) = &outcome {
            let v = client.verdict();
            assert_eq!(
                v.license.as_ref().map(|l| l.revision),
                Some(hostile::HELD_REV),
                "{}",
                f.name
            );
            client.shutdown();
        }
        drop(outcome);
        assert_eq!(
            std::fs::read(&state_file).unwrap(),
            before,
            "{} changed the disk state",
            f.name
        );
    }
    // The control: the newer document is taken, so the check above can fail.
    let file = files.path().join("newer.paseto");
    std::fs::copy(dir().join("newer.paseto"), &file).unwrap();
    let client = start(file).unwrap();
    assert_eq!(
        client.verdict().license.as_ref().unwrap().revision,
        hostile::HELD_REV + 1
    );
    assert_ne!(std::fs::read(&state_file).unwrap(), before);
}
