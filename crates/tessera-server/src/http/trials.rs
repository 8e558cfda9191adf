//! Trials over HTTP (docs/PROTOCOL.md §23).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tessera_protocol::wire::{ConvertTrialRequest, ErrorBody, TrialRequest, TrialResponse};

use super::{
    ApiError, ApiJson, AppState,
    ratelimit::{self, PerIp},
};
use crate::licenses::Trials;

/// `POST /v1/trials`, `POST /v1/trials/convert`, rate limited per IP like
/// `/v1/validate` (and trials started, per hour, by the component).
pub fn public_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/trials", post(start))
        .route("/v1/trials/convert", post(convert))
        .limited_per_ip(state)
}

#[utoipa::path(
    post,
    path = "/v1/trials",
    tag = "public",
    request_body = TrialRequest,
    responses(
        (status = 200, body = TrialResponse, description = "This machine's trial: started now (`created`), or the one it started before"),
        (status = "4XX", body = ErrorBody, description = "JSON error: 422 `not_a_trial_policy`, 404 unknown policy, 429 too many trials from this address")
    )
)]
/// Start a trial of a trial policy for a machine, or find its trial again.
async fn start(
    State(trials): State<Arc<Trials>>,
    extensions: axum::http::Extensions,
    ApiJson(req): ApiJson<TrialRequest>,
) -> Result<Json<TrialResponse>, ApiError> {
    let client = ratelimit::client_key_of(&extensions);
    Ok(Json(trials.start(req, client).await?))
}

#[utoipa::path(
    post,
    path = "/v1/trials/convert",
    tag = "public",
    request_body = ConvertTrialRequest,
    responses(
        (status = 204, description = "The trial ended (converted), pushed to its instances"),
        (status = "4XX", body = ErrorBody, description = "JSON error: 409 `not_a_trial`, 422 `not_a_paid_license`, 401 unknown token")
    )
)]
/// A paid license is now used where a trial was: the trial ends.
async fn convert(
    State(trials): State<Arc<Trials>>,
    ApiJson(req): ApiJson<ConvertTrialRequest>,
) -> Result<StatusCode, ApiError> {
    trials.convert(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The trial routes' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(start, convert))]
pub struct TrialsApi;
