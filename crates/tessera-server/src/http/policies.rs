//! Policies: `GET`/`POST /v1/admin/policies`, and `PATCH
//! /v1/admin/policies/{name}` (docs/PROTOCOL.md §24): change a policy's
//! client settings, or preview which verdicts would change.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::wire::{Page, PolicyInput, PolicyUpdate, PolicyUpdateView, PolicyView};

use super::admin::{AdminErrors, AdminSecurity};
use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::licenses::Changes;

/// The routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/policies", get(list_policies).post(create_policy))
        .route("/v1/admin/policies/{name}", patch(update))
}

#[utoipa::path(
    post,
    path = "/v1/admin/policies",
    tag = "admin",
    request_body = PolicyInput,
    responses((status = 201, body = PolicyView), AdminErrors),
    description = "Create a policy (of the `default` product unless `product` names another)."
)]
async fn create_policy(
    State(svc): State<Arc<Changes>>,
    admin: Admin,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let policy = svc.create_policy(input, &admin.name).await?;
    Ok((StatusCode::CREATED, Json(policy.view())))
}

/// Query of `GET /v1/admin/policies`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this product's policies (and the built-in `default`).
    product: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/policies",
    tag = "admin",
    params(ListQuery),
    responses((status = 200, body = Page<PolicyView>), AdminErrors),
    description = "List policies."
)]
async fn list_policies(
    State(svc): State<Arc<Changes>>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<PolicyView>>, ApiError> {
    let filter = admin.principal.product_filter(q.product.as_deref());
    let items = svc
        .policies()
        .await?
        .iter()
        .filter(|p| match (&filter, &p.product) {
            (Some(list), Some(product)) => list.split(',').any(|l| l == product),
            _ => true,
        })
        .map(crate::model::Policy::view)
        .collect();
    Ok(Json(Page::whole(items)))
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
#[openapi(modifiers(&AdminSecurity), paths(create_policy, list_policies, update))]
pub struct PoliciesAdminApi;
