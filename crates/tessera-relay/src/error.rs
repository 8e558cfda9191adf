//! The relay's one error type, and how each kind answers over HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tessera_protocol::wire::{ErrorBody, ErrorDetail};

/// Everything the relay can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input: 400.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// A credential it does not know: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Refused: 403.
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// No such route: 404.
    #[error("{0}")]
    NotFound(String),
    /// A change the state does not allow: 409.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Not now (no bundle yet, its clock set back): 503.
    #[error("{message}")]
    Unavailable {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// A token, key, bundle or document that does not verify.
    #[error(transparent)]
    Protocol(#[from] tessera_protocol::Error),
    /// The state database.
    #[error("relay database: {0}")]
    Database(#[from] sqlx::Error),
    /// Its migrations.
    #[error("relay database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Files (key, bundle).
    #[error("{what}: {source}")]
    Io {
        /// Which file and what was done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The upstream (authority or relay above).
    #[error("upstream: {0}")]
    Upstream(String),
    /// Configuration.
    #[error("{0}")]
    Config(String),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Protocol(_) => (StatusCode::BAD_REQUEST, "malformed"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Database(_) | Self::Migrate(_) | Self::Io { .. } | Self::Config(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, "relay request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}
