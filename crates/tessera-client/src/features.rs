//! Pre-resolved feature checks: [`Client::feature`](crate::Client::feature)
//! resolves a name once to a bit in a word; every check after that is one
//! atomic load and a bit test.
//!
//! Every feature ever asked for gets a bit. Each time a verdict is published
//! the bits are recomputed from it ([`FeatureBits::republish`]): bit set iff
//! [`Verdict::has_feature`] says so. A handle therefore follows every
//! verdict change — renewal, suspension, a feature's own end (§20), the
//! offline grace running out — exactly as `has_feature(&str)` does, without
//! looking anything up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::verdict::Verdict;

/// A feature resolved once ([`Client::feature`](crate::Client::feature)):
/// cheap to clone, valid across verdict changes for as long as the client
/// runs (after the client is dropped it keeps answering the last verdict).
#[derive(Clone)]
pub struct Feature {
    word: Arc<AtomicU64>,
    mask: u64,
    name: Arc<str>,
}

impl Feature {
    /// Whether the feature is granted now: one atomic load and a bit test.
    #[inline]
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.word.load(Ordering::Acquire) & self.mask != 0
    }

    /// The feature's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feature")
            .field("name", &self.name)
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// The bits of every feature resolved so far, 64 to a word.
#[derive(Default)]
pub(crate) struct FeatureBits {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Name → bit number.
    bits: HashMap<Arc<str>, usize>,
    /// Names by bit number.
    names: Vec<Arc<str>>,
    words: Vec<Arc<AtomicU64>>,
}

impl FeatureBits {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handle for `name`, its bit set from the verdict in `cell` now.
    pub(crate) fn resolve(&self, name: &str, cell: &ArcSwap<Verdict>) -> Feature {
        let mut registry = self.lock();
        let bit = match registry.bits.get(name) {
            Some(bit) => *bit,
            None => {
                let bit = registry.names.len();
                let name: Arc<str> = Arc::from(name);
                registry.bits.insert(name.clone(), bit);
                registry.names.push(name);
                if bit.is_multiple_of(64) {
                    registry.words.push(Arc::new(AtomicU64::new(0)));
                }
                // Under the lock, from the verdict published now: a publish
                // racing this one recomputes every bit after it (below).
                if cell.load().has_feature(&registry.names[bit]) {
                    registry.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
                }
                bit
            }
        };
        Feature {
            word: registry.words[bit / 64].clone(),
            mask: 1 << (bit % 64),
            name: registry.names[bit].clone(),
        }
    }

    /// Recompute every bit from the verdict in `cell`. Called after each
    /// store to `cell`, and it reads `cell` again under the lock: of two
    /// publishes racing, the bits end at whichever verdict was stored last.
    pub(crate) fn republish(&self, cell: &ArcSwap<Verdict>) {
        let registry = self.lock();
        if registry.names.is_empty() {
            return;
        }
        let verdict = cell.load();
        for (i, word) in registry.words.iter().enumerate() {
            let bits = registry
                .names
                .iter()
                .skip(i * 64)
                .take(64)
                .enumerate()
                .filter(|(_, name)| verdict.has_feature(name))
                .fold(0u64, |bits, (b, _)| bits | 1 << b);
            word.store(bits, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{LicenseInfo, VerdictState};

    fn granting(features: &[String]) -> Verdict {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        Verdict {
            state: VerdictState::Valid,
            license: Some(LicenseInfo {
                id: None,
                status: tessera_protocol::Status::Active,
                customer: None,
                plan: None,
                features: features.to_vec(),
                entitlements: tessera_protocol::Entitlements::default(),
                max_users: None,
                seats_exceeded: false,
                valid_from: None,
                expires_at: None,
                revision: 1,
                issued_at: now,
                refresh_after: now,
                fresh_until: now,
                enforcement: tessera_protocol::wire::Enforcement::default(),
            }),
            reason: None,
            ..Verdict::no_document()
        }
    }

    #[test]
    fn handles_follow_every_republished_verdict_past_one_word() {
        let names: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
        let cell = ArcSwap::from_pointee(Verdict::no_document());
        let bits = FeatureBits::default();
        let handles: Vec<Feature> = names.iter().map(|n| bits.resolve(n, &cell)).collect();
        assert!(
            handles.iter().all(|h| !h.is_enabled()),
            "nothing before a verdict"
        );
        // Every third feature granted, across three words.
        let granted: Vec<String> = names.iter().step_by(3).cloned().collect();
        cell.store(Arc::new(granting(&granted)));
        bits.republish(&cell);
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(h.is_enabled(), i % 3 == 0, "{}", h.name());
        }
        // Resolving again is the same bit, set from the verdict at once.
        let again = bits.resolve("f147", &cell);
        assert!(again.is_enabled() && Arc::ptr_eq(&again.word, &handles[147].word));
        assert_eq!(again.mask, handles[147].mask);
        // A name resolved after the verdict starts right.
        assert!(!bits.resolve("late", &cell).is_enabled());
        cell.store(Arc::new(granting(&["late".to_owned()])));
        bits.republish(&cell);
        assert!(bits.resolve("late", &cell).is_enabled());
        assert!(
            handles.iter().all(|h| !h.is_enabled()),
            "the others went off"
        );
        // A verdict that does not grant (expired, suspended): all off.
        let mut expired = granting(&names);
        expired.state = VerdictState::Expired;
        cell.store(Arc::new(expired));
        bits.republish(&cell);
        assert!(handles.iter().all(|h| !h.is_enabled()));
    }
}
