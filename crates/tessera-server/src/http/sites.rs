//! Sites and their relays over HTTP (docs/PROTOCOL.md §26): the vendor
//! creates a site and carries its bundle to the relay, or the relay fetches
//! a newer one itself whenever a route to the authority exists.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Serialize;
use tessera_protocol::wire::{ErrorBody, RelaySyncRequest, SiteBundleFile, SiteInput, SiteView};

use super::admin::{AdminErrors, AdminSecurity};
use super::{Admin, ApiError, ApiJson, ApiPath, AppState, ratelimit::PerIp};
use crate::licenses::Sites;

/// `/v1/admin/sites…`.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/sites", post(create).get(list))
        .route("/v1/admin/sites/{site}", delete(revoke))
        .route("/v1/admin/sites/{site}/bundle", post(bundle))
}

/// `POST /v1/relay/sync`, rate limited per IP like `/v1/validate`.
pub fn public_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/relay/sync", post(sync))
        .limited_per_ip(state)
}

/// `POST /v1/admin/sites` answer: the site and its first bundle.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CreatedSite {
    site: SiteView,
    bundle: SiteBundleFile,
}

#[utoipa::path(
    post,
    path = "/v1/admin/sites",
    tag = "admin",
    request_body = SiteInput,
    responses((status = 201, body = CreatedSite), AdminErrors),
    description = "Create a site: an isolated network whose relay (its public key, from `tessera relay init`) \
                   may answer for these licenses, within the site's share of their machines, until each bundle \
                   ends (`valid_for`, 30 days by default). Answers the first bundle, for the relay's \
                   `--bundle` file. 422 `invalid_site`, 404 unknown license, 409 `site_exists`, \
                   `license_revoked`, `machines_allocated`."
)]
async fn create(
    State(sites): State<Arc<Sites>>,
    admin: Admin,
    ApiJson(input): ApiJson<SiteInput>,
) -> Result<(StatusCode, Json<CreatedSite>), ApiError> {
    let (site, bundle) = sites.create(&input).await?;
    tracing::info!(site = %site.site, actor = %admin.name, "site created by admin");
    Ok((StatusCode::CREATED, Json(CreatedSite { site, bundle })))
}

#[utoipa::path(
    get,
    path = "/v1/admin/sites",
    tag = "admin",
    responses((status = 200, body = Vec<SiteView>), AdminErrors),
    description = "Every site, with what its relay reported at its last synchronisation."
)]
async fn list(
    State(sites): State<Arc<Sites>>,
    _admin: Admin,
) -> Result<Json<Vec<SiteView>>, ApiError> {
    Ok(Json(sites.list().await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/sites/{site}/bundle",
    tag = "admin",
    params(("site" = String, Path, description = "The site's name")),
    responses((status = 200, body = SiteBundleFile), AdminErrors),
    description = "A new bundle with the licenses' terms as they are now (a renewal, a suspension), to carry \
                   to a relay with no route to the authority. 404 unknown site, 409 `site_revoked`."
)]
async fn bundle(
    State(sites): State<Arc<Sites>>,
    _admin: Admin,
    ApiPath(site): ApiPath<String>,
) -> Result<Json<SiteBundleFile>, ApiError> {
    Ok(Json(sites.bundle(&site).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/sites/{site}",
    tag = "admin",
    params(("site" = String, Path, description = "The site's name")),
    responses((status = 200, body = SiteView), AdminErrors),
    description = "Revoke a site: no new bundle is signed for it; its relay answers until the bundle it holds \
                   ends. 404 unknown site, 409 `site_revoked`."
)]
async fn revoke(
    State(sites): State<Arc<Sites>>,
    admin: Admin,
    ApiPath(site): ApiPath<String>,
) -> Result<Json<SiteView>, ApiError> {
    let view = sites.revoke(&site).await?;
    tracing::info!(site = %site, actor = %admin.name, "site revoked by admin");
    Ok(Json(view))
}

#[utoipa::path(
    post,
    path = "/v1/relay/sync",
    tag = "public",
    request_body = RelaySyncRequest,
    responses(
        (status = 200, body = SiteBundleFile, description = "A fresh bundle for the relay's site"),
        (status = "4XX", body = ErrorBody, description = "JSON error: 400 not a proof, 403 `unknown_relay` (unknown site, another key, a clock more than 5 minutes off), 409 `site_revoked`")
    )
)]
/// A relay proves it holds its site's key, reports its usage, and receives
/// a fresh bundle.
async fn sync(
    State(sites): State<Arc<Sites>>,
    ApiJson(req): ApiJson<RelaySyncRequest>,
) -> Result<Json<SiteBundleFile>, ApiError> {
    Ok(Json(sites.sync(&req).await?))
}

/// The admin routes' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(create, list, bundle, revoke))]
pub struct SitesAdminApi;

/// The relay route's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(sync))]
pub struct SitesApi;
