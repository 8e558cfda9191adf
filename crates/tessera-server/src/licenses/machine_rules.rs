//! The machine rules (docs/PROTOCOL.md §19) as plain functions: settings,
//! what a machine may send, when two activations are the same machine,
//! and how long a lease or borrow lasts.

use std::collections::BTreeSet;

use chrono::Duration;
use tessera_protocol::Timestamp;
use tessera_protocol::wire::{
    FingerprintMatch, MAX_COMPONENTS, MachineInput, MachineMode, check_fingerprint,
    machine_fingerprint_hash,
};

use super::fields::duration_field;
use crate::error::{Error, Result};
use crate::model::{Machine, MachineSettings};

/// The shortest lease (tests use seconds).
pub const MIN_LEASE_TTL: Duration = Duration::seconds(1);

/// `input` over `base` (the policy's settings, or the defaults).
///
/// # Errors
/// 422 `invalid_duration` for a lease under a second or a borrow longer
/// than a document may live; 422 `invalid_field` for a limit of zero.
pub fn machine_settings(input: &MachineInput, base: MachineSettings) -> Result<MachineSettings> {
    let mut s = base;
    if let Some(max) = input.max_machines {
        if max == 0 {
            return Err(Error::unprocessable(
                "invalid_field",
                "max_machines must be at least 1 (leave it out for unlimited)",
            ));
        }
        s.max_machines = Some(max);
    }
    if let Some(mode) = input.machine_mode {
        s.mode = mode;
    }
    if let Some(ttl) = &input.lease_ttl {
        s.lease_ttl = duration_field("lease_ttl", ttl)?;
        if s.lease_ttl < MIN_LEASE_TTL {
            return Err(Error::unprocessable(
                "invalid_duration",
                "lease_ttl must be at least 1s",
            ));
        }
    }
    if let Some(borrow) = &input.max_borrow {
        s.max_borrow = match borrow.trim() {
            "0" => Duration::zero(),
            text => duration_field("max_borrow", text)?,
        };
        if s.max_borrow > tessera_protocol::MAX_DOCUMENT_LIFETIME {
            return Err(Error::unprocessable(
                "invalid_duration",
                format!(
                    "max_borrow may be at most {} days: no document lives longer",
                    tessera_protocol::MAX_DOCUMENT_LIFETIME.num_days()
                ),
            ));
        }
    }
    if let Some(m) = input.fingerprint_match {
        s.fingerprint_match = m;
    }
    Ok(s)
}

/// A machine's fingerprint and components, checked: the fingerprint hash
/// and the component hashes (the authority keeps neither in clear).
///
/// # Errors
/// 400 `invalid_fingerprint` for a fingerprint or component that is empty,
/// longer than 256 characters or not printable ASCII, for more than 16
/// components, or for a component named twice.
pub fn machine_identity(fingerprint: &str, components: &[String]) -> Result<(String, Vec<String>)> {
    let bad = |e: tessera_protocol::Error| Error::bad_request("invalid_fingerprint", e.to_string());
    check_fingerprint("fingerprint", fingerprint).map_err(bad)?;
    if components.len() > MAX_COMPONENTS {
        return Err(Error::bad_request(
            "invalid_fingerprint",
            format!("at most {MAX_COMPONENTS} components"),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in components {
        check_fingerprint("component", c).map_err(bad)?;
        if !seen.insert(c.as_str()) {
            return Err(Error::bad_request(
                "invalid_fingerprint",
                format!("component {c:?} is given twice"),
            ));
        }
    }
    let hashes = components
        .iter()
        .map(|c| machine_fingerprint_hash(c))
        .collect();
    Ok((machine_fingerprint_hash(fingerprint), hashes))
}

/// Whether `machine` is the one that asks (fingerprint hash `mfp`,
/// component hashes `components`) under `rule`.
#[must_use]
pub fn same_machine(
    machine: &Machine,
    mfp: &str,
    components: &[String],
    rule: FingerprintMatch,
) -> bool {
    if machine.mfp == mfp {
        return true;
    }
    match rule {
        FingerprintMatch::Exact => false,
        FingerprintMatch::AtLeast(n) => {
            let shared = components
                .iter()
                .filter(|c| machine.components.contains(c))
                .count();
            shared >= usize::from(n)
        }
    }
}

/// When a lease taken or renewed at `now` ends (`None`: node-locked, no
/// lease).
#[must_use]
pub fn lease_until(settings: &MachineSettings, now: Timestamp) -> Option<Timestamp> {
    (settings.mode == MachineMode::Floating).then(|| now + settings.lease_ttl)
}

/// Check a borrow until `until` asked at `now`.
///
/// # Errors
/// 422 `borrow_not_allowed` for a node-locked license or one without
/// borrowing, `borrow_too_long` past `max_borrow`, `invalid_date` for a
/// time not in the future.
pub fn borrow_until(
    settings: &MachineSettings,
    until: Timestamp,
    now: Timestamp,
) -> Result<Timestamp> {
    if settings.mode != MachineMode::Floating || settings.max_borrow <= Duration::zero() {
        return Err(Error::unprocessable(
            "borrow_not_allowed",
            "this license does not allow borrowing (floating licenses with max_borrow only)",
        ));
    }
    if until <= now {
        return Err(Error::unprocessable(
            "invalid_date",
            "until must be in the future",
        ));
    }
    if until > now + settings.max_borrow {
        return Err(Error::unprocessable(
            "borrow_too_long",
            format!(
                "a lease may be borrowed for at most {}",
                tessera_protocol::human::format_duration(settings.max_borrow)
            ),
        ));
    }
    Ok(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_protocol::wire::MachineState;

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn floating(max_borrow: &str) -> MachineSettings {
        let input = MachineInput {
            machine_mode: Some(MachineMode::Floating),
            lease_ttl: Some("10s".into()),
            max_borrow: Some(max_borrow.into()),
            ..MachineInput::default()
        };
        machine_settings(&input, MachineSettings::default()).unwrap()
    }

    fn code(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Unprocessable { code, .. } | Error::BadRequest { code, .. }) => code.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_take_the_input_over_the_base() {
        let d = MachineSettings::default();
        assert!(!d.counts_machines());
        assert_eq!(d.lease_ttl, Duration::minutes(15));
        let f = floating("7d");
        assert!(f.counts_machines());
        assert_eq!(
            (f.lease_ttl, f.max_borrow),
            (Duration::seconds(10), Duration::days(7))
        );
        let limited = |max| MachineInput {
            max_machines: Some(max),
            ..MachineInput::default()
        };
        assert_eq!(
            machine_settings(&limited(3), f).unwrap().max_machines,
            Some(3)
        );
        assert_eq!(code(machine_settings(&limited(0), d)), "invalid_field");
        let ttl = |t: &str| MachineInput {
            lease_ttl: Some(t.into()),
            ..MachineInput::default()
        };
        assert_eq!(
            machine_settings(&ttl("1s"), d).unwrap().lease_ttl,
            Duration::seconds(1)
        );
        assert_eq!(code(machine_settings(&ttl("0s"), d)), "invalid_duration");
        assert_eq!(code(machine_settings(&ttl("soon"), d)), "invalid_duration");
        assert_eq!(floating("0").max_borrow, Duration::zero());
        let long = MachineInput {
            max_borrow: Some("500d".into()),
            ..MachineInput::default()
        };
        assert_eq!(code(machine_settings(&long, d)), "invalid_duration");
    }

    #[test]
    fn identities_are_checked_and_hashed() {
        let (mfp, parts) = machine_identity("node-3", &["cpu:1".into(), "disk:2".into()]).unwrap();
        assert_eq!(mfp.len(), 32);
        assert_eq!(parts.len(), 2);
        assert_ne!(parts[0], "cpu:1", "components are kept as hashes");
        assert_eq!(code(machine_identity("", &[])), "invalid_fingerprint");
        assert_eq!(
            code(machine_identity(&"x".repeat(257), &[])),
            "invalid_fingerprint"
        );
        assert_eq!(code(machine_identity("a\u{7}", &[])), "invalid_fingerprint");
        let twice = ["cpu:1".to_owned(), "cpu:1".to_owned()];
        assert_eq!(
            code(machine_identity("node", &twice)),
            "invalid_fingerprint"
        );
        let many: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
        assert_eq!(code(machine_identity("node", &many)), "invalid_fingerprint");
    }

    #[test]
    fn a_changed_fingerprint_is_the_same_machine_by_enough_components() {
        let (_, old) = machine_identity("a", &["cpu".into(), "disk".into(), "mac".into()]).unwrap();
        let machine = Machine {
            id: "mch_1".into(),
            license_id: crate::model::License::example().id,
            mfp: machine_fingerprint_hash("a"),
            name: None,
            hostname: None,
            platform: None,
            components: old,
            state: MachineState::Active,
            activated_at: at(0),
            last_heartbeat: at(0),
            lease_expires_at: None,
            ended_at: None,
            heartbeat_started: true,
        };
        let (mfp, new) =
            machine_identity("b", &["cpu".into(), "disk".into(), "nic2".into()]).unwrap();
        assert!(!same_machine(&machine, &mfp, &new, FingerprintMatch::Exact));
        assert!(same_machine(
            &machine,
            &mfp,
            &new,
            FingerprintMatch::AtLeast(2)
        ));
        assert!(!same_machine(
            &machine,
            &mfp,
            &new,
            FingerprintMatch::AtLeast(3)
        ));
        assert!(same_machine(
            &machine,
            &machine_fingerprint_hash("a"),
            &[],
            FingerprintMatch::Exact
        ));
    }

    #[test]
    fn leases_and_borrows() {
        let f = floating("1h");
        assert_eq!(lease_until(&f, at(0)), Some(at(10)));
        assert_eq!(lease_until(&MachineSettings::default(), at(0)), None);
        assert_eq!(borrow_until(&f, at(3600), at(0)).unwrap(), at(3600));
        assert_eq!(code(borrow_until(&f, at(3601), at(0))), "borrow_too_long");
        assert_eq!(code(borrow_until(&f, at(0), at(0))), "invalid_date");
        assert_eq!(
            code(borrow_until(&floating("0"), at(60), at(0))),
            "borrow_not_allowed"
        );
        let locked = MachineSettings::default();
        assert_eq!(
            code(borrow_until(&locked, at(60), at(0))),
            "borrow_not_allowed"
        );
    }
}
