//! The license rules as plain functions: no store, no clock (every "now" is
//! an argument), so each is tested on its own below. The components in this
//! module call them; the HTTP layer never does.

use chrono::Duration;
pub use tessera_protocol::wire::StateAction;
use tessera_protocol::wire::{
    ExtendRequest, IssueLicenseRequest, LicenseState, PolicyInput, PolicyUpdate, RenewalBasis,
};
use tessera_protocol::{PolicyId, Timestamp};

use super::fields::{
    check_features, check_text, date_field, duration_field, later, lifetime_field,
};
use crate::error::{Error, Result};
use crate::model::{License, Policy};

/// The refresh interval is at least a minute and the offline grace covers
/// a refresh.
fn check_timing(refresh_interval: Duration, offline_grace: Duration) -> Result<()> {
    if refresh_interval < Duration::minutes(1) {
        return Err(Error::unprocessable(
            "invalid_duration",
            "refresh_interval must be at least 1m",
        ));
    }
    if offline_grace < refresh_interval {
        return Err(Error::unprocessable(
            "invalid_duration",
            "offline_grace must be at least refresh_interval, or clients go stale between refreshes",
        ));
    }
    Ok(())
}

/// `current` with `update`'s settings, checked as a new policy's are.
///
/// # Errors
/// 422 naming the field; 422 `nothing_to_update` for an empty update.
pub fn updated_policy(current: &Policy, update: &PolicyUpdate) -> Result<Policy> {
    if update.enforcement.is_none()
        && update.on_expiry.is_none()
        && update.offline_grace.is_none()
        && update.refresh_interval.is_none()
    {
        return Err(Error::unprocessable(
            "nothing_to_update",
            "name at least one setting to change: enforcement, on_expiry, offline_grace, refresh_interval",
        ));
    }
    let mut next = current.clone();
    if let Some(t) = &update.refresh_interval {
        next.refresh_interval = duration_field("refresh_interval", t)?;
    }
    if let Some(t) = &update.offline_grace {
        next.offline_grace = lifetime_field("offline_grace", t)?;
    }
    check_timing(next.refresh_interval, next.offline_grace)?;
    next.enforcement = update.enforcement.unwrap_or(next.enforcement);
    next.on_expiry = update.on_expiry.unwrap_or(next.on_expiry);
    Ok(next)
}

/// A license's verdict at `now` as its policy settings make it, in words
/// (a policy update's preview): `valid`, `valid (warns: expired)`,
/// `valid (kept after expiry)`, `expired`, `expired (older versions
/// kept)`, `suspended`, `revoked`.
#[must_use]
pub fn verdict_word(license: &License, now: Timestamp) -> &'static str {
    use tessera_protocol::Status;
    use tessera_protocol::wire::{Enforcement, OnExpiry};
    match license.status_at(now) {
        Status::Expired => match (license.policy.on_expiry, license.policy.enforcement) {
            (OnExpiry::KeepAccess, _) => "valid (kept after expiry)",
            (_, Enforcement::Warn | Enforcement::Observe) => "valid (warns: expired)",
            (OnExpiry::KeepVersionsReleasedBeforeExpiry, Enforcement::Enforce) => {
                "expired (older versions kept)"
            }
            (OnExpiry::LoseAccess, Enforcement::Enforce) => "expired",
        },
        Status::Suspended => "suspended",
        Status::Revoked => "revoked",
        _ => "valid",
    }
}

/// A policy from the admin's input, checked: durations parse, the refresh
/// interval is at least a minute, the offline grace covers a refresh, and
/// an auto-renewing policy has a period its `renew_before` fits in.
///
/// # Errors
/// 422 naming the field.
pub fn new_policy(input: PolicyInput, id: PolicyId, now: Timestamp) -> Result<Policy> {
    let name = input.name.trim().to_owned();
    check_text("policy name", &name)?;
    let refresh_interval = match &input.refresh_interval {
        Some(t) => duration_field("refresh_interval", t)?,
        None => Policy::DEFAULT_REFRESH_INTERVAL,
    };
    let offline_grace = match &input.offline_grace {
        Some(t) => lifetime_field("offline_grace", t)?,
        None => Policy::DEFAULT_OFFLINE_GRACE,
    };
    check_timing(refresh_interval, offline_grace)?;
    let optional = |field: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|t| duration_field(field, t))
            .transpose()
    };
    let duration = optional("duration", &input.duration)?;
    let auto_renew_period = optional("auto_renew_period", &input.auto_renew_period)?;
    if input.auto_renew && auto_renew_period.or(duration).is_none() {
        return Err(Error::unprocessable(
            "invalid_field",
            "auto_renew needs auto_renew_period or a duration",
        ));
    }
    let renew_before = match &input.renew_before {
        Some(t) => duration_field("renew_before", t)?,
        None => Policy::DEFAULT_RENEW_BEFORE,
    };
    if let Some(period) = auto_renew_period.or(duration)
        && input.auto_renew
        && renew_before >= period
    {
        return Err(Error::unprocessable(
            "invalid_duration",
            "renew_before must be shorter than the renewal period, or every renewal would be due at once",
        ));
    }
    if input.trial && duration.is_none() {
        return Err(Error::unprocessable(
            "invalid_duration",
            "a trial policy needs a duration (e.g. 14d): trials end",
        ));
    }
    Ok(Policy {
        id,
        name,
        duration,
        features: check_features(&input.features)?,
        max_users: input.max_users,
        trial: input.trial,
        refresh_interval,
        offline_grace,
        renewal_basis: input.renewal_basis.unwrap_or_default(),
        auto_renew: input.auto_renew,
        auto_renew_period,
        renew_before,
        on_expiry: input.on_expiry,
        enforcement: input.enforcement,
        machines: super::machine_rules::machine_settings(
            &input.machines,
            crate::model::MachineSettings::default(),
        )?,
        product: None,
        created_at: now,
    })
}

/// The expiry a new license gets: the request's date, its duration, or
/// perpetual (at most one of them), else the policy's default duration.
/// `None` is perpetual.
///
/// # Errors
/// 422 for conflicting fields, a date not in the future, or a policy
/// without a default when the request gives none.
pub fn issue_expiry(
    req: &IssueLicenseRequest,
    policy: &Policy,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let given = usize::from(req.expires_at.is_some())
        + usize::from(req.duration.is_some())
        + usize::from(req.perpetual);
    if given > 1 {
        return Err(Error::unprocessable(
            "conflicting_fields",
            "give at most one of expires_at, duration and perpetual",
        ));
    }
    let expires_at = if let Some(at) = &req.expires_at {
        Some(date_field("expires_at", at)?)
    } else if let Some(d) = &req.duration {
        Some(later("expires_at", now, duration_field("duration", d)?)?)
    } else if req.perpetual {
        None
    } else if let Some(d) = policy.duration {
        Some(later("expires_at", now, d)?)
    } else {
        return Err(Error::unprocessable(
            "expiry_required",
            format!(
                "policy {:?} has no default duration: give expires_at, duration or perpetual",
                policy.name
            ),
        ));
    };
    if let Some(at) = expires_at
        && at <= now
    {
        return Err(Error::unprocessable(
            "expiry_in_past",
            "expires_at must be in the future",
        ));
    }
    Ok(expires_at)
}

/// What an extension asks for: a new expiry date, or a duration counted by
/// the policy's renewal basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// To this date.
    To(Timestamp),
    /// By this long.
    By(Duration),
}

impl Extension {
    /// Parse an extend request: exactly one of `to` and `by`.
    ///
    /// # Errors
    /// 422 for neither, both, or a malformed value.
    pub fn parse(req: &ExtendRequest) -> Result<Self> {
        match (&req.to, &req.by) {
            (Some(to), None) => Ok(Self::To(date_field("to", to)?)),
            (None, Some(by)) => Ok(Self::By(duration_field("by", by)?)),
            _ => Err(Error::unprocessable(
                "conflicting_fields",
                "give exactly one of to (a date) and by (a duration such as 30d)",
            )),
        }
    }

    /// The expiry this extension gives `license` at `now`: `by` counts
    /// from now or from the current expiry, as the policy says.
    ///
    /// # Errors
    /// 409 for a revoked license, or `by` from the expiry of a perpetual
    /// one; 422 when the result is not in the future.
    pub fn new_expiry(self, license: &License, now: Timestamp) -> Result<Timestamp> {
        if license.state == LicenseState::Revoked {
            return Err(Error::conflict(
                "license_revoked",
                "a revoked license cannot be extended",
            ));
        }
        let new_expiry = match self {
            Self::To(to) => to,
            Self::By(by) => match (license.policy.renewal_basis, license.expires_at) {
                (RenewalBasis::FromNow, _) => later("the new expiry", now, by)?,
                (RenewalBasis::FromExpiry, Some(exp)) => later("the new expiry", exp, by)?,
                (RenewalBasis::FromExpiry, None) => {
                    return Err(Error::conflict(
                        "license_perpetual",
                        "the license is perpetual: there is no expiry to extend from",
                    ));
                }
            },
        };
        if new_expiry <= now {
            return Err(Error::unprocessable(
                "expiry_in_past",
                format!(
                    "the new expiry {} is not in the future",
                    tessera_protocol::time::format(&new_expiry)
                ),
            ));
        }
        Ok(new_expiry)
    }
}

/// The transition table: the state `action` leads to from `state`, or the
/// 409 that explains why it cannot.
///
/// | from \ action | suspend | reinstate | revoke |
/// |---|---|---|---|
/// | active | suspended | `not_suspended` | revoked |
/// | suspended | `already_suspended` | active | revoked |
/// | revoked | `license_revoked` | `license_revoked` | `already_revoked` |
///
/// # Errors
/// 409 with the code in the table.
pub fn transition(state: LicenseState, action: StateAction) -> Result<LicenseState> {
    use LicenseState::{Active, Revoked, Suspended};
    use StateAction::{Reinstate, Revoke, Suspend};
    let refused = |code, message| Err(Error::conflict(code, message));
    match (state, action) {
        (Active, Suspend) => Ok(Suspended),
        (Suspended, Reinstate) => Ok(Active),
        (Active | Suspended, Revoke) => Ok(Revoked),
        (Suspended, Suspend) => refused("already_suspended", "the license is already suspended"),
        (Active, Reinstate) => refused("not_suspended", "the license is not suspended"),
        (Revoked, Revoke) => refused("already_revoked", "the license is already revoked"),
        (Revoked, Suspend) => refused("license_revoked", "a revoked license cannot be suspended"),
        (Revoked, Reinstate) => {
            refused("license_revoked", "a revoked license cannot be reinstated")
        }
    }
}

/// More seats in use than the limit allows (no limit, or no report: no).
#[must_use]
pub fn seats_exceeded(max_users: Option<u32>, seats_in_use: Option<u32>) -> bool {
    max_users.zip(seats_in_use).is_some_and(|(max, n)| n > max)
}

/// Whether a client's held document (named in `If-None-Match`) can be
/// answered "not modified": no nonce asked for, still the current
/// revision, and younger than half the offline grace (so a client only
/// ever told "not modified" still gets a fresh `exp` in time).
#[must_use]
pub fn held_is_current(
    license: &License,
    held_revision: u64,
    held_issued_at: Timestamp,
    has_nonce: bool,
    now: Timestamp,
) -> bool {
    !has_nonce
        && held_revision == license.revision
        && now - held_issued_at < license.policy.offline_grace / 2
}

/// Check an `app_version` a client reports.
///
/// # Errors
/// 400 when longer than 64 characters or holding control characters.
pub fn check_app_version(version: &str) -> Result<()> {
    if version.len() > 64 || version.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "invalid_app_version",
            "app_version must be at most 64 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LicensePolicy;
    use tessera_protocol::wire::LicenseState::{Active, Revoked, Suspended};

    fn at(text: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn policy(duration: Option<Duration>) -> Policy {
        new_policy(
            PolicyInput {
                name: "standard".into(),
                duration: duration.map(|d| format!("{}d", d.num_days())),
                ..PolicyInput::default()
            },
            PolicyId::parse("pol_test").unwrap(),
            at("2026-01-01T00:00:00Z"),
        )
        .unwrap()
    }

    fn license(basis: RenewalBasis, expires_at: Option<Timestamp>, state: LicenseState) -> License {
        let mut l = License::example();
        l.policy = LicensePolicy {
            renewal_basis: basis,
            ..l.policy
        };
        l.expires_at = expires_at;
        l.state = state;
        l
    }

    #[test]
    fn the_transition_table() {
        use StateAction::{Reinstate, Revoke, Suspend};
        let code = |s, a| match transition(s, a) {
            Ok(to) => format!("{to:?}"),
            Err(Error::Conflict { code, .. }) => code.to_owned(),
            Err(e) => panic!("{e}"),
        };
        let table = [
            (Active, ["Suspended", "not_suspended", "Revoked"]),
            (Suspended, ["already_suspended", "Active", "Revoked"]),
            (
                Revoked,
                ["license_revoked", "license_revoked", "already_revoked"],
            ),
        ];
        for (from, expected) in table {
            for (action, want) in [Suspend, Reinstate, Revoke].into_iter().zip(expected) {
                assert_eq!(code(from, action), want, "{from:?} {action:?}");
            }
        }
    }

    #[test]
    fn policy_fields_are_checked() {
        let now = at("2026-01-01T00:00:00Z");
        let make =
            |input: PolicyInput| new_policy(input, PolicyId::parse("pol_test").unwrap(), now);
        let base = PolicyInput {
            name: "p".into(),
            ..PolicyInput::default()
        };
        let p = make(base.clone()).unwrap();
        assert_eq!(p.refresh_interval, Policy::DEFAULT_REFRESH_INTERVAL);
        assert_eq!(p.offline_grace, Policy::DEFAULT_OFFLINE_GRACE);
        let refused = |input: PolicyInput| match make(input) {
            Err(Error::Unprocessable { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        let with = |edit: fn(&mut PolicyInput)| {
            let mut input = base.clone();
            edit(&mut input);
            input
        };
        let fast = with(|i| i.refresh_interval = Some("30s".into()));
        assert_eq!(refused(fast), "invalid_duration");
        let grace_below_refresh = with(|i| {
            i.refresh_interval = Some("2h".into());
            i.offline_grace = Some("1h".into());
        });
        assert_eq!(refused(grace_below_refresh), "invalid_duration");
        assert_eq!(refused(with(|i| i.auto_renew = true)), "invalid_field");
        let renew = |before: &str| {
            let mut input = with(|i| i.auto_renew = true);
            input.duration = Some("30d".into());
            input.renew_before = Some(before.into());
            input
        };
        assert_eq!(refused(renew("30d")), "invalid_duration");
        assert!(make(renew("7d")).is_ok());
    }

    #[test]
    fn issue_expiry_resolution() {
        let now = at("2026-01-01T00:00:00Z");
        let req = |f: fn(&mut IssueLicenseRequest)| {
            let mut r = IssueLicenseRequest::default();
            f(&mut r);
            r
        };
        let with_default = policy(Some(Duration::days(30)));
        let without = policy(None);
        assert_eq!(
            issue_expiry(&req(|_| {}), &with_default, now).unwrap(),
            Some(at("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            issue_expiry(&req(|r| r.duration = Some("10d".into())), &without, now).unwrap(),
            Some(at("2026-01-11T00:00:00Z"))
        );
        assert_eq!(
            issue_expiry(&req(|r| r.perpetual = true), &with_default, now).unwrap(),
            None
        );
        let code = |r: IssueLicenseRequest, p: &Policy| match issue_expiry(&r, p, now) {
            Err(Error::Unprocessable { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(req(|_| {}), &without), "expiry_required");
        assert_eq!(
            code(
                req(|r| {
                    r.perpetual = true;
                    r.duration = Some("1d".into());
                }),
                &without
            ),
            "conflicting_fields"
        );
        assert_eq!(
            code(req(|r| r.expires_at = Some("2025-12-31".into())), &without),
            "expiry_in_past"
        );
    }

    #[test]
    fn extensions_count_by_the_renewal_basis() {
        let now = at("2026-06-01T00:00:00Z");
        let exp = at("2026-07-01T00:00:00Z");
        let by = Extension::By(Duration::days(10));
        let from_expiry = license(RenewalBasis::FromExpiry, Some(exp), Active);
        let from_now = license(RenewalBasis::FromNow, Some(exp), Active);
        assert_eq!(
            by.new_expiry(&from_expiry, now).unwrap(),
            at("2026-07-11T00:00:00Z")
        );
        assert_eq!(
            by.new_expiry(&from_now, now).unwrap(),
            at("2026-06-11T00:00:00Z")
        );
        let conflict = |r: Result<Timestamp>| match r {
            Err(Error::Conflict { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        let perpetual = license(RenewalBasis::FromExpiry, None, Active);
        assert_eq!(
            conflict(by.new_expiry(&perpetual, now)),
            "license_perpetual"
        );
        let revoked = license(RenewalBasis::FromNow, Some(exp), Revoked);
        assert_eq!(conflict(by.new_expiry(&revoked, now)), "license_revoked");
        assert!(matches!(
            Extension::To(at("2026-05-01T00:00:00Z")).new_expiry(&from_now, now),
            Err(Error::Unprocessable {
                code: "expiry_in_past",
                ..
            })
        ));
        assert!(matches!(
            Extension::parse(&ExtendRequest {
                to: Some("2027-01-01".into()),
                by: Some("1d".into()),
            }),
            Err(Error::Unprocessable {
                code: "conflicting_fields",
                ..
            })
        ));
    }

    #[test]
    fn seats_and_held_documents() {
        assert!(!seats_exceeded(None, Some(100)));
        assert!(!seats_exceeded(Some(10), None));
        assert!(!seats_exceeded(Some(10), Some(10)));
        assert!(seats_exceeded(Some(10), Some(11)));
        let l = license(RenewalBasis::FromNow, None, Active);
        let now = at("2026-06-01T00:00:00Z");
        let young = now - Duration::minutes(5);
        let old = now - l.policy.offline_grace / 2;
        assert!(held_is_current(&l, l.revision, young, false, now));
        assert!(!held_is_current(&l, l.revision, young, true, now));
        assert!(!held_is_current(&l, l.revision - 1, young, false, now));
        assert!(!held_is_current(&l, l.revision, old, false, now));
        assert!(check_app_version("1.2.3").is_ok());
        assert!(check_app_version(&"x".repeat(65)).is_err());
        assert!(check_app_version("1.0\n").is_err());
    }

    #[test]
    fn a_policy_update_is_checked_and_says_what_each_license_becomes() {
        use tessera_protocol::wire::{Enforcement, OnExpiry};
        let p = policy(Some(Duration::days(30)));
        let empty = updated_policy(&p, &PolicyUpdate::default()).unwrap_err();
        assert!(matches!(
            empty,
            Error::Unprocessable {
                code: "nothing_to_update",
                ..
            }
        ));
        let too_short = PolicyUpdate {
            offline_grace: Some("10m".into()),
            ..PolicyUpdate::default()
        };
        assert!(
            updated_policy(&p, &too_short).is_err(),
            "grace shorter than the refresh"
        );
        let warn = PolicyUpdate {
            enforcement: Some(Enforcement::Warn),
            ..PolicyUpdate::default()
        };
        let next = updated_policy(&p, &warn).unwrap();
        assert_eq!(
            (next.enforcement, next.on_expiry, next.offline_grace),
            (Enforcement::Warn, OnExpiry::LoseAccess, p.offline_grace)
        );

        let mut l = License::example();
        let after = at("2027-02-01T00:00:00Z");
        assert_eq!(verdict_word(&l, at("2026-06-01T00:00:00Z")), "valid");
        assert_eq!(verdict_word(&l, after), "expired");
        l.policy.enforcement = Enforcement::Observe;
        assert_eq!(verdict_word(&l, after), "valid (warns: expired)");
        l.policy.enforcement = Enforcement::Enforce;
        l.policy.on_expiry = OnExpiry::KeepVersionsReleasedBeforeExpiry;
        assert_eq!(verdict_word(&l, after), "expired (older versions kept)");
        l.policy.on_expiry = OnExpiry::KeepAccess;
        assert_eq!(verdict_word(&l, after), "valid (kept after expiry)");
        l.state = Suspended;
        assert_eq!(
            verdict_word(&l, after),
            "suspended",
            "suspension always applies"
        );
    }
}
