//! Licenses: the rules, and the components that apply them.
//!
//! - [`rules`]: the rules as plain functions with their unit tests (policy
//!   checks, expiry on issue, extensions by renewal basis, the
//!   suspend/reinstate/revoke transition table, seats, "not modified");
//! - [`fields`]: parsing and checking request fields;
//! - [`changes`]: policies, issuing and every change of a license (one
//!   optimistic, audited, pushed change loop);
//! - [`validation`]: the signed answer to `/v1/validate`;
//! - [`push`]: the documents pushed to watchers and the `/v1/watch` streams;
//! - [`metering`]: seats, usage reports, acks and the fleet view;
//! - [`installations`]: the instance limit and sightings;
//! - [`machines`], [`machine_rules`]: activations, leases and their rules;
//!   [`places`]: the places held, as this replica knows them; [`offline`]:
//!   offline activation requests answered; [`sites`]: isolated sites'
//!   relays and their bundles;
//! - [`cache`]: licenses by token hash, shared by the above.
//!
//! [`Components::new`] wires them; each handler takes only the one it
//! needs from the app state. No HTTP and no SQL here.

pub mod cache;
pub mod changes;
pub mod fields;
pub mod import;
pub mod installations;
mod machine_places;
pub mod machine_rules;
pub mod machines;
pub mod metering;
pub mod offline;
pub mod places;
mod products;
pub mod push;
pub mod rules;
pub mod sites;
pub mod trials;
pub mod validation;

use std::sync::Arc;

pub use changes::Changes;
pub use installations::Installations;
pub use machines::Machines;
pub use metering::{Metering, Seats};
pub use push::{Push, Watch};
pub use rules::StateAction;
pub use sites::Sites;
pub use trials::Trials;
pub use validation::{HeldTag, Validation, Validator};

use crate::Limits;
use crate::clock::Clock;
use crate::config::Lifecycle;
use crate::feed::{ChangeFeed, FeedLimits};
use crate::instances::InstanceGate;
use crate::metrics::Metrics;
use crate::signer::DocumentSigner;
use crate::store::Store;

/// What every component shares: the store, the clock, the signer, the
/// caches, the instance gate and the metrics.
#[derive(Debug, Clone)]
pub struct Shared {
    /// All SQL.
    pub store: Arc<Store>,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Signs documents.
    pub signer: Arc<DocumentSigner>,
    /// Licenses by token hash.
    pub cache: Arc<cache::TokenCache>,
    /// Seats in use by license.
    pub seats: Arc<Seats>,
    /// The instance limit and sightings.
    pub installations: Arc<Installations>,
    /// The metrics registry's handles.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// One license, or 404.
    ///
    /// # Errors
    /// 404 when unknown; the store's.
    pub async fn license(
        &self,
        id: &tessera_protocol::LicenseId,
    ) -> crate::Result<crate::model::License> {
        self.store
            .license(id)
            .await?
            .ok_or_else(|| crate::Error::not_found("license", id.as_str()))
    }
}

/// The license components, wired to one store, signer and clock.
#[derive(Debug, Clone)]
pub struct Components {
    /// Policies, issuing, changes.
    pub changes: Arc<Changes>,
    /// Validation.
    pub validator: Arc<Validator>,
    /// Push and streams.
    pub push: Arc<Push>,
    /// Metering and the fleet.
    pub metering: Arc<Metering>,
    /// Machines: activations and leases.
    pub machines: Arc<Machines>,
    /// What they share.
    pub shared: Shared,
}

impl Components {
    /// Wire the components over `store`, signing with `signer`.
    #[must_use]
    pub fn new(
        store: &Arc<Store>,
        signer: &Arc<DocumentSigner>,
        clock: &Arc<dyn Clock>,
        limits: &Limits,
        lifecycle: &Lifecycle,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let gate = InstanceGate::new(
            store.clone(),
            limits.max_instances_per_license,
            limits.instance_active_window,
        );
        let shared = Shared {
            store: store.clone(),
            clock: clock.clone(),
            signer: signer.clone(),
            cache: Arc::new(cache::TokenCache::new(
                store.clone(),
                limits.license_cache_entries,
            )),
            seats: Arc::new(Seats::new(
                store.clone(),
                clock.clone(),
                lifecycle.usage_window,
                limits.license_cache_entries,
            )),
            installations: Arc::new(Installations::new(
                store.clone(),
                clock.clone(),
                metrics.clone(),
                gate,
            )),
            metrics,
        };
        let feed = Arc::new(ChangeFeed::new(FeedLimits {
            per_license: limits.max_watchers_per_license,
            total: limits.max_watchers,
        }));
        let push = Arc::new(Push::new(&shared, feed));
        let machines = Arc::new(Machines::new(&shared, push.clone()));
        Self {
            changes: Arc::new(Changes::new(&shared, push.clone())),
            validator: Arc::new(Validator::new(&shared, machines.clone())),
            machines,
            metering: Arc::new(Metering::new(
                &shared,
                push.clone(),
                lifecycle.clone(),
                limits.instance_retention,
            )),
            push,
            shared,
        }
    }
}
