//! The committed `state_load` fuzz corpus, replayed as an ordinary test.

use tessera_client::state::fuzz_state_load;

#[test]
fn state_load_corpus() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/state_load");
    let mut n = 0;
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| fuzz_state_load(&bytes))
            .unwrap_or_else(|_| panic!("state_load panicked on {}", path.display()));
        loaded += usize::from(outcome);
        n += 1;
    }
    assert!(n >= 3 && loaded >= 2, "{n} inputs, {loaded} loaded");
}
