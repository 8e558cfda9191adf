//! Machines by the hash of their fingerprint, without a signed answer: the
//! heartbeat itself (shared by Tessera's heartbeat and Keygen's ping), and
//! what the Keygen-compatible API asks of a machine (docs/KEYGEN.md).

use tessera_protocol::wire::MachineState;
use tessera_protocol::{LicenseId, Status};

use super::Machines;
use super::machine_rules::lease_until;
use super::places::Beat;
use crate::error::Result;
use crate::model::{License, Machine};
use crate::store::MachineKey;

impl Machines {
    /// A heartbeat of machine `mfp` of `license`: its renewed place, or why
    /// it holds none (`not_activated`, `lease_expired`). Written at the next
    /// flush (see `Places`).
    ///
    /// # Errors
    /// The store's.
    pub async fn beat(
        &self,
        license: &License,
        mfp: &str,
    ) -> Result<std::result::Result<Machine, Status>> {
        let now = self.lease_now();
        let Some(mut machine) = self.places.alive(&license.id, mfp, now).await? else {
            return Ok(Err(self.why_not_alive(&license.id, mfp).await?));
        };
        let lease_until = lease_until(&license.machines, now);
        machine.last_heartbeat = now;
        machine.heartbeat_started = true;
        if machine.lease_expires_at.is_some() {
            machine.lease_expires_at = lease_until;
        }
        self.places.beat(
            &machine,
            Beat {
                at: now,
                lease_until,
            },
        );
        Ok(Ok(machine))
    }

    /// `lease_expired` when machine `mfp`'s latest activation ended by its
    /// lease; `not_activated` otherwise.
    ///
    /// # Errors
    /// The store's.
    pub async fn why_not_alive(&self, license: &LicenseId, mfp: &str) -> Result<Status> {
        let latest = self.shared.store.latest_machine(license, mfp).await?;
        Ok(match latest {
            Some(m) if matches!(m.state, MachineState::Expired | MachineState::Active) => {
                Status::LeaseExpired
            }
            _ => Status::NotActivated,
        })
    }

    /// Machine `mfp` of `license` if it holds a place now.
    ///
    /// # Errors
    /// The store's.
    pub async fn alive(&self, license: &LicenseId, mfp: &str) -> Result<Option<Machine>> {
        self.places.alive(license, mfp, self.lease_now()).await
    }

    /// Machine `id` of `license` (any state), `None` when it is another
    /// license's or unknown.
    ///
    /// # Errors
    /// The store's.
    pub async fn by_id(&self, license: &LicenseId, id: &str) -> Result<Option<Machine>> {
        let machine = self.shared.store.machine(id).await?;
        Ok(machine.filter(|m| m.license_id == *license))
    }

    /// Machines of `license` holding a place now (read at most once a
    /// second, dropped at once on changes).
    ///
    /// # Errors
    /// The store's.
    pub async fn holding(&self, license: &LicenseId) -> Result<u32> {
        if let Some(n) = self.used.get(license) {
            return Ok(n);
        }
        let n = self
            .shared
            .store
            .active_machines(license, self.lease_now())
            .await?;
        self.used.insert(license.clone(), n);
        Ok(n)
    }

    /// The machine gives its place back (deactivated by itself): whether it
    /// held one.
    ///
    /// # Errors
    /// The store's.
    pub async fn end_by_hash(&self, license: &License, mfp: &str) -> Result<bool> {
        let ended = self
            .shared
            .store
            .end_machine(
                &license.id,
                MachineKey::Fingerprint(mfp),
                MachineState::Deactivated,
                "machine",
                self.lease_now(),
            )
            .await?;
        if ended.is_some() {
            self.announce(license);
        }
        Ok(ended.is_some())
    }
}
