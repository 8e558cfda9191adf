//! JSON bodies of the authority's HTTP API (DESIGN §8), shared by the server,
//! the client and the CLI so the three cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::document::{Status, StatusClaims};

/// `POST /v1/validate` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// The license token (`tsr_…`). In the body, never in a URL.
    pub token: String,
    /// The installation's persisted random id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Fresh random value the document must echo (forced round trips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The product's version, for the fleet view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Reported usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Usage a product reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Number of users in use.
    pub users: u32,
}

/// `POST /v1/validate` answer: the signed document and its decoded claims.
/// The `verdict` is for display; clients trust only the verified `document`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateResponse {
    /// The signed status document (`v4.public.…`).
    pub document: String,
    /// Its claims, decoded.
    pub verdict: StatusClaims,
}

/// `POST /v1/instances/ack`: the revision an instance holds now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AckRequest {
    /// The license token (authenticates the report).
    pub token: String,
    /// The reporting instance.
    pub instance_id: String,
    /// The revision of the document it holds.
    pub revision: u64,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// For people.
    pub message: String,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysResponse {
    /// Public keys documents may be signed with.
    pub keys: Vec<KeyInfo>,
}

/// One public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key id, as in document footers.
    pub kid: String,
    /// Always `v4.public` (PASETO, Ed25519).
    pub alg: String,
    /// PASERK `k4.public.…`.
    pub public_key: String,
}

/// How an extension by a duration is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalBasis {
    /// New expiry = old expiry + duration: early renewal loses nothing.
    #[default]
    FromExpiry,
    /// New expiry = now + duration.
    FromNow,
}

impl RenewalBasis {
    /// Wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalBasis::FromExpiry => "from_expiry",
            RenewalBasis::FromNow => "from_now",
        }
    }
}

/// A license's stored state (expiry is not a state: it follows from the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseState {
    /// In force (subject to its period).
    Active,
    /// Suspended; may be reinstated.
    Suspended,
    /// Revoked; final.
    Revoked,
}

impl LicenseState {
    /// Wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseState::Active => "active",
            LicenseState::Suspended => "suspended",
            LicenseState::Revoked => "revoked",
        }
    }

    /// Parse a wire name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(LicenseState::Active),
            "suspended" => Some(LicenseState::Suspended),
            "revoked" => Some(LicenseState::Revoked),
            _ => None,
        }
    }
}

/// `POST /v1/admin/policies`. Durations are written like `30d`, `1h`, `1y`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyInput {
    /// Unique name.
    pub name: String,
    /// Default license duration; `None` = perpetual.
    #[serde(default)]
    pub duration: Option<String>,
    /// Default features.
    #[serde(default)]
    pub features: Vec<String>,
    /// Default seat limit.
    #[serde(default)]
    pub max_users: Option<u32>,
    /// Licenses are trials.
    #[serde(default)]
    pub trial: bool,
    /// How often clients without a live stream ask again (default 1h).
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// How long a document stays trustworthy offline (default 7d).
    #[serde(default)]
    pub offline_grace: Option<String>,
    /// How `extend --by` counts (default from_expiry).
    #[serde(default)]
    pub renewal_basis: Option<RenewalBasis>,
    /// Renew automatically.
    #[serde(default)]
    pub auto_renew: bool,
    /// Period of each automatic renewal (default: the duration).
    #[serde(default)]
    pub auto_renew_period: Option<String>,
}

/// A policy as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Default duration, or `None` for perpetual.
    pub duration: Option<String>,
    /// Default features.
    pub features: Vec<String>,
    /// Default seat limit.
    pub max_users: Option<u32>,
    /// Trial policy.
    pub trial: bool,
    /// Refresh interval.
    pub refresh_interval: String,
    /// Offline grace.
    pub offline_grace: String,
    /// Renewal basis.
    pub renewal_basis: RenewalBasis,
    /// Auto-renew on.
    pub auto_renew: bool,
    /// Auto-renew period.
    pub auto_renew_period: Option<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: Timestamp,
}

/// `POST /v1/admin/licenses`. Expiry: `expires_at`, `duration`, `perpetual`,
/// or else the policy's default duration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueLicenseRequest {
    /// Customer name; created if new.
    pub customer: String,
    /// Customer e-mail (stored when the customer is created).
    #[serde(default)]
    pub customer_email: Option<String>,
    /// Plan name.
    pub plan: String,
    /// Policy name (default: the built-in `default` policy).
    #[serde(default)]
    pub policy: Option<String>,
    /// Features (default: the policy's).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Seat limit (default: the policy's).
    #[serde(default)]
    pub max_users: Option<u32>,
    /// Trial (default: the policy's).
    #[serde(default)]
    pub trial: Option<bool>,
    /// Expiry as a date (`2027-01-01`) or RFC 3339 time.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Expiry as a duration from now (`30d`).
    #[serde(default)]
    pub duration: Option<String>,
    /// No expiry.
    #[serde(default)]
    pub perpetual: bool,
}

/// A license as the admin API shows it. The token is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenseView {
    /// `lic_…`.
    pub id: String,
    /// Customer name.
    pub customer: String,
    /// Policy name.
    pub policy: String,
    /// Plan.
    pub plan: String,
    /// Features.
    pub features: Vec<String>,
    /// Seat limit.
    pub max_users: Option<u32>,
    /// Trial.
    pub trial: bool,
    /// Stored state.
    pub state: LicenseState,
    /// Status as of the answer's time (adds `expired` / `trial`).
    pub status: Status,
    /// Start of the period.
    #[serde(with = "crate::time::rfc3339")]
    pub valid_from: Timestamp,
    /// End of the period; `None` = perpetual.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub expires_at: Option<Timestamp>,
    /// Revision: +1 with every change.
    pub revision: u64,
    /// Last four characters of the token, for recognising it.
    pub token_last4: String,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: Timestamp,
    /// Last changed.
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: Timestamp,
}

/// Answer to issuing: the token, shown this once and never again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedLicense {
    /// The new license.
    pub license: LicenseView,
    /// The token. Not stored by the authority: hand it to the customer now.
    pub token: String,
}

/// `POST /v1/admin/licenses/{id}/extend`: exactly one of `to` and `by`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtendRequest {
    /// New expiry, a date or RFC 3339 time.
    #[serde(default)]
    pub to: Option<String>,
    /// Extension, a duration (`30d`), counted by the policy's renewal basis.
    #[serde(default)]
    pub by: Option<String>,
}

/// Body of suspend / reinstate / revoke.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReasonRequest {
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/admin/licenses/{id}/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportRequest {
    /// How long the document stays trustworthy (`365d`).
    pub ttl: String,
}

/// A long-lived signed document for an air-gapped site; also the file format
/// `tessera license export` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenseExport {
    /// Always [`LicenseExport::FORMAT`].
    pub format: String,
    /// The license.
    pub license: String,
    /// Its signed status document.
    pub document: String,
}

impl LicenseExport {
    /// The format tag.
    pub const FORMAT: &'static str = "tessera-license-export/1";
}

/// An audit event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventView {
    /// Sequence number, increasing.
    pub seq: i64,
    /// When.
    #[serde(with = "crate::time::rfc3339")]
    pub at: Timestamp,
    /// Admin key name or `scheduler`.
    pub actor: String,
    /// `license.issued`, `license.extended`, …
    pub kind: String,
    /// License concerned.
    pub license: Option<String>,
    /// License revision after the change.
    pub revision: Option<u64>,
    /// Summary before.
    pub before: Option<serde_json::Value>,
    /// Summary after.
    pub after: Option<serde_json::Value>,
}

/// A page of a list; pass `next_cursor` back as `cursor` for the next one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: Timestamp,
}
