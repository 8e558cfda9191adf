//! Webhook endpoints and deliveries.

use tessera_protocol::wire::{DeliveryState, EventView};
use tessera_protocol::{Timestamp, WebhookId};

use super::Store;
use super::rows::{self, EventRow};
use crate::error::Result;
use crate::model::NewEvent;

impl Store {
    /// Create a webhook endpoint and its audit event.
    pub async fn create_webhook(&self, w: &crate::model::Webhook, event: NewEvent) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("INSERT INTO webhooks (id, url, secret, created_at) VALUES ($1, $2, $3, $4)")
            .bind(w.id.as_str())
            .bind(&w.url)
            .bind(&w.secret.0)
            .bind(w.created_at.timestamp())
            .execute(&mut *tx)
            .await?;
        for kind in &w.kinds {
            sqlx::query(
                "INSERT INTO webhook_kinds (webhook_id, kind) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(w.id.as_str())
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        }
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Webhook endpoints not removed, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<crate::model::Webhook>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, url, secret, created_at FROM webhooks WHERE removed_at IS NULL \
             ORDER BY created_at, id",
        )
        .fetch_all(self.reader())
        .await?;
        let kinds: Vec<(String, String)> = sqlx::query_as(
            "SELECT k.webhook_id, k.kind FROM webhook_kinds k \
             JOIN webhooks w ON w.id = k.webhook_id WHERE w.removed_at IS NULL \
             ORDER BY k.kind",
        )
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(id, url, secret, created)| {
                Ok(crate::model::Webhook {
                    kinds: kinds
                        .iter()
                        .filter(|(w, _)| *w == id)
                        .map(|(_, k)| k.clone())
                        .collect(),
                    id: rows::parsed(&id, "webhook id")?,
                    url,
                    secret: crate::model::WebhookSecret(secret),
                    created_at: rows::ts(created)?,
                })
            })
            .collect()
    }

    /// Replace a webhook's stored (sealed) secret.
    pub async fn set_webhook_secret(&self, id: &WebhookId, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Remove a webhook (pending deliveries to it stop); `false` if unknown.
    pub async fn remove_webhook(&self, id: &WebhookId, event: NewEvent) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        let now = event.at.timestamp();
        let removed =
            sqlx::query("UPDATE webhooks SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL")
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE deliveries SET state = 'failed', last_error = 'webhook removed', \
             updated_at = $1 WHERE webhook_id = $2 AND state = 'pending'",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Pending deliveries due at `now`, oldest first.
    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::model::DueDelivery>> {
        #[derive(sqlx::FromRow)]
        struct Due {
            id: i64,
            webhook_id: String,
            url: String,
            secret: String,
            attempts: i64,
            created_at: i64,
            #[sqlx(flatten)]
            event: EventRow,
        }
        let rows: Vec<Due> = sqlx::query_as(
            "SELECT d.id, d.webhook_id, w.url, w.secret, d.attempts, d.created_at, \
             e.seq, e.at, e.actor, e.kind, e.license_id, e.revision, e.before, e.after, \
             e.prev_hash, e.hash \
             FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             JOIN events e ON e.seq = d.event_seq \
             WHERE d.state = 'pending' AND d.next_at <= $1 \
             ORDER BY d.next_at, d.id LIMIT $2",
        )
        .bind(now.timestamp())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(crate::model::DueDelivery {
                    id: r.id,
                    webhook_id: rows::parsed(&r.webhook_id, "webhook id")?,
                    url: r.url,
                    secret: crate::model::WebhookSecret(r.secret),
                    attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
                    created_at: rows::ts(r.created_at)?,
                    event: EventView::try_from(r.event)?,
                })
            })
            .collect()
    }

    /// Log an attempt and move its delivery on, in one transaction.
    pub async fn record_attempt(&self, a: &crate::model::Attempt) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, at, status, error, millis) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(a.delivery_id)
        .bind(a.at.timestamp())
        .bind(a.status.map(i64::from))
        .bind(&a.error)
        .bind(a.millis)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
             last_status = $3, last_error = $4, updated_at = $5 \
             WHERE id = $6 AND state = 'pending'",
        )
        .bind(a.state.to_string())
        .bind(a.next_at.timestamp())
        .bind(a.status.map(i64::from))
        .bind(&a.error)
        .bind(a.at.timestamp())
        .bind(a.delivery_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries of one webhook, newest first.
    pub async fn deliveries(
        &self,
        webhook: &WebhookId,
        limit: u32,
    ) -> Result<Vec<tessera_protocol::wire::DeliveryView>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            i64,
            String,
            i64,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT d.id, d.webhook_id, d.event_seq, e.kind, d.state, d.attempts, \
                 d.last_status, d.last_error, d.next_at, d.created_at \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                 WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2",
        )
        .bind(webhook.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(
                    id,
                    webhook,
                    event_seq,
                    kind,
                    state,
                    attempts,
                    status,
                    error,
                    next_at,
                    created,
                )| {
                    let state: DeliveryState = rows::parsed(&state, "delivery state")?;
                    Ok(tessera_protocol::wire::DeliveryView {
                        id,
                        webhook: rows::parsed(&webhook, "webhook id")?,
                        event_seq,
                        kind,
                        state,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        last_status: status.and_then(|s| u16::try_from(s).ok()),
                        last_error: error,
                        next_at: (state == tessera_protocol::wire::DeliveryState::Pending)
                            .then(|| rows::ts(next_at))
                            .transpose()?,
                        created_at: rows::ts(created)?,
                    })
                },
            )
            .collect()
    }
}
