//! Where the authority gets the time: injected, so tests can move it.

use std::sync::Mutex;

use chrono::{Duration, Utc};
use tessera_protocol::Timestamp;
use tessera_protocol::time::whole_seconds;

/// A source of the current time. The authority works in whole seconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, to the second.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        whole_seconds(Utc::now())
    }
}

/// A clock that moves only when told to (tests, simulations).
#[derive(Debug)]
pub struct ManualClock {
    // std Mutex: held for a copy, never across .await.
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// Start at `now`.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            now: Mutex::new(whole_seconds(now)),
        }
    }

    /// Set the time.
    pub fn set(&self, now: Timestamp) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = whole_seconds(now);
    }

    /// Move the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
