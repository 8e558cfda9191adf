//! The wire's enums. Each has one spelling, its serde name: `Display` and
//! `FromStr` are derived from it (unknown text is refused, never mapped to
//! a default), and the stored form in the database is the same text.

use serde::{Deserialize, Serialize};

use super::machines::{MachineMode, MachineState};

/// `Display` and `FromStr` from the serde names of a unit-variant enum.
macro_rules! serde_text {
    ($($enum:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&super::serde_name(self))
            }
        }

        impl std::str::FromStr for $enum {
            type Err = crate::Error;

            fn from_str(text: &str) -> Result<Self, crate::Error> {
                super::from_serde_name(text, stringify!($enum))
            }
        }
    )+};
}

serde_text!(
    RenewalBasis,
    OnExpiry,
    Enforcement,
    LicenseState,
    DeliveryState,
    EventKind,
    StateAction,
    MachineMode,
    MachineState
);

/// How an extension by a duration is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RenewalBasis {
    /// New expiry = old expiry + duration: early renewal loses nothing.
    #[default]
    FromExpiry,
    /// New expiry = now + duration.
    FromNow,
}

impl RenewalBasis {
    /// Every basis.
    pub const ALL: [Self; 2] = [Self::FromExpiry, Self::FromNow];
}

/// What a license's expiry takes away (a policy's `on_expiry`,
/// docs/PROTOCOL.md §21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// Everything: the verdict is `expired`.
    #[default]
    LoseAccess,
    /// Versions of the product released before the expiry keep working
    /// ("perpetual fallback"); later versions are `expired`.
    KeepVersionsReleasedBeforeExpiry,
    /// Nothing: the license is marked expired (and its webhooks fire), but
    /// its features stay on.
    KeepAccess,
}

impl OnExpiry {
    /// Every choice.
    pub const ALL: [Self; 3] = [
        Self::LoseAccess,
        Self::KeepVersionsReleasedBeforeExpiry,
        Self::KeepAccess,
    ];

    /// Whether this is the default (left out of documents).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::LoseAccess
    }
}

/// How a policy's own rules are applied (a policy's `enforcement`,
/// docs/PROTOCOL.md §24): expiry, the instance and machine limits and
/// quotas. Suspension and revocation always apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// What the rules refuse is refused.
    #[default]
    Enforce,
    /// Nothing the rules refuse is refused; the verdict carries `warnings`
    /// for the product to show.
    Warn,
    /// As `warn`, for the vendor only: the product shows nothing.
    Observe,
}

impl Enforcement {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Enforce, Self::Warn, Self::Observe];

    /// Whether this is the default (left out of documents).
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::Enforce
    }
}

/// A license's stored state (expiry is not a state: it follows from the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LicenseState {
    /// In force (subject to its period).
    Active,
    /// Suspended; may be reinstated.
    Suspended,
    /// Revoked; final.
    Revoked,
}

impl LicenseState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Active, Self::Suspended, Self::Revoked];

    /// Wire name, without allocating (hot paths: metrics labels, SQL). The
    /// tests hold it equal to the serde name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }
}

/// State of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted by the receiver; will be retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retries exhausted (24 h) without a 2xx.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];
}

/// What an audit event records (and what a webhook may ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// A license was issued.
    #[serde(rename = "license.issued")]
    LicenseIssued,
    /// Its expiry moved by an administrator.
    #[serde(rename = "license.extended")]
    LicenseExtended,
    /// Its expiry moved by the scheduler.
    #[serde(rename = "license.auto_renewed")]
    LicenseAutoRenewed,
    /// Suspended.
    #[serde(rename = "license.suspended")]
    LicenseSuspended,
    /// Reinstated.
    #[serde(rename = "license.reinstated")]
    LicenseReinstated,
    /// Revoked.
    #[serde(rename = "license.revoked")]
    LicenseRevoked,
    /// Exported for an air-gapped site.
    #[serde(rename = "license.exported")]
    LicenseExported,
    /// Reached an expiry horizon (30 d, 7 d, 1 d by default).
    #[serde(rename = "license.expiring")]
    LicenseExpiring,
    /// Reached its expiry.
    #[serde(rename = "license.expired")]
    LicenseExpired,
    /// An installation was refused past the instance limit.
    #[serde(rename = "license.instance_refused")]
    LicenseInstanceRefused,
    /// A machine was activated (it took a place).
    #[serde(rename = "machine.activated")]
    MachineActivated,
    /// A machine gave its place back, or the vendor released it.
    #[serde(rename = "machine.released")]
    MachineReleased,
    /// A floating machine's lease ran out.
    #[serde(rename = "lease.expired")]
    LeaseExpired,
    /// A machine was refused: every place is taken.
    #[serde(rename = "machine.refused")]
    MachineRefused,
    /// A metered feature passed 80 % of its quota in a period.
    #[serde(rename = "quota.threshold")]
    QuotaThreshold,
    /// A metered feature reached its quota in a period.
    #[serde(rename = "quota.exhausted")]
    QuotaExhausted,
    /// A policy was created.
    #[serde(rename = "policy.created")]
    PolicyCreated,
    /// A policy's settings were changed (every license under it gets a new
    /// revision).
    #[serde(rename = "policy.updated")]
    PolicyUpdated,
    /// A webhook endpoint was added.
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    /// A webhook endpoint was removed.
    #[serde(rename = "webhook.removed")]
    WebhookRemoved,
    /// A product was created.
    #[serde(rename = "product.created")]
    ProductCreated,
    /// An admin key was created (its name, role and products; never the key).
    #[serde(rename = "admin_key.created")]
    AdminKeyCreated,
    /// An admin key was revoked.
    #[serde(rename = "admin_key.revoked")]
    AdminKeyRevoked,
    /// A batch of licenses was imported (one event per batch: how many,
    /// the first and last license id, the import it belongs to).
    #[serde(rename = "licenses.imported")]
    LicensesImported,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 24] = [
        Self::LicenseIssued,
        Self::LicenseExtended,
        Self::LicenseAutoRenewed,
        Self::LicenseSuspended,
        Self::LicenseReinstated,
        Self::LicenseRevoked,
        Self::LicenseExported,
        Self::LicenseExpiring,
        Self::LicenseExpired,
        Self::LicenseInstanceRefused,
        Self::MachineActivated,
        Self::MachineReleased,
        Self::LeaseExpired,
        Self::MachineRefused,
        Self::QuotaThreshold,
        Self::QuotaExhausted,
        Self::PolicyCreated,
        Self::PolicyUpdated,
        Self::WebhookCreated,
        Self::WebhookRemoved,
        Self::ProductCreated,
        Self::AdminKeyCreated,
        Self::AdminKeyRevoked,
        Self::LicensesImported,
    ];
}

/// An administrator's change of a license's state. Its name is the last
/// segment of its admin route (`/v1/admin/licenses/{id}/suspend`); what it
/// may change from is docs/PROTOCOL.md §15's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateAction {
    /// Active → suspended.
    Suspend,
    /// Suspended → active.
    Reinstate,
    /// Active or suspended → revoked, for good.
    Revoke,
}

impl StateAction {
    /// Every action.
    pub const ALL: [Self; 3] = [Self::Suspend, Self::Reinstate, Self::Revoke];

    /// The audit event it records.
    #[must_use]
    pub fn event(self) -> EventKind {
        match self {
            Self::Suspend => EventKind::LicenseSuspended,
            Self::Reinstate => EventKind::LicenseReinstated,
            Self::Revoke => EventKind::LicenseRevoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: std::fmt::Display + std::str::FromStr + PartialEq + std::fmt::Debug + Serialize,
    {
        for v in all {
            let text = v.to_string();
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(text.clone())
            );
            assert_eq!(text.parse::<T>().ok().as_ref(), Some(v), "{text}");
        }
    }

    #[test]
    fn every_wire_enum_has_one_spelling_and_refuses_unknown_text() {
        round_trips(&RenewalBasis::ALL);
        round_trips(&OnExpiry::ALL);
        round_trips(&Enforcement::ALL);
        round_trips(&LicenseState::ALL);
        round_trips(&DeliveryState::ALL);
        round_trips(&EventKind::ALL);
        round_trips(&StateAction::ALL);
        round_trips(&MachineMode::ALL);
        round_trips(&MachineState::ALL);
        for s in LicenseState::ALL {
            assert_eq!(s.as_str(), s.to_string());
        }
        assert_eq!(
            "from_now".parse::<RenewalBasis>().unwrap(),
            RenewalBasis::FromNow
        );
        for unknown in ["", "From_Now", "fromnow", "from_now ", "expired"] {
            assert!(unknown.parse::<RenewalBasis>().is_err(), "{unknown:?}");
            assert!(unknown.parse::<LicenseState>().is_err(), "{unknown:?}");
        }
        assert!("license.unknown".parse::<EventKind>().is_err());
        assert_eq!(
            "license.revoked".parse::<EventKind>().unwrap(),
            EventKind::LicenseRevoked
        );
    }
}
