//! Extractors whose rejections are JSON errors like every other error.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::ApiError;
use crate::auth::AdminAuth;
use crate::error::Error;

/// `Json<T>` with JSON errors (400 bad JSON, 413 too large, 415 wrong type).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` with JSON errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// An authenticated administrator: `Authorization: Bearer tsa_…`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The key's name; the actor in audit events.
    pub name: String,
}

/// The bearer credential of a request, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

/// Failed admin authentications allowed per client address and minute;
/// past it, `429` with `Retry-After` (as `/login` has).
#[derive(Debug, Clone)]
pub struct AuthFailures(pub Option<Arc<super::ratelimit::IpRateLimiter>>);

impl<S> FromRequestParts<S> for Admin
where
    Arc<AdminAuth>: FromRef<S>,
    AuthFailures: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Arc::<AdminAuth>::from_ref(state);
        if let Some(name) = bearer(parts).and_then(|key| auth.authenticate(key)) {
            return Ok(Admin { name });
        }
        if let Some(failures) = AuthFailures::from_ref(state).0 {
            let key = super::ratelimit::client_key_of(&parts.extensions);
            if let Err(retry_after_secs) = failures.take(key) {
                return Err(ApiError(Error::RateLimited { retry_after_secs }));
            }
        }
        Err(ApiError(Error::Unauthorized(
            crate::error::ADMIN_CREDENTIAL,
        )))
    }
}
