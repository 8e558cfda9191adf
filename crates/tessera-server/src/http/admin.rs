//! The admin API, `/v1/admin/…`: every route requires an admin key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::human::parse_duration;
use tessera_protocol::wire::{
    CustomerView, EventView, ExportRequest, ExtendRequest, IssueLicenseRequest, IssuedLicense,
    LicenseExport, LicenseState, LicenseView, Page, PolicyInput, PolicyView, ReasonRequest,
};
use tessera_protocol::{LicenseId, Timestamp};

use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::Limits;
use crate::error::Error;
use crate::licenses::LicenseService;
use crate::model::{EventFilter, Fleet, LicenseFilter};

/// The admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/policies", get(list_policies).post(create_policy))
        .route("/v1/admin/customers", get(list_customers))
        .route("/v1/admin/licenses", get(list_licenses).post(issue))
        .route("/v1/admin/licenses/{id}", get(show))
        .route("/v1/admin/licenses/{id}/extend", post(extend))
        .route("/v1/admin/licenses/{id}/suspend", post(suspend))
        .route("/v1/admin/licenses/{id}/reinstate", post(reinstate))
        .route("/v1/admin/licenses/{id}/revoke", post(revoke))
        .route("/v1/admin/licenses/{id}/export", post(export))
        .route("/v1/admin/licenses/{id}/instances", get(instances))
        .route("/v1/admin/events", get(list_events))
}

type Svc = State<Arc<LicenseService>>;

fn license_id(text: &str) -> Result<LicenseId, ApiError> {
    LicenseId::parse(text)
        .map_err(|e| ApiError(Error::bad_request("invalid_license_id", e.to_string())))
}

fn page_size(limit: Option<u32>, limits: &Limits) -> u32 {
    limit.unwrap_or(100).clamp(1, limits.max_page_size)
}

/// An optional JSON body: empty means the default.
fn optional_body<T: Default + for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::bad_request("invalid_json", e.to_string())))
}

async fn create_policy(
    State(svc): Svc,
    admin: Admin,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let policy = svc.create_policy(input, &admin.name).await?;
    Ok((StatusCode::CREATED, Json(policy.view())))
}

async fn list_policies(State(svc): Svc, _: Admin) -> Result<Json<Page<PolicyView>>, ApiError> {
    let items = svc
        .policies()
        .await?
        .iter()
        .map(crate::model::Policy::view)
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

async fn list_customers(State(svc): Svc, _: Admin) -> Result<Json<Page<CustomerView>>, ApiError> {
    let items = svc
        .customers()
        .await?
        .into_iter()
        .map(|c| CustomerView {
            id: c.id,
            name: c.name,
            email: c.email,
            created_at: c.created_at,
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

async fn issue(
    State(svc): Svc,
    admin: Admin,
    ApiJson(req): ApiJson<IssueLicenseRequest>,
) -> Result<(StatusCode, Json<IssuedLicense>), ApiError> {
    let (license, token) = svc.issue(req, &admin.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedLicense {
            license: license.view(svc.now()),
            token: token.expose_secret().to_owned(),
        }),
    ))
}

async fn show(
    State(svc): Svc,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LicenseView>, ApiError> {
    let license = svc.license(&license_id(&id)?).await?;
    Ok(Json(license.view(svc.now())))
}

/// Query of `GET /v1/admin/licenses`.
#[derive(Debug, Deserialize)]
struct LicenseQuery {
    customer: Option<String>,
    state: Option<String>,
    /// A duration such as `30d`: licenses expiring between now and then.
    expiring_within: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_licenses(
    State(svc): Svc,
    State(limits): State<Limits>,
    _: Admin,
    ApiQuery(q): ApiQuery<LicenseQuery>,
) -> Result<Json<Page<LicenseView>>, ApiError> {
    let state = q
        .state
        .as_deref()
        .map(|s| {
            LicenseState::parse(s).ok_or_else(|| {
                ApiError(Error::bad_request(
                    "invalid_state",
                    format!("state {s:?} is not one of active, suspended, revoked"),
                ))
            })
        })
        .transpose()?;
    let now = svc.now();
    let expiring_before: Option<Timestamp> = q
        .expiring_within
        .as_deref()
        .map(|d| {
            parse_duration(d)
                .map(|d| now + d)
                .map_err(|e| ApiError(Error::bad_request("invalid_duration", e.to_string())))
        })
        .transpose()?;
    let limit = page_size(q.limit, &limits);
    let filter = LicenseFilter {
        customer: q.customer,
        state,
        expiring_before,
        not_before: expiring_before.map(|_| now),
        after: q.cursor,
        limit,
    };
    let licenses = svc.licenses(&filter).await?;
    let next_cursor = (licenses.len() == limit as usize)
        .then(|| licenses.last().map(|l| l.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: licenses.iter().map(|l| l.view(now)).collect(),
        next_cursor,
    }))
}

async fn extend(
    State(svc): Svc,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ExtendRequest>,
) -> Result<Json<LicenseView>, ApiError> {
    let license = svc.extend(&license_id(&id)?, req, &admin.name).await?;
    Ok(Json(license.view(svc.now())))
}

async fn suspend(
    State(svc): Svc,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    let req: ReasonRequest = optional_body(&body)?;
    let license = svc
        .suspend(&license_id(&id)?, &admin.name, req.reason)
        .await?;
    Ok(Json(license.view(svc.now())))
}

async fn reinstate(
    State(svc): Svc,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    let req: ReasonRequest = optional_body(&body)?;
    let license = svc
        .reinstate(&license_id(&id)?, &admin.name, req.reason)
        .await?;
    Ok(Json(license.view(svc.now())))
}

async fn revoke(
    State(svc): Svc,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    let req: ReasonRequest = optional_body(&body)?;
    let license = svc
        .revoke(&license_id(&id)?, &admin.name, req.reason)
        .await?;
    Ok(Json(license.view(svc.now())))
}

async fn export(
    State(svc): Svc,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Json<LicenseExport>, ApiError> {
    Ok(Json(
        svc.export(&license_id(&id)?, &req.ttl, &admin.name).await?,
    ))
}

/// `GET /v1/admin/licenses/{id}/instances`: the fleet view.
async fn instances(
    State(svc): Svc,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Fleet>, ApiError> {
    Ok(Json(svc.fleet(&license_id(&id)?).await?))
}

/// Query of `GET /v1/admin/events`.
#[derive(Debug, Deserialize)]
struct EventQuery {
    license: Option<String>,
    /// Oldest first, after this sequence number.
    after: Option<i64>,
    /// Newest first, before this sequence number (the default order).
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list_events(
    State(svc): Svc,
    State(limits): State<Limits>,
    _: Admin,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Page<EventView>>, ApiError> {
    if q.after.is_some() && q.before.is_some() {
        return Err(ApiError(Error::bad_request(
            "conflicting_fields",
            "give at most one of after and before",
        )));
    }
    let limit = page_size(q.limit, &limits);
    let filter = EventFilter {
        license: q.license.as_deref().map(license_id).transpose()?,
        after: q.after,
        before: q.before,
        limit,
    };
    let items = svc.events(&filter).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}
