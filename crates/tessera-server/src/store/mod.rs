//! Storage: every SQL statement of the authority lives below this module.
//!
//! [`Store`] is what the rest of the server sees: ordinary methods, one
//! file per table or area (`licenses`, `policies`, `events`, `instances`,
//! `auth`, `replicas`, `lifecycle`, `webhooks`). The SQL is the subset
//! SQLite and PostgreSQL share (`$n` parameters, `ON CONFLICT`, `BIGINT`/
//! `INTEGER` as `i64`), run through sqlx's `Any` driver, so it is written
//! once. What differs between the backends — `NOTIFY` in a change's
//! transaction, the event-order lock, job locks, the change listener,
//! start-up cleanup — is the small [`Backend`] trait, implemented in
//! [`sqlite`] and [`postgres`].
//!
//! Every license change goes through [`Store::apply_change`], which bumps
//! the revision and appends the audit event in one transaction, and only if
//! nobody changed the license in between.
//!
//! Why `Any` and its limits: see ARCHITECTURE.md ("The store").

mod auth;
mod events;
mod import;
mod instances;
mod licenses;
mod lifecycle;
mod machines;
mod policies;
pub mod postgres;
mod products;
mod quotas;
mod trials;
pub use trials::TrialRow;
mod replicas;
mod rows;
mod sites;
pub mod sqlite;
pub use licenses::LicenseWithFleet;
pub use sites::SiteRow;
mod webhooks;

pub use machines::{Activation, Decision, HEARTBEAT_GRACE, MachineKey};
use std::fmt::Debug;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use crate::error::Result;

/// An administrator key as stored (hash only).
#[derive(Debug, Clone)]
pub struct AdminKeyRecord {
    /// SHA-256 of the key.
    pub hash: TokenHash,
    /// Its name (the actor in audit events), role, products and expiry.
    pub principal: crate::access::Principal,
    /// Created.
    pub created_at: Timestamp,
}

/// A change another replica committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// A license reached `revision`.
    Changed {
        /// Which license.
        license: LicenseId,
        /// Its new revision.
        revision: u64,
    },
    /// Machines of a license took or gave up places (same revision): its
    /// streams must hear of it, and cached places be read again.
    Machines {
        /// Which license.
        license: LicenseId,
    },
    /// Notifications may have been lost (the listener reconnected): re-read
    /// everything held.
    Resync,
}

/// A held job lock. Release it with [`JobLock::release`]; dropping it
/// without releasing lets the backend clean up (PostgreSQL closes the
/// session that holds it, which releases it).
#[derive(Default)]
pub struct JobLock(Option<Box<dyn HeldLock>>);

impl Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JobLock").field(&self.0.is_some()).finish()
    }
}

/// A backend's lock that must be given back.
pub trait HeldLock: Send {
    /// Give the lock back.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl JobLock {
    /// A lock that needs no release (one process owns the database).
    #[must_use]
    pub fn local() -> Self {
        Self(None)
    }

    /// A lock the backend must release.
    #[must_use]
    pub fn held(lock: Box<dyn HeldLock>) -> Self {
        Self(Some(lock))
    }

    /// Release the lock.
    pub async fn release(mut self) {
        if let Some(lock) = self.0.take() {
            lock.release().await;
        }
    }
}

/// What differs between SQLite and PostgreSQL. Everything else is the
/// shared SQL in the area files.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// `sqlite` or `postgres`, for logs and the banner.
    fn name(&self) -> &'static str;

    /// The rows of a JSON array given as parameter `$1`, as a table whose
    /// column `value` is each element (SQLite `json_each`, PostgreSQL
    /// `jsonb_array_elements`): how a bulk statement takes thousands of
    /// rows in one parameter.
    fn json_rows(&self) -> &'static str;

    /// Tell other replicas of `notice` from inside the change's
    /// transaction (delivered only if it commits).
    async fn notify(&self, tx: &mut AnyConnection, notice: &ChangeNotice) -> Result<()>;

    /// The database's clock, where replicas share it (PostgreSQL), to
    /// measure this replica's offset from it; `None` for SQLite.
    async fn database_now(&self, pool: &AnyPool) -> Result<Option<chrono::DateTime<chrono::Utc>>>;

    /// Called in a transaction before it inserts an event: event sequence
    /// numbers must become visible in their order.
    async fn order_events(&self, tx: &mut AnyConnection) -> Result<()>;

    /// Lock license `id`'s row for the rest of the transaction, so that
    /// activations on it are counted one after another (PostgreSQL: `FOR
    /// UPDATE`; SQLite's single writer already serialises them).
    async fn lock_license(&self, tx: &mut AnyConnection, id: &LicenseId) -> Result<()>;

    /// Work at start (SQLite marks every stream closed; PostgreSQL leaves
    /// that to the reaper).
    async fn startup_cleanup(&self, writer: &AnyPool) -> Result<()>;

    /// Take the lock of a job that must run on one replica at a time;
    /// `None` when another replica holds it.
    async fn try_job_lock(&self, pool: &AnyPool, job: &str) -> Result<Option<JobLock>>;

    /// Changes committed by other replicas, once (`None`: there are none).
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>>;

    /// Before (`true`) and after (`false`) a bulk write on the writer
    /// connection `conn`: SQLite lets its write-ahead log grow longer
    /// between checkpoints meanwhile (see `sqlite.rs`).
    async fn bulk_writes(&self, _conn: &mut AnyConnection, _on: bool) -> Result<()> {
        Ok(())
    }

    /// Stop background work (the listener).
    async fn close(&self);
}

/// The authority's storage.
#[derive(Debug)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    replica: String,
    backend: Box<dyn Backend>,
    /// This replica's clock offset from the database's, in seconds (see
    /// [`Store::sync_clock`]).
    clock_offset: std::sync::atomic::AtomicI64,
}

impl Store {
    /// A store over `writer` (transactions) and `reader` (plain reads; the
    /// same pool where the backend has no read-only replica of its own).
    fn new(writer: AnyPool, reader: AnyPool, replica: String, backend: Box<dyn Backend>) -> Self {
        Self {
            writer,
            reader,
            replica,
            backend,
            clock_offset: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Measure this replica's clock against the database's (PostgreSQL;
    /// nothing on SQLite, where one process owns the data) and keep the
    /// offset, in whole seconds, when it is more than a second and a half: lease
    /// arithmetic ([`Store::lease_time`]) then runs on the database's time,
    /// so replicas whose clocks disagree still agree on when a lease ends.
    /// Returns the offset kept.
    ///
    /// # Errors
    /// The database's.
    pub async fn sync_clock(&self, clock: &dyn crate::clock::Clock) -> Result<chrono::Duration> {
        let sent = std::time::Instant::now();
        let Some(db) = self.backend.database_now(&self.reader).await? else {
            return Ok(chrono::Duration::zero());
        };
        // The database read its clock about half a round trip ago.
        let half_trip = chrono::Duration::from_std(sent.elapsed() / 2).unwrap_or_default();
        let ahead = (db + half_trip - clock.now()).num_milliseconds();
        // The clock reads whole seconds, so it is up to a second behind
        // its own time: that much is truncation, not skew. Beyond it, the
        // offset rounds down, so that lease time is never ahead of the
        // database's.
        let offset = if ahead.abs() > 1_500 {
            ahead.div_euclid(1000)
        } else {
            0
        };
        self.clock_offset
            .store(offset, std::sync::atomic::Ordering::Relaxed);
        Ok(chrono::Duration::seconds(offset))
    }

    /// `local` (this replica's clock) on the database's time, for leases.
    #[must_use]
    pub fn lease_time(&self, local: Timestamp) -> Timestamp {
        local
            + chrono::Duration::seconds(
                self.clock_offset.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    fn writer(&self) -> &AnyPool {
        &self.writer
    }

    fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Every row `query` finds on the reader, as domain values.
    async fn all<'q, R, T>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Any, R, sqlx::any::AnyArguments>,
    ) -> Result<Vec<T>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
        T: TryFrom<R, Error = crate::Error>,
    {
        rows::collect(query.fetch_all(self.reader()).await?)
    }

    fn replica(&self) -> &str {
        &self.replica
    }

    /// `sqlite` or `postgres`, for logs and the banner.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Cheap round trip, for readiness.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }

    /// Work at start: see [`Backend::startup_cleanup`].
    ///
    /// # Errors
    /// The database's.
    pub async fn startup_cleanup(&self) -> Result<()> {
        self.backend.startup_cleanup(&self.writer).await
    }

    /// Take the lock of a job that must run on one replica at a time
    /// (always granted on SQLite, where one process owns the file).
    /// `None` when another replica holds it.
    ///
    /// # Errors
    /// The database's.
    pub async fn try_job_lock(&self, job: &str) -> Result<Option<JobLock>> {
        self.backend.try_job_lock(&self.writer, job).await
    }

    /// Changes committed by other replicas (PostgreSQL `LISTEN`), once.
    #[must_use]
    pub fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>> {
        self.backend.changes()
    }

    /// Close the connections.
    pub async fn close(&self) {
        self.backend.close().await;
        self.writer.close().await;
        self.reader.close().await;
    }
}
