//! What a relay's document says: pure functions of the bundle's license,
//! the machine's place and `now`, mirroring what the authority would sign
//! (docs/PROTOCOL.md §2, §19) and never more than the bundle allows (§26).

use chrono::Duration;
use tessera_protocol::bundle::BundleLicense;
use tessera_protocol::entitlements::granted_at;
use tessera_protocol::wire::{Enforcement, MachineMode, OnExpiry};
use tessera_protocol::{MachineClaim, Status, StatusClaims, Timestamp, TokenFingerprint};

/// How long a relay's document is trusted at most (the bundle's end caps it).
pub const DOCUMENT_LIFETIME: Duration = Duration::days(7);
/// When a client without a stream asks again.
pub const REFRESH: Duration = Duration::hours(1);
/// How soon a refused machine asks again (a stream announcement is sooner).
pub const REFUSED_REFRESH: Duration = Duration::minutes(1);

/// The request context a document echoes.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// Instance id the request named.
    pub instance_id: Option<String>,
    /// Nonce the request sent.
    pub nonce: Option<String>,
}

/// Where a machine stands, for a license that counts machines.
#[derive(Debug, Clone)]
pub struct Seat {
    /// Its fingerprint hash (`mfp`); `None` for the license's announcement.
    pub mfp: Option<String>,
    /// Its place (`mch_…`, activation time, lease end), or why it has none.
    pub place: Result<(String, Timestamp, Option<Timestamp>), Status>,
    /// Places taken on the license (here, and given to relays below).
    pub used: u32,
    /// The license's announcement that places changed (§19), not a
    /// machine's answer: no refusal in it.
    pub announcement: bool,
}

/// The claims for `license` at `now`, under a bundle ending at `bundle_exp`.
#[must_use]
pub fn claims(
    license: &BundleLicense,
    echo: Echo,
    seat: Option<Seat>,
    bundle_exp: Timestamp,
    now: Timestamp,
) -> StatusClaims {
    let mut status = license.status;
    if status.is_valid() && license.expires_at.is_some_and(|end| end <= now) {
        status = Status::Expired;
    }
    let enforced = license.enforcement == Enforcement::Enforce;
    let mut valid = license.valid
        && (status.is_valid()
            || (status == Status::Expired
                && (license.on_expiry == OnExpiry::KeepAccess || !enforced)));
    let mut refresh_after = now + REFRESH;
    let mut exp = (now + DOCUMENT_LIFETIME).min(bundle_exp);
    let (mut mfp, mut machine) = (None, None);
    if let Some(seat) = seat {
        let mode = license.machine_mode.unwrap_or(MachineMode::NodeLocked);
        let mut claim = MachineClaim {
            id: None,
            activated_at: None,
            mode,
            used: seat.used,
            max: license.max_machines,
            lease_ttl: license.lease_ttl,
            lease_expires_at: None,
        };
        match seat.place {
            Ok((id, activated_at, lease_end)) => {
                claim.id = Some(id);
                claim.activated_at = Some(activated_at);
                claim.lease_expires_at = lease_end;
                if let Some(end) = lease_end {
                    // A floating machine's document never outlives its
                    // lease, and it asks again at a third of it.
                    exp = exp.min(end);
                    let ttl = Duration::seconds(
                        i64::try_from(license.lease_ttl.unwrap_or(900)).unwrap_or(900),
                    );
                    refresh_after = now + (ttl / 3).max(Duration::seconds(1));
                }
            }
            Err(refusal) if !seat.announcement => {
                if status.is_valid() || status == Status::Expired {
                    status = refusal;
                    // Under warn/observe a refusal by the rules still grants (§24).
                    valid = valid && !enforced;
                }
                refresh_after = now + REFUSED_REFRESH;
            }
            Err(_) => {}
        }
        mfp = seat.mfp;
        machine = Some(claim);
    }
    if let Some(end) = license.expires_at
        && end > now
        && end < refresh_after
    {
        refresh_after = end;
    }
    StatusClaims {
        lic: Some(license.license.clone()),
        product: license.product.clone(),
        tfp: license.tfp.clone(),
        iid: echo.instance_id,
        nonce: echo.nonce,
        mfp,
        machine,
        status,
        valid,
        plan: license.plan.clone(),
        features: if valid {
            granted_at(&license.features, &license.entitlements, now)
                .cloned()
                .collect()
        } else {
            Vec::new()
        },
        entitlements: license
            .entitlements
            .iter()
            .filter(|(_, e)| e.expires_at.is_none_or(|end| end > now))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        on_expiry: license.on_expiry,
        enforcement: license.enforcement,
        max_users: license.max_users,
        seats_exceeded: false,
        customer: license.customer.clone(),
        valid_from: license.valid_from,
        expires_at: license.expires_at,
        rev: license.rev,
        iat: now,
        refresh_after: refresh_after.min(exp),
        exp,
    }
}

/// A well-formed token the bundle does not name: a signed "no" (it grants
/// nothing, so the relay may say it of any token).
#[must_use]
pub fn not_found(
    tfp: TokenFingerprint,
    echo: Echo,
    bundle_exp: Timestamp,
    now: Timestamp,
) -> StatusClaims {
    StatusClaims::not_found(
        tfp,
        echo.instance_id,
        echo.nonce,
        now,
        (now + REFRESH).min(bundle_exp),
        (now + DOCUMENT_LIFETIME).min(bundle_exp),
    )
}
