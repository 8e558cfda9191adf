//! Metered quotas (docs/PROTOCOL.md §22): reports counted once, per-period
//! totals, and the marks a report passes, all in one transaction.

use sqlx::AnyConnection;
use tessera_protocol::LicenseId;
use tessera_protocol::wire::EventKind;

use super::rows::{i64_of, ts};
use super::{ChangeNotice, Store};
use crate::error::{Error, Result};
use crate::model::{Consumption, Counted, License, NewEvent, PeriodUse, Recorded};

/// A period's use never goes beyond this (2^62): with single amounts at
/// most 2^53, the addition cannot overflow a BIGINT.
const MAX_USED: u64 = 1 << 62;

/// Fill `license.quota_used` with each metered feature's latest period, when
/// it has any quota (one read; nothing for the others).
pub(super) async fn fill_quota_used(conn: &mut AnyConnection, license: &mut License) -> Result<()> {
    if license.entitlements.values().all(|e| e.quota.is_none()) {
        return Ok(());
    }
    // Newest period first: keys of one kind sort by date.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT feature, period, used FROM quota_usage WHERE license_id = $1 \
         ORDER BY feature, updated_at DESC",
    )
    .bind(license.id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    for (feature, period, used) in rows {
        license
            .quota_used
            .entry(feature)
            .or_insert_with(|| (period, u64::try_from(used).unwrap_or(0)));
    }
    Ok(())
}

impl Store {
    /// Count consumption reports in one transaction (group commit: one
    /// disk flush for many reports). Each report is counted on its own
    /// terms: its id, each feature's period total, the events for marks it
    /// passed (`quota.threshold`, `quota.exhausted`) and — when it passed a
    /// blocking point — a new revision. A report seen before (same license,
    /// instance, sequence and digest) is [`Recorded::Duplicate`]; one
    /// refused (409 `duplicate_sequence`, 422 `quota_overflow`) leaves
    /// nothing behind and does not stop the others.
    ///
    /// # Errors
    /// The database's, for the whole batch (nothing of it is counted).
    pub async fn record_consumptions(
        &self,
        batch: &[Consumption],
    ) -> Result<Vec<Result<Recorded>>> {
        let mut tx = self.writer().begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for c in batch {
            outcomes.push(self.record_one(&mut tx, c).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// One report inside `record_consumptions`' transaction: `Err` only for
    /// the database; the report's own refusal is the inner `Err`.
    async fn record_one(
        &self,
        tx: &mut AnyConnection,
        c: &Consumption,
    ) -> Result<Result<Recorded>> {
        let at = c.at.timestamp();
        let inserted = sqlx::query(
            "INSERT INTO quota_reports (license_id, instance_id, seq, digest, received_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(c.license.as_str())
        .bind(&c.instance)
        .bind(i64_of(c.seq))
        .bind(&c.digest)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let (digest,): (String,) = sqlx::query_as(
                "SELECT digest FROM quota_reports \
                 WHERE license_id = $1 AND instance_id = $2 AND seq = $3",
            )
            .bind(c.license.as_str())
            .bind(&c.instance)
            .bind(i64_of(c.seq))
            .fetch_one(&mut *tx)
            .await?;
            if digest == c.digest {
                return Ok(Ok(Recorded::Duplicate));
            }
            return Ok(Err(Error::conflict(
                "duplicate_sequence",
                format!(
                    "report sequence {} of this instance was already used for another report; \
                     nothing was counted",
                    c.seq
                ),
            )));
        }
        let mut counts = Vec::with_capacity(c.items.len());
        for item in &c.items {
            let period = item.quota.period.key(c.at);
            let (used,): (i64,) = sqlx::query_as(
                "INSERT INTO quota_usage (license_id, feature, period, used, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (license_id, feature, period) \
                 DO UPDATE SET used = quota_usage.used + excluded.used, \
                 updated_at = excluded.updated_at RETURNING used",
            )
            .bind(c.license.as_str())
            .bind(&item.feature)
            .bind(&period)
            .bind(i64_of(item.amount))
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            let used = u64::try_from(used).unwrap_or(0);
            counts.push(Counted {
                feature: item.feature.clone(),
                period,
                used,
                quota: item.quota.clone(),
                crossed: item.quota.crossings(used - item.amount, used),
            });
        }
        if let Some(over) = counts.iter().find(|n| n.used > MAX_USED) {
            // Take this report back out; the batch's others stand.
            let feature = over.feature.clone();
            for (n, item) in counts.iter().zip(&c.items) {
                sqlx::query(
                    "UPDATE quota_usage SET used = used - $1 \
                     WHERE license_id = $2 AND feature = $3 AND period = $4",
                )
                .bind(i64_of(item.amount))
                .bind(c.license.as_str())
                .bind(&n.feature)
                .bind(&n.period)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "DELETE FROM quota_reports WHERE license_id = $1 AND instance_id = $2 AND seq = $3",
            )
            .bind(c.license.as_str())
            .bind(&c.instance)
            .bind(i64_of(c.seq))
            .execute(&mut *tx)
            .await?;
            return Ok(Err(Error::unprocessable(
                "quota_overflow",
                format!("{feature}: the period's use would pass 2^62; nothing was counted"),
            )));
        }
        let blocked = counts.iter().any(|n| n.crossed.blocked);
        let passed = counts
            .iter()
            .any(|n| n.crossed.threshold || n.crossed.exhausted);
        if !blocked && !passed {
            return Ok(Ok(Recorded::Counted {
                counts,
                changed: None,
            }));
        }
        let (mut revision,): (i64,) = sqlx::query_as("SELECT revision FROM licenses WHERE id = $1")
            .bind(c.license.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if blocked {
            // Every instance must refuse from now on: a new revision is
            // what reaches every stream and every replica.
            sqlx::query(
                "UPDATE licenses SET revision = revision + 1, updated_at = $1 WHERE id = $2",
            )
            .bind(at)
            .bind(c.license.as_str())
            .execute(&mut *tx)
            .await?;
            revision += 1;
        }
        let revision = u64::try_from(revision).unwrap_or(0);
        for n in &counts {
            for (passed, kind) in [
                (n.crossed.threshold, EventKind::QuotaThreshold),
                (n.crossed.exhausted, EventKind::QuotaExhausted),
            ] {
                if passed {
                    let event = NewEvent {
                        at: c.at,
                        actor: format!("instance {}", c.instance),
                        kind,
                        before: None,
                        after: Some(serde_json::json!({
                            "feature": n.feature,
                            "period": n.period,
                            "used": n.used,
                            "limit": n.quota.limit,
                            "overage": n.quota.overage.to_string(),
                            "blocked": n.crossed.blocked,
                        })),
                    };
                    self.insert_event(&mut *tx, Some(&c.license), Some(revision), &event)
                        .await?;
                }
            }
        }
        let changed = if blocked {
            let notice = ChangeNotice::Changed {
                license: c.license.clone(),
                revision,
            };
            self.backend.notify(&mut *tx, &notice).await?;
            Some(Box::new(
                super::licenses::license_in(&mut *tx, &c.license).await?,
            ))
        } else {
            None
        };
        Ok(Ok(Recorded::Counted { counts, changed }))
    }

    /// A feature's use per period, newest first.
    pub async fn quota_history(
        &self,
        license: &LicenseId,
        feature: &str,
        limit: u32,
    ) -> Result<Vec<PeriodUse>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT period, used, updated_at FROM quota_usage \
             WHERE license_id = $1 AND feature = $2 ORDER BY updated_at DESC LIMIT $3",
        )
        .bind(license.as_str())
        .bind(feature)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(period, used, at)| {
                Ok(PeriodUse {
                    period,
                    used: u64::try_from(used).unwrap_or(0),
                    updated_at: ts(at)?,
                })
            })
            .collect()
    }

    /// Forget report ids older than `before` (a retry comes within minutes;
    /// totals are kept).
    pub async fn prune_quota_reports(&self, before: tessera_protocol::Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM quota_reports WHERE received_at < $1")
            .bind(before.timestamp())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
