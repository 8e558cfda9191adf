//! Unit tests of the verdict (docs/PROTOCOL.md §7, §20, §21, §24).
use super::*;
use chrono::DateTime;
use tessera_protocol::Entitlements;
use tessera_protocol::{
    Expectations, LicenseToken, SigningKey, StatusClaims, TrustedKeys, sign, verify,
};

fn t0() -> Timestamp {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn doc(status: Status, expires_in: Option<Duration>) -> VerifiedDocument {
    doc_with(status, expires_in, |_| {})
}

fn doc_with(
    status: Status,
    expires_in: Option<Duration>,
    tweak: impl FnOnce(&mut StatusClaims),
) -> VerifiedDocument {
    let key = SigningKey::from_seed(&[3; 32]);
    let token = LicenseToken::generate(&mut rand::rng());
    let mut claims = StatusClaims {
        lic: Some("lic_01936b2e-7c3a-7def-8a12-0123456789ab".into()),
        product: None,
        tfp: token.fingerprint(),
        iid: None,
        nonce: None,
        mfp: None,
        machine: None,
        status,
        valid: status.is_valid(),
        plan: Some("p".into()),
        features: vec!["sso".into(), "audit".into()],
        entitlements: Entitlements::new(),
        on_expiry: OnExpiry::LoseAccess,
        enforcement: Default::default(),
        max_users: None,
        seats_exceeded: false,
        customer: None,
        valid_from: Some(t0()),
        expires_at: expires_in.map(|d| t0() + d),
        rev: 1,
        iat: t0(),
        refresh_after: t0() + Duration::hours(1),
        exp: t0() + Duration::days(7),
    };
    tweak(&mut claims);
    let text = sign(&claims, &key).unwrap();
    verify(
        text.as_bytes(),
        &TrustedKeys::single(key.public_key().clone()),
        &Expectations::for_token(token.fingerprint()),
        t0(),
    )
    .unwrap()
}

#[test]
fn a_feature_ends_at_its_own_instant_by_the_clock() {
    let mut ent = Entitlements::new();
    let end = t0() + Duration::hours(2);
    ent.insert(
        "audit".into(),
        tessera_protocol::Entitlement {
            expires_at: Some(end),
            quota: None,
        },
    );
    let d = doc_with(Status::Active, Some(Duration::days(30)), |c| {
        c.entitlements = ent
    });
    let before = compute(Some(&d), end - Duration::seconds(1), &ctx(None));
    assert!(before.has_feature("audit") && before.has_feature("sso"));
    assert_eq!(before.changes_at, Some(end), "republished at that instant");
    let after = compute(Some(&d), end, &ctx(None));
    assert!(
        !after.has_feature("audit"),
        "off at its end, no server call"
    );
    assert!(after.has_feature("sso") && after.is_valid());
    assert_eq!(
        next_change(Some(&d), t0() + Duration::minutes(90)),
        Some(end)
    );
}

#[test]
fn expiry_takes_what_the_policy_says() {
    let end = t0() + Duration::days(1);
    let later = end + Duration::hours(1);
    let released = |at: Option<Timestamp>| Context {
        app_released_at: at,
        ..ctx(None)
    };
    for status in [Status::Active, Status::Expired] {
        let with = |rule| doc_with(status, Some(Duration::days(1)), |c| c.on_expiry = rule);
        let lose = compute(Some(&with(OnExpiry::LoseAccess)), later, &released(None));
        assert_eq!(
            (lose.state, lose.after_expiry),
            (VerdictState::Expired, None)
        );
        let keep = compute(Some(&with(OnExpiry::KeepAccess)), later, &released(None));
        assert_eq!(
            (keep.state, keep.after_expiry),
            (VerdictState::Valid, Some(OnExpiry::KeepAccess))
        );
        assert!(keep.has_feature("sso"));
        let versions = with(OnExpiry::KeepVersionsReleasedBeforeExpiry);
        let old = compute(
            Some(&versions),
            later,
            &released(Some(end - Duration::days(30))),
        );
        assert_eq!(
            old.after_expiry,
            Some(OnExpiry::KeepVersionsReleasedBeforeExpiry)
        );
        assert!(
            old.is_valid() && old.has_feature("sso"),
            "released before: covered"
        );
        let new = compute(
            Some(&versions),
            later,
            &released(Some(end + Duration::minutes(1))),
        );
        assert_eq!(
            new.state,
            VerdictState::Expired,
            "released after: not covered"
        );
        let unknown = compute(Some(&versions), later, &released(None));
        assert_eq!(
            unknown.state,
            VerdictState::Expired,
            "no release date: not covered"
        );
    }
}

fn ctx(hwm: Option<Timestamp>) -> Context {
    Context {
        high_water_mark: hwm,
        tolerance: Duration::hours(1),
        ..Context::default()
    }
}

#[test]
fn the_order_of_design_section_6() {
    let valid = doc(Status::Active, Some(Duration::days(30)));
    let v = compute(None, t0(), &ctx(None));
    assert_eq!(
        (v.state, v.reason),
        (VerdictState::Unverified, Some(UnverifiedReason::NoDocument))
    );
    let v = compute(Some(&valid), t0(), &ctx(None));
    assert_eq!(v.state, VerdictState::Valid);
    assert!(v.has_feature("sso") && !v.has_feature("x"));
    // Clock more than the tolerance behind the mark: tampered, even though
    // the document would otherwise be fine.
    let v = compute(Some(&valid), t0(), &ctx(Some(t0() + Duration::minutes(61))));
    assert_eq!(v.reason, Some(UnverifiedReason::ClockTampered));
    assert!(!v.has_feature("sso"));
    let v = compute(Some(&valid), t0(), &ctx(Some(t0() + Duration::minutes(59))));
    assert_eq!(v.state, VerdictState::Valid, "within the tolerance");
    // Past exp: stale beats everything below.
    let revoked = doc(Status::Revoked, None);
    let late = t0() + Duration::days(7) + Duration::seconds(1);
    assert_eq!(
        compute(Some(&revoked), late, &ctx(None)).reason,
        Some(UnverifiedReason::Stale)
    );
    assert_eq!(
        compute(Some(&revoked), t0(), &ctx(None)).state,
        VerdictState::Revoked
    );
    assert_eq!(
        compute(Some(&doc(Status::Suspended, None)), t0(), &ctx(None)).state,
        VerdictState::Suspended
    );
    assert_eq!(
        compute(Some(&doc(Status::NotFound, None)), t0(), &ctx(None)).state,
        VerdictState::NotFound
    );
    // Expiry by the local clock, with no new document.
    let short = doc(Status::Active, Some(Duration::hours(2)));
    assert_eq!(
        compute(Some(&short), t0() + Duration::hours(2), &ctx(None)).state,
        VerdictState::Expired
    );
    assert_eq!(
        compute(Some(&short), t0() + Duration::minutes(119), &ctx(None)).state,
        VerdictState::Valid
    );
    assert_eq!(
        compute(Some(&doc(Status::Trial, None)), t0(), &ctx(None)).state,
        VerdictState::Valid
    );
}

#[test]
fn next_change_is_the_nearest_deadline() {
    let d = doc(Status::Active, Some(Duration::minutes(30)));
    assert_eq!(
        next_change(Some(&d), t0()),
        Some(t0() + Duration::minutes(30))
    );
    assert_eq!(
        next_change(Some(&d), t0() + Duration::minutes(45)),
        Some(t0() + Duration::hours(1))
    );
    assert_eq!(next_change(None, t0()), None);
}

#[test]
fn a_policy_that_only_warns_keeps_the_verdict_usable() {
    use tessera_protocol::wire::Enforcement;
    let later = t0() + Duration::days(2);
    let warn = |status, valid: bool| {
        doc_with(status, Some(Duration::days(1)), |c| {
            c.enforcement = Enforcement::Warn;
            c.valid = valid;
        })
    };
    // Expired by the clock, offline: usable, with the warning.
    let v = compute(Some(&warn(Status::Active, true)), later, &ctx(None));
    assert_eq!(
        (v.state, v.warnings.as_slice()),
        (VerdictState::Valid, &["expired".to_owned()][..])
    );
    assert!(v.has_feature("sso"));
    // A machine refusal signed under `warn` (valid, features kept).
    let v = compute(Some(&warn(Status::TooManyMachines, true)), t0(), &ctx(None));
    assert_eq!(
        (v.state, v.warnings.as_slice()),
        (VerdictState::Valid, &["too_many_machines".to_owned()][..])
    );
    // Suspension is the vendor's act: never softened.
    let v = compute(Some(&warn(Status::Suspended, false)), t0(), &ctx(None));
    assert_eq!((v.state, v.warnings.len()), (VerdictState::Suspended, 0));
    // A quota past its blocking point is a warning, not a refusal.
    let q = tessera_protocol::Quota::parse("10/month")
        .unwrap()
        .as_of(t0(), 12);
    let d = doc_with(Status::Active, Some(Duration::days(30)), |c| {
        c.enforcement = Enforcement::Observe;
        c.entitlements.insert(
            "api".into(),
            tessera_protocol::Entitlement {
                expires_at: None,
                quota: Some(q),
            },
        );
    });
    let v = compute(Some(&d), t0(), &ctx(None));
    assert_eq!(
        (v.state, v.warnings.as_slice()),
        (VerdictState::Valid, &["quota_exhausted:api".to_owned()][..])
    );
    // Under `enforce`, nothing of the kind.
    let v = compute(
        Some(&doc_with(Status::Active, Some(Duration::days(1)), |_| {})),
        later,
        &ctx(None),
    );
    assert_eq!((v.state, v.warnings.len()), (VerdictState::Expired, 0));
}
