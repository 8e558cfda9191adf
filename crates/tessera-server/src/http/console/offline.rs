//! Offline activation in the console: the vendor pastes an isolated
//! machine's request and downloads the response (docs/PROTOCOL.md §25).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use tessera_protocol::wire::OfflineActivationRequest;

use super::errors::on_form;
use super::forms::OfflineForm;
use super::session::{Console, Posted};
use super::templates;
use super::{Page, Reply, Svc};
use crate::error::Error;
use crate::licenses::Machines;

/// The form.
pub async fn offline_form(State(svc): Svc, console: Console) -> Page {
    Ok(templates::offline(
        &console.chrome("offline", &svc),
        None,
        "",
        "365d",
    ))
}

/// Answer the request: the response downloads as `response.json`; a
/// refusal (a misread code, an unknown token, a revoked or floating
/// license) comes back on the form with what was entered.
pub async fn offline_activate(
    State(svc): Svc,
    State(machines): State<Arc<Machines>>,
    Posted { console, form }: Posted<OfflineForm>,
) -> Reply {
    let ttl = if form.ttl.trim().is_empty() {
        "365d".to_owned()
    } else {
        form.ttl.trim().to_owned()
    };
    let req = OfflineActivationRequest {
        request: form.request.clone(),
        ttl: ttl.clone(),
    };
    let refused = match machines
        .offline_activation(&req, &console.session.key_name)
        .await
    {
        Ok(answer) => {
            let body = serde_json::to_string_pretty(&answer).unwrap_or_default() + "\n";
            return Ok((
                [
                    (CONTENT_TYPE, "application/json".to_owned()),
                    (
                        CONTENT_DISPOSITION,
                        "attachment; filename=\"response.json\"".to_owned(),
                    ),
                ],
                body,
            )
                .into_response());
        }
        // A code that does not read back is the vendor's typo, not a fault.
        Err(Error::Protocol(p)) => super::errors::sentence(&p.to_string()),
        Err(Error::NotFound { .. }) => {
            "No license has this request's token: check the code, or the authority it was made for."
                .to_owned()
        }
        Err(e) => on_form(e)?,
    };
    let page = templates::offline(
        &console.chrome("offline", &svc),
        Some(&refused),
        &form.request,
        &ttl,
    );
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
