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
    /// Validations per minute per client IP; 0 turns limiting off.
    pub rate_limit_per_minute: u32,
    /// How often instance sightings are written.
    pub instance_flush_interval: StdDuration,
    /// Limits.
    pub limits: Limits,
    /// Scheduled work.
    pub lifecycle: Lifecycle,
    /// The clock (tests inject one).
    pub clock: Arc<dyn Clock>,
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
            rate_limit_per_minute: Self::DEFAULT_RATE_LIMIT,
            instance_flush_interval: StdDuration::from_secs(1),
            limits: Limits::default(),
            lifecycle: Lifecycle::default(),
            clock: Arc::new(SystemClock),
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
        Ok(())
    }
}
