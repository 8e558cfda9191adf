//! Metered quotas (docs/PROTOCOL.md §22): consumption reports from
//! instances, counted once per (instance, sequence), and the admin's view
//! of a feature's use.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tessera_protocol::quota::MAX_QUOTA;
use tessera_protocol::wire::{
    ConsumptionRequest, ConsumptionView, QuotaPeriodView, QuotaUsageView,
};
use tessera_protocol::{LicenseId, Quota};

use std::sync::Arc;

use super::Metering;
use crate::error::{Error, Result};
use crate::model::{Consumption, License, Metered, Recorded};
use crate::store::Store;

/// How long a counted report's id is kept to recognise a retry: longer
/// than a client keeps retrying one (30 days).
pub(super) const REPORT_RETENTION: chrono::Duration = chrono::Duration::days(35);

/// Periods shown by the admin view unless asked for fewer.
const HISTORY: u32 = 12;

/// The quota of `feature` on `license`, or 422 `unknown_feature`.
fn quota_of<'a>(license: &'a License, feature: &str) -> Result<&'a Quota> {
    license
        .entitlements
        .get(feature)
        .and_then(|e| e.quota.as_ref())
        .filter(|_| license.features.iter().any(|f| f == feature))
        .ok_or_else(|| {
            Error::unprocessable(
                "unknown_feature",
                format!("{feature:?} is not a metered feature of this license"),
            )
        })
}

impl Metering {
    /// `POST /v1/consumption`: count a report once. A retry of a counted
    /// report is answered with `duplicate: true`; a sequence reused for
    /// other amounts is refused (409 `duplicate_sequence`). Nothing of a
    /// refused report is counted. Passing a blocking point makes a new
    /// revision, pushed to every instance (and replica) at once.
    ///
    /// # Errors
    /// 401 unknown token, 403 past the instance limit, 422 for a bad
    /// sequence, amount or feature, 409 for a reused sequence.
    pub async fn report_consumption(&self, req: ConsumptionRequest) -> Result<ConsumptionView> {
        let (license, instance) = self.reporter(&req.token, &req.instance_id).await?;
        if !(1..=MAX_QUOTA).contains(&req.seq) {
            return Err(Error::unprocessable(
                "invalid_sequence",
                format!("seq must be 1 to 2^53 ({MAX_QUOTA}), got {}", req.seq),
            ));
        }
        if req.amounts.is_empty() || req.amounts.len() > super::super::fields::MAX_FEATURES {
            return Err(Error::unprocessable(
                "invalid_amount",
                "amounts must name 1 to 100 features",
            ));
        }
        let mut items = Vec::with_capacity(req.amounts.len());
        for (feature, &amount) in &req.amounts {
            let quota = quota_of(&license, feature)?;
            if amount > MAX_QUOTA {
                return Err(Error::unprocessable(
                    "invalid_amount",
                    format!("{feature}: {amount} is over the largest amount, 2^53"),
                ));
            }
            items.push(Metered {
                feature: feature.clone(),
                amount,
                quota: quota.clone(),
            });
        }
        let now = self.now();
        let consumption = Consumption {
            license: license.id.clone(),
            instance: instance.as_str().to_owned(),
            seq: req.seq,
            digest: digest(&req.amounts),
            at: now,
            items,
        };
        let recorded = self
            .ledger
            .record(&self.shared.store, consumption.clone())
            .await?;
        let mut quotas = BTreeMap::new();
        let duplicate = match recorded {
            Recorded::Duplicate => {
                // Answer with the use as this replica knows it.
                for item in &consumption.items {
                    let used = license.quota_used_at(&item.feature, &item.quota, now);
                    quotas.insert(item.feature.clone(), item.quota.as_of(now, used));
                }
                true
            }
            Recorded::Counted { counts, changed } => {
                for n in &counts {
                    self.shared
                        .cache
                        .note_quota_used(&license, &n.feature, &n.period, n.used);
                    quotas.insert(n.feature.clone(), n.quota.as_of(now, n.used));
                    if n.crossed.exhausted {
                        tracing::info!(license = %license.id, feature = %n.feature, used = n.used, "quota exhausted");
                    }
                }
                if let Some(changed) = changed {
                    let changed = Arc::new(*changed);
                    self.shared.cache.remember(changed.clone());
                    self.push.publish(&changed, Some(std::time::Instant::now()));
                }
                false
            }
        };
        self.shared.metrics.consumption_report(duplicate);
        Ok(ConsumptionView {
            license: license.id.to_string(),
            seq: req.seq,
            duplicate,
            quotas,
        })
    }

    /// A metered feature's quota, its use now and its last `periods`
    /// periods (12 by default).
    ///
    /// # Errors
    /// 404 unknown license, 422 for a feature without a quota.
    pub async fn quota_usage(
        &self,
        id: &LicenseId,
        feature: &str,
        periods: Option<u32>,
    ) -> Result<QuotaUsageView> {
        let license = self.shared.license(id).await?;
        let quota = quota_of(&license, feature)?;
        let now = self.now();
        let used = license.quota_used_at(feature, quota, now);
        let history = self
            .shared
            .store
            .quota_history(id, feature, periods.unwrap_or(HISTORY).clamp(1, 1000))
            .await?;
        Ok(QuotaUsageView {
            license: license.id.to_string(),
            feature: feature.to_owned(),
            quota: quota.as_of(now, used),
            remaining: quota.left_after(used),
            periods: history
                .into_iter()
                .map(|p| QuotaPeriodView {
                    period: p.period,
                    used: p.used,
                    updated_at: p.updated_at,
                })
                .collect(),
        })
    }
}

/// Most reports one transaction counts.
const BATCH: usize = 512;

type Waiting = (Consumption, tokio::sync::oneshot::Sender<Result<Recorded>>);

/// Group commit for consumption reports: reports arriving while a
/// transaction is being written wait for the next one, which counts them
/// all (one disk flush for many reports on SQLite). A report is answered
/// only after its transaction committed.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Reports waiting, and whether a writer task is running.
    queue: std::sync::Mutex<(Vec<Waiting>, bool)>,
}

impl Ledger {
    async fn record(self: &Arc<Self>, store: &Arc<Store>, c: Consumption) -> Result<Recorded> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut q = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.0.push((c, tx));
            !std::mem::replace(&mut q.1, true)
        };
        if lead {
            // A task of its own: a request dropped by its client must not
            // strand the reports queued behind it.
            let (ledger, store) = (self.clone(), store.clone());
            tokio::spawn(async move { ledger.write(&store).await });
        }
        rx.await.map_err(|_| not_written())?
    }

    /// Write batches until nobody waits.
    async fn write(&self, store: &Store) {
        loop {
            let batch: Vec<Waiting> = {
                let mut q = self
                    .queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if q.0.is_empty() {
                    q.1 = false;
                    return;
                }
                let n = q.0.len().min(BATCH);
                q.0.drain(..n).collect()
            };
            let reports: Vec<Consumption> = batch.iter().map(|(c, _)| c.clone()).collect();
            match store.record_consumptions(&reports).await {
                Ok(outcomes) => {
                    for ((_, tx), outcome) in batch.into_iter().zip(outcomes) {
                        let _ = tx.send(outcome);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, reports = batch.len(), "consumption reports not written");
                    for (_, tx) in batch {
                        let _ = tx.send(Err(not_written()));
                    }
                }
            }
        }
    }
}

/// 503 for a report whose batch could not be written: nothing of it was
/// counted, and the client sends it again.
fn not_written() -> Error {
    Error::Unavailable {
        code: "store_unavailable",
        message: "the report could not be written; send it again".into(),
    }
}

/// What tells a retry from another report with the same sequence: the
/// amounts, in a canonical order.
fn digest(amounts: &BTreeMap<String, u64>) -> String {
    let mut hash = Sha256::new();
    for (feature, amount) in amounts {
        hash.update(feature.as_bytes());
        hash.update([0]);
        hash.update(amount.to_be_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}
