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
}
