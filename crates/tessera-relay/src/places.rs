//! Places on a relay (docs/PROTOCOL.md §19, §26): node-locked machines and
//! floating leases, held in memory and written through to SQLite before
//! any answer, one change at a time — so 30 machines racing for 20 seats
//! get exactly 20, and a crash loses no place. A lease that is not renewed
//! ends at its TTL; the reaper records it and frees the seat.

use std::collections::{HashMap, HashSet};

use tessera_protocol::bundle::BundleLicense;
use tessera_protocol::wire::MachineMode;
use tessera_protocol::{Status, Timestamp};
use tokio::sync::Mutex;

use crate::error::Result;
use crate::store::{MachineRow, Store};

/// What a machine was answered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It holds this place.
    Place(MachineRow),
    /// It has none: `not_activated`, `too_many_machines`, `lease_expired`.
    Refused(Status),
}

/// The places of every license, by token fingerprint then machine.
#[derive(Debug)]
pub struct Places {
    store: Store,
    held: Mutex<HashMap<String, HashMap<String, MachineRow>>>,
    /// Seats given to relays below, by token fingerprint.
    delegated: std::sync::RwLock<HashMap<String, u32>>,
    /// Machines whose lease ran out, by token fingerprint: a late heartbeat
    /// is told `lease_expired` (and the machine takes a place again), not
    /// `not_activated` (which a holder reads as released by the vendor).
    lapsed: Mutex<HashMap<String, HashSet<String>>>,
}

fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn active(m: &MachineRow, now: i64) -> bool {
    m.lease_expires_at.is_none_or(|end| end > now)
}

fn lease_end(license: &BundleLicense, now: Timestamp) -> Option<i64> {
    (license.machine_mode == Some(MachineMode::Floating)).then(|| {
        let ttl = i64::try_from(license.lease_ttl.unwrap_or(900)).unwrap_or(900);
        millis(now) + ttl.max(1) * 1000
    })
}

impl Places {
    /// Load the places held.
    ///
    /// # Errors
    /// The store's.
    pub async fn load(store: Store) -> Result<Self> {
        let mut held: HashMap<String, HashMap<String, MachineRow>> = HashMap::new();
        for m in store.machines().await? {
            held.entry(m.tfp.clone())
                .or_default()
                .insert(m.mfp.clone(), m);
        }
        Ok(Self {
            store,
            held: Mutex::new(held),
            delegated: std::sync::RwLock::default(),
            lapsed: Mutex::default(),
        })
    }

    /// Seats given to relays below, by token fingerprint.
    pub fn set_delegated(&self, delegated: HashMap<String, u32>) {
        *self
            .delegated
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = delegated;
    }

    fn delegated(&self, tfp: &str) -> u32 {
        self.delegated
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tfp)
            .copied()
            .unwrap_or(0)
    }

    /// Places taken on a license now: here and below.
    pub async fn used(&self, tfp: &str, now: Timestamp) -> u32 {
        let held = self.held.lock().await;
        count(held.get(tfp), millis(now)) + self.delegated(tfp)
    }

    /// Take a place, or hold (renew) the one the machine has.
    ///
    /// # Errors
    /// The store's (nothing is answered then).
    pub async fn activate(
        &self,
        license: &BundleLicense,
        mfp: &str,
        name: Option<String>,
        now: Timestamp,
    ) -> Result<(Outcome, u32)> {
        let tfp = license.tfp.as_str();
        let mut held = self.held.lock().await;
        let places = held.entry(tfp.to_owned()).or_default();
        let at = millis(now);
        if let Some(m) = places.get(mfp).cloned() {
            if active(&m, at) {
                let renewed = self.renew(places, m, license, now).await?;
                let used = count(Some(places), at) + self.delegated(tfp);
                return Ok((Outcome::Place(renewed), used));
            }
            self.end(places, &m, license, "lease.expired", now).await?;
        }
        let used = count(Some(places), at) + self.delegated(tfp);
        if license.max_machines.is_some_and(|max| used >= max) {
            self.store
                .audit(
                    now.timestamp(),
                    "machine.refused",
                    &license.license,
                    Some("too_many_machines"),
                )
                .await?;
            return Ok((Outcome::Refused(Status::TooManyMachines), used));
        }
        self.forget_lapsed(tfp, mfp).await;
        let m = MachineRow {
            tfp: tfp.to_owned(),
            mfp: mfp.to_owned(),
            id: format!("mch_{}", uuid::Uuid::now_v7()),
            activated_at: now.timestamp(),
            lease_expires_at: lease_end(license, now),
            name,
        };
        self.store
            .put_machine(
                &m,
                Some(("machine.activated", &license.license, now.timestamp())),
            )
            .await?;
        places.insert(mfp.to_owned(), m.clone());
        Ok((Outcome::Place(m), used + 1))
    }

    /// A machine asks where it stands; a floating one renews its lease (a
    /// validation is its heartbeat). `changed` when a lease just ended.
    ///
    /// # Errors
    /// The store's.
    pub async fn heartbeat(
        &self,
        license: &BundleLicense,
        mfp: &str,
        now: Timestamp,
    ) -> Result<(Outcome, u32, bool)> {
        let tfp = license.tfp.as_str();
        let mut held = self.held.lock().await;
        let places = held.entry(tfp.to_owned()).or_default();
        let at = millis(now);
        let outcome = match places.get(mfp).cloned() {
            None if self.has_lapsed(tfp, mfp).await => {
                (Outcome::Refused(Status::LeaseExpired), false)
            }
            None => (Outcome::Refused(Status::NotActivated), false),
            Some(m) if active(&m, at) => (
                Outcome::Place(self.renew(places, m, license, now).await?),
                false,
            ),
            Some(m) => {
                // A late heartbeat never brings a lease back.
                self.end(places, &m, license, "lease.expired", now).await?;
                self.note_lapsed(tfp, mfp).await;
                (Outcome::Refused(Status::LeaseExpired), true)
            }
        };
        let used = count(Some(places), at) + self.delegated(tfp);
        Ok((outcome.0, used, outcome.1))
    }

    /// Give a place back; `false` when the machine held none.
    ///
    /// # Errors
    /// The store's.
    pub async fn deactivate(
        &self,
        license: &BundleLicense,
        mfp: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let mut held = self.held.lock().await;
        let places = held.entry(license.tfp.as_str().to_owned()).or_default();
        match places.get(mfp).cloned() {
            Some(m) if active(&m, millis(now)) => {
                self.end(places, &m, license, "machine.released", now)
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// End the leases that ran out; the licenses whose seats were freed.
    ///
    /// # Errors
    /// The store's.
    pub async fn reap(&self, licenses: &[BundleLicense], now: Timestamp) -> Result<Vec<String>> {
        let mut freed = Vec::new();
        let mut held = self.held.lock().await;
        let at = millis(now);
        for (tfp, places) in held.iter_mut() {
            let ended: Vec<MachineRow> = places
                .values()
                .filter(|m| !active(m, at))
                .cloned()
                .collect();
            if ended.is_empty() {
                continue;
            }
            let license = licenses
                .iter()
                .find(|l| l.tfp.as_str() == tfp)
                .map_or_else(|| tfp.clone(), |l| l.license.clone());
            for m in ended {
                self.store
                    .remove_machine(&m, "lease.expired", &license, now.timestamp())
                    .await?;
                places.remove(&m.mfp);
                self.note_lapsed(tfp, &m.mfp).await;
            }
            freed.push(tfp.clone());
        }
        Ok(freed)
    }

    async fn note_lapsed(&self, tfp: &str, mfp: &str) {
        let mut lapsed = self.lapsed.lock().await;
        let set = lapsed.entry(tfp.to_owned()).or_default();
        // Bounded: a machine forgotten here is told `not_activated` instead.
        if set.len() > 100_000 {
            set.clear();
        }
        set.insert(mfp.to_owned());
    }

    async fn has_lapsed(&self, tfp: &str, mfp: &str) -> bool {
        self.lapsed
            .lock()
            .await
            .get(tfp)
            .is_some_and(|s| s.contains(mfp))
    }

    async fn forget_lapsed(&self, tfp: &str, mfp: &str) {
        if let Some(set) = self.lapsed.lock().await.get_mut(tfp) {
            set.remove(mfp);
        }
    }

    /// Renew a floating lease. Written at most every tenth of the lease (a
    /// burst of heartbeats is one write); the lease end moves by as much.
    async fn renew(
        &self,
        places: &mut HashMap<String, MachineRow>,
        mut m: MachineRow,
        license: &BundleLicense,
        now: Timestamp,
    ) -> Result<MachineRow> {
        if let Some(end) = lease_end(license, now) {
            let ttl_ms = i64::try_from(license.lease_ttl.unwrap_or(900)).unwrap_or(900) * 1000;
            if m.lease_expires_at
                .is_some_and(|held| end - held < ttl_ms / 10)
            {
                return Ok(m);
            }
            m.lease_expires_at = Some(end);
            self.store.put_machine(&m, None).await?;
            places.insert(m.mfp.clone(), m.clone());
        }
        Ok(m)
    }

    async fn end(
        &self,
        places: &mut HashMap<String, MachineRow>,
        m: &MachineRow,
        license: &BundleLicense,
        kind: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.store
            .remove_machine(m, kind, &license.license, now.timestamp())
            .await?;
        places.remove(&m.mfp);
        Ok(())
    }
}

fn count(places: Option<&HashMap<String, MachineRow>>, now: i64) -> u32 {
    places.map_or(0, |p| {
        u32::try_from(p.values().filter(|m| active(m, now)).count()).unwrap_or(u32::MAX)
    })
}
