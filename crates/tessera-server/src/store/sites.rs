//! Sites (docs/PROTOCOL.md §26): what each may use, and what its relay
//! last reported.

use tessera_protocol::Timestamp;

use super::Store;
use crate::error::Result;

/// A site as stored (`licenses` and `usage` as their JSON).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SiteRow {
    /// Its name.
    pub name: String,
    /// The relay's public key (PASERK).
    pub relay_key: String,
    /// JSON `[SiteLicense]`.
    pub licenses: String,
    /// Each bundle's lifetime in seconds.
    pub valid_for: i64,
    /// Created (seconds).
    pub created_at: i64,
    /// Revoked (seconds).
    pub revoked_at: Option<i64>,
    /// Last synchronisation (seconds).
    pub last_sync_at: Option<i64>,
    /// JSON `[SiteUsage]` of the last synchronisation.
    pub usage: Option<String>,
}

macro_rules! site_select {
    () => {
        "SELECT name, relay_key, licenses, valid_for, created_at, revoked_at, last_sync_at, \
         usage FROM sites "
    };
}

impl Store {
    /// Record a new site; `false` when the name is taken.
    pub async fn insert_site(&self, row: &SiteRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sites (name, relay_key, licenses, valid_for, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&row.name)
        .bind(&row.relay_key)
        .bind(&row.licenses)
        .bind(row.valid_for)
        .bind(row.created_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One site.
    pub async fn site(&self, name: &str) -> Result<Option<SiteRow>> {
        Ok(sqlx::query_as(concat!(site_select!(), "WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.writer())
            .await?)
    }

    /// Every site, by name.
    pub async fn sites(&self) -> Result<Vec<SiteRow>> {
        Ok(sqlx::query_as(concat!(site_select!(), "ORDER BY name"))
            .fetch_all(self.reader())
            .await?)
    }

    /// Revoke a site; `false` when it was already revoked or is unknown.
    pub async fn revoke_site(&self, name: &str, at: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE sites SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(at.timestamp())
                .bind(name)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The shares of `license`'s machines held by sites not revoked
    /// (`None`: a site given the whole license).
    pub async fn site_shares(&self, license: &str) -> Result<Vec<Option<u32>>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT licenses FROM sites WHERE revoked_at IS NULL")
                .fetch_all(self.reader())
                .await?;
        let mut shares = Vec::new();
        for (text,) in rows {
            let list: Vec<tessera_protocol::wire::SiteLicense> = serde_json::from_str(&text)
                .map_err(|e| crate::Error::Corrupt(format!("site JSON: {e}")))?;
            shares.extend(
                list.into_iter()
                    .filter(|s| s.license == license)
                    .map(|s| s.max_machines),
            );
        }
        Ok(shares)
    }

    /// A relay synchronised: keep its report.
    pub async fn record_site_sync(&self, name: &str, usage: &str, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sites SET last_sync_at = $1, usage = $2 WHERE name = $3")
            .bind(at.timestamp())
            .bind(usage)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
