//! JSON bodies of the authority's HTTP API (DESIGN §8), shared by the server,
//! the client and the CLI so the three cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::document::{Status, StatusClaims};

/// `POST /v1/validate` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Number of users in use.
    pub users: u32,
}

/// `POST /v1/validate` answer: the signed document and its decoded claims.
/// The `verdict` is for display; clients trust only the verified `document`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidateResponse {
    /// The signed status document (`v4.public.…`).
    pub document: String,
    /// Its claims, decoded.
    pub verdict: StatusClaims,
}

/// `POST /v1/instances/ack`: the revision an instance holds now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// For people.
    pub message: String,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysResponse {
    /// Public keys documents may be signed with.
    pub keys: Vec<KeyInfo>,
}

/// One public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// Key id, as in document footers.
    pub kid: String,
    /// Always `v4.public` (PASETO, Ed25519).
    pub alg: String,
    /// PASERK `k4.public.…`.
    pub public_key: String,
    /// `active` (signs new documents) or `retired`.
    #[serde(default = "active")]
    pub status: String,
    /// When a retired key stopped signing: pin it as `<public_key>@<retired_at>`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::rfc3339_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retired_at: Option<Timestamp>,
}

fn active() -> String {
    "active".to_owned()
}

/// How an extension by a duration is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// How long before expiry an automatic renewal happens (default 7d).
    #[serde(default)]
    pub renew_before: Option<String>,
}

/// A policy as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// How long before expiry an automatic renewal happens.
    pub renew_before: String,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// `POST /v1/admin/licenses`. Expiry: `expires_at`, `duration`, `perpetual`,
/// or else the policy's default duration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Renew automatically (default: the policy's setting).
    #[serde(default)]
    pub auto_renew: Option<bool>,
}

/// A license as the admin API shows it. The token is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub valid_from: Timestamp,
    /// End of the period; `None` = perpetual.
    #[serde(with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// Revision: +1 with every change.
    pub revision: u64,
    /// Last four characters of the token, for recognising it.
    pub token_last4: String,
    /// Renews itself (its own setting, or else its policy's).
    #[serde(default)]
    pub auto_renew: bool,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last changed.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// Answer to issuing: the token, shown this once and never again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedLicense {
    /// The new license.
    pub license: LicenseView,
    /// The token. Not stored by the authority: hand it to the customer now.
    pub token: String,
}

/// `POST /v1/admin/licenses/{id}/extend`: exactly one of `to` and `by`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonRequest {
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/admin/licenses/{id}/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportRequest {
    /// How long the document stays trustworthy (`365d`).
    pub ttl: String,
}

/// A long-lived signed document for an air-gapped site; also the file format
/// `tessera license export` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Sequence number, increasing.
    pub seq: i64,
    /// When.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// `POST /v1/usage`: metering, reported by the client (every 15 min by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRequest {
    /// The license token.
    pub token: String,
    /// The reporting installation.
    pub instance_id: String,
    /// Users in use now, as counted by the product.
    pub users: u32,
}

/// One day of metering: the highest user count any instance reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageDay {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Highest users reported that day.
    pub max_users: u32,
}

/// A license's metering: seats now and the daily maxima.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageView {
    /// The license.
    pub license: String,
    /// Seat limit; `None` = unlimited.
    pub max_users: Option<u32>,
    /// Highest current count among instances seen in the last day.
    pub seats_in_use: Option<u32>,
    /// `seats_in_use` is over `max_users`.
    pub seats_exceeded: bool,
    /// Daily maxima, newest first.
    pub days: Vec<UsageDay>,
}

/// `POST /v1/admin/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookInput {
    /// Where deliveries are POSTed (`http://` or `https://`).
    pub url: String,
    /// Event kinds to receive (`license.extended`, `license.expiring`, …) or
    /// `["*"]` for all.
    pub events: Vec<String>,
    /// Signing secret; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A webhook endpoint. The secret appears only in the answer to creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    /// `whk_…`.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Event kinds.
    pub events: Vec<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The signing secret: only when just created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// State of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted by the receiver; will be retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retries exhausted (24 h) without a 2xx.
    Failed,
}

impl DeliveryState {
    /// Its stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// From its stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one webhook, with its latest attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    /// Delivery id (the `Tessera-Delivery` header).
    pub id: i64,
    /// The webhook.
    pub webhook: String,
    /// The event's sequence number.
    pub event_seq: i64,
    /// The event's kind.
    pub kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the latest attempt, if it got an answer.
    pub last_status: Option<u16>,
    /// Error of the latest attempt (connection refused, timeout, …).
    pub last_error: Option<String>,
    /// Next attempt, while pending.
    #[serde(with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_at: Option<Timestamp>,
    /// Created (with the event).
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The body of a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// Delivery id (also in `Tessera-Delivery`): the same for every retry,
    /// so receivers can drop duplicates.
    pub delivery: i64,
    /// The event.
    pub event: EventView,
}
