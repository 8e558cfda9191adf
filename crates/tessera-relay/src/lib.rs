//! The site relay (docs/PROTOCOL.md §26): `tessera relay` inside an
//! isolated network answers every instance on the LAN — validation,
//! streams, machines and leases, usage — with documents signed by its own
//! key, which a bundle signed by the authority certifies. Instances pin
//! only the authority's key; the bundle bounds what the relay may say
//! (licenses, features, machines, until when), so a relay cannot grant
//! more than the vendor allowed and a stolen relay key dies with its
//! bundle.
//!
//! - [`store`]: its SQLite state (bundle, places, audit log, installations,
//!   relays below);
//! - [`places`]: places and leases, exact under races;
//! - [`answer`]: what a document says (pure);
//! - [`http`]: the public API it serves;
//! - [`upstream`]: fetching newer bundles and reporting usage, and
//!   certifying relays below (chaining);
//! - [`keyfile`]: its key on disk.

pub mod answer;
mod error;
pub mod http;
pub mod keyfile;
pub mod places;
pub mod store;
pub mod upstream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use arc_swap::ArcSwapOption;
use chrono::Duration;
use tessera_protocol::bundle::{SiteBundle, verify_bundle};
use tessera_protocol::wire::SiteBundleFile;
use tessera_protocol::{SigningKey, StatusClaims, Timestamp, TrustedKeys};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};
use places::Places;
use store::Store;

/// The relay's clock (injected: tests move it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How far the clock may run behind the latest time the relay has seen
/// before it stops answering (`clock_tampered`).
pub const CLOCK_TOLERANCE: Duration = Duration::minutes(5);

/// How a relay runs.
#[derive(Clone)]
pub struct RelayConfig {
    /// Its state directory (`relay.key`, `relay.db`).
    pub data_dir: PathBuf,
    /// The authority's public keys: bundles must chain to one of them.
    pub authority: TrustedKeys,
    /// A bundle file to import, watched for a newer one (dropped in by hand).
    pub bundle_file: Option<PathBuf>,
    /// The authority, or the relay above, when a route to it exists.
    pub upstream: Option<String>,
    /// How often to synchronise with the upstream.
    pub sync_interval: StdDuration,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("data_dir", &self.data_dir)
            .field("bundle_file", &self.bundle_file)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl RelayConfig {
    /// Defaults: no bundle file, no upstream, synchronise hourly, the
    /// system clock.
    #[must_use]
    pub fn new(data_dir: PathBuf, authority: TrustedKeys) -> Self {
        Self {
            data_dir,
            authority,
            bundle_file: None,
            upstream: None,
            sync_interval: StdDuration::from_secs(3600),
            clock: Arc::new(chrono::Utc::now),
        }
    }
}

/// The bundle a relay answers with.
#[derive(Debug)]
pub struct Held {
    /// As signed (carried in every document's footer).
    pub text: String,
    /// Verified.
    pub bundle: SiteBundle,
}

/// A change streams must hear of: a license's terms or places changed
/// (each stream sends what its license's kind calls for).
#[derive(Debug, Clone)]
pub struct Change {
    /// Which license (token fingerprint); `None`: all (a new bundle).
    pub tfp: Option<String>,
}

/// The relay's shared state.
pub struct Relay {
    key: SigningKey,
    config: RelayConfig,
    store: Store,
    places: Places,
    held: ArcSwapOption<Held>,
    changes: broadcast::Sender<Change>,
    /// The latest time seen: the clock must not go back past it.
    mark: std::sync::Mutex<Timestamp>,
    /// Per machine and revision, the last `iat` signed (see
    /// [`Relay::sign_for_machine`]).
    last_iat: std::sync::Mutex<HashMap<String, Timestamp>>,
    /// Answers to nonce-less validations, by (token, instance, bundle):
    /// reused for [`REUSE_FOR`].
    reuse: std::sync::Mutex<HashMap<String, (Timestamp, axum::body::Bytes)>>,
    /// Installation sightings not yet written (batched each second).
    sightings: std::sync::Mutex<Vec<store::Sighting>>,
    /// The last synchronisation with the upstream, and its outcome.
    last_sync: std::sync::Mutex<Option<(Timestamp, std::result::Result<bool, String>)>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long an answer to a nonce-less validation is given again (the
/// authority's window too).
pub const REUSE_FOR: Duration = Duration::seconds(60);

/// The relay key's file in a data directory.
#[must_use]
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("relay.key")
}

impl Relay {
    /// Open the relay's state (creating its key on first use) and load the
    /// newest bundle it holds or is given.
    ///
    /// # Errors
    /// When the directory, key or database cannot be opened, or the clock
    /// is behind the latest time this relay has seen.
    pub async fn open(config: RelayConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io(format!("create {}", config.data_dir.display()), e))?;
        let (key, _) = keyfile::load_or_create(&key_path(&config.data_dir))?;
        let store = Store::open(&config.data_dir.join("relay.db")).await?;
        let places = Places::load(store.clone()).await?;
        let now = (config.clock)();
        let mark = match store.meta("clock_mark").await? {
            Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| t.to_utc())
                .unwrap_or(now),
            None => now,
        };
        let relay = Arc::new(Self {
            key,
            config,
            store,
            places,
            held: ArcSwapOption::empty(),
            changes: broadcast::channel(1024).0,
            mark: std::sync::Mutex::new(mark.max(now)),
            last_iat: std::sync::Mutex::default(),
            reuse: std::sync::Mutex::default(),
            sightings: std::sync::Mutex::default(),
            last_sync: std::sync::Mutex::default(),
        });
        if let Some(text) = relay.store.bundle().await? {
            match relay.check_bundle(&text) {
                Ok(bundle) => relay.held.store(Some(Arc::new(Held { text, bundle }))),
                Err(e) => tracing::warn!(error = %e, "the stored bundle is no longer usable"),
            }
        }
        if let Some(path) = relay.config.bundle_file.clone()
            && let Err(e) = relay.import_file(&path).await
        {
            tracing::warn!(error = %e, file = %path.display(), "bundle file not taken");
        }
        relay.refresh_delegated().await?;
        Ok(relay)
    }

    /// The relay's public key (what the vendor certifies).
    #[must_use]
    pub fn public_key(&self) -> &tessera_protocol::PublicKey {
        self.key.public_key()
    }

    /// The bundle held, if any.
    #[must_use]
    pub fn held(&self) -> Option<Arc<Held>> {
        self.held.load_full()
    }

    /// The state database.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Now, by the relay's clock — refused when the clock went back past
    /// the latest time the relay has seen (a clock set back to keep an
    /// expired bundle alive), or before its bundle was signed.
    ///
    /// # Errors
    /// 503 `clock_tampered`.
    pub fn now(&self) -> Result<Timestamp> {
        let now = (self.config.clock)();
        let mut mark = self
            .mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let signed = self.held().map(|h| h.bundle.iat);
        if now + CLOCK_TOLERANCE < *mark || signed.is_some_and(|iat| now + CLOCK_TOLERANCE < iat) {
            return Err(Error::Unavailable {
                code: "clock_tampered",
                message: format!(
                    "this relay's clock says {now}, but it has already seen {}: set the clock right",
                    (*mark).max(signed.unwrap_or(*mark))
                ),
            });
        }
        *mark = (*mark).max(now);
        Ok(now)
    }

    /// Verify a bundle for this relay (chained to the authority, naming
    /// this relay's key, not expired).
    fn check_bundle(&self, text: &str) -> Result<SiteBundle> {
        let now = (self.config.clock)();
        let bundle = verify_bundle(text.trim(), &self.config.authority, now)?;
        if bundle.relay_key != self.key.public_key().to_paserk() {
            return Err(Error::bad_request(
                "wrong_relay",
                format!(
                    "this bundle certifies another relay's key; this relay's is {}",
                    self.key.public_key().to_paserk()
                ),
            ));
        }
        Ok(bundle)
    }

    /// Take a bundle (its file's JSON or the bare token) if it is newer
    /// than the one held; `false` when it is not newer.
    ///
    /// # Errors
    /// 400 for a bundle that does not verify or is another relay's; 409
    /// `rollback` for an older one.
    pub async fn take_bundle(&self, input: &str) -> Result<bool> {
        let text = match serde_json::from_str::<SiteBundleFile>(input) {
            Ok(file) => file.bundle,
            Err(_) => input.trim().to_owned(),
        };
        let bundle = self.check_bundle(&text)?;
        if let Some(held) = self.held() {
            if held.text == text {
                return Ok(false);
            }
            // Strictly earlier: two bundles signed in the same second are
            // both the authority's, and the later one carried in wins.
            if bundle.iat < held.bundle.iat {
                return Err(Error::Conflict {
                    code: "rollback",
                    message: format!(
                        "this bundle was signed at {}, before the one held ({}): an older bundle is refused",
                        bundle.iat, held.bundle.iat
                    ),
                });
            }
        }
        let now = (self.config.clock)();
        self.store
            .set_bundle(&text, bundle.iat.timestamp(), &bundle.site, now.timestamp())
            .await?;
        tracing::info!(site = %bundle.site, valid_until = %bundle.exp, "bundle taken");
        self.held.store(Some(Arc::new(Held { text, bundle })));
        let _ = self.changes.send(Change { tfp: None });
        Ok(true)
    }

    /// Import the bundle file (a `SiteBundleFile` JSON, or the bare token).
    ///
    /// # Errors
    /// As [`Relay::take_bundle`], or when the file cannot be read.
    pub async fn import_file(&self, path: &Path) -> Result<bool> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        self.take_bundle(&text).await
    }

    /// The held bundle, or 503 `no_bundle`.
    ///
    /// # Errors
    /// 503 `no_bundle` before any bundle was taken; 503 `bundle_expired`
    /// after the held one ended.
    pub fn current(&self, now: Timestamp) -> Result<Arc<Held>> {
        let held = self.held().ok_or_else(|| Error::Unavailable {
            code: "no_bundle",
            message: "this relay holds no bundle yet: import one (tessera relay --bundle FILE)"
                .into(),
        })?;
        if now > held.bundle.exp {
            return Err(Error::Unavailable {
                code: "bundle_expired",
                message: format!(
                    "this relay's bundle ended at {}: it needs a new one from the vendor",
                    held.bundle.exp
                ),
            });
        }
        Ok(held)
    }

    /// Sign a machine's answer with the relay's key, carrying the bundle.
    /// Answers for one machine at one revision are signed at least a second
    /// apart (whole seconds on the wire), so each is newer than the last
    /// and replaces it. Only `iat` moves: `refresh_after` stays on the
    /// clock (a burst of answers must not push the next heartbeat past the
    /// lease), and `exp` at the lease's end unless that is before `iat`.
    ///
    /// # Errors
    /// When encoding fails.
    pub fn sign_for_machine(
        &self,
        mut claims: StatusClaims,
        mfp: &str,
        held: &Held,
    ) -> Result<(String, StatusClaims)> {
        let key = format!("{}:{}:{mfp}", claims.tfp.as_str(), claims.rev);
        {
            let mut last = self
                .last_iat
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(prev) = last.get(&key)
                && claims.iat < *prev + Duration::seconds(1)
            {
                claims.iat = *prev + Duration::seconds(1);
            }
            if claims.exp < claims.iat {
                claims.exp = claims.iat;
            }
            if last.len() > 100_000 {
                last.clear();
            }
            last.insert(key, claims.iat);
        }
        let document = tessera_protocol::bundle::sign_relayed(&claims, &self.key, &held.text)?;
        Ok((document, claims))
    }

    /// The answer signed for `key` within [`REUSE_FOR`], unless the clock
    /// went back or a term of the license (its end, a feature's end) passed
    /// since it was signed.
    pub(crate) fn reused(
        &self,
        key: &str,
        license: &tessera_protocol::bundle::BundleLicense,
        now: Timestamp,
    ) -> Option<axum::body::Bytes> {
        let reuse = self
            .reuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (signed, body) = reuse.get(key)?;
        let crossed = |end: Option<Timestamp>| end.is_some_and(|e| *signed < e && e <= now);
        let fresh = *signed <= now
            && now - *signed < REUSE_FOR
            && !crossed(license.expires_at)
            && !license.entitlements.values().any(|e| crossed(e.expires_at));
        fresh.then(|| body.clone())
    }

    /// Keep an answer for [`Relay::reused`].
    pub(crate) fn keep_for_reuse(&self, key: String, now: Timestamp, body: axum::body::Bytes) {
        let mut reuse = self
            .reuse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reuse.len() > 100_000 {
            reuse.clear();
        }
        reuse.insert(key, (now, body));
    }

    /// Streams hear of changes here.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub(crate) fn announce(&self, tfp: &str) {
        let _ = self.changes.send(Change {
            tfp: Some(tfp.to_owned()),
        });
    }

    pub(crate) fn places(&self) -> &Places {
        &self.places
    }

    pub(crate) fn config(&self) -> &RelayConfig {
        &self.config
    }

    pub(crate) fn key(&self) -> &SigningKey {
        &self.key
    }

    pub(crate) fn note_sighting(
        &self,
        tfp: &str,
        instance: &str,
        revision: Option<u64>,
        users: Option<u32>,
        at: Timestamp,
    ) {
        let mut s = self
            .sightings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.len() < 100_000 {
            s.push((
                tfp.to_owned(),
                instance.to_owned(),
                revision.and_then(|r| i64::try_from(r).ok()),
                users.map(i64::from),
                at.timestamp(),
            ));
        }
    }

    /// Serve on `listener` until `shutdown` is cancelled, with the
    /// background tasks: the reaper, the bundle file watcher, the sightings
    /// writer and the upstream synchronisation.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let tasks = vec![
            tokio::spawn(Arc::clone(&self).housekeeping(shutdown.clone())),
            tokio::spawn(Arc::clone(&self).sync_loop(shutdown.clone())),
        ];
        let app = http::router(Arc::clone(&self), shutdown.clone());
        let stop = shutdown.clone();
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(|e| Error::io("serve", e));
        shutdown.cancel();
        for task in tasks {
            let _ = task.await;
        }
        self.flush().await;
        self.store.close().await;
        served
    }

    /// Every half second: end leases that ran out (and announce the freed
    /// seats), take a newer bundle file, write sightings and the clock mark.
    async fn housekeeping(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(StdDuration::from_millis(250));
        let mut seen_file: Option<(std::time::SystemTime, u64)> = None;
        let mut round = 0u64;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            round += 1;
            if let Some(path) = self.config.bundle_file.clone()
                && let Ok(meta) = std::fs::metadata(&path)
            {
                let stamp = (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len());
                if seen_file.is_some_and(|s| s != stamp) {
                    match self.import_file(&path).await {
                        Ok(true) => {
                            tracing::info!(file = %path.display(), "newer bundle file taken")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, file = %path.display(), "bundle file not taken")
                        }
                    }
                }
                seen_file = Some(stamp);
            }
            if round.is_multiple_of(2) {
                let now = (self.config.clock)();
                let licenses = self
                    .held()
                    .map(|h| h.bundle.licenses.clone())
                    .unwrap_or_default();
                match self.places.reap(&licenses, now).await {
                    Ok(freed) => freed.iter().for_each(|tfp| self.announce(tfp)),
                    Err(e) => tracing::warn!(error = %e, "cannot end the leases that ran out"),
                }
            }
            if round.is_multiple_of(4) {
                self.flush().await;
                // Relays below may be added by `tessera relay child` in
                // another process: their seats are taken here within a second.
                if let Err(e) = self.refresh_delegated().await {
                    tracing::warn!(error = %e, "cannot read the relays below");
                }
            }
        }
    }

    /// Write pending sightings and the clock mark.
    async fn flush(&self) {
        let batch = std::mem::take(
            &mut *self
                .sightings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !batch.is_empty()
            && let Err(e) = self.store.record_instances(&batch).await
        {
            tracing::warn!(error = %e, "cannot record installations");
        }
        let mark = *self
            .mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = self
            .store
            .set_meta("clock_mark", &tessera_protocol::time::format(&mark))
            .await
        {
            tracing::warn!(error = %e, "cannot record the clock mark");
        }
    }

    /// Seats given to relays below, from their shares.
    pub(crate) async fn refresh_delegated(&self) -> Result<()> {
        let mut delegated: HashMap<String, u32> = HashMap::new();
        let Some(held) = self.held() else {
            return Ok(());
        };
        for child in self.store.children().await? {
            let shares: Vec<tessera_protocol::wire::SiteLicense> =
                serde_json::from_str(&child.licenses).unwrap_or_default();
            for share in shares {
                if let Some(l) = held
                    .bundle
                    .licenses
                    .iter()
                    .find(|l| l.license == share.license)
                {
                    *delegated.entry(l.tfp.as_str().to_owned()).or_default() +=
                        share.max_machines.unwrap_or(0);
                }
            }
        }
        self.places.set_delegated(delegated);
        Ok(())
    }
}
