//! Keygen's validation rules over Tessera's state: which `code`, `detail`
//! and `valid` a Keygen validation answers (docs/KEYGEN.md). Pure: the
//! facts are gathered by the caller, in the order Keygen checks them
//! (keygen-api's `LicenseValidationService`), so that the first failing
//! check names the answer as Keygen's would.

use tessera_protocol::Status;

/// A validation's answer: `meta.valid`, `meta.detail`, `meta.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `meta.valid`.
    pub valid: bool,
    /// `meta.detail` (Keygen's wording).
    pub detail: &'static str,
    /// `meta.code`.
    pub code: &'static str,
}

const fn no(detail: &'static str, code: &'static str) -> Outcome {
    Outcome {
        valid: false,
        detail,
        code,
    }
}

/// The unknown key.
pub const NOT_FOUND: Outcome = no("does not exist", "NOT_FOUND");

/// The scope a validation names (`meta.scope`), as far as Tessera serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `product`: a product's name or id (`prd_…`).
    pub product: Option<String>,
    /// `policy`: a policy's name.
    pub policy: Option<String>,
    /// `machine`: a machine id (`mch_…`).
    pub machine: Option<String>,
    /// `fingerprint` / `fingerprints` (both present: `fingerprint`, as Keygen).
    pub fingerprints: Option<Vec<String>>,
    /// `entitlements`: codes the license must have.
    pub entitlements: Option<Vec<String>>,
}

/// Where a machine named by the scope stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Holds a place, and has sent a heartbeat (or needs none).
    Alive,
    /// Holds a place, needs heartbeats, and has sent none since activation.
    NotStarted,
    /// Its floating lease ran out.
    Dead,
    /// Not activated (never, or deactivated, or released).
    Missing,
}

/// What the rules need to know of the license.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Its status now.
    pub status: Status,
    /// Expired but still usable by its policy (Keygen: `ALLOW_ACCESS`,
    /// `MAINTAIN_ACCESS`): answered `EXPIRED` with `valid: true`.
    pub keeps_access: bool,
    /// Product name.
    pub product: &'a str,
    /// Policy name.
    pub policy: &'a str,
    /// Feature names (Keygen: entitlement codes).
    pub features: &'a [String],
    /// It counts machines (Keygen: a `strict` policy).
    pub strict: bool,
    /// Machines hold leases renewed by heartbeats (Keygen: `floating` with
    /// `requireHeartbeat`).
    pub floating: bool,
    /// Its machine limit.
    pub max_machines: Option<u32>,
    /// Machines holding a place.
    pub machines: u32,
    /// The scope's `machine`, when named.
    pub machine: Option<MachineState>,
    /// The scope's fingerprints, each's machine.
    pub fingerprints: &'a [MachineState],
}

/// The answer for a known license, checked in Keygen's order.
#[must_use]
pub fn outcome(facts: &Facts<'_>, scope: &Scope) -> Outcome {
    let expired = facts.status == Status::Expired;
    match facts.status {
        Status::Suspended => return no("is suspended", "SUSPENDED"),
        // Revoked is final in Tessera; Keygen's nearest final code.
        Status::Revoked => return no("is revoked", "BANNED"),
        _ => {}
    }
    if expired && !facts.keeps_access {
        return no("is expired", "EXPIRED");
    }
    if let Some(p) = &scope.product
        && p != facts.product
        && p.strip_prefix("prd_") != Some(facts.product)
    {
        return no("product scope does not match", "PRODUCT_SCOPE_MISMATCH");
    }
    if let Some(p) = &scope.policy
        && p != facts.policy
    {
        return no("policy scope does not match", "POLICY_SCOPE_MISMATCH");
    }
    if let Some(wanted) = &scope.entitlements {
        if wanted.is_empty() {
            return no("entitlements scope is empty", "ENTITLEMENTS_SCOPE_EMPTY");
        }
        if !wanted.iter().all(|w| facts.features.contains(w)) {
            return no(
                "is missing one or more required entitlements",
                "ENTITLEMENTS_MISSING",
            );
        }
    }
    if let Some(machine) = facts.machine {
        if let Some(none) = no_machines(facts, true) {
            return none;
        }
        match machine {
            MachineState::Missing => {
                return no(
                    "machine is not activated (does not match any associated machines)",
                    "MACHINE_SCOPE_MISMATCH",
                );
            }
            MachineState::NotStarted => {
                return no("machine heartbeat is required", "HEARTBEAT_NOT_STARTED");
            }
            MachineState::Dead => return no("machine heartbeat is dead", "HEARTBEAT_DEAD"),
            MachineState::Alive => {}
        }
    }
    if let Some(fingerprints) = &scope.fingerprints {
        if fingerprints.is_empty() {
            return no("fingerprint scope is empty", "FINGERPRINT_SCOPE_EMPTY");
        }
        if let Some(none) = no_machines(facts, false) {
            return none;
        }
        let states = facts.fingerprints;
        if states.iter().all(|s| *s == MachineState::Dead) {
            return no("machine heartbeat is dead", "HEARTBEAT_DEAD");
        }
        let alive = |s: &&MachineState| matches!(s, MachineState::Alive | MachineState::NotStarted);
        if !states.iter().any(|s| alive(&s)) {
            return no(
                "fingerprint is not activated (does not match any associated machines)",
                "FINGERPRINT_SCOPE_MISMATCH",
            );
        }
        if states.contains(&MachineState::NotStarted) {
            return no("machine heartbeat is required", "HEARTBEAT_NOT_STARTED");
        }
    } else if facts.strict && facts.machine.is_none() && facts.machines > 0 {
        // Tessera's own rule: a license that counts machines is answered
        // per machine, so a validation must say which (Keygen: a policy
        // with `requireFingerprintScope`).
        return no(
            "fingerprint scope is required",
            "FINGERPRINT_SCOPE_REQUIRED",
        );
    }
    if facts.strict {
        if facts.machines == 0 {
            return if facts.floating {
                no("must have at least 1 associated machine", "NO_MACHINES")
            } else {
                no("must have exactly 1 associated machine", "NO_MACHINE")
            };
        }
        if facts.max_machines.is_some_and(|max| facts.machines > max) {
            return no("has too many associated machines", "TOO_MANY_MACHINES");
        }
    }
    if expired {
        return Outcome {
            valid: true,
            detail: "is expired",
            code: "EXPIRED",
        };
    }
    Outcome {
        valid: true,
        detail: "is valid",
        code: "VALID",
    }
}

/// `NO_MACHINE` / `NO_MACHINES` for a scope naming a machine (`by_id`) or
/// a fingerprint of a license that has none.
fn no_machines(facts: &Facts<'_>, by_id: bool) -> Option<Outcome> {
    if facts.machines > 0 {
        return None;
    }
    Some(match (by_id, facts.floating) {
        (true, false) => no(
            "machine is not activated (has no associated machine)",
            "NO_MACHINE",
        ),
        (true, true) => no(
            "machine is not activated (has no associated machines)",
            "NO_MACHINES",
        ),
        (false, false) => no(
            "fingerprint is not activated (has no associated machine)",
            "NO_MACHINE",
        ),
        (false, true) => no(
            "fingerprint is not activated (has no associated machines)",
            "NO_MACHINES",
        ),
    })
}

/// Keygen's license `status` attribute.
#[must_use]
pub fn license_status(status: Status, expiring: bool) -> &'static str {
    match status {
        Status::Suspended => "SUSPENDED",
        Status::Revoked => "BANNED",
        Status::Expired => "EXPIRED",
        _ if expiring => "EXPIRING",
        _ => "ACTIVE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(features: &'a [String], fingerprints: &'a [MachineState]) -> Facts<'a> {
        Facts {
            status: Status::Active,
            keeps_access: false,
            product: "ee",
            policy: "default",
            features,
            strict: false,
            floating: false,
            max_machines: None,
            machines: 0,
            machine: None,
            fingerprints,
        }
    }

    #[test]
    fn state_comes_before_every_scope() {
        let features = vec!["sso".to_owned()];
        let scope = Scope {
            product: Some("other".into()),
            ..Scope::default()
        };
        let mut f = facts(&features, &[]);
        f.status = Status::Suspended;
        assert_eq!(outcome(&f, &scope).code, "SUSPENDED");
        f.status = Status::Expired;
        assert_eq!(outcome(&f, &scope).code, "EXPIRED");
        f.keeps_access = true;
        assert_eq!(outcome(&f, &scope).code, "PRODUCT_SCOPE_MISMATCH");
        assert_eq!(
            outcome(&f, &Scope::default()),
            Outcome {
                valid: true,
                detail: "is expired",
                code: "EXPIRED"
            },
            "kept past expiry: EXPIRED, valid"
        );
    }

    #[test]
    fn scopes_in_keygens_order() {
        let features = vec!["sso".to_owned(), "audit".to_owned()];
        let f = facts(&features, &[]);
        let product = |p: &str| Scope {
            product: Some(p.into()),
            ..Scope::default()
        };
        assert_eq!(outcome(&f, &product("ee")).code, "VALID");
        assert_eq!(outcome(&f, &product("prd_ee")).code, "VALID");
        assert_eq!(outcome(&f, &product("ce")).code, "PRODUCT_SCOPE_MISMATCH");
        let ents = |e: &[&str]| Scope {
            entitlements: Some(e.iter().map(|s| (*s).to_owned()).collect()),
            ..Scope::default()
        };
        assert_eq!(outcome(&f, &ents(&["sso", "audit"])).code, "VALID");
        assert_eq!(
            outcome(&f, &ents(&["sso", "scim"])).code,
            "ENTITLEMENTS_MISSING"
        );
        assert_eq!(outcome(&f, &ents(&[])).code, "ENTITLEMENTS_SCOPE_EMPTY");
    }

    #[test]
    fn machines_and_heartbeats() {
        let fp = Scope {
            fingerprints: Some(vec!["a".into()]),
            ..Scope::default()
        };
        let mut f = facts(&[], &[MachineState::Missing]);
        f.strict = true;
        f.max_machines = Some(2);
        assert_eq!(outcome(&f, &fp).code, "NO_MACHINE");
        assert_eq!(outcome(&f, &Scope::default()).code, "NO_MACHINE");
        f.floating = true;
        assert_eq!(outcome(&f, &fp).code, "NO_MACHINES");
        f.machines = 1;
        assert_eq!(outcome(&f, &fp).code, "FINGERPRINT_SCOPE_MISMATCH");
        assert_eq!(
            outcome(&f, &Scope::default()).code,
            "FINGERPRINT_SCOPE_REQUIRED"
        );
        for (state, code) in [
            (MachineState::Alive, "VALID"),
            (MachineState::NotStarted, "HEARTBEAT_NOT_STARTED"),
            (MachineState::Dead, "HEARTBEAT_DEAD"),
        ] {
            let states = [state];
            let g = Facts {
                fingerprints: &states,
                ..f.clone()
            };
            assert_eq!(outcome(&g, &fp).code, code, "{state:?}");
        }
        let states = [MachineState::Alive];
        let g = Facts {
            fingerprints: &states,
            machines: 3,
            ..f.clone()
        };
        assert_eq!(outcome(&g, &fp).code, "TOO_MANY_MACHINES");
        let g = Facts {
            machine: Some(MachineState::Missing),
            ..f.clone()
        };
        assert_eq!(
            outcome(&g, &Scope::default()).code,
            "MACHINE_SCOPE_MISMATCH"
        );
    }
}
