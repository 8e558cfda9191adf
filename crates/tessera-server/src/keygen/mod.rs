//! The Keygen-compatible API (docs/KEYGEN.md): Keygen's license
//! validation and machine endpoints answered from Tessera's own state, so
//! that products built on Keygen's SDKs keep working against Tessera while
//! their vendor moves to Tessera's SDK. Nothing here is stored apart: a
//! Keygen activation is a Tessera machine, a suspension made in Tessera is
//! what the next Keygen validation says.
//!
//! - [`rules`]: which `code` a validation answers (pure);
//! - [`shapes`]: Keygen's JSON:API resources;
//! - [`Keygen`]: the operations, over [`crate::licenses`].
//!
//! The HTTP side (routes under `/v1/…` and `/v1/accounts/{account}/…`,
//! Keygen's error documents and response signatures) is
//! [`crate::http::keygen`].

pub mod rules;
pub mod shapes;

use std::sync::Arc;

use tessera_protocol::wire::{ActivateRequest, MachineMode};
use tessera_protocol::{LicenseToken, Status, Timestamp};

use crate::error::{Error, Result};
use crate::licenses::machine_rules::machine_identity;
use crate::licenses::{Machines, Shared};
use crate::model::{InstanceSeen, License, Machine};
use rules::{Facts, MachineState, Outcome, Scope};

use tessera_protocol::wire::KEYGEN_INSTANCE_PREFIX as INSTANCE_PREFIX;

/// The Keygen API's operations.
#[derive(Debug)]
pub struct Keygen {
    shared: Shared,
    machines: Arc<Machines>,
    account: String,
}

/// A validation's answer: the license (when known) and the outcome.
#[derive(Debug)]
pub struct Validated {
    /// The license, `None` for `NOT_FOUND`.
    pub license: Option<Arc<License>>,
    /// `valid`, `detail`, `code`.
    pub outcome: Outcome,
    /// When it was answered.
    pub at: Timestamp,
}

/// The account id Keygen clients configure: derived from the authority's
/// public key (a UUID of its SHA-256), so it needs no setting and names
/// the key that signs the answers (`keyid` of `Keygen-Signature`).
#[must_use]
pub fn account_id(public: &tessera_protocol::PublicKey) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(public.raw_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Keygen {
    /// The Keygen API over the shared parts.
    #[must_use]
    pub fn new(shared: &Shared, machines: Arc<Machines>) -> Self {
        Self {
            account: account_id(shared.signer.public_key()),
            shared: shared.clone(),
            machines,
        }
    }

    /// This authority's Keygen account id.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Resources as this account's.
    #[must_use]
    pub fn shapes(&self) -> shapes::Shapes<'_> {
        shapes::Shapes {
            account: &self.account,
        }
    }

    /// A validation's whole answer (`meta`, and the license resource or
    /// `null`) for `license` of `key` (`None`: unknown), against `scope`,
    /// echoing `nonce` and the scope as sent.
    ///
    /// # Errors
    /// As [`Keygen::validate`].
    pub async fn validation(
        &self,
        license: Option<Arc<License>>,
        key: &str,
        nonce: Option<i64>,
        sent: Option<&shapes::ScopeParams>,
    ) -> Result<serde_json::Value> {
        let scope = sent.map(shapes::ScopeParams::scope).unwrap_or_default();
        let v = self.validate(license, &scope).await?;
        let data = match &v.license {
            Some(license) => {
                let held = self.holding(license).await?;
                self.shapes().license(license, key, held, v.at)
            }
            None => serde_json::Value::Null,
        };
        Ok(self.shapes().validation(v.outcome, data, v.at, nonce, sent))
    }

    /// Now, on this replica's clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The license of `key`; `None` for an unknown or malformed key (Keygen
    /// answers both `NOT_FOUND`).
    ///
    /// # Errors
    /// The store's.
    pub async fn license(&self, key: &str) -> Result<Option<Arc<License>>> {
        let Ok(token) = LicenseToken::parse(key) else {
            return Ok(None);
        };
        self.shared.cache.lookup(&token.hash()).await
    }

    /// Machines of `license` holding a place.
    ///
    /// # Errors
    /// The store's.
    pub async fn holding(&self, license: &License) -> Result<u32> {
        self.machines.holding(&license.id).await
    }

    /// Validate `license` (of a key; `None`: unknown) against `scope`,
    /// noting the sighting (an instance named by the fingerprint).
    ///
    /// # Errors
    /// 400 for a malformed fingerprint; the store's.
    pub async fn validate(
        &self,
        license: Option<Arc<License>>,
        scope: &Scope,
    ) -> Result<Validated> {
        let at = self.now();
        let Some(license) = license else {
            self.shared.metrics.validation("not_found");
            return Ok(Validated {
                license: None,
                outcome: rules::NOT_FOUND,
                at,
            });
        };
        let status = license.status_at(at);
        let mut fingerprints = Vec::new();
        let mut first_mfp = None;
        for f in scope.fingerprints.iter().flatten() {
            let (mfp, _) = machine_identity(f, &[])?;
            fingerprints.push(self.machine_state(&license, &mfp).await?);
            first_mfp.get_or_insert(mfp);
        }
        let machine = match &scope.machine {
            Some(id) => Some(match self.machines.by_id(&license.id, id).await? {
                Some(m) => self.machine_state(&license, &m.mfp).await?,
                None => MachineState::Missing,
            }),
            None => None,
        };
        let settings = &license.machines;
        let strict = settings.counts_machines();
        let held = if strict || machine.is_some() || !fingerprints.is_empty() {
            self.machines.holding(&license.id).await?
        } else {
            0
        };
        let mut features = license.features.clone();
        features.extend(license.entitlements.keys().cloned());
        let facts = Facts {
            status,
            keeps_access: status == Status::Expired && crate::status::usable(&license, at),
            product: &license.product,
            policy: &license.policy.name,
            features: &features,
            strict,
            floating: settings.mode == MachineMode::Floating,
            max_machines: settings.max_machines,
            machines: held,
            machine,
            fingerprints: &fingerprints,
        };
        let outcome = rules::outcome(&facts, scope);
        self.shared.metrics.validation(if outcome.valid {
            "keygen_valid"
        } else {
            "keygen_invalid"
        });
        let instance = match &first_mfp {
            Some(mfp) => format!("{INSTANCE_PREFIX}{}", &mfp[..16.min(mfp.len())]),
            None => format!("{INSTANCE_PREFIX}anonymous"),
        };
        self.shared
            .installations
            .note(InstanceSeen::new(license.id.clone(), instance, at))
            .await?;
        Ok(Validated {
            license: Some(license),
            outcome,
            at,
        })
    }

    /// Where machine `mfp` of `license` stands, as Keygen's rules see it:
    /// a heartbeat not started matters only where heartbeats are required
    /// (a floating license's leases).
    async fn machine_state(&self, license: &License, mfp: &str) -> Result<MachineState> {
        let heartbeats = license.machines.mode == MachineMode::Floating;
        Ok(match self.machines.alive(&license.id, mfp).await? {
            Some(m) if m.heartbeat_started || !heartbeats => MachineState::Alive,
            Some(_) => MachineState::NotStarted,
            None => match self.machines.why_not_alive(&license.id, mfp).await? {
                Status::LeaseExpired => MachineState::Dead,
                _ => MachineState::Missing,
            },
        })
    }

    /// `POST /v1/machines`: activate machine `fingerprint` on the license of
    /// `key`. Keygen's refusals: 422 `fingerprint_taken` (it holds a place
    /// already), 422 `machine_limit_exceeded`, 403 for a license that cannot
    /// be used (`license_suspended`, `license_expired`, `license_revoked`).
    ///
    /// # Errors
    /// Those; 400 for a malformed fingerprint.
    pub async fn activate(
        &self,
        key: &str,
        license: &License,
        attributes: shapes::MachineAttributes,
    ) -> Result<Machine> {
        let (mfp, _) = machine_identity(&attributes.fingerprint, &[]).map_err(|_| {
            Error::unprocessable(
                "fingerprint_invalid",
                "fingerprint must be 1-256 printable ASCII characters",
            )
        })?;
        if self.machines.alive(&license.id, &mfp).await?.is_some() {
            return Err(Error::unprocessable(
                "fingerprint_taken",
                "has already been taken",
            ));
        }
        let signed = self
            .machines
            .activate_as(
                ActivateRequest {
                    token: key.to_owned(),
                    fingerprint: attributes.fingerprint,
                    name: attributes.name,
                    hostname: attributes.hostname,
                    platform: attributes.platform,
                    components: Vec::new(),
                    nonce: None,
                },
                false,
            )
            .await?;
        let claims = &signed.claims;
        if claims.status == Status::TooManyMachines {
            return Err(Error::unprocessable(
                "machine_limit_exceeded",
                format!(
                    "machine count has exceeded maximum allowed for license ({})",
                    license.machines.max_machines.unwrap_or(0)
                ),
            ));
        }
        let refused = |code: &'static str, message: &str| Error::Forbidden {
            code,
            message: message.to_owned(),
        };
        // A license kept past its expiry by its policy still activates
        // (valid, status expired); one that cannot be used does not.
        if !claims.valid {
            return Err(match claims.status {
                Status::Suspended => refused("license_suspended", "license is suspended"),
                Status::Revoked => refused("license_revoked", "license is revoked"),
                Status::Expired => refused("license_expired", "license is expired"),
                other => refused("license_invalid", &format!("license is {}", other.as_str())),
            });
        }
        let id = claims
            .machine
            .as_ref()
            .and_then(|m| m.id.clone())
            .ok_or_else(|| Error::Corrupt("an activation answered without its machine".into()))?;
        self.machines
            .by_id(&license.id, &id)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("activated machine {id} not found")))
    }

    /// Machine `id` of `license` while it holds a place (Keygen forgets
    /// machines that give theirs up): 404 otherwise.
    ///
    /// # Errors
    /// 404; the store's.
    pub async fn machine(&self, license: &License, id: &str) -> Result<Machine> {
        let not_found = || Error::NotFound {
            what: "machine",
            id: id.to_owned(),
        };
        let machine = self
            .machines
            .by_id(&license.id, id)
            .await?
            .ok_or_else(not_found)?;
        // The places as this replica knows them (heartbeats not yet written
        // included), or the row if it holds none: a dead one is shown dead.
        use tessera_protocol::wire::MachineState as Held;
        match self.machines.alive(&license.id, &machine.mfp).await? {
            Some(alive) if alive.id == machine.id => Ok(alive),
            // Its lease ran out (ended by the reaper, or not yet).
            _ if matches!(machine.state, Held::Expired | Held::Active) => Ok(Machine {
                state: Held::Expired,
                ..machine
            }),
            _ => Err(not_found()),
        }
    }

    /// `POST /v1/machines/{id}/actions/ping`: a heartbeat. 422
    /// `machine_heartbeat_dead` when its lease ran out.
    ///
    /// # Errors
    /// That; 404 for a machine holding no place.
    pub async fn ping(&self, license: &License, id: &str) -> Result<Machine> {
        let machine = self.machine(license, id).await?;
        match self.machines.beat(license, &machine.mfp).await? {
            Ok(m) => Ok(m),
            Err(_) => Err(Error::unprocessable("machine_heartbeat_dead", "is dead")),
        }
    }

    /// `DELETE /v1/machines/{id}`: the machine gives its place back.
    ///
    /// # Errors
    /// 404 for a machine holding no place.
    pub async fn deactivate(&self, license: &License, id: &str) -> Result<()> {
        let machine = self.machine(license, id).await?;
        if self.machines.end_by_hash(license, &machine.mfp).await? {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "machine",
                id: id.to_owned(),
            })
        }
    }
}
