//! Licenses: the list, issuing, one license and its fleet, and the changes
//! (each a confirmation page, then the form it posts).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use tessera_protocol::LicenseId;
use tessera_protocol::human::parse_duration;
use tessera_protocol::wire::LicenseState;

use super::errors::{ConsoleError, on_form, sentence};
use super::forms::{DoneQuery, ExtendForm, IssueForm, ListQuery, ReasonForm, optional};
use super::session::{Console, Posted};
use super::templates;
use super::{LicenseAt, Meter, PAGE_SIZE, Page, Reply, Svc};
use crate::error::Error;
use crate::licenses::{Changes, Machines, StateAction};
use crate::model::{EventFilter, ExpiryWindow, LicensePage, LicenseQuery};

fn bad_filter(message: impl Into<String>) -> ConsoleError {
    ConsoleError::new(StatusCode::BAD_REQUEST, "Please check the filter", message).back("/licenses")
}

/// Search and filter, a page at a time.
pub async fn licenses(State(svc): Svc, console: Console, Query(q): Query<ListQuery>) -> Page {
    let now = svc.now();
    let state = match q.state.as_str() {
        "" => None,
        s => Some(
            s.parse::<LicenseState>()
                .map_err(|_| bad_filter("Choose a state from the list."))?,
        ),
    };
    let expiring = match q.expiring.as_str() {
        "" => None,
        "expired" => Some(ExpiryWindow {
            from: None,
            until: now,
        }),
        d => {
            let d = parse_duration(d).map_err(|e| bad_filter(sentence(&e.to_string())))?;
            Some(ExpiryWindow::within(now, d))
        }
    };
    let page = q.page.unwrap_or(1).max(1);
    let search = LicenseQuery {
        text: Some(q.q.clone()).filter(|t| !t.trim().is_empty()),
        customer: None,
        state,
        expiring,
        products: console
            .principal
            .product_filter(Some(q.product.trim()).filter(|p| !p.is_empty())),
        page: LicensePage::Offset((page - 1) * PAGE_SIZE),
        limit: PAGE_SIZE,
    };
    let (rows, total) = svc.search(&search).await?;
    let pages_count = u32::try_from((total + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE))
        .unwrap_or(1)
        .max(1);
    let view = templates::ListView {
        text: &q.q,
        state: &q.state,
        expiring: &q.expiring,
        product: &q.product,
        page,
        pages: pages_count,
        total,
        query_without_page: q.without_page(),
    };
    Ok(templates::licenses(
        &console.chrome("licenses", &svc),
        &view,
        &rows,
    ))
}

/// The issue form.
pub async fn issue_form(State(svc): Svc, console: Console) -> Page {
    let policies = svc.policies().await?;
    Ok(templates::issue_form(
        &console.chrome("issue", &svc),
        &policies,
        &IssueForm::blank(),
        None,
    ))
}

/// Issue: the token is shown once; a refusal comes back on the form.
pub async fn issue(State(svc): Svc, Posted { console, form }: Posted<IssueForm>) -> Reply {
    let refused = match form.request() {
        Err(message) => message.to_owned(),
        Ok(req) => match svc.issue(req, &console.principal).await {
            Ok((license, token)) => {
                let chrome = console.chrome("issue", &svc);
                let page = templates::issued(&chrome, &license, token.expose_secret());
                return Ok((StatusCode::CREATED, page).into_response());
            }
            Err(Error::NotFound { .. }) => "That policy does not exist.".to_owned(),
            Err(e) => on_form(e)?,
        },
    };
    issue_again(&svc, &console, &form, &refused).await
}

async fn issue_again(svc: &Changes, console: &Console, form: &IssueForm, message: &str) -> Reply {
    let policies = svc.policies().await?;
    let page = templates::issue_form(
        &console.chrome("issue", svc),
        &policies,
        form,
        Some(message),
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// One license: its details, fleet and history.
pub async fn license(
    State(svc): Svc,
    State(metering): Meter,
    State(machines): State<Arc<Machines>>,
    console: Console,
    LicenseAt(id): LicenseAt,
    Query(q): Query<DoneQuery>,
) -> Page {
    let license = svc.license(&id).await?;
    let fleet = metering.fleet(&id, PAGE_SIZE, q.offset).await?;
    let machine_list = machines.list(&id, PAGE_SIZE, 0).await?;
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
        "released" => Some("Released. The machine hears so on its stream; its place is free."),
        "revoked" => {
            Some("Revoked. Every installation loses the license as its next answer arrives.")
        }
        _ => None,
    };
    Ok(templates::license(
        &console.chrome("licenses", &svc),
        &license,
        &fleet,
        &machine_list,
        &events,
        done,
    ))
}

/// The fleet as JSON, for the page's live view.
pub async fn fleet(
    State(svc): Meter,
    _: Console,
    LicenseAt(id): LicenseAt,
    Query(q): Query<DoneQuery>,
) -> Reply {
    Ok(Json(svc.fleet(&id, PAGE_SIZE, q.offset).await?).into_response())
}

/// What an extension will do, before it is done.
pub async fn confirm_extend(
    State(svc): Svc,
    console: Console,
    LicenseAt(id): LicenseAt,
    Query(form): Query<ExtendForm>,
) -> Page {
    let back = format!("/licenses/{id}");
    let (license, new_expiry) = svc
        .extend_preview(&id, &form.request())
        .await
        .map_err(|e| ConsoleError::from(e).back(back))?;
    let mut hidden = Vec::new();
    if let Some(by) = optional(&form.by) {
        hidden.push(("by", by));
    }
    if let Some(to) = optional(&form.to) {
        hidden.push(("to", to));
    }
    Ok(templates::confirm(
        &console.chrome("licenses", &svc),
        &license,
        templates::Confirm {
            title: "Extend the license",
            consequence: templates::extend_consequence(&license, &new_expiry, svc.now()),
            action: "extend",
            hidden: &hidden,
            with_reason: false,
            danger: false,
        },
    ))
}

/// Extend, as confirmed.
pub async fn extend(
    State(svc): Svc,
    LicenseAt(id): LicenseAt,
    Posted { console, form }: Posted<ExtendForm>,
) -> Result<Redirect, ConsoleError> {
    svc.extend(&id, form.request(), &console.session.key_name)
        .await
        .map_err(|e| ConsoleError::from(e).back(format!("/licenses/{id}")))?;
    Ok(Redirect::to(&format!("/licenses/{id}?done=extended")))
}

/// The `done` word a license page shows after a state change.
fn done_word(action: StateAction) -> &'static str {
    match action {
        StateAction::Suspend => "suspended",
        StateAction::Reinstate => "reinstated",
        StateAction::Revoke => "revoked",
    }
}

async fn confirm_state(
    svc: &Changes,
    console: &Console,
    id: &LicenseId,
    action: StateAction,
) -> Page {
    let license = svc.license(id).await?;
    let (title, consequence, danger) = templates::state_consequence(action);
    let path = action.to_string();
    Ok(templates::confirm(
        &console.chrome("licenses", svc),
        &license,
        templates::Confirm {
            title,
            consequence,
            action: &path,
            hidden: &[],
            with_reason: true,
            danger,
        },
    ))
}

async fn change_state(
    svc: &Changes,
    id: &LicenseId,
    posted: Posted<ReasonForm>,
    action: StateAction,
) -> Result<Redirect, ConsoleError> {
    let reason = optional(&posted.form.reason);
    svc.set_state(id, action, &posted.console.session.key_name, reason)
        .await
        .map_err(|e| ConsoleError::from(e).back(format!("/licenses/{id}")))?;
    Ok(Redirect::to(&format!(
        "/licenses/{id}?done={}",
        done_word(action)
    )))
}

/// The confirmation page (GET) and the form it posts (POST) of one state change.
pub fn state_routes(action: StateAction) -> axum::routing::MethodRouter<crate::http::AppState> {
    get(
        move |State(svc): Svc, console: Console, LicenseAt(id): LicenseAt| async move {
            confirm_state(&svc, &console, &id, action).await
        },
    )
    .post(
        move |State(svc): Svc, LicenseAt(id): LicenseAt, posted: Posted<ReasonForm>| async move {
            change_state(&svc, &id, posted, action).await
        },
    )
}

/// Release a machine: its place is free at once.
pub async fn release_machine(
    State(machines): State<Arc<Machines>>,
    Path((id, machine)): Path<(String, String)>,
    posted: Posted<super::forms::CsrfForm>,
) -> Result<Redirect, ConsoleError> {
    let id = super::license_id(&id)?;
    let actor = &posted.console.session.key_name;
    machines
        .release(&id, &machine, actor)
        .await
        .map_err(|e| ConsoleError::from(e).back(format!("/licenses/{id}")))?;
    Ok(Redirect::to(&format!("/licenses/{id}?done=released")))
}
