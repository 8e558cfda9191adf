//! The admin console: server-rendered pages at `/`, for the people who run a
//! licensing desk.
//!
//! Sign-in with an admin key starts a session (cookie `tessera_session`:
//! `HttpOnly`, `SameSite=Strict`, `Secure`, eight hours; only its hash is
//! stored). Every form carries the session's CSRF token, and a POST whose
//! `Origin` is another site is refused. Pages work without JavaScript; the
//! script only adds the copy button and the live fleet view. Actions go
//! through the same [`LicenseService`] as the API, with the key's name as
//! the actor in the audit log.

mod assets;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use maud::{Markup, html};
use serde::Deserialize;
use tessera_protocol::LicenseId;
use tessera_protocol::human::parse_duration;
use tessera_protocol::wire::{
    ExtendRequest, IssueLicenseRequest, LicenseState, PolicyInput, RenewalBasis,
};

use super::AppState;
use crate::auth::{AdminAuth, Sessions};
use crate::error::Error;
use crate::licenses::{Changes, Metering, StateAction};
use crate::model::{EventFilter, LicenseSearch, Session};
use pages::Chrome;

const COOKIE_NAME: &str = "tessera_session";
const PAGE_SIZE: u32 = 25;

/// The console's routes. Sign-in attempts share the per-IP rate limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let limited =
        axum::middleware::from_fn_with_state(state.limiter.clone(), super::ratelimit::limit);
    Router::new()
        .route("/", get(dashboard))
        .route("/console.css", get(assets::style))
        .route("/console.js", get(assets::script))
        .route("/login", get(login_page).post(login).route_layer(limited))
        .route("/logout", post(logout))
        .route("/licenses", get(licenses).post(issue))
        .route("/licenses/new", get(issue_form))
        .route("/licenses/{id}", get(license))
        .route("/licenses/{id}/fleet.json", get(fleet))
        .route("/licenses/{id}/extend", get(confirm_extend).post(extend))
        .route("/licenses/{id}/suspend", state_routes(StateAction::Suspend))
        .route(
            "/licenses/{id}/reinstate",
            state_routes(StateAction::Reinstate),
        )
        .route("/licenses/{id}/revoke", state_routes(StateAction::Revoke))
        .route("/policies", get(policies).post(create_policy))
        .route("/events", get(events))
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

// ----- sessions --------------------------------------------------------------

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

/// A signed-in console request.
struct Console {
    session: Session,
}

/// Why a console request is refused: a page for people.
struct ConsoleError {
    status: StatusCode,
    title: &'static str,
    message: String,
    back: Option<String>,
}

impl ConsoleError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            back: None,
        }
    }

    fn back(mut self, to: impl Into<String>) -> Self {
        self.back = Some(to.into());
        self
    }

    fn forged() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "It did not come from a page of this console, or your session changed since it was shown. \
             Go back, reload the page and try again.",
        )
    }
}

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { what, id } => Self::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("There is no {what} {id}. It may have been typed wrongly."),
            ),
            Error::Conflict { message, .. } => Self::new(
                StatusCode::CONFLICT,
                "That cannot be done now",
                sentence(&message),
            ),
            Error::Unprocessable { message, .. } | Error::BadRequest { message, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please check what you entered",
                sentence(&message),
            ),
            Error::Protocol(p) => Self::new(
                StatusCode::BAD_REQUEST,
                "Please check what you entered",
                sentence(&p.to_string()),
            ),
            other => {
                tracing::error!(error = %other, "console request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The authority could not do this. The details are in its log; nothing was changed.",
                )
            }
        }
    }
}

fn sentence(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(first) = out.get(..1) {
        out.replace_range(..1, &first.to_uppercase());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let chrome = Chrome {
            session: None,
            here: "",
            now: chrono::Utc::now(),
        };
        (
            self.status,
            pages::error_page(&chrome, self.title, &self.message, self.back.as_deref()),
        )
            .into_response()
    }
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
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let sessions = Arc::<Sessions>::from_ref(state);
        let Some(id) = cookie(&parts.headers, COOKIE_NAME) else {
            return Err(SignIn.into_response());
        };
        match sessions.find(id).await {
            Ok(Some(session)) => Ok(Console { session }),
            Ok(None) => Err(SignIn.into_response()),
            Err(e) => Err(ConsoleError::from(e).into_response()),
        }
    }
}

/// A POST must come from this console: same-site `Origin` (when the browser
/// sends one) and the session's CSRF token.
fn check_post(headers: &HeaderMap, session: &Session, csrf: &str) -> Result<(), ConsoleError> {
    check_origin(headers)?;
    if Sessions::csrf_ok(session, csrf) {
        Ok(())
    } else {
        Err(ConsoleError::forged())
    }
}

fn check_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
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

impl Console {
    fn chrome<'a>(&'a self, here: &'a str, svc: &Changes) -> Chrome<'a> {
        Chrome {
            session: Some(&self.session),
            here,
            now: svc.now(),
        }
    }
}

fn license_id(text: &str) -> Result<LicenseId, ConsoleError> {
    LicenseId::parse(text).map_err(|_| {
        ConsoleError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a license id (they look like lic_0193…).",
        )
        .back("/licenses")
    })
}

type Svc = State<Arc<Changes>>;
type Meter = State<Arc<Metering>>;
type Page = Result<Markup, ConsoleError>;

// ----- sign in / out ---------------------------------------------------------

async fn login_page(
    State(svc): Svc,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = cookie(&headers, COOKIE_NAME)
        && let Ok(Some(_)) = sessions.find(id).await
    {
        return Redirect::to("/").into_response();
    }
    let chrome = Chrome {
        session: None,
        here: "",
        now: svc.now(),
    };
    pages::login(&chrome, None).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    key: String,
}

async fn login(
    State(svc): Svc,
    State(admin): State<Arc<AdminAuth>>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    check_origin(&headers)?;
    let Some(name) = admin.authenticate(form.key.trim()) else {
        let chrome = Chrome {
            session: None,
            here: "",
            now: svc.now(),
        };
        let page = pages::login(
            &chrome,
            Some("That admin key is not valid. Check for a typo, or ask for the key in admin.key."),
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let (id, _) = sessions.start(&name).await?;
    tracing::info!(actor = %name, "console sign-in");
    let max_age = sessions.lifetime().num_seconds();
    let cookie =
        format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age={max_age}");
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie)
            .map_err(|_| ConsoleError::from(Error::Config("cookie".into())))?,
    );
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(sessions): State<Arc<Sessions>>,
    console: Console,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    check_post(&headers, &console.session, &form.csrf)?;
    sessions.end(&console.session).await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "tessera_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
        ),
    );
    Ok(response)
}

// ----- pages -------------------------------------------------------------------

async fn dashboard(State(svc): Svc, State(metering): Meter, console: Console) -> Page {
    let overview = metering.overview().await?;
    let recent = svc
        .events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await?;
    Ok(pages::dashboard(
        &console.chrome("dashboard", &svc),
        &overview,
        &recent,
    ))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    expiring: String,
    #[serde(default)]
    page: Option<u32>,
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn licenses(State(svc): Svc, console: Console, Query(q): Query<ListQuery>) -> Page {
    let now = svc.now();
    let state = match q.state.as_str() {
        "" => None,
        s => Some(LicenseState::parse(s).ok_or_else(|| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                "Please check the filter",
                "Choose a state from the list.",
            )
            .back("/licenses")
        })?),
    };
    let (expiring_before, not_before) = match q.expiring.as_str() {
        "" => (None, None),
        "expired" => (Some(now), Some(chrono::DateTime::<chrono::Utc>::MIN_UTC)),
        d => {
            let d = parse_duration(d).map_err(|e| {
                ConsoleError::new(
                    StatusCode::BAD_REQUEST,
                    "Please check the filter",
                    sentence(&e.to_string()),
                )
                .back("/licenses")
            })?;
            (Some(now + d), Some(now))
        }
    };
    let page = q.page.unwrap_or(1).max(1);
    let search = LicenseSearch {
        text: Some(q.q.clone()).filter(|t| !t.trim().is_empty()),
        state,
        expiring_before,
        not_before,
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let (rows, total) = svc.search(&search).await?;
    let pages_count = u32::try_from((total + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE))
        .unwrap_or(1)
        .max(1);
    let view = pages::ListView {
        text: &q.q,
        state: &q.state,
        expiring: &q.expiring,
        page,
        pages: pages_count,
        total,
        query_without_page: format!(
            "q={}&state={}&expiring={}",
            encode(&q.q),
            encode(&q.state),
            encode(&q.expiring)
        ),
    };
    Ok(pages::licenses(
        &console.chrome("licenses", &svc),
        &view,
        &rows,
    ))
}

async fn issue_form(State(svc): Svc, console: Console) -> Page {
    let policies = svc.policies().await?;
    let form = pages::IssueForm {
        duration: "365d".into(),
        policy: crate::model::Policy::DEFAULT_NAME.into(),
        ..Default::default()
    };
    Ok(pages::issue_form(
        &console.chrome("issue", &svc),
        &console.session.csrf,
        &policies,
        &form,
        None,
    ))
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

async fn issue(
    State(svc): Svc,
    console: Console,
    headers: HeaderMap,
    Form(form): Form<pages::IssueForm>,
) -> Result<Response, ConsoleError> {
    check_post(&headers, &console.session, &form.csrf)?;
    let max_users = match optional(&form.max_users) {
        None => None,
        Some(n) => match n.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return issue_again(
                    &svc,
                    &console,
                    &form,
                    "The seat limit must be a whole number.",
                )
                .await;
            }
        },
    };
    let perpetual = form.perpetual.is_some();
    let expires_at = if perpetual {
        None
    } else {
        optional(&form.expires_at)
    };
    let req = IssueLicenseRequest {
        customer: form.customer.clone(),
        customer_email: optional(&form.email),
        plan: form.plan.clone(),
        policy: optional(&form.policy),
        features: optional(&form.features).map(|f| {
            f.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        }),
        max_users,
        trial: form.trial.is_some().then_some(true),
        duration: if perpetual || expires_at.is_some() {
            None
        } else {
            optional(&form.duration)
        },
        expires_at,
        perpetual,
        auto_renew: form.auto_renew.is_some().then_some(true),
    };
    match svc.issue(req, &console.session.key_name).await {
        Ok((license, token)) => {
            let page = pages::issued(
                &console.chrome("issue", &svc),
                &license,
                token.expose_secret(),
            );
            Ok((StatusCode::CREATED, page).into_response())
        }
        Err(
            e @ (Error::Unprocessable { .. } | Error::NotFound { .. } | Error::BadRequest { .. }),
        ) => {
            let message = match &e {
                Error::NotFound { .. } => "That policy does not exist.".to_owned(),
                other => sentence(&other.to_string()),
            };
            issue_again(&svc, &console, &form, &message).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn issue_again(
    svc: &Changes,
    console: &Console,
    form: &pages::IssueForm,
    message: &str,
) -> Result<Response, ConsoleError> {
    let policies = svc.policies().await?;
    let page = pages::issue_form(
        &console.chrome("issue", svc),
        &console.session.csrf,
        &policies,
        form,
        Some(message),
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct DoneQuery {
    #[serde(default)]
    done: String,
    /// Installations skipped (the fleet table is paginated).
    #[serde(default)]
    offset: u64,
}

async fn license(
    State(svc): Svc,
    State(metering): Meter,
    console: Console,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Page {
    let id = license_id(&id)?;
    let license = svc.license(&id).await?;
    let fleet = metering.fleet(&id, PAGE_SIZE, q.offset).await?;
    let events = svc
        .events(&EventFilter {
            license: Some(id.clone()),
            limit: 50,
            ..EventFilter::default()
        })
        .await?;
    let done = match q.done.as_str() {
        "extended" => {
            Some("Extended. Installations with a live stream already have the new expiry.")
        }
        "suspended" => Some("Suspended. Installations with a live stream already know."),
        "reinstated" => Some("Reinstated."),
        "revoked" => {
            Some("Revoked. Every installation loses the license as its next answer arrives.")
        }
        _ => None,
    };
    Ok(pages::license(
        &console.chrome("licenses", &svc),
        &license,
        &fleet,
        &events,
        done,
    ))
}

async fn fleet(
    State(svc): Meter,
    _: Console,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let id = license_id(&id)?;
    Ok(Json(svc.fleet(&id, PAGE_SIZE, q.offset).await?).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ExtendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    to: String,
}

impl ExtendForm {
    fn request(&self) -> ExtendRequest {
        ExtendRequest {
            to: optional(&self.to),
            by: optional(&self.by),
        }
    }
}

async fn confirm_extend(
    State(svc): Svc,
    console: Console,
    Path(id): Path<String>,
    Query(form): Query<ExtendForm>,
) -> Page {
    let id = license_id(&id)?;
    let back = format!("/licenses/{id}");
    let (license, new_expiry) = svc
        .extend_preview(&id, &form.request())
        .await
        .map_err(|e| ConsoleError::from(e).back(back))?;
    let now = svc.now();
    let from = license
        .expires_at
        .map_or_else(|| "never (perpetual)".to_owned(), |t| pages::when(&t));
    let consequence = html! {
        p #consequence {
            "The expiry moves from " strong { (from) } " to " strong { (pages::when(&new_expiry)) }
            " (" (pages::relative(&new_expiry, now)) "). Installations with a live stream get it within seconds."
        }
    };
    let mut hidden = Vec::new();
    if let Some(by) = optional(&form.by) {
        hidden.push(("by", by));
    }
    if let Some(to) = optional(&form.to) {
        hidden.push(("to", to));
    }
    Ok(pages::confirm(
        &console.chrome("licenses", &svc),
        &console.session.csrf,
        &license,
        pages::Confirm {
            title: "Extend the license",
            consequence,
            action: "extend",
            hidden: &hidden,
            with_reason: false,
            danger: false,
        },
    ))
}

async fn extend(
    State(svc): Svc,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ExtendForm>,
) -> Result<Redirect, ConsoleError> {
    check_post(&headers, &console.session, &form.csrf)?;
    let id = license_id(&id)?;
    svc.extend(&id, form.request(), &console.session.key_name)
        .await
        .map_err(|e| ConsoleError::from(e).back(format!("/licenses/{id}")))?;
    Ok(Redirect::to(&format!("/licenses/{id}?done=extended")))
}

#[derive(Debug, Default, Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// The console's path segment of a state change.
fn action_path(action: StateAction) -> &'static str {
    match action {
        StateAction::Suspend => "suspend",
        StateAction::Reinstate => "reinstate",
        StateAction::Revoke => "revoke",
    }
}

async fn confirm_state(svc: &Changes, console: &Console, id: &str, action: StateAction) -> Page {
    let id = license_id(id)?;
    let license = svc.license(&id).await?;
    let (title, consequence, danger) = match action {
        StateAction::Suspend => (
            "Suspend the license",
            html! {
                p #consequence { "Every installation stops being licensed within seconds (those polling, at their next check). "
                    "You can reinstate it later." }
            },
            true,
        ),
        StateAction::Reinstate => (
            "Reinstate the license",
            html! {
                p #consequence { "Installations are licensed again within seconds." }
            },
            false,
        ),
        StateAction::Revoke => (
            "Revoke the license",
            html! {
                p #consequence { strong { "This cannot be undone. " } "Every installation loses the license, and the token stops working for good." }
            },
            true,
        ),
    };
    Ok(pages::confirm(
        &console.chrome("licenses", svc),
        &console.session.csrf,
        &license,
        pages::Confirm {
            title,
            consequence,
            action: action_path(action),
            hidden: &[],
            with_reason: true,
            danger,
        },
    ))
}

async fn change_state(
    svc: &Changes,
    console: &Console,
    headers: &HeaderMap,
    id: &str,
    form: &ReasonForm,
    action: StateAction,
) -> Result<Redirect, ConsoleError> {
    check_post(headers, &console.session, &form.csrf)?;
    let id = license_id(id)?;
    let reason = optional(&form.reason);
    let actor = &console.session.key_name;
    svc.set_state(&id, action, actor, reason)
        .await
        .map_err(|e| ConsoleError::from(e).back(format!("/licenses/{id}")))?;
    let done = match action {
        StateAction::Suspend => "suspended",
        StateAction::Reinstate => "reinstated",
        StateAction::Revoke => "revoked",
    };
    Ok(Redirect::to(&format!("/licenses/{id}?done={done}")))
}

/// The confirmation page (GET) and the form it posts (POST) of one state change.
fn state_routes(action: StateAction) -> axum::routing::MethodRouter<super::AppState> {
    get(
        move |State(svc): Svc, console: Console, Path(id): Path<String>| async move {
            confirm_state(&svc, &console, &id, action).await
        },
    )
    .post(
        move |State(svc): Svc,
              console: Console,
              headers: HeaderMap,
              Path(id): Path<String>,
              Form(f): Form<ReasonForm>| async move {
            change_state(&svc, &console, &headers, &id, &f, action).await
        },
    )
}

async fn policies(State(svc): Svc, console: Console, Query(q): Query<DoneQuery>) -> Page {
    let list = svc.policies().await?;
    let done = (q.done == "created").then_some("Policy created.");
    Ok(pages::policies(
        &console.chrome("policies", &svc),
        &console.session.csrf,
        &list,
        None,
        done,
    ))
}

#[derive(Debug, Default, Deserialize)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    features: String,
    #[serde(default)]
    refresh_interval: String,
    #[serde(default)]
    offline_grace: String,
    #[serde(default)]
    renewal_basis: String,
    #[serde(default)]
    trial: Option<String>,
    #[serde(default)]
    auto_renew: Option<String>,
    #[serde(default)]
    renew_before: String,
}

async fn create_policy(
    State(svc): Svc,
    console: Console,
    headers: HeaderMap,
    Form(f): Form<PolicyForm>,
) -> Result<Response, ConsoleError> {
    check_post(&headers, &console.session, &f.csrf)?;
    let input = PolicyInput {
        name: f.name.clone(),
        duration: optional(&f.duration),
        features: f
            .features
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        max_users: None,
        trial: f.trial.is_some(),
        refresh_interval: optional(&f.refresh_interval),
        offline_grace: optional(&f.offline_grace),
        renewal_basis: Some(if f.renewal_basis == "from_now" {
            RenewalBasis::FromNow
        } else {
            RenewalBasis::FromExpiry
        }),
        auto_renew: f.auto_renew.is_some(),
        auto_renew_period: None,
        renew_before: optional(&f.renew_before),
    };
    match svc.create_policy(input, &console.session.key_name).await {
        Ok(_) => Ok(Redirect::to("/policies?done=created").into_response()),
        Err(e @ (Error::Unprocessable { .. } | Error::Conflict { .. })) => {
            let list = svc.policies().await?;
            let page = pages::policies(
                &console.chrome("policies", &svc),
                &console.session.csrf,
                &list,
                Some(&sentence(&e.to_string())),
                None,
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    license: String,
    #[serde(default)]
    before: Option<i64>,
}

async fn events(State(svc): Svc, console: Console, Query(q): Query<EventsQuery>) -> Page {
    let license = match q.license.trim() {
        "" => None,
        text => Some(license_id(text)?),
    };
    let list = svc
        .events(&EventFilter {
            license,
            before: q.before,
            limit: 50,
            ..EventFilter::default()
        })
        .await?;
    let next = (list.len() == 50)
        .then(|| list.last().map(|e| e.seq))
        .flatten();
    Ok(pages::events(
        &console.chrome("events", &svc),
        &list,
        q.license.trim(),
        next,
    ))
}
