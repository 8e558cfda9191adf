//! Signing and verification of status documents, through the public API only.

use chrono::{DateTime, Duration};
use proptest::prelude::*;
use tessera_protocol::{
    Error, Expectations, Freshness, LicenseToken, Limits, SigningKey, StatusClaims, Timestamp,
    TrustedKeys, sign, verify,
};

fn t0() -> Timestamp {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn claims(token: &LicenseToken, nonce: Option<&str>) -> StatusClaims {
    StatusClaims {
        iid: Some("inst-1".into()),
        nonce: nonce.map(str::to_owned),
        mfp: None,
        machine: None,
        max_users: Some(50),
        valid_from: Some(t0() - Duration::days(10)),
        expires_at: Some(t0() + Duration::days(20)),
        rev: 3,
        ..StatusClaims::sample(token.fingerprint(), t0())
    }
}

fn token() -> LicenseToken {
    LicenseToken::generate(&mut rand::rng())
}

struct Fixture {
    key: SigningKey,
    keys: TrustedKeys,
    token: LicenseToken,
    doc: String,
}

fn fixture() -> Fixture {
    let key = key(7);
    let token = token();
    let doc = sign(&claims(&token, Some("n-123")), &key).unwrap();
    let keys = TrustedKeys::single(key.public_key().clone());
    Fixture {
        key,
        keys,
        token,
        doc,
    }
}

#[test]
fn a_signed_document_verifies_and_round_trips_claims() {
    let f = fixture();
    let expect = Expectations::for_token(f.token.fingerprint()).with_nonce("n-123");
    let verified = verify(f.doc.as_bytes(), &f.keys, &expect, t0()).unwrap();
    assert_eq!(verified.claims(), &claims(&f.token, Some("n-123")));
    assert_eq!(verified.as_str(), f.doc);
    assert_eq!(verified.kid(), f.key.kid());
    assert!(f.doc.starts_with("v4.public."));
}

#[test]
fn each_check_fails_with_its_own_error() {
    let f = fixture();
    let base = Expectations::for_token(f.token.fingerprint());

    let other_key = TrustedKeys::single(key(8).public_key().clone());
    assert!(matches!(
        verify(f.doc.as_bytes(), &other_key, &base, t0()),
        Err(Error::UnknownKeyId { .. })
    ));

    // Same kid pinned, but a document signed by another key claiming that kid
    // cannot be built through the API; a tampered payload stands for it.
    let mut bytes = f.doc.clone().into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(&bytes, &f.keys, &base, t0()).unwrap_err(),
        Error::BadSignature
    );

    let other_token = LicenseToken::generate(&mut rand::rng());
    let expect = Expectations::for_token(other_token.fingerprint());
    assert_eq!(
        verify(f.doc.as_bytes(), &f.keys, &expect, t0()).unwrap_err(),
        Error::TokenMismatch
    );

    let expect = base.clone().with_nonce("another");
    assert_eq!(
        verify(f.doc.as_bytes(), &f.keys, &expect, t0()).unwrap_err(),
        Error::NonceMismatch
    );

    let late = t0() + Duration::days(7) + Duration::seconds(1);
    assert!(matches!(
        verify(f.doc.as_bytes(), &f.keys, &base, late),
        Err(Error::DocumentExpired { .. })
    ));
    // Exactly at exp it still counts.
    assert!(verify(f.doc.as_bytes(), &f.keys, &base, t0() + Duration::days(7)).is_ok());

    let early = t0() - Duration::minutes(5) - Duration::seconds(1);
    assert!(matches!(
        verify(f.doc.as_bytes(), &f.keys, &base, early),
        Err(Error::IssuedInFuture {
            max_drift_secs: 300,
            ..
        })
    ));
    assert!(
        verify(
            f.doc.as_bytes(),
            &f.keys,
            &base,
            t0() - Duration::minutes(5)
        )
        .is_ok()
    );

    let small = base.clone().with_limits(Limits {
        max_document_bytes: 100,
    });
    assert!(matches!(
        verify(f.doc.as_bytes(), &f.keys, &small, t0()),
        Err(Error::DocumentTooLarge { max: 100, .. })
    ));

    // Stored state may be re-read past exp; signature and binding still hold.
    let stored = base.clone().with_freshness(Freshness::SkipForStoredState);
    assert!(verify(f.doc.as_bytes(), &f.keys, &stored, late).is_ok());
    assert_eq!(
        verify(&bytes, &f.keys, &stored, late).unwrap_err(),
        Error::BadSignature
    );
}

#[test]
fn unknown_kid_is_refused_before_the_signature_is_looked_at() {
    let f = fixture();
    let other = key(9);
    let doc = sign(&claims(&f.token, None), &other).unwrap();
    let expect = Expectations::for_token(f.token.fingerprint());
    assert_eq!(
        verify(doc.as_bytes(), &f.keys, &expect, t0()).unwrap_err(),
        Error::UnknownKeyId {
            kid: other.kid().to_string()
        }
    );
}

#[test]
fn a_document_without_footer_is_refused() {
    let f = fixture();
    let no_footer = f.doc.rsplit_once('.').unwrap().0;
    let expect = Expectations::for_token(f.token.fingerprint());
    assert_eq!(
        verify(no_footer.as_bytes(), &f.keys, &expect, t0()).unwrap_err(),
        Error::MissingKeyId
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let f = fixture();
    let expect = Expectations::for_token(f.token.fingerprint());
    for input in [
        &b""[..],
        b"v4.public.",
        b"v4.public.!!!",
        b"v4.local.AAAA",
        b"\xff\xfe",
        b"v4.public.AAAA.AAAA.AAAA",
    ] {
        let err = verify(input, &f.keys, &expect, t0()).unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. } | Error::MissingKeyId),
            "{input:?}: {err:?}"
        );
    }
}

proptest! {
    // Each case flips all ~4,000 bits of one document: a few keys are plenty.
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Every single-bit flip anywhere in a valid document is rejected.
    #[test]
    fn every_single_bit_flip_is_rejected(seed in any::<u8>()) {
        let key = key(seed);
        let token = token();
        let doc = sign(&claims(&token, None), &key).unwrap();
        let keys = TrustedKeys::single(key.public_key().clone());
        let expect = Expectations::for_token(token.fingerprint());
        prop_assert!(verify(doc.as_bytes(), &keys, &expect, t0()).is_ok());
        for i in 0..doc.len() {
            for bit in 0..8 {
                let mut bytes = doc.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                prop_assert!(
                    verify(&bytes, &keys, &expect, t0()).is_err(),
                    "flip of bit {} in byte {} accepted", bit, i
                );
            }
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_verifier(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixture();
        let expect = Expectations::for_token(f.token.fingerprint());
        let _ = verify(&bytes, &f.keys, &expect, t0());
        let mut prefixed = b"v4.public.".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = verify(&prefixed, &f.keys, &expect, t0());
    }

    #[test]
    fn arbitrary_strings_never_panic_the_parsers(s in ".{0,200}") {
        let _ = LicenseToken::parse(&s);
        let _ = tessera_protocol::AdminKey::parse(&s);
        let _ = tessera_protocol::PublicKey::from_paserk(&s);
        let _ = SigningKey::from_paserk(&s);
        let _ = tessera_protocol::LicenseId::parse(&s);
        let _ = tessera_protocol::InstanceId::parse(&s);
        let _ = tessera_protocol::human::parse_duration(&s);
        let _ = tessera_protocol::human::parse_date_or_time(&s);
        let _ = tessera_protocol::PublicKey::from_paserk(&format!("k4.public.{s}"));
        let _ = SigningKey::from_paserk(&format!("k4.secret.{s}"));
    }

    #[test]
    fn token_like_strings_never_panic(body in "[0-9A-Za-z]{30,40}") {
        let _ = LicenseToken::parse(&format!("tsr_{body}"));
    }
}

/// Key rotation: a key pinned as retired verifies what it signed up to its
/// retirement and nothing signed after — and the pin text says so.
#[test]
fn a_retired_key_verifies_only_what_it_signed_before_retirement() {
    use chrono::{DateTime, Duration};
    use tessera_protocol::{Expectations, SigningKey, TrustedKeys, sign, verify};
    let old = SigningKey::from_seed(&[1; 32]);
    let new = SigningKey::from_seed(&[2; 32]);
    let token = tessera_protocol::LicenseToken::generate(&mut rand::rng());
    let retired_at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let mut keys = TrustedKeys::new();
    keys.pin(&new.public_key().to_paserk()).unwrap();
    keys.pin(&format!(
        "{}@{}",
        old.public_key().to_paserk(),
        "2027-01-15T08:00:00Z"
    ))
    .unwrap();
    assert_eq!(keys.retired_at(old.kid()), Some(retired_at));
    assert_eq!(keys.retired_at(new.kid()), None);
    let expect = Expectations::for_token(token.fingerprint());
    let doc_at = |key: &SigningKey, iat: tessera_protocol::Timestamp| {
        let mut c = claims(&token, None);
        c.iat = iat;
        c.refresh_after = iat + Duration::hours(1);
        c.exp = iat + Duration::days(7);
        sign(&c, key).unwrap()
    };
    let before = doc_at(&old, retired_at - Duration::hours(1));
    let after = doc_at(&old, retired_at + Duration::seconds(1));
    let now = retired_at + Duration::hours(2);
    assert!(
        verify(before.as_bytes(), &keys, &expect, now).is_ok(),
        "signed before retirement"
    );
    let err = verify(after.as_bytes(), &keys, &expect, now).unwrap_err();
    assert_eq!(err.code(), "key_retired");
    assert!(
        verify(doc_at(&new, now).as_bytes(), &keys, &expect, now).is_ok(),
        "the new key"
    );
    assert!(keys.pin("k4.public.nope@2027-01-01").is_err());
    assert!(
        keys.pin(&format!("{}@someday", old.public_key().to_paserk()))
            .is_err()
    );
}

/// Hardening item 2: a leaked retired key minted a document with `iat`
/// backdated to its retirement, `exp` 9999-12-31, `expires_at` null and
/// `rev` u64::MAX; it was accepted, and its revision then made every
/// genuine document a "rollback". Now: revisions above 2^53 and times past
/// 9999 are refused, a retired key's `exp` is bounded by its retirement
/// plus the longest lifetime the authority signs, and whatever a retired
/// key did sign is replaced by any document signed after the retirement.
#[test]
fn a_leaked_retired_key_cannot_mint_a_lasting_document() {
    use tessera_protocol::{
        MAX_DOCUMENT_LIFETIME, MAX_REVISION, RollbackDecision, check_document_rollback,
    };
    let old = key(21);
    let new = key(22);
    let retired_at = t0();
    let mut keys = TrustedKeys::single(new.public_key().clone());
    keys.insert_retired(old.public_key().clone(), retired_at);
    let token = token();
    let expect = Expectations::for_token(token.fingerprint());
    let now = retired_at + Duration::days(1);
    let forged = |rev: u64, exp: Timestamp| {
        let mut c = claims(&token, None);
        c.customer = Some("FORGED".into());
        c.iat = retired_at;
        c.refresh_after = retired_at + Duration::hours(1);
        c.exp = exp;
        c.expires_at = None;
        c.rev = rev;
        sign(&c, &old).unwrap()
    };
    let far = DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z")
        .unwrap()
        .to_utc();

    // The review's document: refused.
    let err = verify(forged(u64::MAX, far).as_bytes(), &keys, &expect, now).unwrap_err();
    assert_eq!(err.code(), "out_of_range", "{err}");
    // A revision just past 2^53: refused, whoever signs it.
    let err = verify(
        forged(MAX_REVISION + 1, now).as_bytes(),
        &keys,
        &expect,
        now,
    )
    .unwrap_err();
    assert_eq!(err.code(), "out_of_range");
    // A plausible revision, but an `exp` beyond retirement + the longest lifetime.
    let err = verify(forged(7, far).as_bytes(), &keys, &expect, now).unwrap_err();
    assert_eq!(err.code(), "key_retired", "{err}");
    let late = retired_at + MAX_DOCUMENT_LIFETIME + Duration::seconds(1);
    let err = verify(forged(7, late).as_bytes(), &keys, &expect, now).unwrap_err();
    assert_eq!(err.code(), "key_retired");

    // The most a leaked retired key can still do: the highest revision,
    // `exp` at the bound. It verifies (it cannot be told from a genuine old
    // document) but dies at its `exp`, and any document signed after the
    // retirement replaces it, whatever its revision.
    let bound = retired_at + MAX_DOCUMENT_LIFETIME;
    let held = verify(forged(MAX_REVISION, bound).as_bytes(), &keys, &expect, now).unwrap();
    assert_eq!(held.retired_key_at(), Some(retired_at));
    assert!(
        verify(
            forged(MAX_REVISION, bound).as_bytes(),
            &keys,
            &expect,
            bound + Duration::seconds(1)
        )
        .is_err(),
        "dead after its exp"
    );
    let mut genuine = claims(&token, None);
    genuine.rev = 4;
    genuine.iat = retired_at + Duration::minutes(10);
    genuine.refresh_after = genuine.iat + Duration::hours(1);
    genuine.exp = genuine.iat + Duration::days(7);
    let genuine = verify(
        sign(&genuine, &new).unwrap().as_bytes(),
        &keys,
        &expect,
        now,
    )
    .unwrap();
    assert_eq!(
        check_document_rollback(&held, &genuine),
        RollbackDecision::Accept
    );
    // The rule is one way: a retired-key document never replaces a newer one.
    assert_eq!(
        check_document_rollback(&genuine, &held),
        RollbackDecision::Reject
    );
}

/// Times outside 1970 … 9999 are refused before any arithmetic on them.
#[test]
fn times_outside_the_supported_range_are_refused() {
    let f = fixture();
    let expect = Expectations::for_token(f.token.fingerprint());
    let mut c = claims(&f.token, None);
    c.valid_from = Some(DateTime::from_timestamp(-86_400, 0).unwrap());
    let err = verify(sign(&c, &f.key).unwrap().as_bytes(), &f.keys, &expect, t0()).unwrap_err();
    assert_eq!(err.code(), "out_of_range");
    // Year 10000 is written "+10000-…", which no client parses.
    let mut c = claims(&f.token, None);
    c.expires_at = Some(
        DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .unwrap()
            .to_utc()
            + Duration::days(1),
    );
    assert!(verify(sign(&c, &f.key).unwrap().as_bytes(), &f.keys, &expect, t0()).is_err());
}
