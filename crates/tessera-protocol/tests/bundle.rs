//! Site bundles and relayed documents (issue 17, part 3 — the relay process
//! is not built yet): an instance pinning only the authority's key takes a
//! relay's document through the bundle, and refuses each attack with a
//! reason: an edited bundle, a bundle nobody pinned signed, a relay key used
//! after its bundle's expiry, the 21st seat of 20, a license the bundle does
//! not name, features or an end it does not allow, a document outliving it.

use chrono::{DateTime, Duration};
use tessera_protocol::bundle::{
    BundleLicense, SiteBundle, sign_bundle, sign_relayed, verify_bundle, verify_relayed,
};
use tessera_protocol::wire::MachineMode;
use tessera_protocol::{
    Error, Expectations, LicenseToken, MachineClaim, SigningKey, StatusClaims, Timestamp,
    TrustedKeys, verify,
};

fn now() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

struct Site {
    authority: SigningKey,
    relay: SigningKey,
    token: LicenseToken,
    bundle: SiteBundle,
}

fn site() -> Site {
    let authority = SigningKey::from_seed(&[7; 32]);
    let relay = SigningKey::from_seed(&[8; 32]);
    let token = LicenseToken::parse("tsr_Vut8janx99JGSaeqiffOjZFoB0Wt5J0SXF0h").unwrap();
    let bundle = SiteBundle {
        site: "plant-7".into(),
        relay_key: relay.public_key().to_paserk(),
        iat: now(),
        exp: now() + Duration::days(30),
        licenses: vec![BundleLicense {
            tfp: token.fingerprint(),
            license: "lic_01936b2e-7c3a-7def-8a12-0123456789ab".into(),
            max_machines: Some(20),
            features: vec!["sso".into()],
            expires_at: Some(now() + Duration::days(60)),
        }],
    };
    Site {
        authority,
        relay,
        token,
        bundle,
    }
}

impl Site {
    fn pinned(&self) -> TrustedKeys {
        TrustedKeys::single(self.authority.public_key().clone())
    }

    fn claims(&self, used: u32) -> StatusClaims {
        let mut c = StatusClaims::sample(self.token.fingerprint(), now());
        c.features = vec!["sso".into()];
        c.expires_at = Some(now() + Duration::days(45));
        c.exp = now() + Duration::days(7);
        c.machine = Some(MachineClaim {
            id: Some("mch_1".into()),
            activated_at: Some(now()),
            mode: MachineMode::Floating,
            used,
            max: Some(20),
            lease_ttl: Some(900),
            lease_expires_at: Some(now() + Duration::minutes(15)),
        });
        c
    }

    fn relayed(&self, claims: &StatusClaims) -> String {
        let bundle = sign_bundle(&self.bundle, &self.authority).unwrap();
        sign_relayed(claims, &self.relay, &bundle).unwrap()
    }

    fn check(&self, doc: &str, at: Timestamp) -> Result<(), Error> {
        verify_relayed(
            doc.as_bytes(),
            &self.pinned(),
            &Expectations::for_token(self.token.fingerprint()),
            at,
        )
        .map(|_| ())
    }
}

fn refused_for(result: Result<(), Error>, why: &str) {
    match result {
        Err(e) => assert!(e.to_string().contains(why), "{e} (wanted: {why})"),
        Ok(()) => panic!("accepted (wanted: {why})"),
    }
}

#[test]
fn a_relayed_document_is_taken_through_its_bundle() {
    let s = site();
    let doc = s.relayed(&s.claims(20));
    let (verified, bundle) = verify_relayed(
        doc.as_bytes(),
        &s.pinned(),
        &Expectations::for_token(s.token.fingerprint()),
        now(),
    )
    .unwrap();
    assert_eq!(verified.claims().machine.as_ref().unwrap().used, 20);
    assert_eq!(bundle.site, "plant-7");
    // An instance that knows nothing of relays refuses it: the relay's key
    // is not the authority's.
    let plain = verify(
        doc.as_bytes(),
        &s.pinned(),
        &Expectations::for_token(s.token.fingerprint()),
        now(),
    );
    assert!(
        matches!(plain, Err(Error::UnknownKeyId { .. })),
        "{plain:?}"
    );
}

#[test]
fn each_attack_on_the_chain_is_refused_with_its_reason() {
    let s = site();
    let good = s.claims(20);

    // An edited bundle (20 seats made 200): its signature fails.
    let mut edited = s.bundle.clone();
    edited.licenses[0].max_machines = Some(200);
    let signed = sign_bundle(&s.bundle, &s.authority).unwrap();
    let forged_payload = sign_bundle(&edited, &s.relay).unwrap();
    // Splice: the forged payload under the authority's footer.
    let (head, _) = forged_payload.rsplit_once('.').unwrap();
    let (_, footer) = signed.rsplit_once('.').unwrap();
    let spliced = format!("{head}.{footer}");
    let doc = sign_relayed(&good, &s.relay, &spliced).unwrap();
    assert!(matches!(
        verify_relayed(
            doc.as_bytes(),
            &s.pinned(),
            &Expectations::for_token(s.token.fingerprint()),
            now()
        ),
        Err(Error::BadSignature)
    ));

    // A bundle signed by a key nobody pinned (the relay certifying itself).
    let self_signed = sign_bundle(&edited, &s.relay).unwrap();
    let doc = sign_relayed(&good, &s.relay, &self_signed).unwrap();
    assert!(matches!(
        verify_relayed(
            doc.as_bytes(),
            &s.pinned(),
            &Expectations::for_token(s.token.fingerprint()),
            now()
        ),
        Err(Error::UnknownKeyId { .. })
    ));

    // A stolen relay key after its bundle's expiry: dead, whatever it signs.
    let late = s.bundle.exp + Duration::seconds(1);
    let mut fresh = good.clone();
    fresh.iat = late;
    fresh.exp = late + Duration::days(1);
    let doc = s.relayed(&fresh);
    assert!(matches!(
        s.check(&doc, late),
        Err(Error::DocumentExpired { .. })
    ));

    // The 21st seat of 20.
    refused_for(
        s.check(&s.relayed(&s.claims(21)), now()),
        "more than the bundle's 20 machines",
    );
    let mut more = s.claims(5);
    more.machine.as_mut().unwrap().max = Some(21);
    refused_for(
        s.check(&s.relayed(&more), now()),
        "more than the bundle's 20 machines",
    );

    // A license the bundle does not name.
    let mut stranger = s.claims(1);
    stranger.tfp = LicenseToken::generate(&mut rand::rng()).fingerprint();
    let doc = s.relayed(&stranger);
    let e = verify_relayed(
        doc.as_bytes(),
        &s.pinned(),
        &Expectations::for_token(stranger.tfp.clone()),
        now(),
    )
    .map(|_| ());
    refused_for(e, "does not name this license");

    // Features, an end, a lifetime the bundle does not allow.
    let mut features = s.claims(1);
    features.features.push("audit".into());
    refused_for(s.check(&s.relayed(&features), now()), "grants \"audit\"");
    let mut later = s.claims(1);
    later.expires_at = Some(now() + Duration::days(90));
    refused_for(s.check(&s.relayed(&later), now()), "past the bundle's end");
    let mut perpetual = s.claims(1);
    perpetual.expires_at = None;
    refused_for(
        s.check(&s.relayed(&perpetual), now()),
        "past the bundle's end",
    );
    let mut outlives = s.claims(1);
    outlives.exp = s.bundle.exp + Duration::days(1);
    refused_for(s.check(&s.relayed(&outlives), now()), "outlives its bundle");

    // A document signed by another key than the bundle's relay.
    let bundle = sign_bundle(&s.bundle, &s.authority).unwrap();
    let intruder = SigningKey::from_seed(&[9; 32]);
    let doc = sign_relayed(&good, &intruder, &bundle).unwrap();
    refused_for(s.check(&doc, now()), "another key than the bundle's relay");

    // And the bundle alone checks out.
    assert_eq!(
        verify_bundle(&bundle, &s.pinned(), now()).unwrap(),
        s.bundle
    );
}
