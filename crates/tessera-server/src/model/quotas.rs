//! Metered quotas (docs/PROTOCOL.md §22): a consumption report as the store
//! records it, and what recording it did.

use tessera_protocol::{LicenseId, Quota, Timestamp};

use super::License;

/// One feature's amount in a report, with the quota it counts against.
#[derive(Debug, Clone)]
pub struct Metered {
    /// The feature.
    pub feature: String,
    /// How much was consumed (≤ 2^53).
    pub amount: u64,
    /// Its quota on the license.
    pub quota: Quota,
}

/// A consumption report: counted once per (license, instance, sequence).
#[derive(Debug, Clone)]
pub struct Consumption {
    /// The license.
    pub license: LicenseId,
    /// The reporting instance.
    pub instance: String,
    /// The instance's sequence number for this report.
    pub seq: u64,
    /// Tells a retry of this report from another report with its sequence.
    pub digest: String,
    /// When it arrived: the periods it counts in.
    pub at: Timestamp,
    /// Amounts per feature (each feature once).
    pub items: Vec<Metered>,
}

/// A feature's use after a report, and what the report passed.
#[derive(Debug, Clone)]
pub struct Counted {
    /// The feature.
    pub feature: String,
    /// The period it counted in.
    pub period: String,
    /// Used in that period, across every instance.
    pub used: u64,
    /// The quota.
    pub quota: Quota,
    /// What this report passed.
    pub crossed: tessera_protocol::quota::Crossings,
}

/// What recording a report did.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// The same report was counted before: nothing changed.
    Duplicate,
    /// Counted now.
    Counted {
        /// Each feature's use after it.
        counts: Vec<Counted>,
        /// The license after a new revision, when consumption passed a
        /// blocking point (every instance must hear of it).
        changed: Option<Box<License>>,
    },
}

/// One period of a feature's use, for the admin views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodUse {
    /// `2026-12-01`, `2026-12` or `total`.
    pub period: String,
    /// Used in it.
    pub used: u64,
    /// Last report counted.
    pub updated_at: Timestamp,
}
