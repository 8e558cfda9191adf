//! What the held document says of the license, as the verdict shows it.

use serde::Serialize;
use tessera_protocol::entitlements::granted_at;
use tessera_protocol::wire::Enforcement;
use tessera_protocol::{Entitlements, Status, Timestamp, VerifiedDocument};

/// What the held document says of the license (shown whatever the verdict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseInfo {
    /// License id, when the authority knows the token.
    pub id: Option<String>,
    /// Status as the authority signed it.
    pub status: Status,
    /// Customer.
    pub customer: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Features granted now (a feature whose own end has passed is gone).
    pub features: Vec<String>,
    /// Features with terms of their own (when each ends), by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entitlements: Entitlements,
    /// Seat limit.
    pub max_users: Option<u32>,
    /// The authority's metering shows more users than `max_users`.
    pub seats_exceeded: bool,
    /// Start of the period.
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub valid_from: Option<Timestamp>,
    /// End of the period; `None` = perpetual.
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub expires_at: Option<Timestamp>,
    /// Revision.
    pub revision: u64,
    /// When the authority signed the held document.
    #[serde(with = "tessera_protocol::time::rfc3339")]
    pub issued_at: Timestamp,
    /// When to ask again without a live stream.
    #[serde(with = "tessera_protocol::time::rfc3339")]
    pub refresh_after: Timestamp,
    /// Hard freshness bound of the held document.
    #[serde(with = "tessera_protocol::time::rfc3339")]
    pub fresh_until: Timestamp,
    /// How the policy's rules apply (§24): under `warn` and `observe` what
    /// they refuse comes as the verdict's `warnings`; `observe` means the
    /// product shows nothing of them.
    pub enforcement: Enforcement,
}

impl LicenseInfo {
    /// From a verified document, at `now`: a feature whose own end has
    /// passed is not granted, however long the document is trusted.
    #[must_use]
    pub fn from_document(doc: &VerifiedDocument, now: Timestamp) -> Self {
        let c = doc.claims();
        Self {
            id: c.lic.clone(),
            status: c.status,
            customer: c.customer.clone(),
            plan: c.plan.clone(),
            features: granted_at(&c.features, &c.entitlements, now)
                .cloned()
                .collect(),
            entitlements: c.entitlements.clone(),
            max_users: c.max_users,
            seats_exceeded: c.seats_exceeded,
            valid_from: c.valid_from,
            expires_at: c.expires_at,
            revision: c.rev,
            issued_at: c.iat,
            refresh_after: c.refresh_after,
            fresh_until: c.exp,
            enforcement: c.enforcement,
        }
    }
}
