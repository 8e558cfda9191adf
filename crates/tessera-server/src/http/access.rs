//! Products and admin keys (§28, §29): `/v1/admin/products` and
//! `/v1/admin/keys`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use tessera_protocol::wire::{
    AdminKeyInput, AdminKeyView, CreatedAdminKey, Page, ProductInput, ProductView,
};

use super::admin::{AdminErrors, AdminSecurity};
use super::{Admin, ApiError, ApiJson, ApiPath, AppState};
use crate::auth::AdminAuth;
use crate::licenses::Changes;

/// The routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/products",
            get(list_products).post(create_product),
        )
        .route("/v1/admin/keys", get(list_keys).post(create_key))
        .route("/v1/admin/keys/{name}", delete(revoke_key))
}

#[utoipa::path(
    post,
    path = "/v1/admin/products",
    tag = "admin",
    request_body = ProductInput,
    responses((status = 201, body = ProductView), AdminErrors),
    description = "Create a product. Its name is fixed for ever: documents carry it, and clients configured with a product refuse licenses of another (`wrong_product`)."
)]
async fn create_product(
    State(changes): State<Arc<Changes>>,
    admin: Admin,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let view = changes.create_product(input, &admin.name).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/products",
    tag = "admin",
    responses((status = 200, body = Page<ProductView>), AdminErrors),
    description = "Every product (a key limited to products sees those), with its number of licenses."
)]
async fn list_products(
    State(changes): State<Arc<Changes>>,
    admin: Admin,
) -> Result<Json<Page<ProductView>>, ApiError> {
    let items = changes
        .products()
        .await?
        .into_iter()
        .filter(|p| admin.principal.may_use_product(&p.name).is_ok())
        .collect();
    Ok(Json(Page::whole(items)))
}

#[utoipa::path(
    post,
    path = "/v1/admin/keys",
    tag = "admin",
    request_body = AdminKeyInput,
    responses((status = 201, body = CreatedAdminKey), AdminErrors),
    description = "Create an admin key with a role (`read`, `support`, `issuer`, `admin`), optionally limited to products and with an expiry. The key is in this answer only."
)]
async fn create_key(
    State(auth): State<Arc<AdminAuth>>,
    admin: Admin,
    ApiJson(input): ApiJson<AdminKeyInput>,
) -> Result<(StatusCode, Json<CreatedAdminKey>), ApiError> {
    let created = auth.create_key(input, &admin.name).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/keys",
    tag = "admin",
    responses((status = 200, body = Page<AdminKeyView>), AdminErrors),
    description = "Admin keys not revoked (never the keys themselves)."
)]
async fn list_keys(
    State(auth): State<Arc<AdminAuth>>,
    _: Admin,
) -> Result<Json<Page<AdminKeyView>>, ApiError> {
    Ok(Json(Page::whole(auth.keys().await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/keys/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "Key name")),
    responses((status = 204, description = "Revoked; its console sessions ended"), AdminErrors),
    description = "Revoke a key: refused (409 `last_admin_key`) for the last unexpired `admin` key without product limits."
)]
async fn revoke_key(
    State(auth): State<Arc<AdminAuth>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_key(&name, &admin.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    modifiers(&AdminSecurity),
    paths(create_product, list_products, create_key, list_keys, revoke_key)
)]
pub struct AccessAdminApi;
