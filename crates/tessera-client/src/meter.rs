//! Metered quotas on the client (docs/PROTOCOL.md §22).
//!
//! `consume` is an atomic add on a per-feature [`Meter`]: no lock, no I/O.
//! A meter's `used` is the client's best estimate of the period's use
//! across every instance: what the authority had counted (the held
//! document's `used` as of `iat`, or a later report's answer) plus what
//! this client consumed that the authority has not counted yet (`pending`,
//! not yet in a report, and `inflight`, in a report not yet answered).
//! Under `block` (and `allow_until_percent`) a consumption that would pass
//! the ceiling is refused; a new document that says the quota is exhausted
//! (pushed the moment any instance passes it) makes every later one refuse.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use tessera_protocol::quota::MAX_QUOTA;
use tessera_protocol::{Entitlements, Quota, QuotaPeriod, Timestamp};

use crate::error::Error;

/// `period_end_ms` of a quota that never starts again.
const NEVER: i64 = i64::MAX;

/// One metered feature.
#[derive(Debug)]
pub(crate) struct Meter {
    period: QuotaPeriod,
    limit: AtomicU64,
    /// How far `used` may go (`u64::MAX`: no bound).
    ceiling: AtomicU64,
    /// The estimate `consume` checks and moves.
    used: AtomicU64,
    /// Consumed, not yet in a report.
    pending: AtomicU64,
    /// In the report awaiting its answer.
    inflight: AtomicU64,
    /// The authority's count in the current period, as last learned.
    counted: AtomicU64,
    /// When the current period ends, epoch milliseconds.
    period_end_ms: AtomicI64,
}

impl Meter {
    fn new(q: &Quota) -> Self {
        Self {
            period: q.period,
            limit: AtomicU64::new(q.limit),
            ceiling: AtomicU64::new(q.overage.ceiling(q.limit).unwrap_or(u64::MAX)),
            used: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            period_end_ms: AtomicI64::new(NEVER),
        }
    }

    fn uncounted(&self) -> u64 {
        self.pending
            .load(Relaxed)
            .saturating_add(self.inflight.load(Relaxed))
    }

    /// The authority counted `counted` in the period ending at `end_ms`.
    fn learn(&self, counted: u64, end_ms: i64) {
        if self.period_end_ms.load(Relaxed) == end_ms {
            self.counted.fetch_max(counted, Relaxed);
        } else {
            self.period_end_ms.store(end_ms, Relaxed);
            self.counted.store(counted, Relaxed);
        }
        let estimate = self.counted.load(Relaxed).saturating_add(self.uncounted());
        self.used.store(estimate, Relaxed);
    }
}

/// The meters of the held license, by feature.
#[derive(Debug, Default)]
pub(crate) struct Meters {
    table: ArcSwap<HashMap<String, Arc<Meter>>>,
    /// (revision, `iat`) of the document the meters were last based on.
    based_on: std::sync::Mutex<Option<(u64, Timestamp)>>,
}

fn end_ms(q: &Quota) -> i64 {
    q.period_ends_at.map_or(NEVER, |t| t.timestamp_millis())
}

impl Meters {
    /// Consume `amount` of `feature`; what is left of the limit after it.
    pub(crate) fn consume(&self, feature: &str, amount: u64) -> Result<u64, Error> {
        if amount > MAX_QUOTA {
            return Err(Error::InvalidAmount(amount));
        }
        let table = self.table.load();
        let Some(m) = table.get(feature) else {
            return Err(Error::UnknownQuota(feature.to_owned()));
        };
        let ceiling = m.ceiling.load(Relaxed);
        match m.used.fetch_update(Relaxed, Relaxed, |u| {
            u.checked_add(amount).filter(|after| *after <= ceiling)
        }) {
            Ok(before) => {
                m.pending.fetch_add(amount, Relaxed);
                Ok(m.limit.load(Relaxed).saturating_sub(before + amount))
            }
            Err(used) => Err(Error::QuotaExhausted {
                feature: feature.to_owned(),
                remaining: ceiling.saturating_sub(used).min(m.limit.load(Relaxed)),
            }),
        }
    }

    /// What is left of `feature`'s limit in the current period.
    pub(crate) fn remaining(&self, feature: &str) -> Option<u64> {
        let table = self.table.load();
        let m = table.get(feature)?;
        Some(m.limit.load(Relaxed).saturating_sub(m.used.load(Relaxed)))
    }

    /// Each metered feature: (limit, used as estimated now, period end).
    pub(crate) fn snapshot(&self) -> BTreeMap<String, (u64, u64)> {
        self.table
            .load()
            .iter()
            .map(|(f, m)| (f.clone(), (m.limit.load(Relaxed), m.used.load(Relaxed))))
            .collect()
    }

    /// [`Meters::sync`] with the held document.
    pub(crate) fn sync_with(
        &self,
        doc: Option<&tessera_protocol::VerifiedDocument>,
        now: Timestamp,
    ) {
        let doc = doc.map(|d| {
            let c = d.claims();
            (c.rev, c.iat, &c.entitlements, c.enforcement.is_default())
        });
        self.sync(doc, now);
    }

    /// Base the meters on the held document's quotas, when it is another
    /// document than last time; start a period again once it is over.
    /// Under a policy that only warns (`enforced` false, §24) nothing is
    /// refused: the verdict carries `quota_exhausted` instead.
    pub(crate) fn sync(&self, doc: Option<(u64, Timestamp, &Entitlements, bool)>, now: Timestamp) {
        let mut based_on = self
            .based_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = doc.map(|(rev, iat, _, _)| (rev, iat));
        if key != *based_on {
            *based_on = key;
            let enforced = doc.is_none_or(|(_, _, _, enforced)| enforced);
            let ceiling = |q: &Quota| {
                if enforced {
                    q.overage.ceiling(q.limit).unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                }
            };
            let quotas: Vec<(&String, &Quota)> = doc
                .map(|(_, _, e, _)| {
                    e.iter()
                        .filter_map(|(f, e)| e.quota.as_ref().map(|q| (f, q)))
                        .collect()
                })
                .unwrap_or_default();
            let old = self.table.load();
            let mut table = HashMap::with_capacity(quotas.len());
            for (feature, q) in quotas {
                let m = match old.get(feature) {
                    Some(m) if m.period == q.period => {
                        m.limit.store(q.limit, Relaxed);
                        m.clone()
                    }
                    _ => Arc::new(Meter::new(q)),
                };
                m.ceiling.store(ceiling(q), Relaxed);
                m.learn(q.used.unwrap_or(0), end_ms(q));
                table.insert(feature.clone(), m);
            }
            self.table.store(Arc::new(table));
        }
        drop(based_on);
        let now_ms = now.timestamp_millis();
        for m in self.table.load().values() {
            if m.period_end_ms.load(Relaxed) <= now_ms {
                // A new period: the authority's count starts from nothing.
                let end = m.period.end(now).map_or(NEVER, |t| t.timestamp_millis());
                m.learn(0, end);
            }
        }
    }

    /// Move what is pending into a report: amounts by feature, if any.
    pub(crate) fn take_pending(&self) -> BTreeMap<String, u64> {
        let mut amounts = BTreeMap::new();
        for (feature, m) in self.table.load().iter() {
            let n = m.pending.swap(0, Relaxed);
            if n > 0 {
                m.inflight.fetch_add(n, Relaxed);
                amounts.insert(feature.clone(), n);
            }
        }
        amounts
    }

    /// A report was answered (counted now or before): its amounts are in
    /// the authority's count, which `answer` says (unsigned, so it only
    /// ever raises the estimate).
    pub(crate) fn settle(&self, amounts: &BTreeMap<String, u64>, answer: &BTreeMap<String, Quota>) {
        let table = self.table.load();
        for (feature, n) in amounts {
            let Some(m) = table.get(feature) else {
                continue;
            };
            m.inflight
                .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(*n)))
                .ok();
            match answer.get(feature) {
                Some(q) if end_ms(q) == m.period_end_ms.load(Relaxed) => {
                    m.learn(q.used.unwrap_or(0), end_ms(q));
                }
                // Counted in a period this client has not seen start yet
                // (its clock is behind): the estimate stays as it is.
                _ => {}
            }
        }
    }

    /// A report that will never be counted (refused for good, or too old
    /// to send): its amounts leave the estimate's uncounted part.
    pub(crate) fn abandon(&self, amounts: &BTreeMap<String, u64>) {
        let table = self.table.load();
        for (feature, n) in amounts {
            if let Some(m) = table.get(feature) {
                m.inflight
                    .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(*n)))
                    .ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_protocol::Entitlement;

    fn t(s: &str) -> Timestamp {
        tessera_protocol::human::parse_date_or_time(s).unwrap()
    }

    fn doc(typed: &str, used: u64, iat: Timestamp) -> Entitlements {
        let q = Quota::parse(typed).unwrap().as_of(iat, used);
        let mut e = Entitlements::new();
        e.insert(
            "api".into(),
            Entitlement {
                expires_at: None,
                quota: Some(q),
            },
        );
        e
    }

    #[test]
    fn consumption_stops_at_the_ceiling_and_counts_what_is_uncounted() {
        let m = Meters::default();
        let iat = t("2026-12-10");
        m.sync(Some((1, iat, &doc("100/month", 90, iat), true)), iat);
        assert_eq!(m.remaining("api"), Some(10));
        assert_eq!(m.consume("api", 4).unwrap(), 6);
        assert!(matches!(
            m.consume("api", 7),
            Err(Error::QuotaExhausted { remaining: 6, .. })
        ));
        assert_eq!(m.consume("api", 6).unwrap(), 0);
        assert!(matches!(m.consume("nope", 1), Err(Error::UnknownQuota(_))));
        assert!(matches!(
            m.consume("api", MAX_QUOTA + 1),
            Err(Error::InvalidAmount(_))
        ));
        // Reported: in flight until answered, then the authority's count.
        let report = m.take_pending();
        assert_eq!(report["api"], 10);
        // Another document of the same period before the answer: the
        // uncounted 10 stay on top of its count.
        let iat2 = iat + chrono::Duration::seconds(5);
        m.sync(Some((1, iat2, &doc("100/month", 90, iat2), true)), iat2);
        assert_eq!(m.remaining("api"), Some(0));
        let answer = BTreeMap::from([(
            "api".to_owned(),
            Quota::parse("100/month").unwrap().as_of(iat2, 100),
        )]);
        m.settle(&report, &answer);
        assert_eq!(m.remaining("api"), Some(0));
        // The next month starts again from nothing.
        m.sync(
            Some((1, iat2, &doc("100/month", 90, iat2), true)),
            t("2027-01-01"),
        );
        assert_eq!(m.remaining("api"), Some(100));
        assert_eq!(m.consume("api", 1).unwrap(), 99);
    }

    #[test]
    fn overage_lets_consumption_go_past_the_limit() {
        let m = Meters::default();
        let iat = t("2026-12-10");
        m.sync(
            Some((
                1,
                iat,
                &doc("10/day/allow_until_percent(150)", 9, iat),
                true,
            )),
            iat,
        );
        assert_eq!(
            m.consume("api", 5).unwrap(),
            0,
            "past the limit, within 150 %"
        );
        assert!(m.consume("api", 2).is_err());
        m.sync(Some((2, iat, &doc("10/day/allow", 1_000, iat), true)), iat);
        assert!(m.consume("api", 1_000_000).is_ok());
        // A policy that only warns refuses nothing, even under `block`.
        m.sync(Some((3, iat, &doc("10/day", 10, iat), false)), iat);
        assert!(m.consume("api", 5).is_ok());
        m.sync(Some((4, iat, &doc("10/day", 10, iat), true)), iat);
        assert!(m.consume("api", 1).is_err(), "enforced again");
    }
}
