//! Bulk import and export of licenses (docs/PROTOCOL.md §30).

use serde::{Deserialize, Serialize};

use super::LicenseState;
use crate::Timestamp;

/// One license to import. Exactly one of `key` (the license key as the
/// customer has it: a `tsr_…` token or another system's key, kept as it
/// is) and `key_sha256` (its hash, from an `export-all` backup). Unknown
/// fields are not refused here ([`ExportedLicense`] extends it); the CLI
/// refuses them in a file, by line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRow {
    /// Its line in the import file (for messages and resuming).
    pub row: u64,
    /// The license key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's SHA-256 (hex), when the key itself is not at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// With `key_sha256`: the key's last four characters, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_last4: Option<String>,
    /// Customer name (created if new).
    pub customer: String,
    /// Customer e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    /// Product (default: the policy's, else `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Policy (default: the built-in `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Plan.
    pub plan: String,
    /// Features (default: the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Start of the period: a date or RFC 3339 time (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// End of the period (default: perpetual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Seat limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u32>,
    /// Machine limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
    /// `active` (default), `suspended` or `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LicenseState>,
    /// Free-form JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /v1/admin/licenses/import`: one batch of an import, written in
/// one transaction with the import's progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportBatch {
    /// The import's id (the CLI: a hash of the file): a rerun with the same
    /// id resumes after its last committed batch.
    pub import: String,
    /// The file's line this batch starts at.
    pub first_row: u64,
    /// The line after its last row: where the next batch starts.
    pub next_row: u64,
    /// Check every row, write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The rows (rows skipped as invalid are left out).
    pub rows: Vec<ImportRow>,
}

/// A row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportRowError {
    /// Its line.
    pub row: u64,
    /// Why, for people.
    pub reason: String,
}

/// Where an import stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportProgress {
    /// The import's id.
    pub import: String,
    /// The line the next batch starts at (1: nothing committed yet).
    pub next_row: u64,
    /// Licenses imported so far.
    pub imported: u64,
    /// The rows refused (a dry run, or a batch refused whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ImportRowError>,
}

/// A license as `tessera license export-all` writes it: an [`ImportRow`]
/// (with the key's hash: the authority never holds the key) and what the
/// authority added.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportedLicense {
    /// `lic_…`.
    pub id: String,
    /// Revision.
    pub revision: u64,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// What an import takes back.
    #[serde(flatten)]
    pub row: ImportRow,
}
