//! Metering and the fleet: seats in use, usage reports, acknowledgements,
//! the installations of a license, and the gauges read from the database.

mod quotas;

use std::sync::Arc;

use chrono::Duration;
use tessera_protocol::wire::{AckRequest, UsageRequest, UsageView};
use tessera_protocol::{InstanceId, LicenseId, Timestamp};

use super::Shared;
use super::cache::parse_credential;
use super::push::Push;
use super::rules;
use crate::clock::Clock;
use crate::config::Lifecycle;
use crate::error::{Error, Result, TOKEN_CREDENTIAL};
use crate::model::{Fleet, FleetSummary, Instance, InstanceSeen, License, Overview};
use crate::store::Store;

/// License → seats in use (highest user count reported by an instance seen
/// within the usage window; `None`: no report, also cached so a license
/// without metering costs no query per validation). Metering data, not
/// license data: it may lag other replicas' reports by its minute of life,
/// and a report to this replica updates it at once.
pub struct Seats {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    window: Duration,
    cache: moka::sync::Cache<LicenseId, Option<u32>>,
}

impl std::fmt::Debug for Seats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seats").finish_non_exhaustive()
    }
}

impl Seats {
    /// Seats counted over `window`, at most `entries` licenses cached.
    #[must_use]
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, window: Duration, entries: u64) -> Self {
        Self {
            store,
            clock,
            window,
            cache: moka::sync::Cache::builder()
                .max_capacity(entries)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    /// The window seats are counted over.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Take `in_use`, as just read with the license over [`Seats::window`],
    /// unless the cache holds a figure already.
    pub fn prime(&self, license: &LicenseId, in_use: Option<u32>) {
        self.cache.entry_by_ref(license).or_insert(in_use);
    }

    /// Seats in use for `license`, from the cache or the store.
    ///
    /// # Errors
    /// The store's.
    pub async fn in_use(&self, license: &LicenseId) -> Result<Option<u32>> {
        if let Some(n) = self.cache.get(license) {
            return Ok(n);
        }
        let since = self.clock.now() - self.window;
        let n = self.store.seats_in_use(license, since).await?;
        self.cache.insert(license.clone(), n);
        Ok(n)
    }

    /// Whether the instances report more users than the license allows.
    /// A metering read that fails says "not exceeded": it never blocks a
    /// validation.
    pub async fn exceeded(&self, license: &License) -> bool {
        let Some(max) = license.max_users else {
            return false;
        };
        match self.in_use(&license.id).await {
            Ok(n) => rules::seats_exceeded(Some(max), n),
            Err(e) => {
                tracing::warn!(license = %license.id, error = %e, "cannot read seats in use");
                false
            }
        }
    }

    /// As [`Seats::exceeded`], from the cache only (signing a push must not
    /// wait for the database).
    #[must_use]
    pub fn exceeded_cached(&self, license: &License) -> bool {
        rules::seats_exceeded(license.max_users, self.cache.get(&license.id).flatten())
    }

    fn forget(&self, license: &LicenseId) {
        self.cache.invalidate(license);
    }
}

/// Usage reports, acknowledgements and the fleet view.
#[derive(Debug)]
pub struct Metering {
    shared: Shared,
    push: Arc<Push>,
    lifecycle: Lifecycle,
    instance_retention: Duration,
    /// When installations were last pruned (at most hourly).
    last_prune: std::sync::Mutex<Option<Timestamp>>,
    /// Consumption reports, counted in batches.
    ledger: Arc<quotas::Ledger>,
}

impl Metering {
    /// Metering over the shared parts; a crossed seat limit is pushed
    /// through `push`.
    #[must_use]
    pub fn new(
        shared: &Shared,
        push: Arc<Push>,
        lifecycle: Lifecycle,
        instance_retention: Duration,
    ) -> Self {
        Self {
            shared: shared.clone(),
            push,
            lifecycle,
            instance_retention,
            last_prune: std::sync::Mutex::new(None),
            ledger: Arc::default(),
        }
    }

    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// The license and instance of a report (ack, usage): 401 for a
    /// malformed or unknown token, 400 for a bad instance id.
    async fn reporter(&self, token: &str, instance_id: &str) -> Result<(Arc<License>, InstanceId)> {
        let hash = parse_credential(token, TOKEN_CREDENTIAL)?;
        let instance_id = InstanceId::parse(instance_id)?;
        let license = self.shared.cache.known(&hash, TOKEN_CREDENTIAL).await?;
        self.shared
            .installations
            .require_admitted(&license, &instance_id)
            .await?;
        Ok((license, instance_id))
    }

    /// An instance reports the revision it holds (after applying a pushed or
    /// polled document); shown in the fleet view.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token; 400 for a bad instance id;
    /// 422 for a revision that does not exist yet.
    pub async fn ack(&self, req: AckRequest) -> Result<()> {
        let (license, instance_id) = self.reporter(&req.token, &req.instance_id).await?;
        if req.revision > license.revision {
            return Err(Error::unprocessable(
                "revision_from_the_future",
                format!(
                    "revision {} does not exist yet (current {})",
                    req.revision, license.revision
                ),
            ));
        }
        self.shared
            .installations
            .note(InstanceSeen {
                held_revision: Some(req.revision),
                ..InstanceSeen::new(
                    license.id.clone(),
                    instance_id.as_str().to_owned(),
                    self.now(),
                )
            })
            .await
    }

    /// `POST /v1/usage`: record an instance's user count (latest and the
    /// day's maximum). When the license crosses its seat limit either way,
    /// its watchers get a fresh document with `seats_exceeded`.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token, 400 for a bad instance id.
    pub async fn report_usage(&self, req: UsageRequest) -> Result<UsageView> {
        let (license, instance_id) = self.reporter(&req.token, &req.instance_id).await?;
        let before = self.shared.seats.exceeded(&license).await;
        self.shared.installations.recorder().note(InstanceSeen {
            users: Some(req.users),
            ..InstanceSeen::new(
                license.id.clone(),
                instance_id.as_str().to_owned(),
                self.now(),
            )
        });
        // Reports are rare (every 15 minutes per instance): write now, so
        // the fleet view and the seat count are current.
        self.shared.installations.recorder().flush().await?;
        self.shared.seats.forget(&license.id);
        let usage = self.usage_of(&license, 0).await?;
        if usage.seats_exceeded != before {
            tracing::info!(license = %license.id, exceeded = usage.seats_exceeded, "seat limit crossed");
            self.push.publish_same_revision(&license);
        }
        Ok(usage)
    }

    /// A license's metering: seats now and the last `days` daily maxima.
    ///
    /// # Errors
    /// 404 unknown license; the store's.
    pub async fn usage(&self, id: &LicenseId, days: u32) -> Result<UsageView> {
        self.usage_of(&self.shared.license(id).await?, days).await
    }

    async fn usage_of(&self, license: &License, days: u32) -> Result<UsageView> {
        let seats_in_use = self.shared.seats.in_use(&license.id).await?;
        let days = if days == 0 {
            Vec::new()
        } else {
            self.shared.store.usage_days(&license.id, days).await?
        };
        Ok(UsageView {
            license: license.id.to_string(),
            max_users: license.max_users,
            seats_in_use,
            seats_exceeded: rules::seats_exceeded(license.max_users, seats_in_use),
            days,
        })
    }

    /// Counts for the console's dashboard, of `products` (comma-separated
    /// names; `None`: all).
    ///
    /// # Errors
    /// The store's.
    pub async fn overview(&self, products: Option<&str>) -> Result<Overview> {
        const DASHBOARD: [Duration; 3] = [Duration::days(30), Duration::days(7), Duration::days(1)];
        self.shared.installations.recorder().flush().await?;
        self.shared
            .store
            .overview(self.now(), &DASHBOARD, products)
            .await
    }

    /// Installations of a license (pending sightings written first, so the
    /// answer includes every validation acknowledged so far).
    ///
    /// # Errors
    /// 404 unknown license; the store's.
    pub async fn instances(
        &self,
        id: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Instance>> {
        self.shared.license(id).await?;
        self.shared.installations.recorder().flush().await?;
        self.shared.store.instances(id, limit, offset).await
    }

    /// The fleet view: each installation's held revision and stream, and
    /// "delivered to N of M".
    ///
    /// # Errors
    /// 404 unknown license; the store's.
    pub async fn fleet(&self, id: &LicenseId, limit: u32, offset: u64) -> Result<Fleet> {
        let license = self.shared.license(id).await?;
        let instances = self.instances(id, limit, offset).await?;
        let gate = self.shared.installations.gate();
        let since = self.now() - gate.window();
        let counts = self
            .shared
            .store
            .fleet_counts(id, license.revision, since)
            .await?;
        let usage = self.usage_of(&license, 0).await?;
        let summary = FleetSummary {
            total: counts.total,
            current: counts.current,
            connected: counts.connected,
            active: counts.active,
            max_instances: gate.max(),
            max_users: license.max_users,
            seats_in_use: usage.seats_in_use,
            seats_exceeded: usage.seats_exceeded,
        };
        let shown = u64::try_from(instances.len()).unwrap_or(u64::MAX);
        let next = offset.saturating_add(shown);
        Ok(Fleet {
            license: id.to_string(),
            revision: license.revision,
            instances,
            offset,
            limit,
            next_offset: (next < u64::try_from(counts.total).unwrap_or(u64::MAX)).then_some(next),
            summary,
        })
    }

    /// [`prune_instances`](Self::prune_instances) when an hour passed since
    /// the last time (the scheduler calls this every tick).
    ///
    /// # Errors
    /// The store's.
    pub async fn prune_instances_if_due(&self) -> Result<u64> {
        let now = self.now();
        {
            let mut last = self
                .last_prune
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now - at < Duration::hours(1)) {
                return Ok(0);
            }
            *last = Some(now);
        }
        self.prune_instances().await
    }

    /// Delete installations unseen for longer than the retention; how many.
    ///
    /// # Errors
    /// The store's.
    pub async fn prune_instances(&self) -> Result<u64> {
        let before = self.now() - self.instance_retention;
        let pruned = self.shared.store.prune_instances(before).await?;
        if pruned > 0 {
            tracing::info!(pruned, "deleted installations unseen beyond the retention");
        }
        // Report ids outlive any retry (a client gives a report up after
        // 30 days, §22); the totals themselves are kept.
        let forgotten = self
            .shared
            .store
            .prune_quota_reports(self.now() - quotas::REPORT_RETENTION)
            .await?;
        if forgotten > 0 {
            tracing::debug!(
                forgotten,
                "forgot consumption report ids past their retention"
            );
        }
        Ok(pruned)
    }

    /// Refresh the gauges read from the database (licenses by state,
    /// expiring within each horizon) and this replica's watcher count.
    ///
    /// # Errors
    /// The store's.
    pub async fn refresh_gauges(&self) -> Result<()> {
        let overview = self
            .shared
            .store
            .overview(self.now(), &self.lifecycle.horizons, None)
            .await?;
        for (product, state, n) in &overview.by_product {
            self.shared
                .metrics
                .product_licenses
                .get_or_create(&crate::metrics::ProductStateLabel {
                    product: product.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        for state in ["active", "suspended", "revoked"] {
            let n = overview
                .by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.shared
                .metrics
                .licenses
                .get_or_create(&crate::metrics::StateLabel {
                    state: state.into(),
                })
                .set(n);
        }
        let mut expiring = vec![("expired".to_owned(), overview.expired)];
        expiring.extend(
            overview
                .expiring
                .iter()
                .map(|(h, n)| (crate::scheduler::horizon_label(*h), *n)),
        );
        for (within, n) in expiring {
            self.shared
                .metrics
                .expiring
                .get_or_create(&crate::metrics::HorizonLabel { within })
                .set(n);
        }
        self.shared
            .metrics
            .watchers
            .set(i64::try_from(self.push.feed().watchers()).unwrap_or(i64::MAX));
        Ok(())
    }
}
