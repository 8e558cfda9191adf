//! The token cache: token hash → license (or "no such license"), shared by
//! validation, push and the change path.

use std::sync::Arc;

use moka::ops::compute::Op;
use tessera_protocol::{LicenseToken, TokenHash};

use crate::error::{Error, Result};
use crate::model::License;
use crate::store::Store;

/// Licenses by token hash, kept at the newest revision seen. Never expired
/// by time alone: changes replace entries (see [`TokenCache::remember`]).
/// Caching the misses too keeps a stream of unknown tokens off the
/// database.
pub struct TokenCache {
    store: Arc<Store>,
    by_token: moka::sync::Cache<TokenHash, Known>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

/// What the cache knows of a token hash.
#[derive(Debug, Clone)]
enum Known {
    License(Arc<License>),
    Missing,
}

impl TokenCache {
    /// A cache of at most `entries` tokens over `store`.
    #[must_use]
    pub fn new(store: Arc<Store>, entries: u64) -> Self {
        Self {
            store,
            by_token: moka::sync::Cache::new(entries),
        }
    }

    /// Keep `license` unless a newer revision is held.
    pub fn remember(&self, license: Arc<License>) {
        self.by_token
            .entry(license.token_hash.clone())
            .and_compute_with(|existing| match existing.as_ref().map(|e| e.value()) {
                Some(Known::License(held)) if held.revision >= license.revision => Op::Nop,
                _ => Op::Put(Known::License(license)),
            });
    }

    /// Note a metered feature's use in `period` on the held license, at its
    /// revision (§22): a use never goes down within a period, so of two
    /// reports racing here the larger count stays.
    pub fn note_quota_used(&self, license: &License, feature: &str, period: &str, used: u64) {
        self.by_token
            .entry(license.token_hash.clone())
            .and_compute_with(|existing| match existing.as_ref().map(|e| e.value()) {
                Some(Known::License(held)) => match held.quota_used.get(feature) {
                    Some((p, u)) if p == period && *u >= used => Op::Nop,
                    _ => {
                        let mut updated = License::clone(held);
                        updated
                            .quota_used
                            .insert(feature.to_owned(), (period.to_owned(), used));
                        Op::Put(Known::License(Arc::new(updated)))
                    }
                },
                _ => Op::Nop,
            });
    }

    /// Forget everything (notifications may have been missed).
    pub fn clear(&self) {
        self.by_token.invalidate_all();
    }

    /// The license of a token hash, from the cache or the store.
    ///
    /// # Errors
    /// The store's.
    pub async fn lookup(&self, hash: &TokenHash) -> Result<Option<Arc<License>>> {
        if let Some(known) = self.cached(hash) {
            return Ok(known);
        }
        let license = self.store.license_by_token_hash(hash).await?;
        Ok(self.learn(hash, license))
    }

    /// What the cache holds of `hash`: the license, or `Some(None)` for a
    /// token known to be no license's; `None` when it holds nothing.
    #[must_use]
    pub fn cached(&self, hash: &TokenHash) -> Option<Option<Arc<License>>> {
        match self.by_token.get(hash)? {
            Known::License(license) => Some(Some(license)),
            Known::Missing => Some(None),
        }
    }

    /// Keep what the store said of `hash` (read after [`TokenCache::cached`]
    /// held nothing), and return it.
    pub fn learn(&self, hash: &TokenHash, license: Option<License>) -> Option<Arc<License>> {
        let Some(license) = license else {
            // Only if nothing was learned meanwhile: an issue racing this
            // lookup must win.
            self.by_token
                .entry(hash.clone())
                .and_compute_with(|existing| match existing {
                    Some(_) => Op::Nop,
                    None => Op::Put(Known::Missing),
                });
            return None;
        };
        let license = Arc::new(license);
        self.remember(license.clone());
        Some(license)
    }

    /// The license of a token given as a credential (a stream's or a
    /// report's): 401 naming `credential` when unknown.
    ///
    /// # Errors
    /// 401; the store's.
    pub async fn known(&self, hash: &TokenHash, credential: &'static str) -> Result<Arc<License>> {
        self.lookup(hash)
            .await?
            .ok_or(Error::Unauthorized(credential))
    }
}

/// A token given as a credential: 401 naming `credential` when malformed.
///
/// # Errors
/// 401.
pub fn parse_credential(token: &str, credential: &'static str) -> Result<TokenHash> {
    LicenseToken::parse(token)
        .map(|t| t.hash())
        .map_err(|_| Error::Unauthorized(credential))
}
