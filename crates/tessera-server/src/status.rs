//! What a status document says about a license at a moment: pure functions
//! of the license, the request and `now` (docs/PROTOCOL.md, "2. Status documents").

use chrono::Duration;
use tessera_protocol::entitlements::granted_at;
use tessera_protocol::{Status, StatusClaims, Timestamp, TokenFingerprint};

use crate::model::{License, Policy};

/// While a license is expired, suspended or a trial, or within a day of its
/// expiry, clients without a live stream ask at least this often, so a
/// renewal reaches them soon even when push is unavailable.
pub const SHORT_REFRESH: Duration = Duration::minutes(15);

/// The request context a document echoes.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// Instance id the request named.
    pub instance_id: Option<String>,
    /// Nonce the request sent.
    pub nonce: Option<String>,
}

/// When a client without a stream should ask again.
#[must_use]
pub fn refresh_after(
    status: Status,
    interval: Duration,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    let mut interval = interval;
    let near_expiry = expires_at.is_some_and(|exp| exp > now && exp - now <= Duration::days(1));
    if near_expiry || matches!(status, Status::Expired | Status::Suspended | Status::Trial) {
        interval = interval.min(SHORT_REFRESH);
    }
    let mut at = now + interval;
    // Ask again right at expiry: a renewal may have happened in between.
    if let Some(exp) = expires_at
        && exp > now
        && exp < at
    {
        at = exp;
    }
    at
}

/// Whether `license` can be used at `now`: its status grants it, or it
/// expired under a policy that keeps something after expiry (§21) — all
/// of it (`keep_access`), or older versions (which the client judges, so
/// its machine must still hold a place) — or only warns of expiry (§24).
#[must_use]
pub fn usable(license: &License, now: Timestamp) -> bool {
    let status = license.status_at(now);
    status.is_valid()
        || (status == Status::Expired
            && (license.policy.on_expiry != tessera_protocol::wire::OnExpiry::LoseAccess
                || !enforced(license)))
}

/// Whether the license's policy refuses what its rules refuse (§24), or
/// only warns of it.
#[must_use]
pub fn enforced(license: &License) -> bool {
    license.policy.enforcement == tessera_protocol::wire::Enforcement::Enforce
}

/// Make `claims` a refusal by the policy's rules: refused outright under
/// `enforce`; under `warn`/`observe` the status says what was refused and
/// the document still grants (§24).
pub fn refuse(claims: &mut StatusClaims, refusal: Status, license: &License) {
    claims.status = refusal;
    let by_rule = matches!(
        refusal,
        Status::Expired
            | Status::InstanceLimit
            | Status::TooManyMachines
            | Status::NotActivated
            | Status::LeaseExpired
    );
    if enforced(license) || !by_rule {
        claims.valid = false;
        claims.features = Vec::new();
    }
}

/// Claims for a known license. `ttl` overrides the offline grace (exports).
#[must_use]
pub fn license_claims(
    license: &License,
    tfp: TokenFingerprint,
    echo: Echo,
    now: Timestamp,
    ttl: Option<Duration>,
) -> StatusClaims {
    let status = license.status_at(now);
    StatusClaims {
        lic: Some(license.id.to_string()),
        product: Some(license.product.clone()),
        tfp,
        iid: echo.instance_id,
        nonce: echo.nonce,
        mfp: None,
        machine: None,
        status,
        // A policy that keeps access past expiry: marked expired, still
        // valid (§21); so under a policy that only warns of expiry (§24).
        // Keeping older versions is the client's to decide: only it knows
        // its release date.
        valid: status.is_valid()
            || (status == Status::Expired
                && (license.policy.on_expiry == tessera_protocol::wire::OnExpiry::KeepAccess
                    || !enforced(license))),
        plan: Some(license.plan.clone()),
        features: granted_at(&license.features, &license.entitlements, now)
            .cloned()
            .collect(),
        // Only the terms of features still running (§20).
        entitlements: license
            .entitlements_at(now)
            .into_iter()
            .filter(|(_, e)| e.expires_at.is_none_or(|end| end > now))
            .collect(),
        on_expiry: license.policy.on_expiry,
        enforcement: license.policy.enforcement,
        max_users: license.max_users,
        seats_exceeded: false,
        customer: Some(license.customer.clone()),
        valid_from: Some(license.valid_from),
        expires_at: license.expires_at,
        rev: license.revision,
        iat: now,
        refresh_after: refresh_after(
            status,
            license.policy.refresh_interval,
            license.expires_at,
            now,
        ),
        // Never beyond the longest lifetime clients accept after a key's
        // retirement (a policy stored before that cap existed included).
        exp: now
            + ttl
                .unwrap_or(license.policy.offline_grace)
                .min(tessera_protocol::MAX_DOCUMENT_LIFETIME),
    }
}

/// Claims for a well-formed token the authority does not know.
#[must_use]
pub fn not_found_claims(tfp: TokenFingerprint, echo: Echo, now: Timestamp) -> StatusClaims {
    StatusClaims::not_found(
        tfp,
        echo.instance_id,
        echo.nonce,
        now,
        now + Policy::DEFAULT_REFRESH_INTERVAL,
        now + Policy::DEFAULT_OFFLINE_GRACE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn now() -> Timestamp {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// When the document says to refresh, as a span from now.
    fn after(status: Status, interval: Duration, expires_in: Option<Duration>) -> Duration {
        refresh_after(status, interval, expires_in.map(|d| now() + d), now()) - now()
    }

    #[test]
    fn refresh_follows_the_policy_far_from_expiry() {
        let (active, hour) = (Status::Active, Duration::hours(1));
        assert_eq!(after(active, hour, Some(Duration::days(30))), hour);
        assert_eq!(after(active, Duration::hours(6), None), Duration::hours(6));
    }

    #[test]
    fn refresh_is_shortened_near_expiry_and_while_not_plainly_active() {
        let (active, hour) = (Status::Active, Duration::hours(1));
        assert_eq!(
            after(active, hour, Some(Duration::hours(20))),
            SHORT_REFRESH
        );
        let soon = Duration::minutes(5);
        assert_eq!(
            after(active, hour, Some(soon)),
            soon,
            "never past the expiry itself"
        );
        for status in [Status::Expired, Status::Suspended, Status::Trial] {
            assert_eq!(after(status, hour, None), SHORT_REFRESH, "{status}");
        }
        let shorter = after(Status::Expired, soon, None);
        assert_eq!(shorter, soon, "a shorter policy interval stays");
    }
}
