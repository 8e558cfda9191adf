//! The change feed: who is watching which license, and the newest signed
//! document for each watched license.
//!
//! One `tokio::sync::watch` channel per watched license: a watcher only ever
//! needs the latest document, so a slow reader skips intermediate revisions
//! instead of lagging, and a publish costs the same for one watcher or ten
//! thousand. Documents pushed to streams carry no instance id, so one
//! signature per revision serves every watcher of the license.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tessera_protocol::{LicenseId, Status, Timestamp};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// A document ready to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// License revision.
    pub revision: u64,
    /// Status as signed.
    pub status: Status,
    /// When it was signed.
    pub issued_at: Timestamp,
    /// When a fresh copy is due.
    pub refresh_after: Timestamp,
    /// The `v4.public` document.
    pub document: Arc<str>,
    /// The server-sent event carrying it, encoded once for every stream.
    pub frame: bytes::Bytes,
    /// When the change it carries was committed (for the propagation metric).
    pub committed_at: Option<std::time::Instant>,
    /// Non-zero for an announcement (`event: machines`, docs/PROTOCOL.md
    /// §19): places changed at this revision. No holder adopts its
    /// document, so it is the license's reused one, and it is newer than
    /// whatever it follows at its revision by this counter (see
    /// [`ChangeFeed::next_announcement`]) rather than by `iat`.
    pub announcement: u64,
}

impl Pushed {
    /// The event for a document: `event`, `id` (the revision), `data`.
    /// `status` carries a document to hold; `machines` (for a license that
    /// counts machines) announces a change a machine must ask about with
    /// its own fingerprint: its document is not bound to any machine, so
    /// no machine may hold it (docs/PROTOCOL.md §19).
    #[must_use]
    pub fn encode_frame(event: &str, revision: u64, document: &str) -> bytes::Bytes {
        bytes::Bytes::from(format!(
            "event: {event}\nid: {revision}\ndata: {document}\n\n"
        ))
    }

    /// Whether `self` should replace `held` for a watcher (the rollback
    /// rule; an announcement goes to every watcher, in order).
    #[must_use]
    pub fn is_newer_than(&self, held: &Pushed) -> bool {
        if self.announcement > 0 {
            return self.revision >= held.revision && self.announcement > held.announcement;
        }
        (self.revision, self.issued_at) > (held.revision, held.issued_at)
    }
}

struct Channel {
    tx: watch::Sender<Arc<Pushed>>,
    subscribers: usize,
    /// The latest `iat` of a document (not an announcement) offered, for
    /// the next one signed at the same revision.
    issued_at: tessera_protocol::Timestamp,
}

/// Watcher limits.
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    /// Open streams per license.
    pub per_license: usize,
    /// Open streams in all.
    pub total: usize,
}

/// The registry of watched licenses.
pub struct ChangeFeed {
    // std Mutex: held for map operations only, never across an await.
    channels: Mutex<HashMap<LicenseId, Channel>>,
    total: AtomicUsize,
    limits: FeedLimits,
    announcements: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("watchers", &self.watchers())
            .finish_non_exhaustive()
    }
}

/// A watcher's place in the feed; dropping it leaves.
pub struct Subscription {
    feed: Arc<ChangeFeed>,
    license: LicenseId,
    /// Receives every newer document for the license.
    pub rx: watch::Receiver<Arc<Pushed>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("license", &self.license)
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.feed.lock();
        if let Some(ch) = channels.get_mut(&self.license) {
            ch.subscribers -= 1;
            if ch.subscribers == 0 {
                channels.remove(&self.license);
            }
        }
        self.feed.total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ChangeFeed {
    /// An empty feed.
    #[must_use]
    pub fn new(limits: FeedLimits) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            limits,
            announcements: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LicenseId, Channel>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Open streams in all.
    #[must_use]
    pub fn watchers(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The licenses someone watches.
    #[must_use]
    pub fn watched(&self) -> Vec<LicenseId> {
        self.lock().keys().cloned().collect()
    }

    /// Whether anyone watches `license` (publishing is skipped otherwise).
    #[must_use]
    pub fn is_watched(&self, license: &LicenseId) -> bool {
        self.lock().contains_key(license)
    }

    /// Join the watchers of `license`; `current` seeds a new channel.
    ///
    /// # Errors
    /// [`Error::Unavailable`] past the per-license or total limit.
    pub fn subscribe(
        self: &Arc<Self>,
        license: &LicenseId,
        current: Arc<Pushed>,
    ) -> Result<Subscription> {
        let mut channels = self.lock();
        if self.total.load(Ordering::Relaxed) >= self.limits.total {
            return Err(Error::Unavailable {
                code: "too_many_watchers",
                message: format!(
                    "the authority serves at most {} streams; poll instead",
                    self.limits.total
                ),
            });
        }
        let ch = channels.entry(license.clone()).or_insert_with(|| Channel {
            tx: watch::channel(current.clone()).0,
            subscribers: 0,
            issued_at: current.issued_at,
        });
        if ch.subscribers >= self.limits.per_license {
            return Err(Error::Unavailable {
                code: "too_many_watchers",
                message: format!(
                    "this license already has {} open streams; poll instead",
                    self.limits.per_license
                ),
            });
        }
        ch.tx.send_if_modified(|held| {
            let newer = current.is_newer_than(held);
            if newer {
                *held = current.clone();
            }
            newer
        });
        ch.subscribers += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            feed: self.clone(),
            license: license.clone(),
            rx: ch.tx.subscribe(),
        })
    }

    /// Signing time of the newest document offered to the watchers of
    /// `license` (announcements aside).
    #[must_use]
    pub fn latest_issued_at(&self, license: &LicenseId) -> Option<tessera_protocol::Timestamp> {
        self.lock()
            .get(license)
            .map(|ch| ch.issued_at.max(ch.tx.borrow().issued_at))
    }

    /// The number of the next announcement: increasing, never 0.
    pub fn next_announcement(&self) -> u64 {
        self.announcements.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Offer a newer document to the watchers of `license` (older ones are
    /// ignored: replicas and retries may deliver out of order).
    pub fn publish(&self, license: &LicenseId, pushed: Arc<Pushed>) {
        if let Some(ch) = self.lock().get_mut(license) {
            if pushed.announcement == 0 {
                ch.issued_at = ch.issued_at.max(pushed.issued_at);
            }
            ch.tx.send_if_modified(|held| {
                let newer = pushed.is_newer_than(held);
                if newer {
                    *held = pushed.clone();
                }
                newer
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(revision: u64, iat: i64, announcement: u64) -> Pushed {
        Pushed {
            revision,
            status: Status::Active,
            issued_at: chrono::DateTime::from_timestamp(iat, 0).unwrap(),
            refresh_after: chrono::DateTime::from_timestamp(iat + 60, 0).unwrap(),
            document: Arc::from("v4.public.x"),
            frame: bytes::Bytes::new(),
            committed_at: None,
            announcement,
        }
    }

    #[test]
    fn announcements_follow_each_other_and_documents_by_their_counter() {
        let doc = pushed(5, 1_000, 0);
        // The reused document, signed before the one held: still newer.
        let first = pushed(5, 900, 1);
        let second = pushed(5, 900, 2);
        assert!(first.is_newer_than(&doc));
        assert!(second.is_newer_than(&first));
        assert!(!first.is_newer_than(&second), "in order");
        assert!(
            !pushed(4, 2_000, 3).is_newer_than(&doc),
            "never an older revision"
        );
        // A document is newer than an announcement by (revision, iat).
        assert!(pushed(5, 1_001, 0).is_newer_than(&second));
        assert!(!pushed(5, 900, 0).is_newer_than(&second));
        assert!(pushed(6, 800, 0).is_newer_than(&second));
    }
}
