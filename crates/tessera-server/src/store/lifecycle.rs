//! Expiry horizons and automatic renewal.

use tessera_protocol::Timestamp;

use super::Store;
use super::rows::{LicenseRow, license_select};
use crate::error::Result;
use crate::model::{License, NewEvent};

impl Store {
    /// Active licenses expiring at or before `until` for which `horizon`
    /// has not yet been recorded at their current expiry; at most `limit`.
    pub async fn horizon_due(
        &self,
        horizon: &str,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<License>> {
        self.all(
            sqlx::query_as::<_, LicenseRow>(concat!(
                license_select!(),
                "WHERE l.state = 'active' AND l.expires_at IS NOT NULL AND l.expires_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM horizons_fired h WHERE h.license_id = l.id \
                             AND h.horizon = $2 AND h.expires_at = l.expires_at) \
             ORDER BY l.expires_at, l.id LIMIT $3"
            ))
            .bind(until.timestamp())
            .bind(horizon)
            .bind(i64::from(limit)),
        )
        .await
    }

    /// Record that `license` reached `horizon` for its expiry `expires_at`,
    /// with `event` (or silently, when a narrower horizon spoke for it) in
    /// the same transaction. `false` when it was already recorded.
    pub async fn fire_horizon(
        &self,
        license: &License,
        horizon: &str,
        event: Option<NewEvent>,
    ) -> Result<bool> {
        let Some(expires_at) = license.expires_at else {
            return Ok(false);
        };
        let mut tx = self.writer().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO horizons_fired (license_id, horizon, expires_at, fired_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(license.id.as_str())
        .bind(horizon)
        .bind(expires_at.timestamp())
        .bind(
            event
                .as_ref()
                .map_or(expires_at.timestamp(), |e| e.at.timestamp()),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        if let Some(event) = &event {
            self.insert_event(&mut tx, Some(&license.id), Some(license.revision), event)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Active auto-renewing licenses inside their renew-before window at `now`.
    pub async fn auto_renew_due(&self, now: Timestamp, limit: u32) -> Result<Vec<License>> {
        self.all(
            sqlx::query_as::<_, LicenseRow>(concat!(
                license_select!(),
                "WHERE l.state = 'active' AND l.expires_at IS NOT NULL \
             AND COALESCE(l.auto_renew, p.auto_renew) \
             AND l.expires_at - p.renew_before_secs <= $1 \
             ORDER BY l.expires_at, l.id LIMIT $2"
            ))
            .bind(now.timestamp())
            .bind(i64::from(limit)),
        )
        .await
    }
}
