//! Validation: a signed answer for every well-formed token
//! (docs/PROTOCOL.md, "Validation").

use std::sync::Arc;

use tessera_protocol::ids::check_nonce;
use tessera_protocol::wire::ValidateRequest;
use tessera_protocol::{InstanceId, LicenseToken, Timestamp, TokenHash};

use super::Shared;
use super::rules;
use crate::error::Result;
use crate::model::{InstanceSeen, License};
use crate::signer::{Answer, SignedDocument};
use crate::status::Echo;

/// Answers `POST /v1/validate`.
#[derive(Debug)]
pub struct Validator {
    shared: Shared,
    machines: Arc<super::Machines>,
}

/// The document a client holds, as it names it in `If-None-Match`:
/// `"<revision>-<iat as Unix seconds>"` (the `ETag` of the answer that gave it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldTag {
    /// Its revision.
    pub revision: u64,
    /// Its `iat`.
    pub issued_at: Timestamp,
}

impl HeldTag {
    /// Parse an `If-None-Match` value; anything else is ignored (`None`).
    #[must_use]
    pub fn parse(header: &str) -> Option<Self> {
        let inner = header.trim().strip_prefix('"')?.strip_suffix('"')?;
        let (rev, iat) = inner.split_once('-')?;
        Some(Self {
            revision: rev.parse().ok()?,
            issued_at: chrono::DateTime::from_timestamp(iat.parse().ok()?, 0)?,
        })
    }

    /// The header value.
    #[must_use]
    pub fn to_header(self) -> axum::http::HeaderValue {
        crate::signer::etag(self.revision, self.issued_at)
    }
}

/// The answer to a validation.
#[derive(Debug)]
pub enum Validation {
    /// A signed document.
    Document(Arc<SignedDocument>),
    /// The held document is current.
    NotModified(HeldTag),
}

impl Validator {
    /// A validator over the shared parts.
    #[must_use]
    pub fn new(shared: &Shared, machines: Arc<super::Machines>) -> Self {
        Self {
            shared: shared.clone(),
            machines,
        }
    }

    /// The license of `hash`, from the token cache. On a miss it is read
    /// with its fleet's figures (installations active, seats in use), which
    /// the instance limit and metering would each read next: one round
    /// trip to the database instead of three.
    async fn license(&self, hash: &TokenHash) -> Result<Option<Arc<License>>> {
        let shared = &self.shared;
        if let Some(known) = shared.cache.cached(hash) {
            return Ok(known);
        }
        let now = shared.clock.now();
        let gate = shared.installations.gate();
        let active_since = gate.max().map(|_| now - gate.window());
        let read = shared
            .store
            .license_for_validation(hash, active_since, now - shared.seats.window())
            .await?;
        let Some(read) = read else {
            return Ok(shared.cache.learn(hash, None));
        };
        if let Some(active) = read.active_instances {
            gate.prime(&read.license.id, active);
        }
        // Read only for a license with a seat limit: without one, `None`
        // says nothing of its reports.
        if read.license.max_users.is_some() {
            shared.seats.prime(&read.license.id, read.users_in_use);
        }
        Ok(shared.cache.learn(hash, Some(read.license)))
    }

    /// Answer a validation: a signed document for every well-formed token,
    /// known or not — or `NotModified` when the request names the held
    /// document (`If-None-Match`) and [`rules::held_is_current`] says it
    /// still serves. A request with a nonce always gets a new document.
    ///
    /// # Errors
    /// 400 for a malformed token, instance id, nonce or app version.
    pub async fn validate(
        &self,
        req: ValidateRequest,
        held: Option<HeldTag>,
    ) -> Result<Validation> {
        let token = LicenseToken::parse(&req.token)?;
        let instance_id = req
            .instance_id
            .as_deref()
            .map(InstanceId::parse)
            .transpose()?;
        if let Some(nonce) = &req.nonce {
            check_nonce(nonce)?;
        }
        if let Some(v) = &req.app_version {
            rules::check_app_version(v)?;
        }
        let now = self.shared.clock.now();
        let hash = token.hash();
        let echo = Echo {
            instance_id: instance_id.as_ref().map(|i| i.as_str().to_owned()),
            nonce: req.nonce,
        };
        let Some(license) = self.license(&hash).await? else {
            let signed = self
                .shared
                .signer
                .for_unknown(hash.fingerprint(), echo, now)?;
            self.shared
                .metrics
                .validation(signed.claims.status.as_str());
            return Ok(Validation::Document(signed));
        };
        if let Some(iid) = instance_id {
            if !self.shared.installations.admit(&license, &iid).await? {
                let signed = self.shared.signer.for_license(
                    &license,
                    hash.fingerprint(),
                    echo,
                    now,
                    Answer::InstanceLimit,
                )?;
                return Ok(Validation::Document(signed));
            }
            self.shared
                .installations
                .note(InstanceSeen {
                    app_version: req.app_version,
                    users: req.usage.map(|u| u.users),
                    ..InstanceSeen::new(license.id.clone(), iid.as_str().to_owned(), now)
                })
                .await?;
        }
        if license.machines.counts_machines() {
            // Every answer is this machine's own: no 304 (a floating lease
            // is renewed by each validation, as by a heartbeat).
            let fingerprint = req.fingerprint.as_deref();
            let signed = (self.machines)
                .validate(&license, hash.fingerprint(), fingerprint, echo)
                .await?;
            return Ok(Validation::Document(signed));
        }
        if let Some(tag) = held
            && rules::held_is_current(
                &license,
                tag.revision,
                tag.issued_at,
                echo.nonce.is_some(),
                now,
            )
        {
            self.shared.metrics.validation("not_modified");
            return Ok(Validation::NotModified(tag));
        }
        let seats_exceeded = self.shared.seats.exceeded(&license).await;
        let answer = Answer::License { seats_exceeded };
        let signed =
            (self.shared.signer).for_license(&license, hash.fingerprint(), echo, now, answer)?;
        self.shared
            .metrics
            .validation(signed.claims.status.as_str());
        Ok(Validation::Document(signed))
    }
}
