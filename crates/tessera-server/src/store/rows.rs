//! Row shapes shared by the backends and their conversion to domain types.

use chrono::{DateTime, Duration};
use tessera_protocol::wire::EventView;
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use crate::error::{Error, Result};
use crate::model::{Customer, Instance, License, LicensePolicy, Machine, MachineSettings, Policy};

/// `TryFrom<$row> for $model`: a stored row to its domain type, `r` being
/// the row (a malformed value is [`Error::Corrupt`]).
macro_rules! from_row {
    ($row:ty => $model:ty, |$r:ident| $body:block) => {
        impl TryFrom<$row> for $model {
            type Error = Error;
            fn try_from($r: $row) -> Result<$model> {
                $body
            }
        }
    };
}

pub(crate) fn ts(secs: i64) -> Result<Timestamp> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| Error::Corrupt(format!("timestamp {secs}")))
}

fn u32_opt(v: Option<i64>, what: &str) -> Result<Option<u32>> {
    v.map(|n| u32::try_from(n).map_err(|_| Error::Corrupt(format!("{what} {n}"))))
        .transpose()
}

fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{what} {v}")))
}

pub(crate) fn features_json(features: &[String]) -> String {
    serde_json::to_string(features).unwrap_or_else(|_| "[]".into())
}

fn features_of(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("features: {e}")))
}

/// A stored wire enum (its serde name) or id; anything else is corruption.
pub(crate) fn parsed<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("{what} {text:?}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow {
    id: String,
    name: String,
    duration_secs: Option<i64>,
    features: String,
    max_users: Option<i64>,
    trial: Flag,
    refresh_interval_secs: i64,
    offline_grace_secs: i64,
    renewal_basis: String,
    auto_renew: Flag,
    auto_renew_period_secs: Option<i64>,
    renew_before_secs: i64,
    created_at: i64,
    on_expiry: String,
    enforcement: String,
    product_id: Option<String>,
    #[sqlx(flatten)]
    machines: MachineRow,
}

/// A product's name from its id: ids are `prd_` + the name (names never
/// change), so rows carry the id and nothing needs a join to name it.
pub(crate) fn product_name(id: &str) -> Result<String> {
    id.strip_prefix(crate::model::Product::ID_PREFIX)
        .map(str::to_owned)
        .ok_or_else(|| Error::Corrupt(format!("product id {id:?}")))
}

from_row!(PolicyRow => Policy, |r| {
    Ok(Policy {
        id: parsed(&r.id, "policy id")?,
        name: r.name,
        duration: r.duration_secs.map(Duration::seconds),
        features: features_of(&r.features)?,
        max_users: u32_opt(r.max_users, "max_users")?,
        trial: r.trial.0,
        refresh_interval: Duration::seconds(r.refresh_interval_secs),
        offline_grace: Duration::seconds(r.offline_grace_secs),
        renewal_basis: parsed(&r.renewal_basis, "renewal basis")?,
        auto_renew: r.auto_renew.0,
        auto_renew_period: r.auto_renew_period_secs.map(Duration::seconds),
        renew_before: Duration::seconds(r.renew_before_secs),
        on_expiry: parsed(&r.on_expiry, "on_expiry")?,
        enforcement: parsed(&r.enforcement, "enforcement")?,
        product: r.product_id.as_deref().map(product_name).transpose()?,
        machines: r.machines.settings()?,
        created_at: ts(r.created_at)?,
    })
});

/// The policy columns, as a literal for `concat!` (sqlx takes only static SQL).
macro_rules! policy_columns {
    () => {
        "id, name, duration_secs, features, max_users, trial, \
         refresh_interval_secs, offline_grace_secs, renewal_basis, auto_renew, \
         auto_renew_period_secs, renew_before_secs, created_at, on_expiry, enforcement, \
         max_machines, machine_mode, lease_ttl_secs, max_borrow_secs, fingerprint_match, \
         product_id"
    };
}
pub(crate) use policy_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct LicenseRow {
    id: String,
    token_hash: String,
    token_last4: String,
    customer_id: String,
    customer: String,
    product_id: String,
    metadata: String,
    policy_name: String,
    refresh_interval_secs: i64,
    offline_grace_secs: i64,
    renewal_basis: String,
    policy_duration_secs: Option<i64>,
    policy_auto_renew: Flag,
    auto_renew_period_secs: Option<i64>,
    renew_before_secs: i64,
    on_expiry: String,
    enforcement: String,
    auto_renew: Option<Flag>,
    plan: String,
    features: String,
    entitlements: String,
    max_users: Option<i64>,
    trial: Flag,
    valid_from: i64,
    expires_at: Option<i64>,
    state: String,
    revision: i64,
    created_at: i64,
    updated_at: i64,
    #[sqlx(flatten)]
    machines: MachineRow,
}

from_row!(LicenseRow => License, |r| {
    Ok(License {
        id: LicenseId::parse(&r.id).map_err(|e| Error::Corrupt(e.to_string()))?,
        token_hash: TokenHash::from_hex(&r.token_hash)
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        token_last4: r.token_last4,
        customer_id: parsed(&r.customer_id, "customer id")?,
        customer: r.customer,
        product: product_name(&r.product_id)?,
        metadata: serde_json::from_str(&r.metadata)
            .map_err(|e| Error::Corrupt(format!("metadata: {e}")))?,
        policy: LicensePolicy {
            name: r.policy_name,
            refresh_interval: Duration::seconds(r.refresh_interval_secs),
            offline_grace: Duration::seconds(r.offline_grace_secs),
            renewal_basis: parsed(&r.renewal_basis, "renewal basis")?,
            duration: r.policy_duration_secs.map(Duration::seconds),
            auto_renew: r.policy_auto_renew.0,
            auto_renew_period: r.auto_renew_period_secs.map(Duration::seconds),
            renew_before: Duration::seconds(r.renew_before_secs),
            on_expiry: parsed(&r.on_expiry, "on_expiry")?,
            enforcement: parsed(&r.enforcement, "enforcement")?,
        },
        auto_renew: r.auto_renew.map(|f| f.0),
        plan: r.plan,
        features: features_of(&r.features)?,
        entitlements: serde_json::from_str(&r.entitlements)
            .map_err(|e| Error::Corrupt(format!("entitlements: {e}")))?,
        // Filled by the store where a license is read one at a time.
        quota_used: std::collections::BTreeMap::new(),
        max_users: u32_opt(r.max_users, "max_users")?,
        trial: r.trial.0,
        valid_from: ts(r.valid_from)?,
        expires_at: r.expires_at.map(ts).transpose()?,
        state: parsed(&r.state, "state")?,
        revision: u64_of(r.revision, "revision")?,
        created_at: ts(r.created_at)?,
        updated_at: ts(r.updated_at)?,
        machines: r.machines.settings()?,
    })
});

/// The machine settings columns, the same on `policies` and `licenses`.
#[derive(sqlx::FromRow)]
pub(crate) struct MachineRow {
    max_machines: Option<i64>,
    machine_mode: String,
    lease_ttl_secs: i64,
    max_borrow_secs: i64,
    fingerprint_match: String,
}

impl MachineRow {
    fn settings(self) -> Result<MachineSettings> {
        Ok(MachineSettings {
            max_machines: u32_opt(self.max_machines, "max_machines")?,
            mode: parsed(&self.machine_mode, "machine mode")?,
            lease_ttl: Duration::seconds(self.lease_ttl_secs),
            max_borrow: Duration::seconds(self.max_borrow_secs),
            fingerprint_match: parsed(&self.fingerprint_match, "fingerprint match")?,
        })
    }
}

/// Bind the machine settings columns, in the order `MachineRow` lists them.
pub(crate) fn bind_machines<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    m: &MachineSettings,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(m.max_machines.map(i64::from))
        .bind(m.mode.to_string())
        .bind(m.lease_ttl.num_seconds())
        .bind(m.max_borrow.num_seconds())
        .bind(m.fingerprint_match.to_string())
}

#[derive(sqlx::FromRow)]
pub(crate) struct MachineActivationRow {
    id: String,
    license_id: String,
    mfp: String,
    name: Option<String>,
    hostname: Option<String>,
    platform: Option<String>,
    components: String,
    state: String,
    activated_at: i64,
    last_heartbeat: i64,
    lease_expires_at: Option<i64>,
    ended_at: Option<i64>,
    heartbeat_started: Flag,
}

from_row!(MachineActivationRow => Machine, |r| {
    Ok(Machine {
        id: r.id,
        license_id: parsed(&r.license_id, "license id")?,
        mfp: r.mfp,
        name: r.name,
        hostname: r.hostname,
        platform: r.platform,
        components: features_of(&r.components)?,
        state: parsed(&r.state, "machine state")?,
        activated_at: ts(r.activated_at)?,
        last_heartbeat: ts(r.last_heartbeat)?,
        lease_expires_at: r.lease_expires_at.map(ts).transpose()?,
        ended_at: r.ended_at.map(ts).transpose()?,
        heartbeat_started: r.heartbeat_started.0,
    })
});

/// The license columns, joined with customer name and policy settings, as a
/// literal for `concat!`. Callers append `WHERE …`.
macro_rules! license_select {
    () => {
        concat!(
            $crate::store::rows::license_columns!(),
            $crate::store::rows::license_from!()
        )
    };
}

/// [`license_select`]'s column list alone (`SELECT …`, no `FROM`), for a
/// query that selects more beside them.
macro_rules! license_columns {
    () => {
        "SELECT l.id, l.token_hash, l.token_last4, l.customer_id, \
     c.name AS customer, l.product_id, l.metadata, p.name AS policy_name, p.refresh_interval_secs, \
     p.offline_grace_secs, p.renewal_basis, p.duration_secs AS policy_duration_secs, \
     p.auto_renew AS policy_auto_renew, p.auto_renew_period_secs, p.renew_before_secs, p.on_expiry, p.enforcement, \
     l.auto_renew, l.plan, l.features, l.entitlements, l.max_users, l.trial, \
     l.valid_from, l.expires_at, l.state, l.revision, l.created_at, l.updated_at, \
     l.max_machines, l.machine_mode, l.lease_ttl_secs, l.max_borrow_secs, l.fingerprint_match "
    };
}

/// [`license_select`]'s `FROM` and joins (aliases `l`, `c`, `p`).
macro_rules! license_from {
    () => {
        "FROM licenses l JOIN customers c ON c.id = l.customer_id \
     JOIN policies p ON p.id = l.policy_id "
    };
}
pub(crate) use {license_columns, license_from, license_select};

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    at: i64,
    actor: String,
    kind: String,
    license_id: Option<String>,
    revision: Option<i64>,
    before: Option<String>,
    after: Option<String>,
    prev_hash: Option<String>,
    hash: Option<String>,
}

from_row!(EventRow => EventView, |r| {
    let json = |s: Option<String>| -> Result<Option<serde_json::Value>> {
        s.map(|s| serde_json::from_str(&s).map_err(|e| Error::Corrupt(format!("event: {e}"))))
            .transpose()
    };
    Ok(EventView {
        seq: r.seq,
        at: ts(r.at)?,
        actor: r.actor,
        kind: r.kind,
        license: r.license_id,
        revision: r.revision.map(|v| u64_of(v, "revision")).transpose()?,
        before: json(r.before)?,
        after: json(r.after)?,
        prev_hash: r.prev_hash,
        hash: r.hash,
    })
});

#[derive(sqlx::FromRow)]
pub(crate) struct InstanceRow {
    instance_id: String,
    first_seen: i64,
    last_seen: i64,
    app_version: Option<String>,
    users: Option<i64>,
    held_revision: Option<i64>,
    stream_connected: Flag,
}

from_row!(InstanceRow => Instance, |r| {
    Ok(Instance {
        keygen_api: r
            .instance_id
            .starts_with(tessera_protocol::wire::KEYGEN_INSTANCE_PREFIX),
        instance_id: r.instance_id,
        first_seen: ts(r.first_seen)?,
        last_seen: ts(r.last_seen)?,
        app_version: r.app_version,
        users: u32_opt(r.users, "users")?,
        held_revision: r
            .held_revision
            .map(|v| u64_of(v, "held revision"))
            .transpose()?,
        stream_connected: r.stream_connected.0,
    })
});

#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRow {
    id: String,
    name: String,
    email: Option<String>,
    created_at: i64,
}

from_row!(CustomerRow => Customer, |r| {
    Ok(Customer {
        id: parsed(&r.id, "customer id")?,
        name: r.name,
        email: r.email,
        created_at: ts(r.created_at)?,
    })
});

pub(crate) fn collect<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = Error>,
{
    rows.into_iter().map(T::try_from).collect()
}

pub(crate) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(serde_json::Value::to_string)
}

pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A boolean column. SQLite keeps booleans as integers and PostgreSQL as
/// `BOOLEAN`; through the `Any` driver they arrive as different kinds, and
/// `bool` itself decodes only the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl sqlx::Type<sqlx::Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <bool as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        matches!(ty.kind(), sqlx::any::AnyTypeInfoKind::Bool) || ty.kind().is_integer()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Flag {
    fn decode(
        value: sqlx::any::AnyValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef as _;
        if matches!(value.type_info().kind(), sqlx::any::AnyTypeInfoKind::Bool) {
            <bool as sqlx::Decode<sqlx::Any>>::decode(value).map(Self)
        } else {
            <i64 as sqlx::Decode<sqlx::Any>>::decode(value).map(|n| Self(n != 0))
        }
    }
}
