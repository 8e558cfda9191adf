//! Round trips in flight: one per token at a time ([`Inner::single_flight`]),
//! and an answer that crosses a pushed document on its way.
//!
//! A round trip (a poll, or a refresh that joined it) asks at revision N;
//! while its answer travels, the change stream delivers revision N+1. The
//! answer, still revision N, is then older than the held document: the
//! rollback rule keeps it out, but it is no attack — it is no older than
//! what was held when the client asked — so it is dropped without an error
//! (the caller gets the held, newer verdict). An answer older than what was
//! held when asking is still the rollback error it always was.

use std::sync::Arc;

use futures_util::FutureExt;
use tessera_protocol::rollback::{RollbackDecision, check_document_rollback};
use tessera_protocol::{LicenseToken, Timestamp, VerifiedDocument};

use crate::engine::{Flight, Held, Inner};
use crate::error::Error;
use crate::verdict::Verdict;

impl Inner {
    /// Run `round_trip` once per token at a time: concurrent callers share
    /// the one request and its result. The work runs as its own task, so a
    /// caller giving up does not cut a state write in half.
    pub(crate) async fn single_flight(
        self: &Arc<Self>,
        token: LicenseToken,
        forced: bool,
        activating: bool,
    ) -> Result<Arc<Verdict>, Error> {
        let key = token.fingerprint();
        let flight = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let task = tokio::spawn(self.clone().round_trip(token, forced, activating));
                let f: Flight = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(Error::Network(format!("refresh task failed: {e}")))
                    })
                }
                .boxed()
                .shared();
                inflight.insert(key.clone(), f.clone());
                f
            }
        };
        let result = flight.clone().await;
        let mut inflight = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inflight.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            inflight.remove(&key);
        }
        result
    }
}

/// (revision, `iat`) of the held document, taken when a request is sent.
pub(crate) fn held_version(held: &Held) -> Option<(u64, Timestamp)> {
    held.document
        .as_ref()
        .map(|d| (d.claims().rev, d.claims().iat))
}

/// `doc` is older than the held document only because a newer one arrived
/// after the request was sent (`asked_over`: what was held then).
pub(crate) fn superseded(
    held: &Held,
    doc: &VerifiedDocument,
    asked_over: Option<(u64, Timestamp)>,
) -> bool {
    let Some(current) = &held.document else {
        return false;
    };
    let d = doc.claims();
    current.claims().tfp == d.tfp
        && check_document_rollback(current, doc) == RollbackDecision::Reject
        && asked_over.is_none_or(|asked| (d.rev, d.iat) >= asked)
}
