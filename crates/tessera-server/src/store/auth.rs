//! Administrator keys and console sessions.

use tessera_protocol::{Timestamp, TokenHash};

use super::rows::{self};
use super::{AdminKeyRecord, Store};
use crate::access::{Principal, Role};
use crate::error::{Error, Result};
use crate::model::{NewEvent, Session};

/// The key columns, as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "k.name, k.key_hash, k.role, k.products, k.expires_at, k.created_at"
    };
}

type KeyRow = (String, String, String, Option<String>, Option<i64>, i64);

fn record(row: KeyRow) -> Result<AdminKeyRecord> {
    let (name, hash, role, products, expires_at, created_at) = row;
    let products = products
        .map(|p| serde_json::from_str::<Vec<String>>(&p))
        .transpose()
        .map_err(|e| Error::Corrupt(format!("admin key products: {e}")))?;
    Ok(AdminKeyRecord {
        hash: TokenHash::from_hex(&hash).map_err(|e| Error::Corrupt(e.to_string()))?,
        principal: Principal {
            name,
            role: rows::parsed(&role, "role")?,
            products,
            expires_at: expires_at.map(rows::ts).transpose()?,
        },
        created_at: rows::ts(created_at)?,
    })
}

impl Store {
    /// Admin keys not revoked (expired ones included: the list shows them).
    pub async fn admin_keys(&self) -> Result<Vec<AdminKeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM admin_keys k WHERE k.revoked_at IS NULL ORDER BY k.name"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(record).collect()
    }

    /// The live key with this hash: not revoked (expiry is the caller's to
    /// judge, so that it can say "expired"). One indexed read per admin
    /// request, so a key revoked on any replica stops working on all of
    /// them at once.
    pub async fn admin_key_by_hash(&self, hash: &TokenHash) -> Result<Option<AdminKeyRecord>> {
        let row: Option<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM admin_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        ))
        .bind(hash.as_str())
        .fetch_optional(self.reader())
        .await?;
        row.map(record).transpose()
    }

    /// Register an admin key by its hash, with its audit event (none for
    /// the bootstrap key: `event` is `None`).
    pub async fn insert_admin_key(
        &self,
        key: &AdminKeyRecord,
        event: Option<NewEvent>,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let p = &key.principal;
        let products = p
            .products
            .as_ref()
            .map(|list| serde_json::to_string(list).unwrap_or_else(|_| "[]".into()));
        let inserted = sqlx::query(
            "INSERT INTO admin_keys (name, key_hash, created_at, role, products, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&key.principal.name)
        .bind(key.hash.as_str())
        .bind(key.created_at.timestamp())
        .bind(p.role.as_str())
        .bind(products)
        .bind(p.expires_at.map(|t| t.timestamp()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::conflict(
                "admin_key_exists",
                format!(
                    "an admin key named {:?} exists (names are never reused, revoked ones included)",
                    key.principal.name
                ),
            ));
        }
        if let Some(event) = event {
            self.insert_event(&mut tx, None, None, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revoke key `name` and end its console sessions, in one transaction,
    /// unless it is the last unexpired admin key without product limits
    /// (then nobody could manage keys any more).
    pub async fn revoke_admin_key(&self, name: &str, event: NewEvent) -> Result<()> {
        let now = event.at.timestamp();
        let mut tx = self.writer().begin().await?;
        // Two revocations at once must not each see the other's key as the
        // one that remains: take the event order (SQLite's single writer;
        // PostgreSQL's advisory lock) before counting.
        self.backend.order_events(&mut tx).await?;
        let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT role, products, expires_at FROM admin_keys \
             WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((role, products, expires_at)) = row else {
            return Err(Error::not_found("admin_key", name));
        };
        let full_admin = |role: &str, products: &Option<String>, expires_at: Option<i64>| {
            role == Role::Admin.as_str() && products.is_none() && expires_at.is_none_or(|t| t > now)
        };
        if full_admin(&role, &products, expires_at) {
            let (others,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM admin_keys WHERE name <> $1 AND revoked_at IS NULL \
                 AND role = 'admin' AND products IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Err(Error::conflict(
                    "last_admin_key",
                    format!(
                        "{name:?} is the last admin key with every right: create another \
                         (tessera admin-key create --role admin) before revoking it"
                    ),
                ));
            }
        }
        sqlx::query("UPDATE admin_keys SET revoked_at = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE key_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a console session.
    pub async fn create_session(&self, session: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, key_name, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_hash)
        .bind(&session.key_name)
        .bind(&session.csrf)
        .bind(session.created_at.timestamp())
        .bind(session.expires_at.timestamp())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// A session by id hash, if it has not expired at `now` and its key is
    /// neither revoked nor expired, with the key's rights.
    pub async fn session(
        &self,
        id_hash: &str,
        now: Timestamp,
    ) -> Result<Option<(Session, Principal)>> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            String,
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            i64,
        )> = sqlx::query_as(concat!(
            "SELECT s.id_hash, s.csrf, s.created_at, s.expires_at, ",
            key_columns!(),
            " FROM sessions s JOIN admin_keys k ON k.name = s.key_name \
                 WHERE s.id_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL \
                 AND (k.expires_at IS NULL OR k.expires_at > $2)"
        ))
        .bind(id_hash)
        .bind(now.timestamp())
        .fetch_optional(self.reader())
        .await?;
        row.map(
            |(
                id_hash,
                csrf,
                created,
                expires,
                name,
                hash,
                role,
                products,
                key_expires,
                key_created,
            )| {
                let key = record((name, hash, role, products, key_expires, key_created))?;
                Ok((
                    Session {
                        id_hash,
                        key_name: key.principal.name.clone(),
                        csrf,
                        created_at: rows::ts(created)?,
                        expires_at: rows::ts(expires)?,
                    },
                    key.principal,
                ))
            },
        )
        .transpose()
    }

    /// End a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Forget expired sessions; how many.
    pub async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now.timestamp())
            .execute(self.writer())
            .await?
            .rows_affected())
    }
}
