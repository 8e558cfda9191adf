//! Consumption reports (docs/PROTOCOL.md §22): what `consume` counted,
//! sent in batches, at least once and never counted twice.
//!
//! One report is in flight at a time. It keeps its sequence number until
//! the authority answers it, so a retry after a lost answer is recognised
//! (`duplicate`) and not counted again. Sequence numbers start from the
//! clock (milliseconds × 1024, never below the clock mark) so that a
//! restarted client does not reuse its earlier ones; should one be taken
//! anyway (409 `duplicate_sequence`: another report had it, this one was
//! not counted), the same amounts go again under a later number.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use tessera_protocol::Timestamp;

use crate::engine::Inner;
use crate::error::Error;

/// A report not answered within this long is given up (the authority
/// keeps report ids 35 days, so a later retry could be counted twice).
const GIVE_UP_AFTER: ChronoDuration = ChronoDuration::days(30);

/// How far the sequence jumps past one another report took.
const SEQUENCE_JUMP: u64 = 1 << 20;

/// The report in flight and the next sequence number.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    next_seq: u64,
    inflight: Option<Report>,
}

#[derive(Debug, Clone)]
struct Report {
    seq: u64,
    amounts: BTreeMap<String, u64>,
    first_sent: Timestamp,
}

/// A sequence number no earlier run of this instance used: from `at`
/// (the later of the clock and the clock mark), 1024 per millisecond.
fn first_sequence(at: Timestamp) -> u64 {
    u64::try_from(at.timestamp_millis())
        .unwrap_or(1)
        .saturating_mul(1024)
        .clamp(1, tessera_protocol::quota::MAX_QUOTA / 2)
}

impl Inner {
    /// Send what was consumed and not yet reported (the report in flight
    /// first). `Ok` when nothing is left to send.
    pub(crate) async fn report_consumption(&self) -> Result<(), Error> {
        let Some(transport) = self.transport.as_ref() else {
            return Err(Error::NoServer);
        };
        let mut reports = self.reports.lock().await;
        loop {
            let now = self.now();
            let report = match reports.inflight.clone() {
                Some(r) if now - r.first_sent > GIVE_UP_AFTER => {
                    tracing::warn!(
                        seq = r.seq,
                        "gave up a consumption report unanswered for 30 days"
                    );
                    self.meters.abandon(&r.amounts);
                    reports.inflight = None;
                    continue;
                }
                Some(r) => r,
                None => {
                    let amounts = self.meters.take_pending();
                    if amounts.is_empty() {
                        return Ok(());
                    }
                    if reports.next_seq == 0 {
                        let mark = self.lock().hwm.unwrap_or(now).max(now);
                        reports.next_seq = first_sequence(mark);
                    }
                    let r = Report {
                        seq: reports.next_seq,
                        amounts,
                        first_sent: now,
                    };
                    reports.next_seq += 1;
                    reports.inflight = Some(r.clone());
                    r
                }
            };
            let (token, instance) = {
                let held = self.lock();
                (held.token.clone(), held.instance_id.to_string())
            };
            let Some(token) = token else {
                return Err(Error::NoToken);
            };
            match transport
                .consumption(
                    token.expose_secret(),
                    &instance,
                    report.seq,
                    &report.amounts,
                )
                .await
            {
                Ok(answer) => {
                    self.meters.settle(&report.amounts, &answer.quotas);
                    reports.inflight = None;
                }
                Err(Error::HttpStatus { status: 409, .. }) => {
                    // Not counted: the same amounts again, under a new number.
                    let seq = reports.next_seq.max(report.seq) + SEQUENCE_JUMP;
                    if let Some(r) = reports.inflight.as_mut() {
                        r.seq = seq;
                    }
                    reports.next_seq = seq + 1;
                }
                Err(
                    e @ Error::HttpStatus {
                        status: 401 | 403 | 422,
                        ..
                    },
                ) => {
                    // Refused for good (the token is gone, the feature no
                    // longer metered): sending again cannot help.
                    tracing::warn!(error = %e, "a consumption report was refused; its amounts are dropped");
                    self.meters.abandon(&report.amounts);
                    reports.inflight = None;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Report every `interval`, and when asked (`Client::flush_consumption`
/// reports itself). Failures are retried at the next interval.
pub(crate) async fn consumption_loop(inner: Arc<Inner>, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = inner.report_consumption().await {
            tracing::debug!(error = %e, "could not report consumption");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_start_from_the_clock_within_json_safe_numbers() {
        let at = tessera_protocol::human::parse_date_or_time("2026-12-01").unwrap();
        let seq = first_sequence(at);
        assert_eq!(seq, u64::try_from(at.timestamp_millis()).unwrap() * 1024);
        assert!(seq < tessera_protocol::quota::MAX_QUOTA / 2);
        assert!(first_sequence(at + ChronoDuration::milliseconds(1)) > seq);
    }
}
