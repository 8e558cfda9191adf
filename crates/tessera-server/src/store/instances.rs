//! Installations (sightings, fleet, admission) and metering.

use tessera_protocol::{LicenseId, Timestamp};

use super::Store;
use super::rows::{InstanceRow, i64_of};
use crate::error::Result;
use crate::model::{Instance, InstanceSeen};

impl Store {
    /// Record installations seen (batched by the caller).
    pub async fn record_instances(&self, seen: &[InstanceSeen]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for s in seen {
            // A stream closing on one replica must not mark disconnected an
            // instance that already reconnected to another.
            sqlx::query(
                "INSERT INTO instances (license_id, instance_id, first_seen, last_seen, \
                 app_version, users, stream_connected, stream_replica, held_revision) \
                 VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, FALSE), \
                         CASE WHEN $7 THEN $8 ELSE NULL END, $9) \
                 ON CONFLICT (license_id, instance_id) DO UPDATE SET \
                 last_seen = CASE WHEN excluded.last_seen > instances.last_seen \
                     THEN excluded.last_seen ELSE instances.last_seen END, \
                 app_version = COALESCE(excluded.app_version, instances.app_version), \
                 users = COALESCE(excluded.users, instances.users), \
                 stream_connected = CASE WHEN $7 IS NULL THEN instances.stream_connected \
                     WHEN $7 THEN TRUE \
                     WHEN instances.stream_replica = $8 THEN FALSE \
                     ELSE instances.stream_connected END, \
                 stream_replica = CASE WHEN $7 IS NULL THEN instances.stream_replica \
                     WHEN $7 THEN $8 \
                     WHEN instances.stream_replica = $8 THEN NULL \
                     ELSE instances.stream_replica END, \
                 held_revision = CASE WHEN $9 IS NULL THEN instances.held_revision \
                     WHEN instances.held_revision IS NULL THEN $9 \
                     WHEN $9 > instances.held_revision THEN $9 \
                     ELSE instances.held_revision END",
            )
            .bind(s.license_id.as_str())
            .bind(&s.instance_id)
            .bind(s.first_at.timestamp())
            .bind(s.at.timestamp())
            .bind(&s.app_version)
            .bind(s.users.map(i64::from))
            .bind(s.stream)
            .bind(self.replica())
            .bind(s.held_revision.map(i64_of))
            .execute(&mut *tx)
            .await?;
            if let Some(users) = s.users {
                // The day's maximum per instance (metering).
                sqlx::query(
                    "INSERT INTO usage_daily (license_id, instance_id, day, max_users) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (license_id, instance_id, day) DO UPDATE SET \
                     max_users = CASE WHEN excluded.max_users > usage_daily.max_users \
                         THEN excluded.max_users ELSE usage_daily.max_users END",
                )
                .bind(s.license_id.as_str())
                .bind(&s.instance_id)
                .bind(s.at.format("%Y-%m-%d").to_string())
                .bind(i64::from(users))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Installations of one license, most recently seen first: `limit`
    /// of them after skipping `offset`.
    pub async fn instances(
        &self,
        license: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Instance>> {
        self.all(
            sqlx::query_as::<_, InstanceRow>(
                "SELECT instance_id, first_seen, last_seen, app_version, users, held_revision, \
             stream_connected FROM instances WHERE license_id = $1 \
             ORDER BY last_seen DESC, instance_id LIMIT $2 OFFSET $3",
            )
            .bind(license.as_str())
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX)),
        )
        .await
    }

    /// The fleet's counts: all known, holding `revision`, connected, and
    /// seen at or after `active_since`.
    pub async fn fleet_counts(
        &self,
        license: &LicenseId,
        revision: u64,
        active_since: Timestamp,
    ) -> Result<crate::model::FleetCounts> {
        let (total, current, connected, active): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN held_revision = $2 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN stream_connected THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN last_seen >= $3 THEN 1 ELSE 0 END), 0) \
             FROM instances WHERE license_id = $1",
        )
        .bind(license.as_str())
        .bind(i64_of(revision))
        .bind(active_since.timestamp())
        .fetch_one(self.reader())
        .await?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(crate::model::FleetCounts {
            total: n(total),
            current: n(current),
            connected: n(connected),
            active: n(active),
        })
    }

    /// Installations of `license` seen at or after `since`, and whether
    /// `instance` is one of them.
    pub async fn instance_admission(
        &self,
        license: &LicenseId,
        instance: &str,
        since: Timestamp,
    ) -> Result<(u64, bool)> {
        let (active, known): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN instance_id = $2 THEN 1 ELSE 0 END), 0) \
             FROM instances WHERE license_id = $1 AND last_seen >= $3",
        )
        .bind(license.as_str())
        .bind(instance)
        .bind(since.timestamp())
        .fetch_one(self.reader())
        .await?;
        Ok((u64::try_from(active).unwrap_or(0), known > 0))
    }

    /// Delete installations last seen before `before`; how many.
    pub async fn prune_instances(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM instances WHERE last_seen < $1")
            .bind(before.timestamp())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Highest user count reported by an instance of `license` seen since `since`.
    pub async fn seats_in_use(&self, license: &LicenseId, since: Timestamp) -> Result<Option<u32>> {
        let (max,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(users) FROM instances WHERE license_id = $1 AND last_seen >= $2",
        )
        .bind(license.as_str())
        .bind(since.timestamp())
        .fetch_one(self.reader())
        .await?;
        Ok(max.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Daily maxima of reported users, newest first.
    pub async fn usage_days(
        &self,
        license: &LicenseId,
        limit: u32,
    ) -> Result<Vec<tessera_protocol::wire::UsageDay>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT day, MAX(max_users) FROM usage_daily WHERE license_id = $1 \
             GROUP BY day ORDER BY day DESC LIMIT $2",
        )
        .bind(license.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(day, max)| tessera_protocol::wire::UsageDay {
                day,
                max_users: u32::try_from(max).unwrap_or(u32::MAX),
            })
            .collect())
    }
}
