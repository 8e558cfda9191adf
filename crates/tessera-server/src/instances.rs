//! Recording installations seen validating, off the request path.
//!
//! A validation must not wait for a disk write (with `synchronous=FULL` that
//! would cap throughput at the disk's fsync rate), and "last seen" is not
//! precious: sightings are merged in memory and written in one transaction
//! per flush interval, and on shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_protocol::LicenseId;

use crate::error::Result;
use crate::model::InstanceSeen;
use crate::store::Store;

/// Pending sightings beyond this many are written at once by the next
/// `note`'s caller's flush rather than growing without bound.
const MAX_PENDING: usize = 50_000;

/// Buffers instance sightings and writes them in batches.
pub struct InstanceRecorder {
    store: Arc<Store>,
    // std Mutex: held for a map insert or swap, never across .await.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    // Nested maps: a repeat sighting is found with borrowed keys, no allocation.
    by_license: HashMap<LicenseId, HashMap<String, InstanceSeen>>,
    count: usize,
}

impl std::fmt::Debug for InstanceRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceRecorder").finish_non_exhaustive()
    }
}

impl InstanceRecorder {
    /// A recorder writing to `store`.
    #[must_use]
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Note a sighting. Returns `true` when the buffer is full and the caller
    /// should flush now.
    pub fn note(&self, seen: InstanceSeen) -> bool {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = pending
            .by_license
            .get_mut(&seen.license_id)
            .and_then(|m| m.get_mut(seen.instance_id.as_str()))
        {
            // first_at stays: the batch's first sighting becomes first_seen for a new row.
            existing.at = seen.at;
            if seen.app_version.is_some() {
                existing.app_version = seen.app_version;
            }
            if seen.users.is_some() {
                existing.users = seen.users;
            }
            if seen.stream.is_some() {
                existing.stream = seen.stream;
            }
            // Acks may arrive out of order: the held revision never goes back.
            existing.held_revision = existing.held_revision.max(seen.held_revision);
            return false;
        }
        pending.count += 1;
        let full = pending.count >= MAX_PENDING;
        pending
            .by_license
            .entry(seen.license_id.clone())
            .or_default()
            .insert(seen.instance_id.clone(), seen);
        full
    }

    /// Write everything pending.
    ///
    /// # Errors
    /// The store's; the batch is then put back (under anything noted
    /// meanwhile, which is newer) and written with the next flush, so an
    /// acknowledged revision is not lost to a failed write.
    pub async fn flush(&self) -> Result<()> {
        let batch: Vec<InstanceSeen> = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *pending)
                .by_license
                .into_values()
                .flat_map(HashMap::into_values)
                .collect()
        };
        let result = self.store.record_instances(&batch).await;
        if result.is_err() {
            self.put_back(batch);
        }
        result
    }

    /// Return a batch that could not be written: each sighting goes under
    /// a newer one for the same instance, filling what the newer lacks.
    fn put_back(&self, batch: Vec<InstanceSeen>) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for old in batch {
            let slot = pending
                .by_license
                .get_mut(&old.license_id)
                .and_then(|m| m.get_mut(old.instance_id.as_str()));
            if let Some(newer) = slot {
                newer.first_at = newer.first_at.min(old.first_at);
                newer.app_version = newer.app_version.take().or(old.app_version);
                newer.users = newer.users.or(old.users);
                newer.stream = newer.stream.or(old.stream);
                newer.held_revision = newer.held_revision.max(old.held_revision);
                continue;
            }
            if pending.count >= MAX_PENDING {
                // Bounded: past the buffer, sightings recur on the next contact.
                continue;
            }
            pending.count += 1;
            pending
                .by_license
                .entry(old.license_id.clone())
                .or_default()
                .insert(old.instance_id.clone(), old);
        }
    }
}

/// The per-license instance limit: which installations are admitted.
///
/// An installation counts while it was seen within the activity window;
/// older ones stop counting (and are pruned later by the scheduler). The
/// check stays off the database for known installations (a cache of
/// admitted ones) and for licenses far from their limit (a per-license
/// count seeded from the database at most once a minute and raised
/// locally). Only near the limit is each new installation checked against
/// the database exactly. With replicas the limit can be overshot by the
/// installations admitted elsewhere within one flush interval.
pub struct InstanceGate {
    store: Arc<Store>,
    max: Option<u64>,
    window: chrono::Duration,
    admitted: moka::sync::Cache<(LicenseId, String), ()>,
    counts: moka::sync::Cache<LicenseId, Arc<std::sync::atomic::AtomicU64>>,
    refused: moka::sync::Cache<(LicenseId, String), ()>,
}

impl std::fmt::Debug for InstanceGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceGate")
            .field("max", &self.max)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// What [`InstanceGate::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Known, or a new installation with room left.
    Admitted,
    /// Over the limit; `first` is true the first time this hour (audit it).
    Refused {
        /// Whether to record an audit event.
        first: bool,
    },
}

impl InstanceGate {
    /// A gate admitting at most `max` installations (0 = no limit) seen
    /// within `window`.
    #[must_use]
    pub fn new(store: Arc<Store>, max: usize, window: chrono::Duration) -> Self {
        let ttl = window
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(3_600))
            .min(std::time::Duration::from_secs(3_600));
        Self {
            store,
            max: (max > 0).then(|| u64::try_from(max).unwrap_or(u64::MAX)),
            window,
            admitted: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl)
                .build(),
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            refused: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(3_600))
                .build(),
        }
    }

    /// The limit (`None` = none).
    #[must_use]
    pub fn max(&self) -> Option<usize> {
        self.max.map(|m| usize::try_from(m).unwrap_or(usize::MAX))
    }

    /// The activity window.
    #[must_use]
    pub fn window(&self) -> chrono::Duration {
        self.window
    }

    /// Take `active`, the installations of `license` seen within the
    /// window as just read with the license, as its count, unless one is
    /// held already: the first admission then needs no query of its own.
    /// (Counted only when the gate has a limit: see [`InstanceGate::max`].)
    pub fn prime(&self, license: &LicenseId, active: u64) {
        self.counts
            .entry_by_ref(license)
            .or_insert_with(|| Arc::new(std::sync::atomic::AtomicU64::new(active)));
    }

    /// Whether `instance` of `license` may be recorded and answered at `now`.
    ///
    /// # Errors
    /// The store's.
    pub async fn admit(
        &self,
        license: &LicenseId,
        instance: &str,
        now: tessera_protocol::Timestamp,
        recorder: &InstanceRecorder,
    ) -> Result<Admission> {
        use std::sync::atomic::Ordering;
        let Some(max) = self.max else {
            return Ok(Admission::Admitted);
        };
        let key = (license.clone(), instance.to_owned());
        if self.admitted.contains_key(&key) {
            return Ok(Admission::Admitted);
        }
        let since = now - self.window;
        let count = match self.counts.get(license) {
            Some(c) => c,
            None => {
                let (active, _) = self.store.instance_admission(license, "", since).await?;
                let c = Arc::new(std::sync::atomic::AtomicU64::new(active));
                self.counts.insert(license.clone(), c.clone());
                c
            }
        };
        // Far from the limit: admit as if new (the count may run high, which
        // only brings the exact check below sooner).
        if count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max.saturating_sub(1)).then_some(n + 1)
            })
            .is_ok()
        {
            self.admitted.insert(key, ());
            return Ok(Admission::Admitted);
        }
        // Near the limit: exact, with this replica's pending sightings written.
        recorder.flush().await?;
        let (active, known) = self
            .store
            .instance_admission(license, instance, since)
            .await?;
        if known || active < max {
            count.store(active + u64::from(!known), Ordering::Release);
            self.admitted.insert(key, ());
            return Ok(Admission::Admitted);
        }
        count.store(active, Ordering::Release);
        let first = !self.refused.contains_key(&key);
        if first {
            self.refused.insert(key, ());
        }
        Ok(Admission::Refused { first })
    }
}
