//! Machines: the settings a policy gives its licenses, and activations.

use chrono::Duration;
use tessera_protocol::human::format_duration;
use tessera_protocol::wire::{
    FingerprintMatch, MachineMode, MachineSettingsView, MachineState, MachineView,
};
use tessera_protocol::{LicenseId, Timestamp};

/// How a policy or license counts machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSettings {
    /// Most machines active at once; `None` = unlimited.
    pub max_machines: Option<u32>,
    /// Node-locked or floating.
    pub mode: MachineMode,
    /// Floating: a lease's length without a heartbeat.
    pub lease_ttl: Duration,
    /// Floating: how far ahead a lease may be borrowed (zero: not at all).
    pub max_borrow: Duration,
    /// When a machine that activates again is the same one.
    pub fingerprint_match: FingerprintMatch,
}

impl Default for MachineSettings {
    fn default() -> Self {
        Self {
            max_machines: None,
            mode: MachineMode::NodeLocked,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            max_borrow: Duration::zero(),
            fingerprint_match: FingerprintMatch::Exact,
        }
    }
}

impl MachineSettings {
    /// Default lease: 15 minutes.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::minutes(15);

    /// Whether the license admits only activated machines: it has a limit,
    /// or it is floating. Others answer any machine (activations are still
    /// listed when clients make them).
    #[must_use]
    pub fn counts_machines(&self) -> bool {
        self.max_machines.is_some() || self.mode == MachineMode::Floating
    }

    /// The admin API's view.
    #[must_use]
    pub fn view(&self) -> MachineSettingsView {
        MachineSettingsView {
            max_machines: self.max_machines,
            machine_mode: self.mode,
            lease_ttl: format_duration(self.lease_ttl),
            max_borrow: format_duration(self.max_borrow),
            fingerprint_match: self.fingerprint_match,
        }
    }
}

/// One activation of a machine on a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `mch_…`.
    pub id: String,
    /// The license.
    pub license_id: LicenseId,
    /// Fingerprint hash.
    pub mfp: String,
    /// Name, as the machine gave it.
    pub name: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Hashes of its components.
    pub components: Vec<String>,
    /// Where it stands.
    pub state: MachineState,
    /// First activated.
    pub activated_at: Timestamp,
    /// Latest heartbeat (or activation).
    pub last_heartbeat: Timestamp,
    /// Floating: the lease ends then unless renewed.
    pub lease_expires_at: Option<Timestamp>,
    /// When it stopped holding a place.
    pub ended_at: Option<Timestamp>,
    /// It has sent a heartbeat since its activation (or was activated
    /// through Tessera's API, where the activation is the first).
    pub heartbeat_started: bool,
}

impl Machine {
    /// The admin API's view.
    #[must_use]
    pub fn view(&self) -> MachineView {
        MachineView {
            id: self.id.clone(),
            mfp: self.mfp.clone(),
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            platform: self.platform.clone(),
            state: self.state,
            activated_at: self.activated_at,
            last_heartbeat_at: self.last_heartbeat,
            lease_expires_at: self.lease_expires_at,
            ended_at: self.ended_at,
        }
    }
}

/// An activation to record, if the license has room.
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// `mch_…`, minted by the rules.
    pub id: String,
    /// Fingerprint hash.
    pub mfp: String,
    /// Name.
    pub name: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Component hashes.
    pub components: Vec<String>,
    /// Whether the activation counts as its first heartbeat (Tessera's
    /// API) or not (Keygen's, where the first ping starts it).
    pub heartbeat_started: bool,
}
