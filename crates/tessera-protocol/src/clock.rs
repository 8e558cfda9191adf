//! The `Clock` both sides are given. This crate never reads the real clock:
//! the system clocks live in the server and client crates; [`ManualClock`]
//! is the one tests and simulations move by hand.

use std::sync::Mutex;

use chrono::Duration;

use crate::Timestamp;
use crate::time::whole_seconds;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// A clock that moves only when told to. Whole seconds, like the wire.
#[derive(Debug)]
pub struct ManualClock {
    // std Mutex: held for a copy, never across an await.
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
        *now = whole_seconds(*now + by);
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
