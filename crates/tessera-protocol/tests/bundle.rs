//! Site bundles and relayed documents (issue 17, part 3 — the relay process
//! is not built yet): an instance pinning only the authority's key takes a
//! relay's document through the bundle, and refuses each attack with a
//! reason: an edited bundle, a bundle nobody pinned signed, a relay key used
//! after its bundle's expiry, the 21st seat of 20, a license the bundle does
//! not name, features or an end it does not allow, a document outliving it.

use chrono::{DateTime, Duration};
use tessera_protocol::bundle::{
    BundleLicense, MAX_CHAIN, SiteBundle, is_relayed, sign_bundle, sign_child_bundle, sign_relayed,
    verify_any, verify_bundle, verify_relayed,
};
use tessera_protocol::wire::MachineMode;
use tessera_protocol::{
    Error, Expectations, LicenseToken, MachineClaim, SigningKey, Status, StatusClaims, Timestamp,
    TrustedKeys, sign, verify,
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
            product: None,
            license: "lic_01936b2e-7c3a-7def-8a12-0123456789ab".into(),
            rev: 1,
            status: Status::Active,
            valid: true,
            plan: Some("enterprise".into()),
            customer: Some("Acme".into()),
            features: vec!["sso".into()],
            entitlements: Default::default(),
            on_expiry: Default::default(),
            enforcement: Default::default(),
            max_users: None,
            valid_from: None,
            expires_at: Some(now() + Duration::days(60)),
            max_machines: Some(20),
            machine_mode: Some(MachineMode::Floating),
            lease_ttl: Some(900),
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

#[test]
fn a_relay_cannot_change_what_the_license_is() {
    let s = site();
    // A suspended license in the bundle: the relay cannot answer it valid.
    let mut suspended = site();
    suspended.bundle.licenses[0].status = Status::Suspended;
    suspended.bundle.licenses[0].valid = false;
    refused_for(
        suspended.check(&suspended.relayed(&s.claims(1)), now()),
        "the bundle says is suspended",
    );
    // Another revision (a higher one would shadow the authority's next).
    let mut ahead = s.claims(1);
    ahead.rev = 9;
    refused_for(
        s.check(&s.relayed(&ahead), now()),
        "another license or revision",
    );
    // "Not found" grants nothing: a relay may answer it for any token.
    let stranger = LicenseToken::generate(&mut rand::rng()).fingerprint();
    let mut unknown = StatusClaims::sample(stranger.clone(), now());
    unknown.lic = None;
    unknown.status = Status::NotFound;
    unknown.valid = false;
    unknown.features = vec![];
    unknown.exp = now() + Duration::days(1);
    let doc = s.relayed(&unknown);
    verify_relayed(
        doc.as_bytes(),
        &s.pinned(),
        &Expectations::for_token(stranger.clone()),
        now(),
    )
    .unwrap();
    // … but not with a license id, or granting.
    unknown.valid = true;
    let doc = s.relayed(&unknown);
    refused_for(
        verify_relayed(
            doc.as_bytes(),
            &s.pinned(),
            &Expectations::for_token(stranger),
            now(),
        )
        .map(|_| ()),
        "does not name this license",
    );
    // No machine claim for a license that counts machines.
    let mut unbound = s.claims(1);
    unbound.machine = None;
    refused_for(s.check(&s.relayed(&unbound), now()), "no machine");
}

#[test]
fn verify_any_takes_direct_and_relayed_documents_alike() {
    let s = site();
    let expect = Expectations::for_token(s.token.fingerprint());
    let relayed = s.relayed(&s.claims(3));
    let direct = sign(&s.claims(3), &s.authority).unwrap();
    assert!(is_relayed(relayed.as_bytes()));
    assert!(!is_relayed(direct.as_bytes()));
    for doc in [&relayed, &direct] {
        let verified = verify_any(doc.as_bytes(), &s.pinned(), &expect, now()).unwrap();
        assert_eq!(verified.claims().machine.as_ref().unwrap().used, 3);
    }
    // A relay's document signed with no bundle is just an unknown key.
    let bare = sign(&s.claims(3), &s.relay).unwrap();
    assert!(matches!(
        verify_any(bare.as_bytes(), &s.pinned(), &expect, now()),
        Err(Error::UnknownKeyId { .. })
    ));
}

/// A site relay certifies a building's relay: the chain ends at the
/// authority, and the child may grant no more than the site holds.
#[test]
fn chained_relays_are_bounded_by_each_bundle_above() {
    let s = site();
    let parent = sign_bundle(&s.bundle, &s.authority).unwrap();
    let building = SigningKey::from_seed(&[10; 32]);
    let mut child = s.bundle.clone();
    child.site = "plant-7/hall-b".into();
    child.relay_key = building.public_key().to_paserk();
    child.exp = now() + Duration::days(10);
    child.licenses[0].max_machines = Some(5);
    let child_text = sign_child_bundle(&child, &s.relay, &parent).unwrap();
    assert_eq!(
        verify_bundle(&child_text, &s.pinned(), now()).unwrap(),
        child
    );
    let expect = Expectations::for_token(s.token.fingerprint());
    let mut claims = s.claims(5);
    claims.machine.as_mut().unwrap().max = Some(5);
    claims.exp = now() + Duration::days(5);
    let doc = sign_relayed(&claims, &building, &child_text).unwrap();
    let (_, bundle) = verify_relayed(doc.as_bytes(), &s.pinned(), &expect, now()).unwrap();
    assert_eq!(bundle.site, "plant-7/hall-b");
    // The sixth seat of the building's five.
    let mut sixth = claims.clone();
    sixth.machine.as_mut().unwrap().used = 6;
    let doc = sign_relayed(&sixth, &building, &child_text).unwrap();
    refused_for(
        verify_relayed(doc.as_bytes(), &s.pinned(), &expect, now()).map(|_| ()),
        "more than the bundle's 5 machines",
    );
    // A child granting more than its parent: 25 seats of 20, or a feature.
    let mut greedy = child.clone();
    greedy.licenses[0].max_machines = Some(25);
    let text = sign_child_bundle(&greedy, &s.relay, &parent).unwrap();
    refused_for(
        verify_bundle(&text, &s.pinned(), now()).map(|_| ()),
        "grants more for",
    );
    let mut featureful = child.clone();
    featureful.licenses[0].features.push("audit".into());
    let text = sign_child_bundle(&featureful, &s.relay, &parent).unwrap();
    refused_for(
        verify_bundle(&text, &s.pinned(), now()).map(|_| ()),
        "grants more for",
    );
    // A child outliving its parent, or signed by a key the parent does not name.
    let mut long = child.clone();
    long.exp = s.bundle.exp + Duration::days(1);
    let text = sign_child_bundle(&long, &s.relay, &parent).unwrap();
    refused_for(
        verify_bundle(&text, &s.pinned(), now()).map(|_| ()),
        "outlives its parent",
    );
    let text = sign_child_bundle(&child, &building, &parent).unwrap();
    refused_for(
        verify_bundle(&text, &s.pinned(), now()).map(|_| ()),
        "another key than its parent's relay",
    );
    // Past the parent's expiry the child is dead too.
    let late = s.bundle.exp + Duration::seconds(1);
    let mut endless = child.clone();
    endless.exp = s.bundle.exp;
    let text = sign_child_bundle(&endless, &s.relay, &parent).unwrap();
    assert!(matches!(
        verify_bundle(&text, &s.pinned(), late),
        Err(Error::DocumentExpired { .. })
    ));
    // A chain longer than MAX_CHAIN is refused.
    let mut text = parent.clone();
    let mut seed = 8u8; // s.relay's
    for depth in 0..MAX_CHAIN {
        let next = SigningKey::from_seed(&[20 + depth as u8; 32]);
        let mut b = child.clone();
        b.relay_key = next.public_key().to_paserk();
        text = sign_child_bundle(&b, &SigningKey::from_seed(&[seed; 32]), &text).unwrap();
        seed = 20 + depth as u8;
    }
    refused_for(
        verify_bundle(&text, &s.pinned(), now()).map(|_| ()),
        "relays in the chain",
    );
}
