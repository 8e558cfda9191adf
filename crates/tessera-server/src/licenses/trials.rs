//! Trials (docs/PROTOCOL.md §23): a trial license of a trial policy for one
//! machine, the same one again when that machine asks again (a reinstall
//! does not restart the clock), limited per client address; converting it
//! to a paid license ends it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_protocol::wire::{
    ConvertTrialRequest, IssueLicenseRequest, TrialRequest, TrialResponse, ValidateRequest,
    check_fingerprint, machine_fingerprint_hash,
};

use super::cache::parse_credential;
use super::fields::check_text;
use super::rules::StateAction;
use super::{Changes, Shared, Validation, Validator};
use crate::error::{Error, Result, TOKEN_CREDENTIAL};
use crate::secrets::SecretBox;

/// Who starts trials in the audit log.
const ACTOR: &str = "trial";

/// Trials: start, find again, convert.
pub struct Trials {
    shared: Shared,
    changes: Arc<Changes>,
    validator: Arc<Validator>,
    secrets: Arc<SecretBox>,
    /// Trials started per client address and hour (`None`: no limit).
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for Trials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trials").finish_non_exhaustive()
    }
}

impl Trials {
    /// Trials over the shared parts; at most `per_ip_per_hour` trial
    /// requests an hour from one address (0: no limit).
    #[must_use]
    pub fn new(
        shared: &Shared,
        changes: Arc<Changes>,
        validator: Arc<Validator>,
        secrets: Arc<SecretBox>,
        per_ip_per_hour: u32,
    ) -> Self {
        Self {
            shared: shared.clone(),
            changes,
            validator,
            secrets,
            per_ip: NonZeroU32::new(per_ip_per_hour)
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
        }
    }

    /// `POST /v1/trials`: this machine's trial of `policy`, started now or
    /// found again.
    ///
    /// # Errors
    /// 429 past the per-address limit; 400 for a bad fingerprint or e-mail;
    /// 404 unknown policy; 422 `not_a_trial_policy`.
    pub async fn start(&self, req: TrialRequest, client: IpAddr) -> Result<TrialResponse> {
        if let Some(limiter) = &self.per_ip
            && let Err(not_until) = limiter.check_key(&client)
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(Error::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        check_fingerprint("fingerprint", &req.fingerprint)?;
        let email = req
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if let Some(email) = email {
            check_text("email", email)?;
            if !email.contains('@') {
                return Err(Error::unprocessable(
                    "invalid_field",
                    "email must be an e-mail address",
                ));
            }
        }
        let policy = self
            .shared
            .store
            .policy_by_name(&req.policy)
            .await?
            .ok_or_else(|| Error::not_found("policy", &req.policy))?;
        if !policy.trial {
            return Err(Error::unprocessable(
                "not_a_trial_policy",
                format!(
                    "policy {} is not a trial policy (tessera policy create … --trial --duration 14d)",
                    policy.name
                ),
            ));
        }
        let mfp = machine_fingerprint_hash(&req.fingerprint);
        let (license, token, created) = match self.shared.store.trial(&policy.id, &mfp).await? {
            Some(row) => (row.license_id, self.secrets.open(&row.token_sealed)?, false),
            None => {
                let issue = IssueLicenseRequest {
                    customer: email.map_or_else(|| format!("Trial {}", &mfp[..8]), str::to_owned),
                    customer_email: email.map(str::to_owned),
                    plan: policy.name.clone(),
                    policy: Some(policy.name.clone()),
                    trial: Some(true),
                    ..IssueLicenseRequest::default()
                };
                let (license, token) = self
                    .changes
                    .issue(issue, &crate::access::Principal::admin(ACTOR))
                    .await?;
                let sealed = self.secrets.seal(token.expose_secret())?;
                let now = self.shared.clock.now();
                let stored = self
                    .shared
                    .store
                    .insert_trial(&policy.id, &mfp, &license.id, &sealed, email, now)
                    .await?;
                if stored {
                    tracing::info!(license = %license.id, policy = %policy.name, "trial started");
                    (
                        license.id.to_string(),
                        token.expose_secret().to_owned(),
                        true,
                    )
                } else {
                    // The same machine asked twice at once: the other
                    // request's trial stands; this license is withdrawn.
                    let _ = self
                        .changes
                        .set_state(
                            &license.id,
                            StateAction::Revoke,
                            ACTOR,
                            Some("a duplicate trial".into()),
                        )
                        .await;
                    let row = self
                        .shared
                        .store
                        .trial(&policy.id, &mfp)
                        .await?
                        .ok_or_else(|| Error::Corrupt("a trial vanished".into()))?;
                    (row.license_id, self.secrets.open(&row.token_sealed)?, false)
                }
            }
        };
        let license = self
            .shared
            .license(&tessera_protocol::LicenseId::parse(&license)?)
            .await?;
        let answer = self
            .validator
            .validate(
                ValidateRequest {
                    token: token.clone(),
                    ..ValidateRequest::default()
                },
                None,
            )
            .await?;
        let Validation::Document(signed) = answer else {
            return Err(Error::Corrupt(
                "a validation without a held tag answered 304".into(),
            ));
        };
        Ok(TrialResponse {
            license: license.id.to_string(),
            token,
            expires_at: license
                .expires_at
                .ok_or_else(|| Error::Corrupt("a trial without an end".into()))?,
            created,
            document: signed.document.clone(),
        })
    }

    /// `POST /v1/trials/convert`: the paid license `token` is now used
    /// where the trial `trial_token` was; the trial ends.
    ///
    /// # Errors
    /// 401 for an unknown token; 409 `not_a_trial` when the first is not an
    /// open trial; 422 `not_a_paid_license` when the second is a trial or
    /// not valid now.
    pub async fn convert(&self, req: ConvertTrialRequest) -> Result<()> {
        let trial = self
            .shared
            .cache
            .known(
                &parse_credential(&req.trial_token, TOKEN_CREDENTIAL)?,
                TOKEN_CREDENTIAL,
            )
            .await?;
        let paid = self
            .shared
            .cache
            .known(
                &parse_credential(&req.token, TOKEN_CREDENTIAL)?,
                TOKEN_CREDENTIAL,
            )
            .await?;
        if paid.trial || !paid.status_at(self.shared.clock.now()).is_valid() {
            return Err(Error::unprocessable(
                "not_a_paid_license",
                "the license converted to must be a paid license that is valid now",
            ));
        }
        let open = self.shared.store.open_trials(None, Some(&trial.id)).await?;
        if open.is_empty() {
            return Err(Error::conflict(
                "not_a_trial",
                "the first token is not an open trial (never one, or converted already)",
            ));
        }
        self.changes.end_trial(&trial.id, &paid.id, ACTOR).await
    }
}
