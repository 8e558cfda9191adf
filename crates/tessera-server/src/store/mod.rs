//! Storage: every SQL statement of the authority lives below this module.
//!
//! [`LicenseStore`] is what the rest of the server sees; [`sqlite`] is the
//! embedded default, [`postgres`] the backend for many replicas. Both share
//! one implementation of the trait (`sql::impl_license_store!`). Every license change goes through
//! [`LicenseStore::apply_change`], which bumps the revision and appends the
//! audit event in one transaction, and only if nobody changed the license in
//! between.

pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

use async_trait::async_trait;
use tessera_protocol::wire::{DeliveryView, EventView, UsageDay};
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use crate::error::Result;
use crate::model::{Attempt, DueDelivery, Webhook};
use crate::model::{
    Customer, EventFilter, Instance, InstanceSeen, License, LicenseChange, LicenseFilter,
    LicenseSearch, NewEvent, NewLicense, NewPolicy, Overview, Policy, Session,
};

/// An administrator key as stored (hash only).
#[derive(Debug, Clone)]
pub struct AdminKeyRecord {
    /// Its name: the actor in audit events.
    pub name: String,
    /// SHA-256 of the key.
    pub hash: TokenHash,
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
    /// Notifications may have been lost (the listener reconnected): re-read
    /// everything held.
    Resync,
}

/// A held job lock. Release it with [`JobLock::release`]; dropping it
/// closes the connection that holds it, which releases it too.
#[derive(Debug, Default)]
pub struct JobLock {
    held: Option<(sqlx::pool::PoolConnection<sqlx::Postgres>, i64)>,
}

impl JobLock {
    /// A lock that needs no release (SQLite).
    #[must_use]
    pub fn local() -> Self {
        Self::default()
    }

    pub(crate) fn advisory(conn: sqlx::pool::PoolConnection<sqlx::Postgres>, key: i64) -> Self {
        Self {
            held: Some((conn, key)),
        }
    }

    /// Release the lock.
    pub async fn release(mut self) {
        if let Some((mut conn, key)) = self.held.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases every lock it holds.
                drop(conn.detach());
            }
        }
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some((conn, _)) = self.held.take() {
            // Never hand a connection holding a lock back to the pool.
            drop(conn.detach());
        }
    }
}

/// The authority's storage.
#[async_trait]
pub trait LicenseStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and the banner.
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;

    /// Admin keys not revoked.
    async fn admin_keys(&self) -> Result<Vec<AdminKeyRecord>>;

    /// Register an admin key by its hash.
    async fn insert_admin_key(&self, name: &str, hash: &TokenHash, now: Timestamp) -> Result<()>;

    /// Create a policy and its audit event.
    async fn create_policy(&self, policy: &NewPolicy, event: NewEvent) -> Result<Policy>;

    /// All policies by name.
    async fn policies(&self) -> Result<Vec<Policy>>;

    /// One policy by name.
    async fn policy_by_name(&self, name: &str) -> Result<Option<Policy>>;

    /// All customers by name.
    async fn customers(&self) -> Result<Vec<Customer>>;

    /// Insert a license (creating its customer if new) with its audit event.
    async fn insert_license(&self, license: &NewLicense, event: NewEvent) -> Result<License>;

    /// One license by id.
    async fn license(&self, id: &LicenseId) -> Result<Option<License>>;

    /// One license by token hash.
    async fn license_by_token_hash(&self, hash: &TokenHash) -> Result<Option<License>>;

    /// Licenses matching a filter, in id (= creation) order.
    async fn licenses(&self, filter: &LicenseFilter) -> Result<Vec<License>>;

    /// Apply a change if the license is still at `change.expected_revision`:
    /// revision + 1 and the audit event, in one transaction. `None` when the
    /// license moved on meanwhile (the caller re-reads and retries).
    async fn apply_change(&self, change: &LicenseChange) -> Result<Option<License>>;

    /// Append an audit event that changes no license (e.g. an export).
    async fn append_event(&self, license: Option<(&LicenseId, u64)>, event: NewEvent)
    -> Result<()>;

    /// Audit events, newest first unless `filter.after` is set.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>>;

    /// Record installations seen (batched by the caller).
    async fn record_instances(&self, seen: &[InstanceSeen]) -> Result<()>;

    /// Store a console session.
    async fn create_session(&self, session: &Session) -> Result<()>;

    /// A session by id hash, if it has not expired at `now`.
    async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>>;

    /// End a session.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    /// Forget expired sessions; how many.
    async fn purge_sessions(&self, now: Timestamp) -> Result<u64>;

    /// Counts at `now`, with active licenses expiring within each horizon.
    async fn overview(&self, now: Timestamp, horizons: &[chrono::Duration]) -> Result<Overview>;

    /// The console's search, newest first; the page and the total.
    async fn search_licenses(&self, q: &LicenseSearch) -> Result<(Vec<License>, i64)>;

    /// This replica is alive (and signs with key `kid`).
    async fn heartbeat(&self, kid: &str, now: Timestamp) -> Result<()>;

    /// Replicas whose heartbeat is at or after `since`: (id, kid).
    async fn live_replicas(&self, since: Timestamp) -> Result<Vec<(String, String)>>;

    /// Mark closed the streams held by replicas not alive since `alive_since`;
    /// how many.
    async fn reap_streams(&self, alive_since: Timestamp) -> Result<u64>;

    /// Work at start: SQLite (one process per file) marks every stream
    /// closed; PostgreSQL leaves that to the reaper.
    async fn startup_cleanup(&self) -> Result<()>;

    /// Take the lock of a job that must run on one replica at a time
    /// (a PostgreSQL advisory lock; always granted on SQLite, where one
    /// process owns the file). `None` when another replica holds it.
    async fn try_job_lock(&self, job: &str) -> Result<Option<JobLock>>;

    /// Changes committed by other replicas (PostgreSQL `LISTEN`), once.
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>>;

    /// Close the connections.
    async fn close(&self);

    /// Installations of one license, most recently seen first: `limit`
    /// of them after skipping `offset`.
    async fn instances(
        &self,
        license: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Instance>>;

    /// The fleet's counts: all known, holding `revision`, connected, and
    /// seen at or after `active_since`.
    async fn fleet_counts(
        &self,
        license: &LicenseId,
        revision: u64,
        active_since: Timestamp,
    ) -> Result<crate::model::FleetCounts>;

    /// Installations of `license` seen at or after `since`, and whether
    /// `instance` is one of them.
    async fn instance_admission(
        &self,
        license: &LicenseId,
        instance: &str,
        since: Timestamp,
    ) -> Result<(u64, bool)>;

    /// Delete installations last seen before `before`; how many.
    async fn prune_instances(&self, before: Timestamp) -> Result<u64>;

    // ----- lifecycle --------------------------------------------------------

    /// Active licenses expiring at or before `until` for which `horizon`
    /// has not yet been recorded at their current expiry; at most `limit`.
    async fn horizon_due(
        &self,
        horizon: &str,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<License>>;

    /// Record that `license` reached `horizon` for its expiry `expires_at`,
    /// with `event` (or silently, when a narrower horizon spoke for it) in
    /// the same transaction. `false` when it was already recorded.
    async fn fire_horizon(
        &self,
        license: &License,
        horizon: &str,
        event: Option<NewEvent>,
    ) -> Result<bool>;

    /// Active auto-renewing licenses inside their renew-before window at `now`.
    async fn auto_renew_due(&self, now: Timestamp, limit: u32) -> Result<Vec<License>>;

    /// Create a webhook endpoint and its audit event.
    async fn create_webhook(&self, webhook: &Webhook, event: NewEvent) -> Result<()>;

    /// Webhook endpoints not removed, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// Remove a webhook (pending deliveries to it stop); `false` if unknown.
    async fn remove_webhook(&self, id: &str, event: NewEvent) -> Result<bool>;

    /// Replace a webhook's stored (sealed) secret.
    async fn set_webhook_secret(&self, id: &str, sealed: &str) -> Result<()>;

    /// Pending deliveries due at `now`, oldest first.
    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DueDelivery>>;

    /// Log an attempt and move its delivery on, in one transaction.
    async fn record_attempt(&self, attempt: &Attempt) -> Result<()>;

    /// Deliveries of one webhook, newest first.
    async fn deliveries(&self, webhook: &str, limit: u32) -> Result<Vec<DeliveryView>>;

    /// Highest user count reported by an instance of `license` seen since `since`.
    async fn seats_in_use(&self, license: &LicenseId, since: Timestamp) -> Result<Option<u32>>;

    /// Daily maxima of reported users, newest first.
    async fn usage_days(&self, license: &LicenseId, limit: u32) -> Result<Vec<UsageDay>>;
}
