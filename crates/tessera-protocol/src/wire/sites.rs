//! Sites and their relays (docs/PROTOCOL.md §26): the admin API's bodies
//! and what a relay sends upstream.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// One license a site may use, and its share of the license's machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteLicense {
    /// The license (`lic_…`).
    pub license: String,
    /// Machines or floating seats the site may use (at most the license's
    /// own limit); absent: the license's limit, or uncounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
}

/// `POST /v1/admin/sites`: a site and its relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteInput {
    /// The site's name: 1–60 of `a-z 0-9 - _ .`.
    pub site: String,
    /// The relay's public key, as `tessera relay init` prints it (`k4.public.…`).
    pub relay_key: String,
    /// The licenses the site may use (1–20).
    pub licenses: Vec<SiteLicense>,
    /// How long each bundle lets the relay answer without a new one
    /// (`30d` by default, at most 400 days): a revoked site's relay stops
    /// at its bundle's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<String>,
}

/// What a relay last reported for one license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteUsage {
    /// The license.
    pub license: String,
    /// Machines holding a place or lease there now.
    pub machines: u32,
    /// Installations seen within the last day.
    pub instances: u32,
    /// The highest user count an installation reported; absent: none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
}

/// A site as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteView {
    /// Its name.
    pub site: String,
    /// The relay's public key.
    pub relay_key: String,
    /// Its licenses.
    pub licenses: Vec<SiteLicense>,
    /// Each bundle's lifetime, in seconds.
    pub valid_for_secs: u64,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Revoked: no new bundles.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// The relay's last synchronisation.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_sync_at: Option<Timestamp>,
    /// What the relay reported then.
    #[serde(default)]
    pub usage: Vec<SiteUsage>,
}

/// A signed bundle: `POST /v1/admin/sites`, `POST
/// /v1/admin/sites/{site}/bundle`, `POST /v1/relay/sync`, and the file a
/// relay imports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteBundleFile {
    /// Always [`SiteBundleFile::FORMAT`].
    pub format: String,
    /// The site.
    pub site: String,
    /// Until when the relay may answer with it.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub valid_until: Timestamp,
    /// The bundle (`v4.public.…`).
    pub bundle: String,
}

impl SiteBundleFile {
    /// The format tag.
    pub const FORMAT: &'static str = "tessera-site-bundle/1";
}

/// `POST /v1/relay/sync`: a relay asks for a newer bundle and reports its
/// usage, proving it holds the relay key the site names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelaySyncRequest {
    /// A `v4.public` token signed by the relay's key (footer `{kid, typ:
    /// "tessera-relay-sync/1"}`): `{site, iat, usage}`.
    pub proof: String,
}
