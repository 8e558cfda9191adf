//! Configuring and starting a [`Client`](crate::Client): pinned keys,
//! servers, the state directory, then [`Builder::start`], which loads the
//! held state, applies an offline file, and starts the background tasks
//! without waiting for the network.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use arc_swap::ArcSwap;
use chrono::Duration;
use tessera_protocol::{
    Expectations, Freshness, InstanceId, LicenseToken, TrustedKeys, wire::machine_fingerprint_hash,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::verdict::{Contact, Verdict};
use crate::{Client, NEXT_CLIENT_ID, StopOnDrop};
use tessera_protocol::{PublicKey, Timestamp};

use crate::clock::{Clock, SystemClock};
use crate::engine::{self, Held, Inner, Settings};
use crate::machine;
use crate::state::StateFile;
use crate::stream;
use crate::transport::Transport;
use crate::verdict::LastError;

/// Configures and starts a [`Client`].
#[derive(Debug)]
pub struct Builder {
    servers: Vec<String>,
    keys: TrustedKeys,
    state_dir: Option<PathBuf>,
    token: Option<String>,
    offline_file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    max_clock_drift: Duration,
    clock_tolerance: Duration,
    tick: StdDuration,
    request_timeout: StdDuration,
    stream_read_timeout: StdDuration,
    watch: Watching,
    app_version: Option<String>,
    app_released_at: Option<tessera_protocol::Timestamp>,
    fingerprint: Option<String>,
    components: Option<Vec<String>>,
    usage_interval: StdDuration,
    consumption_interval: StdDuration,
    trial_policy: Option<String>,
    product: Option<String>,
}

/// Whether the client keeps a change stream open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Watching {
    /// Changes are pushed the moment they happen (default).
    #[default]
    On,
    /// Poll only, at `refresh_after` (e.g. behind a proxy that breaks streams).
    Off,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            keys: TrustedKeys::new(),
            state_dir: None,
            token: None,
            offline_file: None,
            clock: Arc::new(SystemClock),
            max_clock_drift: Expectations::DEFAULT_MAX_CLOCK_DRIFT,
            clock_tolerance: Duration::hours(1),
            tick: StdDuration::from_secs(30),
            request_timeout: StdDuration::from_secs(15),
            // 2.5 × the authority's 15 s keep-alive.
            stream_read_timeout: StdDuration::from_millis(37_500),
            watch: Watching::On,
            app_version: None,
            app_released_at: None,
            fingerprint: None,
            components: None,
            usage_interval: StdDuration::from_secs(15 * 60),
            consumption_interval: StdDuration::from_secs(10),
            trial_policy: None,
            product: None,
        }
    }
}

impl Builder {
    /// An authority URL. Call again for more: on failure the client moves
    /// to the next one.
    #[must_use]
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// Several authority URLs at once.
    #[must_use]
    pub fn servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, urls: I) -> Self {
        self.servers.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Pin a public key (call again to pin several, e.g. across a rotation).
    #[must_use]
    pub fn public_key(mut self, key: PublicKey) -> Self {
        self.keys.insert(key);
        self
    }

    /// Pin a key retired by a rotation at `retired_at`: documents it signed
    /// up to then verify, later ones are refused (`key_retired`).
    #[must_use]
    pub fn retired_public_key(mut self, key: PublicKey, retired_at: Timestamp) -> Self {
        self.keys.insert_retired(key, retired_at);
        self
    }

    /// Pin keys given as text: `k4.public.…`, or `k4.public.…@<time>` for a
    /// retired key (what `/v1/keys` and `tessera keys rotate` print).
    ///
    /// # Errors
    /// [`Error::Config`] naming the key that does not parse.
    pub fn pin(mut self, text: &str) -> Result<Self, Error> {
        self.keys
            .pin(text)
            .map_err(|e| Error::Config(format!("public key {text:?}: {e}")))?;
        Ok(self)
    }

    /// Where the token, document, high-water mark and instance id are kept.
    /// Without one nothing survives a restart.
    #[must_use]
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The license token from configuration. A token activated at run time
    /// (kept in the state directory) wins until this one changes.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Air-gapped mode: a file made by `tessera license export`. With no
    /// server configured the client never goes to the network.
    #[must_use]
    pub fn offline_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.offline_file = Some(path.into());
        self
    }

    /// The clock (tests inject one). Default: the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The product this client is part of (§28): a license of another
    /// product is refused (`wrong_product`), online, pushed, stored or
    /// offline. Default: any product.
    #[must_use]
    pub fn product(mut self, product: impl Into<String>) -> Self {
        self.product = Some(product.into());
        self
    }

    /// How far ahead of the local clock a document's `iat` may be. Default 5 min.
    #[must_use]
    pub fn max_clock_drift(mut self, drift: Duration) -> Self {
        self.max_clock_drift = drift;
        self
    }

    /// How far behind the high-water mark the clock may be before the
    /// verdict is `clock_tampered`. Default 1 h.
    #[must_use]
    pub fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.clock_tolerance = tolerance;
        self
    }

    /// Longest the background loop sleeps before re-reading the clock
    /// (catches clock jumps). Default 30 s.
    #[must_use]
    pub fn tick(mut self, tick: StdDuration) -> Self {
        self.tick = tick;
        self
    }

    /// Timeout of one request to the authority. Default 15 s.
    #[must_use]
    pub fn request_timeout(mut self, timeout: StdDuration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether to keep a change stream open (default on).
    #[must_use]
    pub fn watch(mut self, watching: Watching) -> Self {
        self.watch = watching;
        self
    }

    /// How long a change stream may stay silent (no event, no keep-alive)
    /// before it is considered dead. Default 37.5 s (2.5 × the keep-alive).
    #[must_use]
    pub fn stream_read_timeout(mut self, timeout: StdDuration) -> Self {
        self.stream_read_timeout = timeout;
        self
    }

    /// The product's version, shown in the authority's fleet view.
    #[must_use]
    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// When this version of the product was released. Under a policy that
    /// keeps the versions released before expiry (`on_expiry:
    /// keep_versions_released_before_expiry`), an expired license stays
    /// valid for a version released before it expired
    /// ([`crate::Verdict::after_expiry`] says so); without it, expiry ends
    /// the license as usual.
    #[must_use]
    pub fn app_released_at(mut self, released_at: tessera_protocol::Timestamp) -> Self {
        self.app_released_at = Some(released_at);
        self
    }

    /// This machine's fingerprint, for licenses that count machines
    /// (docs/PROTOCOL.md §19): 1–256 printable ASCII characters. Default:
    /// derived from the host's machine id (else the persisted instance id)
    /// and the token, so it differs per license. Set it where the host id
    /// means nothing — in a container: a value kept on a persistent volume,
    /// or the StatefulSet ordinal, never the pod UID.
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// This machine's components (e.g. `cpu:…`, `disk:…`, `mac:…`,
    /// `hostname:…`), for licenses whose `fingerprint_match` is a threshold:
    /// a machine whose fingerprint changed keeps its place when enough of
    /// them are the same. Default: the host's own (host name, first MAC
    /// address, CPU model, root disk), whichever can be read. Each is sent
    /// hashed with the token, never as read. An empty list sends none.
    #[must_use]
    pub fn components<S: Into<String>>(mut self, components: impl IntoIterator<Item = S>) -> Self {
        self.components = Some(components.into_iter().map(Into::into).collect());
        self
    }

    /// With no token (none configured, none kept on disk), start this
    /// machine's trial of the trial policy `policy` by itself
    /// ([`Client::start_trial`]), retrying with backoff until it has a token.
    #[must_use]
    pub fn trial(mut self, policy: impl Into<String>) -> Self {
        self.trial_policy = Some(policy.into());
        self
    }

    /// How often what [`Client::consume`] counted is reported (10 s by
    /// default; [`Client::flush_consumption`] reports at once).
    #[must_use]
    pub fn consumption_interval(mut self, interval: StdDuration) -> Self {
        self.consumption_interval = interval;
        self
    }

    /// How often the user count given to [`Client::set_users`] is reported
    /// to the authority (metering). Default 15 minutes.
    #[must_use]
    pub fn usage_interval(mut self, interval: StdDuration) -> Self {
        self.usage_interval = interval;
        self
    }

    /// Start: load disk state, publish its verdict, and refresh in the
    /// background. Never waits for the network.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime; [`Error::Config`] with
    /// no pinned key or neither a server nor an offline file;
    /// [`Error::InvalidToken`] for a mistyped configured token;
    /// [`Error::Verification`] / [`Error::Rollback`] / [`Error::Storage`]
    /// for an offline file that cannot be used.
    pub fn start(self) -> Result<Client, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if self.keys.is_empty() {
            return Err(Error::Config("no public key pinned".into()));
        }
        if self.servers.is_empty() && self.offline_file.is_none() && self.state_dir.is_none() {
            return Err(Error::Config(
                "give a server URL, an offline file or a state directory".into(),
            ));
        }
        if self.tick.is_zero() {
            return Err(Error::Config("tick must be positive".into()));
        }
        if let Some(fp) = &self.fingerprint {
            tessera_protocol::wire::check_fingerprint("fingerprint", fp)
                .map_err(|e| Error::Config(e.to_string()))?;
        }
        for c in self.components.iter().flatten() {
            tessera_protocol::wire::check_fingerprint("component", c)
                .map_err(|e| Error::Config(e.to_string()))?;
        }
        if self.consumption_interval.is_zero() {
            return Err(Error::Config(
                "consumption interval must be positive".into(),
            ));
        }
        if self.usage_interval.is_zero() {
            return Err(Error::Config("usage interval must be positive".into()));
        }
        let configured = self
            .token
            .as_deref()
            .map(LicenseToken::parse)
            .transpose()
            .map_err(Error::InvalidToken)?;
        let transport = if self.servers.is_empty() {
            None
        } else {
            Some(Transport::new(self.servers.clone(), self.request_timeout)?)
        };
        let state_file = self.state_dir.as_ref().map(StateFile::new);
        let now = self.clock.now();
        let mut held = self.load_held(state_file.as_ref(), configured, now);
        if let Some(path) = &self.offline_file {
            let keys = (&self.keys, self.max_clock_drift, self.product.as_deref());
            let fingerprint = self.fingerprint.as_deref();
            crate::offline::apply_offline_file(
                path,
                state_file.as_ref(),
                &mut held,
                now,
                keys,
                fingerprint,
            )?;
        }
        let (watch, _) = watch::channel(Arc::new(Verdict::no_document()));
        let inner = Arc::new(Inner {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            deadline_ms: std::sync::atomic::AtomicI64::new(i64::MAX),
            settings: Settings {
                clock: self.clock,
                max_clock_drift: self.max_clock_drift,
                clock_tolerance: self.clock_tolerance,
                tick: self.tick,
                app_version: self.app_version,
                app_released_at: self.app_released_at,
                fingerprint: self.fingerprint,
                components: self.components,
                product: self.product,
            },
            keys: self.keys,
            transport,
            state_file,
            held: Mutex::new(held),
            cell: ArcSwap::from_pointee(Verdict::no_document()),
            features: crate::features::FeatureBits::default(),
            watch,
            apply_lock: tokio::sync::Mutex::new(()),
            inflight: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            cancel: CancellationToken::new(),
            token_epoch: watch::channel(0).0,
            ack: Notify::new(),
            reack: Notify::new(),
            users: AtomicU64::new(engine::NO_USERS),
            usage_wake: Notify::new(),
            meters: crate::meter::Meters::default(),
            reports: tokio::sync::Mutex::default(),
        });
        inner.publish();
        crate::schedule::spawn_deadline_thread(&inner)?;
        supervise(&runtime, &inner, "refresh loop", crate::schedule::run);
        if inner.transport.is_some() && self.watch == Watching::On {
            let read_timeout = self.stream_read_timeout;
            supervise(&runtime, &inner, "change stream", move |i| {
                stream::watch_loop(i, read_timeout)
            });
            supervise(&runtime, &inner, "revision reports", stream::ack_loop);
        }
        if inner.transport.is_some() {
            let interval = self.usage_interval;
            supervise(&runtime, &inner, "usage reports", move |i| {
                stream::usage_loop(i, interval)
            });
            let interval = self.consumption_interval;
            supervise(&runtime, &inner, "consumption reports", move |i| {
                crate::consumption::consumption_loop(i, interval)
            });
            if let Some(policy) = self.trial_policy.clone()
                && inner.lock().token.is_none()
            {
                supervise(&runtime, &inner, "trial", move |i| {
                    crate::trial::trial_loop(i, policy.clone())
                });
            }
        }
        let stop = Arc::new(StopOnDrop(inner.cancel.clone()));
        Ok(Client { inner, _stop: stop })
    }

    /// Held state from disk and configuration.
    fn load_held(
        &self,
        file: Option<&StateFile>,
        configured: Option<LicenseToken>,
        now: Timestamp,
    ) -> Held {
        let mut last_error = None;
        let disk = match file.map(StateFile::load).transpose() {
            Ok(state) => state.flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable license state");
                last_error = Some(LastError {
                    kind: e.kind(),
                    message: e.to_string(),
                    at: now,
                });
                None
            }
        };
        let instance_id = disk
            .as_ref()
            .and_then(|d| InstanceId::parse(&d.instance_id).ok())
            .unwrap_or_else(new_instance_id);
        let stored_token = disk
            .as_ref()
            .and_then(|d| d.token.as_deref())
            .and_then(|t| LicenseToken::parse(t).ok());
        let configured_fp = configured.as_ref().map(LicenseToken::fingerprint);
        // The configured token wins when it changed since the state was
        // written; otherwise a token activated at run time stays.
        let token = match (&configured, &stored_token) {
            (Some(c), Some(s)) if c != s => {
                if disk.as_ref().and_then(|d| d.configured.as_ref()) == configured_fp.as_ref() {
                    Some(s.clone())
                } else {
                    Some(c.clone())
                }
            }
            (Some(c), _) => Some(c.clone()),
            (None, s) => s.clone(),
        };
        let mut document = None;
        if let (Some(token), Some(text)) =
            (&token, disk.as_ref().and_then(|d| d.document.as_deref()))
        {
            // A state copied from another machine holds a document bound to
            // that machine: it is dropped, and this one asks for its own.
            let fingerprint = machine::machine_fingerprint(
                self.fingerprint.as_deref(),
                instance_id.as_str(),
                token,
            );
            let expect = Expectations::for_token(token.fingerprint())
                .with_product(self.product.clone())
                .with_freshness(Freshness::SkipForStoredState)
                .with_machine(machine_fingerprint_hash(&fingerprint));
            match tessera_protocol::bundle::verify_any(text.as_bytes(), &self.keys, &expect, now) {
                Ok(doc) => document = Some(doc),
                Err(tessera_protocol::Error::TokenMismatch) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring stored document that fails verification");
                    last_error = Some(LastError {
                        kind: "verification",
                        message: format!("stored document rejected: {e}"),
                        at: now,
                    });
                }
            }
        }
        let stored_hwm = disk.as_ref().and_then(|d| d.high_water_mark);
        // The mark is never below the held document's `iat`: the client's
        // clock was past it (within the drift) when it accepted the
        // document. A lower or missing mark on disk is repaired, not trusted.
        let hwm = match (&document, stored_hwm) {
            (Some(d), Some(h)) => Some(h.max(d.claims().iat)),
            (Some(d), None) => Some(d.claims().iat),
            (None, h) => h,
        };
        if hwm != stored_hwm
            && let (Some(file), Some(disk)) = (file, &disk)
        {
            tracing::warn!(
                "the stored clock mark was missing or below its document's signing time; repaired"
            );
            let mut repaired = disk.clone();
            repaired.high_water_mark = hwm;
            if let Err(e) = file.store(&repaired) {
                tracing::warn!(error = %e, "cannot write the repaired clock mark");
            }
        }
        Held {
            token,
            configured: configured_fp,
            contact: Contact {
                // The authority vouched for the stored document when it signed it.
                last_verified_at: document.as_ref().map(|d| d.claims().iat),
                last_error,
                ..Contact::default()
            },
            document,
            hwm,
            persisted_hwm: hwm,
            instance_id,
            poll_at: None,
            failures: 0,
            retry_at: None,
            clock_suspect: false,
            machine_given_up: false,
        }
    }
}

/// Run a background task, restarted after a panic (logged, 1 s later) until
/// the client stops: no single task's death may freeze the client.
fn supervise<F, Fut>(
    runtime: &tokio::runtime::Handle,
    inner: &Arc<Inner>,
    name: &'static str,
    task: F,
) where
    F: Fn(Arc<Inner>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = inner.clone();
    let spawner = runtime.clone();
    runtime.spawn(async move {
        loop {
            let run = spawner.spawn(task(inner.clone()));
            match run.await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    tracing::error!(task = name, "license task panicked; restarting it");
                }
                Err(_) => return,
            }
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                () = tokio::time::sleep(StdDuration::from_secs(1)) => {}
            }
        }
    });
}

fn new_instance_id() -> InstanceId {
    let bytes: [u8; 12] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    InstanceId::parse(&format!("i-{hex}"))
        .unwrap_or_else(|_| unreachable!("hex is a valid instance id"))
}
