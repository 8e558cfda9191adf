//! Sign in and out.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::forms::{CsrfForm, LoginForm};
use super::session::{COOKIE_NAME, Posted, check_origin, cleared_cookie, cookie, session_cookie};
use super::templates::{self, Chrome};
use super::{Reply, Svc};
use crate::auth::{AdminAuth, KeyCheck, Sessions};

fn signed_out(svc: &crate::licenses::Changes) -> Chrome<'static> {
    Chrome {
        session: None,
        principal: None,
        here: "",
        now: svc.now(),
    }
}

/// The sign-in page (or the dashboard, when already signed in).
pub async fn login_page(
    State(svc): Svc,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = cookie(&headers, COOKIE_NAME)
        && let Ok(Some(_)) = sessions.find(id).await
    {
        return Redirect::to("/").into_response();
    }
    templates::login(&signed_out(&svc), None).into_response()
}

/// Sign in with an admin key: a session cookie.
pub async fn login(
    State(svc): Svc,
    State(admin): State<Arc<AdminAuth>>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Reply {
    check_origin(&headers)?;
    let name = match admin.authenticate(form.key.trim()).await? {
        KeyCheck::Valid(p) => p.name,
        check => {
            let why = if check == KeyCheck::Expired {
                "That admin key has expired. Ask for a new one."
            } else {
                "That admin key is not valid. Check for a typo, or ask for the key in admin.key."
            };
            let page = templates::login(&signed_out(&svc), Some(why));
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
    };
    let (id, _) = sessions.start(&name).await?;
    tracing::info!(actor = %name, "console sign-in");
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        session_cookie(&id, sessions.lifetime().num_seconds())?,
    );
    Ok(response)
}

/// Sign out: the session ends everywhere.
pub async fn logout(
    State(sessions): State<Arc<Sessions>>,
    Posted { console, .. }: Posted<CsrfForm>,
) -> Reply {
    sessions.end(&console.session).await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(SET_COOKIE, cleared_cookie()?);
    Ok(response)
}
