//! Policies: the list and the new-policy form.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};

use super::errors::on_form;
use super::forms::PolicyForm;
use super::session::{Console, Posted};
use super::templates;
use super::{Page, Reply, Svc};

/// The list and the form.
pub async fn policies(
    State(svc): Svc,
    console: Console,
    axum::extract::Query(q): axum::extract::Query<super::forms::DoneQuery>,
) -> Page {
    let list = svc.policies().await?;
    let done = (q.done == "created").then_some("Policy created.");
    Ok(templates::policies(
        &console.chrome("policies", &svc),
        &list,
        None,
        done,
    ))
}

/// Create a policy; a refusal comes back on the same page.
pub async fn create_policy(State(svc): Svc, Posted { console, form }: Posted<PolicyForm>) -> Reply {
    let refused = match form.input() {
        Err(message) => message,
        Ok(input) => match svc.create_policy(input, &console.session.key_name).await {
            Ok(_) => return Ok(Redirect::to("/policies?done=created").into_response()),
            Err(e) => on_form(e)?,
        },
    };
    let list = svc.policies().await?;
    let page = templates::policies(
        &console.chrome("policies", &svc),
        &list,
        Some(&refused),
        None,
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
