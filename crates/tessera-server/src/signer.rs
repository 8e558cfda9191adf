//! Signing status documents, once per revision where possible.
//!
//! Signing costs ≈27 µs. A document without a nonce that answers with the
//! license as it stands binds no instance (no `iid`, as a pushed document):
//! one signature per (license, revision) serves every installation that
//! polls it, and every watcher, while it is younger than
//! `Limits::document_reuse` and the status at `now` is unchanged
//! (docs/PROTOCOL.md §2, "What a shared document does not bind"). A refusal
//! past the instance limit names the instance it refuses, so it is reused
//! only for that (license, revision, instance); an unknown token's
//! `not_found` for the same (token fingerprint, instance). The cache is
//! keyed by revision, so a change can never be answered with an old
//! document. Requests with a nonce (forced round trips) are always signed
//! fresh, bound to their instance. The cached entry holds the serialized
//! answer too, so a reused answer costs no JSON encoding.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderValue;
use chrono::Duration;
use tessera_protocol::wire::ValidateResponse;
use tessera_protocol::{LicenseId, SigningKey, Status, StatusClaims, Timestamp, TokenFingerprint};

use crate::error::{Error, Result};
use crate::model::License;
use crate::status::{self, Echo};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    /// License, revision, instance, answer.
    License(LicenseId, u64, Option<String>, Answer),
    Unknown(TokenFingerprint, Option<String>),
}

/// What the document for one machine answers.
#[derive(Debug, Clone)]
pub struct MachineAnswer {
    /// The machine's fingerprint hash.
    pub mfp: String,
    /// Where it stands.
    pub claim: tessera_protocol::MachineClaim,
    /// `None`: it holds a place; else the refusal status.
    pub refused: Option<Status>,
    /// Metering's word on seats.
    pub seats_exceeded: bool,
    /// How long the document lives, for an offline activation (§25);
    /// `None`: as long as any answer.
    pub ttl: Option<chrono::Duration>,
}

/// What the document for a known license answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// The license as it stands, with what metering says of its seats.
    License {
        /// More users reported than the license allows.
        seats_exceeded: bool,
    },
    /// A refusal for an installation past the license's instance limit.
    InstanceLimit,
}

/// A signed document with its claims and the serialized validation answer.
#[derive(Debug)]
pub struct SignedDocument {
    /// The `v4.public` document.
    pub document: String,
    /// Its claims.
    pub claims: StatusClaims,
    /// `{"document": …, "verdict": …}`, ready to send.
    pub body: Bytes,
    /// Its `ETag`, `"<rev>-<iat>"`, made once for every answer that reuses it.
    pub etag: HeaderValue,
}

/// The `ETag` of a document at `revision` issued at `issued_at`: what a
/// client sends back in `If-None-Match` (`licenses::HeldTag` parses it).
#[must_use]
pub fn etag(revision: u64, issued_at: Timestamp) -> HeaderValue {
    let text = format!("\"{revision}-{}\"", issued_at.timestamp());
    // Digits, a dash and quotes: always a valid header value.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("\"0-0\""))
}

/// Signs documents with the authority's active key.
pub struct DocumentSigner {
    key: SigningKey,
    /// Keys that signed before a rotation, with their retirement (for `/v1/keys`).
    retired: Vec<(tessera_protocol::PublicKey, Timestamp)>,
    reuse_for: Duration,
    cache: moka::sync::Cache<CacheKey, Arc<SignedDocument>>,
}

impl std::fmt::Debug for DocumentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentSigner")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl DocumentSigner {
    /// A signer with this key, reusing nonce-less documents for `reuse_for`
    /// (zero disables reuse), holding at most `capacity` of them.
    #[must_use]
    pub fn new(key: SigningKey, reuse_for: Duration, capacity: u64) -> Self {
        Self {
            key,
            retired: Vec::new(),
            reuse_for,
            cache: moka::sync::Cache::new(capacity),
        }
    }

    /// With the keys retired by earlier rotations (the active one is left out).
    #[must_use]
    pub fn with_retired(mut self, retired: Vec<(tessera_protocol::PublicKey, Timestamp)>) -> Self {
        let active = self.key.kid().clone();
        self.retired = retired
            .into_iter()
            .filter(|(k, _)| *k.kid() != active)
            .collect();
        self
    }

    /// Retired keys and when they were retired.
    #[must_use]
    pub fn retired(&self) -> &[(tessera_protocol::PublicKey, Timestamp)] {
        &self.retired
    }

    /// The signing key's public half.
    #[must_use]
    pub fn public_key(&self) -> &tessera_protocol::PublicKey {
        self.key.public_key()
    }

    /// Sign claims.
    ///
    /// # Errors
    /// [`Error::Protocol`] if encoding fails.
    pub fn sign(&self, claims: &StatusClaims) -> Result<String> {
        Ok(tessera_protocol::sign(claims, &self.key)?)
    }

    /// A bare Ed25519 signature of `message` by the active key (the
    /// Keygen-compatible API's response signatures).
    #[must_use]
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign_raw(message)
    }

    /// Sign a site's bundle (§26).
    ///
    /// # Errors
    /// [`Error::Protocol`] if encoding fails or it is over 8 KiB.
    pub fn sign_bundle(&self, bundle: &tessera_protocol::bundle::SiteBundle) -> Result<String> {
        Ok(tessera_protocol::bundle::sign_bundle(bundle, &self.key)?)
    }

    fn signed(&self, claims: StatusClaims) -> Result<Arc<SignedDocument>> {
        let document = self.sign(&claims)?;
        let answer = ValidateResponse {
            document,
            verdict: claims,
        };
        let body = serde_json::to_vec(&answer)
            .map_err(|e| Error::Corrupt(format!("encoding an answer: {e}")))?;
        Ok(Arc::new(SignedDocument {
            etag: etag(answer.verdict.rev, answer.verdict.iat),
            document: answer.document,
            claims: answer.verdict,
            body: Bytes::from(body),
        }))
    }

    fn cached(
        &self,
        key: Option<CacheKey>,
        status: Status,
        now: Timestamp,
        make: impl FnOnce() -> StatusClaims,
    ) -> Result<Arc<SignedDocument>> {
        if let Some(key) = &key
            && let Some(hit) = self.cache.get(key)
            && now - hit.claims.iat < self.reuse_for
            && hit.claims.status == status
        {
            return Ok(hit);
        }
        let signed = self.signed(make())?;
        if let Some(key) = key {
            self.cache.insert(key, signed.clone());
        }
        Ok(signed)
    }

    fn reusable(&self, echo: &Echo) -> bool {
        echo.nonce.is_none() && self.reuse_for > Duration::zero()
    }

    /// The document for a known license: the license's claims, or, for an
    /// installation past its instance limit, the refusal: `instance_limit`
    /// status, no features, bound to the instance (and nonce) that asked.
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn for_license(
        &self,
        license: &License,
        tfp: TokenFingerprint,
        echo: Echo,
        now: Timestamp,
        answer: Answer,
    ) -> Result<Arc<SignedDocument>> {
        self.license_document(license, tfp, echo, now, answer, true)
    }

    /// As [`DocumentSigner::for_license`]; with `reuse` false it is signed
    /// anew at `now` whatever was signed before: a document that must be
    /// newer than the last one at the same revision (the seat limit
    /// crossed).
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn license_document(
        &self,
        license: &License,
        tfp: TokenFingerprint,
        echo: Echo,
        now: Timestamp,
        answer: Answer,
        reuse: bool,
    ) -> Result<Arc<SignedDocument>> {
        // Without a nonce the license's own answer is the same for every
        // instance: it names none, so it can be shared (module docs).
        let echo = match answer {
            Answer::License { .. } if echo.nonce.is_none() => Echo::default(),
            _ => echo,
        };
        let key = (reuse && self.reusable(&echo)).then(|| {
            let iid = echo.instance_id.clone();
            CacheKey::License(license.id.clone(), license.revision, iid, answer)
        });
        let status = match answer {
            Answer::License { .. } => license.status_at(now),
            Answer::InstanceLimit => Status::InstanceLimit,
        };
        self.cached(key, status, now, || {
            let mut claims = status::license_claims(license, tfp, echo, now, None);
            match answer {
                Answer::License { seats_exceeded } => claims.seats_exceeded = seats_exceeded,
                Answer::InstanceLimit => {
                    status::refuse(&mut claims, Status::InstanceLimit, license);
                    // Ask again within the hour: instances going quiet free places.
                    claims.refresh_after = claims.refresh_after.min(now + Duration::hours(1));
                }
            }
            claims
        })
    }

    /// The document for one machine of a license that counts machines
    /// (docs/PROTOCOL.md §19): bound to it (`mfp`), saying where it stands
    /// (`machine`), never reused. A refusal (`too_many_machines`,
    /// `not_activated`, `lease_expired`) grants nothing and asks again
    /// soon; a floating lease bounds the document's `exp`, so a machine
    /// that stops heartbeating loses the license offline too.
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn for_machine(
        &self,
        license: &License,
        tfp: TokenFingerprint,
        echo: Echo,
        now: Timestamp,
        machine: MachineAnswer,
    ) -> Result<Arc<SignedDocument>> {
        // An offline activation's answer lives its `ttl` (§25).
        let mut claims = status::license_claims(license, tfp, echo, now, machine.ttl);
        claims.seats_exceeded = machine.seats_exceeded;
        claims.mfp = Some(machine.mfp);
        if let Some(refusal) = machine.refused {
            status::refuse(&mut claims, refusal, license);
            // Places free up as machines leave: ask again within minutes.
            claims.refresh_after = claims.refresh_after.min(now + Duration::minutes(5));
        }
        if let Some(end) = machine.claim.lease_expires_at {
            claims.exp = claims.exp.min(end).max(now);
            if let Some(ttl) = machine.claim.lease_ttl {
                // Renew at a third of the lease: two heartbeats may be lost.
                let third = Duration::seconds(i64::try_from(ttl / 3).unwrap_or(i64::MAX).max(1));
                claims.refresh_after = claims.refresh_after.min(now + third);
            }
        }
        claims.refresh_after = claims.refresh_after.min(claims.exp);
        claims.machine = Some(machine.claim);
        self.signed(claims)
    }

    /// The `not_found` document for a well-formed token nobody issued.
    ///
    /// # Errors
    /// As [`DocumentSigner::sign`].
    pub fn for_unknown(
        &self,
        tfp: TokenFingerprint,
        echo: Echo,
        now: Timestamp,
    ) -> Result<Arc<SignedDocument>> {
        let key = self
            .reusable(&echo)
            .then(|| CacheKey::Unknown(tfp.clone(), echo.instance_id.clone()));
        self.cached(key, Status::NotFound, now, || {
            status::not_found_claims(tfp, echo, now)
        })
    }
}
