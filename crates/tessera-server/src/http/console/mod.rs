//! The admin console: server-rendered pages at `/`, for the people who run a
//! licensing desk.
//!
//! Sign-in with an admin key starts a session (cookie `tessera_session`:
//! `HttpOnly`, `SameSite=Strict`, `Secure`, eight hours; only its hash is
//! stored). Every form is taken through [`session::Posted`], which checks
//! the session's CSRF token and a same-site `Origin`, so a handler cannot
//! forget them. Pages work without JavaScript; the script only adds the
//! copy button and the live fleet view. Actions go through the same
//! components as the API ([`crate::licenses`]), with the key's name as the
//! actor in the audit log.
//!
//! Files: [`session`] (cookie, extractors), [`errors`] (error pages),
//! [`forms`] (forms and their API requests), [`templates`] (all markup),
//! and one per resource: [`signin`], [`licenses`], [`policies`], [`events`].

mod assets;
mod errors;
mod events;
mod forms;
mod licenses;
mod offline;
mod policies;
mod session;
mod signin;
mod templates;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use maud::Markup;
use tessera_protocol::LicenseId;

use super::AppState;
use crate::licenses::{Changes, Metering, StateAction};
use errors::ConsoleError;
use session::Console;
use templates::Chrome;
pub use templates::document;

/// Rows per page in the console's tables.
const PAGE_SIZE: u32 = 25;

type Svc = State<Arc<Changes>>;
type Meter = State<Arc<Metering>>;
type Page = Result<Markup, ConsoleError>;
/// What a handler that redirects or sets a status answers.
type Reply = Result<Response, ConsoleError>;

/// The console's routes. Sign-in attempts share the per-IP rate limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let limited =
        axum::middleware::from_fn_with_state(state.limiter.clone(), super::ratelimit::limit);
    let router = Router::new()
        .route("/", get(events::dashboard))
        .route("/console.css", get(assets::style))
        .route("/console.js", get(assets::script))
        .route(
            "/login",
            get(signin::login_page)
                .post(signin::login)
                .route_layer(limited),
        )
        .route("/logout", post(signin::logout))
        .route("/licenses", get(licenses::licenses).post(licenses::issue))
        .route("/licenses/new", get(licenses::issue_form))
        .route("/licenses/{id}", get(licenses::license))
        .route("/licenses/{id}/fleet.json", get(licenses::fleet))
        .route(
            "/licenses/{id}/machines/{machine}/release",
            post(licenses::release_machine),
        )
        .route(
            "/licenses/{id}/extend",
            get(licenses::confirm_extend).post(licenses::extend),
        )
        .route(
            "/policies",
            get(policies::policies).post(policies::create_policy),
        )
        .route(
            "/offline",
            get(offline::offline_form).post(offline::offline_activate),
        )
        .route("/events", get(events::events));
    let router = StateAction::ALL.into_iter().fold(router, |router, action| {
        let path = format!("/licenses/{{id}}/{action}");
        router.route(&path, licenses::state_routes(action))
    });
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clock.clone(),
            errors::render_errors,
        ))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Pages are not framed (confirmation pages must not be clickjacked), not
/// cached (a page may carry a token shown once), and run only our script.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    // Not no-referrer: with it, browsers send `Origin: null` on same-site
    // form posts, and the origin check would refuse them.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

impl Console {
    fn chrome<'a>(&'a self, here: &'a str, svc: &Changes) -> Chrome<'a> {
        Chrome {
            session: Some(&self.session),
            principal: Some(&self.principal),
            here,
            now: svc.now(),
        }
    }
}

/// The license id of a console path (`/licenses/{id}…`): a malformed one
/// gets the console's "not found" page.
pub struct LicenseAt(pub LicenseId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LicenseAt {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ConsoleError> {
        let text = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| p.0)
            .unwrap_or_default();
        license_id(&text).map(Self)
    }
}

pub(super) fn license_id(text: &str) -> Result<LicenseId, ConsoleError> {
    LicenseId::parse(text).map_err(|_| {
        ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a license id (they look like lic_0193…).",
        )
        .back("/licenses")
    })
}
