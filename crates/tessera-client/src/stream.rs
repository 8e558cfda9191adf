//! The change stream: `GET /v1/watch` kept open while the client runs, and
//! the revision reports that let the authority show delivery.
//!
//! Pushed documents go through the same verification and rollback rule as
//! any answer. While the stream is open the refresh loop does not poll;
//! when it drops, polling resumes and the stream reconnects with full
//! jitter (1 s … 30 s, reset after 60 s of health), resuming from the held
//! revision (`Last-Event-ID`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tessera_protocol::LicenseToken;

use crate::engine::{Evidence, Inner};
use crate::error::Error;
use crate::verdict::Verdict;

const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// After the authority refuses the token (unknown, revoked), ask again this
/// rarely: only a new token can change the answer.
const REFUSED_RETRY: Duration = Duration::from_secs(300);
/// The held revision is reported again this often, whatever happened.
const REACK_EVERY: Duration = Duration::from_secs(300);

fn reconnect_delay(failures: u32) -> Duration {
    let window = RECONNECT_MIN
        .saturating_mul(1u32 << failures.min(16))
        .min(RECONNECT_MAX);
    let ms = rand::random_range(
        u64::try_from(RECONNECT_MIN.as_millis()).unwrap_or(1_000)
            ..=u64::try_from(window.as_millis()).unwrap_or(30_000),
    );
    Duration::from_millis(ms)
}

pub(crate) async fn watch_loop(inner: Arc<Inner>, read_timeout: Duration) {
    let Some(transport) = inner.transport.as_ref() else {
        return;
    };
    let mut epoch = inner.token_epoch.subscribe();
    let mut failures: u32 = 0;
    loop {
        epoch.mark_unchanged();
        let (token, instance, held_rev) = {
            let held = inner.lock();
            (
                held.token.clone(),
                held.instance_id.to_string(),
                held.held_revision(),
            )
        };
        let Some(token) = token else {
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                _ = epoch.changed() => continue,
            }
        };
        let mut wait = reconnect_delay(failures);
        match transport
            .open_stream(token.expose_secret(), &instance, held_rev, read_timeout)
            .await
        {
            Ok(mut events) => {
                let opened = Instant::now();
                inner.set_stream(true);
                // An open stream is unsigned: it proves nothing until a
                // document arrives. If the client is flagged offline, ask
                // for signed evidence now (with Last-Event-ID current the
                // stream may send nothing for hours).
                inner.on_stream_open();
                inner.reack.notify_one();
                tracing::debug!("change stream open");
                let ended = loop {
                    tokio::select! {
                        () = inner.cancel.cancelled() => {
                            inner.set_stream(false);
                            return;
                        }
                        _ = epoch.changed() => break None,
                        event = events.next() => match event {
                            Ok(event) if event.announcement => {
                                // Not ours to hold: ask for this machine's answer now.
                                inner.poll_now();
                            }
                            Ok(event) => {
                                // Errors are recorded by accept_pushed; the stream stays.
                                let _ = inner.accept_pushed(&token, &event.data).await;
                            }
                            Err(e) => break Some(e),
                        }
                    }
                };
                inner.set_stream(false);
                if opened.elapsed() >= HEALTHY_AFTER {
                    failures = 0;
                }
                match ended {
                    None => {
                        // A new token: reconnect with it at once.
                        failures = 0;
                        continue;
                    }
                    Some(e) => {
                        tracing::info!(error = %e, "change stream closed; reconnecting");
                        failures = failures.saturating_add(1);
                        wait = reconnect_delay(failures);
                    }
                }
            }
            Err(Error::HttpStatus {
                status: 401 | 403,
                message,
                ..
            }) => {
                tracing::info!(status = %message, "the authority refuses a stream for this token");
                inner.poll_now();
                wait = REFUSED_RETRY;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the change stream");
                failures = failures.saturating_add(1);
                if let Some(asked) = e.retry_after(REFUSED_RETRY) {
                    wait = wait.max(asked);
                }
            }
        }
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            _ = epoch.changed() => { failures = 0; }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Report the held revision after each accepted document. Coalesced: a
/// wake-up reports whatever is held by then, so a burst sends one report.
///
/// The fleet view heals by itself: the held revision is reported again
/// each time a stream (re)connects and every [`REACK_EVERY`], so an ack
/// lost with a replica (killed before its batch was written) is replaced.
pub(crate) async fn ack_loop(inner: Arc<Inner>) {
    let Some(transport) = inner.transport.as_ref() else {
        return;
    };
    let mut reported: Option<(String, u64)> = None;
    let mut every = ticker(REACK_EVERY).await;
    loop {
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = inner.ack.notified() => {}
            () = inner.reack.notified() => reported = None,
            _ = every.tick() => reported = None,
        }
        let (token, instance, revision) = {
            let held = inner.lock();
            (
                held.token.clone(),
                held.instance_id.to_string(),
                held.held_revision(),
            )
        };
        let (Some(token), Some(revision)) = (token, revision) else {
            continue;
        };
        let key = (token.fingerprint().to_string(), revision);
        if reported.as_ref() == Some(&key) {
            continue;
        }
        match transport
            .ack(token.expose_secret(), &instance, revision)
            .await
        {
            Ok(()) => reported = Some(key),
            Err(e) => tracing::debug!(error = %e, "could not report the held revision"),
        }
    }
}

/// A tick every `period` from one period from now; a late tick is not
/// made up for with a burst.
async fn ticker(period: Duration) -> tokio::time::Interval {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    every
}

/// Metering: report the product's user count when it changes and every
/// `interval`. Failures are logged and retried at the next interval; they
/// never touch the verdict.
pub(crate) async fn usage_loop(inner: Arc<Inner>, interval: Duration) {
    let Some(transport) = inner.transport.as_ref() else {
        return;
    };
    let mut every = ticker(interval).await;
    loop {
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = inner.usage_wake.notified() => {}
            _ = every.tick() => {}
        }
        let users = inner.users.load(std::sync::atomic::Ordering::Relaxed);
        if users == crate::engine::NO_USERS {
            continue;
        }
        let (token, instance) = {
            let held = inner.lock();
            (held.token.clone(), held.instance_id.to_string())
        };
        let Some(token) = token else {
            continue;
        };
        let users = u32::try_from(users).unwrap_or(u32::MAX);
        if let Err(e) = transport
            .usage(token.expose_secret(), &instance, users)
            .await
        {
            tracing::debug!(error = %e, "could not report usage");
        }
    }
}

impl Inner {
    /// Verify a pushed document for `token` and apply it.
    pub(crate) async fn accept_pushed(
        &self,
        token: &LicenseToken,
        text: &str,
    ) -> Result<Arc<Verdict>, Error> {
        let expect = self.settings.expect(token);
        let doc = self.verified(text, &expect)?;
        self.accept(doc, None, Evidence::Stream).await
    }
}
