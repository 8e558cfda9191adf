//! Storage: every SQL statement of the authority lives below this module.
//!
//! [`LicenseStore`] is what the rest of the server sees; [`sqlite`] is the
//! embedded default. Every license change goes through
//! [`LicenseStore::apply_change`], which bumps the revision and appends the
//! audit event in one transaction, and only if nobody changed the license in
//! between.

mod rows;
pub mod sqlite;

use async_trait::async_trait;
use tessera_protocol::wire::EventView;
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use crate::error::Result;
use crate::model::{
    Customer, EventFilter, Instance, InstanceSeen, License, LicenseChange, LicenseFilter, NewEvent,
    NewLicense, NewPolicy, Policy,
};

/// An administrator key as stored (hash only).
#[derive(Debug, Clone)]
pub struct AdminKeyRecord {
    /// Its name: the actor in audit events.
    pub name: String,
    /// SHA-256 of the key.
    pub hash: TokenHash,
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

    /// Mark every instance's stream closed (at start: no stream survives a restart).
    async fn reset_stream_flags(&self) -> Result<()>;

    /// Installations of one license, most recently seen first.
    async fn instances(&self, license: &LicenseId) -> Result<Vec<Instance>>;
}
