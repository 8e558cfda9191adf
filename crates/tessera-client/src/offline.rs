//! Offline activation from the isolated machine's side (docs/PROTOCOL.md
//! §25): the request it writes (a short checksummed code), and the response
//! it imports — bound to this machine (`mfp`) and answering one of its own
//! requests' nonces — or a renewal of it, taken by the rollback rule.

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use tessera_protocol::offline::{NONCE_BYTES, OfflineRequest};
use tessera_protocol::rollback::{RollbackDecision, check_document_rollback};
use tessera_protocol::wire::{LicenseExport, machine_fingerprint_hash};
use tessera_protocol::{
    Error as ProtocolError, Expectations, Freshness, LicenseToken, Timestamp, TrustedKeys,
    VerifiedDocument,
};

use crate::Client;
use crate::engine::{Evidence, Held};
use crate::error::Error;
use crate::state::StateFile;
use crate::verdict::Verdict;

/// Verify an offline file's bytes — a response or export file (JSON with
/// `document`), or the bare document — for `token` on the machine whose
/// fingerprint is `fingerprint`: a document bound to a machine must be
/// this one's (`fingerprint_mismatch`) and answer one of the requests kept
/// in `state` (`nonce_mismatch`).
fn verify_offline(
    bytes: &[u8],
    (keys, max_clock_drift, product): (&TrustedKeys, Duration, Option<&str>),
    token: &LicenseToken,
    fingerprint: &str,
    state: Option<&StateFile>,
    now: Timestamp,
) -> Result<VerifiedDocument, Error> {
    let text = match serde_json::from_slice::<LicenseExport>(bytes) {
        Ok(file) => file.document.into_bytes(),
        // Bytes that are neither are the verifier's to refuse (`malformed`).
        Err(_) => bytes.trim_ascii().to_vec(),
    };
    let expect = Expectations::for_token(token.fingerprint())
        .with_product(product.map(str::to_owned))
        .with_max_clock_drift(max_clock_drift)
        .with_freshness(Freshness::Enforce)
        .with_machine(machine_fingerprint_hash(fingerprint));
    let doc = tessera_protocol::bundle::verify_any(&text, keys, &expect, now)
        .map_err(Error::Verification)?;
    if doc.claims().mfp.is_some() {
        let ours = match state {
            Some(state) => state.offline_requests()?,
            None => Vec::new(),
        };
        let answers_ours = (doc.claims().nonce.as_ref()).is_some_and(|n| ours.contains(n));
        if !answers_ours {
            return Err(Error::Verification(ProtocolError::NonceMismatch));
        }
    }
    Ok(doc)
}

/// The offline file given at start (`Builder::offline_file`), taken into
/// the held state before anything runs (`fingerprint`: the configured one,
/// else derived as always): refused as [`verify_offline`] says; an older
/// one than the held document adds nothing.
pub(crate) fn apply_offline_file(
    path: &Path,
    file: Option<&StateFile>,
    held: &mut Held,
    now: Timestamp,
    keys: (&TrustedKeys, Duration, Option<&str>),
    fingerprint: Option<&str>,
) -> Result<(), Error> {
    let token = held.token.clone().ok_or_else(|| {
        Error::Config("an offline file needs the license token it was exported for".into())
    })?;
    let fingerprint =
        crate::machine::machine_fingerprint(fingerprint, &held.instance_id.to_string(), &token);
    let bytes =
        std::fs::read(path).map_err(|e| Error::storage("cannot read offline file", path, &e))?;
    let doc = verify_offline(&bytes, keys, &token, &fingerprint, file, now)?;
    if let Some(current) = &held.document {
        let (c, n) = (current.claims(), doc.claims());
        match check_document_rollback(current, &doc) {
            RollbackDecision::Accept => {}
            RollbackDecision::Same => return Ok(()),
            RollbackDecision::Reject => {
                // The held document is newer: keep it, the file adds nothing.
                tracing::info!(
                    held = c.rev,
                    file = n.rev,
                    "offline file is older than the held document"
                );
                return Ok(());
            }
        }
    }
    let mut next = held.disk_state();
    next.document = Some(doc.as_str().to_owned());
    let hwm = held
        .hwm
        .map_or(doc.claims().iat, |h| h.max(doc.claims().iat))
        .max(now);
    next.high_water_mark = Some(hwm);
    if let Some(file) = file {
        file.store(&next)?;
    }
    held.document = Some(doc);
    held.hwm = Some(hwm);
    held.persisted_hwm = Some(hwm);
    held.contact.last_verified_at = Some(now);
    Ok(())
}

impl Client {
    /// Write an offline activation request for this machine: the text of
    /// `request.txt`, whose last line is the `TSRQ1-…` code (short enough to
    /// read over the phone). Its nonce is kept in the state directory, so
    /// the response may be imported days later, after restarts. No network.
    ///
    /// # Errors
    /// [`Error::Config`] without a state directory, [`Error::NoToken`]
    /// without a token, [`Error::Storage`] when the nonce cannot be kept.
    pub fn offline_request(&self) -> Result<String, Error> {
        let inner = &self.inner;
        let state = inner.state_file.as_ref().ok_or_else(|| {
            Error::Config("an offline request needs a state directory to keep its nonce".into())
        })?;
        let (token, mark) = {
            let held = inner.lock();
            (held.token.clone(), held.hwm)
        };
        let token = token.ok_or(Error::NoToken)?;
        let now = inner.now();
        let bytes: [u8; NONCE_BYTES] = rand::random();
        let request = OfflineRequest {
            tfp: token.fingerprint(),
            mfp: machine_fingerprint_hash(&inner.fingerprint(&token)),
            nonce: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            mark: mark.map_or(now, |m| m.max(now)),
            app_version: inner.settings.app_version.clone(),
        };
        let code = request.encode().map_err(Error::Verification)?;
        state.add_offline_request(&request.nonce)?;
        Ok(format!(
            "# Tessera offline activation request\n\
             # license token {tfp}, machine {mfp}, asked {at}\n\
             # Send this file to your vendor (or read them the code below); import the\n\
             # response with `tessera offline import` or the agent's page.\n\
             {code}\n",
            tfp = request.tfp,
            mfp = request.mfp,
            at = tessera_protocol::time::format(&request.mark),
        ))
    }

    /// Import an offline document: the response to this machine's offline
    /// request (or a renewal of it), or a license export. It is verified
    /// like any answer — signature, token, freshness, this machine's
    /// fingerprint for a bound document (`fingerprint_mismatch` on another
    /// machine) and one of this installation's request nonces
    /// (`nonce_mismatch` for another request's response) — then taken by
    /// the rollback rule (an older one: [`Error::Rollback`]). No network.
    ///
    /// # Errors
    /// [`Error::NoToken`], [`Error::Verification`], [`Error::Rollback`],
    /// [`Error::Storage`].
    pub async fn import_offline(&self, bytes: &[u8]) -> Result<Arc<Verdict>, Error> {
        let inner = &self.inner;
        let token = inner.lock().token.clone().ok_or(Error::NoToken)?;
        let keys = (
            &inner.keys,
            inner.settings.max_clock_drift,
            inner.settings.product.as_deref(),
        );
        let fingerprint = inner.fingerprint(&token);
        let state = inner.state_file.as_ref();
        let doc = verify_offline(bytes, keys, &token, &fingerprint, state, inner.now())
            .inspect_err(|e| inner.record_failure(e))?;
        inner.accept(doc, None, Evidence::Poll).await
    }
}
