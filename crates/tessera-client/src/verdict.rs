//! The verdict: what the product asks, computed from the held document and
//! the local clock alone (docs/PROTOCOL.md, "7. The verdict"). Pure: [`compute`] takes `now`.

use chrono::Duration;
use serde::Serialize;
use tessera_protocol::entitlements::next_feature_end;
use tessera_protocol::wire::OnExpiry;
use tessera_protocol::{Status, Timestamp, VerifiedDocument};

/// The verdict's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictState {
    /// Entitled: use `features`.
    Valid,
    /// Past `expires_at`.
    Expired,
    /// Suspended by the vendor.
    Suspended,
    /// Revoked by the vendor.
    Revoked,
    /// The authority knows no license for this token.
    NotFound,
    /// The license's instance limit is reached and this installation was
    /// not admitted (see the authority's `--max-instances-per-license`).
    InstanceLimit,
    /// Every machine place of the license is taken: this machine was not
    /// activated (it tries again when a place is freed).
    TooManyMachines,
    /// The license admits only activated machines and this one is not
    /// (deactivated, or released by the vendor).
    NotActivated,
    /// This machine's floating lease ran out.
    LeaseExpired,
    /// No trustworthy answer: see [`UnverifiedReason`].
    Unverified,
}

impl VerdictState {
    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictState::Valid => "valid",
            VerdictState::Expired => "expired",
            VerdictState::Suspended => "suspended",
            VerdictState::Revoked => "revoked",
            VerdictState::NotFound => "not_found",
            VerdictState::InstanceLimit => "instance_limit",
            VerdictState::TooManyMachines => "too_many_machines",
            VerdictState::NotActivated => "not_activated",
            VerdictState::LeaseExpired => "lease_expired",
            VerdictState::Unverified => "unverified",
        }
    }
}

/// Why a verdict is `Unverified`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnverifiedReason {
    /// No verified document is held (never activated, or not yet answered).
    NoDocument,
    /// The local clock is more than the tolerance behind the high-water mark:
    /// it was set back.
    ClockTampered,
    /// The held document's `exp` has passed: the offline grace is over.
    Stale,
}

impl UnverifiedReason {
    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UnverifiedReason::NoDocument => "no_document",
            UnverifiedReason::ClockTampered => "clock_tampered",
            UnverifiedReason::Stale => "stale",
        }
    }
}

mod info;
pub use info::LicenseInfo;

/// The last failure to get an authoritative answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// `network`, `timeout`, `http_status`, `invalid_answer`, `verification`,
    /// `rollback`, `storage`.
    pub kind: &'static str,
    /// For people.
    pub message: String,
    /// When.
    #[serde(with = "tessera_protocol::time::rfc3339")]
    pub at: Timestamp,
}

/// The verdict a product reads on every request. Cheap to read: see
/// [`Client::verdict`](crate::Client::verdict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The kind.
    pub state: VerdictState,
    /// Why, when `Unverified`.
    pub reason: Option<UnverifiedReason>,
    /// The held document's license, if any (also when not valid).
    pub license: Option<LicenseInfo>,
    /// Since when the authority could not be reached (no verified answer).
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub offline_since: Option<Timestamp>,
    /// When the authority last confirmed the held state: a verified document
    /// accepted, or a `304` for the held revision (local time; after a
    /// restart, the stored document's `iat`).
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub last_verified_at: Option<Timestamp>,
    /// The last failure, cleared by the next verified answer.
    pub last_error: Option<LastError>,
    /// Whether a change stream is open (changes are pushed, not polled).
    pub connected: bool,
    /// The license has expired but stays valid by its policy's
    /// `on_expiry` (docs/PROTOCOL.md §21): `keep_access`, or
    /// `keep_versions_released_before_expiry` for this version. `None`
    /// otherwise.
    pub after_expiry: Option<OnExpiry>,
    /// What the policy's rules refuse but its enforcement only warns of
    /// (docs/PROTOCOL.md §24): `expired`, `instance_limit`,
    /// `too_many_machines`, `not_activated`, `lease_expired`, or
    /// `quota_exhausted:<feature>`. The verdict stays usable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// When this verdict stops being true by itself: the license's expiry,
    /// a feature's own end, or the end of the document's offline grace. Both the refresh loop and
    /// a separate deadline thread republish the verdict then, so neither
    /// one's death leaves it `valid` past that time.
    #[serde(skip)]
    pub changes_at: Option<Timestamp>,
}

/// `a == b`, for feature names: the length and the last byte are compared
/// inline first, so a name that differs there costs no `memcmp` call (with
/// a handful of features, those calls were most of `has_feature`'s time).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().last() == b.as_bytes().last() && a == b
}

impl Verdict {
    /// Whether the license grants its entitlements now.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.state == VerdictState::Valid
    }

    /// Whether `feature` is granted now. No allocation.
    #[must_use]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.is_valid()
            && self
                .license
                .as_ref()
                .is_some_and(|l| l.features.iter().any(|f| same_name(f, feature)))
    }

    /// The verdict before anything is known.
    #[must_use]
    pub fn no_document() -> Self {
        Self {
            state: VerdictState::Unverified,
            reason: Some(UnverifiedReason::NoDocument),
            license: None,
            offline_since: None,
            last_verified_at: None,
            last_error: None,
            connected: false,
            after_expiry: None,
            warnings: Vec::new(),
            changes_at: None,
        }
    }
}

/// What the client knows of its contact with the authority: carried into
/// every verdict as it is.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// Since when no verified answer could be had.
    pub offline_since: Option<Timestamp>,
    /// When the authority last confirmed the held state.
    pub last_verified_at: Option<Timestamp>,
    /// The last failure, cleared by the next verified answer.
    pub last_error: Option<LastError>,
    /// Whether a change stream is open.
    pub connected: bool,
}

/// Inputs of [`compute`] besides the document and the time.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// max(every accepted `iat`, the local clock as last seen).
    pub high_water_mark: Option<Timestamp>,
    /// How far the clock may be behind the high-water mark (default 1 h).
    pub tolerance: Duration,
    /// How far a document's `iat` may be ahead of the local clock (5 min).
    /// The mark is never below the held document's `iat` less this: a
    /// state file with its mark removed cannot take the clock back before
    /// the document was signed.
    pub max_clock_drift: Duration,
    /// The client's contact with the authority, carried into the verdict.
    pub contact: Contact,
    /// When this version of the product was released (for
    /// `keep_versions_released_before_expiry`).
    pub app_released_at: Option<Timestamp>,
}

/// The verdict for `doc` at `now`, in the order of docs/PROTOCOL.md, "7. The verdict": no document, clock
/// set back, grace over, denied statuses, expiry, valid.
#[must_use]
pub fn compute(doc: Option<&VerifiedDocument>, now: Timestamp, ctx: &Context) -> Verdict {
    let license = doc.map(|d| LicenseInfo::from_document(d, now));
    let (state, reason) = match doc.map(VerifiedDocument::claims) {
        None => (VerdictState::Unverified, Some(UnverifiedReason::NoDocument)),
        Some(c) if now < effective_mark(c.iat, ctx) - ctx.tolerance => (
            VerdictState::Unverified,
            Some(UnverifiedReason::ClockTampered),
        ),
        Some(c) if now > c.exp => (VerdictState::Unverified, Some(UnverifiedReason::Stale)),
        Some(c) => match c.status {
            Status::Revoked => (VerdictState::Revoked, None),
            Status::Suspended => (VerdictState::Suspended, None),
            Status::NotFound => (VerdictState::NotFound, None),
            Status::InstanceLimit => (VerdictState::InstanceLimit, None),
            Status::TooManyMachines => (VerdictState::TooManyMachines, None),
            Status::NotActivated => (VerdictState::NotActivated, None),
            Status::LeaseExpired => (VerdictState::LeaseExpired, None),
            Status::Expired => (VerdictState::Expired, None),
            Status::Active | Status::Trial => match c.expires_at {
                Some(exp) if exp <= now => (VerdictState::Expired, None),
                _ => (VerdictState::Valid, None),
            },
        },
    };
    // Expired, yet kept by the policy (§21).
    let after_expiry = match (state, doc.map(VerifiedDocument::claims)) {
        (VerdictState::Expired, Some(c)) => kept_after_expiry(c, ctx.app_released_at),
        _ => None,
    };
    let state = if after_expiry.is_some() {
        VerdictState::Valid
    } else {
        state
    };
    // Refused by a rule the policy only warns of (§24).
    let warnings = doc.map_or_else(Vec::new, |d| warned(state, d.claims()));
    let state = if warnings.iter().any(|w| !w.starts_with("quota_exhausted:")) {
        VerdictState::Valid
    } else {
        state
    };
    let changes_at = match (state, doc.map(VerifiedDocument::claims)) {
        (VerdictState::Unverified | VerdictState::NotFound, _) | (_, None) => None,
        (_, Some(c)) => earliest_ahead(
            [
                c.expires_at,
                Some(c.exp + Duration::seconds(1)),
                next_feature_end(&c.entitlements, now),
            ],
            now,
        ),
    };
    Verdict {
        state,
        reason,
        license,
        offline_since: ctx.contact.offline_since,
        last_verified_at: ctx.contact.last_verified_at,
        last_error: ctx.contact.last_error.clone(),
        connected: ctx.contact.connected,
        after_expiry,
        warnings,
        changes_at,
    }
}

/// Under `warn` and `observe`: what the policy's rules refuse in `state`
/// and in the document's quotas. Nothing under `enforce`, and nothing for
/// a document that does not grant (suspended, revoked, unknown).
fn warned(state: VerdictState, c: &tessera_protocol::StatusClaims) -> Vec<String> {
    if c.enforcement.is_default() || !c.valid {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    if matches!(
        state,
        VerdictState::Expired
            | VerdictState::InstanceLimit
            | VerdictState::TooManyMachines
            | VerdictState::NotActivated
            | VerdictState::LeaseExpired
    ) {
        warnings.push(state.as_str().to_owned());
    }
    for (feature, e) in &c.entitlements {
        if let Some(q) = &e.quota
            && q.overage
                .ceiling(q.limit)
                .is_some_and(|top| q.used.unwrap_or(0) >= top)
        {
            warnings.push(format!("quota_exhausted:{feature}"));
        }
    }
    warnings
}

/// Whether an expired license's policy keeps this client valid: always
/// (`keep_access`), or for a version released before the license expired.
fn kept_after_expiry(
    c: &tessera_protocol::StatusClaims,
    released_at: Option<Timestamp>,
) -> Option<OnExpiry> {
    match c.on_expiry {
        OnExpiry::KeepAccess => Some(OnExpiry::KeepAccess),
        OnExpiry::KeepVersionsReleasedBeforeExpiry => {
            let covered = released_at.zip(c.expires_at).is_some_and(|(r, e)| r < e);
            covered.then_some(OnExpiry::KeepVersionsReleasedBeforeExpiry)
        }
        OnExpiry::LoseAccess => None,
    }
}

/// The clock mark in force: the stored high-water mark, but never below
/// the held document's `iat` less the allowed drift (a missing or lowered
/// mark on disk can only make the verdict stricter).
#[must_use]
pub fn effective_mark(iat: Timestamp, ctx: &Context) -> Timestamp {
    let from_document = iat - ctx.max_clock_drift;
    ctx.high_water_mark
        .map_or(from_document, |hwm| hwm.max(from_document))
}

/// The next moment the verdict may change by the clock alone: the earliest of
/// `expires_at`, `refresh_after`, `exp` and a feature's own end still ahead.
#[must_use]
pub fn next_change(doc: Option<&VerifiedDocument>, now: Timestamp) -> Option<Timestamp> {
    let c = doc?.claims();
    earliest_ahead(
        [
            c.expires_at,
            Some(c.refresh_after),
            Some(c.exp + Duration::seconds(1)),
            next_feature_end(&c.entitlements, now),
        ],
        now,
    )
}

/// The earliest of `times` after `now`.
fn earliest_ahead<const N: usize>(
    times: [Option<Timestamp>; N],
    now: Timestamp,
) -> Option<Timestamp> {
    times.into_iter().flatten().filter(|t| *t > now).min()
}

#[cfg(test)]
mod tests;
