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
    .into_iter()
    .chain(relayed_fixtures())
    .collect()
}

const RELAY_SEED: [u8; 32] = [11; 32];
const HALL_SEED: [u8; 32] = [12; 32];

/// The site bundle the relayed fixtures carry: revision 6 of the license,
/// `sso` and `audit`, 20 floating seats, for 30 days.
fn site_bundle() -> tessera_protocol::bundle::SiteBundle {
    use tessera_protocol::bundle::{BundleLicense, SiteBundle};
    let t = now();
    let c = claims(HELD_REV + 1, t);
    SiteBundle {
        site: "fixture-site".into(),
        relay_key: SigningKey::from_seed(&RELAY_SEED).public_key().to_paserk(),
        iat: t - Duration::days(1),
        exp: t + Duration::days(30),
        licenses: vec![BundleLicense {
            tfp: c.tfp.clone(),
            license: c.lic.clone().unwrap_or_default(),
            product: None,
            rev: c.rev,
            status: c.status,
            valid: true,
            plan: c.plan.clone(),
            customer: c.customer.clone(),
            features: c.features.clone(),
            entitlements: c.entitlements.clone(),
            on_expiry: c.on_expiry,
            enforcement: c.enforcement,
            max_users: c.max_users,
            valid_from: c.valid_from,
            expires_at: c.expires_at,
            max_machines: Some(20),
            machine_mode: Some(tessera_protocol::wire::MachineMode::Floating),
            lease_ttl: Some(900),
        }],
    }
}

/// A relay's claims: revision 6 with `used` of 20 floating seats, no
/// machine bound (any client may take it), trusted for a day.
fn relayed_claims(used: u32, max: u32) -> StatusClaims {
    let t = now();
    let mut c = claims(HELD_REV + 1, t);
    c.exp = t + Duration::days(1);
    c.machine = Some(tessera_protocol::MachineClaim {
        id: None,
        activated_at: None,
        mode: tessera_protocol::wire::MachineMode::Floating,
        used,
        max: Some(max),
        lease_ttl: Some(900),
        lease_expires_at: None,
    });
    c
}

/// Documents a relay signs, honest and hostile (docs/PROTOCOL.md §26): a
/// client pinning only the authority's key takes the first and the chained
/// one, and refuses the rest with their reason.
fn relayed_fixtures() -> Vec<Fixture> {
    use tessera_protocol::bundle::{sign_bundle, sign_child_bundle, sign_relayed};
    let t = now();
    let authority = pinned_key();
    let relay = SigningKey::from_seed(&RELAY_SEED);
    let bundle = site_bundle();
    let signed_bundle = sign_bundle(&bundle, &authority).expect("a bundle");
    let doc =
        |c: &StatusClaims, b: &str| sign_relayed(c, &relay, b).expect("a document").into_bytes();
    let fx = |name, what, bytes: Vec<u8>, expect| Fixture {
        name,
        what,
        bytes,
        expect,
    };
    let mut extra = relayed_claims(3, 20);
    extra.features.push("export".into());
    let mut later = relayed_claims(3, 20);
    later.expires_at = later.expires_at.map(|e| e + Duration::days(365));
    let mut greedy = bundle.clone();
    greedy.licenses[0].max_machines = Some(200);
    // The bundle's payload replaced by the greedy one, under the
    // authority's signature and footer.
    let spliced = {
        let forged = sign_bundle(&greedy, &relay).expect("a bundle");
        let (head, _) = forged.rsplit_once('.').expect("a footer");
        let (_, footer) = signed_bundle.rsplit_once('.').expect("a footer");
        format!("{head}.{footer}")
    };
    let ended = {
        let mut b = bundle.clone();
        b.iat = t - Duration::days(31);
        b.exp = t - Duration::seconds(1);
        let mut c = relayed_claims(3, 20);
        c.iat = t - Duration::days(2);
        c.refresh_after = c.iat;
        c.exp = b.exp;
        doc(&c, &sign_bundle(&b, &authority).expect("a bundle"))
    };
    let hall = SigningKey::from_seed(&HALL_SEED);
    let child = |max: u32| {
        let mut b = bundle.clone();
        b.site = "fixture-site/hall-b".into();
        b.relay_key = hall.public_key().to_paserk();
        b.exp = t + Duration::days(7);
        b.licenses[0].max_machines = Some(max);
        sign_child_bundle(&b, &relay, &signed_bundle).expect("a bundle")
    };
    vec![
        fx(
            "relayed",
            "revision 6 from a site relay the authority certified: taken",
            doc(&relayed_claims(20, 20), &signed_bundle),
            Expect::Accepted,
        ),
        fx(
            "relayed-chained",
            "revision 6 from a building's relay certified by the site's relay: taken",
            sign_relayed(&relayed_claims(5, 5), &hall, &child(5))
                .expect("a document")
                .into_bytes(),
            Expect::Accepted,
        ),
        fx(
            "relayed-21st-seat",
            "a relay counting 21 machines of the bundle's 20",
            doc(&relayed_claims(21, 20), &signed_bundle),
            Expect::Refused("malformed"),
        ),
        fx(
            "relayed-extra-feature",
            "a relay granting a feature its bundle does not",
            doc(&extra, &signed_bundle),
            Expect::Refused("malformed"),
        ),
        fx(
            "relayed-later-end",
            "a relay extending the license a year past its bundle",
            doc(&later, &signed_bundle),
            Expect::Refused("malformed"),
        ),
        fx(
            "relayed-edited-bundle",
            "a relay whose bundle was edited to 200 seats",
            doc(&relayed_claims(3, 20), &spliced),
            Expect::Refused("bad_signature"),
        ),
        fx(
            "relayed-self-certified",
            "a relay carrying a bundle it signed itself",
            doc(
                &relayed_claims(3, 20),
                &sign_bundle(&greedy, &relay).expect("a bundle"),
            ),
            Expect::Refused("unknown_key_id"),
        ),
        fx(
            "relayed-bundle-ended",
            "a relay key used after its bundle ended",
            ended,
            Expect::Refused("document_expired"),
        ),
        fx(
            "relayed-wrong-signer",
            "a document signed by another key than the bundle's relay",
            sign_relayed(&relayed_claims(3, 20), &other_key(), &signed_bundle)
                .expect("a document")
                .into_bytes(),
            Expect::Refused("malformed"),
        ),
        fx(
            "relayed-chained-greedy",
            "a building's relay given 25 seats by a site relay holding 20",
            sign_relayed(&relayed_claims(5, 25), &hall, &child(25))
                .expect("a document")
                .into_bytes(),
            Expect::Refused("malformed"),
        ),
    ]
}
