//! The client's engine: held state, applying documents, the refresh loop.
//!
//! Every change of held state goes through `Inner::accept` under
//! `apply_lock`: verify (done by the caller), rollback rule, write the disk
//! state, then swap memory and publish. The published verdict lives in an
//! `ArcSwap`, so readers never wait for any of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use arc_swap::ArcSwap;
use chrono::Duration;
use futures_util::future::{BoxFuture, Shared};
use tessera_protocol::wire::{ValidateRequest, machine_fingerprint_hash};
use tessera_protocol::{
    Expectations, Freshness, InstanceId, LicenseToken, RollbackDecision, Timestamp,
    TokenFingerprint, TrustedKeys, VerifiedDocument, check_document_rollback,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::Error;
use crate::state::{DiskState, StateFile};
use crate::transport::{Answer, Transport};
use crate::verdict::{self, Contact, Context, LastError, Verdict};

/// How often the high-water mark is written while the clock merely advances.
const HWM_PERSIST_EVERY: Duration = Duration::minutes(10);
/// Polls after an unchanged answer are never closer than this.
const MIN_POLL_INTERVAL: Duration = Duration::minutes(1);

/// How a verified document reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// The answer to a request carrying this client's fresh nonce.
    Nonce,
    /// Pushed on this client's own change stream.
    Stream,
    /// A nonce-less poll (may be a reused document, or a replay).
    Poll,
}

pub(crate) type Flight = Shared<BoxFuture<'static, Result<Arc<Verdict>, Error>>>;

/// Settings fixed at start.
#[derive(Debug)]
pub(crate) struct Settings {
    pub clock: Arc<dyn Clock>,
    pub max_clock_drift: Duration,
    pub clock_tolerance: Duration,
    pub tick: StdDuration,
    pub app_version: Option<String>,
    pub app_released_at: Option<Timestamp>,
    pub fingerprint: Option<String>,
    /// `None`: the host's own (see `machine::host_components`).
    pub components: Option<Vec<String>>,
    /// The product licenses must be of; `None`: any.
    pub product: Option<String>,
}

impl Settings {
    /// What a document for `token` must satisfy, from these settings:
    /// the product, the clock drift, fresh.
    pub(crate) fn expect(&self, token: &LicenseToken) -> Expectations {
        Expectations::for_token(token.fingerprint())
            .with_product(self.product.clone())
            .with_max_clock_drift(self.max_clock_drift)
            .with_freshness(Freshness::Enforce)
    }
}

/// What the client holds. std Mutex: never held across an await.
#[derive(Debug)]
pub(crate) struct Held {
    pub token: Option<LicenseToken>,
    pub configured: Option<TokenFingerprint>,
    pub document: Option<VerifiedDocument>,
    pub hwm: Option<Timestamp>,
    pub persisted_hwm: Option<Timestamp>,
    pub instance_id: InstanceId,
    /// Offline since, last verified, last error, stream open.
    pub contact: Contact,
    /// When the loop polls next: `refresh_after` plus jitter for a new
    /// document, one interval later after an unchanged answer.
    pub poll_at: Option<Timestamp>,
    /// Background retry schedule after failures. Monotonic time: a backoff
    /// is a span of real time, whatever the wall clock does.
    pub failures: u32,
    pub retry_at: Option<tokio::time::Instant>,
    /// The last verdict said `clock_tampered`: the next round trip carries
    /// a nonce, whose answer re-bases the mark to the authority's time.
    pub clock_suspect: bool,
    /// This machine gave its place up (deactivated) or was released while
    /// running: it does not take a place again by itself until asked to.
    pub machine_given_up: bool,
}

impl Held {
    /// The held document's revision, if it is for the held token.
    pub(crate) fn held_revision(&self) -> Option<u64> {
        let token = self.token.as_ref()?.fingerprint();
        self.document
            .as_ref()
            .filter(|d| d.claims().tfp == token)
            .map(|d| d.claims().rev)
    }

    /// Whether the next answer must be fresh signed evidence (a nonce, no
    /// `If-None-Match`): after a failure, while offline, or with the clock
    /// mark ahead of the clock. Only such an answer clears those flags, so
    /// a fake endpoint answering `304` cannot silence them.
    pub(crate) fn needs_proof(&self) -> bool {
        self.contact.last_error.is_some()
            || self.contact.offline_since.is_some()
            || self.clock_suspect
    }

    pub(crate) fn disk_state(&self) -> DiskState {
        let mut state = DiskState::new(self.instance_id.to_string());
        state.token = self.token.as_ref().map(|t| t.expose_secret().to_owned());
        state.configured.clone_from(&self.configured);
        state.document = self.document.as_ref().map(|d| d.as_str().to_owned());
        state.high_water_mark = self.hwm;
        state
    }
}

pub(crate) struct Inner {
    /// Unique per client in this process (for the readers' thread cache).
    pub id: u64,
    /// Bumped after every verdict published to `cell`.
    pub generation: std::sync::atomic::AtomicU64,
    /// The published verdict's `changes_at` in epoch milliseconds
    /// (`i64::MAX`: never), watched by the deadline thread.
    pub deadline_ms: std::sync::atomic::AtomicI64,
    pub settings: Settings,
    pub keys: TrustedKeys,
    pub transport: Option<Transport>,
    pub state_file: Option<StateFile>,
    pub held: Mutex<Held>,
    pub cell: ArcSwap<Verdict>,
    /// The bits behind [`crate::Feature`] handles, recomputed after every
    /// store to `cell`.
    pub features: crate::features::FeatureBits,
    pub watch: watch::Sender<Arc<Verdict>>,
    /// Serialises state transitions that write the disk.
    pub apply_lock: tokio::sync::Mutex<()>,
    pub inflight: Mutex<HashMap<TokenFingerprint, Flight>>,
    pub wake: Notify,
    pub cancel: CancellationToken,
    /// Bumped when the held token changes: the stream reconnects with it.
    pub token_epoch: watch::Sender<u64>,
    /// Woken after a document is accepted: the held revision is reported.
    pub ack: Notify,
    /// Woken when a stream (re)connects: the held revision is reported
    /// even if it was reported before.
    pub reack: Notify,
    /// Users the product reported last ([`NO_USERS`] until it does).
    pub users: std::sync::atomic::AtomicU64,
    /// Woken when the user count changes.
    pub usage_wake: Notify,
    /// Metered features: what `consume` moves (no lock, no I/O).
    pub meters: crate::meter::Meters,
    /// The consumption report awaiting its answer, and the next sequence.
    pub reports: tokio::sync::Mutex<crate::consumption::Reports>,
}

/// `Inner::users` before the product reported any.
pub(crate) const NO_USERS: u64 = u64::MAX;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

fn max_opt(a: Option<Timestamp>, b: Timestamp) -> Timestamp {
    a.map_or(b, |a| a.max(b))
}

/// The `If-None-Match` value for a held document: `"<rev>-<iat>"`, as the
/// authority sends in `ETag`.
fn etag(doc: &VerifiedDocument) -> String {
    format!("\"{}-{}\"", doc.claims().rev, doc.claims().iat.timestamp())
}

pub(crate) fn random_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Inner {
    pub(crate) fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn verdict_of(&self, held: &Held, now: Timestamp) -> Verdict {
        verdict::compute(
            held.document.as_ref(),
            now,
            &Context {
                high_water_mark: held.hwm,
                tolerance: self.settings.clock_tolerance,
                max_clock_drift: self.settings.max_clock_drift,
                contact: held.contact.clone(),
                app_released_at: self.settings.app_released_at,
            },
        )
    }

    /// Recompute the verdict; publish it when it changed. Advances the
    /// in-memory high-water mark with the clock unless the clock was set back.
    pub(crate) fn publish(&self) -> Arc<Verdict> {
        let now = self.now();
        let verdict = {
            let mut held = self.lock();
            self.meters.sync_with(held.document.as_ref(), now);
            let verdict = self.verdict_of(&held, now);
            let tampered = verdict.reason == Some(verdict::UnverifiedReason::ClockTampered);
            held.clock_suspect = tampered;
            if !tampered {
                held.hwm = Some(max_opt(held.hwm, now));
            }
            verdict
        };
        let current = self.cell.load();
        if **current == verdict {
            return current.clone();
        }
        let verdict = Arc::new(verdict);
        self.cell.store(verdict.clone());
        self.features.republish(&self.cell);
        self.deadline_ms.store(
            verdict
                .changes_at
                .map_or(i64::MAX, |t| t.timestamp_millis()),
            std::sync::atomic::Ordering::Release,
        );
        // After the store: a reader that sees the new generation loads the new verdict.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        self.watch.send_replace(verdict.clone());
        verdict
    }

    /// Write the high-water mark when it moved on by enough since the last write.
    pub(crate) async fn persist_hwm_if_due(&self) {
        let Some(file) = &self.state_file else { return };
        let _guard = self.apply_lock.lock().await;
        let state = {
            let held = self.lock();
            match (held.hwm, held.persisted_hwm) {
                (Some(hwm), Some(done)) if hwm - done < HWM_PERSIST_EVERY => return,
                (None, _) => return,
                _ => held.disk_state(),
            }
        };
        let file = file.clone();
        let hwm = state.high_water_mark;
        match tokio::task::spawn_blocking(move || file.store(&state)).await {
            Ok(Ok(())) => self.lock().persisted_hwm = hwm,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the high-water mark"),
            Err(e) => tracing::warn!(error = %e, "state writer failed"),
        }
    }

    pub(crate) fn record_failure(&self, e: &Error) {
        let now = self.now();
        {
            let mut held = self.lock();
            held.contact.last_error = Some(LastError {
                kind: e.kind(),
                message: e.to_string(),
                at: now,
            });
            if e.is_unreachable() && held.contact.offline_since.is_none() {
                held.contact.offline_since = Some(now);
            }
        }
        tracing::warn!(kind = e.kind(), error = %e, "license refresh failed");
        self.publish();
    }

    /// A newly signed document was accepted: the authority vouched for
    /// what is held now. Only this clears `offline_since` and `last_error`.
    fn record_verified_contact(&self) {
        let now = self.now();
        {
            let mut held = self.lock();
            held.contact.last_error = None;
            held.contact.offline_since = None;
            held.failures = 0;
            held.retry_at = None;
            held.contact.last_verified_at = Some(now);
        }
        self.publish();
    }

    /// An answer that proves nothing new (`304`, which is unsigned, or the
    /// very document already held, which anyone could replay): poll again
    /// one refresh interval from now. `last_verified_at`, `offline_since`
    /// and `last_error` stay as they are.
    fn record_unchanged(&self) {
        {
            let mut held = self.lock();
            let interval = held
                .document
                .as_ref()
                .map_or(Duration::hours(1), |d| {
                    d.claims().refresh_after - d.claims().iat
                })
                .max(MIN_POLL_INTERVAL);
            held.poll_at = Some(self.now() + interval);
            held.failures = 0;
            held.retry_at = None;
        }
        self.publish();
    }

    /// A change stream opened. The opening proves nothing by itself
    /// (unsigned); if the client is flagged offline or failing, ask for
    /// signed evidence at once, with a nonce.
    pub(crate) fn on_stream_open(self: &Arc<Self>) {
        let token = {
            let held = self.lock();
            if !held.needs_proof() {
                return;
            }
            held.token.clone()
        };
        if let Some(token) = token {
            let inner = self.clone();
            tokio::spawn(async move {
                let _ = inner.single_flight(token, true, false).await;
            });
        }
    }

    /// Apply a verified document. `new_token` is set when activating (only
    /// when it differs from the held token). For an answer to this client's
    /// own nonce or a push on its own stream the clock mark is re-based to
    /// max(`iat`, now) — the authority's time — so a clock that ran ahead
    /// once does not lock the client out forever.
    pub(crate) async fn accept(
        &self,
        doc: VerifiedDocument,
        new_token: Option<LicenseToken>,
        evidence: Evidence,
    ) -> Result<Arc<Verdict>, Error> {
        let rebase = matches!(evidence, Evidence::Nonce | Evidence::Stream);
        let _guard = self.apply_lock.lock().await;
        let now = self.now();
        let new_token = new_token.filter(|t| self.lock().token.as_ref() != Some(t));
        let next = {
            let held = self.lock();
            let token_changes = new_token
                .as_ref()
                .is_some_and(|t| held.token.as_ref() != Some(t));
            if !token_changes {
                // A background answer for a token replaced meanwhile is moot.
                if held.token.as_ref().map(LicenseToken::fingerprint)
                    != Some(doc.claims().tfp.clone())
                {
                    drop(held);
                    return Ok(self.publish());
                }
                if let Some(current) = &held.document {
                    let c = current.claims();
                    match check_document_rollback(current, &doc) {
                        RollbackDecision::Accept => {}
                        // The same revision and time, but signed for our
                        // nonce: fresh proof of contact (and of the time, to
                        // re-base the mark). It replaces the held one.
                        RollbackDecision::Same if evidence == Evidence::Nonce => {}
                        RollbackDecision::Same => {
                            drop(held);
                            self.record_unchanged();
                            return Ok(self.cell.load_full());
                        }
                        // A machine's answers at one revision are signed a
                        // second apart; one that crossed a newer answer on the
                        // way (an activation racing an announced poll) is
                        // superseded: kept out, and no error.
                        RollbackDecision::Reject
                            if c.rev == doc.claims().rev && c.mfp.is_some() =>
                        {
                            drop(held);
                            return Ok(self.cell.load_full());
                        }
                        RollbackDecision::Reject => {
                            let e = Error::Rollback {
                                held_rev: c.rev,
                                new_rev: doc.claims().rev,
                            };
                            drop(held);
                            self.record_failure(&e);
                            return Err(e);
                        }
                    }
                }
            }
            let mut state = held.disk_state();
            if let Some(t) = &new_token {
                state.token = Some(t.expose_secret().to_owned());
            }
            state.document = Some(doc.as_str().to_owned());
            let signed = doc.claims().iat.max(now);
            state.high_water_mark = Some(if rebase {
                signed
            } else {
                max_opt(held.hwm, signed)
            });
            state
        };
        if let Some(file) = &self.state_file {
            let file = file.clone();
            let state = next.clone();
            let written = tokio::task::spawn_blocking(move || file.store(&state))
                .await
                .map_err(|e| Error::Storage(format!("state writer failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = written {
                self.record_failure(&e);
                return Err(e);
            }
        }
        let token_changed = {
            let mut held = self.lock();
            let token_changed = new_token.is_some();
            if let Some(t) = new_token {
                held.token = Some(t);
            }
            let interval = doc.claims().refresh_after - doc.claims().iat;
            let max_jitter = (interval / 10)
                .min(Duration::minutes(5))
                .num_seconds()
                .max(0);
            held.poll_at = Some(
                doc.claims().refresh_after + Duration::seconds(rand::random_range(0..=max_jitter)),
            );
            held.hwm = next.high_water_mark;
            if self.state_file.is_some() {
                held.persisted_hwm = next.high_water_mark;
            }
            held.document = Some(doc);
            token_changed
        };
        if token_changed {
            self.token_epoch.send_modify(|e| *e += 1);
        }
        self.record_verified_contact();
        self.wake.notify_one();
        self.ack.notify_one();
        Ok(self.cell.load_full())
    }

    /// One round trip for `token`. `forced` sends a fresh nonce and no
    /// `If-None-Match`: the answer must be new.
    pub(crate) async fn round_trip(
        self: Arc<Self>,
        token: LicenseToken,
        forced: bool,
        activating: bool,
    ) -> Result<Arc<Verdict>, Error> {
        let Some(transport) = &self.transport else {
            return Err(Error::NoServer);
        };
        let (instance_id, tag, forced, asked_over) = {
            let held = self.lock();
            let asked_over = crate::flight::held_version(&held);
            let forced = forced || held.needs_proof();
            let tag = (!forced)
                .then(|| {
                    held.document
                        .as_ref()
                        .filter(|d| d.claims().tfp == token.fingerprint())
                        .map(etag)
                })
                .flatten();
            (held.instance_id.to_string(), tag, forced, asked_over)
        };
        let nonce = forced.then(random_nonce);
        let fingerprint = self.fingerprint(&token);
        let request = ValidateRequest {
            token: token.expose_secret().to_owned(),
            instance_id: Some(instance_id),
            nonce: nonce.clone(),
            app_version: self.settings.app_version.clone(),
            usage: None,
            fingerprint: Some(fingerprint.clone()),
        };
        let answer = match transport.validate(&request, tag.as_deref()).await {
            Ok(a) => a,
            Err(e) => {
                self.record_failure(&e);
                return Err(e);
            }
        };
        let text = match answer {
            Answer::NotModified if !forced => {
                // Unsigned: it extends nothing and proves nothing; it only
                // spares a download while all is well (never sent otherwise).
                self.record_unchanged();
                return Ok(self.cell.load_full());
            }
            Answer::NotModified => {
                let e = Error::InvalidAnswer("304 to a request without If-None-Match".into());
                self.record_failure(&e);
                return Err(e);
            }
            Answer::Document(text) => text,
        };
        let mut expect = self
            .settings
            .expect(&token)
            .with_machine(machine_fingerprint_hash(&fingerprint));
        let evidence = if nonce.is_some() {
            Evidence::Nonce
        } else {
            Evidence::Poll
        };
        if let Some(nonce) = nonce {
            expect = expect.with_nonce(nonce);
        }
        let doc = self.verified(&text, &expect)?;
        // A machine released while it held a place stays released.
        self.note_machine_ended(&doc);
        if self.should_activate(&doc) {
            return self.machine_round_trip(token, "activate", activating).await;
        }
        if crate::flight::superseded(&self.lock(), &doc, asked_over) {
            return Ok(self.cell.load_full());
        }
        self.accept(doc, activating.then_some(token), evidence)
            .await
    }

    /// The stream opened or closed.
    pub(crate) fn set_stream(&self, connected: bool) {
        {
            let mut held = self.lock();
            if held.contact.connected == connected {
                return;
            }
            held.contact.connected = connected;
        }
        self.publish();
        // The refresh loop re-plans: polling stops or resumes.
        self.wake.notify_one();
    }

    /// Poll at once (e.g. the stream was refused: learn the signed status).
    pub(crate) fn poll_now(&self) {
        self.lock().poll_at = Some(self.now());
        self.wake.notify_one();
    }

    /// `text` verified against the pinned keys at this clock's now; a
    /// failure is recorded (`last_error`) and returned.
    pub(crate) fn verified(
        &self,
        text: &str,
        expect: &Expectations,
    ) -> Result<VerifiedDocument, Error> {
        tessera_protocol::bundle::verify_any(text.as_bytes(), &self.keys, expect, self.now())
            .map_err(|e| {
                let e = Error::Verification(e);
                self.record_failure(&e);
                e
            })
    }
}
