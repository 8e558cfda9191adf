//! The places machines hold, as this replica knows them, so that a
//! heartbeat neither reads nor writes the database on its path:
//!
//! - each machine's active row is read once and kept, and dropped on any
//!   change to its license's machines — made here, or made on another
//!   replica and heard of by notification ([`Places::forget`]);
//! - heartbeats answered are kept and written in one transaction each
//!   flush ([`Places::flush`]), as instance sightings are.
//!
//! A kept row is trusted only while its lease runs: one that looks over is
//! read again, since another replica may have renewed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tessera_protocol::{LicenseId, Timestamp};

use crate::error::Result;
use crate::model::Machine;
use crate::store::Store;

/// A heartbeat to write: when it came, and the lease it gave.
#[derive(Debug, Clone, Copy)]
pub struct Beat {
    /// When it was answered.
    pub at: Timestamp,
    /// The lease it gave (`None`: node-locked).
    pub lease_until: Option<Timestamp>,
}

/// The active machines of one license known here, by fingerprint hash.
type Known = Arc<Mutex<HashMap<String, Machine>>>;

/// See the module documentation.
#[derive(Debug)]
pub struct Places {
    store: Arc<Store>,
    /// Per license, so that a change to its machines drops them all at
    /// once. A read that raced such a change lands in the dropped map.
    known: moka::sync::Cache<LicenseId, Known>,
    /// Heartbeats answered but not yet written.
    pending: Mutex<HashMap<(LicenseId, String), Beat>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `m` holds its place at `now` (a node-locked place always does).
fn holds(m: &Machine, now: Timestamp) -> bool {
    m.lease_expires_at.is_none_or(|end| end > now)
}

impl Places {
    /// Places over `store`.
    #[must_use]
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            known: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Machine `mfp` of `license` if it holds a place at `now` (lease time):
    /// kept, or read — with any heartbeat not yet written applied. Never a
    /// lease past its end: a late heartbeat does not bring one back.
    ///
    /// # Errors
    /// The database's.
    pub async fn alive(
        &self,
        license: &LicenseId,
        mfp: &str,
        now: Timestamp,
    ) -> Result<Option<Machine>> {
        let known = self.known.get_with(license.clone(), Known::default);
        if let Some(m) = lock(&known).get(mfp).filter(|m| holds(m, now)) {
            return Ok(Some(m.clone()));
        }
        let pending = lock(&self.pending)
            .get(&(license.clone(), mfp.to_owned()))
            .copied();
        let alive = self
            .store
            .active_machine_of(license, mfp)
            .await?
            .map(|mut m| {
                // A heartbeat answered but not yet written started it.
                m.heartbeat_started |= pending.is_some();
                if let (Some(stored), Some(beat)) =
                    (m.lease_expires_at, pending.and_then(|p| p.lease_until))
                {
                    m.lease_expires_at = Some(stored.max(beat));
                }
                m
            })
            .filter(|m| holds(m, now));
        let mut known = lock(&known);
        match &alive {
            Some(m) => known.insert(mfp.to_owned(), m.clone()),
            None => known.remove(mfp),
        };
        Ok(alive)
    }

    /// A heartbeat of `machine` (already renewed to `beat`) was answered:
    /// keep it, and write it at the next flush.
    pub fn beat(&self, machine: &Machine, beat: Beat) {
        if let Some(known) = self.known.get(&machine.license_id) {
            let mut known = lock(&known);
            if known.contains_key(&machine.mfp) {
                known.insert(machine.mfp.clone(), machine.clone());
            }
        }
        lock(&self.pending).insert((machine.license_id.clone(), machine.mfp.clone()), beat);
    }

    /// Places of `license` changed: read them again.
    pub fn forget(&self, license: &LicenseId) {
        self.known.invalidate(license);
    }

    /// Notifications may have been lost: read every place again.
    pub fn forget_all(&self) {
        self.known.invalidate_all();
    }

    /// Write the heartbeats answered since the last call, in one
    /// transaction (every half second, and before the reaper looks and at
    /// shutdown); returns how many.
    ///
    /// # Errors
    /// The store's; the heartbeats are kept for the next call.
    pub async fn flush(&self) -> Result<usize> {
        let beats: Vec<_> = lock(&self.pending).drain().collect();
        if beats.is_empty() {
            return Ok(0);
        }
        match self.store.write_heartbeats(&beats).await {
            Ok(()) => Ok(beats.len()),
            Err(e) => {
                let mut pending = lock(&self.pending);
                for (k, b) in beats {
                    pending.entry(k).or_insert(b);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_held_until_its_lease_ends() {
        let now = chrono::DateTime::from_timestamp(1_796_083_200, 0).unwrap();
        let mut m = Machine {
            id: "mch_1".into(),
            license_id: LicenseId::parse("lic_01936b2e-7c3a-7def-8a12-0123456789ab").unwrap(),
            mfp: "f".into(),
            name: None,
            hostname: None,
            platform: None,
            components: vec![],
            state: tessera_protocol::wire::MachineState::Active,
            activated_at: now,
            last_heartbeat: now,
            lease_expires_at: None,
            ended_at: None,
            heartbeat_started: true,
        };
        assert!(holds(&m, now), "node-locked");
        m.lease_expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(holds(&m, now));
        assert!(
            !holds(&m, now + chrono::Duration::seconds(1)),
            "over at its end"
        );
    }
}
