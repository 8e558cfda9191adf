//! The audit log and its webhook outbox.

use tessera_protocol::LicenseId;
use tessera_protocol::wire::EventView;

use super::Store;
use super::rows::{EventRow, collect, i64_of, json_text};
use crate::error::Result;
use crate::model::{EventFilter, NewEvent};

/// Events of licenses of the products in `$4` (comma-separated names), or
/// every event when `$4` is NULL.
macro_rules! products_filter {
    () => {
        "($4 IS NULL OR license_id IN (SELECT id FROM licenses \
          WHERE ',' || $4 || ',' LIKE '%,' || SUBSTR(product_id, 5) || ',%'))"
    };
}

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
            sqlx::query_as(concat!(
                "SELECT seq, at, actor, kind, license_id, revision, before, after, prev_hash, hash \
                 FROM events \
                 WHERE ($1 IS NULL OR license_id = $1) AND seq > $2 AND ",
                products_filter!(),
                " ORDER BY seq LIMIT $3",
            ))
            .bind(license)
            .bind(after)
            .bind(i64::from(f.limit))
            .bind(f.products.as_deref())
            .fetch_all(self.reader())
            .await?
        } else {
            sqlx::query_as(concat!(
                "SELECT seq, at, actor, kind, license_id, revision, before, after, prev_hash, hash \
                 FROM events \
                 WHERE ($1 IS NULL OR license_id = $1) AND ($2 IS NULL OR seq < $2) AND ",
                products_filter!(),
                " ORDER BY seq DESC LIMIT $3",
            ))
            .bind(license)
            .bind(f.before)
            .bind(i64::from(f.limit))
            .bind(f.products.as_deref())
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
        // Under that order (one writer on SQLite, the event-order lock on
        // PostgreSQL), the last event is the one this one follows (§27).
        let prev = chain_head(&mut *tx).await?;
        let (before, after) = (json_text(&e.before), json_text(&e.after));
        let kind = e.kind.to_string();
        let hash = tessera_protocol::audit::event_hash(
            &prev,
            e.at.timestamp(),
            &e.actor,
            &kind,
            license.map(LicenseId::as_str),
            revision,
            before.as_deref(),
            after.as_deref(),
        );
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO events (at, actor, kind, license_id, revision, before, after, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
        )
        .bind(e.at.timestamp())
        .bind(&e.actor)
        .bind(&kind)
        .bind(license.map(LicenseId::as_str))
        .bind(revision.map(i64_of))
        .bind(before)
        .bind(after)
        .bind(&prev)
        .bind(&hash)
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
        .bind(&kind)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Give the events written before the chain existed their hashes, in
    /// order, in one transaction under the event order (a replica starting
    /// meanwhile waits, then finds nothing left to do).
    ///
    /// # Errors
    /// The store's.
    pub async fn chain_events(&self) -> Result<u64> {
        let mut tx = self.writer().begin().await?;
        self.backend.order_events(&mut tx).await?;
        let done = backfill(&mut tx).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// The hash the next event follows: the last event's (events written
/// before the chain are given theirs first).
async fn chain_head(tx: &mut sqlx::AnyConnection) -> Result<String> {
    let last: Option<(Option<String>,)> =
        sqlx::query_as("SELECT hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    match last {
        None => Ok(tessera_protocol::audit::GENESIS.to_owned()),
        Some((Some(hash),)) => Ok(hash),
        Some((None,)) => {
            backfill(tx).await?;
            Box::pin(chain_head(tx)).await
        }
    }
}

/// Hash the events without one, oldest first, after the last that has one.
async fn backfill(tx: &mut sqlx::AnyConnection) -> Result<u64> {
    let start: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut after, mut prev) = start.unwrap_or((0, tessera_protocol::audit::GENESIS.to_owned()));
    let mut done = 0u64;
    loop {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, at, actor, kind, license_id, revision, before, after, prev_hash, hash \
             FROM events WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(done);
        }
        for view in collect::<EventRow, EventView>(rows)? {
            let hash = tessera_protocol::audit::hash_of(&view, &prev);
            sqlx::query("UPDATE events SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&prev)
                .bind(&hash)
                .bind(view.seq)
                .execute(&mut *tx)
                .await?;
            after = view.seq;
            prev = hash;
            done += 1;
        }
    }
}
