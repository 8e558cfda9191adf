//! Bulk import and export (§30): `POST /v1/admin/licenses/import` (a
//! batch), `GET /v1/admin/imports/{id}` (where an import stands), `GET
//! /v1/admin/licenses/export` (every license, a page at a time).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::wire::{ExportedLicense, ImportBatch, ImportProgress, Page};

use super::admin::{AdminErrors, AdminSecurity, page_size};
use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::Limits;
use crate::licenses::Changes;

/// Largest import batch body. Ordinary rows are a few hundred bytes, so
/// the CLI's default 50,000 rows fit; it also cuts a batch at 24 MiB of
/// JSON, for rows carrying up to 8 KiB of metadata each.
pub const IMPORT_BODY_BYTES: usize = 32 << 20;

/// The routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/licenses/import",
            // The inner limit wins over the admin routes' own.
            post(import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .route("/v1/admin/licenses/export", get(export))
        .route("/v1/admin/imports/{id}", get(progress))
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/import",
    tag = "admin",
    request_body = ImportBatch,
    responses(
        (status = 200, body = ImportProgress, description = "Written (or, with dry_run, checked: `errors` lists each bad row)"),
        (status = 422, body = ImportProgress, description = "A row is bad: nothing written; `errors` lists each, with its line"),
        AdminErrors
    ),
    description = "Import one batch of licenses in one transaction with the import's progress. A batch an import already committed is not written again (a rerun resumes). Keys are kept as they are (`tsr_…` or another system's); only their hashes are stored."
)]
async fn import(
    State(changes): State<Arc<Changes>>,
    admin: Admin,
    ApiJson(batch): ApiJson<ImportBatch>,
) -> Result<(StatusCode, Json<ImportProgress>), ApiError> {
    let dry_run = batch.dry_run;
    let progress = changes.import_batch(batch, &admin.principal).await?;
    let status = if progress.errors.is_empty() || dry_run {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(progress)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/imports/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Import id")),
    responses((status = 200, body = ImportProgress), AdminErrors),
    description = "Where an import stands: the line its next batch starts at (1: nothing committed)."
)]
async fn progress(
    State(changes): State<Arc<Changes>>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ImportProgress>, ApiError> {
    Ok(Json(changes.import_state(&id).await?))
}

/// Query of `GET /v1/admin/licenses/export`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// After this license id (the previous page's `next_cursor`).
    cursor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/export",
    tag = "admin",
    params(ExportQuery),
    responses((status = 200, body = Page<ExportedLicense>), AdminErrors),
    description = "Every license as an import row (with its key's SHA-256: the authority never holds keys), oldest first. Needs the admin role."
)]
async fn export(
    State(changes): State<Arc<Changes>>,
    State(limits): State<Limits>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Json<Page<ExportedLicense>>, ApiError> {
    let limit = page_size(q.limit, &limits);
    let items = changes
        .export_page(q.cursor, limit, &admin.principal)
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|l| l.id.clone()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// The routes' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(import, progress, export))]
pub struct ImportAdminApi;
