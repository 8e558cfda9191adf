//! The scheduler: expiry horizons and automatic renewal (docs/PROTOCOL.md,
//! "Expiry and renewal").
//!
//! One tick does all due work and can be repeated at will: a horizon is
//! recorded per (license, horizon, expiry) in the same transaction as its
//! event, so restarts and several replicas never fire one twice, and an
//! auto-renewal re-checks that the license is still due inside the change's
//! optimistic transaction. With replicas the loop runs under a job lock
//! (`lib.rs`), so only one replica does the work at a time.

use chrono::Duration;
use serde_json::json;
use tessera_protocol::human::format_duration;
use tessera_protocol::wire::EventKind;

use crate::error::Result;
use std::sync::Arc;

use crate::clock::Clock;
use crate::licenses::{Changes, Metering};
use crate::metrics::Metrics;
use crate::model::{License, NewEvent};
use crate::store::Store;

/// Licenses handled per query; the tick loops until a query comes back short.
const BATCH: u32 = 200;

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// `license.expiring` events raised.
    pub expiring: usize,
    /// `license.expired` events raised.
    pub expired: usize,
    /// Licenses renewed automatically.
    pub renewed: usize,
}

/// The label a horizon is stored and shown under (`30d`, `12h`).
#[must_use]
pub fn horizon_label(h: Duration) -> String {
    format_duration(h)
}

/// What the scheduler works with.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Due licenses and horizons are read here.
    pub store: Arc<Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Renewals go through the change loop.
    pub changes: Arc<Changes>,
    /// Installations are pruned here.
    pub metering: Arc<Metering>,
    /// Horizon events are counted.
    pub metrics: Arc<Metrics>,
}

impl Scheduler {
    fn now(&self) -> tessera_protocol::Timestamp {
        self.clock.now()
    }
}

/// Run every due job once at the service's `now`.
///
/// Auto-renewal runs first, so a license renewed in time raises no
/// "expiring" warning for the period it just left.
///
/// # Errors
/// The store's; work done before the error stays done.
pub async fn tick(svc: &Scheduler, horizons: &[Duration]) -> Result<TickReport> {
    let renewed = renew_due(svc).await?;
    let (expired, expiring) = fire_horizons(svc, horizons).await?;
    svc.metering.prune_instances_if_due().await?;
    let report = TickReport {
        expiring,
        expired,
        renewed,
    };
    if report != TickReport::default() {
        tracing::info!(
            renewed = report.renewed,
            expiring = report.expiring,
            expired = report.expired,
            "scheduler tick"
        );
    }
    Ok(report)
}

async fn renew_due(svc: &Scheduler) -> Result<usize> {
    let mut renewed = 0;
    // Each pass renews or skips every license it gets; a renewed license
    // leaves the window, so the loop ends. Bounded anyway.
    for _ in 0..1_000 {
        let due = svc.store.auto_renew_due(svc.now(), BATCH).await?;
        let mut progressed = 0;
        for license in &due {
            match svc.changes.auto_renew(&license.id).await {
                Ok(Some(_)) => {
                    renewed += 1;
                    progressed += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(license = %license.id, error = %e, "automatic renewal failed");
                }
            }
        }
        if due.len() < BATCH as usize || progressed == 0 {
            break;
        }
    }
    Ok(renewed)
}

/// Horizons narrowest first, "expired" (zero) before them all. A license
/// that enters several at once (issued 5 days before expiry) raises the
/// narrowest only; the wider ones are recorded silently.
async fn fire_horizons(svc: &Scheduler, horizons: &[Duration]) -> Result<(usize, usize)> {
    let mut ordered: Vec<Duration> = horizons.to_vec();
    ordered.sort();
    ordered.dedup();
    let mut expired = 0;
    let mut expiring = 0;
    let zero = Duration::zero();
    for (i, horizon) in std::iter::once(zero)
        .chain(ordered.iter().copied())
        .enumerate()
    {
        // The next narrower horizon (none for "expired" and the narrowest).
        let narrower = match i {
            0 => None,
            1 => Some(zero),
            _ => Some(ordered[i - 2]),
        };
        let label = if horizon == zero {
            "expired".to_owned()
        } else {
            horizon_label(horizon)
        };
        loop {
            let now = svc.now();
            let due = svc.store.horizon_due(&label, now + horizon, BATCH).await?;
            for license in &due {
                let Some(expires_at) = license.expires_at else {
                    continue;
                };
                let left = expires_at - now;
                let silent = narrower.is_some_and(|n| left <= n);
                let event = (!silent).then(|| horizon_event(license, &label, horizon, now));
                if svc.store.fire_horizon(license, &label, event).await? && !silent {
                    if horizon == zero {
                        expired += 1;
                    } else {
                        expiring += 1;
                    }
                    svc.metrics.horizon_event(&label);
                }
            }
            if due.len() < BATCH as usize {
                break;
            }
        }
    }
    Ok((expired, expiring))
}

fn horizon_event(
    license: &License,
    label: &str,
    horizon: Duration,
    now: tessera_protocol::Timestamp,
) -> NewEvent {
    let expires_at = license
        .expires_at
        .as_ref()
        .map(tessera_protocol::time::format);
    NewEvent {
        at: now,
        actor: "scheduler".into(),
        kind: if horizon == Duration::zero() {
            EventKind::LicenseExpired
        } else {
            EventKind::LicenseExpiring
        },
        before: None,
        after: Some(json!({
            "horizon": label,
            "expires_at": expires_at,
            "customer": license.customer,
            "plan": license.plan,
            "revision": license.revision,
            "auto_renew": license.auto_renews(),
        })),
    }
}
