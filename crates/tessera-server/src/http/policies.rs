//! `PATCH /v1/admin/policies/{name}` (docs/PROTOCOL.md §24): change a
//! policy's client settings, or preview which verdicts would change.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::patch;
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::wire::{PolicyUpdate, PolicyUpdateView};

use super::admin::{AdminErrors, AdminSecurity};
use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::licenses::Changes;

/// The route.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/v1/admin/policies/{name}", patch(update))
}

/// Query of `PATCH /v1/admin/policies/{name}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UpdateQuery {
    /// `true`: say what would change; write nothing.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(
    patch,
    path = "/v1/admin/policies/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "Policy name"), UpdateQuery),
    request_body = PolicyUpdate,
    responses((status = 200, body = PolicyUpdateView), AdminErrors),
    description = "Change a policy's enforcement, on_expiry, offline_grace or refresh_interval. Every license under it (revoked ones aside) gets a new revision, pushed. With `dry_run=true` nothing is written: the answer lists the licenses whose verdict would change and how many of their instances are connected."
)]
async fn update(
    State(changes): State<Arc<Changes>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<UpdateQuery>,
    ApiJson(update): ApiJson<PolicyUpdate>,
) -> Result<Json<PolicyUpdateView>, ApiError> {
    Ok(Json(
        changes
            .update_policy(&name, update, q.dry_run, &admin.name)
            .await?,
    ))
}

/// The route's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(update))]
pub struct PoliciesAdminApi;
