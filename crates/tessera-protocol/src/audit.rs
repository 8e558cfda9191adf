//! The audit log's hash chain (docs/PROTOCOL.md §27): every event carries
//! the hash of the one before it, so a copy of the log proves its order and
//! that nothing was changed, inserted or removed in between. Pure: the
//! authority computes the chain as it appends, `tessera events verify`
//! recomputes it from the API.

use sha2::{Digest, Sha256};

use crate::wire::EventView;

/// The first event's `prev_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A link of a hash chain: SHA-256 (hex) of the compact JSON array of
/// `prev` followed by `fields`. The authority's audit log and a relay's
/// (§26) are both chained this way.
#[must_use]
pub fn link_hash(prev: &str, fields: &[serde_json::Value]) -> String {
    let mut array = Vec::with_capacity(fields.len() + 1);
    array.push(serde_json::Value::from(prev));
    array.extend_from_slice(fields);
    hex::encode(Sha256::digest(
        serde_json::Value::Array(array).to_string().as_bytes(),
    ))
}

/// An event's hash: [`link_hash`] of `[at (Unix seconds), actor, kind,
/// license, revision, before, after]`, `before` and `after` as their
/// compact JSON text.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    prev: &str,
    at: i64,
    actor: &str,
    kind: &str,
    license: Option<&str>,
    revision: Option<u64>,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    use serde_json::json;
    link_hash(
        prev,
        &[
            json!(at),
            json!(actor),
            json!(kind),
            json!(license),
            json!(revision),
            json!(before),
            json!(after),
        ],
    )
}

/// The hash `event` should carry after `prev`.
#[must_use]
pub fn hash_of(event: &EventView, prev: &str) -> String {
    let before = event.before.as_ref().map(serde_json::Value::to_string);
    let after = event.after.as_ref().map(serde_json::Value::to_string);
    event_hash(
        prev,
        event.at.timestamp(),
        &event.actor,
        &event.kind,
        event.license.as_deref(),
        event.revision,
        before.as_deref(),
        after.as_deref(),
    )
}

/// Walks a log oldest first and says where its chain breaks.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    prev: String,
    checked: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            prev: GENESIS.to_owned(),
            checked: 0,
        }
    }
}

impl ChainCheck {
    /// Continue after an event already trusted (its hash).
    #[must_use]
    pub fn after(hash: &str) -> Self {
        Self {
            prev: hash.to_owned(),
            checked: 0,
        }
    }

    /// Check the next event.
    ///
    /// # Errors
    /// Why the chain breaks at `event`: it names another previous event, or
    /// its content does not match its hash (changed after it was written).
    pub fn next(&mut self, event: &EventView) -> Result<(), String> {
        let (Some(prev), Some(hash)) = (&event.prev_hash, &event.hash) else {
            return Err(format!("event {} carries no hash", event.seq));
        };
        if *prev != self.prev {
            return Err(format!(
                "event {} does not follow the one before it (an event was removed or inserted)",
                event.seq
            ));
        }
        if hash_of(event, prev) != *hash {
            return Err(format!(
                "event {} was changed after it was written",
                event.seq
            ));
        }
        self.prev.clone_from(hash);
        self.checked += 1;
        Ok(())
    }

    /// Events checked so far.
    #[must_use]
    pub fn checked(&self) -> u64 {
        self.checked
    }
}
