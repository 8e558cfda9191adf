//! The admin API, `/v1/admin/…`: every route requires an admin key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_protocol::LicenseId;
use tessera_protocol::human::parse_duration;
use tessera_protocol::wire::{
    CustomerView, DeliveryView, ErrorBody, EventView, ExportRequest, ExtendRequest,
    IssueLicenseRequest, IssuedLicense, LicenseExport, LicenseState, LicenseView, Page,
    ReasonRequest, UsageView, WebhookInput, WebhookView,
};

use super::{Admin, ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::Limits;
use crate::error::Error;
use crate::licenses::{Changes, Metering, StateAction};
use crate::model::{self, EventFilter, Fleet, LicensePage};
use crate::webhooks::Webhooks;

/// The admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/customers", get(list_customers))
        .route("/v1/admin/licenses", get(list_licenses).post(issue))
        .route("/v1/admin/licenses/{id}", get(show))
        .route("/v1/admin/licenses/{id}/extend", post(extend))
        .route("/v1/admin/licenses/{id}/suspend", post(suspend))
        .route("/v1/admin/licenses/{id}/reinstate", post(reinstate))
        .route("/v1/admin/licenses/{id}/revoke", post(revoke))
        .route("/v1/admin/licenses/{id}/export", post(export))
        .route("/v1/admin/licenses/{id}/instances", get(instances))
        .route("/v1/admin/licenses/{id}/usage", get(usage))
        .route("/v1/admin/events", get(list_events))
        .route(
            "/v1/admin/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route("/v1/admin/webhooks/{id}", delete(remove_webhook))
        .route("/v1/admin/webhooks/{id}/deliveries", get(deliveries))
}

type Svc = State<Arc<Changes>>;
type Meter = State<Arc<Metering>>;
type Hooks = State<Arc<Webhooks>>;

/// The error answers every admin route shares (documented once).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum AdminErrors {
    /// `{"error": {code, message}}`.
    #[response(status = "4XX")]
    Error(ErrorBody),
}

/// Every admin route takes the admin key: set on each operation here, once.
pub(super) struct AdminSecurity;

impl utoipa::Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let required =
            utoipa::openapi::security::SecurityRequirement::new("admin_key", Vec::<String>::new());
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![required.clone()]);
            }
        }
    }
}

/// A license id in the path; 400 `invalid_license_id` when malformed.
pub(super) struct LicensePath(pub(super) LicenseId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LicensePath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ApiPath(text) = ApiPath::<String>::from_request_parts(parts, state).await?;
        license_id(&text).map(Self)
    }
}

pub(super) fn license_id(text: &str) -> Result<LicenseId, ApiError> {
    LicenseId::parse(text)
        .map_err(|e| ApiError(Error::bad_request("invalid_license_id", e.to_string())))
}

pub(super) fn page_size(limit: Option<u32>, limits: &Limits) -> u32 {
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

#[utoipa::path(
    get,
    path = "/v1/admin/customers",
    tag = "admin",
    responses((status = 200, body = Page<CustomerView>), AdminErrors),
    description = "List customers."
)]
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
    Ok(Json(Page::whole(items)))
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses",
    tag = "admin",
    request_body = IssueLicenseRequest,
    responses((status = 201, body = IssuedLicense), AdminErrors),
    description = "Issue a license; the token is in this answer only."
)]
async fn issue(
    State(svc): Svc,
    admin: Admin,
    ApiJson(req): ApiJson<IssueLicenseRequest>,
) -> Result<(StatusCode, Json<IssuedLicense>), ApiError> {
    let (license, token) = svc.issue(req, &admin.principal).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedLicense {
            license: license.view(svc.now()),
            token: token.expose_secret().to_owned(),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseView), AdminErrors),
    description = "One license."
)]
async fn show(
    State(svc): Svc,
    _: Admin,
    LicensePath(id): LicensePath,
) -> Result<Json<LicenseView>, ApiError> {
    let license = svc.license(&id).await?;
    Ok(Json(license.view(svc.now())))
}

/// Query of `GET /v1/admin/licenses`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LicenseListQuery {
    customer: Option<String>,
    state: Option<String>,
    /// Only this product's licenses.
    product: Option<String>,
    /// A duration such as `30d`: licenses expiring between now and then.
    expiring_within: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses",
    tag = "admin",
    params(LicenseListQuery),
    responses((status = 200, body = Page<LicenseView>), AdminErrors),
    description = "List licenses, filtered."
)]
async fn list_licenses(
    State(svc): Svc,
    State(limits): State<Limits>,
    admin: Admin,
    ApiQuery(q): ApiQuery<LicenseListQuery>,
) -> Result<Json<Page<LicenseView>>, ApiError> {
    let state = q
        .state
        .as_deref()
        .map(|s| {
            s.parse::<LicenseState>().map_err(|_| {
                ApiError(Error::bad_request(
                    "invalid_state",
                    format!("state {s:?} is not one of active, suspended, revoked"),
                ))
            })
        })
        .transpose()?;
    let now = svc.now();
    let expiring = q
        .expiring_within
        .as_deref()
        .map(|d| {
            parse_duration(d)
                .map(|d| model::ExpiryWindow::within(now, d))
                .map_err(|e| ApiError(Error::bad_request("invalid_duration", e.to_string())))
        })
        .transpose()?;
    let limit = page_size(q.limit, &limits);
    let filter = model::LicenseQuery {
        text: None,
        customer: q.customer,
        state,
        expiring,
        products: admin.principal.product_filter(q.product.as_deref()),
        page: LicensePage::After(q.cursor),
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

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/{id}/extend",
    tag = "admin",
    request_body = ExtendRequest,
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseView), AdminErrors),
    description = "Extend to a date or by a duration."
)]
async fn extend(
    State(svc): Svc,
    admin: Admin,
    LicensePath(id): LicensePath,
    ApiJson(req): ApiJson<ExtendRequest>,
) -> Result<Json<LicenseView>, ApiError> {
    let license = svc.extend(&id, req, &admin.name).await?;
    Ok(Json(license.view(svc.now())))
}

/// Suspend, reinstate or revoke: one handler, the action from the route.
async fn set_state(
    action: StateAction,
    changes: &Changes,
    admin: &Admin,
    id: &LicenseId,
    body: &Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    let req: ReasonRequest = optional_body(body)?;
    let license = changes
        .set_state(id, action, &admin.name, req.reason)
        .await?;
    Ok(Json(license.view(changes.now())))
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/{id}/suspend",
    tag = "admin",
    request_body = Option<ReasonRequest>,
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseView), AdminErrors),
    description = "Suspend (reversible)."
)]
async fn suspend(
    State(svc): Svc,
    admin: Admin,
    LicensePath(id): LicensePath,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    set_state(StateAction::Suspend, &svc, &admin, &id, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/{id}/reinstate",
    tag = "admin",
    request_body = Option<ReasonRequest>,
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseView), AdminErrors),
    description = "Reinstate a suspended license."
)]
async fn reinstate(
    State(svc): Svc,
    admin: Admin,
    LicensePath(id): LicensePath,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    set_state(StateAction::Reinstate, &svc, &admin, &id, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/{id}/revoke",
    tag = "admin",
    request_body = Option<ReasonRequest>,
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseView), AdminErrors),
    description = "Revoke (final)."
)]
async fn revoke(
    State(svc): Svc,
    admin: Admin,
    LicensePath(id): LicensePath,
    body: Bytes,
) -> Result<Json<LicenseView>, ApiError> {
    set_state(StateAction::Revoke, &svc, &admin, &id, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/licenses/{id}/export",
    tag = "admin",
    request_body = ExportRequest,
    params(("id" = String, Path, description = "License id (lic_…)")),
    responses((status = 200, body = LicenseExport), AdminErrors),
    description = "A long-lived signed document for air-gapped sites."
)]
async fn export(
    State(svc): Svc,
    admin: Admin,
    LicensePath(id): LicensePath,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Json<LicenseExport>, ApiError> {
    Ok(Json(svc.export(&id, &req.ttl, &admin.name).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/{id}/instances",
    tag = "admin",
    params(("id" = String, Path, description = "License id (lic_…)"), InstanceQuery),
    responses((status = 200, body = Fleet), AdminErrors),
    description = "The fleet view: who holds which revision. Paginated: `limit` (default 100, at most the server's page size) installations after skipping `offset`; `next_offset` names the next page."
)]
/// `GET /v1/admin/licenses/{id}/instances`: the fleet view, one page.
async fn instances(
    State(svc): Meter,
    State(limits): State<Limits>,
    _: Admin,
    LicensePath(id): LicensePath,
    ApiQuery(q): ApiQuery<InstanceQuery>,
) -> Result<Json<Fleet>, ApiError> {
    let limit = page_size(q.limit, &limits);
    Ok(Json(svc.fleet(&id, limit, q.offset.unwrap_or(0)).await?))
}

/// Query of `GET /v1/admin/licenses/{id}/instances`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct InstanceQuery {
    /// Installations per page (default 100).
    limit: Option<u32>,
    /// Installations to skip (most recently seen first).
    offset: Option<u64>,
}

/// Query of `GET /v1/admin/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    license: Option<String>,
    /// Only events of this product's licenses.
    product: Option<String>,
    /// Oldest first, after this sequence number.
    after: Option<i64>,
    /// Newest first, before this sequence number (the default order).
    before: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/events",
    tag = "admin",
    params(EventQuery),
    responses((status = 200, body = Page<EventView>), AdminErrors),
    description = "The audit log."
)]
async fn list_events(
    State(svc): Svc,
    State(limits): State<Limits>,
    admin: Admin,
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
        products: admin.principal.product_filter(q.product.as_deref()),
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

/// Query of `GET /v1/admin/licenses/{id}/usage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// Daily maxima to return (default 30, at most 366).
    days: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/licenses/{id}/usage",
    tag = "admin",
    params(("id" = String, Path, description = "License id (lic_…)"), UsageQuery),
    responses((status = 200, body = UsageView), AdminErrors),
    description = "Metering: seats in use and daily maxima."
)]
/// Metering: seats in use against the limit, and daily maxima.
async fn usage(
    State(svc): Meter,
    _: Admin,
    LicensePath(id): LicensePath,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    let days = q.days.unwrap_or(30).clamp(1, 366);
    Ok(Json(svc.usage(&id, days).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/webhooks",
    tag = "admin",
    request_body = WebhookInput,
    responses((status = 201, body = WebhookView), AdminErrors),
    description = "Add a webhook endpoint; its secret is in this answer only."
)]
/// Create a webhook endpoint; the answer holds its secret, this once.
async fn create_webhook(
    State(svc): Hooks,
    admin: Admin,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc.create_webhook(input, &admin.name).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/webhooks",
    tag = "admin",
    responses((status = 200, body = Page<WebhookView>), AdminErrors),
    description = "List webhook endpoints."
)]
async fn list_webhooks(State(svc): Hooks, _: Admin) -> Result<Json<Page<WebhookView>>, ApiError> {
    Ok(Json(Page::whole(svc.webhooks().await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/webhooks/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Webhook id (whk_…)")),
    responses((status = 204, description = "Removed"), AdminErrors),
    description = "Remove a webhook endpoint."
)]
async fn remove_webhook(
    State(svc): Hooks,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    svc.remove_webhook(&id, &admin.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/admin/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/webhooks/{id}/deliveries",
    tag = "admin",
    params(("id" = String, Path, description = "Webhook id (whk_…)"), DeliveryQuery),
    responses((status = 200, body = Page<DeliveryView>), AdminErrors),
    description = "A webhook's delivery log."
)]
/// The delivery log of a webhook, newest first.
async fn deliveries(
    State(svc): Hooks,
    State(limits): State<Limits>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    Ok(Json(Page {
        items: svc.deliveries(&id, page_size(q.limit, &limits)).await?,
        next_cursor: None,
    }))
}

/// The admin API's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&AdminSecurity), paths(
    list_customers,
    issue,
    show,
    list_licenses,
    extend,
    suspend,
    reinstate,
    revoke,
    export,
    instances,
    usage,
    list_events,
    create_webhook,
    list_webhooks,
    remove_webhook,
    deliveries
))]
pub struct AdminApi;
