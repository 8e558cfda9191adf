//! Push: the signed document every watcher of a license gets, and the
//! change streams behind `/v1/watch` (docs/PROTOCOL.md, "The stream").

use std::sync::Arc;

use chrono::Duration;
use tessera_protocol::wire::LicenseState;
use tessera_protocol::{InstanceId, LicenseId, Timestamp, TokenHash};

use super::Shared;
use super::cache::parse_credential;
use crate::error::{Error, Result, STREAM_CREDENTIAL};
use crate::feed::{ChangeFeed, Pushed, Subscription};
use crate::metrics::Metrics;
use crate::model::{InstanceSeen, License};
use crate::signer::Answer;
use crate::status::Echo;

/// Hands each committed revision to the license's watchers.
#[derive(Debug)]
pub struct Push {
    shared: Shared,
    feed: Arc<ChangeFeed>,
}

/// An open change stream (see [`Push::open_watch`]).
#[derive(Debug)]
pub struct Watch {
    /// The watched token's hash (to re-read the license).
    pub token_hash: TokenHash,
    /// The watched license.
    pub license: LicenseId,
    /// The feed subscription (dropping it leaves).
    pub subscription: Subscription,
    /// The first event to send, unless the client already holds it.
    pub first: Option<Arc<Pushed>>,
    /// The newest document this stream knows of.
    pub last: Arc<Pushed>,
    /// The instance, when the client named one.
    pub instance: Option<InstanceId>,
}

impl Push {
    /// Push over `feed`.
    #[must_use]
    pub fn new(shared: &Shared, feed: Arc<ChangeFeed>) -> Self {
        Self {
            shared: shared.clone(),
            feed,
        }
    }

    /// The metrics (streams record propagation times).
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The change feed.
    #[must_use]
    pub fn feed(&self) -> &Arc<ChangeFeed> {
        &self.feed
    }

    /// Now, from the injected clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The document pushed to every watcher of `license` at its revision:
    /// no instance id, no nonce, so one signature serves them all (and the
    /// signer reuses it within its window).
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn pushed_for(
        &self,
        license: &License,
        committed_at: Option<std::time::Instant>,
    ) -> Result<Arc<Pushed>> {
        self.pushed_at(license, committed_at, self.now(), true)
            .map(Arc::new)
    }

    fn pushed_at(
        &self,
        license: &License,
        committed_at: Option<std::time::Instant>,
        now: Timestamp,
        reuse: bool,
    ) -> Result<Pushed> {
        let signed = self.shared.signer.license_document(
            license,
            license.token_hash.fingerprint(),
            Echo::default(),
            now,
            Answer::License {
                seats_exceeded: self.shared.seats.exceeded_cached(license),
            },
            reuse,
        )?;
        Ok(Pushed {
            revision: signed.claims.rev,
            status: signed.claims.status,
            issued_at: signed.claims.iat,
            refresh_after: signed.claims.refresh_after,
            document: Arc::from(signed.document.as_str()),
            frame: Pushed::encode_frame(
                if license.machines.counts_machines() {
                    "machines"
                } else {
                    "status"
                },
                signed.claims.rev,
                &signed.document,
            ),
            committed_at,
            announcement: 0,
        })
    }

    /// Another replica committed revision `revision` of `id`: refresh the
    /// cache and this replica's watchers.
    pub async fn on_remote_change(&self, id: &LicenseId, revision: u64) {
        match self.shared.store.license(id).await {
            Ok(Some(license)) if license.revision >= revision => {
                let license = Arc::new(license);
                self.shared.cache.remember(license.clone());
                self.publish(&license, None);
            }
            Ok(Some(_)) => {
                tracing::warn!(license = %id, revision, "notified of a revision the database does not show yet");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(license = %id, error = %e, "cannot re-read a license changed elsewhere")
            }
        }
    }

    /// Notifications may have been missed: forget cached licenses and
    /// re-read every watched one.
    pub async fn resync(&self) {
        self.shared.cache.clear();
        let watched = self.feed.watched();
        for id in &watched {
            if let Ok(Some(license)) = self.shared.store.license(id).await {
                let license = Arc::new(license);
                self.shared.cache.remember(license.clone());
                self.publish(&license, None);
            }
        }
        tracing::info!(
            watched = watched.len(),
            "resynchronised after a listener reconnect"
        );
    }

    /// After a committed change: hand the new document to its watchers.
    pub fn publish(&self, license: &License, committed_at: Option<std::time::Instant>) {
        if !self.feed.is_watched(&license.id) {
            return;
        }
        self.send(license, self.pushed_for(license, committed_at));
    }

    fn send(&self, license: &License, pushed: Result<Arc<Pushed>>) {
        match pushed {
            Ok(pushed) => self.feed.publish(&license.id, pushed),
            Err(e) => {
                tracing::error!(license = %license.id, error = %e, "cannot sign a pushed document")
            }
        }
    }

    /// New content at the same revision (the seat limit crossed): watchers
    /// take a document only if it is newer by (revision, `iat` in whole
    /// seconds), so it is signed at least a second after the one they hold —
    /// never more than a second ahead of this clock, well inside the drift
    /// clients allow.
    pub fn publish_same_revision(&self, license: &License) {
        if !self.feed.is_watched(&license.id) {
            return;
        }
        let now = self.now();
        let at = self
            .feed
            .latest_issued_at(&license.id)
            .map_or(now, |held| now.max(held + Duration::seconds(1)));
        let pushed = self.pushed_at(license, None, at, false).map(Arc::new);
        self.send(license, pushed);
    }

    /// Places of `license` (one that counts machines) were taken or freed:
    /// every stream of it hears at once (`event: machines`), and each
    /// machine asks for its own answer (docs/PROTOCOL.md §19). No holder
    /// adopts the document, so it is the reused one: no signature, and no
    /// `iat` pushed ahead of the clock however often places change.
    pub fn announce(&self, license: &License) {
        if !self.feed.is_watched(&license.id) {
            return;
        }
        let committed_at = Some(std::time::Instant::now());
        let pushed = self
            .pushed_at(license, committed_at, self.now(), true)
            .map(|p| {
                Arc::new(Pushed {
                    announcement: self.feed.next_announcement(),
                    ..p
                })
            });
        self.send(license, pushed);
    }

    /// Open a change stream for the license of `token` (from the
    /// `Authorization` header). `last_event_id` is the revision the client
    /// holds: when it is current, the first event is skipped.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token, 403 for a revoked license,
    /// 400 for a bad instance id, 503 past the watcher limits.
    pub async fn open_watch(
        &self,
        token: &str,
        instance_id: Option<&str>,
        last_event_id: Option<u64>,
    ) -> Result<Watch> {
        let hash = parse_credential(token, STREAM_CREDENTIAL)?;
        let instance_id = instance_id.map(InstanceId::parse).transpose()?;
        let license = self.shared.cache.known(&hash, STREAM_CREDENTIAL).await?;
        if license.state == LicenseState::Revoked {
            return Err(Error::Forbidden {
                code: "license_revoked",
                message: "the license is revoked: there is nothing to watch".into(),
            });
        }
        if let Some(iid) = &instance_id {
            self.shared
                .installations
                .require_admitted(&license, iid)
                .await?;
        }
        let seed = self.pushed_for(&license, None)?;
        // Tests widen the window between the read above and the subscribe.
        fail::fail_point!("watch-after-first-read");
        let mut subscription = self.feed.subscribe(&license.id, seed)?;
        // Subscribe first, then read, then send whatever is newest: a change
        // committed after the read above published to nobody (no one was
        // subscribed yet), so read again now that every later publish
        // reaches this stream, and offer what was read to the channel.
        if let Some(latest) = self.shared.cache.lookup(&hash).await?
            && latest.revision > license.revision
        {
            self.feed
                .publish(&latest.id, self.pushed_for(&latest, None)?);
        }
        let current = subscription.rx.borrow_and_update().clone();
        if let Some(iid) = &instance_id {
            self.shared.installations.recorder().note(InstanceSeen {
                stream: Some(true),
                ..InstanceSeen::new(license.id.clone(), iid.as_str().to_owned(), self.now())
            });
        }
        let first = match last_event_id {
            Some(held) if held >= current.revision => None,
            _ => Some(current.clone()),
        };
        Ok(Watch {
            token_hash: hash,
            license: license.id.clone(),
            subscription,
            first,
            last: current,
            instance: instance_id,
        })
    }

    /// The current document for a watched license (for the periodic
    /// fresh copy a long-lived stream gets at `refresh_after`).
    ///
    /// # Errors
    /// The store's; 401 when the license is gone.
    pub async fn current_pushed(&self, token_hash: &TokenHash) -> Result<Arc<Pushed>> {
        let license = self
            .shared
            .cache
            .known(token_hash, STREAM_CREDENTIAL)
            .await?;
        self.pushed_for(&license, None)
    }

    /// A stream closed: the instance is no longer connected.
    pub fn close_watch(&self, license: &LicenseId, instance: &InstanceId) {
        self.shared.installations.recorder().note(InstanceSeen {
            stream: Some(false),
            ..InstanceSeen::new(license.clone(), instance.as_str().to_owned(), self.now())
        });
    }
}
