//! The signed status document: a PASETO `v4.public` token whose claims say
//! what the authority knows about one license token at one moment.
//!
//! [`sign`] is the authority's half; [`verify`] is the only way to obtain a
//! [`VerifiedDocument`], whose fields are private so nothing unverified can
//! pose as one.

use chrono::Duration;
use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, SigningKey, TrustedKeys};
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

/// Bounds enforced while reading untrusted documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes. Default 16 KiB.
    pub max_document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 16 * 1024,
        }
    }
}

/// Whether [`verify`] checks `exp` and `iat` against the clock.
///
/// Safe by default: freshness is checked. Only re-reading state that was
/// already verified before it was stored may skip it, so that an old
/// document on disk yields a "stale" verdict instead of vanishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// Reject documents past `exp` or issued in the future (default).
    #[default]
    Enforce,
    /// Signature, token and shape only; for state this holder stored itself.
    SkipForStoredState,
}

/// What the verifier expects of a document, besides a good signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    token: TokenFingerprint,
    nonce: Option<String>,
    machine: Option<String>,
    product: Option<String>,
    max_clock_drift: Duration,
    pub(crate) freshness: Freshness,
    pub(crate) limits: Limits,
}

impl Expectations {
    /// Default max clock drift on `iat`: 5 minutes.
    pub const DEFAULT_MAX_CLOCK_DRIFT: Duration = Duration::minutes(5);

    /// Expect a document for this token fingerprint, any nonce, 5 min drift.
    #[must_use]
    pub fn for_token(token: TokenFingerprint) -> Self {
        Self {
            token,
            nonce: None,
            machine: None,
            product: None,
            max_clock_drift: Self::DEFAULT_MAX_CLOCK_DRIFT,
            freshness: Freshness::Enforce,
            limits: Limits::default(),
        }
    }

    /// Require the document to echo this nonce.
    #[must_use]
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Refuse a document bound to another machine: one whose `mfp` is set
    /// and is not this machine's fingerprint hash (a document without
    /// `mfp`, for a license that does not count machines, is accepted).
    #[must_use]
    pub fn with_machine(mut self, mfp: impl Into<String>) -> Self {
        self.machine = Some(mfp.into());
        self
    }

    /// Refuse a license of another product (§28): a document answering for
    /// a license whose `product` is not this one (absent counts as
    /// `default`). `None` accepts every product.
    #[must_use]
    pub fn with_product(mut self, product: Option<String>) -> Self {
        self.product = product;
        self
    }

    /// Allowed drift of `iat` ahead of local time.
    #[must_use]
    pub fn with_max_clock_drift(mut self, drift: Duration) -> Self {
        self.max_clock_drift = drift;
        self
    }

    /// Freshness checking (see [`Freshness`]).
    #[must_use]
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Reading limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A status document whose signature, binding and freshness were checked.
///
/// Only [`verify`] makes one; the fields are private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDocument {
    raw: String,
    kid: KeyId,
    claims: StatusClaims,
    retired_key_at: Option<Timestamp>,
}

impl VerifiedDocument {
    /// The verified claims.
    #[must_use]
    pub fn claims(&self) -> &StatusClaims {
        &self.claims
    }

    /// The document text exactly as verified (to store or forward).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The key that signed it.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// When the key that signed it was retired, if it is pinned as retired.
    /// The rollback rule lets any document signed after that time replace
    /// this one (see [`check_document_rollback`](crate::rollback::check_document_rollback)).
    #[must_use]
    pub fn retired_key_at(&self) -> Option<Timestamp> {
        self.retired_key_at
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "status document",
        reason: reason.into(),
    }
}

/// Verify a status document, in the order of docs/PROTOCOL.md, "4. Verification": size, form, pinned
/// key (an unknown `kid` is refused; the key never comes from the message),
/// signature, token binding, nonce, `exp`, `iat` drift.
///
/// # Errors
/// The first check that fails, as its own [`Error`] variant.
pub fn verify(
    bytes: &[u8],
    keys: &TrustedKeys,
    expect: &Expectations,
    now: Timestamp,
) -> Result<VerifiedDocument, Error> {
    let max = expect.limits.max_document_bytes;
    if bytes.len() > max {
        return Err(Error::DocumentTooLarge {
            size: bytes.len(),
            max,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    if !text.starts_with(PublicToken::HEADER) {
        return Err(malformed("not a v4.public token"));
    }
    let untrusted = UntrustedToken::<Public, V4>::try_from(text)
        .map_err(|_| malformed("bad PASETO encoding"))?;
    // Requiring the canonical base64 text makes a document's bytes unique, so
    // no bit flip of a valid document can verify. pasetors' decoder is strict
    // about trailing bits today; this keeps the property if that ever changes.
    if !is_canonical(text, &untrusted) {
        return Err(malformed("non-canonical encoding"));
    }
    let footer = untrusted.untrusted_footer();
    if footer.is_empty() {
        return Err(Error::MissingKeyId);
    }
    let footer: Footer = serde_json::from_slice(footer).map_err(|_| Error::MissingKeyId)?;
    let Some(key) = keys.get_str(&footer.kid) else {
        return Err(Error::UnknownKeyId {
            kid: footer.kid.chars().take(32).collect(),
        });
    };
    PublicToken::verify(key.inner(), &untrusted, None, None).map_err(|_| Error::BadSignature)?;
    let claims: StatusClaims = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| malformed(format!("claims: {e}")))?;
    check_ranges(&claims)?;
    if claims.exp < claims.iat {
        return Err(malformed("exp is before iat"));
    }
    let retired_key_at = keys.retired_at(key.kid());
    if let Some(retired_at) = retired_key_at {
        // The signer chooses `iat`, so `iat <= retired_at` alone proves
        // nothing against a leaked retired key; a finite `exp` bound does.
        let latest_exp = retired_at
            .checked_add_signed(MAX_DOCUMENT_LIFETIME)
            .unwrap_or(retired_at);
        if claims.iat > retired_at || claims.exp > latest_exp {
            return Err(Error::KeyRetired {
                kid: key.kid().to_string(),
                retired_at,
                iat: claims.iat,
            });
        }
    }
    if claims.tfp != expect.token {
        return Err(Error::TokenMismatch);
    }
    if let Some(nonce) = &expect.nonce
        && claims.nonce.as_deref() != Some(nonce.as_str())
    {
        return Err(Error::NonceMismatch);
    }
    if let (Some(own), Some(mfp)) = (&expect.machine, &claims.mfp)
        && own != mfp
    {
        return Err(Error::FingerprintMismatch);
    }
    if let Some(expected) = &expect.product
        && claims.lic.is_some()
    {
        let found = claims.product.as_deref().unwrap_or(DEFAULT_PRODUCT);
        if found != expected {
            return Err(Error::WrongProduct {
                expected: expected.clone(),
                found: found.chars().take(64).collect(),
            });
        }
    }
    if expect.freshness == Freshness::Enforce {
        if now > claims.exp {
            return Err(Error::DocumentExpired {
                exp: claims.exp,
                now,
            });
        }
        if claims.iat > now + expect.max_clock_drift {
            return Err(Error::IssuedInFuture {
                iat: claims.iat,
                now,
                max_drift_secs: expect.max_clock_drift.num_seconds(),
            });
        }
    }
    Ok(VerifiedDocument {
        raw: text.to_owned(),
        kid: key.kid().clone(),
        claims,
        retired_key_at,
    })
}

/// Revision and times within what every client can hold and compute with:
/// a revision above [`MAX_REVISION`] or a time outside 1970 … 9999 is
/// refused before anything uses it, so no later arithmetic can overflow.
fn check_ranges(claims: &StatusClaims) -> Result<(), Error> {
    if claims.rev > MAX_REVISION {
        return Err(Error::OutOfRange {
            field: "rev",
            reason: format!("{} is above 2^53", claims.rev),
        });
    }
    let times = [
        ("iat", Some(claims.iat)),
        ("exp", Some(claims.exp)),
        ("refresh_after", Some(claims.refresh_after)),
        ("expires_at", claims.expires_at),
        ("valid_from", claims.valid_from),
    ];
    for (field, t) in times {
        if let Some(t) = t
            && !crate::time::is_supported(&t)
        {
            return Err(Error::OutOfRange {
                field,
                reason: "outside 1970-01-01 … 9999-12-31".into(),
            });
        }
    }
    Ok(())
}

pub(crate) fn is_canonical(text: &str, token: &UntrustedToken<Public, V4>) -> bool {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let mut expected = String::with_capacity(text.len());
    expected.push_str(PublicToken::HEADER);
    expected.push_str(&Base64UrlUnpadded::encode_string(token.untrusted_message()));
    let footer = token.untrusted_footer();
    if !footer.is_empty() {
        expected.push('.');
        expected.push_str(&Base64UrlUnpadded::encode_string(footer));
    }
    expected == text
}
