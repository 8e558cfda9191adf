//! The verdict as the agent shows it (JSON and page).

use chrono::Utc;
use serde::Serialize;
use tessera_client::{Client, LastError, Timestamp, Verdict};

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// valid / expired / suspended / revoked / not_found / unverified.
    pub state: &'static str,
    /// For unverified: no_document / clock_tampered / stale.
    pub reason: Option<&'static str>,
    /// Whether the product may use the license now.
    pub valid: bool,
    pub license: Option<String>,
    pub customer: Option<String>,
    pub plan: Option<String>,
    pub features: Vec<String>,
    /// Features with terms of their own, by name: when they end; for a
    /// metered one its quota, `used` as this instance estimates it now
    /// (the authority's count plus what this instance consumed since).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entitlements: tessera_protocol::Entitlements,
    pub max_users: Option<u32>,
    /// The authority's metering shows more users than `max_users`.
    pub seats_exceeded: bool,
    /// Expired, yet valid by the policy's `on_expiry` (`keep_access`, or
    /// `keep_versions_released_before_expiry` for this version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_expiry: Option<tessera_protocol::wire::OnExpiry>,
    /// What the policy's rules refuse but it only warns of (`expired`,
    /// `too_many_machines`, `quota_exhausted:<feature>`…): the license stays
    /// usable. Under `observe` the product shows nothing of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How the policy's rules apply: enforce, warn or observe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<tessera_protocol::wire::Enforcement>,
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub expires_at: Option<Timestamp>,
    /// Days until expiry, counting a started day as a day (1 = within 24 h;
    /// 0 or less = expired); null when perpetual.
    pub days_left: Option<i64>,
    pub revision: Option<u64>,
    /// Until when the held document may be relied on without contact (its
    /// `exp`): for an offline license, when the next file is due.
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub fresh_until: Option<Timestamp>,
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub last_verified_at: Option<Timestamp>,
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub offline_since: Option<Timestamp>,
    pub last_error: Option<LastError>,
    /// A change stream to the authority is open: changes arrive as pushed.
    pub stream_connected: bool,
    pub instance_id: String,
    pub server: Option<String>,
    /// Where this machine stands, for a license that counts machines.
    pub machine: Option<MachineStatus>,
}

/// The machine part of `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct MachineStatus {
    /// Its activation (`mch_…`), while it holds a place.
    pub id: Option<String>,
    /// `node_locked` or `floating`.
    pub mode: tessera_protocol::wire::MachineMode,
    /// Machines holding a place on the license.
    pub used: u32,
    /// The limit; null = unlimited.
    pub max: Option<u32>,
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub activated_at: Option<Timestamp>,
    /// Floating: when the lease ends unless renewed.
    #[serde(with = "tessera_protocol::time::rfc3339_opt")]
    pub lease_expires_at: Option<Timestamp>,
    /// Floating: how often the lease is renewed (a third of its length).
    pub lease_renews_every_secs: Option<u64>,
}

impl StatusView {
    pub fn of(client: &Client) -> Self {
        let mut view = Self::from_verdict(
            &client.verdict(),
            client.instance_id(),
            client.current_server(),
        );
        view.machine = client.machine().map(|m| MachineStatus {
            id: m.id,
            mode: m.mode,
            used: m.used,
            max: m.max,
            activated_at: m.activated_at,
            lease_expires_at: m.lease_expires_at,
            lease_renews_every_secs: m.lease_ttl.map(|t| (t.as_secs() / 3).max(1)),
        });
        for (feature, (_, used)) in client.quotas() {
            if let Some(q) = view
                .entitlements
                .get_mut(&feature)
                .and_then(|e| e.quota.as_mut())
            {
                q.used = Some(used);
            }
        }
        view
    }

    pub fn from_verdict(v: &Verdict, instance_id: String, server: Option<String>) -> Self {
        let license = v.license.as_ref();
        let expires_at = license.and_then(|l| l.expires_at);
        Self {
            state: v.state.as_str(),
            reason: v.reason.map(|r| r.as_str()),
            valid: v.is_valid(),
            license: license.and_then(|l| l.id.clone()),
            customer: license.and_then(|l| l.customer.clone()),
            plan: license.and_then(|l| l.plan.clone()),
            features: license.map(|l| l.features.clone()).unwrap_or_default(),
            entitlements: license.map(|l| l.entitlements.clone()).unwrap_or_default(),
            max_users: license.and_then(|l| l.max_users),
            seats_exceeded: license.is_some_and(|l| l.seats_exceeded),
            after_expiry: v.after_expiry,
            warnings: v.warnings.clone(),
            enforcement: license.map(|l| l.enforcement).filter(|e| !e.is_default()),
            expires_at,
            days_left: expires_at.map(|t| days_left(t - Utc::now())),
            revision: license.map(|l| l.revision),
            fresh_until: license.map(|l| l.fresh_until),
            last_verified_at: v.last_verified_at,
            offline_since: v.offline_since,
            last_error: v.last_error.clone(),
            stream_connected: v.connected,
            instance_id,
            server,
            machine: None,
        }
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        match (self.state, self.reason) {
            (_, Some(reason)) => format!("{} ({reason})", self.state),
            ("valid", None) => format!(
                "valid, plan {}, expires {}",
                self.plan.as_deref().unwrap_or("?"),
                self.expires_at
                    .map_or_else(|| "never".into(), |t| tessera_protocol::time::format(&t))
            ),
            (state, None) => state.to_owned(),
        }
    }
}

/// Days left, a started day counting as a day: 20 days minus a second is 20.
pub(crate) fn days_left(remaining: chrono::Duration) -> i64 {
    let secs = remaining.num_seconds();
    if secs > 0 {
        (secs + 86_399) / 86_400
    } else {
        secs / 86_400
    }
}
