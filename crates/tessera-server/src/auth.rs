//! Administrator keys: stored as SHA-256 hashes, compared in constant time.

use arc_swap::ArcSwap;
use subtle::ConstantTimeEq;
use tessera_protocol::AdminKey;

use crate::store::AdminKeyRecord;

/// The set of valid admin keys (hashes only).
#[derive(Debug)]
pub struct AdminAuth {
    keys: ArcSwap<Vec<AdminKeyRecord>>,
}

impl AdminAuth {
    /// From the stored keys.
    #[must_use]
    pub fn new(keys: Vec<AdminKeyRecord>) -> Self {
        Self {
            keys: ArcSwap::from_pointee(keys),
        }
    }

    /// Replace the key set (after a key is added or revoked).
    pub fn replace(&self, keys: Vec<AdminKeyRecord>) {
        self.keys.store(std::sync::Arc::new(keys));
    }

    /// The name of the key `presented` is, if it is a valid admin key.
    ///
    /// Every stored hash is compared, in constant time, whether or not an
    /// earlier one matched: the answer's timing says nothing about which
    /// bytes were right.
    #[must_use]
    pub fn authenticate(&self, presented: &str) -> Option<String> {
        let key = AdminKey::parse(presented).ok()?;
        let hash = key.hash();
        let keys = self.keys.load();
        let mut found = None;
        for record in keys.iter() {
            if bool::from(
                record
                    .hash
                    .as_str()
                    .as_bytes()
                    .ct_eq(hash.as_str().as_bytes()),
            ) {
                found = Some(record.name.clone());
            }
        }
        found
    }
}
