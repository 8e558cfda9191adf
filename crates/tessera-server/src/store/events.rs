//! The audit log and its webhook outbox.

use tessera_protocol::LicenseId;
use tessera_protocol::wire::EventView;

use super::Store;
use super::rows::{EventRow, collect, i64_of, json_text};
use crate::error::Result;
use crate::model::{EventFilter, NewEvent};

impl Store {
    /// Append an audit event that changes no license (e.g. an export).
    pub async fn append_event(
        &self,
        license: Option<(&LicenseId, u64)>,
        event: NewEvent,
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        self.insert_event(&mut tx, license.map(|l| l.0), license.map(|l| l.1), &event)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit events, newest first unless `filter.after` is set.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<EventView>> {
        let license = f.license.as_ref().map(LicenseId::as_str);
        let rows: Vec<EventRow> = if let Some(after) = f.after {
            sqlx::query_as(
                "SELECT seq, at, actor, kind, license_id, revision, before, after FROM events \
                 WHERE ($1 IS NULL OR license_id = $1) AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(license)
            .bind(after)
            .bind(i64::from(f.limit))
            .fetch_all(self.reader())
            .await?
        } else {
            sqlx::query_as(
                "SELECT seq, at, actor, kind, license_id, revision, before, after FROM events \
                 WHERE ($1 IS NULL OR license_id = $1) AND ($2 IS NULL OR seq < $2) \
                 ORDER BY seq DESC LIMIT $3",
            )
            .bind(license)
            .bind(f.before)
            .bind(i64::from(f.limit))
            .fetch_all(self.reader())
            .await?
        };
        collect(rows)
    }

    /// Append an event and, in the same transaction, its deliveries to
    /// every webhook that wants its kind (the outbox: an event committed
    /// is an event delivered, even across a crash).
    pub(super) async fn insert_event(
        &self,
        tx: &mut sqlx::AnyConnection,
        license: Option<&LicenseId>,
        revision: Option<u64>,
        e: &NewEvent,
    ) -> Result<()> {
        // Sequence numbers must become visible in their order, or a
        // follower of `?after=<seq>` skips one that commits late.
        self.backend.order_events(&mut *tx).await?;
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO events (at, actor, kind, license_id, revision, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        )
        .bind(e.at.timestamp())
        .bind(&e.actor)
        .bind(e.kind.to_string())
        .bind(license.map(LicenseId::as_str))
        .bind(revision.map(i64_of))
        .bind(json_text(&e.before))
        .bind(json_text(&e.after))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deliveries (webhook_id, event_seq, state, attempts, next_at, \
             created_at, updated_at) \
             SELECT w.id, $1, 'pending', 0, $2, $2, $2 FROM webhooks w \
             WHERE w.removed_at IS NULL AND EXISTS (SELECT 1 FROM webhook_kinds k \
               WHERE k.webhook_id = w.id AND (k.kind = $3 OR k.kind = '*'))",
        )
        .bind(seq)
        .bind(e.at.timestamp())
        .bind(e.kind.to_string())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
