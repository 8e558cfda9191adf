//! Administrator keys and console sessions.

use tessera_protocol::{Timestamp, TokenHash};

use super::rows::{self};
use super::{AdminKeyRecord, Store};
use crate::error::{Error, Result};
use crate::model::Session;

impl Store {
    /// Admin keys not revoked.
    pub async fn admin_keys(&self) -> Result<Vec<AdminKeyRecord>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, key_hash FROM admin_keys WHERE revoked_at IS NULL")
                .fetch_all(self.reader())
                .await?;
        rows.into_iter()
            .map(|(name, hash)| {
                Ok(AdminKeyRecord {
                    name,
                    hash: TokenHash::from_hex(&hash).map_err(|e| Error::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Register an admin key by its hash.
    pub async fn insert_admin_key(
        &self,
        name: &str,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query("INSERT INTO admin_keys (name, key_hash, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(hash.as_str())
            .bind(now.timestamp())
            .execute(self.writer())
            .await?;
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

    /// A session by id hash, if it has not expired at `now`.
    pub async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id_hash, key_name, csrf, created_at, expires_at FROM sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now.timestamp())
        .fetch_optional(self.reader())
        .await?;
        row.map(|(id_hash, key_name, csrf, created, expires)| {
            Ok(Session {
                id_hash,
                key_name,
                csrf,
                created_at: rows::ts(created)?,
                expires_at: rows::ts(expires)?,
            })
        })
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
