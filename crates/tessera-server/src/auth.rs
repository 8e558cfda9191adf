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

/// Console sessions: created from an admin key, kept in the store (so every
/// replica knows them), identified by a random id of which only the hash is
/// stored.
pub struct Sessions {
    store: std::sync::Arc<crate::store::Store>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    lifetime: chrono::Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_hash(id: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    /// Sessions in `store`, each lasting `lifetime`.
    #[must_use]
    pub fn new(
        store: std::sync::Arc<crate::store::Store>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        lifetime: chrono::Duration,
    ) -> Self {
        Self {
            store,
            clock,
            lifetime,
        }
    }

    /// How long a session lasts.
    #[must_use]
    pub fn lifetime(&self) -> chrono::Duration {
        self.lifetime
    }

    /// Start a session for `key_name`; returns the cookie value (secret).
    ///
    /// # Errors
    /// The store's.
    pub async fn start(&self, key_name: &str) -> crate::Result<(String, crate::model::Session)> {
        let id = random_hex(32);
        let now = self.clock.now();
        let session = crate::model::Session {
            id_hash: session_hash(&id),
            key_name: key_name.to_owned(),
            csrf: random_hex(32),
            created_at: now,
            expires_at: now + self.lifetime,
        };
        self.store.create_session(&session).await?;
        Ok((id, session))
    }

    /// The live session a cookie value names.
    ///
    /// # Errors
    /// The store's.
    pub async fn find(&self, cookie: &str) -> crate::Result<Option<crate::model::Session>> {
        if cookie.len() != 64 || !cookie.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        self.store
            .session(&session_hash(cookie), self.clock.now())
            .await
    }

    /// End a session.
    ///
    /// # Errors
    /// The store's.
    pub async fn end(&self, session: &crate::model::Session) -> crate::Result<()> {
        self.store.delete_session(&session.id_hash).await
    }

    /// Whether a submitted CSRF token is the session's (constant time).
    #[must_use]
    pub fn csrf_ok(session: &crate::model::Session, submitted: &str) -> bool {
        bool::from(session.csrf.as_bytes().ct_eq(submitted.as_bytes()))
    }
}
