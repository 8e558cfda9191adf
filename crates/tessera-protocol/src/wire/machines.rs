//! Machines (docs/PROTOCOL.md, "19. Machines"): the settings a policy or
//! license carries, the public activation API, and the admin view.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Timestamp;

/// How a license counts its machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MachineMode {
    /// Each machine is activated once and keeps its place until it is
    /// deactivated or released.
    #[default]
    NodeLocked,
    /// A machine holds a lease while it heartbeats; the place is freed when
    /// it deactivates or its lease runs out.
    Floating,
}

impl MachineMode {
    /// Every mode.
    pub const ALL: [Self; 2] = [Self::NodeLocked, Self::Floating];
}

/// When a machine that activates again is the same machine: the same
/// fingerprint (`exact`), or at least `n` of the components it activated
/// with (a changed disk or network card does not take a second place).
/// On the wire: `"exact"` or a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FingerprintMatch {
    /// The fingerprint alone.
    #[default]
    Exact,
    /// The fingerprint, or at least this many matching components.
    AtLeast(u8),
}

impl std::fmt::Display for FingerprintMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact => f.write_str("exact"),
            Self::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for FingerprintMatch {
    type Err = crate::Error;

    fn from_str(text: &str) -> Result<Self, crate::Error> {
        match text.trim() {
            "exact" => Ok(Self::Exact),
            n => match n.parse::<u8>() {
                Ok(n @ 1..=MAX_COMPONENTS_U8) => Ok(Self::AtLeast(n)),
                _ => Err(crate::Error::Malformed {
                    what: "fingerprint match",
                    reason: format!(
                        "expected \"exact\" or a number of components from 1 to {MAX_COMPONENTS}"
                    ),
                }),
            },
        }
    }
}

impl Serialize for FingerprintMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact => s.serialize_str("exact"),
            Self::AtLeast(n) => s.serialize_u8(*n),
        }
    }
}

impl<'de> Deserialize<'de> for FingerprintMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => n.to_string(),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for FingerprintMatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some(["exact"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Integer))
                    .minimum(Some(1))
                    .maximum(Some(MAX_COMPONENTS_U8)),
            )
            .description(Some("\"exact\", or how many components must match"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for FingerprintMatch {}

/// Most components a machine may name.
pub const MAX_COMPONENTS: usize = 16;
const MAX_COMPONENTS_U8: u8 = 16;

/// Longest fingerprint or component accepted.
pub const MAX_FINGERPRINT_LEN: usize = 256;

/// Machine settings as the admin API takes them for a policy or a license;
/// what is left out comes from the policy (for a license) or the defaults:
/// unlimited, node-locked, 15 min leases, no borrowing, exact match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineInput {
    /// Most machines active at once; `None` = unlimited (the machines are
    /// still listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
    /// `node_locked` or `floating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_mode: Option<MachineMode>,
    /// Floating: how long a lease lasts without a heartbeat (`15m`; at
    /// least `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<String>,
    /// Floating: how far ahead a machine may borrow its lease to go
    /// offline (`7d`; `0` = no borrowing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_borrow: Option<String>,
    /// `"exact"`, or how many components must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_match: Option<FingerprintMatch>,
}

/// Machine settings as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineSettingsView {
    /// Most machines active at once; `None` = unlimited.
    pub max_machines: Option<u32>,
    /// `node_locked` or `floating`.
    pub machine_mode: MachineMode,
    /// Lease length (`15m`).
    pub lease_ttl: String,
    /// Longest borrow (`0s` = none).
    pub max_borrow: String,
    /// `"exact"`, or how many components must match.
    pub fingerprint_match: FingerprintMatch,
}

/// `POST /v1/machines/activate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivateRequest {
    /// The license token.
    pub token: String,
    /// The machine's fingerprint: 1–256 printable ASCII characters.
    pub fingerprint: String,
    /// A name for people (the console shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Platform (`linux-x86_64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Component fingerprints (cpu, disk, mac, hostname) for threshold
    /// matching: each 1–256 printable ASCII characters, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Fresh random value the answer must echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// `POST /v1/machines/heartbeat` and `POST /v1/machines/deactivate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineRequest {
    /// The license token.
    pub token: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// Fresh random value the answer must echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// `POST /v1/machines/borrow`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BorrowRequest {
    /// The license token.
    pub token: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// Keep the lease until then (at most `max_borrow` from now).
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub until: Timestamp,
    /// Fresh random value the answer must echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Where a machine stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Holds a place.
    Active,
    /// Deactivated by itself.
    Deactivated,
    /// Released by the vendor.
    Released,
    /// Its floating lease ran out.
    Expired,
}

impl MachineState {
    /// Every state.
    pub const ALL: [Self; 4] = [
        Self::Active,
        Self::Deactivated,
        Self::Released,
        Self::Expired,
    ];
}

/// A machine as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineView {
    /// `mch_…`.
    pub id: String,
    /// The fingerprint hash (the documents' `mfp`); the fingerprint itself
    /// is not kept.
    pub mfp: String,
    /// Name, host name and platform, as the machine gave them.
    pub name: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Where it stands.
    pub state: MachineState,
    /// First activated.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub activated_at: Timestamp,
    /// Latest heartbeat (or activation).
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_heartbeat_at: Timestamp,
    /// Floating: when the lease ends unless renewed.
    #[serde(with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_expires_at: Option<Timestamp>,
    /// When it stopped holding a place.
    #[serde(with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ended_at: Option<Timestamp>,
}

/// `GET /v1/admin/licenses/{id}/machines`: one page and the counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineList {
    /// Machines, active first, then the most recently ended.
    pub items: Vec<MachineView>,
    /// Machines holding a place.
    pub active: u32,
    /// The limit; `None` = unlimited.
    pub max_machines: Option<u32>,
    /// `node_locked` or `floating`.
    pub machine_mode: MachineMode,
    /// The next page's offset, if any.
    pub next_offset: Option<u64>,
}

/// Check a fingerprint or component: 1–256 printable ASCII characters.
///
/// # Errors
/// [`crate::Error::Malformed`] saying what is wrong.
pub fn check_fingerprint(what: &'static str, text: &str) -> Result<(), crate::Error> {
    if text.is_empty() || text.len() > MAX_FINGERPRINT_LEN {
        return Err(crate::Error::Malformed {
            what,
            reason: format!("must be 1 to {MAX_FINGERPRINT_LEN} characters"),
        });
    }
    if !text.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return Err(crate::Error::Malformed {
            what,
            reason: "only printable ASCII characters are allowed".into(),
        });
    }
    Ok(())
}

/// `POST /v1/admin/offline-activations` (docs/PROTOCOL.md §25): an
/// isolated machine's request, read from its file or typed in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfflineActivationRequest {
    /// The request: its file's text, or the `TSRQ1-…` code alone.
    pub request: String,
    /// How long the response stays trustworthy (`365d`, at most 400 days).
    pub ttl: String,
}

/// The response an isolated machine imports: a document bound to the
/// machine (`mfp`) and answering its request's nonce. Also the file
/// `tessera license offline-activate` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfflineActivation {
    /// Always [`OfflineActivation::FORMAT`].
    pub format: String,
    /// The license.
    pub license: String,
    /// The machine's activation (`mch_…`); absent when refused.
    pub machine: Option<String>,
    /// The answer: `active`, or why not (`too_many_machines`, `suspended`…).
    pub status: crate::Status,
    /// Until when the document is trustworthy (its `exp`).
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub valid_until: crate::Timestamp,
    /// The signed status document.
    pub document: String,
}

impl OfflineActivation {
    /// The format tag.
    pub const FORMAT: &'static str = "tessera-offline-response/1";
}

/// The fingerprint hash a document carries (`mfp`): the first 32 hex
/// characters of SHA-256 of the fingerprint. The authority keeps only
/// this; a client compares it with the hash of its own fingerprint.
#[must_use]
pub fn machine_fingerprint_hash(fingerprint: &str) -> String {
    let digest = Sha256::digest(fingerprint.as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_checked() {
        assert!(check_fingerprint("fingerprint", "node-3").is_ok());
        assert!(check_fingerprint("fingerprint", &"a".repeat(256)).is_ok());
        for bad in [
            String::new(),
            "a".repeat(257),
            "tab\there".into(),
            "é".into(),
        ] {
            assert!(check_fingerprint("fingerprint", &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_hash_is_stable_and_short() {
        let h = machine_fingerprint_hash("node-3");
        assert_eq!(h.len(), 32);
        assert_eq!(h, machine_fingerprint_hash("node-3"));
        assert_ne!(h, machine_fingerprint_hash("node-4"));
    }

    #[test]
    fn fingerprint_match_round_trips() {
        for m in [FingerprintMatch::Exact, FingerprintMatch::AtLeast(3)] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<FingerprintMatch>(&json).unwrap(), m);
            assert_eq!(m.to_string().parse::<FingerprintMatch>().unwrap(), m);
        }
        assert_eq!(
            serde_json::from_str::<FingerprintMatch>("\"2\"").unwrap(),
            FingerprintMatch::AtLeast(2)
        );
        for bad in ["0", "17", "\"fuzzy\"", "-1"] {
            assert!(
                serde_json::from_str::<FingerprintMatch>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
