//! Sessions in the console: the cookie, the signed-in extractor, and the
//! extractor every form POST goes through (same-site `Origin` and the
//! session's CSRF token), so no form handler can skip the check.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRef, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::errors::ConsoleError;
use super::forms::HasCsrf;
use crate::access::{Principal, action_of};
use crate::auth::Sessions;
use crate::model::Session;
use crate::store::Store;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "tessera_session";

/// The cookie that starts a session of `max_age` seconds.
pub fn session_cookie(id: &str, max_age: i64) -> Result<HeaderValue, ConsoleError> {
    cookie_header(id, max_age)
}

/// The cookie that ends it.
pub fn cleared_cookie() -> Result<HeaderValue, ConsoleError> {
    cookie_header("", 0)
}

fn cookie_header(value: &str, max_age: i64) -> Result<HeaderValue, ConsoleError> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age={max_age}"
    ))
    .map_err(|_| ConsoleError::from(crate::Error::Config("cookie".into())))
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// A signed-in console request whose key's role allows what the route
/// does ([`crate::access::action_of`]: a confirmation page counts as the
/// action it confirms) and whose products include the license it names.
pub struct Console {
    /// Its session.
    pub session: Session,
    /// What its key may do.
    pub principal: Principal,
}

/// Not signed in: go to the sign-in page.
struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl<S> FromRequestParts<S> for Console
where
    Arc<Sessions>: FromRef<S>,
    Arc<Store>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let sessions = Arc::<Sessions>::from_ref(state);
        let Some(id) = cookie(&parts.headers, COOKIE_NAME) else {
            return Err(SignIn.into_response());
        };
        let (session, principal) = match sessions.find(id).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(SignIn.into_response()),
            Err(e) => return Err(ConsoleError::from(e).into_response()),
        };
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let allowed = match principal.may(action_of(parts.method.as_str(), route)) {
            Ok(()) => {
                crate::http::extract::check_products(
                    &principal,
                    route,
                    parts.uri.path(),
                    &Arc::<Store>::from_ref(state),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match allowed {
            Ok(()) => Ok(Console { session, principal }),
            Err(e) => Err(ConsoleError::from(e).into_response()),
        }
    }
}

/// A form posted by a signed-in user from a page of this console: the
/// session, then a same-site `Origin` (when the browser sends one), then
/// the form, whose CSRF token must be the session's.
pub struct Posted<F> {
    /// Who posted.
    pub console: Console,
    /// What.
    pub form: F,
}

impl<S, F> FromRequest<S> for Posted<F>
where
    Arc<Sessions>: FromRef<S>,
    Arc<Store>: FromRef<S>,
    S: Send + Sync,
    F: DeserializeOwned + HasCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        check_origin(&parts.headers).map_err(IntoResponse::into_response)?;
        let Form(form) = Form::<F>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !Sessions::csrf_ok(&console.session, form.csrf()) {
            return Err(ConsoleError::forged().into_response());
        }
        Ok(Self { console, form })
    }
}

/// A POST's `Origin`, when the browser sends one, must be this host.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host == host {
        Ok(())
    } else {
        Err(ConsoleError::forged())
    }
}
