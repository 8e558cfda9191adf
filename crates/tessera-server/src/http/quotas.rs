//! Metered quotas over HTTP (docs/PROTOCOL.md §22): consumption reports
//! from instances, and a feature's use for the admin.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::wire::{ConsumptionRequest, ConsumptionView, ErrorBody, QuotaUsageView};

use super::admin::{AdminErrors, AdminSecurity, license_id};
use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState, ratelimit::PerIp};
use crate::licenses::Metering;

type Svc = State<Arc<Metering>>;

/// `POST /v1/consumption`, rate limited per IP like `/v1/usage`.
pub fn public_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/consumption", post(consumption))
        .limited_per_ip(state)
}

/// `GET /v1/admin/licenses/{id}/quotas/{feature}`.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/v1/admin/licenses/{id}/quotas/{feature}", get(usage))
}

#[utoipa::path(
    post,
    path = "/v1/consumption",
    tag = "public",
    request_body = ConsumptionRequest,
    responses(
        (status = 200, body = ConsumptionView, description = "Counted (or, for a retry, counted before: `duplicate`)"),
        (status = "4XX", body = ErrorBody, description = "JSON error: 409 `duplicate_sequence`, 422 `unknown_feature`, `invalid_amount`, `invalid_sequence`; nothing counted")
    )
)]
/// An instance reports what it consumed of metered features since its
/// last report; counted once per (instance, seq).
async fn consumption(
    State(svc): Svc,
    ApiJson(req): ApiJson<ConsumptionRequest>,
) -> Result<Json<ConsumptionView>, ApiError> {
    Ok(Json(svc.report_consumption(req).await?))
}

/// Query of `GET /v1/admin/licenses/{id}/quotas/{feature}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PeriodsQuery {
    /// How many recent periods to list (default 12, at most 1000).
    periods: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/{id}/quotas/{feature}",
    tag = "admin",
    params(
        ("id" = String, Path, description = "License id (lic_…)"),
        ("feature" = String, Path, description = "A metered feature of the license"),
        PeriodsQuery
    ),
    responses((status = 200, body = QuotaUsageView), AdminErrors),
    description = "A metered feature's quota, its use in the current period across every instance, and its recent periods."
)]
async fn usage(
    State(svc): Svc,
    _: Admin,
    ApiPath((id, feature)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PeriodsQuery>,
) -> Result<Json<QuotaUsageView>, ApiError> {
    let id = license_id(&id)?;
    Ok(Json(svc.quota_usage(&id, &feature, q.periods).await?))
}

/// The public quota route's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(consumption))]
pub struct QuotasApi;

/// The admin quota route's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(usage))]
pub struct QuotasAdminApi;
