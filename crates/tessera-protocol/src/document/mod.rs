//! The signed status document: a PASETO `v4.public` token whose claims say
//! what the authority knows about one license token at one moment.
//!
//! [`sign`] is the authority's half (here, with the claims); [`verify`]
//! (in `verify.rs`) is the only way to obtain a [`VerifiedDocument`], whose
//! fields are private so nothing unverified can pose as one.

mod verify;

pub(crate) use verify::is_canonical;
pub use verify::{Expectations, Freshness, Limits, VerifiedDocument, verify};

use chrono::Duration;
use pasetors::version4::PublicToken;
use serde::{Deserialize, Serialize};

use crate::keys::SigningKey;
use crate::token::TokenFingerprint;
use crate::wire::MachineMode;
use crate::{Error, Timestamp};

/// What the authority says of a license token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Paid license within its period.
    Active,
    /// Trial license within its period.
    Trial,
    /// Past `expires_at`.
    Expired,
    /// Suspended by the vendor; may be reinstated.
    Suspended,
    /// Revoked by the vendor; final.
    Revoked,
    /// The authority knows no license for this token.
    NotFound,
    /// The license's instance limit is reached: this installation (the
    /// document's `iid`) was not admitted. Others keep their status.
    InstanceLimit,
    /// Every machine place of the license is taken: this machine (the
    /// document's `mfp`) was not activated.
    TooManyMachines,
    /// The license admits only activated machines, and this one (`mfp`) is
    /// not (never activated, deactivated, or released by the vendor).
    NotActivated,
    /// This machine's floating lease ran out (no heartbeat in time).
    LeaseExpired,
}

impl Status {
    /// Whether this status grants the entitlements.
    #[must_use]
    pub fn is_valid(self) -> bool {
        matches!(self, Status::Active | Status::Trial)
    }

    /// The snake_case name, as on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Trial => "trial",
            Status::Expired => "expired",
            Status::Suspended => "suspended",
            Status::Revoked => "revoked",
            Status::NotFound => "not_found",
            Status::InstanceLimit => "instance_limit",
            Status::TooManyMachines => "too_many_machines",
            Status::NotActivated => "not_activated",
            Status::LeaseExpired => "lease_expired",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a machine stands (docs/PROTOCOL.md, "19. Machines").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineClaim {
    /// The machine's activation (`mch_…`); absent in a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it was activated; absent in a refusal.
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub activated_at: Option<Timestamp>,
    /// `node_locked` or `floating`.
    pub mode: MachineMode,
    /// Machines active on the license when this was signed.
    pub used: u32,
    /// The license's machine limit; `None` = unlimited.
    #[serde(default)]
    pub max: Option<u32>,
    /// Floating: the lease's length in seconds (heartbeat at a third of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<u64>,
    /// Floating: the lease ends then unless renewed (or borrowed longer).
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_expires_at: Option<Timestamp>,
}

/// The claims of a status document (docs/PROTOCOL.md, "2. Status documents"). Plain data: trusted only when
/// reached through a [`VerifiedDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusClaims {
    /// License id; absent only for `not_found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lic: Option<String>,
    /// The product the license belongs to (§28); absent from documents of
    /// authorities before products, which means `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Fingerprint of the token this answers for.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tfp: TokenFingerprint,
    /// Instance id the request named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iid: Option<String>,
    /// Echo of the request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The machine this answers for (its fingerprint hash), for a license
    /// that counts machines: another machine refuses the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfp: Option<String>,
    /// Where this machine stands, for a license that counts machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineClaim>,
    /// The license's status as of `iat`.
    pub status: Status,
    /// Whether the status grants the entitlements as of `iat`.
    pub valid: bool,
    /// Plan name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Feature names granted as of `iat`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Features with terms of their own (§20), by name: a client turns a
    /// feature off at its `expires_at` by its own clock, offline too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entitlements: crate::Entitlements,
    /// What expiry takes away (§21); absent: `lose_access`.
    #[serde(default, skip_serializing_if = "crate::wire::OnExpiry::is_default")]
    pub on_expiry: crate::wire::OnExpiry,
    /// How the policy's rules apply (§24); absent: `enforce`. Under `warn`
    /// and `observe` a refusal by those rules (`expired`, `instance_limit`,
    /// the machine refusals) is signed with `valid: true` and the features.
    #[serde(default, skip_serializing_if = "crate::wire::Enforcement::is_default")]
    pub enforcement: crate::wire::Enforcement,
    /// Seat limit; `None` = unlimited.
    #[serde(default)]
    pub max_users: Option<u32>,
    /// The installations report more users than `max_users` (metering).
    /// Informational: the verdict stays valid; the product decides.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seats_exceeded: bool,
    /// Customer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Start of the license period.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub valid_from: Option<Timestamp>,
    /// End of the license period; `None` = perpetual.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// License revision.
    pub rev: u64,
    /// When the authority signed this.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub iat: Timestamp,
    /// When a client without a live stream should ask again.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub refresh_after: Timestamp,
    /// Hard freshness bound: after it the document proves nothing.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub exp: Timestamp,
}

impl StatusClaims {
    /// A signed "no such license" for `tfp` (`not_found`: revision 0, not
    /// valid, nothing granted), echoing the request's instance and nonce,
    /// signed at `iat`, asked again at `refresh_after`, trusted until `exp`.
    #[must_use]
    pub fn not_found(
        tfp: TokenFingerprint,
        iid: Option<String>,
        nonce: Option<String>,
        iat: Timestamp,
        refresh_after: Timestamp,
        exp: Timestamp,
    ) -> Self {
        Self {
            lic: None,
            product: None,
            tfp,
            iid,
            nonce,
            mfp: None,
            machine: None,
            status: Status::NotFound,
            valid: false,
            plan: None,
            features: Vec::new(),
            entitlements: crate::Entitlements::new(),
            on_expiry: crate::wire::OnExpiry::default(),
            enforcement: crate::wire::Enforcement::default(),
            max_users: None,
            seats_exceeded: false,
            customer: None,
            valid_from: None,
            expires_at: None,
            rev: 0,
            iat,
            refresh_after,
            exp,
        }
    }

    /// The claims of a typical valid document: license
    /// `lic_01936b2e-7c3a-7def-8a12-0123456789ab` of "Acme", plan
    /// `enterprise`, features `sso` and `audit`, 10 users, revision 1,
    /// active from a day before `iat` to 30 days after, answering `tfp`,
    /// signed at `iat`, to be refreshed an hour later and trusted 7 days.
    /// For tests, fuzzing and examples: change what a case needs with
    /// `StatusClaims { rev: 5, ..StatusClaims::sample(tfp, iat) }`.
    #[must_use]
    pub fn sample(tfp: TokenFingerprint, iat: Timestamp) -> Self {
        Self {
            lic: Some("lic_01936b2e-7c3a-7def-8a12-0123456789ab".into()),
            product: None,
            tfp,
            iid: None,
            nonce: None,
            mfp: None,
            machine: None,
            status: Status::Active,
            valid: true,
            plan: Some("enterprise".into()),
            features: vec!["sso".into(), "audit".into()],
            entitlements: crate::Entitlements::new(),
            on_expiry: crate::wire::OnExpiry::LoseAccess,
            enforcement: crate::wire::Enforcement::Enforce,
            max_users: Some(10),
            seats_exceeded: false,
            customer: Some("Acme".into()),
            valid_from: Some(iat - Duration::days(1)),
            expires_at: Some(iat + Duration::days(30)),
            rev: 1,
            iat,
            refresh_after: iat + Duration::hours(1),
            exp: iat + Duration::days(7),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Footer {
    kid: String,
}

/// Sign claims into a `v4.public` document with `kid` in the footer.
///
/// # Errors
/// [`Error::Signing`] if the claims cannot be encoded (never in practice).
pub fn sign(claims: &StatusClaims, key: &SigningKey) -> Result<String, Error> {
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Signing {
        reason: e.to_string(),
    })?;
    let footer = serde_json::to_vec(&Footer {
        kid: key.kid().as_str().to_owned(),
    })
    .map_err(|e| Error::Signing {
        reason: e.to_string(),
    })?;
    PublicToken::sign(key.inner(), &payload, Some(&footer), None).map_err(|e| Error::Signing {
        reason: format!("{e:?}"),
    })
}

/// The largest revision a document may carry: 2^53, the largest integer
/// every JSON reader (JavaScript's included) holds exactly. An authority
/// reaches it after 2^53 changes to one license, i.e. never.
pub const MAX_REVISION: u64 = 1 << 53;

/// The longest span from `iat` to `exp` the authority ever signs (offline
/// grace and export TTLs are capped to it). It bounds what a leaked retired
/// key can still do: a document it signs must have `exp` no later than
/// its retirement plus this span, so its forgeries die by themselves.
pub const MAX_DOCUMENT_LIFETIME: Duration = Duration::days(400);

/// The product of every license made before products existed, and of a
/// document that names none.
pub const DEFAULT_PRODUCT: &str = "default";
