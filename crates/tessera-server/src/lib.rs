//! The Tessera license authority.
//!
//! It issues, extends, suspends and revokes license tokens, and answers
//! validations with Ed25519-signed status documents. The binary lives in
//! `tessera-cli` (`tessera server`); this crate is the library it calls:
//! [`Server::open`] prepares everything (data directory, keys, database),
//! [`Server::serve`] runs the HTTP API until shutdown.
//!
//! Modules:
//! - [`config`]: configuration and limits;
//! - [`datadir`]: the data directory, its lock and secret files;
//! - [`store`]: all SQL ([`store::Store`], SQLite and PostgreSQL);
//! - [`licenses`]: the rules (issue, extend, suspend, revoke, validate);
//! - [`status`]: what a document says, as pure functions;
//! - [`signer`]: signing documents, once per revision where possible;
//! - [`feed`]: the change feed behind `/v1/watch`;
//! - [`instances`]: batching installation sightings;
//! - [`auth`]: admin keys and console sessions;
//! - [`scheduler`]: expiry horizons and automatic renewal;
//! - [`webhooks`]: webhook endpoints and the outbox dispatcher;
//! - [`metrics`]: Prometheus metrics in a registry per server;
//! - [`http`]: routers, extractors, the error mapping;
//! - [`clock`]: the injected clock.

pub mod access;
pub mod auth;
pub mod clock;
pub mod config;
pub mod datadir;
mod error;
pub mod feed;
pub mod http;
pub mod instances;
pub mod keygen;
pub mod licenses;
pub mod metrics;
pub mod model;
pub mod scheduler;
pub mod secrets;
pub mod signer;
pub mod status;
pub mod store;
mod tasks;
pub mod webhooks;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tessera_protocol::{AdminKey, PublicKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Lifecycle, Limits, ServerConfig};
pub use error::{Error, Result};

use crate::auth::AdminAuth;
use crate::datadir::DataDir;
use crate::licenses::Components;
use crate::secrets::SecretBox;
use crate::signer::DocumentSigner;
use crate::store::Store;
use crate::tasks::{REPLICA_ALIVE_SECS, Replica, background_tasks, lifecycle_tasks, replica_tasks};

/// What start-up did, for the banner.
#[derive(Debug, Clone)]
pub struct Startup {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Database description (path or URL without password).
    pub database: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// This process's replica id.
    pub replica: String,
    /// Signing key file.
    pub signing_key_path: PathBuf,
    /// Whether the signing key was created now.
    pub signing_key_created: bool,
    /// Bootstrap admin key file.
    pub admin_key_path: PathBuf,
    /// Whether the admin key was created now.
    pub admin_key_created: bool,
    /// The public key clients pin.
    pub public_key: PublicKey,
}

/// A prepared authority, ready to serve.
pub struct Server {
    startup: Startup,
    config: ServerConfig,
    licenses: Components,
    trials: Arc<licenses::Trials>,
    sites: Arc<licenses::Sites>,
    webhooks: Arc<webhooks::Webhooks>,
    signer: Arc<DocumentSigner>,
    admin: Arc<AdminAuth>,
    store: Arc<Store>,
    _data_dir: DataDir,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

/// Make sure the bootstrap admin key exists: on a fresh database, register
/// the key in `admin.key` (creating the file if needed).
async fn ensure_admin_key(
    store: &Store,
    data_dir: &DataDir,
    now: tessera_protocol::Timestamp,
) -> Result<bool> {
    let path = data_dir.file(DataDir::ADMIN_KEY);
    let file_key = if path.exists() {
        let text = datadir::read_secret_file(&path)?;
        Some(
            AdminKey::parse(&text)
                .map_err(|e| Error::Config(format!("admin key file {}: {e}", path.display())))?,
        )
    } else {
        None
    };
    let stored = store.admin_keys().await?;
    let mut created = false;
    let key = match file_key {
        Some(key) => key,
        None if stored.is_empty() => {
            let key = AdminKey::generate(&mut rand::rng());
            datadir::write_secret_file(&path, key.expose_secret())?;
            created = true;
            key
        }
        None => return Ok(false),
    };
    let hash = key.hash();
    if !stored.iter().any(|k| k.hash == hash) {
        let name = if stored.iter().any(|k| k.principal.name == "admin") {
            format!("admin-{}", key.last4())
        } else {
            "admin".to_owned()
        };
        let key = crate::store::AdminKeyRecord {
            principal: access::Principal::admin(&name),
            hash,
            created_at: now,
        };
        store.insert_admin_key(&key, None).await?;
    }
    Ok(created)
}

/// Webhook secrets stored before they were encrypted are sealed now.
async fn seal_plain_secrets(store: &Store, secrets: &SecretBox) -> Result<()> {
    for w in store.webhooks().await? {
        if !SecretBox::is_sealed(&w.secret.0) {
            store
                .set_webhook_secret(&w.id, &secrets.seal(&w.secret.0)?)
                .await?;
            tracing::info!(webhook = %w.id, "sealed a webhook secret stored in clear");
        }
    }
    Ok(())
}

fn new_replica_id() -> String {
    let bytes: [u8; 6] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("r-{hex}")
}

/// Replicas that sign with different keys produce documents that clients
/// pinning one key reject: say so loudly at start.
async fn check_replica_keys(
    store: &Store,
    kid: &str,
    now: tessera_protocol::Timestamp,
) -> Result<()> {
    let since = now - chrono::Duration::seconds(REPLICA_ALIVE_SECS);
    let others: Vec<String> = store
        .live_replicas(since)
        .await?
        .into_iter()
        .filter(|(_, k)| k != kid)
        .map(|(id, k)| format!("{id} (key {k})"))
        .collect();
    if !others.is_empty() {
        tracing::error!(
            this_key = kid,
            others = %others.join(", "),
            "replicas sign with different keys: give every replica the same --signing-key-file"
        );
    }
    Ok(())
}

impl Server {
    /// Prepare: data directory (locked), signing key, database with
    /// migrations, bootstrap admin key. Nothing listens yet.
    ///
    /// # Errors
    /// Any start-up problem, explained.
    pub async fn open(config: ServerConfig) -> Result<Self> {
        config.validate()?;
        let data_dir = DataDir::open(&config.data_dir)?;
        let (signing_key_path, may_create) = match &config.signing_key_file {
            Some(path) => (path.clone(), false),
            None => (data_dir.file(DataDir::SIGNING_KEY), true),
        };
        let (key, signing_key_created) =
            datadir::load_or_create_signing_key(&signing_key_path, may_create)?;
        let replica = new_replica_id();
        let (store, database): (Arc<Store>, String) = match &config.database_url {
            Some(url) => (
                Arc::new(Store::postgres(url, replica.clone()).await?),
                store::postgres::redacted(url),
            ),
            None => {
                let path = data_dir.file(DataDir::DATABASE);
                (
                    Arc::new(Store::sqlite(&path, replica.clone()).await?),
                    path.display().to_string(),
                )
            }
        };
        let now = config.clock.now();
        let admin_key_created = ensure_admin_key(store.as_ref(), &data_dir, now).await?;
        store.startup_cleanup().await?;
        check_replica_keys(store.as_ref(), key.kid().as_str(), now).await?;
        store.heartbeat(key.kid().as_str(), now).await?;
        let admin = Arc::new(AdminAuth::new(store.clone(), config.clock.clone()));
        let public_key = key.public_key().clone();
        let retired = datadir::load_retired_keys(&signing_key_path)?;
        let signer = Arc::new(
            DocumentSigner::new(
                key,
                config.limits.document_reuse,
                config.limits.document_cache_entries,
            )
            .with_retired(retired),
        );
        let secrets = Arc::new(match &config.secrets_key_file {
            Some(path) => SecretBox::load_or_create(path, false)?,
            None => SecretBox::load_or_create(&data_dir.file(DataDir::SECRETS_KEY), true)?,
        });
        seal_plain_secrets(store.as_ref(), &secrets).await?;
        let chained = store.chain_events().await?;
        if chained > 0 {
            tracing::info!(events = chained, "audit events hashed into the chain");
        }
        let licenses = Components::new(
            &store,
            &signer,
            &config.clock,
            &config.limits,
            &config.lifecycle,
        );
        let trials = Arc::new(licenses::Trials::new(
            &licenses.shared,
            licenses.changes.clone(),
            licenses.validator.clone(),
            secrets.clone(),
            config.limits.trials_per_ip_per_hour,
        ));
        let sites = Arc::new(licenses::Sites::new(&licenses.shared));
        let webhooks = Arc::new(webhooks::Webhooks::new(
            store.clone(),
            config.clock.clone(),
            secrets,
            config.lifecycle.clone(),
            licenses.shared.metrics.clone(),
        ));
        Ok(Self {
            startup: Startup {
                data_dir: data_dir.path().to_owned(),
                database,
                backend: store.backend(),
                replica,
                signing_key_path,
                signing_key_created,
                admin_key_path: data_dir.file(DataDir::ADMIN_KEY),
                admin_key_created,
                public_key,
            },
            config,
            licenses,
            trials,
            sites,
            webhooks,
            signer,
            admin,
            store,
            _data_dir: data_dir,
        })
    }

    /// What start-up did.
    #[must_use]
    pub fn startup(&self) -> &Startup {
        &self.startup
    }

    /// Serve on `listener` until `shutdown` completes, then stop accepting,
    /// let in-flight requests finish, write pending instance sightings and
    /// close the database.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let limiter =
            http::ratelimit::IpRateLimiter::new(self.config.rate_limit_per_minute).map(Arc::new);
        // Cancelled at the shutdown signal: ends background tasks and change
        // streams, so in-flight requests can drain.
        let cancel = CancellationToken::new();
        let state = http::AppState::new(http::Parts {
            changes: self.licenses.changes.clone(),
            validator: self.licenses.validator.clone(),
            push: self.licenses.push.clone(),
            metering: self.licenses.metering.clone(),
            machines: self.licenses.machines.clone(),
            keygen: Arc::new(keygen::Keygen::new(
                &self.licenses.shared,
                self.licenses.machines.clone(),
            )),
            trials: self.trials.clone(),
            sites: self.sites.clone(),
            metrics: self.licenses.shared.metrics.clone(),
            webhooks: self.webhooks.clone(),
            signer: self.signer.clone(),
            store: self.store.clone(),
            clock: self.config.clock.clone(),
            admin: self.admin.clone(),
            sessions: Arc::new(auth::Sessions::new(
                self.store.clone(),
                self.config.clock.clone(),
                chrono::Duration::hours(8),
            )),
            limiter: limiter.clone(),
            auth_failures: http::AuthFailures(
                http::ratelimit::IpRateLimiter::new(
                    self.config.limits.admin_auth_failures_per_minute,
                )
                .map(Arc::new),
            ),
            watch_slots: Arc::new(http::WatchSlots::new(
                self.config.limits.max_watchers_per_ip,
            )),
            trusted_proxies: Arc::new(http::client::TrustedProxies::new(
                self.config.trusted_proxies.clone(),
            )),
            limits: self.config.limits,
            shutdown: cancel.clone(),
        });
        let background = tokio::spawn(background_tasks(
            self.licenses.shared.installations.clone(),
            self.store.clone(),
            self.config.clock.clone(),
            limiter,
            self.config.instance_flush_interval,
            cancel.clone(),
        ));
        let replicas = tokio::spawn(replica_tasks(
            Replica {
                store: self.store.clone(),
                push: self.licenses.push.clone(),
                machines: self.licenses.machines.clone(),
                clock: self.config.clock.clone(),
                clock_sync: self.config.clock_sync,
                kid: self.startup.public_key.kid().to_string(),
            },
            cancel.clone(),
        ));
        let scheduler = scheduler::Scheduler {
            store: self.store.clone(),
            clock: self.config.clock.clone(),
            changes: self.licenses.changes.clone(),
            metering: self.licenses.metering.clone(),
            metrics: self.licenses.shared.metrics.clone(),
        };
        let lifecycle = tokio::spawn(lifecycle_tasks(
            scheduler,
            self.licenses.machines.clone(),
            self.webhooks.clone(),
            self.config.lifecycle.clone(),
            cancel.clone(),
        ));
        let trusted = state.trusted_proxies.clone();
        let app = http::router(state);
        let stop = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing requests");
            stop.cancel();
        });
        let result = http::serve::serve(
            listener,
            app,
            self.config.limits,
            trusted,
            cancel.clone(),
            http::SHUTDOWN_GRACE,
        )
        .await;
        cancel.cancel();
        let _ = background.await;
        let _ = replicas.await;
        let _ = lifecycle.await;
        if let Err(e) = self.licenses.machines.flush_heartbeats().await {
            tracing::warn!(error = %e, "could not write heartbeats at shutdown");
        }
        if let Err(e) = self.licenses.shared.installations.recorder().flush().await {
            tracing::warn!(error = %e, "could not write instance sightings at shutdown");
        }
        self.store.close().await;
        result.map_err(|e| Error::Io {
            context: "serving failed on",
            path: PathBuf::from("listener"),
            source: e,
        })
    }
}

/// Open and serve: what tests and embedders call.
///
/// # Errors
/// As [`Server::open`] and [`Server::serve`].
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Server::open(config).await?.serve(listener, shutdown).await
}
