//! Hostile status documents, made reproducibly: fixed keys, a fixed token,
//! fixed times. Ed25519 signatures are deterministic, so the bytes come out
//! the same every time; `tests/data/documents/` holds them committed, and a
//! test checks they still match this generator.
//!
//! `paseto_v4_sign` builds `v4.public` tokens by hand (PAE + Ed25519) so a
//! fixture can carry any payload and footer — a pinned kid over another
//! key's signature, or no footer at all — which the protocol crate's own
//! `sign` would never produce.

use base64ct::{Base64UrlUnpadded, Encoding};
use chrono::Duration;
use tessera_protocol::{LicenseToken, SigningKey, StatusClaims, Timestamp, TrustedKeys};

/// The "now" every fixture is judged at (the document fuzz target's too).
pub fn now() -> Timestamp {
    tessera_protocol::fuzzing::now()
}

const PINNED_SEED: [u8; 32] = tessera_protocol::fuzzing::PINNED_SEED;
const OTHER_SEED: [u8; 32] = [9; 32];

/// The pinned authority key.
pub fn pinned_key() -> SigningKey {
    SigningKey::from_seed(&PINNED_SEED)
}

/// A key nobody pinned.
pub fn other_key() -> SigningKey {
    SigningKey::from_seed(&OTHER_SEED)
}

/// The keys a client pins.
pub fn trusted() -> TrustedKeys {
    TrustedKeys::single(pinned_key().public_key().clone())
}

/// The license token the documents answer for.
pub fn token() -> LicenseToken {
    LicenseToken::parse(tessera_protocol::fuzzing::TOKEN).expect("a valid fixture token")
}

/// Another customer's token.
pub fn other_token() -> LicenseToken {
    use rand::SeedableRng;
    LicenseToken::generate(&mut rand::rngs::StdRng::seed_from_u64(99))
}

/// The held document's revision and signing time.
pub const HELD_REV: u64 = 5;

/// Claims of a valid document at `rev`, signed at `iat`.
pub fn claims(rev: u64, iat: Timestamp) -> StatusClaims {
    let t = now();
    StatusClaims {
        valid_from: Some(t - Duration::days(30)),
        expires_at: Some(t + Duration::days(335)),
        rev,
        ..StatusClaims::sample(token().fingerprint(), iat)
    }
}

/// PASETO pre-authentication encoding.
fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = (pieces.len() as u64).to_le_bytes().to_vec();
    for p in pieces {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// A `v4.public` token over any payload and footer, signed with `seed`.
pub fn paseto_v4_sign(seed: &[u8; 32], payload: &[u8], footer: &[u8]) -> String {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
    let signature = pair
        .sk
        .sign(pae(&[b"v4.public.", payload, footer, b""]), None);
    let mut body = payload.to_vec();
    body.extend_from_slice(signature.as_ref());
    let mut text = format!("v4.public.{}", Base64UrlUnpadded::encode_string(&body));
    if !footer.is_empty() {
        text.push('.');
        text.push_str(&Base64UrlUnpadded::encode_string(footer));
    }
    text
}

fn footer_for(key: &SigningKey) -> Vec<u8> {
    format!("{{\"kid\":\"{}\"}}", key.kid()).into_bytes()
}

pub(crate) fn signed(c: &StatusClaims) -> String {
    tessera_protocol::sign(c, &pinned_key()).unwrap()
}

/// (message, signature) halves of a document made here.
fn halves(doc: &str) -> (Vec<u8>, Vec<u8>, Option<String>) {
    let mut parts = doc.splitn(4, '.');
    let (_, _, body, footer) = (
        parts.next(),
        parts.next(),
        parts.next().unwrap(),
        parts.next(),
    );
    let mut bytes = Base64UrlUnpadded::decode_vec(body).unwrap();
    let signature = bytes.split_off(bytes.len() - 64);
    (bytes, signature, footer.map(str::to_owned))
}

fn assemble(message: &[u8], signature: &[u8], footer: Option<&str>) -> String {
    let mut body = message.to_vec();
    body.extend_from_slice(signature);
    let mut text = format!("v4.public.{}", Base64UrlUnpadded::encode_string(&body));
    if let Some(f) = footer {
        text.push('.');
        text.push_str(f);
    }
    text
}

/// What a fixture must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `verify` fails with this error code.
    Refused(&'static str),
    /// It verifies, and the rollback rule rejects it against the held document.
    RolledBack,
    /// It verifies and is newer: the one fixture a client takes.
    Accepted,
}

/// One hostile (or control) document.
pub struct Fixture {
    /// File stem in `tests/data/documents/`.
    pub name: &'static str,
    /// What it tries.
    pub what: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What must happen to it.
    pub expect: Expect,
}

/// The held document (revision 5, signed a minute before `now`).
pub fn held() -> String {
    signed(&claims(HELD_REV, now() - Duration::minutes(1)))
}

/// Every fixture, the held document first.
pub fn fixtures() -> Vec<Fixture> {
    let t = now();
    let held = held();
    let (message, signature, footer) = halves(&held);
    let mut forged_sig = signature.clone();
    forged_sig[10] ^= 0x40;
    let newer = signed(&claims(HELD_REV + 1, t));
    let (newer_message, _, _) = halves(&newer);
    let mut other_claims = claims(HELD_REV + 2, t);
    other_claims.tfp = other_token().fingerprint();
    let mut big = claims(HELD_REV + 2, t);
    big.features = (0..2_000).map(|i| format!("feature-{i:05}")).collect();
    let expired = {
        let mut c = claims(HELD_REV + 2, t - Duration::days(8));
        c.exp = t - Duration::days(1);
        c
    };
    let future = claims(HELD_REV + 2, t + Duration::hours(1));
    let mut non_utf8 = held.clone().into_bytes();
    non_utf8.insert(20, 0xff);
    let fx = |name, what, bytes: Vec<u8>, expect| Fixture {
        name,
        what,
        bytes,
        expect,
    };
    vec![
        fx(
            "held",
            "the document the client holds (revision 5)",
            held.clone().into_bytes(),
            Expect::Accepted,
        ),
        fx(
            "newer",
            "revision 6 from the pinned key: the control, taken",
            newer.clone().into_bytes(),
            Expect::Accepted,
        ),
        fx(
            "forged-signature",
            "the held document with one signature byte changed",
            assemble(&message, &forged_sig, footer.as_deref()).into_bytes(),
            Expect::Refused("bad_signature"),
        ),
        fx(
            "wrong-key",
            "revision 7 signed by another key, footer naming the pinned kid",
            paseto_v4_sign(
                &OTHER_SEED,
                &serde_json::to_vec(&claims(HELD_REV + 2, t)).unwrap(),
                &footer_for(&pinned_key()),
            )
            .into_bytes(),
            Expect::Refused("bad_signature"),
        ),
        fx(
            "unknown-kid",
            "revision 7 signed by another key under its own kid",
            tessera_protocol::sign(&claims(HELD_REV + 2, t), &other_key())
                .unwrap()
                .into_bytes(),
            Expect::Refused("unknown_key_id"),
        ),
        fx(
            "no-kid",
            "revision 7 with no footer: no key named",
            paseto_v4_sign(
                &PINNED_SEED,
                &serde_json::to_vec(&claims(HELD_REV + 2, t)).unwrap(),
                b"",
            )
            .into_bytes(),
            Expect::Refused("missing_key_id"),
        ),
        fx(
            "lower-revision",
            "revision 4, signed now: a replay of an older state",
            signed(&claims(HELD_REV - 1, t)).into_bytes(),
            Expect::RolledBack,
        ),
        fx(
            "equal-revision-older-iat",
            "revision 5 signed before the held one",
            signed(&claims(HELD_REV, t - Duration::hours(2))).into_bytes(),
            Expect::RolledBack,
        ),
        fx(
            "expired-exp",
            "revision 7 whose exp passed a day ago (a frozen document)",
            signed(&expired).into_bytes(),
            Expect::Refused("document_expired"),
        ),
        fx(
            "future-iat",
            "revision 7 signed an hour ahead of the client's clock",
            signed(&future).into_bytes(),
            Expect::Refused("issued_in_future"),
        ),
        fx(
            "other-token",
            "revision 7 for another customer's token",
            signed(&other_claims).into_bytes(),
            Expect::Refused("token_mismatch"),
        ),
        fx(
            "spliced",
            "revision 6's claims with the held document's signature",
            assemble(&newer_message, &signature, footer.as_deref()).into_bytes(),
            Expect::Refused("bad_signature"),
        ),
        fx(
            "oversized",
            "a validly signed 40 KiB document",
            signed(&big).into_bytes(),
            Expect::Refused("document_too_large"),
        ),
        fx(
            "truncated",
            "the held document cut in half",
            held.as_bytes()[..held.len() / 2].to_vec(),
            Expect::Refused("malformed"),
        ),
        fx(
            "non-utf8",
            "the held document with a 0xFF byte inside",
            non_utf8,
            Expect::Refused("malformed"),
        ),
        fx(
            "not-paseto",
            "a JSON verdict instead of a document",
            br#"{"status":"active","valid":true,"rev":99}"#.to_vec(),
            Expect::Refused("malformed"),
        ),
    ]
}
