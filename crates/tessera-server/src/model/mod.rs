//! Domain types of the authority (licenses, policies, customers, installations, events, webhooks), independent of storage and HTTP.

use chrono::Duration;
use serde::Serialize;
use tessera_protocol::human::format_duration;
use tessera_protocol::wire::{self, LicenseState, RenewalBasis};
pub use tessera_protocol::wire::{Fleet, FleetSummary, Instance};
use tessera_protocol::{CustomerId, LicenseId, PolicyId, Status, Timestamp, TokenHash};

mod machines;
mod products;
mod queries;
mod quotas;
mod webhooks;
pub use machines::{Machine, MachineSettings, NewMachine};
pub use products::Product;
pub use queries::{ExpiryWindow, LicensePage, LicenseQuery};
pub use quotas::{Consumption, Counted, Metered, PeriodUse, Recorded};
pub use webhooks::{Attempt, DueDelivery, Webhook, WebhookSecret};

/// A policy: defaults and client behaviour shared by many licenses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `pol_…`.
    pub id: PolicyId,
    /// Unique name.
    pub name: String,
    /// Default license duration; `None` = perpetual.
    pub duration: Option<Duration>,
    /// Default features.
    pub features: Vec<String>,
    /// Default seat limit.
    pub max_users: Option<u32>,
    /// Trial policy.
    pub trial: bool,
    /// How often clients without a stream ask again.
    pub refresh_interval: Duration,
    /// How long a document is trustworthy offline.
    pub offline_grace: Duration,
    /// How `extend --by` counts.
    pub renewal_basis: RenewalBasis,
    /// Renew automatically.
    pub auto_renew: bool,
    /// Period of automatic renewals.
    pub auto_renew_period: Option<Duration>,
    /// How long before expiry an automatic renewal happens.
    pub renew_before: Duration,
    /// What expiry takes away.
    pub on_expiry: wire::OnExpiry,
    /// How its rules are applied.
    pub enforcement: wire::Enforcement,
    /// The product owning it; `None` only for the built-in `default`
    /// policy, which serves every product.
    pub product: Option<String>,
    /// Machine settings its licenses get.
    pub machines: MachineSettings,
    /// Created.
    pub created_at: Timestamp,
}

impl Policy {
    /// Name of the built-in policy used when none is named.
    pub const DEFAULT_NAME: &'static str = "default";
    /// Default refresh interval: 1 hour.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::hours(1);
    /// Default offline grace: 7 days.
    pub const DEFAULT_OFFLINE_GRACE: Duration = Duration::days(7);
    /// Default renew-before window of automatic renewals: 7 days.
    pub const DEFAULT_RENEW_BEFORE: Duration = Duration::days(7);

    /// The admin API's view.
    #[must_use]
    pub fn view(&self) -> wire::PolicyView {
        wire::PolicyView {
            product: self.product.clone(),
            id: self.id.clone(),
            name: self.name.clone(),
            duration: self.duration.map(format_duration),
            features: self.features.clone(),
            max_users: self.max_users,
            trial: self.trial,
            refresh_interval: format_duration(self.refresh_interval),
            offline_grace: format_duration(self.offline_grace),
            renewal_basis: self.renewal_basis,
            auto_renew: self.auto_renew,
            auto_renew_period: self.auto_renew_period.map(format_duration),
            renew_before: format_duration(self.renew_before),
            on_expiry: self.on_expiry,
            enforcement: self.enforcement,
            machines: self.machines.view(),
            created_at: self.created_at,
        }
    }
}

/// The policy settings a license needs when answering validations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePolicy {
    /// Policy name.
    pub name: String,
    /// Refresh interval.
    pub refresh_interval: Duration,
    /// Offline grace.
    pub offline_grace: Duration,
    /// Renewal basis.
    pub renewal_basis: RenewalBasis,
    /// The policy's default duration.
    pub duration: Option<Duration>,
    /// The policy renews its licenses automatically.
    pub auto_renew: bool,
    /// Period of each automatic renewal.
    pub auto_renew_period: Option<Duration>,
    /// How long before expiry an automatic renewal happens.
    pub renew_before: Duration,
    /// What expiry takes away.
    pub on_expiry: wire::OnExpiry,
    /// How the policy's rules are applied.
    pub enforcement: wire::Enforcement,
}

/// A license as stored, joined with its customer's name and policy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// `lic_…`.
    pub id: LicenseId,
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Last four characters of the token.
    pub token_last4: String,
    /// Customer id.
    pub customer_id: CustomerId,
    /// Customer name.
    pub customer: String,
    /// The product (§28), by name.
    pub product: String,
    /// Free-form JSON object kept with the license (imports carry it over).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Policy settings.
    pub policy: LicensePolicy,
    /// Plan.
    pub plan: String,
    /// Features.
    pub features: Vec<String>,
    /// Features with terms of their own (§20), by name.
    pub entitlements: tessera_protocol::Entitlements,
    /// Metered features' use in their latest period as stored: feature →
    /// (period key, used) (§22).
    pub quota_used: std::collections::BTreeMap<String, (String, u64)>,
    /// Seat limit.
    pub max_users: Option<u32>,
    /// Trial.
    pub trial: bool,
    /// Start of the period.
    pub valid_from: Timestamp,
    /// End of the period; `None` = perpetual.
    pub expires_at: Option<Timestamp>,
    /// Stored state.
    pub state: LicenseState,
    /// Revision, +1 per change.
    pub revision: u64,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// The license's own auto-renew setting (`None`: its policy's).
    pub auto_renew: Option<bool>,
    /// Machine limit and mode.
    pub machines: MachineSettings,
}

impl License {
    /// A license for unit tests of the rules: active, revision 3, a policy
    /// with the defaults, expiring 2027-01-01.
    #[cfg(test)]
    #[must_use]
    pub fn example() -> Self {
        let at = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("a fixed date")
                .to_utc()
        };
        Self {
            id: LicenseId::parse("lic_01936b2e-7c3a-7def-8a12-0123456789ab").expect("a fixed id"),
            token_hash: TokenHash::from_hex(&"ab".repeat(32)).expect("a fixed hash"),
            token_last4: "ABCD".into(),
            customer_id: CustomerId::parse("cus_1").expect("a fixed id"),
            customer: "Acme".into(),
            product: tessera_protocol::DEFAULT_PRODUCT.into(),
            metadata: serde_json::Map::new(),
            policy: LicensePolicy {
                name: Policy::DEFAULT_NAME.into(),
                refresh_interval: Policy::DEFAULT_REFRESH_INTERVAL,
                offline_grace: Policy::DEFAULT_OFFLINE_GRACE,
                renewal_basis: RenewalBasis::FromExpiry,
                duration: None,
                auto_renew: false,
                auto_renew_period: None,
                renew_before: Policy::DEFAULT_RENEW_BEFORE,
                on_expiry: wire::OnExpiry::LoseAccess,
                enforcement: wire::Enforcement::Enforce,
            },
            plan: "enterprise".into(),
            features: vec!["sso".into()],
            entitlements: tessera_protocol::Entitlements::new(),
            quota_used: std::collections::BTreeMap::new(),
            max_users: None,
            trial: false,
            valid_from: at("2026-01-01T00:00:00Z"),
            expires_at: Some(at("2027-01-01T00:00:00Z")),
            state: LicenseState::Active,
            revision: 3,
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
            auto_renew: None,
            machines: MachineSettings::default(),
        }
    }

    /// Whether the scheduler renews this license: its own setting, or else
    /// its policy's; never for a perpetual, suspended or revoked one.
    #[must_use]
    pub fn auto_renews(&self) -> bool {
        self.state == LicenseState::Active
            && self.expires_at.is_some()
            && self.auto_renew.unwrap_or(self.policy.auto_renew)
    }

    /// Length of one automatic renewal: the policy's period, else its
    /// duration, else the license's own first period.
    #[must_use]
    pub fn renewal_period(&self) -> Option<Duration> {
        self.policy
            .auto_renew_period
            .or(self.policy.duration)
            .or_else(|| self.expires_at.map(|e| e - self.valid_from))
            .filter(|d| *d > Duration::zero())
    }

    /// The automatic renewal due at `now`, if any: the new expiry. Counted
    /// by the policy's basis; from the expiry, as many whole periods as
    /// needed to leave the renew-before window (a license that lapsed while
    /// the authority was down catches up in one change, not one per tick).
    /// The window is at most half a period, so a renewal always leaves it.
    #[must_use]
    pub fn auto_renewal(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.auto_renews() {
            return None;
        }
        let expires_at = self.expires_at?;
        let period = self.renewal_period()?;
        let before = self.policy.renew_before.min(period / 2);
        if expires_at - before > now {
            return None;
        }
        let mut next = match self.policy.renewal_basis {
            RenewalBasis::FromExpiry => expires_at.checked_add_signed(period)?,
            RenewalBasis::FromNow => now.checked_add_signed(period)?,
        };
        for _ in 0..100_000 {
            // Past 9999 no client could read the document: no renewal then.
            if !tessera_protocol::time::is_supported(&next) {
                return None;
            }
            if next - before > now {
                return Some(next);
            }
            next = next.checked_add_signed(period)?;
        }
        None
    }

    /// Status at `now`: state first, then the period, then trial.
    #[must_use]
    pub fn status_at(&self, now: Timestamp) -> Status {
        match self.state {
            LicenseState::Revoked => Status::Revoked,
            LicenseState::Suspended => Status::Suspended,
            LicenseState::Active => match self.expires_at {
                Some(exp) if exp <= now => Status::Expired,
                _ if self.trial => Status::Trial,
                _ => Status::Active,
            },
        }
    }

    /// How much of `feature`'s quota is used in the period of `now` (0 in
    /// a period nothing was reported in yet).
    #[must_use]
    pub fn quota_used_at(
        &self,
        feature: &str,
        quota: &tessera_protocol::Quota,
        now: Timestamp,
    ) -> u64 {
        match self.quota_used.get(feature) {
            Some((period, used)) if *period == quota.period.key(now) => *used,
            _ => 0,
        }
    }

    /// The features' terms, quotas with their use in the period of `now`.
    #[must_use]
    pub fn entitlements_at(&self, now: Timestamp) -> tessera_protocol::Entitlements {
        self.entitlements
            .iter()
            .map(|(name, e)| {
                let mut e = e.clone();
                if let Some(q) = &e.quota {
                    e.quota = Some(q.as_of(now, self.quota_used_at(name, q, now)));
                }
                (name.clone(), e)
            })
            .collect()
    }

    /// The admin API's view at `now`.
    #[must_use]
    pub fn view(&self, now: Timestamp) -> wire::LicenseView {
        wire::LicenseView {
            product: self.product.clone(),
            metadata: self.metadata.clone(),
            id: self.id.to_string(),
            customer: self.customer.clone(),
            policy: self.policy.name.clone(),
            plan: self.plan.clone(),
            features: self.features.clone(),
            entitlements: self.entitlements_at(now),
            max_users: self.max_users,
            trial: self.trial,
            state: self.state,
            status: self.status_at(now),
            valid_from: self.valid_from,
            expires_at: self.expires_at,
            revision: self.revision,
            token_last4: self.token_last4.clone(),
            auto_renew: self.auto_renew.unwrap_or(self.policy.auto_renew),
            created_at: self.created_at,
            updated_at: self.updated_at,
            machines: self.machines.view(),
        }
    }

    /// What the audit log records of a license before and after a change.
    #[must_use]
    pub fn summary(&self) -> LicenseSummary {
        LicenseSummary {
            state: self.state,
            expires_at: self.expires_at.as_ref().map(tessera_protocol::time::format),
            revision: self.revision,
        }
    }
}

/// Before/after summary kept in audit events.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseSummary {
    /// State.
    pub state: LicenseState,
    /// Expiry (RFC 3339) or `None`.
    pub expires_at: Option<String>,
    /// Revision.
    pub revision: u64,
}

/// A license to insert, with its first event.
#[derive(Debug, Clone)]
pub struct NewLicense {
    /// Id.
    pub id: LicenseId,
    /// Token hash.
    pub token_hash: TokenHash,
    /// Last four of the token.
    pub token_last4: String,
    /// Customer name (created when new).
    pub customer: String,
    /// Customer e-mail for a new customer.
    pub customer_email: Option<String>,
    /// The id the customer gets if it is new (`cus_…`, minted by the rules).
    pub new_customer_id: CustomerId,
    /// Policy id.
    pub policy_id: PolicyId,
    /// Plan.
    pub plan: String,
    /// Features.
    pub features: Vec<String>,
    /// Features with terms of their own (§20), by name.
    pub entitlements: tessera_protocol::Entitlements,
    /// Seat limit.
    pub max_users: Option<u32>,
    /// Trial.
    pub trial: bool,
    /// Start.
    pub valid_from: Timestamp,
    /// End.
    pub expires_at: Option<Timestamp>,
    /// Own auto-renew setting (`None`: the policy's).
    pub auto_renew: Option<bool>,
    /// Machine limit and mode.
    pub machines: MachineSettings,
    /// Its product, by name.
    pub product: String,
    /// Free-form metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A change to a license's mutable fields, applied only if the license is
/// still at `expected_revision` (optimistic concurrency: two writers can
/// never produce a duplicate or skipped revision).
#[derive(Debug, Clone)]
pub struct LicenseChange {
    /// Which license.
    pub id: LicenseId,
    /// The revision the change was computed from.
    pub expected_revision: u64,
    /// New state.
    pub state: LicenseState,
    /// New expiry.
    pub expires_at: Option<Timestamp>,
    /// The audit event written in the same transaction.
    pub event: NewEvent,
}

/// An audit event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When.
    pub at: Timestamp,
    /// Admin key name or `scheduler`.
    pub actor: String,
    /// Kind, e.g. `license.extended`.
    pub kind: wire::EventKind,
    /// Summary before.
    pub before: Option<serde_json::Value>,
    /// Summary after (the store fills in the new revision for license changes).
    pub after: Option<serde_json::Value>,
}

/// An installation seen validating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSeen {
    /// License.
    pub license_id: LicenseId,
    /// Instance id.
    pub instance_id: String,
    /// First sighting in this batch.
    pub first_at: Timestamp,
    /// Latest sighting.
    pub at: Timestamp,
    /// Reported app version.
    pub app_version: Option<String>,
    /// Reported users.
    pub users: Option<u32>,
    /// Change stream opened (`true`) or closed (`false`).
    pub stream: Option<bool>,
    /// Revision the instance reports holding.
    pub held_revision: Option<u64>,
}

impl InstanceSeen {
    /// A sighting with nothing reported.
    #[must_use]
    pub fn new(license_id: LicenseId, instance_id: String, at: Timestamp) -> Self {
        Self {
            license_id,
            instance_id,
            first_at: at,
            at,
            app_version: None,
            users: None,
            stream: None,
            held_revision: None,
        }
    }
}

/// Filters for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this license's events.
    pub license: Option<LicenseId>,
    /// Only events of licenses of these products, names separated by
    /// commas (`None`: every event).
    pub products: Option<String>,
    /// Only events after this sequence number, oldest first.
    pub after: Option<i64>,
    /// Only events before this sequence number, newest first (the default order).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// A customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// `cus_…`.
    pub id: CustomerId,
    /// Unique name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Created.
    pub created_at: Timestamp,
}

/// A console session as stored (the cookie's id is stored hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id.
    pub id_hash: String,
    /// The admin key's name: the actor of what the session does.
    pub key_name: String,
    /// The session's CSRF token, required in every form.
    pub csrf: String,
    /// Created.
    pub created_at: Timestamp,
    /// Ends.
    pub expires_at: Timestamp,
}

/// Numbers for the console's dashboard.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Licenses by stored state: (state, count).
    pub by_state: Vec<(String, i64)>,
    /// Licenses by product and stored state.
    pub by_product: Vec<(String, String, i64)>,
    /// Active licenses past their expiry.
    pub expired: i64,
    /// Active licenses expiring within each horizon asked for: (horizon, count).
    pub expiring: Vec<(Duration, i64)>,
    /// Instances with an open stream or seen within the last hour.
    pub instances_online: i64,
    /// Instances known.
    pub instances_total: i64,
}

/// What the store counts of a fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Installations known (not yet pruned).
    pub total: usize,
    /// Holding the current revision.
    pub current: usize,
    /// With an open change stream.
    pub connected: usize,
    /// Seen within the activity window (these count towards the limit).
    pub active: usize,
}
