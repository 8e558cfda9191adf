#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_client::state::fuzz_state_load(data);
});
