//! Bodies of the fuzz targets (`fuzz/`), kept here so the committed corpus
//! is replayed by ordinary tests (`tests/fuzz_corpus.rs`) without a fuzzer.
//! Each takes arbitrary bytes and must return without panicking; where an
//! input is accepted, it checks what acceptance promises.

use chrono::DateTime;

use crate::ids::check_nonce;
use crate::wire::ValidateRequest;
use crate::{
    AdminKey, Expectations, InstanceId, LicenseId, LicenseToken, SigningKey, Timestamp,
    TrustedKeys, verify,
};

/// Seed of the key the document target trusts (the hostile fixtures' key).
pub const PINNED_SEED: [u8; 32] = [7; 32];
/// The token the document target expects documents for.
pub const TOKEN: &str = "tsr_Vut8janx99JGSaeqiffOjZFoB0Wt5J0SXF0h";

/// The time the document target judges at (the fixtures' "now").
#[must_use]
pub fn now() -> Timestamp {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
}

/// Token, admin key, license id and instance id parsers.
pub fn token_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = LicenseToken::parse(text) {
        // A parsed token is its input without surrounding whitespace (a
        // pasted token keeps its newline), and parses again to itself.
        assert_eq!(token.expose_secret(), text.trim());
        let again = LicenseToken::parse(token.expose_secret()).expect("reparses");
        assert_eq!(again.expose_secret(), token.expose_secret());
    }
    let _ = AdminKey::parse(text);
    let _ = LicenseId::parse(text);
    let _ = InstanceId::parse(text);
    let _ = check_nonce(text);
    let _ = crate::human::parse_duration(text);
    let _ = crate::human::parse_date_or_time(text);
}

/// Document verification with a pinned key.
pub fn document_verify(data: &[u8]) {
    let key = SigningKey::from_seed(&PINNED_SEED);
    let keys = TrustedKeys::single(key.public_key().clone());
    let Ok(token) = LicenseToken::parse(TOKEN) else {
        return;
    };
    let expect = Expectations::for_token(token.fingerprint());
    if let Ok(doc) = verify(data, &keys, &expect, now()) {
        // Only the exact signed bytes verify.
        assert_eq!(doc.as_str().as_bytes(), data);
        assert!(doc.claims().exp >= doc.claims().iat);
    }
}

/// The `/v1/validate` body: JSON, then the checks the authority makes
/// before it touches storage.
pub fn validate_body(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<ValidateRequest>(data) else {
        return;
    };
    let _ = LicenseToken::parse(&req.token);
    if let Some(id) = &req.instance_id {
        let _ = InstanceId::parse(id);
    }
    if let Some(nonce) = &req.nonce {
        let _ = check_nonce(nonce);
    }
    // It re-encodes.
    let _ = serde_json::to_vec(&req);
}
