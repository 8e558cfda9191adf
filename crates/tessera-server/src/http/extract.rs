//! Extractors whose rejections are JSON errors like every other error.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, MatchedPath};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::ApiError;
use crate::access::{Principal, action_of};
use crate::auth::{AdminAuth, KeyCheck};
use crate::error::Error;
use crate::store::Store;

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

/// An authenticated administrator: `Authorization: Bearer tsa_…`, whose
/// key's role allows the route's action ([`crate::access::action_of`]) and
/// whose products include the license the route names. Every admin
/// handler takes one, so none can skip the check.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The key's name; the actor in audit events.
    pub name: String,
    /// What the key may do.
    pub principal: Principal,
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

/// What an expired key is told.
const EXPIRED_KEY: &str = "an admin key that has not expired (this one has: ask for a new one)";

impl<S> FromRequestParts<S> for Admin
where
    Arc<AdminAuth>: FromRef<S>,
    Arc<Store>: FromRef<S>,
    AuthFailures: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Arc::<AdminAuth>::from_ref(state);
        let check = match bearer(parts) {
            Some(key) => auth.authenticate(key).await?,
            None => KeyCheck::Unknown,
        };
        let principal = match check {
            KeyCheck::Valid(p) => p,
            KeyCheck::Expired => return Err(ApiError(Error::Unauthorized(EXPIRED_KEY))),
            KeyCheck::Unknown => {
                if let Some(failures) = AuthFailures::from_ref(state).0 {
                    let key = super::ratelimit::client_key_of(&parts.extensions);
                    if let Err(retry_after_secs) = failures.take(key) {
                        return Err(ApiError(Error::RateLimited { retry_after_secs }));
                    }
                }
                return Err(ApiError(Error::Unauthorized(
                    crate::error::ADMIN_CREDENTIAL,
                )));
            }
        };
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        principal.may(action_of(parts.method.as_str(), route))?;
        check_products(
            &principal,
            route,
            parts.uri.path(),
            &Arc::<Store>::from_ref(state),
        )
        .await?;
        Ok(Admin {
            name: principal.name.clone(),
            principal,
        })
    }
}

/// A key limited to products: a route naming a license must name one of
/// its products; listings filter by them (their handlers ask the
/// principal); every other route spans all products and is refused.
/// The console's routes are the same without `/v1/admin`.
pub(crate) async fn check_products(
    principal: &Principal,
    route: &str,
    path: &str,
    store: &Store,
) -> crate::Result<()> {
    if principal.products.is_none() {
        return Ok(());
    }
    let route = route.strip_prefix("/v1/admin").unwrap_or(route);
    let path = path.strip_prefix("/v1/admin").unwrap_or(path);
    if route.starts_with("/licenses/{id}") {
        let id = path.split('/').nth(2).unwrap_or_default();
        // An id that does not parse or names no license is the handler's
        // to answer (400, 404): nothing of another product is revealed.
        if let Ok(id) = tessera_protocol::LicenseId::parse(id)
            && let Some(license) = store.license(&id).await?
        {
            principal.may_use_product(&license.product)?;
        }
        return Ok(());
    }
    match route {
        // Listings (filtered by their handlers), issuing (checked against
        // the new license's product), the console's pages.
        "/licenses" | "/events" | "/policies" | "/products" | "/" | "/licenses/new" | "/logout" => {
            Ok(())
        }
        _ => principal.must_be_unlimited(),
    }
}
