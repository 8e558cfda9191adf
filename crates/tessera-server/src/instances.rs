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
use crate::store::LicenseStore;

/// Pending sightings beyond this many are written at once by the next
/// `note`'s caller's flush rather than growing without bound.
const MAX_PENDING: usize = 50_000;

/// Buffers instance sightings and writes them in batches.
pub struct InstanceRecorder {
    store: Arc<dyn LicenseStore>,
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
    pub fn new(store: Arc<dyn LicenseStore>) -> Self {
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
            if seen.held_revision.is_some() {
                existing.held_revision = seen.held_revision;
            }
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
    /// The store's; the batch is then dropped (sightings recur on the next
    /// validation).
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
        self.store.record_instances(&batch).await
    }
}
