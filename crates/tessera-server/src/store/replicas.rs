//! Replicas: heartbeats and the stream reaper.

use tessera_protocol::Timestamp;

use super::Store;
use crate::error::Result;

impl Store {
    /// This replica is alive (and signs with key `kid`).
    pub async fn heartbeat(&self, kid: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, kid, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(self.replica())
        .bind(kid)
        .bind(now.timestamp())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Replicas whose heartbeat is at or after `since`: (id, kid).
    pub async fn live_replicas(&self, since: Timestamp) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, kid FROM replicas WHERE heartbeat_at >= $1 ORDER BY id")
                .bind(since.timestamp())
                .fetch_all(self.reader())
                .await?;
        Ok(rows)
    }

    /// Mark closed the streams held by replicas not alive since `alive_since`;
    /// how many.
    pub async fn reap_streams(&self, alive_since: Timestamp) -> Result<u64> {
        let mut tx = self.writer().begin().await?;
        let reaped = sqlx::query(
            "UPDATE instances SET stream_connected = FALSE, stream_replica = NULL \
             WHERE stream_connected AND (stream_replica IS NULL OR stream_replica NOT IN \
                 (SELECT id FROM replicas WHERE heartbeat_at >= $1))",
        )
        .bind(alive_since.timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Replicas silent for a day are forgotten.
        sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
            .bind(alive_since.timestamp() - 86_400)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(reaped)
    }
}
