//! Bodies of the admin API: policies, licenses, events, customers, usage.

use serde::{Deserialize, Serialize};

use super::{Enforcement, LicenseState, MachineInput, MachineSettingsView, OnExpiry, RenewalBasis};
use crate::Timestamp;
use crate::document::Status;
use crate::ids::{CustomerId, PolicyId};

/// `POST /v1/admin/policies`. Durations are written like `30d`, `1h`, `1y`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInput {
    /// Unique name.
    pub name: String,
    /// The product owning it (default: `default`).
    #[serde(default)]
    pub product: Option<String>,
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
    /// What expiry takes away (default `lose_access`).
    #[serde(default)]
    pub on_expiry: OnExpiry,
    /// How its rules are applied (default `enforce`).
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Machine limit and mode of its licenses (default: unlimited,
    /// node-locked).
    #[serde(flatten)]
    pub machines: MachineInput,
}

/// A policy as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyView {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: PolicyId,
    /// Unique name.
    pub name: String,
    /// The product owning it; `None` for the built-in `default` policy,
    /// which serves every product.
    #[serde(default)]
    pub product: Option<String>,
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
    /// What expiry takes away.
    pub on_expiry: OnExpiry,
    /// How its rules are applied.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Machine settings its licenses get.
    #[serde(flatten)]
    pub machines: MachineSettingsView,
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
    /// Product (default: the policy's; for the built-in `default` policy,
    /// the `default` product).
    #[serde(default)]
    pub product: Option<String>,
    /// Free-form JSON object kept with the license.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Features (default: the policy's). Each a name (letters, digits,
    /// `_ - . :`) or `name@end` for a feature that ends before the license
    /// (`audit@2027-03-01`: at the start of that day, UTC; or an RFC 3339
    /// time).
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
    /// Machine limit and mode (default: the policy's).
    #[serde(flatten)]
    pub machines: MachineInput,
}

/// A license as the admin API shows it. The token is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseView {
    /// `lic_…`.
    pub id: String,
    /// Customer name.
    pub customer: String,
    /// Product name.
    #[serde(default = "default_product")]
    pub product: String,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Policy name.
    pub policy: String,
    /// Plan.
    pub plan: String,
    /// Features.
    pub features: Vec<String>,
    /// Features with terms of their own (when each ends), by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entitlements: crate::Entitlements,
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
    /// Machine limit and mode.
    #[serde(flatten)]
    pub machines: MachineSettingsView,
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
    /// The hash of the event before it (§27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// This event's hash, over `prev_hash` and its fields (§27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
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

impl<T> Page<T> {
    /// A list answered whole: no next page.
    #[must_use]
    pub fn whole(items: Vec<T>) -> Self {
        Self {
            items,
            next_cursor: None,
        }
    }
}

/// A customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerView {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: CustomerId,
    /// Unique name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
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

/// One period of a metered feature's use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaPeriodView {
    /// `2026-12-01`, `2026-12` or `total` (UTC).
    pub period: String,
    /// Used in it, across every instance.
    pub used: u64,
    /// When the last report counted in it arrived.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// `GET /v1/admin/licenses/{id}/quotas/{feature}`: a metered feature's
/// quota, its use now, and its recent periods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsageView {
    /// License id.
    pub license: String,
    /// The feature.
    pub feature: String,
    /// Its quota, with `used` in the current period and `period_ends_at`.
    pub quota: crate::Quota,
    /// What is left of the limit in the current period.
    pub remaining: u64,
    /// Recent periods, newest first.
    pub periods: Vec<QuotaPeriodView>,
}

/// `PATCH /v1/admin/policies/{name}`: the settings to change (those left
/// out stay). They reach every license under the policy (a new revision
/// each, pushed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// How its rules are applied.
    #[serde(default)]
    pub enforcement: Option<Enforcement>,
    /// What expiry takes away.
    #[serde(default)]
    pub on_expiry: Option<OnExpiry>,
    /// How long a document stays trustworthy offline (e.g. `14d`).
    #[serde(default)]
    pub offline_grace: Option<String>,
    /// How often clients without a live stream ask again (e.g. `1h`).
    #[serde(default)]
    pub refresh_interval: Option<String>,
}

/// A license whose verdict the update changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerdictChange {
    /// License id.
    pub license: String,
    /// Customer name.
    pub customer: String,
    /// The verdict now: `valid`, `valid (warn: expired)`, `expired`, …
    pub before: String,
    /// The verdict after the update.
    pub after: String,
    /// Its instances holding an open change stream now.
    pub instances_connected: u64,
}

/// The answer to `PATCH /v1/admin/policies/{name}` (`?dry_run=true`:
/// what would change, nothing written).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyUpdateView {
    /// The policy as it is (dry run: as it would be).
    pub policy: PolicyView,
    /// Nothing was written.
    pub dry_run: bool,
    /// Licenses under the policy (revoked ones aside).
    pub licenses: u64,
    /// Those whose verdict changes, and how.
    pub changes: Vec<VerdictChange>,
    /// Connected instances of the licenses whose verdict changes.
    pub instances_connected: u64,
}

fn default_product() -> String {
    crate::DEFAULT_PRODUCT.to_owned()
}

/// `POST /v1/admin/products`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductInput {
    /// Short name, fixed for ever: 1–64 of `a-z 0-9 -` (`metabase-ee`).
    pub name: String,
    /// How people call it (default: the name).
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A product as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductView {
    /// Short name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// How many licenses it has.
    pub licenses: u64,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// `POST /v1/admin/keys`: a scoped admin key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKeyInput {
    /// Unique name (the actor in the audit log): letters, digits, `-_.`.
    pub name: String,
    /// `read`, `support`, `issuer` or `admin`.
    pub role: String,
    /// Limit it to these products (default: all).
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// When it stops working: a date, an RFC 3339 time, or a duration
    /// from now (`90d`). Default: never.
    #[serde(default)]
    pub expires: Option<String>,
}

/// An admin key as the admin API shows it (never the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKeyView {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Products it is limited to; absent: all.
    #[serde(default)]
    pub products: Option<Vec<String>>,
    /// When it stops working.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// Whether it has expired (as of the answer).
    #[serde(default)]
    pub expired: bool,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Answer to creating a key: the key, shown this once and never again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedAdminKey {
    /// The key's settings.
    #[serde(flatten)]
    pub view: AdminKeyView,
    /// `tsa_…`: not stored by the authority.
    pub key: String,
}
