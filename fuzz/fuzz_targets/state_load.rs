#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(state) = tessera_client::state::DiskState::parse(data) {
        // What loads, stores back and loads the same.
        let bytes = serde_json::to_vec(&state).unwrap();
        assert_eq!(tessera_client::state::DiskState::parse(&bytes).unwrap(), state);
    }
});
