//! Trials from the SDK (docs/PROTOCOL.md §23): a product with no token asks
//! the authority for this machine's trial of a trial policy, and uses the
//! token it gets like any other. The machine is named by a fingerprint
//! that does not depend on a token (there is none yet): the configured
//! one, or a hash of the host's machine id and the vendor's pinned key, so
//! a reinstall asks for — and gets back — the same trial.

use std::sync::Arc;

use tessera_protocol::LicenseToken;
use tessera_protocol::wire::machine_fingerprint_hash;

use crate::Verdict;
use crate::engine::Inner;
use crate::error::Error;

impl Inner {
    /// This machine's fingerprint for trials.
    pub(crate) fn trial_fingerprint(&self) -> String {
        if let Some(fp) = &self.settings.fingerprint {
            return fp.clone();
        }
        let base = crate::machine::host_machine_id()
            .unwrap_or_else(|| self.lock().instance_id.to_string());
        // The first pinned key by id: the same vendor, the same machine,
        // the same fingerprint, across reinstalls.
        let vendor = self
            .keys
            .iter()
            .map(|k| k.kid().to_string())
            .min()
            .unwrap_or_default();
        machine_fingerprint_hash(&format!("tessera-trial/1|{base}|{vendor}"))
    }

    /// Ask for this machine's trial of `policy` and use its token.
    pub(crate) async fn start_trial(
        self: &Arc<Self>,
        policy: &str,
        email: Option<&str>,
    ) -> Result<Arc<Verdict>, Error> {
        let transport = self.transport.as_ref().ok_or(Error::NoServer)?;
        let trial = transport
            .trial(policy, &self.trial_fingerprint(), email)
            .await?;
        let token = LicenseToken::parse(&trial.token).map_err(Error::InvalidToken)?;
        tracing::info!(license = %trial.license, new = trial.created, "trial in use");
        self.single_flight(token, true, true).await
    }

    /// After `token` replaced a trial's token: tell the authority, which
    /// ends the trial. Best effort: a failure is logged (the trial ends by
    /// itself anyway).
    pub(crate) async fn convert_trial(&self, trial: &LicenseToken, token: &LicenseToken) {
        let Some(transport) = self.transport.as_ref() else {
            return;
        };
        if let Err(e) = transport
            .convert_trial(trial.expose_secret(), token.expose_secret())
            .await
        {
            tracing::debug!(error = %e, "the trial could not be marked converted");
        }
    }
}

/// Start the trial of `policy` when the client has no token, retrying with
/// backoff until it has one (from the trial, or activated meanwhile).
pub(crate) async fn trial_loop(inner: Arc<Inner>, policy: String) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        if inner.lock().token.is_some() {
            return;
        }
        match inner.start_trial(&policy, None).await {
            Ok(_) => return,
            Err(e) => tracing::warn!(error = %e, "could not start a trial"),
        }
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(300));
    }
}
