//! The crate's one error type. [`crate::http::ApiError`] maps it to HTTP.

use std::path::PathBuf;

/// Everything the authority can fail with, from start-up to a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input (JSON, ids, durations): 400.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// A token, key or id that does not parse: 400 with the protocol's code.
    #[error(transparent)]
    Protocol(#[from] tessera_protocol::Error),
    /// Well-formed but not acceptable (a date in the past, both `to` and `by`): 422.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Missing or wrong credential: 401. Names what was expected.
    #[error("{0} is required")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed (a revoked license's stream): 403.
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// No such thing: 404.
    #[error("{what} {id} not found")]
    NotFound {
        /// "license", "policy", …
        what: &'static str,
        /// What was asked for.
        id: String,
    },
    /// The change does not fit the current state (revoke twice, duplicate name): 409.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Request body over the limit: 413.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// Body is not declared as JSON: 415.
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// No such method on this route: 405.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// Temporarily unable (overload, store down): 503.
    #[error("{message}")]
    Unavailable {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Too many requests from one address: 429.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The store failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// Which file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Configuration or start-up problem, explained.
    #[error("{0}")]
    Config(String),
    /// A stored row that breaks an invariant (never expected).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// What admin routes expect.
pub(crate) const ADMIN_CREDENTIAL: &str = "a valid admin key (Authorization: Bearer tsa_…)";
/// What the change stream expects.
pub(crate) const STREAM_CREDENTIAL: &str = "a known license token (Authorization: Bearer tsr_…)";
/// What body-authenticated public routes expect.
pub(crate) const TOKEN_CREDENTIAL: &str = "a known license token";

impl Error {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Error {
        Error::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Error {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a database error means the connection or transaction was lost
/// rather than that the request was wrong: the transaction did not commit,
/// so repeating the request is safe (503 with `Retry-After`, not 500).
#[must_use]
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-03: the server is shutting down
            // or the backend was terminated; 40001/40P01: serialization
            // failure or deadlock; 53300: too many connections.
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300"
                )
        }),
        _ => false,
    }
}
