//! The Tessera client SDK: the license cache a product embeds.
//!
//! The product asks [`Client::verdict`] or [`Client::has_feature`] as often
//! as it likes — a lock-free pointer load, no allocation, no I/O. Behind it
//! the client holds the newest **verified** status document (docs/PROTOCOL.md, sections 2–7 and 14):
//!
//! - start-up never waits for the network: disk state is loaded and its
//!   verdict published at once, then the authority is asked in the
//!   background;
//! - [`Client::refresh`] and [`Client::activate`] always make a round trip
//!   with a fresh nonce — re-entering the same token after a renewal shows
//!   the renewal at once;
//! - only verified documents change anything; network errors, timeouts,
//!   5xx and proxy pages are recorded as `last_error` and the verdict stays;
//! - the rollback rule, the document's `exp` and a clock high-water mark
//!   stop replayed documents, frozen answers and clocks set back;
//! - the verdict changes on its own when the clock crosses `expires_at`,
//!   `refresh_after` or `exp`: a license expires on time offline.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_client::{Client, PublicKey};
//!
//! let key: PublicKey = "k4.public.1-W_FFT5rpK6dhtw9vSuZWeoWLF7OvQxyXz2ihtLW7Y".parse()?;
//! let client = Client::builder()
//!     .server("https://license.example.com")
//!     .public_key(key)
//!     .state_dir("/var/lib/myapp/license")
//!     .token("tsr_…")
//!     .start()?;
//!
//! if client.has_feature("sso") {
//!     // serve the SSO login
//! }
//! println!("{:?}", client.verdict().state);
//! # Ok(()) }
//! ```
//!
//! Modules: [`verdict`] (the pure verdict), [`state`] (disk state),
//! [`clock`]; the engine and transport are private.

mod builder;
pub mod clock;
mod consumption;
mod engine;
mod error;
mod features;
mod flight;
mod machine;
mod meter;
mod offline;
mod schedule;
pub mod state;
mod stream;
mod transport;
mod trial;
pub mod verdict;

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use tessera_protocol::LicenseToken;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use builder::{Builder, Watching};
pub use error::Error;
pub use features::Feature;
pub use tessera_protocol::{PublicKey, Timestamp};
pub use verdict::{LastError, LicenseInfo, UnverifiedReason, Verdict, VerdictState};

use crate::engine::Inner;

pub(crate) static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The verdict this thread last read: (client id, generation, verdict).
    /// A reader whose generation still matches uses it without touching any
    /// shared cache line; otherwise it loads from the `ArcSwap`.
    static SEEN: RefCell<Option<(u64, u64, Arc<Verdict>)>> = const { RefCell::new(None) };
}

/// Stops the background loop when the last [`Client`] handle is dropped.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A running license client. Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) _stop: Arc<StopOnDrop>,
}

impl Client {
    /// Configure a client.
    #[must_use]
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Run `f` on the current verdict: one atomic load of the generation and
    /// this thread's cached verdict when nothing changed; an `ArcSwap` load
    /// otherwise. No lock, no allocation, no I/O.
    fn with_verdict<R>(&self, f: impl FnOnce(&Verdict) -> R) -> R {
        let generation = self.inner.generation.load(Ordering::Acquire);
        SEEN.with(|seen| {
            let Ok(mut seen) = seen.try_borrow_mut() else {
                // Re-entered from inside `f` (not done here): read directly.
                return f(&self.inner.cell.load());
            };
            if let Some((id, g, verdict)) = seen.as_ref()
                && *id == self.inner.id
                && *g == generation
            {
                return f(verdict);
            }
            let verdict = self.inner.cell.load_full();
            let result = f(&verdict);
            *seen = Some((self.inner.id, generation, verdict));
            result
        })
    }

    /// The current verdict: a lock-free pointer load (and a reference count).
    #[must_use]
    pub fn verdict(&self) -> Arc<Verdict> {
        self.inner.cell.load_full()
    }

    /// Whether `feature` is granted now: no lock, no allocation, no I/O.
    #[must_use]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.with_verdict(|v| v.has_feature(feature))
    }

    /// `feature`, resolved once for checks in a hot path:
    /// [`Feature::is_enabled`] is one atomic load and a bit test, and it
    /// follows every verdict change (a renewal, a suspension, the feature's
    /// own end) as [`Client::has_feature`] does.
    ///
    /// ```no_run
    /// # fn demo(client: &tessera_client::Client) {
    /// let sso = client.feature("sso");
    /// if sso.is_enabled() {
    ///     // serve the SSO login
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn feature(&self, feature: &str) -> Feature {
        self.inner.features.resolve(feature, &self.inner.cell)
    }

    /// Whether the license is valid now.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.with_verdict(Verdict::is_valid)
    }

    /// Verdict changes, for UIs.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<Verdict>> {
        self.inner.watch.subscribe()
    }

    /// Ask the authority now (the "Refresh now" button): a forced round trip
    /// with a fresh nonce. Concurrent callers share one request.
    ///
    /// # Errors
    /// [`Error::NoToken`], [`Error::NoServer`], or why no verified answer
    /// was obtained; the verdict is then unchanged.
    pub async fn refresh(&self) -> Result<Arc<Verdict>, Error> {
        let token = self.inner.lock().token.clone().ok_or(Error::NoToken)?;
        self.inner.single_flight(token, true, false).await
    }

    /// Use `token` (a new one, or the same one again): checked locally
    /// first — a typo fails without any request — then a forced round trip.
    /// On success the token and its document are stored; on failure the
    /// previous state stays.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a typo; otherwise as [`Client::refresh`].
    pub async fn activate(&self, token: &str) -> Result<Arc<Verdict>, Error> {
        let token = LicenseToken::parse(token).map_err(Error::InvalidToken)?;
        // A trial being replaced by a paid license ends (§23).
        let trial = {
            let held = self.inner.lock();
            held.token.clone().filter(|held_token| {
                *held_token != token
                    && held.document.as_ref().is_some_and(|d| {
                        d.claims().tfp == held_token.fingerprint()
                            && d.claims().status == tessera_protocol::Status::Trial
                    })
            })
        };
        let verdict = self.inner.single_flight(token.clone(), true, true).await?;
        if let Some(trial) = trial
            && verdict.is_valid()
            && verdict
                .license
                .as_ref()
                .is_some_and(|l| l.status != tessera_protocol::Status::Trial)
        {
            self.inner.convert_trial(&trial, &token).await;
        }
        Ok(verdict)
    }

    /// Start this machine's trial of the trial policy `policy` (or find it
    /// again: a reinstall gets the same trial back) and use its token
    /// (docs/PROTOCOL.md §23). `email` is passed on when the product asks
    /// for one. [`Builder::trial`] does this by itself when there is no token.
    ///
    /// # Errors
    /// [`Error::NoServer`]; the authority's refusal (422 `not_a_trial_policy`,
    /// 404 unknown policy, 429 too many trials from this address); as
    /// [`Client::activate`].
    pub async fn start_trial(
        &self,
        policy: &str,
        email: Option<&str>,
    ) -> Result<Arc<Verdict>, Error> {
        self.inner.start_trial(policy, email).await
    }

    /// Where this machine stands on a license that counts machines
    /// (docs/PROTOCOL.md §19), from the held document: `None` for a license
    /// that does not count machines, or before any answer.
    #[must_use]
    pub fn machine(&self) -> Option<Machine> {
        let held = self.inner.lock();
        let c = held.document.as_ref()?.claims();
        let m = c.machine.as_ref()?;
        Some(Machine {
            id: m.id.clone(),
            fingerprint_hash: c.mfp.clone().unwrap_or_default(),
            mode: m.mode,
            activated_at: m.activated_at,
            lease_expires_at: m.lease_expires_at,
            lease_ttl: m.lease_ttl.map(StdDuration::from_secs),
            used: m.used,
            max: m.max,
        })
    }

    /// Give this machine's place back (a floating license: call it on a
    /// clean shutdown, so the place is free at once rather than when the
    /// lease runs out). The client does not take a place again by itself
    /// until [`Client::activate_machine`].
    ///
    /// # Errors
    /// [`Error::NoToken`], [`Error::NoServer`], or why the authority could
    /// not be asked (409 `not_activated` when it held no place).
    pub async fn deactivate(&self) -> Result<Arc<Verdict>, Error> {
        self.machine_action("deactivate").await
    }

    /// Take a place for this machine now (it does so by itself on start;
    /// this is for after [`Client::deactivate`] or a release).
    ///
    /// # Errors
    /// As [`Client::deactivate`].
    pub async fn activate_machine(&self) -> Result<Arc<Verdict>, Error> {
        self.machine_action("activate").await
    }

    async fn machine_action(&self, action: &str) -> Result<Arc<Verdict>, Error> {
        let token = self.inner.lock().token.clone().ok_or(Error::NoToken)?;
        let inner = self.inner.clone();
        inner.machine_round_trip(token, action, false).await
    }

    /// Consume `amount` of a metered feature (docs/PROTOCOL.md §22): an
    /// atomic add, no lock, no I/O; reported to the authority in batches.
    /// Answers what is left of the limit in the current period.
    ///
    /// # Errors
    /// [`Error::NotGranted`] when the license does not grant the feature
    /// now; [`Error::UnknownQuota`] for a feature without a quota;
    /// [`Error::QuotaExhausted`] when the quota (under `block`, or past
    /// `allow_until_percent`) does not allow it — nothing is counted then;
    /// [`Error::InvalidAmount`] above 2^53.
    pub fn consume(&self, feature: &str, amount: u64) -> Result<u64, Error> {
        if !self.has_feature(feature) {
            return Err(Error::NotGranted(feature.to_owned()));
        }
        self.inner.meters.consume(feature, amount)
    }

    /// What is left of a metered feature's limit in the current period:
    /// the authority's count as of the held document (or a later report's
    /// answer) and what this client consumed since. `None` when the
    /// feature has no quota.
    #[must_use]
    pub fn remaining(&self, feature: &str) -> Option<u64> {
        self.inner.meters.remaining(feature)
    }

    /// Each metered feature's limit and its use as this client estimates
    /// it now (for status pages).
    #[must_use]
    pub fn quotas(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        self.inner.meters.snapshot()
    }

    /// Report what was consumed now, rather than at the next interval; a
    /// round trip.
    ///
    /// # Errors
    /// The transport's; what was not reported is sent again later.
    pub async fn flush_consumption(&self) -> Result<(), Error> {
        self.inner.report_consumption().await
    }

    /// Tell the client how many users the product has now. It is reported
    /// to the authority (`POST /v1/usage`) at once when it first arrives or
    /// changes, then every usage interval (15 minutes by default). No
    /// network call happens here.
    pub fn set_users(&self, users: u32) {
        let previous = self.inner.users.swap(u64::from(users), Ordering::Relaxed);
        if previous != u64::from(users) {
            self.inner.usage_wake.notify_one();
        }
    }

    /// This installation's id, as the authority's fleet view shows it.
    #[must_use]
    pub fn instance_id(&self) -> String {
        self.inner.lock().instance_id.to_string()
    }

    /// The held document's text, if any.
    #[must_use]
    pub fn document(&self) -> Option<String> {
        self.inner
            .lock()
            .document
            .as_ref()
            .map(|d| d.as_str().to_owned())
    }

    /// The authority URL the next request goes to.
    #[must_use]
    pub fn current_server(&self) -> Option<String> {
        self.inner
            .transport
            .as_ref()
            .map(|t| t.current().to_owned())
    }

    /// Stop the background loop (also happens when the last handle drops).
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

/// Where this machine stands (see [`Client::machine`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Its activation (`mch_…`); `None` while it holds no place.
    pub id: Option<String>,
    /// Its fingerprint hash (the documents' `mfp`).
    pub fingerprint_hash: String,
    /// Node-locked or floating.
    pub mode: tessera_protocol::wire::MachineMode,
    /// When it was activated.
    pub activated_at: Option<Timestamp>,
    /// Floating: when its lease ends unless renewed (the client renews it
    /// at a third of the lease).
    pub lease_expires_at: Option<Timestamp>,
    /// Floating: the lease's length.
    pub lease_ttl: Option<StdDuration>,
    /// Machines holding a place on the license.
    pub used: u32,
    /// The license's machine limit; `None` = unlimited.
    pub max: Option<u32>,
}

impl VerdictState {
    /// Whether a verified document backs this state.
    #[must_use]
    pub fn is_verified(self) -> bool {
        self != VerdictState::Unverified
    }
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
