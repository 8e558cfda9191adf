//! The crate's one error type.

use std::path::Path;

/// Why a client call failed. The verdict is never changed by an error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token does not parse (a typo): refused locally, nothing was sent.
    #[error(transparent)]
    InvalidToken(tessera_protocol::Error),
    /// No token is held: activate one first.
    #[error("no license token: activate one first")]
    NoToken,
    /// No authority is configured (offline mode).
    #[error("no authority configured (offline mode)")]
    NoServer,
    /// The authority could not be reached.
    #[error("cannot reach the authority: {0}")]
    Network(String),
    /// The authority did not answer in time.
    #[error("the authority did not answer in time")]
    Timeout,
    /// The authority (or a proxy) answered with an error status.
    #[error("the authority answered HTTP {status}: {message}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The error message, or the start of the body.
        message: String,
        /// Seconds to wait, from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The answer is not a validation answer (an HTML page from a proxy…).
    #[error("the answer is not a validation answer: {0}")]
    InvalidAnswer(String),
    /// The document failed verification.
    #[error("the authority's document was rejected: {0}")]
    Verification(tessera_protocol::Error),
    /// The document is older than the one held (replay or rollback).
    #[error("the document (revision {new_rev}) is older than the one held (revision {held_rev})")]
    Rollback {
        /// Held revision.
        held_rev: u64,
        /// Offered revision.
        new_rev: u64,
    },
    /// The state file could not be read or written.
    #[error("state storage: {0}")]
    Storage(String),
    /// `start` was called outside a Tokio runtime.
    #[error("the client needs a Tokio runtime: call start() inside one")]
    NoRuntime,
    /// The builder was given something unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// `consume` named a feature without a quota on the held license.
    #[error("{0:?} is not a metered feature of this license")]
    UnknownQuota(String),
    /// `consume` named a feature the license does not grant now (expired,
    /// suspended, or the feature's own end has passed).
    #[error("{0:?} is not granted now")]
    NotGranted(String),
    /// The quota does not allow this much more in the current period.
    #[error("the quota of {feature:?} is exhausted ({remaining} left)")]
    QuotaExhausted {
        /// The feature.
        feature: String,
        /// What could still be consumed.
        remaining: u64,
    },
    /// An amount above 2^53.
    #[error("amount {0} is over the largest amount, 2^53")]
    InvalidAmount(u64),
}

impl Error {
    pub(crate) fn storage(what: &str, path: &Path, e: &std::io::Error) -> Self {
        Error::Storage(format!("{what} {}: {e}", path.display()))
    }

    /// The `kind` recorded in [`LastError`](crate::LastError).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidToken(_) => "invalid_token",
            Error::NoToken => "no_token",
            Error::NoServer => "no_server",
            Error::Network(_) => "network",
            Error::Timeout => "timeout",
            Error::HttpStatus { .. } => "http_status",
            Error::InvalidAnswer(_) => "invalid_answer",
            Error::Verification(_) => "verification",
            Error::Rollback { .. } => "rollback",
            Error::Storage(_) => "storage",
            Error::NoRuntime => "no_runtime",
            Error::Config(_) => "config",
            Error::UnknownQuota(_) => "unknown_feature",
            Error::NotGranted(_) => "not_granted",
            Error::QuotaExhausted { .. } => "quota_exhausted",
            Error::InvalidAmount(_) => "invalid_amount",
        }
    }

    /// The wait the authority asked for with `Retry-After`, capped at
    /// `cap`: a number from the network never schedules past the caller's
    /// own longest backoff (nor overflows a deadline).
    #[must_use]
    pub(crate) fn retry_after(&self, cap: std::time::Duration) -> Option<std::time::Duration> {
        match self {
            Error::HttpStatus {
                retry_after: Some(secs),
                ..
            } => Some(std::time::Duration::from_secs(*secs).min(cap)),
            _ => None,
        }
    }

    /// Whether this failure means no authoritative answer was obtained
    /// (counts toward `offline_since`).
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Network(_)
                | Error::Timeout
                | Error::HttpStatus { .. }
                | Error::InvalidAnswer(_)
                | Error::Verification(_)
        )
    }
}
