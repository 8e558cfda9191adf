//! Changes: policies, issuing, and every change of a license — each a new
//! revision committed with its audit event, then pushed.

use std::sync::Arc;
use tessera_protocol::wire::EventKind;

use tessera_protocol::wire::{
    EventView, ExtendRequest, IssueLicenseRequest, LicenseExport, LicenseState, PolicyInput,
    PolicyUpdate, PolicyUpdateView, VerdictChange,
};
use tessera_protocol::{CustomerId, LicenseId, LicenseToken, PolicyId, Timestamp};

use super::Shared;
use super::fields::{check_entitlements, check_text, lifetime_field, policy_defaults};
use super::push::Push;
use super::rules::{self, Extension, StateAction};
use crate::error::{Error, Result};
use crate::model::{
    Customer, EventFilter, License, LicenseChange, LicenseQuery, NewEvent, NewLicense, Policy,
};
use crate::status::{self, Echo};

/// How many times a change is recomputed when another writer (another
/// replica: writers in this process queue on `change_locks`) got there first.
const CHANGE_ATTEMPTS: usize = 8;
/// Stripes of the per-license change lock.
const CHANGE_LOCK_STRIPES: usize = 64;

/// Which change: of which license, by whom, recorded as what, and why.
struct What<'a> {
    id: &'a LicenseId,
    actor: &'a str,
    kind: EventKind,
    reason: Option<String>,
}

impl<'a> What<'a> {
    fn new(id: &'a LicenseId, actor: &'a str, kind: EventKind, reason: Option<String>) -> Self {
        Self {
            id,
            actor,
            kind,
            reason,
        }
    }
}

/// A license's new state and expiry, as a change computes it.
type Update = (LicenseState, Option<Timestamp>);

/// Reads and changes of policies and licenses.
#[derive(Debug)]
pub struct Changes {
    pub(super) shared: Shared,
    push: Arc<Push>,
    /// Changes to one license from this process run one at a time, so they
    /// do not starve each other's optimistic check. Striped by license id.
    change_locks: Vec<tokio::sync::Mutex<()>>,
}

fn summary_json(license: &License) -> Option<serde_json::Value> {
    serde_json::to_value(license.summary()).ok()
}

impl Changes {
    /// Changes over the shared parts, pushing through `push`.
    #[must_use]
    pub fn new(shared: &Shared, push: Arc<Push>) -> Self {
        Self {
            shared: shared.clone(),
            push,
            change_locks: (0..CHANGE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Now, from the injected clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    // ----- policies -------------------------------------------------------

    /// Create a policy.
    ///
    /// # Errors
    /// 422 for invalid fields, 409 when the name is taken.
    pub async fn create_policy(&self, input: PolicyInput, actor: &str) -> Result<Policy> {
        let now = self.now();
        let id = PolicyId::from_uuid_text(&uuid::Uuid::now_v7().to_string())?;
        let product = input
            .product
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(tessera_protocol::DEFAULT_PRODUCT)
            .to_owned();
        self.require_product(&product).await?;
        let mut policy = rules::new_policy(input, id, now)?;
        policy.product = Some(product);
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: EventKind::PolicyCreated,
            before: None,
            after: serde_json::to_value(policy.view()).ok(),
        };
        let created = self.shared.store.create_policy(&policy, event).await?;
        tracing::info!(policy = %created.name, actor, "policy created");
        Ok(created)
    }

    /// Change a policy's client settings (docs/PROTOCOL.md §24): with
    /// `dry_run`, only say which licenses' verdicts would change and how
    /// many of their instances are connected; otherwise apply it — every
    /// license under the policy gets a new revision, pushed.
    ///
    /// # Errors
    /// 404 unknown policy; 422 for bad settings or none.
    pub async fn update_policy(
        &self,
        name: &str,
        update: PolicyUpdate,
        dry_run: bool,
        actor: &str,
    ) -> Result<PolicyUpdateView> {
        let current = self
            .shared
            .store
            .policy_by_name(name)
            .await?
            .ok_or_else(|| Error::not_found("policy", name))?;
        let next = rules::updated_policy(&current, &update)?;
        let now = self.now();
        let licenses = self.shared.store.licenses_of_policy(&current.id).await?;
        let connected = self
            .shared
            .store
            .connected_under_policy(&current.id)
            .await?;
        let mut changes = Vec::new();
        for license in &licenses {
            let mut after = license.clone();
            after.policy.enforcement = next.enforcement;
            after.policy.on_expiry = next.on_expiry;
            let (before, after) = (
                rules::verdict_word(license, now),
                rules::verdict_word(&after, now),
            );
            if before != after {
                changes.push(VerdictChange {
                    license: license.id.to_string(),
                    customer: license.customer.clone(),
                    before: before.to_owned(),
                    after: after.to_owned(),
                    instances_connected: connected.get(license.id.as_str()).copied().unwrap_or(0),
                });
            }
        }
        let view = PolicyUpdateView {
            policy: next.view(),
            dry_run,
            licenses: licenses.len() as u64,
            instances_connected: changes.iter().map(|c| c.instances_connected).sum(),
            changes,
        };
        if dry_run {
            return Ok(view);
        }
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: EventKind::PolicyUpdated,
            before: serde_json::to_value(current.view()).ok(),
            after: serde_json::to_value(next.view()).ok().map(|mut v| {
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("licenses".into(), view.licenses.into());
                }
                v
            }),
        };
        let changed = self.shared.store.update_policy(&next, event).await?;
        tracing::info!(policy = %next.name, licenses = changed.len(), actor, "policy updated");
        for (id, _) in changed {
            let license = Arc::new(self.license(&id).await?);
            self.shared.cache.remember(license.clone());
            self.push.publish(&license, Some(std::time::Instant::now()));
        }
        Ok(view)
    }

    /// All policies.
    ///
    /// # Errors
    /// The store's.
    pub async fn policies(&self) -> Result<Vec<Policy>> {
        self.shared.store.policies().await
    }

    /// All customers.
    ///
    /// # Errors
    /// The store's.
    pub async fn customers(&self) -> Result<Vec<Customer>> {
        self.shared.store.customers().await
    }

    // ----- licenses -------------------------------------------------------

    /// Issue a license. The token is returned here and never again.
    ///
    /// # Errors
    /// 422 for invalid fields or a missing expiry, 404 for an unknown policy.
    pub async fn issue(
        &self,
        req: IssueLicenseRequest,
        principal: &crate::access::Principal,
    ) -> Result<(License, LicenseToken)> {
        let actor = principal.name.as_str();
        let customer = req.customer.trim().to_owned();
        check_text("customer", &customer)?;
        let plan = req.plan.trim().to_owned();
        check_text("plan", &plan)?;
        if let Some(email) = &req.customer_email {
            check_text("customer_email", email)?;
        }
        let req_email = req.customer_email.clone();
        let policy_name = req.policy.as_deref().unwrap_or(Policy::DEFAULT_NAME);
        let policy = self
            .shared
            .store
            .policy_by_name(policy_name)
            .await?
            .ok_or_else(|| Error::not_found("policy", policy_name))?;
        let product = self
            .product_for(req.product.as_deref(), &policy, principal)
            .await?;
        let now = self.now();
        let expires_at = rules::issue_expiry(&req, &policy, now)?;
        // A policy's defaults were checked when it was made (and are kept
        // as they are if older than the feature alphabet, §20).
        let (features, entitlements) = match req.features.as_deref() {
            Some(given) => check_entitlements(given, Some(now), expires_at)?,
            None => policy_defaults(&policy.features),
        };
        let machines = super::machine_rules::machine_settings(&req.machines, policy.machines)?;
        let token = LicenseToken::generate(&mut rand::rng());
        let id = LicenseId::from_uuid_text(&uuid::Uuid::now_v7().to_string())?;
        let new = NewLicense {
            id,
            token_hash: token.hash(),
            token_last4: token.last4().to_owned(),
            customer,
            customer_email: req.customer_email,
            new_customer_id: CustomerId::from_uuid_text(&uuid::Uuid::now_v7().to_string())?,
            policy_id: policy.id.clone(),
            plan,
            features,
            entitlements,
            max_users: req.max_users.or(policy.max_users),
            trial: req.trial.unwrap_or(policy.trial),
            valid_from: now,
            expires_at,
            auto_renew: req.auto_renew,
            machines,
            product,
            metadata: req.metadata.unwrap_or_default(),
        };
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: EventKind::LicenseIssued,
            before: None,
            after: serde_json::to_value(crate::model::LicenseSummary {
                state: LicenseState::Active,
                expires_at: expires_at.as_ref().map(tessera_protocol::time::format),
                revision: 1,
            })
            .ok(),
        };
        let license = self.shared.store.insert_license(&new, event).await?;
        tracing::info!(license = %license.id, actor, "license issued");
        self.shared.cache.remember(Arc::new(license.clone()));
        // A paid license for a customer who was trying the product ends
        // their trials (§23).
        if !license.trial
            && let Some(email) = &req_email
        {
            for trial in self.shared.store.open_trials(Some(email), None).await? {
                self.end_trial(&trial, &license.id, actor).await?;
            }
        }
        Ok((license, token))
    }

    /// One license.
    ///
    /// # Errors
    /// 404 when unknown.
    pub async fn license(&self, id: &LicenseId) -> Result<License> {
        self.shared.license(id).await
    }

    /// Licenses matching `q`, one page.
    ///
    /// # Errors
    /// The store's.
    pub async fn licenses(&self, q: &LicenseQuery) -> Result<Vec<License>> {
        self.shared.store.licenses(q).await
    }

    /// Licenses matching `q`, one page, and how many match in all.
    ///
    /// # Errors
    /// The store's.
    pub async fn search(&self, q: &LicenseQuery) -> Result<(Vec<License>, i64)> {
        Ok((
            self.shared.store.licenses(q).await?,
            self.shared.store.count_licenses(q).await?,
        ))
    }

    /// Audit events.
    ///
    /// # Errors
    /// The store's.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>> {
        self.shared.store.events(filter).await
    }

    /// Apply a change computed from the current license, retrying when
    /// another writer changed it in between. Revision +1 and the audit event
    /// commit together. `compute` answering `None` changes nothing (`None`).
    async fn change<F>(&self, what: What<'_>, compute: F) -> Result<Option<License>>
    where
        F: Fn(&License, Timestamp) -> Result<Option<Update>>,
    {
        let What {
            id,
            actor,
            kind,
            reason,
        } = what;
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
            let Some((state, expires_at)) = compute(&current, now)? else {
                return Ok(None);
            };
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
            if let Some(updated) = self.shared.store.apply_change(&change).await? {
                tracing::info!(license = %id, revision = updated.revision, actor, kind = %kind, "license changed");
                self.shared.cache.remember(Arc::new(updated.clone()));
                self.push.publish(&updated, Some(std::time::Instant::now()));
                return Ok(Some(updated));
            }
        }
        Err(Error::conflict(
            "concurrent_change",
            "the license kept changing under this request; try again",
        ))
    }

    /// A change that always applies (or fails).
    async fn apply<F>(&self, what: What<'_>, compute: F) -> Result<License>
    where
        F: Fn(&License, Timestamp) -> Result<Update>,
    {
        let changed = self
            .change(what, |l, now| compute(l, now).map(Some))
            .await?;
        // `compute` never declines here, so `None` cannot come back; should
        // it, the caller sees a conflict to retry rather than a panic.
        changed
            .ok_or_else(|| Error::conflict("not_applied", "the change was not applied; try again"))
    }

    /// Extend: to a date, or by a duration counted by the policy's basis.
    ///
    /// # Errors
    /// 422 for bad input, 409 for a revoked or (with `by` from expiry) perpetual license.
    pub async fn extend(&self, id: &LicenseId, req: ExtendRequest, actor: &str) -> Result<License> {
        let extension = Extension::parse(&req)?;
        let what = What::new(id, actor, EventKind::LicenseExtended, None);
        self.apply(what, |l, now| {
            Ok((l.state, Some(extension.new_expiry(l, now)?)))
        })
        .await
    }

    /// Renew `id` automatically if it is (still) due: `None` when it is not,
    /// decided inside the change so two schedulers cannot both renew it.
    ///
    /// # Errors
    /// The store's.
    pub async fn auto_renew(&self, id: &LicenseId) -> Result<Option<License>> {
        let what = What::new(id, "scheduler", EventKind::LicenseAutoRenewed, None);
        let renewed = self
            .change(what, |l, now| {
                Ok(l.auto_renewal(now).map(|to| (l.state, Some(to))))
            })
            .await?;
        if renewed.is_some() {
            self.shared.metrics.auto_renewal();
        }
        Ok(renewed)
    }

    /// What `extend` would do now, without doing it (the console's
    /// confirmation page): the license and its new expiry.
    ///
    /// # Errors
    /// As [`Changes::extend`].
    pub async fn extend_preview(
        &self,
        id: &LicenseId,
        req: &ExtendRequest,
    ) -> Result<(License, Timestamp)> {
        let extension = Extension::parse(req)?;
        let license = self.license(id).await?;
        let expiry = extension.new_expiry(&license, self.now())?;
        Ok((license, expiry))
    }

    /// Suspend, reinstate or revoke, by [`rules::transition`].
    ///
    /// # Errors
    /// 409 where the transition table has no move; 404 unknown license.
    pub async fn set_state(
        &self,
        id: &LicenseId,
        action: StateAction,
        actor: &str,
        reason: Option<String>,
    ) -> Result<License> {
        self.apply(What::new(id, actor, action.event(), reason), |l, _| {
            Ok((rules::transition(l.state, action)?, l.expires_at))
        })
        .await
    }

    /// End trial `trial`: converted to the paid license `to`. Revoked (with
    /// the conversion as its reason) and pushed, so its instances stop
    /// using it at once.
    ///
    /// # Errors
    /// The store's.
    pub async fn end_trial(&self, trial: &LicenseId, to: &LicenseId, actor: &str) -> Result<()> {
        let reason = format!("trial converted to {to}");
        match self
            .set_state(trial, StateAction::Revoke, actor, Some(reason))
            .await
        {
            // Revoked already: nothing left to end.
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        self.shared
            .store
            .mark_trial_converted(trial, to, self.now())
            .await?;
        tracing::info!(trial = %trial, to = %to, "trial converted");
        Ok(())
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
        let document = self.shared.signer.sign(&claims)?;
        self.shared
            .store
            .append_event(
                Some((&license.id, license.revision)),
                NewEvent {
                    at: now,
                    actor: actor.to_owned(),
                    kind: EventKind::LicenseExported,
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
}
