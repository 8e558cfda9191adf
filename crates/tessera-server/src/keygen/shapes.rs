//! Keygen's JSON:API documents, field for field as Keygen's serializers
//! write them (keygen-api `app/serializers/{license,machine,entitlement}_serializer.rb`),
//! filled from Tessera's state. What Tessera has no notion of is `null` (or
//! 0, where Keygen counts); docs/KEYGEN.md lists each.

use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_protocol::Timestamp;
use tessera_protocol::wire::{LicenseState, MachineMode, MachineState};

use super::rules::{self, Outcome, Scope};
use crate::model::{License, Machine, Product};

/// Keygen's time format: RFC 3339 in UTC with milliseconds.
#[must_use]
pub fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time_opt(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// A license expiring within this many days is `EXPIRING` (as Keygen).
const EXPIRING_DAYS: i64 = 3;

/// `meta.scope` of a validation, as sent (Keygen's typed parameters:
/// anything else in it is refused).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    components: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entitlements: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
}

impl ScopeParams {
    /// What the rules check. `user`, `components`, `checksum`, `version`
    /// and `environment` are accepted and echoed but name nothing Tessera
    /// has (docs/KEYGEN.md).
    #[must_use]
    pub fn scope(&self) -> Scope {
        Scope {
            product: self.product.clone(),
            policy: self.policy.clone(),
            machine: self.machine.clone(),
            // Both given: `fingerprint`, as Keygen.
            fingerprints: self
                .fingerprint
                .clone()
                .map(|f| vec![f])
                .or_else(|| self.fingerprints.clone()),
            entitlements: self.entitlements.clone(),
        }
    }
}

/// `meta` of `POST …/licenses/actions/validate-key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateKeyMeta {
    /// The license key.
    pub key: String,
    /// Echoed.
    #[serde(default)]
    pub nonce: Option<i64>,
    /// The scope.
    #[serde(default)]
    pub scope: Option<ScopeParams>,
    /// Keygen's legacy encrypted keys: refused when `true`.
    #[serde(default)]
    pub encrypted: Option<bool>,
    /// The same, older name.
    #[serde(default)]
    pub legacy_encrypted: Option<bool>,
}

/// `meta` of `POST …/licenses/{id}/actions/validate` (all optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateMeta {
    /// Echoed.
    #[serde(default)]
    pub nonce: Option<i64>,
    /// The scope.
    #[serde(default)]
    pub scope: Option<ScopeParams>,
}

/// A JSON:API document whose top level is `meta`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaDocument<M> {
    /// The meta.
    pub meta: M,
}

/// `data.attributes` of a machine activation.
#[derive(Debug, Clone, Deserialize)]
pub struct MachineAttributes {
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// Accepted and not kept (Tessera counts machines, not cores).
    #[serde(default)]
    pub cores: Option<i64>,
    /// Accepted and not kept.
    #[serde(default)]
    pub memory: Option<i64>,
    /// Accepted and not kept.
    #[serde(default)]
    pub disk: Option<i64>,
    /// Accepted and not kept.
    #[serde(default)]
    pub ip: Option<String>,
    /// Accepted and not kept.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// `data` of a machine activation.
#[derive(Debug, Clone, Deserialize)]
pub struct MachineData {
    /// Must be `machines`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The attributes.
    pub attributes: MachineAttributes,
    /// `license`: the license (`{"data": {"type": "licenses", "id": …}}`).
    #[serde(default)]
    pub relationships: Option<Value>,
}

/// `POST …/machines`.
#[derive(Debug, Clone, Deserialize)]
pub struct MachineDocument {
    /// The machine.
    pub data: MachineData,
}

impl MachineDocument {
    /// The license id its relationships name, if any.
    #[must_use]
    pub fn license_id(&self) -> Option<&str> {
        self.data.relationships.as_ref()?["license"]["data"]["id"].as_str()
    }
}

/// Links and ids relative to one account.
#[derive(Debug, Clone, Copy)]
pub struct Shapes<'a> {
    /// The account id.
    pub account: &'a str,
}

impl Shapes<'_> {
    fn base(&self) -> String {
        format!("/v1/accounts/{}", self.account)
    }

    fn account_rel(&self) -> Value {
        json!({"links": {"related": self.base()}, "data": {"type": "accounts", "id": self.account}})
    }

    /// A license resource; `key` as the client gave it (Tessera keeps
    /// only its hash).
    #[must_use]
    pub fn license(&self, l: &License, key: &str, machines: u32, now: Timestamp) -> Value {
        let base = self.base();
        let id = l.id.as_str();
        let status = l.status_at(now);
        let expiring = l
            .expires_at
            .is_some_and(|e| e > now && e - now <= chrono::Duration::days(EXPIRING_DAYS));
        let m = &l.machines;
        let floating = m.mode == MachineMode::Floating;
        let related = |what: &str| json!({"related": format!("{base}/licenses/{id}/{what}")});
        json!({
            "id": id,
            "type": "licenses",
            "attributes": {
                "name": Value::Null,
                "key": key,
                "expiry": time_opt(l.expires_at),
                "status": rules::license_status(status, expiring),
                "uses": 0,
                "suspended": l.state == LicenseState::Suspended,
                "scheme": Value::Null,
                "encrypted": false,
                "strict": m.counts_machines(),
                "floating": floating,
                "protected": true,
                "version": Value::Null,
                "maxMachines": m.max_machines,
                "maxProcesses": Value::Null,
                "maxUsers": l.max_users,
                "maxCores": Value::Null,
                "maxMemory": Value::Null,
                "maxDisk": Value::Null,
                "maxUses": Value::Null,
                "requireHeartbeat": floating,
                "requireCheckIn": false,
                "lastValidated": Value::Null,
                "lastCheckIn": Value::Null,
                "nextCheckIn": Value::Null,
                "lastCheckOut": Value::Null,
                "metadata": l.metadata,
                "created": time(l.created_at),
                "updated": time(l.updated_at),
            },
            "relationships": {
                "account": self.account_rel(),
                "product": {"links": related("product"), "data": {"type": "products", "id": Product::id_of(&l.product)}},
                "policy": {"links": related("policy"), "data": {"type": "policies", "id": l.policy.name}},
                "group": {"links": related("group"), "data": Value::Null},
                "owner": {"links": related("owner"), "data": Value::Null},
                "users": {"links": related("users"), "meta": {"count": 0}},
                "machines": {"links": related("machines"), "meta": {"cores": 0, "memory": 0, "disk": 0, "count": machines}},
                "tokens": {"links": related("tokens")},
                "entitlements": {"links": related("entitlements")},
            },
            "links": {"self": format!("{base}/licenses/{id}")},
        })
    }

    /// A validation's answer: `{"meta": …, "data": license | null}`.
    #[must_use]
    pub fn validation(
        &self,
        outcome: Outcome,
        data: Value,
        at: Timestamp,
        nonce: Option<i64>,
        scope: Option<&ScopeParams>,
    ) -> Value {
        let mut meta = json!({
            "ts": time(at),
            "valid": outcome.valid,
            "detail": outcome.detail,
            "code": outcome.code,
        });
        if let Some(n) = nonce {
            meta["nonce"] = json!(n);
        }
        if let Some(s) = scope {
            meta["scope"] = json!(s);
        }
        json!({"meta": meta, "data": data})
    }

    /// A machine resource. `fingerprint`: as the client gave it, where it
    /// did; elsewhere its SHA-256 (Tessera keeps only the hash).
    #[must_use]
    pub fn machine(&self, m: &Machine, l: &License, fingerprint: Option<&str>) -> Value {
        let base = self.base();
        let id = &m.id;
        let floating = l.machines.mode == MachineMode::Floating;
        let status = match (m.state, m.heartbeat_started) {
            (MachineState::Expired, _) => "DEAD",
            (_, true) => "ALIVE",
            (_, false) => "NOT_STARTED",
        };
        let related = |what: &str| json!({"related": format!("{base}/machines/{id}/{what}")});
        json!({
            "id": id,
            "type": "machines",
            "attributes": {
                "fingerprint": fingerprint.unwrap_or(&m.mfp),
                "cores": Value::Null,
                "memory": Value::Null,
                "disk": Value::Null,
                "ip": Value::Null,
                "hostname": m.hostname,
                "platform": m.platform,
                "name": m.name,
                "requireHeartbeat": floating,
                "heartbeatStatus": status,
                "heartbeatDuration": floating.then(|| l.machines.lease_ttl.num_seconds()),
                "lastHeartbeat": if m.heartbeat_started { Value::String(time(m.last_heartbeat)) } else { Value::Null },
                "nextHeartbeat": time_opt(m.lease_expires_at),
                "lastCheckOut": Value::Null,
                "metadata": {},
                "created": time(m.activated_at),
                "updated": time(m.last_heartbeat),
            },
            "relationships": {
                "account": self.account_rel(),
                "product": {"links": related("product"), "data": {"type": "products", "id": Product::id_of(&l.product)}},
                "license": {"links": related("license"), "data": {"type": "licenses", "id": l.id.as_str()}},
                "owner": {"links": related("owner"), "data": Value::Null},
                "group": {"links": related("group"), "data": Value::Null},
                "components": {"links": related("components")},
                "processes": {"links": related("processes")},
            },
            "links": {"self": format!("{base}/machines/{id}")},
        })
    }

    /// The license's entitlements: its features (and metered entitlements),
    /// each with its name as `code`.
    #[must_use]
    pub fn entitlements(&self, l: &License) -> Value {
        let base = self.base();
        let mut codes: Vec<&String> = l.features.iter().chain(l.entitlements.keys()).collect();
        codes.sort();
        codes.dedup();
        let data: Vec<Value> = codes
            .into_iter()
            .map(|code| {
                let id = format!("ent_{code}");
                json!({
                    "id": id,
                    "type": "entitlements",
                    "attributes": {
                        "name": code,
                        "code": code,
                        "metadata": {},
                        "created": time(l.created_at),
                        "updated": time(l.updated_at),
                    },
                    "relationships": {"account": self.account_rel()},
                    "links": {"self": format!("{base}/entitlements/{id}")},
                })
            })
            .collect();
        json!({
            "data": data,
            "links": {
                "self": format!("{base}/licenses/{}/entitlements", l.id.as_str()),
                "meta": {"count": data.len()},
            },
        })
    }
}
