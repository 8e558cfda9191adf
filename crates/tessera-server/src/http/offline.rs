//! Offline activation over HTTP (docs/PROTOCOL.md §25): the vendor (or a
//! connected machine of the customer) turns an isolated machine's request
//! into its response.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tessera_protocol::wire::{OfflineActivation, OfflineActivationRequest};

use super::admin::{AdminErrors, AdminSecurity};
use super::{Admin, ApiError, ApiJson, AppState};
use crate::licenses::Machines;

/// `POST /v1/admin/offline-activations`.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/v1/admin/offline-activations", post(activate))
}

#[utoipa::path(
    post,
    path = "/v1/admin/offline-activations",
    tag = "admin",
    request_body = OfflineActivationRequest,
    responses((status = 200, body = OfflineActivation), AdminErrors),
    description = "Answer an isolated machine's offline activation request (its file, or the TSRQ1 code): \
                   the machine takes a place like an online activation, and the response — a document \
                   bound to the machine and to the request's nonce, trustworthy for `ttl` — is what it \
                   imports. 400 `malformed` for a code that does not read back (a misread character \
                   fails its checksum), 404 when no license has its token, 409 `license_revoked`, \
                   422 `offline_floating` for a floating license."
)]
async fn activate(
    State(machines): State<Arc<Machines>>,
    admin: Admin,
    ApiJson(req): ApiJson<OfflineActivationRequest>,
) -> Result<Json<OfflineActivation>, ApiError> {
    Ok(Json(machines.offline_activation(&req, &admin.name).await?))
}

/// The offline route's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(activate))]
pub struct OfflineAdminApi;
