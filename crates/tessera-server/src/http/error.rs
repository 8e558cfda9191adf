//! Errors as HTTP answers: `{"error": {"code", "message"}}`, always.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tessera_protocol::wire::{ErrorBody, ErrorDetail};

use crate::error::Error;

/// An [`Error`] on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<tessera_protocol::Error> for ApiError {
    fn from(e: tessera_protocol::Error) -> Self {
        ApiError(Error::Protocol(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
            _ => Error::bad_request("invalid_json", r.body_text()),
        })
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(Error::bad_request("invalid_query", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(Error::bad_request("invalid_path", r.body_text()))
    }
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        }),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, code): (StatusCode, String) = match &e {
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, (*code).into()),
            Error::Protocol(p) => (StatusCode::BAD_REQUEST, p.code().into()),
            Error::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, (*code).into()),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            Error::Forbidden { code, .. } => (StatusCode::FORBIDDEN, (*code).into()),
            Error::NotFound { what, .. } => (StatusCode::NOT_FOUND, format!("{what}_not_found")),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, (*code).into()),
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()),
            Error::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type".into(),
            ),
            Error::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
            }
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
            Error::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, (*code).into()),
            Error::Database(db) if crate::error::is_transient(db) => {
                // Nothing was committed (the transaction died with its
                // connection): the request is safe to repeat.
                tracing::warn!(error = %e, "database connection lost during a request");
                let mut response = body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database connection was lost; nothing was changed; retry".into(),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
                return response;
            }
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Io { .. }
            | Error::Config(_)
            | Error::Corrupt(_) => {
                // Logged once, here; the client learns nothing of internals.
                tracing::error!(error = %e, "internal error");
                return body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the authority logged the details".into(),
                );
            }
        };
        let mut response = body(status, &code, e.to_string());
        match e {
            Error::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::not_found(
        "route",
        uri.path().chars().take(200).collect::<String>(),
    ))
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}

pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the authority logged the details".into(),
    )
}
