//! Bodies of the public API: what licensed products send and receive.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::document::StatusClaims;

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
    /// The machine's fingerprint: required by a license that counts
    /// machines (the answer is then bound to it, `mfp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
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

/// `POST /v1/consumption`: metered use since the instance's last report
/// (docs/PROTOCOL.md §22). Counted once per (instance, `seq`): a report
/// sent again with the same sequence and amounts is answered as before and
/// not counted twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumptionRequest {
    /// The license token.
    pub token: String,
    /// The reporting installation.
    pub instance_id: String,
    /// This report's sequence number, 1 to 2^53, new for each report.
    pub seq: u64,
    /// Amount consumed per metered feature, each 0 to 2^53.
    pub amounts: std::collections::BTreeMap<String, u64>,
}

/// The answer to a consumption report: each reported feature's quota with
/// its use in the current period, across every instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumptionView {
    /// License id.
    pub license: String,
    /// The report's sequence number.
    pub seq: u64,
    /// It had been counted before (a retry): nothing was added.
    pub duplicate: bool,
    /// The reported features' quotas, with `used` and `period_ends_at`.
    pub quotas: std::collections::BTreeMap<String, crate::Quota>,
}

/// `POST /v1/trials`: a trial of a trial policy for one machine
/// (docs/PROTOCOL.md §23). Asked again from the same machine, the same
/// trial comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialRequest {
    /// The trial policy's name.
    pub policy: String,
    /// The machine's fingerprint (1–256 printable characters; the SDK
    /// sends a hash of the host's machine id and the vendor's key).
    pub fingerprint: String,
    /// The person trying the product, if the product asks.
    #[serde(default)]
    pub email: Option<String>,
}

/// The answer to `POST /v1/trials`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialResponse {
    /// The trial license.
    pub license: String,
    /// Its token: the product activates it like any other.
    pub token: String,
    /// When the trial ends.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// A new trial (`false`: this machine's existing one).
    pub created: bool,
    /// A signed status document for the token, as `/v1/validate` answers.
    pub document: String,
}

/// `POST /v1/trials/convert`: a paid license now used where a trial was;
/// the trial ends (pushed to its instances).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConvertTrialRequest {
    /// The trial's token.
    pub trial_token: String,
    /// The paid license's token.
    pub token: String,
}
