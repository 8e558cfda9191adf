//! Server configuration and limits, validated before anything starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// Bounds on what the server accepts and keeps, with their defaults.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body on public routes. Default 16 KiB.
    pub public_body_bytes: usize,
    /// Largest request body on admin routes. Default 64 KiB.
    pub admin_body_bytes: usize,
    /// Largest page of a list. Default 1,000.
    pub max_page_size: u32,
    /// How long a nonce-less document may be reused for the same license
    /// revision and instance. Default 60 s; zero disables reuse.
    pub document_reuse: Duration,
    /// Signed documents kept for reuse. Default 100,000.
    pub document_cache_entries: u64,
    /// Licenses kept in the token-hash cache. Default 100,000.
    pub license_cache_entries: u64,
    /// Open change streams in all. Default 50,000.
    pub max_watchers: usize,
    /// Open change streams per license. Default 20,000.
    pub max_watchers_per_license: usize,
    /// Keep-alive comment interval on change streams. Default 15 s.
    pub keep_alive: std::time::Duration,
    /// Time allowed for a request's headers, counted from when the server
    /// waits for them (new connection, or a kept-alive one between
    /// requests: so it also closes idle keep-alive connections). Default 20 s.
    pub header_read_timeout: StdDuration,
    /// Time allowed for a whole request body after its headers. Default 30 s.
    pub body_read_timeout: StdDuration,
    /// A connection with no bytes in either direction this long is closed
    /// (change streams send a keep-alive every `keep_alive`). Default 120 s.
    pub idle_timeout: StdDuration,
    /// Open connections in all; lowered at start to fit `RLIMIT_NOFILE`
    /// less 128. Default 16,384.
    pub max_connections: usize,
    /// Open connections from one address (IPv6: one /64; trusted proxies
    /// exempt); never more than 3/4 of `max_connections`. Default 12,000,
    /// so a 10,000-instance fleet behind one NAT address still fits.
    pub max_connections_per_ip: usize,
    /// Open change streams from one client address. Default 11,000.
    pub max_watchers_per_ip: usize,
    /// Failed admin-API authentications allowed per client address and
    /// minute before `429`; 0 = no limit. Default 30.
    pub admin_auth_failures_per_minute: u32,
    /// Trials started (or asked for again) per client address and hour;
    /// 0 = no limit. Default 10.
    pub trials_per_ip_per_hour: u32,
    /// Installations admitted per license at once; past it a new one gets
    /// a signed `instance_limit` refusal. 0 = no limit. Default 10,000.
    pub max_instances_per_license: usize,
    /// Installations unseen this long stop counting towards the limit
    /// (and towards "instances online"). Default 7 d.
    pub instance_active_window: Duration,
    /// Installations unseen this long are deleted. Default 90 d.
    pub instance_retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            public_body_bytes: 16 * 1024,
            admin_body_bytes: 64 * 1024,
            max_page_size: 1_000,
            document_reuse: Duration::seconds(60),
            document_cache_entries: 100_000,
            license_cache_entries: 100_000,
            max_watchers: 50_000,
            max_watchers_per_license: 20_000,
            keep_alive: StdDuration::from_secs(15),
            header_read_timeout: StdDuration::from_secs(20),
            body_read_timeout: StdDuration::from_secs(30),
            idle_timeout: StdDuration::from_secs(120),
            max_connections: 16_384,
            max_connections_per_ip: 12_000,
            max_watchers_per_ip: 11_000,
            admin_auth_failures_per_minute: 30,
            trials_per_ip_per_hour: 10,
            max_instances_per_license: 10_000,
            instance_active_window: Duration::days(7),
            instance_retention: Duration::days(90),
        }
    }
}

/// Scheduled work: expiry horizons, auto-renewal, webhook deliveries.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Expiry horizons that each raise one `license.expiring` event per
    /// license period (plus `license.expired` at the date). Default 30 d,
    /// 7 d, 1 d.
    pub horizons: Vec<Duration>,
    /// How often the scheduler looks. Default 60 s.
    pub scheduler_interval: StdDuration,
    /// How often the webhook dispatcher looks for due deliveries. Default 1 s.
    pub webhook_poll: StdDuration,
    /// Timeout of one delivery attempt. Default 10 s.
    pub webhook_timeout: StdDuration,
    /// How long a delivery is retried before it is marked failed. Default 24 h.
    pub webhook_retry_for: Duration,
    /// Instances count towards seats in use while seen within this. Default 1 d.
    pub usage_window: Duration,
    /// Which webhook targets are allowed. Default: public addresses only.
    pub webhook_targets: crate::webhooks::WebhookTargets,
    /// How often heartbeats are written (in one transaction) and run-out
    /// floating leases ended (and their places announced). Default 0.5 s:
    /// with the 1.5 s grace a lease ends within its TTL + 2 s.
    pub lease_reap_interval: StdDuration,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            horizons: vec![Duration::days(30), Duration::days(7), Duration::days(1)],
            scheduler_interval: StdDuration::from_secs(60),
            webhook_poll: StdDuration::from_secs(1),
            webhook_timeout: StdDuration::from_secs(10),
            webhook_retry_for: Duration::hours(24),
            usage_window: Duration::days(1),
            webhook_targets: crate::webhooks::WebhookTargets::default(),
            lease_reap_interval: StdDuration::from_millis(500),
        }
    }
}

/// Everything `tessera server` is told.
#[derive(Clone)]
pub struct ServerConfig {
    /// Data directory (database, keys). Default `./tessera-data`.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL (many replicas); `None` = SQLite in
    /// the data directory.
    pub database_url: Option<String>,
    /// Signing key file; default `<data dir>/signing.key`, created if missing.
    /// A given file must exist (replicas must share one key, not each make one).
    pub signing_key_file: Option<PathBuf>,
    /// Key file sealing webhook secrets at rest; default
    /// `<data dir>/secrets.key`, created if missing. A given file must
    /// exist (replicas must share one).
    pub secrets_key_file: Option<PathBuf>,
    /// Validations per minute per client IP; 0 turns limiting off.
    pub rate_limit_per_minute: u32,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` headers name the client
    /// (rate limits and per-address caps). Default: none — the TCP peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often instance sightings are written.
    pub instance_flush_interval: StdDuration,
    /// Limits.
    pub limits: Limits,
    /// Scheduled work.
    pub lifecycle: Lifecycle,
    /// The clock (tests inject one).
    pub clock: Arc<dyn Clock>,
    /// Measure this replica's clock against PostgreSQL's and run leases on
    /// the database's time (see `Store::sync_clock`). On by default; tests
    /// that move a clock by hand turn it off.
    pub clock_sync: bool,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url
                    .as_deref()
                    .map(crate::store::postgres::redacted),
            )
            .field("signing_key_file", &self.signing_key_file)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Default validations per minute per IP.
    pub const DEFAULT_RATE_LIMIT: u32 = 600;

    /// Defaults with this data directory.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            signing_key_file: None,
            secrets_key_file: None,
            trusted_proxies: Vec::new(),
            rate_limit_per_minute: Self::DEFAULT_RATE_LIMIT,
            instance_flush_interval: StdDuration::from_secs(1),
            limits: Limits::default(),
            lifecycle: Lifecycle::default(),
            clock: Arc::new(SystemClock),
            clock_sync: true,
        }
    }

    /// Check the whole configuration before anything starts.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad setting.
    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("the data directory must not be empty".into()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(Error::Config(
                "--database-url must be a postgres:// URL (SQLite needs no URL: it lives in the data directory)".into(),
            ));
        }
        if self.instance_flush_interval.is_zero() {
            return Err(Error::Config(
                "the instance flush interval must be positive".into(),
            ));
        }
        if self
            .lifecycle
            .horizons
            .iter()
            .any(|h| *h <= Duration::zero())
        {
            return Err(Error::Config(
                "expiry horizons must be positive durations".into(),
            ));
        }
        if self.lifecycle.scheduler_interval.is_zero() || self.lifecycle.webhook_poll.is_zero() {
            return Err(Error::Config("scheduler intervals must be positive".into()));
        }
        if self.limits.public_body_bytes == 0 || self.limits.admin_body_bytes == 0 {
            return Err(Error::Config("body limits must be positive".into()));
        }
        let l = &self.limits;
        if l.header_read_timeout.is_zero() || l.body_read_timeout.is_zero() {
            return Err(Error::Config("read timeouts must be positive".into()));
        }
        if l.idle_timeout <= l.keep_alive {
            return Err(Error::Config(format!(
                "the idle timeout ({} s) must be longer than the stream keep-alive interval ({} s), \
                 or healthy change streams are cut off",
                l.idle_timeout.as_secs(),
                l.keep_alive.as_secs()
            )));
        }
        if l.instance_active_window <= Duration::zero()
            || l.instance_retention < l.instance_active_window
        {
            return Err(Error::Config(
                "the instance retention must be at least the activity window, both positive".into(),
            ));
        }
        if l.max_connections == 0 || l.max_connections_per_ip == 0 || l.max_watchers_per_ip == 0 {
            return Err(Error::Config(
                "connection and stream limits must be positive".into(),
            ));
        }
        Ok(())
    }
}
