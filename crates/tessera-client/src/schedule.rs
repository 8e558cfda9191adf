//! When the client acts by itself: the refresh loop (at `refresh_after`
//! plus jitter, or after a backoff) and the deadline thread that republishes
//! the verdict when it changes with the clock alone (expiry, end of grace).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tessera_protocol::Timestamp;

use crate::engine::Inner;
use crate::error::Error;
use crate::verdict;

/// Backoff bounds for failed background refreshes.
const BACKOFF_MIN: StdDuration = StdDuration::from_secs(1);
const BACKOFF_MAX: StdDuration = StdDuration::from_secs(300);

impl Inner {
    /// How long until the loop should refresh, if at all (zero: now).
    pub(crate) fn next_refresh(&self, now: Timestamp) -> Option<StdDuration> {
        self.transport.as_ref()?;
        let held = self.lock();
        held.token.as_ref()?;
        // Pushes arrive on the stream: no polling while it is open — except
        // for a license that counts machines, whose answers are per machine
        // (a floating lease lives by these refreshes: they are its heartbeats).
        let per_machine = held
            .document
            .as_ref()
            .is_some_and(|d| d.claims().machine.is_some());
        if held.contact.connected && held.document.is_some() && !per_machine {
            return None;
        }
        if let Some(at) = held.retry_at {
            return Some(at.saturating_duration_since(tokio::time::Instant::now()));
        }
        if held.document.is_none() {
            return Some(StdDuration::ZERO);
        }
        let at = held.poll_at.unwrap_or(now);
        Some((at - now).to_std().unwrap_or(StdDuration::ZERO))
    }

    pub(crate) fn schedule_retry(&self, e: &Error) {
        let mut held = self.lock();
        held.failures = held.failures.saturating_add(1);
        // Full jitter over an exponentially growing window, 1 s … 5 min.
        let window = BACKOFF_MIN
            .saturating_mul(1u32 << held.failures.min(16).saturating_sub(1))
            .min(BACKOFF_MAX);
        let mut delay = StdDuration::from_millis(rand::random_range(
            u64::try_from(BACKOFF_MIN.as_millis()).unwrap_or(1000)
                ..=u64::try_from(window.as_millis()).unwrap_or(300_000),
        ));
        if let Some(wait) = e.retry_after(BACKOFF_MAX) {
            delay = delay.max(wait);
        }
        // Checked: a far-off instant must not panic the loop.
        let now = tokio::time::Instant::now();
        held.retry_at = Some(now.checked_add(delay).unwrap_or(now));
    }
}

/// Start the deadline thread: a plain OS thread, independent of the async
/// runtime and of the refresh loop, that republishes the verdict when its
/// `changes_at` (expiry, end of grace) passes. The refresh loop does the
/// same; with both, no single task's death (a panic, a stalled runtime)
/// can leave `valid` published past the expiry. Readers stay a generation
/// load: checking the clock on every `has_feature` would cost a clock read
/// (≈7 ns on the benchmark machine) each time.
///
/// # Errors
/// [`Error::Config`] when the thread cannot be started.
pub(crate) fn spawn_deadline_thread(inner: &Arc<Inner>) -> Result<(), Error> {
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("tessera-deadlines".into())
        .spawn(move || watch_deadlines(&weak))
        .map(|_| ())
        .map_err(|e| Error::Config(format!("cannot start the deadline thread: {e}")))
}

/// The deadline thread's loop: sleep until the published deadline (at most
/// 250 ms, to notice a new one or a clock jump), republish when it passed.
/// Ends when the client is dropped or stopped.
fn watch_deadlines(inner: &std::sync::Weak<Inner>) {
    const POLL: StdDuration = StdDuration::from_millis(250);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.cancel.is_cancelled() {
            return;
        }
        let deadline = strong
            .deadline_ms
            .load(std::sync::atomic::Ordering::Acquire);
        let now = strong.now().timestamp_millis();
        let wait = if deadline == i64::MAX {
            POLL
        } else if now >= deadline {
            // A panic here must not end the thread: it is the safety net.
            let published = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                strong.publish();
            }));
            let next = strong
                .deadline_ms
                .load(std::sync::atomic::Ordering::Acquire);
            if published.is_err() {
                tracing::error!("recomputing the verdict at its deadline panicked");
                POLL
            } else if next <= now {
                // Nothing moved (should not happen): do not spin.
                POLL
            } else {
                StdDuration::ZERO
            }
        } else {
            StdDuration::from_millis(u64::try_from(deadline - now).unwrap_or(0)).min(POLL)
        };
        // No strong reference while asleep: dropping the client ends us.
        drop(strong);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// The background loop: recompute the verdict when the clock crosses a
/// deadline, refresh at `refresh_after` (plus jitter) or after a backoff.
pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        inner.publish();
        inner.persist_hwm_if_due().await;
        let now = inner.now();
        let next_refresh = inner.next_refresh(now);
        if next_refresh == Some(StdDuration::ZERO) {
            let token = inner.lock().token.clone();
            if let Some(token) = token
                && let Err(e) = inner.single_flight(token, false, false).await
            {
                inner.schedule_retry(&e);
            }
            continue;
        }
        let change = {
            let held = inner.lock();
            verdict::next_change(held.document.as_ref(), now)
                .and_then(|at| (at - now).to_std().ok())
        };
        let sleep = [Some(inner.settings.tick), next_refresh, change]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(inner.settings.tick);
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = inner.wake.notified() => {},
            () = tokio::time::sleep(sleep) => {},
        }
    }
}
