//! The license service: every rule about policies, licenses and validation.
//! Handlers call it; it calls the store. No HTTP and no SQL here.

mod fields;

use fields::{check_features, check_text, date_field, duration_field, later, lifetime_field};
use std::sync::Arc;

use chrono::Duration;
use moka::ops::compute::Op;
use tessera_protocol::ids::check_nonce;
use tessera_protocol::wire::{
    AckRequest, EventView, ExtendRequest, IssueLicenseRequest, LicenseExport, LicenseState,
    PolicyInput, RenewalBasis, UsageRequest, UsageView, ValidateRequest,
};
use tessera_protocol::{InstanceId, LicenseId, LicenseToken, Timestamp, TokenHash};

use crate::Limits;
use crate::clock::Clock;
use crate::config::Lifecycle;
use crate::error::{Error, Result};
use crate::feed::{ChangeFeed, FeedLimits, Pushed, Subscription};
use crate::instances::{Admission, InstanceGate, InstanceRecorder};
use crate::metrics::Metrics;
use crate::model::{
    Customer, EventFilter, Instance, InstanceSeen, License, LicenseChange, LicenseFilter, NewEvent,
    NewLicense, NewPolicy, Policy,
};
use crate::signer::{DocumentSigner, SignedDocument};
use crate::status::{self, Echo};
use crate::store::LicenseStore;

/// How many times a change is recomputed when another writer (another
/// replica: writers in this process queue on `change_locks`) got there first.
const CHANGE_ATTEMPTS: usize = 8;
/// Stripes of the per-license change lock.
const CHANGE_LOCK_STRIPES: usize = 64;

/// Policies, licenses, validation.
pub struct LicenseService {
    store: Arc<dyn LicenseStore>,
    secrets: Arc<crate::secrets::SecretBox>,
    signer: DocumentSigner,
    clock: Arc<dyn Clock>,
    /// Token hash → license (or "no such license"), kept at the newest
    /// revision seen. Never expired by time alone: changes replace entries
    /// (see `remember`). Caching the misses too keeps a stream of unknown
    /// tokens off the database.
    by_token: moka::sync::Cache<TokenHash, Known>,
    instances: InstanceRecorder,
    /// The per-license instance limit.
    gate: InstanceGate,
    /// Installations unseen this long are deleted.
    instance_retention: Duration,
    /// When installations were last pruned (at most hourly).
    last_prune: std::sync::Mutex<Option<Timestamp>>,
    /// Changes to one license from this process run one at a time, so they
    /// do not starve each other's optimistic check. Striped by license id.
    change_locks: Vec<tokio::sync::Mutex<()>>,
    metrics: Arc<Metrics>,
    feed: Arc<ChangeFeed>,
    lifecycle: Lifecycle,
    /// License → seats in use (highest user count reported by an instance
    /// seen within the usage window; `None`: no report, also cached so a
    /// license without metering costs no query per validation). Metering data, not license data: it
    /// may lag other replicas' reports by its minute of life, and a report
    /// to this replica updates it at once.
    seats: moka::sync::Cache<LicenseId, Option<u32>>,
}

impl std::fmt::Debug for LicenseService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseService").finish_non_exhaustive()
    }
}

/// More seats in use than the limit allows (no limit, or no report: no).
fn exceeds(max_users: Option<u32>, seats_in_use: Option<u32>) -> bool {
    max_users.zip(seats_in_use).is_some_and(|(max, n)| n > max)
}

fn summary_json(license: &License) -> Option<serde_json::Value> {
    serde_json::to_value(license.summary()).ok()
}

impl LicenseService {
    /// A service over `store`, signing with `signer`, reading `clock`.
    #[must_use]
    pub fn new(
        store: Arc<dyn LicenseStore>,
        signer: DocumentSigner,
        clock: Arc<dyn Clock>,
        limits: &Limits,
        lifecycle: Lifecycle,
        secrets: Arc<crate::secrets::SecretBox>,
    ) -> Self {
        Self {
            lifecycle,
            secrets,
            seats: moka::sync::Cache::builder()
                .max_capacity(limits.license_cache_entries)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            instances: InstanceRecorder::new(store.clone()),
            instance_retention: limits.instance_retention,
            last_prune: std::sync::Mutex::new(None),
            gate: InstanceGate::new(
                store.clone(),
                limits.max_instances_per_license,
                limits.instance_active_window,
            ),
            store,
            signer,
            clock,
            by_token: moka::sync::Cache::new(limits.license_cache_entries),
            feed: Arc::new(ChangeFeed::new(FeedLimits {
                per_license: limits.max_watchers_per_license,
                total: limits.max_watchers,
            })),
            metrics: Arc::new(Metrics::default()),
            change_locks: (0..CHANGE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Seals webhook secrets at rest.
    #[must_use]
    pub fn secrets(&self) -> &crate::secrets::SecretBox {
        &self.secrets
    }

    /// Scheduled-work settings.
    #[must_use]
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The store (for readiness checks).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn LicenseStore> {
        &self.store
    }

    /// The signer (for `/v1/keys`).
    #[must_use]
    pub fn signer(&self) -> &DocumentSigner {
        &self.signer
    }

    /// Now, from the injected clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The change feed.
    #[must_use]
    pub fn feed(&self) -> &Arc<ChangeFeed> {
        &self.feed
    }

    /// The instance recorder (flushed by the server's background task).
    #[must_use]
    pub fn instance_recorder(&self) -> &InstanceRecorder {
        &self.instances
    }

    /// Whether `instance` of `license` is admitted; a refusal past the
    /// limit is recorded in the audit log (once an hour per instance).
    ///
    /// # Errors
    /// The store's.
    async fn admit(&self, license: &License, instance: &InstanceId) -> Result<bool> {
        let now = self.now();
        match self
            .gate
            .admit(&license.id, instance.as_str(), now, &self.instances)
            .await?
        {
            Admission::Admitted => Ok(true),
            Admission::Refused { first } => {
                self.metrics.validation("instance_limit");
                if first {
                    tracing::warn!(license = %license.id, instance = instance.as_str(), "instance refused: the license's instance limit is reached");
                    self.store
                        .append_event(
                            Some((&license.id, license.revision)),
                            NewEvent {
                                at: now,
                                actor: "authority".to_owned(),
                                kind: "license.instance_refused",
                                before: None,
                                after: Some(serde_json::json!({
                                    "instance_id": instance.as_str(),
                                    "max_instances": self.gate.max(),
                                })),
                            },
                        )
                        .await?;
                }
                Ok(false)
            }
        }
    }

    /// 403 for an installation past the instance limit (streams, reports).
    async fn require_admitted(&self, license: &License, instance: &InstanceId) -> Result<()> {
        if self.admit(license, instance).await? {
            Ok(())
        } else {
            Err(Error::Forbidden {
                code: "instance_limit",
                message: format!(
                    "the license's limit of {} installations is reached; validate to get the signed refusal",
                    self.gate.max().unwrap_or(0)
                ),
            })
        }
    }

    /// Keep `license` in the token cache unless a newer revision is there.
    fn remember(&self, license: Arc<License>) {
        self.by_token
            .entry(license.token_hash.clone())
            .and_compute_with(|existing| match existing.as_ref().map(|e| e.value()) {
                Some(Known::License(held)) if held.revision >= license.revision => Op::Nop,
                _ => Op::Put(Known::License(license)),
            });
    }

    // ----- policies -------------------------------------------------------

    /// Create a policy.
    ///
    /// # Errors
    /// 422 for invalid fields, 409 when the name is taken.
    pub async fn create_policy(&self, input: PolicyInput, actor: &str) -> Result<Policy> {
        let name = input.name.trim().to_owned();
        check_text("policy name", &name)?;
        let refresh_interval = match &input.refresh_interval {
            Some(t) => duration_field("refresh_interval", t)?,
            None => Policy::DEFAULT_REFRESH_INTERVAL,
        };
        let offline_grace = match &input.offline_grace {
            Some(t) => lifetime_field("offline_grace", t)?,
            None => Policy::DEFAULT_OFFLINE_GRACE,
        };
        if refresh_interval < Duration::minutes(1) {
            return Err(Error::unprocessable(
                "invalid_duration",
                "refresh_interval must be at least 1m",
            ));
        }
        if offline_grace < refresh_interval {
            return Err(Error::unprocessable(
                "invalid_duration",
                "offline_grace must be at least refresh_interval, or clients go stale between refreshes",
            ));
        }
        let duration = input
            .duration
            .as_deref()
            .map(|t| duration_field("duration", t))
            .transpose()?;
        let auto_renew_period = input
            .auto_renew_period
            .as_deref()
            .map(|t| duration_field("auto_renew_period", t))
            .transpose()?;
        if input.auto_renew && auto_renew_period.or(duration).is_none() {
            return Err(Error::unprocessable(
                "invalid_field",
                "auto_renew needs auto_renew_period or a duration",
            ));
        }
        let renew_before = match &input.renew_before {
            Some(t) => duration_field("renew_before", t)?,
            None => Policy::DEFAULT_RENEW_BEFORE,
        };
        if let Some(period) = auto_renew_period.or(duration)
            && input.auto_renew
            && renew_before >= period
        {
            return Err(Error::unprocessable(
                "invalid_duration",
                "renew_before must be shorter than the renewal period, or every renewal would be due at once",
            ));
        }
        let now = self.now();
        let policy = Policy {
            id: format!("pol_{}", uuid::Uuid::now_v7()),
            name,
            duration,
            features: check_features(&input.features)?,
            max_users: input.max_users,
            trial: input.trial,
            refresh_interval,
            offline_grace,
            renewal_basis: input.renewal_basis.unwrap_or_default(),
            auto_renew: input.auto_renew,
            auto_renew_period,
            renew_before,
            created_at: now,
        };
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: "policy.created",
            before: None,
            after: serde_json::to_value(policy.view()).ok(),
        };
        let created = self
            .store
            .create_policy(
                &NewPolicy {
                    id: policy.id.clone(),
                    policy,
                },
                event,
            )
            .await?;
        tracing::info!(policy = %created.name, actor, "policy created");
        Ok(created)
    }

    /// All policies.
    ///
    /// # Errors
    /// The store's.
    pub async fn policies(&self) -> Result<Vec<Policy>> {
        self.store.policies().await
    }

    /// All customers.
    ///
    /// # Errors
    /// The store's.
    pub async fn customers(&self) -> Result<Vec<Customer>> {
        self.store.customers().await
    }

    // ----- licenses -------------------------------------------------------

    /// Issue a license. The token is returned here and never again.
    ///
    /// # Errors
    /// 422 for invalid fields or a missing expiry, 404 for an unknown policy.
    pub async fn issue(
        &self,
        req: IssueLicenseRequest,
        actor: &str,
    ) -> Result<(License, LicenseToken)> {
        let customer = req.customer.trim().to_owned();
        check_text("customer", &customer)?;
        let plan = req.plan.trim().to_owned();
        check_text("plan", &plan)?;
        if let Some(email) = &req.customer_email {
            check_text("customer_email", email)?;
        }
        let policy_name = req.policy.as_deref().unwrap_or(Policy::DEFAULT_NAME);
        let policy = self
            .store
            .policy_by_name(policy_name)
            .await?
            .ok_or_else(|| Error::not_found("policy", policy_name))?;
        let now = self.now();
        let given = usize::from(req.expires_at.is_some())
            + usize::from(req.duration.is_some())
            + usize::from(req.perpetual);
        if given > 1 {
            return Err(Error::unprocessable(
                "conflicting_fields",
                "give at most one of expires_at, duration and perpetual",
            ));
        }
        let expires_at = if let Some(at) = &req.expires_at {
            Some(date_field("expires_at", at)?)
        } else if let Some(d) = &req.duration {
            Some(later("expires_at", now, duration_field("duration", d)?)?)
        } else if req.perpetual {
            None
        } else if let Some(d) = policy.duration {
            Some(later("expires_at", now, d)?)
        } else {
            return Err(Error::unprocessable(
                "expiry_required",
                format!(
                    "policy {:?} has no default duration: give expires_at, duration or perpetual",
                    policy.name
                ),
            ));
        };
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(Error::unprocessable(
                "expiry_in_past",
                "expires_at must be in the future",
            ));
        }
        let features = check_features(req.features.as_deref().unwrap_or(&policy.features))?;
        let token = LicenseToken::generate(&mut rand::rng());
        let id = LicenseId::from_uuid_text(&uuid::Uuid::now_v7().to_string())?;
        let new = NewLicense {
            id,
            token_hash: token.hash(),
            token_last4: token.last4().to_owned(),
            customer,
            customer_email: req.customer_email,
            policy_id: policy.id.clone(),
            plan,
            features,
            max_users: req.max_users.or(policy.max_users),
            trial: req.trial.unwrap_or(policy.trial),
            valid_from: now,
            expires_at,
            auto_renew: req.auto_renew,
        };
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: "license.issued",
            before: None,
            after: serde_json::to_value(crate::model::LicenseSummary {
                state: LicenseState::Active,
                expires_at: expires_at.as_ref().map(tessera_protocol::time::format),
                revision: 1,
            })
            .ok(),
        };
        let license = self.store.insert_license(&new, event).await?;
        tracing::info!(license = %license.id, actor, "license issued");
        self.remember(Arc::new(license.clone()));
        Ok((license, token))
    }

    /// One license.
    ///
    /// # Errors
    /// 404 when unknown.
    pub async fn license(&self, id: &LicenseId) -> Result<License> {
        self.store
            .license(id)
            .await?
            .ok_or_else(|| Error::not_found("license", id.as_str()))
    }

    /// Licenses matching a filter.
    ///
    /// # Errors
    /// The store's.
    pub async fn licenses(&self, filter: &LicenseFilter) -> Result<Vec<License>> {
        self.store.licenses(filter).await
    }

    /// Apply a change computed from the current license, retrying when
    /// another writer changed it in between. Revision +1 and the audit event
    /// commit together.
    async fn change<F>(
        &self,
        id: &LicenseId,
        actor: &str,
        kind: &'static str,
        reason: Option<String>,
        compute: F,
    ) -> Result<License>
    where
        F: Fn(&License, Timestamp) -> Result<(LicenseState, Option<Timestamp>)>,
    {
        if let Some(reason) = &reason {
            check_text("reason", reason)?;
        }
        let stripe = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            BuildHasherDefault::<DefaultHasher>::default().hash_one(id) as usize
                % CHANGE_LOCK_STRIPES
        };
        let _guard = self.change_locks[stripe].lock().await;
        for attempt in 0..CHANGE_ATTEMPTS {
            if attempt > 0 {
                // Another replica won the race: back off a little, with jitter.
                let ms = rand::random_range(1..=10u64 << attempt.min(5));
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let current = self.license(id).await?;
            let now = self.now();
            let (state, expires_at) = compute(&current, now)?;
            let mut after = current.clone();
            after.state = state;
            after.expires_at = expires_at;
            after.revision += 1;
            let change = LicenseChange {
                id: id.clone(),
                expected_revision: current.revision,
                state,
                expires_at,
                event: NewEvent {
                    at: now,
                    actor: actor.to_owned(),
                    kind,
                    before: summary_json(&current),
                    after: summary_json(&after).map(|mut v| {
                        if let (Some(reason), Some(obj)) = (&reason, v.as_object_mut()) {
                            obj.insert("reason".into(), reason.clone().into());
                        }
                        v
                    }),
                },
            };
            if let Some(updated) = self.store.apply_change(&change).await? {
                tracing::info!(license = %id, revision = updated.revision, actor, kind, "license changed");
                self.remember(Arc::new(updated.clone()));
                self.publish(&updated, Some(std::time::Instant::now()));
                return Ok(updated);
            }
        }
        Err(Error::conflict(
            "concurrent_change",
            "the license kept changing under this request; try again",
        ))
    }

    /// Extend: to a date, or by a duration counted by the policy's basis.
    ///
    /// # Errors
    /// 422 for bad input, 409 for a revoked or (with `by` from expiry) perpetual license.
    pub async fn extend(&self, id: &LicenseId, req: ExtendRequest, actor: &str) -> Result<License> {
        let target = Target::parse(&req)?;
        self.change(id, actor, "license.extended", None, |l, now| {
            Ok((l.state, Some(target.new_expiry(l, now)?)))
        })
        .await
    }

    /// Renew `id` automatically if it is (still) due: `None` when it is not,
    /// decided inside the change so two schedulers cannot both renew it.
    ///
    /// # Errors
    /// The store's.
    pub async fn auto_renew(&self, id: &LicenseId) -> Result<Option<License>> {
        const NOT_DUE: &str = "auto_renew_not_due";
        let changed = self
            .change(
                id,
                "scheduler",
                "license.auto_renewed",
                None,
                |l, now| match l.auto_renewal(now) {
                    Some(to) => Ok((l.state, Some(to))),
                    None => Err(Error::conflict(NOT_DUE, "not due")),
                },
            )
            .await;
        match changed {
            Ok(license) => {
                self.metrics.auto_renewal();
                Ok(Some(license))
            }
            Err(Error::Conflict { code, .. }) if code == NOT_DUE => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What `extend` would do now, without doing it (the console's
    /// confirmation page): the license and its new expiry.
    ///
    /// # Errors
    /// As [`LicenseService::extend`].
    pub async fn extend_preview(
        &self,
        id: &LicenseId,
        req: &ExtendRequest,
    ) -> Result<(License, Timestamp)> {
        let target = Target::parse(req)?;
        let license = self.license(id).await?;
        let expiry = target.new_expiry(&license, self.now())?;
        Ok((license, expiry))
    }

    /// Counts for the console's dashboard.
    ///
    /// # Errors
    /// The store's.
    pub async fn overview(&self) -> Result<crate::model::Overview> {
        const DASHBOARD: [Duration; 3] = [Duration::days(30), Duration::days(7), Duration::days(1)];
        self.instances.flush().await?;
        self.store.overview(self.now(), &DASHBOARD).await
    }

    /// The console's license search.
    ///
    /// # Errors
    /// The store's.
    pub async fn search(&self, q: &crate::model::LicenseSearch) -> Result<(Vec<License>, i64)> {
        self.store.search_licenses(q).await
    }

    /// Suspend an active license.
    ///
    /// # Errors
    /// 409 unless active.
    pub async fn suspend(
        &self,
        id: &LicenseId,
        actor: &str,
        reason: Option<String>,
    ) -> Result<License> {
        self.change(id, actor, "license.suspended", reason, |l, _| {
            match l.state {
                LicenseState::Active => Ok((LicenseState::Suspended, l.expires_at)),
                LicenseState::Suspended => Err(Error::conflict(
                    "already_suspended",
                    "the license is already suspended",
                )),
                LicenseState::Revoked => Err(Error::conflict(
                    "license_revoked",
                    "a revoked license cannot be suspended",
                )),
            }
        })
        .await
    }

    /// Reinstate a suspended license.
    ///
    /// # Errors
    /// 409 unless suspended.
    pub async fn reinstate(
        &self,
        id: &LicenseId,
        actor: &str,
        reason: Option<String>,
    ) -> Result<License> {
        self.change(id, actor, "license.reinstated", reason, |l, _| {
            match l.state {
                LicenseState::Suspended => Ok((LicenseState::Active, l.expires_at)),
                LicenseState::Active => Err(Error::conflict(
                    "not_suspended",
                    "the license is not suspended",
                )),
                LicenseState::Revoked => Err(Error::conflict(
                    "license_revoked",
                    "a revoked license cannot be reinstated",
                )),
            }
        })
        .await
    }

    /// Revoke a license. Final.
    ///
    /// # Errors
    /// 409 when already revoked.
    pub async fn revoke(
        &self,
        id: &LicenseId,
        actor: &str,
        reason: Option<String>,
    ) -> Result<License> {
        self.change(id, actor, "license.revoked", reason, |l, _| match l.state {
            LicenseState::Revoked => Err(Error::conflict(
                "already_revoked",
                "the license is already revoked",
            )),
            _ => Ok((LicenseState::Revoked, l.expires_at)),
        })
        .await
    }

    /// A long-lived document for an air-gapped site.
    ///
    /// # Errors
    /// 404 unknown license, 422 bad ttl, 409 revoked.
    pub async fn export(&self, id: &LicenseId, ttl: &str, actor: &str) -> Result<LicenseExport> {
        let ttl = lifetime_field("ttl", ttl)?;
        let license = self.license(id).await?;
        if license.state == LicenseState::Revoked {
            return Err(Error::conflict(
                "license_revoked",
                "a revoked license cannot be exported",
            ));
        }
        let now = self.now();
        let claims = status::license_claims(
            &license,
            license.token_hash.fingerprint(),
            Echo::default(),
            now,
            Some(ttl),
        );
        let document = self.signer.sign(&claims)?;
        self.store
            .append_event(
                Some((&license.id, license.revision)),
                NewEvent {
                    at: now,
                    actor: actor.to_owned(),
                    kind: "license.exported",
                    before: None,
                    after: Some(
                        serde_json::json!({ "exp": tessera_protocol::time::format(&claims.exp) }),
                    ),
                },
            )
            .await?;
        Ok(LicenseExport {
            format: LicenseExport::FORMAT.to_owned(),
            license: license.id.to_string(),
            document,
        })
    }

    /// Audit events.
    ///
    /// # Errors
    /// The store's.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>> {
        self.store.events(filter).await
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
        self.license(id).await?;
        self.instances.flush().await?;
        self.store.instances(id, limit, offset).await
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
        let pruned = self.store.prune_instances(before).await?;
        if pruned > 0 {
            tracing::info!(pruned, "deleted installations unseen beyond the retention");
        }
        Ok(pruned)
    }

    /// The fleet view: each installation's held revision and stream, and
    /// "delivered to N of M".
    ///
    /// # Errors
    /// 404 unknown license; the store's.
    pub async fn fleet(
        &self,
        id: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> Result<crate::model::Fleet> {
        let license = self.license(id).await?;
        let instances = self.instances(id, limit, offset).await?;
        let since = self.now() - self.gate.window();
        let counts = self.store.fleet_counts(id, license.revision, since).await?;
        let usage = self.usage_of(&license, 0).await?;
        let summary = crate::model::FleetSummary {
            total: counts.total,
            current: counts.current,
            connected: counts.connected,
            active: counts.active,
            max_instances: self.gate.max(),
            max_users: license.max_users,
            seats_in_use: usage.seats_in_use,
            seats_exceeded: usage.seats_exceeded,
        };
        let shown = u64::try_from(instances.len()).unwrap_or(u64::MAX);
        let next = offset.saturating_add(shown);
        Ok(crate::model::Fleet {
            license: id.to_string(),
            revision: license.revision,
            instances,
            offset,
            limit,
            next_offset: (next < u64::try_from(counts.total).unwrap_or(u64::MAX)).then_some(next),
            summary,
        })
    }

    // ----- push ------------------------------------------------------------

    /// The document pushed to every watcher of `license` at its revision:
    /// no instance id, no nonce, so one signature serves them all (and the
    /// signer reuses it within its window).
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn pushed_for(
        &self,
        license: &License,
        committed_at: Option<std::time::Instant>,
    ) -> Result<Arc<Pushed>> {
        self.pushed_at(license, committed_at, self.now())
    }

    fn pushed_at(
        &self,
        license: &License,
        committed_at: Option<std::time::Instant>,
        now: Timestamp,
    ) -> Result<Arc<Pushed>> {
        let signed = self.signer.for_license(
            license,
            license.token_hash.fingerprint(),
            Echo::default(),
            now,
            self.seats_exceeded_cached(license),
        )?;
        Ok(Arc::new(Pushed {
            revision: signed.claims.rev,
            status: signed.claims.status,
            issued_at: signed.claims.iat,
            refresh_after: signed.claims.refresh_after,
            document: Arc::from(signed.document.as_str()),
            frame: Pushed::encode_frame(signed.claims.rev, &signed.document),
            committed_at,
        }))
    }

    /// Another replica committed revision `revision` of `id`: refresh the
    /// cache and this replica's watchers.
    pub async fn on_remote_change(&self, id: &LicenseId, revision: u64) {
        match self.store.license(id).await {
            Ok(Some(license)) if license.revision >= revision => {
                let license = Arc::new(license);
                self.remember(license.clone());
                self.publish(&license, None);
            }
            Ok(Some(_)) => {
                tracing::warn!(license = %id, revision, "notified of a revision the database does not show yet");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(license = %id, error = %e, "cannot re-read a license changed elsewhere")
            }
        }
    }

    /// Notifications may have been missed: forget cached licenses and
    /// re-read every watched one.
    pub async fn resync(&self) {
        self.by_token.invalidate_all();
        let watched = self.feed.watched();
        for id in &watched {
            if let Ok(Some(license)) = self.store.license(id).await {
                let license = Arc::new(license);
                self.remember(license.clone());
                self.publish(&license, None);
            }
        }
        tracing::info!(
            watched = watched.len(),
            "resynchronised after a listener reconnect"
        );
    }

    /// After a committed change: hand the new document to its watchers.
    pub fn publish(&self, license: &License, committed_at: Option<std::time::Instant>) {
        if !self.feed.is_watched(&license.id) {
            return;
        }
        match self.pushed_for(license, committed_at) {
            Ok(pushed) => self.feed.publish(&license.id, pushed),
            Err(e) => {
                tracing::error!(license = %license.id, error = %e, "cannot sign a pushed document")
            }
        }
    }

    /// New content at the same revision (the seat limit crossed): watchers
    /// take a document only if it is newer by (revision, `iat` in whole
    /// seconds), so it is signed at least a second after the one they hold —
    /// never more than a second ahead of this clock, well inside the drift
    /// clients allow.
    fn publish_same_revision(&self, license: &License) {
        if !self.feed.is_watched(&license.id) {
            return;
        }
        let now = self.now();
        let at = self
            .feed
            .latest_issued_at(&license.id)
            .map_or(now, |held| now.max(held + Duration::seconds(1)));
        match self.pushed_at(license, None, at) {
            Ok(pushed) => self.feed.publish(&license.id, pushed),
            Err(e) => {
                tracing::error!(license = %license.id, error = %e, "cannot sign a pushed document")
            }
        }
    }

    /// Open a change stream for the license of `token` (from the
    /// `Authorization` header). `last_event_id` is the revision the client
    /// holds: when it is current, the first event is skipped.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token, 403 for a revoked license,
    /// 400 for a bad instance id, 503 past the watcher limits.
    pub async fn open_watch(
        &self,
        token: &str,
        instance_id: Option<&str>,
        last_event_id: Option<u64>,
    ) -> Result<Watch> {
        let token = LicenseToken::parse(token)
            .map_err(|_| Error::Unauthorized(crate::error::STREAM_CREDENTIAL))?;
        let instance_id = instance_id.map(InstanceId::parse).transpose()?;
        let hash = token.hash();
        let license = self
            .lookup(&hash)
            .await?
            .ok_or(Error::Unauthorized(crate::error::STREAM_CREDENTIAL))?;
        if license.state == LicenseState::Revoked {
            return Err(Error::Forbidden {
                code: "license_revoked",
                message: "the license is revoked: there is nothing to watch".into(),
            });
        }
        if let Some(iid) = &instance_id {
            self.require_admitted(&license, iid).await?;
        }
        let seed = self.pushed_for(&license, None)?;
        // Tests widen the window between the read above and the subscribe.
        fail::fail_point!("watch-after-first-read");
        let mut subscription = self.feed.subscribe(&license.id, seed)?;
        // Subscribe first, then read, then send whatever is newest: a change
        // committed after the read above published to nobody (no one was
        // subscribed yet), so read again now that every later publish
        // reaches this stream, and offer what was read to the channel.
        if let Some(latest) = self.lookup(&hash).await?
            && latest.revision > license.revision
        {
            self.feed
                .publish(&latest.id, self.pushed_for(&latest, None)?);
        }
        let current = subscription.rx.borrow_and_update().clone();
        let now = self.now();
        if let Some(iid) = &instance_id {
            self.instances.note(InstanceSeen {
                stream: Some(true),
                ..InstanceSeen::new(license.id.clone(), iid.as_str().to_owned(), now)
            });
        }
        let first = match last_event_id {
            Some(held) if held >= current.revision => None,
            _ => Some(current.clone()),
        };
        Ok(Watch {
            token_hash: hash,
            license: license.id.clone(),
            subscription,
            first,
            last: current,
            instance: instance_id,
        })
    }

    /// The current document for a watched license (for the periodic
    /// fresh copy a long-lived stream gets at `refresh_after`).
    ///
    /// # Errors
    /// The store's; 401 when the license is gone.
    pub async fn current_pushed(&self, token_hash: &TokenHash) -> Result<Arc<Pushed>> {
        let license = self
            .lookup(token_hash)
            .await?
            .ok_or(Error::Unauthorized(crate::error::STREAM_CREDENTIAL))?;
        self.pushed_for(&license, None)
    }

    /// A stream closed: the instance is no longer connected.
    pub fn close_watch(&self, license: &LicenseId, instance: &InstanceId) {
        self.instances.note(InstanceSeen {
            stream: Some(false),
            ..InstanceSeen::new(license.clone(), instance.as_str().to_owned(), self.now())
        });
    }

    /// An instance reports the revision it holds (after applying a pushed or
    /// polled document); shown in the fleet view.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token; 400 for a bad instance id.
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
        let full = self.instances.note(InstanceSeen {
            held_revision: Some(req.revision),
            ..InstanceSeen::new(
                license.id.clone(),
                instance_id.as_str().to_owned(),
                self.now(),
            )
        });
        if full {
            self.instances.flush().await?;
        }
        Ok(())
    }

    // ----- metering --------------------------------------------------------

    /// Seats in use for `license`, from the cache or the store.
    async fn seats_in_use(&self, license: &LicenseId) -> Result<Option<u32>> {
        if let Some(n) = self.seats.get(license) {
            return Ok(n);
        }
        let since = self.now() - self.lifecycle.usage_window;
        let n = self.store.seats_in_use(license, since).await?;
        self.seats.insert(license.clone(), n);
        Ok(n)
    }

    /// Whether the instances report more users than the license allows.
    /// A metering read that fails says "not exceeded": it never blocks a
    /// validation.
    async fn seats_exceeded(&self, license: &License) -> bool {
        let Some(max) = license.max_users else {
            return false;
        };
        match self.seats_in_use(&license.id).await {
            Ok(n) => exceeds(Some(max), n),
            Err(e) => {
                tracing::warn!(license = %license.id, error = %e, "cannot read seats in use");
                false
            }
        }
    }

    fn seats_exceeded_cached(&self, license: &License) -> bool {
        exceeds(license.max_users, self.seats.get(&license.id).flatten())
    }

    /// `POST /v1/usage`: record an instance's user count (latest and the
    /// day's maximum). When the license crosses its seat limit either way,
    /// its watchers get a fresh document with `seats_exceeded`.
    ///
    /// # Errors
    /// 401 for a malformed or unknown token, 400 for a bad instance id.
    pub async fn report_usage(&self, req: UsageRequest) -> Result<UsageView> {
        let (license, instance_id) = self.reporter(&req.token, &req.instance_id).await?;
        let before = self.seats_exceeded(&license).await;
        self.instances.note(InstanceSeen {
            users: Some(req.users),
            ..InstanceSeen::new(
                license.id.clone(),
                instance_id.as_str().to_owned(),
                self.now(),
            )
        });
        // Reports are rare (every 15 minutes per instance): write now, so
        // the fleet view and the seat count are current.
        self.instances.flush().await?;
        self.seats.invalidate(&license.id);
        let usage = self.usage_of(&license, 0).await?;
        if usage.seats_exceeded != before {
            tracing::info!(license = %license.id, exceeded = usage.seats_exceeded, "seat limit crossed");
            self.publish_same_revision(&license);
        }
        Ok(usage)
    }

    /// A license's metering: seats now and the last `days` daily maxima.
    ///
    /// # Errors
    /// 404 unknown license; the store's.
    pub async fn usage(&self, id: &LicenseId, days: u32) -> Result<UsageView> {
        self.usage_of(&self.license(id).await?, days).await
    }

    async fn usage_of(&self, license: &License, days: u32) -> Result<UsageView> {
        let seats_in_use = self.seats_in_use(&license.id).await?;
        let days = if days == 0 {
            Vec::new()
        } else {
            self.store.usage_days(&license.id, days).await?
        };
        Ok(UsageView {
            license: license.id.to_string(),
            max_users: license.max_users,
            seats_in_use,
            seats_exceeded: exceeds(license.max_users, seats_in_use),
            days,
        })
    }

    /// Refresh the gauges read from the database (licenses by state,
    /// expiring within each horizon) and this replica's watcher count.
    ///
    /// # Errors
    /// The store's.
    pub async fn refresh_gauges(&self) -> Result<()> {
        let overview = self
            .store
            .overview(self.now(), &self.lifecycle.horizons)
            .await?;
        for state in ["active", "suspended", "revoked"] {
            let n = overview
                .by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.metrics
                .licenses
                .get_or_create(&crate::metrics::StateLabel {
                    state: state.into(),
                })
                .set(n);
        }
        self.metrics
            .expiring
            .get_or_create(&crate::metrics::HorizonLabel {
                within: "expired".into(),
            })
            .set(overview.expired);
        for (horizon, n) in &overview.expiring {
            self.metrics
                .expiring
                .get_or_create(&crate::metrics::HorizonLabel {
                    within: crate::scheduler::horizon_label(*horizon),
                })
                .set(*n);
        }
        self.metrics
            .watchers
            .set(i64::try_from(self.feed.watchers()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The license and instance of a report (ack, usage): 401 for a
    /// malformed or unknown token, 400 for a bad instance id.
    async fn reporter(&self, token: &str, instance_id: &str) -> Result<(Arc<License>, InstanceId)> {
        let token = LicenseToken::parse(token)
            .map_err(|_| Error::Unauthorized(crate::error::TOKEN_CREDENTIAL))?;
        let instance_id = InstanceId::parse(instance_id)?;
        let license = self
            .lookup(&token.hash())
            .await?
            .ok_or(Error::Unauthorized(crate::error::TOKEN_CREDENTIAL))?;
        self.require_admitted(&license, &instance_id).await?;
        Ok((license, instance_id))
    }

    // ----- validation -----------------------------------------------------

    async fn lookup(&self, hash: &TokenHash) -> Result<Option<Arc<License>>> {
        match self.by_token.get(hash) {
            Some(Known::License(license)) => return Ok(Some(license)),
            Some(Known::Missing) => return Ok(None),
            None => {}
        }
        let Some(license) = self.store.license_by_token_hash(hash).await? else {
            // Only if nothing was learned meanwhile: an issue racing this
            // lookup must win.
            self.by_token
                .entry(hash.clone())
                .and_compute_with(|existing| match existing {
                    Some(_) => Op::Nop,
                    None => Op::Put(Known::Missing),
                });
            return Ok(None);
        };
        let license = Arc::new(license);
        self.remember(license.clone());
        Ok(Some(license))
    }

    /// Answer a validation: a signed document for every well-formed token,
    /// known or not — or `NotModified` when the request names the held
    /// document (`If-None-Match`), it is still the current revision, and it
    /// is younger than half the offline grace (so a client that is only ever
    /// told "not modified" still gets a fresh `exp` in time). A request with
    /// a nonce always gets a new document.
    ///
    /// # Errors
    /// 400 for a malformed token, instance id, nonce or app version.
    pub async fn validate(
        &self,
        req: ValidateRequest,
        held: Option<HeldTag>,
    ) -> Result<Validation> {
        let token = LicenseToken::parse(&req.token)?;
        let instance_id = req
            .instance_id
            .as_deref()
            .map(InstanceId::parse)
            .transpose()?;
        if let Some(nonce) = &req.nonce {
            check_nonce(nonce)?;
        }
        if let Some(v) = &req.app_version
            && (v.len() > 64 || v.chars().any(char::is_control))
        {
            return Err(Error::bad_request(
                "invalid_app_version",
                "app_version must be at most 64 characters",
            ));
        }
        let now = self.now();
        let hash = token.hash();
        let echo = Echo {
            instance_id: instance_id.as_ref().map(|i| i.as_str().to_owned()),
            nonce: req.nonce,
        };
        match self.lookup(&hash).await? {
            Some(license) => {
                if let Some(iid) = &instance_id
                    && !self.admit(&license, iid).await?
                {
                    let signed = self.signer.for_refused_instance(
                        &license,
                        hash.fingerprint(),
                        echo,
                        now,
                    )?;
                    return Ok(Validation::Document(signed));
                }
                if let Some(iid) = instance_id {
                    let full = self.instances.note(InstanceSeen {
                        app_version: req.app_version,
                        users: req.usage.map(|u| u.users),
                        ..InstanceSeen::new(license.id.clone(), iid.as_str().to_owned(), now)
                    });
                    if full {
                        self.instances.flush().await?;
                    }
                }
                if echo.nonce.is_none()
                    && let Some(tag) = held
                    && tag.revision == license.revision
                    && now - tag.issued_at < license.policy.offline_grace / 2
                {
                    self.metrics.validation("not_modified");
                    return Ok(Validation::NotModified(tag));
                }
                let exceeded = self.seats_exceeded(&license).await;
                let signed =
                    self.signer
                        .for_license(&license, hash.fingerprint(), echo, now, exceeded)?;
                self.metrics.validation(signed.claims.status.as_str());
                Ok(Validation::Document(signed))
            }
            None => {
                let signed = self.signer.for_unknown(hash.fingerprint(), echo, now)?;
                self.metrics.validation(signed.claims.status.as_str());
                Ok(Validation::Document(signed))
            }
        }
    }
}

/// An open change stream (see [`LicenseService::open_watch`]).
#[derive(Debug)]
pub struct Watch {
    /// The watched token's hash (to re-read the license).
    pub token_hash: TokenHash,
    /// The watched license.
    pub license: LicenseId,
    /// The feed subscription (dropping it leaves).
    pub subscription: Subscription,
    /// The first event to send, unless the client already holds it.
    pub first: Option<Arc<Pushed>>,
    /// The newest document this stream knows of.
    pub last: Arc<Pushed>,
    /// The instance, when the client named one.
    pub instance: Option<InstanceId>,
}

/// The document a client holds, as it names it in `If-None-Match`:
/// `"<revision>-<iat as Unix seconds>"` (the `ETag` of the answer that gave it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldTag {
    /// Its revision.
    pub revision: u64,
    /// Its `iat`.
    pub issued_at: Timestamp,
}

impl HeldTag {
    /// The tag of a document.
    #[must_use]
    pub fn of(claims: &tessera_protocol::StatusClaims) -> Self {
        Self {
            revision: claims.rev,
            issued_at: claims.iat,
        }
    }

    /// Parse an `If-None-Match` value; anything else is ignored (`None`).
    #[must_use]
    pub fn parse(header: &str) -> Option<Self> {
        let inner = header.trim().strip_prefix('"')?.strip_suffix('"')?;
        let (rev, iat) = inner.split_once('-')?;
        Some(Self {
            revision: rev.parse().ok()?,
            issued_at: chrono::DateTime::from_timestamp(iat.parse().ok()?, 0)?,
        })
    }

    /// The header value.
    #[must_use]
    pub fn to_header(self) -> String {
        format!("\"{}-{}\"", self.revision, self.issued_at.timestamp())
    }
}

/// The answer to a validation.
#[derive(Debug)]
pub enum Validation {
    /// A signed document.
    Document(Arc<SignedDocument>),
    /// The held document is current.
    NotModified(HeldTag),
}

/// What the token cache knows of a token hash.
#[derive(Debug, Clone)]
enum Known {
    License(Arc<License>),
    Missing,
}

#[derive(Clone, Copy)]
enum Target {
    To(Timestamp),
    By(Duration),
}

impl Target {
    fn parse(req: &ExtendRequest) -> Result<Self> {
        match (&req.to, &req.by) {
            (Some(to), None) => Ok(Target::To(date_field("to", to)?)),
            (None, Some(by)) => Ok(Target::By(duration_field("by", by)?)),
            _ => Err(Error::unprocessable(
                "conflicting_fields",
                "give exactly one of to (a date) and by (a duration such as 30d)",
            )),
        }
    }

    /// The expiry an extension gives `l` at `now`, by the policy's basis.
    fn new_expiry(self, l: &License, now: Timestamp) -> Result<Timestamp> {
        if l.state == LicenseState::Revoked {
            return Err(Error::conflict(
                "license_revoked",
                "a revoked license cannot be extended",
            ));
        }
        let new_expiry = match self {
            Target::To(to) => to,
            Target::By(by) => match l.policy.renewal_basis {
                RenewalBasis::FromNow => later("the new expiry", now, by)?,
                RenewalBasis::FromExpiry => match l.expires_at {
                    Some(exp) => later("the new expiry", exp, by)?,
                    None => {
                        return Err(Error::conflict(
                            "license_perpetual",
                            "the license is perpetual: there is no expiry to extend from",
                        ));
                    }
                },
            },
        };
        if new_expiry <= now {
            return Err(Error::unprocessable(
                "expiry_in_past",
                format!(
                    "the new expiry {} is not in the future",
                    tessera_protocol::time::format(&new_expiry)
                ),
            ));
        }
        Ok(new_expiry)
    }
}
