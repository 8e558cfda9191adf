//! Machines over HTTP (docs/PROTOCOL.md §19): the public activation API,
//! answered with signed documents like `/v1/validate`, and the admin list
//! and release.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::wire::{
    ActivateRequest, BorrowRequest, ErrorBody, MachineList, MachineRequest, MachineView,
    ValidateResponse,
};

use super::admin::{AdminErrors, AdminSecurity, LicensePath, license_id, page_size};
use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState, ratelimit::PerIp};
use crate::Limits;
use crate::licenses::Machines;
use crate::signer::SignedDocument;

type Svc = State<Arc<Machines>>;

/// `/v1/machines/…`, rate limited per IP like `/v1/validate`.
pub fn public_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/machines/activate", post(activate))
        .route("/v1/machines/heartbeat", post(heartbeat))
        .route("/v1/machines/deactivate", post(deactivate))
        .route("/v1/machines/borrow", post(borrow))
        .limited_per_ip(state)
}

/// `/v1/admin/licenses/{id}/machines…`.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/licenses/{id}/machines", get(list))
        .route(
            "/v1/admin/licenses/{id}/machines/{machine}",
            delete(release),
        )
}

/// The signed answer, as `/v1/validate` sends it (encoded once, when signed).
fn signed(doc: &SignedDocument) -> Response {
    ([(CONTENT_TYPE, "application/json")], doc.body.clone()).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/machines/activate",
    tag = "public",
    request_body = ActivateRequest,
    responses(
        (status = 200, body = ValidateResponse, description = "A signed document bound to the machine (`mfp`): its place, or `too_many_machines`"),
        (status = "4XX", body = ErrorBody, description = "JSON error")
    )
)]
/// Take a place for this machine, or hold the one it has.
async fn activate(
    State(svc): Svc,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> Result<Response, ApiError> {
    let doc = svc.activate(req).await?;
    Ok(signed(&doc))
}

#[utoipa::path(
    post,
    path = "/v1/machines/heartbeat",
    tag = "public",
    request_body = MachineRequest,
    responses(
        (status = 200, body = ValidateResponse, description = "The renewed lease, or `not_activated` / `lease_expired`"),
        (status = "4XX", body = ErrorBody, description = "JSON error")
    )
)]
/// Renew a floating lease (a node-locked machine's heartbeat is noted).
async fn heartbeat(
    State(svc): Svc,
    ApiJson(req): ApiJson<MachineRequest>,
) -> Result<Response, ApiError> {
    let doc = svc.heartbeat(req).await?;
    Ok(signed(&doc))
}

#[utoipa::path(
    post,
    path = "/v1/machines/deactivate",
    tag = "public",
    request_body = MachineRequest,
    responses(
        (status = 200, body = ValidateResponse, description = "`not_activated`: the place is free"),
        (status = "4XX", body = ErrorBody, description = "JSON error; 409 `not_activated` when it held no place")
    )
)]
/// Give this machine's place back.
async fn deactivate(
    State(svc): Svc,
    ApiJson(req): ApiJson<MachineRequest>,
) -> Result<Response, ApiError> {
    let doc = svc.deactivate(req).await?;
    Ok(signed(&doc))
}

#[utoipa::path(
    post,
    path = "/v1/machines/borrow",
    tag = "public",
    request_body = BorrowRequest,
    responses(
        (status = 200, body = ValidateResponse, description = "The lease kept until `until`"),
        (status = "4XX", body = ErrorBody, description = "JSON error; 422 `borrow_too_long`, `borrow_not_allowed`")
    )
)]
/// Keep a floating lease until `until` (at most `max_borrow` ahead) to go
/// offline.
async fn borrow(
    State(svc): Svc,
    ApiJson(req): ApiJson<BorrowRequest>,
) -> Result<Response, ApiError> {
    let doc = svc.borrow(req).await?;
    Ok(signed(&doc))
}

/// Query of `GET /v1/admin/licenses/{id}/machines`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MachineQuery {
    /// Machines per page (default 100).
    limit: Option<u32>,
    /// Machines to skip.
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/{id}/machines",
    tag = "admin",
    params(("id" = String, Path, description = "License id (lic_…)"), MachineQuery),
    responses((status = 200, body = MachineList), AdminErrors),
    description = "The license's machines: those holding a place first, then the most recently ended. Paginated like the fleet view."
)]
async fn list(
    State(svc): Svc,
    State(limits): State<Limits>,
    _: Admin,
    LicensePath(id): LicensePath,
    ApiQuery(q): ApiQuery<MachineQuery>,
) -> Result<Json<MachineList>, ApiError> {
    let limit = page_size(q.limit, &limits);
    Ok(Json(svc.list(&id, limit, q.offset.unwrap_or(0)).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/licenses/{id}/machines/{machine}",
    tag = "admin",
    params(
        ("id" = String, Path, description = "License id (lic_…)"),
        ("machine" = String, Path, description = "Machine id (mch_…)")
    ),
    responses((status = 200, body = MachineView), AdminErrors),
    description = "Free a machine's place at once (force release); its stream hears of it."
)]
async fn release(
    State(svc): Svc,
    admin: Admin,
    ApiPath((id, machine)): ApiPath<(String, String)>,
) -> Result<Json<MachineView>, ApiError> {
    let id = license_id(&id)?;
    Ok(Json(svc.release(&id, &machine, &admin.name).await?))
}

/// The public machine API's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(activate, heartbeat, deactivate, borrow))]
pub struct MachinesApi;

/// The admin machine routes' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(list, release))]
pub struct MachinesAdminApi;
