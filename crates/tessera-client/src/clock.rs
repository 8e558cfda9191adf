//! Where the client gets the time: injected, so tests can move it (and set
//! it back, to see the clock guard work).

use chrono::Utc;
use tessera_protocol::Timestamp;
pub use tessera_protocol::clock::{Clock, ManualClock};
use tessera_protocol::time::whole_seconds;

/// The system clock, to the second.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        whole_seconds(Utc::now())
    }

    /// `CLOCK_REALTIME_COARSE` (a few nanoseconds, no syscall) plus its
    /// resolution, so the reading is never behind the true time.
    fn now_upper_bound_ms(&self) -> i64 {
        CoarseClock::new().upper_bound_ms()
    }
}

/// The system clock read coarsely for the readers' deadline check: one
/// vDSO read of `CLOCK_REALTIME_COARSE` plus its resolution (measured once),
/// so the value is never behind the true time. Elsewhere than Linux, the
/// precise clock plus a millisecond.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoarseClock {
    /// The coarse clock's resolution plus a millisecond; `None` when it
    /// cannot be used.
    slack_ms: Option<i64>,
}

impl CoarseClock {
    pub(crate) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            let mut res = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_getres writes one timespec into the pointer given.
            let rc = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &raw mut res) };
            Self {
                slack_ms: (rc == 0).then(|| res.tv_sec * 1_000 + res.tv_nsec / 1_000_000 + 1),
            }
        }
        #[cfg(not(target_os = "linux"))]
        Self { slack_ms: None }
    }

    /// Milliseconds since the epoch, never earlier than the true time.
    #[inline]
    pub(crate) fn upper_bound_ms(self) -> i64 {
        #[cfg(target_os = "linux")]
        if let Some(slack) = self.slack_ms {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec into the pointer given.
            if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &raw mut ts) } == 0 {
                return ts.tv_sec * 1_000 + ts.tv_nsec / 1_000_000 + slack;
            }
        }
        Utc::now().timestamp_millis() + 1
    }
}
