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
        coarse_upper_bound_ms().unwrap_or_else(|| Utc::now().timestamp_millis() + 1)
    }
}

#[cfg(target_os = "linux")]
fn coarse_upper_bound_ms() -> Option<i64> {
    use std::sync::OnceLock;
    static RESOLUTION_MS: OnceLock<Option<i64>> = OnceLock::new();
    let resolution = (*RESOLUTION_MS.get_or_init(|| {
        let mut res = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_getres writes one timespec into the pointer given.
        let rc = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &raw mut res) };
        (rc == 0).then(|| res.tv_sec * 1_000 + res.tv_nsec / 1_000_000 + 1)
    }))?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &raw mut ts) };
    (rc == 0).then(|| ts.tv_sec * 1_000 + ts.tv_nsec / 1_000_000 + resolution)
}

#[cfg(not(target_os = "linux"))]
fn coarse_upper_bound_ms() -> Option<i64> {
    None
}
