//! Reading an untrusted document: [`verify`] checks the signature, the key,
//! the ranges, the clock and what the caller expects, and only then hands
//! out a [`VerifiedDocument`].

use chrono::Duration;
use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};

use super::{DEFAULT_PRODUCT, Footer, MAX_DOCUMENT_LIFETIME, MAX_REVISION, StatusClaims};
use crate::keys::{KeyId, TrustedKeys};
use crate::token::TokenFingerprint;
use crate::{Error, Timestamp};

/// Bounds enforced while reading untrusted documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes. Default 16 KiB.
    pub max_document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 16 * 1024,
        }
    }
}

/// Whether [`verify`] checks `exp` and `iat` against the clock.
///
/// Safe by default: freshness is checked. Only re-reading state that was
/// already verified before it was stored may skip it, so that an old
/// document on disk yields a "stale" verdict instead of vanishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// Reject documents past `exp` or issued in the future (default).
    #[default]
    Enforce,
    /// Signature, token and shape only; for state this holder stored itself.
    SkipForStoredState,
}

/// What the verifier expects of a document, besides a good signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    token: TokenFingerprint,
    nonce: Option<String>,
    machine: Option<String>,
    product: Option<String>,
    max_clock_drift: Duration,
    pub(crate) freshness: Freshness,
    pub(crate) limits: Limits,
}

impl Expectations {
    /// Default max clock drift on `iat`: 5 minutes.
    pub const DEFAULT_MAX_CLOCK_DRIFT: Duration = Duration::minutes(5);

    /// Expect a document for this token fingerprint, any nonce, 5 min drift.
    #[must_use]
    pub fn for_token(token: TokenFingerprint) -> Self {
        Self {
            token,
            nonce: None,
            machine: None,
            product: None,
            max_clock_drift: Self::DEFAULT_MAX_CLOCK_DRIFT,
            freshness: Freshness::Enforce,
            limits: Limits::default(),
        }
    }

    /// Require the document to echo this nonce.
    #[must_use]
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Refuse a document bound to another machine: one whose `mfp` is set
    /// and is not this machine's fingerprint hash (a document without
    /// `mfp`, for a license that does not count machines, is accepted).
    #[must_use]
    pub fn with_machine(mut self, mfp: impl Into<String>) -> Self {
        self.machine = Some(mfp.into());
        self
    }

    /// Refuse a license of another product (§28): a document answering for
    /// a license whose `product` is not this one (absent counts as
    /// `default`). `None` accepts every product.
    #[must_use]
    pub fn with_product(mut self, product: Option<String>) -> Self {
        self.product = product;
        self
    }

    /// Allowed drift of `iat` ahead of local time.
    #[must_use]
    pub fn with_max_clock_drift(mut self, drift: Duration) -> Self {
        self.max_clock_drift = drift;
        self
    }

    /// Freshness checking (see [`Freshness`]).
    #[must_use]
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Reading limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A status document whose signature, binding and freshness were checked.
///
/// Only [`verify`] makes one; the fields are private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDocument {
    raw: String,
    kid: KeyId,
    claims: StatusClaims,
    retired_key_at: Option<Timestamp>,
}

impl VerifiedDocument {
    /// The verified claims.
    #[must_use]
    pub fn claims(&self) -> &StatusClaims {
        &self.claims
    }

    /// The document text exactly as verified (to store or forward).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The key that signed it.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// When the key that signed it was retired, if it is pinned as retired.
    /// The rollback rule lets any document signed after that time replace
    /// this one (see [`check_document_rollback`](crate::rollback::check_document_rollback)).
    #[must_use]
    pub fn retired_key_at(&self) -> Option<Timestamp> {
        self.retired_key_at
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "status document",
        reason: reason.into(),
    }
}

/// Verify a status document, in the order of docs/PROTOCOL.md, "4. Verification": size, form, pinned
/// key (an unknown `kid` is refused; the key never comes from the message),
/// signature, token binding, nonce, `exp`, `iat` drift.
///
/// # Errors
/// The first check that fails, as its own [`Error`] variant.
pub fn verify(
    bytes: &[u8],
    keys: &TrustedKeys,
    expect: &Expectations,
    now: Timestamp,
) -> Result<VerifiedDocument, Error> {
    let max = expect.limits.max_document_bytes;
    if bytes.len() > max {
        return Err(Error::DocumentTooLarge {
            size: bytes.len(),
            max,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    if !text.starts_with(PublicToken::HEADER) {
        return Err(malformed("not a v4.public token"));
    }
    let untrusted = UntrustedToken::<Public, V4>::try_from(text)
        .map_err(|_| malformed("bad PASETO encoding"))?;
    // Requiring the canonical base64 text makes a document's bytes unique, so
    // no bit flip of a valid document can verify. pasetors' decoder is strict
    // about trailing bits today; this keeps the property if that ever changes.
    if !is_canonical(text, &untrusted) {
        return Err(malformed("non-canonical encoding"));
    }
    let footer = untrusted.untrusted_footer();
    if footer.is_empty() {
        return Err(Error::MissingKeyId);
    }
    let footer: Footer = serde_json::from_slice(footer).map_err(|_| Error::MissingKeyId)?;
    let Some(key) = keys.get_str(&footer.kid) else {
        return Err(Error::UnknownKeyId {
            kid: footer.kid.chars().take(32).collect(),
        });
    };
    PublicToken::verify(key.inner(), &untrusted, None, None).map_err(|_| Error::BadSignature)?;
    let claims: StatusClaims = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| malformed(format!("claims: {e}")))?;
    check_ranges(&claims)?;
    if claims.exp < claims.iat {
        return Err(malformed("exp is before iat"));
    }
    let retired_key_at = keys.retired_at(key.kid());
    if let Some(retired_at) = retired_key_at {
        // The signer chooses `iat`, so `iat <= retired_at` alone proves
        // nothing against a leaked retired key; a finite `exp` bound does.
        let latest_exp = retired_at
            .checked_add_signed(MAX_DOCUMENT_LIFETIME)
            .unwrap_or(retired_at);
        if claims.iat > retired_at || claims.exp > latest_exp {
            return Err(Error::KeyRetired {
                kid: key.kid().to_string(),
                retired_at,
                iat: claims.iat,
            });
        }
    }
    if claims.tfp != expect.token {
        return Err(Error::TokenMismatch);
    }
    if let Some(nonce) = &expect.nonce
        && claims.nonce.as_deref() != Some(nonce.as_str())
    {
        return Err(Error::NonceMismatch);
    }
    if let (Some(own), Some(mfp)) = (&expect.machine, &claims.mfp)
        && own != mfp
    {
        return Err(Error::FingerprintMismatch);
    }
    if let Some(expected) = &expect.product
        && claims.lic.is_some()
    {
        let found = claims.product.as_deref().unwrap_or(DEFAULT_PRODUCT);
        if found != expected {
            return Err(Error::WrongProduct {
                expected: expected.clone(),
                found: found.chars().take(64).collect(),
            });
        }
    }
    if expect.freshness == Freshness::Enforce {
        if now > claims.exp {
            return Err(Error::DocumentExpired {
                exp: claims.exp,
                now,
            });
        }
        if claims.iat > now + expect.max_clock_drift {
            return Err(Error::IssuedInFuture {
                iat: claims.iat,
                now,
                max_drift_secs: expect.max_clock_drift.num_seconds(),
            });
        }
    }
    Ok(VerifiedDocument {
        raw: text.to_owned(),
        kid: key.kid().clone(),
        claims,
        retired_key_at,
    })
}

/// Revision and times within what every client can hold and compute with:
/// a revision above [`MAX_REVISION`] or a time outside 1970 … 9999 is
/// refused before anything uses it, so no later arithmetic can overflow.
fn check_ranges(claims: &StatusClaims) -> Result<(), Error> {
    if claims.rev > MAX_REVISION {
        return Err(Error::OutOfRange {
            field: "rev",
            reason: format!("{} is above 2^53", claims.rev),
        });
    }
    let times = [
        ("iat", Some(claims.iat)),
        ("exp", Some(claims.exp)),
        ("refresh_after", Some(claims.refresh_after)),
        ("expires_at", claims.expires_at),
        ("valid_from", claims.valid_from),
    ];
    for (field, t) in times {
        if let Some(t) = t
            && !crate::time::is_supported(&t)
        {
            return Err(Error::OutOfRange {
                field,
                reason: "outside 1970-01-01 … 9999-12-31".into(),
            });
        }
    }
    Ok(())
}

pub(crate) fn is_canonical(text: &str, token: &UntrustedToken<Public, V4>) -> bool {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let mut expected = String::with_capacity(text.len());
    expected.push_str(PublicToken::HEADER);
    expected.push_str(&Base64UrlUnpadded::encode_string(token.untrusted_message()));
    let footer = token.untrusted_footer();
    if !footer.is_empty() {
        expected.push('.');
        expected.push_str(&Base64UrlUnpadded::encode_string(footer));
    }
    expected == text
}
