//! The server's background loops, each stopped by the shared cancellation
//! token: sightings and pruning (`background_tasks`), this replica's
//! heartbeat, clock offset, stream reaper and other replicas' changes
//! (`replica_tasks`), and the jobs that run on one replica at a time under
//! their job locks (`lifecycle_tasks`).

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Lifecycle;
use crate::store::{ChangeNotice, Store};
use crate::{clock, http, licenses, scheduler, webhooks};

/// A replica is alive while its heartbeat is younger than this.
pub(crate) const REPLICA_ALIVE_SECS: i64 = 30;
/// Heartbeat period.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
/// Reaper period (streams held by dead replicas are marked closed).
const REAP: std::time::Duration = std::time::Duration::from_secs(15);

pub(crate) async fn background_tasks(
    installations: Arc<licenses::Installations>,
    store: Arc<Store>,
    clock: Arc<dyn clock::Clock>,
    limiter: Option<Arc<http::ratelimit::IpRateLimiter>>,
    flush_every: std::time::Duration,
    cancel: CancellationToken,
) {
    let mut flush = tokio::time::interval(flush_every);
    let mut prune = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = flush.tick() => {
                if let Err(e) = installations.recorder().flush().await {
                    tracing::warn!(error = %e, "could not write instance sightings");
                }
            }
            _ = prune.tick() => {
                if let Some(limiter) = &limiter {
                    limiter.retain_recent();
                }
                if let Err(e) = store.purge_sessions(clock.now()).await {
                    tracing::warn!(error = %e, "could not forget expired console sessions");
                }
            }
        }
    }
}

/// What `replica_tasks` works with: heartbeat, clock offset, the stream
/// reaper (one replica at a time), and changes made by other replicas.
pub(crate) struct Replica {
    pub(crate) store: Arc<Store>,
    pub(crate) push: Arc<licenses::Push>,
    pub(crate) machines: Arc<licenses::Machines>,
    pub(crate) clock: Arc<dyn clock::Clock>,
    pub(crate) clock_sync: bool,
    pub(crate) kid: String,
}

/// Measure the clock offset from the database; warn when it changes and is
/// more than the truncation to seconds explains.
async fn sync_clock(r: &Replica, last: &mut chrono::Duration) {
    if !r.clock_sync {
        return;
    }
    match r.store.sync_clock(r.clock.as_ref()).await {
        Ok(offset) => {
            r.push.metrics().clock_offset.set(offset.num_seconds());
            if offset != *last && !offset.is_zero() {
                tracing::warn!(
                    seconds = offset.num_seconds(),
                    "this replica's clock differs from the database's: leases run on the database's time; fix the clock (NTP)"
                );
            }
            *last = offset;
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the database's clock"),
    }
}

pub(crate) async fn replica_tasks(r: Replica, cancel: CancellationToken) {
    let mut offset = chrono::Duration::zero();
    let Replica {
        store,
        push,
        machines,
        clock,
        kid,
        ..
    } = &r;
    let mut changes = store.changes();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut reap = tokio::time::interval(REAP);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = heartbeat.tick() => {
                sync_clock(&r, &mut offset).await;
                if let Err(e) = store.heartbeat(kid, clock.now()).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
            _ = reap.tick() => {
                let alive_since = clock.now() - chrono::Duration::seconds(REPLICA_ALIVE_SECS);
                match locked(store.as_ref(), "reap-streams", &cancel, store.reap_streams(alive_since)).await {
                    None | Some(Ok(0)) => {}
                    Some(Ok(n)) => tracing::info!(streams = n, "marked closed the streams of replicas that stopped"),
                    Some(Err(e)) => tracing::warn!(error = %e, "stream reaper failed"),
                }
            }
            notice = async {
                match changes.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match notice {
                Some(ChangeNotice::Changed { license, revision }) => {
                    push.on_remote_change(&license, revision).await;
                }
                Some(ChangeNotice::Machines { license }) => {
                    machines.on_remote_change(&license).await;
                }
                Some(ChangeNotice::Resync) => {
                    machines.resync();
                    push.resync().await;
                }
                None => changes = None,
            }
        }
    }
}

/// The scheduler (expiry horizons, auto-renewal), the lease reaper and the
/// webhook dispatcher, each under its job lock so one replica runs it at a time.
/// A tick that finds the lock taken just waits for the next.
pub(crate) async fn lifecycle_tasks(
    scheduler: scheduler::Scheduler,
    machines: Arc<licenses::Machines>,
    webhooks: Arc<webhooks::Webhooks>,
    settings: Lifecycle,
    cancel: CancellationToken,
) {
    let store = scheduler.store.clone();
    let dispatcher = match webhooks::Dispatcher::new(webhooks) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled");
            None
        }
    };
    // The first tick waits one interval: start-up (and a replica joining)
    // is not the moment to race requests for the database.
    let mut schedule = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.scheduler_interval,
        settings.scheduler_interval,
    );
    let mut deliver = tokio::time::interval(settings.webhook_poll);
    let mut reap = tokio::time::interval(settings.lease_reap_interval);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    deliver.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = schedule.tick() => {
                if let Some(Err(e)) = locked(store.as_ref(), "scheduler", &cancel, scheduler::tick(&scheduler, &settings.horizons)).await {
                    tracing::warn!(error = %e, "scheduler tick failed");
                }
            }
            _ = reap.tick() => {
                // Every replica writes its heartbeats; one at a time reaps.
                if let Err(e) = machines.flush_heartbeats().await {
                    tracing::warn!(error = %e, "could not write heartbeats");
                }
                if let Some(Err(e)) = locked(store.as_ref(), "leases", &cancel, machines.reap(500)).await {
                    tracing::warn!(error = %e, "lease reaper failed");
                }
            }
            _ = deliver.tick(), if dispatcher.is_some() => {
                let Some(dispatcher) = &dispatcher else { continue };
                if let Some(Err(e)) = locked(store.as_ref(), "webhooks", &cancel, dispatcher.run_once()).await {
                    tracing::warn!(error = %e, "webhook dispatch failed");
                }
            }
        }
    }
}

/// Run `work` under the job lock `job` (one replica at a time), cut short
/// by shutdown. `None` when another replica holds the lock, the lock could
/// not be asked for (logged), or shutdown came first.
pub(crate) async fn locked<T>(
    store: &Store,
    job: &str,
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> Option<T> {
    let lock = match store.try_job_lock(job).await {
        Ok(Some(lock)) => lock,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(job, error = %e, "cannot take the job lock");
            return None;
        }
    };
    let ran = tokio::select! {
        () = cancel.cancelled() => None,
        r = work => Some(r),
    };
    lock.release().await;
    ran
}
