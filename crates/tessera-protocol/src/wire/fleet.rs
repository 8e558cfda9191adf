//! The fleet view: a license's installations and what they hold.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The fleet view of one license: who holds which revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fleet {
    /// The license.
    pub license: String,
    /// Its current revision.
    pub revision: u64,
    /// One page of its installations, most recently seen first.
    pub instances: Vec<Instance>,
    /// Installations skipped before this page.
    pub offset: u64,
    /// The page size asked for.
    pub limit: u32,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<u64>,
    /// The counts.
    pub summary: FleetSummary,
}

/// Counts of a [`Fleet`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetSummary {
    /// Installations known.
    pub total: usize,
    /// Installations reporting the current revision ("delivered to N of M").
    pub current: usize,
    /// Installations with an open change stream.
    pub connected: usize,
    /// Installations seen within the activity window: these count towards
    /// the instance limit; older ones are kept until pruned.
    pub active: usize,
    /// The most installations admitted at once (`None` = no limit).
    pub max_instances: Option<usize>,
    /// Seat limit; `None` = unlimited.
    pub max_users: Option<u32>,
    /// Highest user count reported by an instance seen within the usage window.
    pub seats_in_use: Option<u32>,
    /// `seats_in_use` is over `max_users`.
    pub seats_exceeded: bool,
}

/// One installation of a license, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instance {
    /// Instance id.
    pub instance_id: String,
    /// First validation.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub first_seen: Timestamp,
    /// Latest validation.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_seen: Timestamp,
    /// App version.
    pub app_version: Option<String>,
    /// Reported users.
    pub users: Option<u32>,
    /// Revision it reports holding.
    pub held_revision: Option<u64>,
    /// Whether its change stream is open.
    pub stream_connected: bool,
    /// It validates through the Keygen-compatible API (its id starts with
    /// [`KEYGEN_INSTANCE_PREFIX`]): not moved to Tessera's SDK yet.
    #[serde(default)]
    pub keygen_api: bool,
}

/// Instance ids of sightings through the Keygen-compatible API start so
/// (`keygen.` and the first 16 hex digits of the fingerprint's hash, or
/// `keygen.anonymous` for validations naming no fingerprint).
pub const KEYGEN_INSTANCE_PREFIX: &str = "keygen.";
