//! Administrator keys: stored as SHA-256 hashes, looked up by hash; and
//! console sessions.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tessera_protocol::AdminKey;

use tessera_protocol::Timestamp;
use tessera_protocol::wire::{AdminKeyInput, AdminKeyView, CreatedAdminKey, EventKind};

use crate::access::{Principal, Role};
use crate::clock::Clock;
use crate::error::Error;
use crate::model::NewEvent;
use crate::store::{AdminKeyRecord, Store};

/// What presenting an admin key comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// A live key: who it is and what it may do.
    Valid(Principal),
    /// A key that was valid until its expiry.
    Expired,
    /// Not a key, or a revoked one.
    Unknown,
}

/// Checks presented admin keys against the store: one indexed read by the
/// key's SHA-256 per request, so a key revoked through any replica stops
/// working on every replica at once. (A lookup by hash leaks nothing a
/// timing attack could use: guessing a hash's prefix needs its preimage.)
pub struct AdminAuth {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth").finish_non_exhaustive()
    }
}

impl AdminAuth {
    /// Keys in `store`, expiring by `clock`.
    #[must_use]
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// What `presented` is.
    ///
    /// # Errors
    /// The store's.
    pub async fn authenticate(&self, presented: &str) -> crate::Result<KeyCheck> {
        let Ok(key) = AdminKey::parse(presented) else {
            return Ok(KeyCheck::Unknown);
        };
        let Some(record) = self.store.admin_key_by_hash(&key.hash()).await? else {
            return Ok(KeyCheck::Unknown);
        };
        Ok(match record.principal.expires_at {
            Some(at) if at <= self.clock.now() => KeyCheck::Expired,
            _ => KeyCheck::Valid(record.principal),
        })
    }
}

impl AdminAuth {
    /// Create a key: its record is stored (hash only) and the key returned,
    /// to be shown once.
    ///
    /// # Errors
    /// 422 for a bad name, role, product list or expiry; 404 for an
    /// unknown product; 409 when the name is taken.
    pub async fn create_key(
        &self,
        input: AdminKeyInput,
        actor: &str,
    ) -> crate::Result<CreatedAdminKey> {
        let now = self.clock.now();
        let name = input.name.trim().to_owned();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(Error::unprocessable(
                "invalid_name",
                "a key name is 1–64 letters, digits, '-', '_' or '.'",
            ));
        }
        let role: Role = input.role.trim().parse()?;
        let products = match input.products {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(Error::unprocessable(
                    "invalid_products",
                    "give at least one product, or none for all products",
                ));
            }
            Some(list) => {
                let mut names = Vec::with_capacity(list.len());
                for p in list {
                    let p = p.trim().to_owned();
                    if !self.store.product_exists(&p).await? {
                        return Err(Error::not_found("product", p));
                    }
                    if !names.contains(&p) {
                        names.push(p);
                    }
                }
                Some(names)
            }
        };
        let expires_at = input
            .expires
            .as_deref()
            .map(|text| expiry(text.trim(), now))
            .transpose()?;
        let key = AdminKey::generate(&mut rand::rng());
        let principal = Principal {
            name: name.clone(),
            role,
            products,
            expires_at,
        };
        let record = AdminKeyRecord {
            hash: key.hash(),
            principal,
            created_at: now,
        };
        let event = key_event(EventKind::AdminKeyCreated, actor, now, &record.principal);
        self.store.insert_admin_key(&record, Some(event)).await?;
        tracing::info!(key = %record.principal.name, role = %role, actor, "admin key created");
        Ok(CreatedAdminKey {
            view: view(&record, now),
            key: key.expose_secret().to_owned(),
        })
    }

    /// Every key not revoked.
    ///
    /// # Errors
    /// The store's.
    pub async fn keys(&self) -> crate::Result<Vec<AdminKeyView>> {
        let now = self.clock.now();
        Ok(self
            .store
            .admin_keys()
            .await?
            .iter()
            .map(|k| view(k, now))
            .collect())
    }

    /// Revoke key `name`: it stops working on every replica with the next
    /// request, and its console sessions end.
    ///
    /// # Errors
    /// 404 unknown; 409 `last_admin_key`.
    pub async fn revoke_key(&self, name: &str, actor: &str) -> crate::Result<()> {
        let now = self.clock.now();
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: EventKind::AdminKeyRevoked,
            before: None,
            after: Some(serde_json::json!({ "name": name })),
        };
        self.store.revoke_admin_key(name, event).await?;
        tracing::info!(key = %name, actor, "admin key revoked");
        Ok(())
    }
}

/// A key's expiry: a date, an RFC 3339 time or a duration from now; in
/// the future.
fn expiry(text: &str, now: Timestamp) -> crate::Result<Timestamp> {
    let at = match tessera_protocol::human::parse_duration(text) {
        Ok(d) => now + d,
        Err(_) => tessera_protocol::human::parse_date_or_time(text).map_err(|_| {
            Error::unprocessable(
                "invalid_expiry",
                format!(
                    "expires {text:?} is neither a date, an RFC 3339 time nor a duration like 90d"
                ),
            )
        })?,
    };
    if at <= now {
        return Err(Error::unprocessable(
            "invalid_expiry",
            "a key's expiry must be in the future",
        ));
    }
    Ok(at)
}

fn view(k: &AdminKeyRecord, now: Timestamp) -> AdminKeyView {
    AdminKeyView {
        name: k.principal.name.clone(),
        role: k.principal.role.as_str().to_owned(),
        products: k.principal.products.clone(),
        expires_at: k.principal.expires_at,
        expired: k.principal.expires_at.is_some_and(|t| t <= now),
        created_at: k.created_at,
    }
}

/// The audit event of a key's creation: what it may do, never the key.
fn key_event(kind: EventKind, actor: &str, at: Timestamp, key: &Principal) -> NewEvent {
    NewEvent {
        at,
        actor: actor.to_owned(),
        kind,
        before: None,
        after: Some(serde_json::json!({
            "name": key.name,
            "role": key.role.as_str(),
            "products": key.products,
            "expires_at": key.expires_at.map(|t| tessera_protocol::time::format(&t)),
        })),
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

    /// The live session a cookie value names, with its key's rights (none
    /// once the key is revoked or expired).
    ///
    /// # Errors
    /// The store's.
    pub async fn find(
        &self,
        cookie: &str,
    ) -> crate::Result<Option<(crate::model::Session, Principal)>> {
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
