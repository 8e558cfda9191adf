//! The committed `state_load` fuzz corpus, replayed as an ordinary test.

use tessera_client::state::DiskState;

#[test]
fn state_load_corpus() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/state_load");
    let mut n = 0;
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        // The fuzz target's body: what loads, stores back and loads the same.
        let outcome = std::panic::catch_unwind(|| {
            DiskState::parse(&bytes).ok().map(|state| {
                let again = serde_json::to_vec(&state).unwrap();
                assert_eq!(DiskState::parse(&again).unwrap(), state);
            })
        });
        let outcome =
            outcome.unwrap_or_else(|_| panic!("state_load panicked on {}", path.display()));
        loaded += usize::from(outcome.is_some());
        n += 1;
    }
    assert!(n >= 3 && loaded >= 2, "{n} inputs, {loaded} loaded");
}
