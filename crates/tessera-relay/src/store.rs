//! The relay's state in SQLite: every SQL statement of the relay is here.
//! One process writes it (the relay); `tessera relay audit` may read it
//! while the relay runs (WAL).

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{SqliteConnection, SqlitePool};

use crate::error::Result;

/// A place as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MachineRow {
    /// The license's token fingerprint.
    pub tfp: String,
    /// The machine's fingerprint hash.
    pub mfp: String,
    /// Its activation id (`mch_…`).
    pub id: String,
    /// Activated (seconds).
    pub activated_at: i64,
    /// Floating: the lease's end (milliseconds); none for node-locked.
    pub lease_expires_at: Option<i64>,
    /// A name for people.
    pub name: Option<String>,
}

/// One audit event as exported.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Its place in the log, from 1.
    pub seq: i64,
    /// When (seconds).
    pub at: i64,
    /// `machine.activated`, `machine.released`, `lease.expired`,
    /// `machine.refused`, `bundle.taken`, `child.synced`.
    pub kind: String,
    /// The license (or the site, for bundle events).
    pub license: String,
    /// The machine (`mch_…`), if any.
    pub machine: Option<String>,
    /// More, for people.
    pub detail: Option<String>,
    /// The hash of the event before (64 zeros for the first).
    pub prev: String,
    /// SHA-256 over `prev` and this event's fields.
    pub hash: String,
}

/// What an event hashes: the chain's link (`tessera_protocol::audit`) over
/// the previous hash and `[at, kind, license, machine, detail]`.
#[must_use]
pub fn event_hash(
    prev: &str,
    at: i64,
    kind: &str,
    license: &str,
    machine: Option<&str>,
    detail: Option<&str>,
) -> String {
    use serde_json::json;
    tessera_protocol::audit::link_hash(
        prev,
        &[
            json!(at),
            json!(kind),
            json!(license),
            json!(machine),
            json!(detail),
        ],
    )
}

/// The first event's `prev`.
pub use tessera_protocol::audit::GENESIS;

/// A child relay as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChildRow {
    /// Its site name.
    pub site: String,
    /// Its relay key (PASERK).
    pub relay_key: String,
    /// JSON `[SiteLicense]`: its shares.
    pub licenses: String,
    /// Each bundle's lifetime (seconds).
    pub valid_for: i64,
    /// Created (seconds).
    pub created_at: i64,
    /// Its last synchronisation (seconds).
    pub last_sync_at: Option<i64>,
    /// JSON `[SiteUsage]` it reported then.
    pub usage: Option<String>,
}

/// An installation seen: (tfp, instance id, revision held, users reported,
/// when, in seconds).
pub type Sighting = (String, String, Option<i64>, Option<i64>, i64);

/// The relay's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating) the database at `path` and bring it up to date.
    ///
    /// # Errors
    /// When it cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL: a process crash loses no committed change
            // (only a power loss may lose the last ones), without an fsync
            // per lease renewal.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        // One connection: the relay is the only writer and its reads are
        // few (places and the bundle are held in memory).
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The held bundle's text.
    pub async fn bundle(&self) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT text FROM bundle WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(t,)| t))
    }

    /// Keep a newer bundle, and say so in the audit log.
    pub async fn set_bundle(&self, text: &str, iat: i64, site: &str, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO bundle (id, text, iat) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET text = excluded.text, iat = excluded.iat",
        )
        .bind(text)
        .bind(iat)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, now, "bundle.taken", site, None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every place held.
    pub async fn machines(&self) -> Result<Vec<MachineRow>> {
        Ok(sqlx::query_as(
            "SELECT tfp, mfp, id, activated_at, lease_expires_at, name FROM machines",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Write a place (taken or renewed) with its audit event, if any.
    pub async fn put_machine(
        &self,
        m: &MachineRow,
        event: Option<(&str, &str, i64)>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO machines (tfp, mfp, id, activated_at, lease_expires_at, name) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tfp, mfp) DO UPDATE SET \
             id = excluded.id, activated_at = excluded.activated_at, \
             lease_expires_at = excluded.lease_expires_at, name = excluded.name",
        )
        .bind(&m.tfp)
        .bind(&m.mfp)
        .bind(&m.id)
        .bind(m.activated_at)
        .bind(m.lease_expires_at)
        .bind(&m.name)
        .execute(&mut *tx)
        .await?;
        if let Some((kind, license, at)) = event {
            append(&mut tx, at, kind, license, Some(&m.id), None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remove a place with its audit event.
    pub async fn remove_machine(
        &self,
        m: &MachineRow,
        kind: &str,
        license: &str,
        at: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM machines WHERE tfp = $1 AND mfp = $2")
            .bind(&m.tfp)
            .bind(&m.mfp)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, at, kind, license, Some(&m.id), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An audit event on its own (a refusal, a child's synchronisation).
    pub async fn audit(
        &self,
        at: i64,
        kind: &str,
        license: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        append(&mut tx, at, kind, license, None, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit events after `after`, at most `limit`, in order.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(sqlx::query_as(
            "SELECT seq, at, kind, license, machine, detail, prev, hash FROM audit \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Write a batch of installation sightings: (tfp, instance, revision,
    /// users, seen at).
    pub async fn record_instances(&self, seen: &[Sighting]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (tfp, instance, revision, users, at) in seen {
            sqlx::query(
                "INSERT INTO instances (tfp, instance_id, revision, users, last_seen) \
                 VALUES ($1, $2, COALESCE($3, 0), $4, $5) ON CONFLICT (tfp, instance_id) DO UPDATE SET \
                 revision = MAX(instances.revision, COALESCE($3, instances.revision)), \
                 users = COALESCE($4, instances.users), last_seen = MAX(instances.last_seen, $5)",
            )
            .bind(tfp)
            .bind(instance)
            .bind(revision)
            .bind(users)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per license: installations seen since `since` and their highest
    /// user count.
    pub async fn instance_usage(&self, since: i64) -> Result<Vec<(String, i64, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT tfp, COUNT(*), MAX(users) FROM instances WHERE last_seen >= $1 GROUP BY tfp",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The relays below this one.
    pub async fn children(&self) -> Result<Vec<ChildRow>> {
        Ok(sqlx::query_as(
            "SELECT site, relay_key, licenses, valid_for, created_at, last_sync_at, usage \
             FROM children ORDER BY site",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Add or change a relay below this one.
    pub async fn put_child(&self, c: &ChildRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO children (site, relay_key, licenses, valid_for, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site) DO UPDATE SET \
             relay_key = excluded.relay_key, licenses = excluded.licenses, \
             valid_for = excluded.valid_for",
        )
        .bind(&c.site)
        .bind(&c.relay_key)
        .bind(&c.licenses)
        .bind(c.valid_for)
        .bind(c.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A child synchronised: keep its report.
    pub async fn record_child_sync(&self, site: &str, usage: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE children SET last_sync_at = $1, usage = $2 WHERE site = $3")
            .bind(at)
            .bind(usage)
            .bind(site)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A small fact.
    pub async fn meta(&self, name: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(v,)| v))
    }

    /// Set a small fact.
    pub async fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Close the pool (waits for writes in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Append an audit event, chained to the one before, in `tx`.
async fn append(
    tx: &mut SqliteConnection,
    at: i64,
    kind: &str,
    license: &str,
    machine: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    let prev: Option<(String,)> =
        sqlx::query_as("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let prev = prev.map_or_else(|| GENESIS.to_owned(), |(h,)| h);
    let hash = event_hash(&prev, at, kind, license, machine, detail);
    sqlx::query(
        "INSERT INTO audit (at, kind, license, machine, detail, prev, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(at)
    .bind(kind)
    .bind(license)
    .bind(machine)
    .bind(detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
