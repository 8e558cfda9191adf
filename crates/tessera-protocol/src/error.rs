//! The crate's one error type.

use crate::Timestamp;

/// Everything that can go wrong in the protocol crate: parsing tokens, keys and
/// ids, and above all verifying status documents.
///
/// Messages never contain a token or key. Each variant has a stable
/// [`code`](Error::code) for logs, JSON errors and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A token's prefix, length or alphabet is wrong.
    #[error("malformed token: {reason}")]
    TokenFormat {
        /// What is wrong, for a person.
        reason: String,
    },
    /// A token's checksum does not match its random part: a typo.
    #[error("the {noun}'s checksum does not match: it was probably mistyped")]
    TokenChecksum {
        /// "license token" or "admin key".
        noun: String,
    },
    /// A key could not be parsed.
    #[error("invalid key: {reason}")]
    Key {
        /// What is wrong.
        reason: String,
    },
    /// An id, duration, date or document part is not in its expected form.
    #[error("invalid {what}: {reason}")]
    Malformed {
        /// Which thing.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A status document is larger than the limit; it was not parsed.
    #[error("status document is {size} bytes, over the {max}-byte limit")]
    DocumentTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A status document's footer names no key id.
    #[error("status document names no key id")]
    MissingKeyId,
    /// A status document names a key that is not pinned.
    #[error("status document is signed with key {kid}, which is not trusted")]
    UnknownKeyId {
        /// The key id it names (cut to 32 characters).
        kid: String,
    },
    /// The signature does not verify with the pinned key.
    #[error("status document signature is invalid")]
    BadSignature,
    /// The document answers for another token.
    #[error("status document answers for another token")]
    TokenMismatch,
    /// The document does not echo the nonce that was sent.
    #[error("status document does not echo the request's nonce")]
    NonceMismatch,
    /// The document is bound to another machine (`mfp`).
    #[error("status document is bound to another machine")]
    FingerprintMismatch,
    /// The document answers for a license of another product (§28).
    #[error("the license is for product \"{found}\", this product is \"{expected}\"")]
    WrongProduct {
        /// The product the client is configured for.
        expected: String,
        /// The document's.
        found: String,
    },
    /// The document's hard freshness bound has passed.
    #[error("status document expired at {exp} (now {now})")]
    DocumentExpired {
        /// Its `exp`.
        exp: Timestamp,
        /// The local time used.
        now: Timestamp,
    },
    /// The document was issued further in the future than the allowed drift.
    #[error(
        "status document issued at {iat}, more than {max_drift_secs} s ahead of local time {now}"
    )]
    IssuedInFuture {
        /// Its `iat`.
        iat: Timestamp,
        /// The local time used.
        now: Timestamp,
        /// The allowed drift.
        max_drift_secs: i64,
    },
    /// Signing a document failed.
    #[error("signing failed: {reason}")]
    Signing {
        /// Why.
        reason: String,
    },
    /// The document was signed by a key after the key's retirement.
    #[error("status document signed at {iat} by key {kid}, retired at {retired_at}")]
    KeyRetired {
        /// The retired key.
        kid: String,
        /// Its retirement.
        retired_at: Timestamp,
        /// The document's signing time.
        iat: Timestamp,
    },
    /// A document's revision or time is outside the supported range.
    #[error("status document's {field} is out of range: {reason}")]
    OutOfRange {
        /// The claim.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A webhook delivery's `Tessera-Signature` does not prove it came
    /// from the authority (missing part, wrong secret, too old).
    #[error("webhook signature rejected: {reason}")]
    WebhookSignature {
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// A stable snake_case code for this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::TokenFormat { .. } => "malformed_token",
            Error::TokenChecksum { .. } => "token_checksum",
            Error::Key { .. } => "invalid_key",
            Error::Malformed { .. } => "malformed",
            Error::DocumentTooLarge { .. } => "document_too_large",
            Error::MissingKeyId => "missing_key_id",
            Error::UnknownKeyId { .. } => "unknown_key_id",
            Error::BadSignature => "bad_signature",
            Error::TokenMismatch => "token_mismatch",
            Error::NonceMismatch => "nonce_mismatch",
            Error::FingerprintMismatch => "fingerprint_mismatch",
            Error::WrongProduct { .. } => "wrong_product",
            Error::DocumentExpired { .. } => "document_expired",
            Error::IssuedInFuture { .. } => "issued_in_future",
            Error::Signing { .. } => "signing_failed",
            Error::WebhookSignature { .. } => "webhook_signature",
            Error::KeyRetired { .. } => "key_retired",
            Error::OutOfRange { .. } => "out_of_range",
        }
    }
}
