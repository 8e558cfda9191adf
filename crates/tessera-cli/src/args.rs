//! Parsing of command-line values shared by the commands.

use clap::Args;
use tessera_protocol::LicenseId;
use tessera_protocol::wire::{FingerprintMatch, MachineInput, MachineMode};

/// `a, b,c` → `["a", "b", "c"]` (blanks dropped).
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A license id argument, checked before anything is sent.
pub fn parse_license_id(text: &str) -> Result<LicenseId, String> {
    LicenseId::parse(text).map_err(|e| e.to_string())
}

/// A time typed by a person (RFC 3339 or `YYYY-MM-DD`, UTC midnight).
pub fn parse_date(text: &str) -> Result<tessera_protocol::Timestamp, String> {
    tessera_protocol::human::parse_date_or_time(text).map_err(|e| e.to_string())
}

/// Machine limit and mode, for `policy create` and `license issue`.
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// Most machines active at once (default: unlimited; a license's
    /// default is its policy's).
    #[arg(long, value_name = "N")]
    max_machines: Option<u32>,
    /// Floating: a machine holds a lease while it heartbeats, freed when it
    /// stops or deactivates (default: node-locked, each machine activated
    /// once and kept until it deactivates).
    #[arg(long)]
    floating: bool,
    /// Floating: how long a lease lasts without a heartbeat (default 15m,
    /// at least 1s; clients heartbeat at a third of it).
    #[arg(long, value_name = "DURATION")]
    lease_ttl: Option<String>,
    /// Floating: how far ahead a machine may borrow its lease to go offline
    /// (default 0 = no borrowing).
    #[arg(long, value_name = "DURATION")]
    max_borrow: Option<String>,
    /// When a machine that activates again is the same one: "exact" (the
    /// fingerprint) or N (at least N matching components).
    #[arg(long, value_name = "exact|N")]
    fingerprint_match: Option<FingerprintMatch>,
}

impl MachineArgs {
    /// The admin API's settings.
    pub fn input(&self) -> MachineInput {
        MachineInput {
            max_machines: self.max_machines,
            machine_mode: self.floating.then_some(MachineMode::Floating),
            lease_ttl: self.lease_ttl.clone(),
            max_borrow: self.max_borrow.clone(),
            fingerprint_match: self.fingerprint_match,
        }
    }
}
