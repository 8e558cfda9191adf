//! Operator endpoints: liveness, readiness, metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use crate::licenses::Metering;
use crate::metrics::Metrics;
use crate::store::Store;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// This API, described (OpenAPI 3.1), generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, body = Object, description = "The OpenAPI document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}

/// The operator endpoints' part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi))]
pub struct BackstageApi;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String,
               description = "Prometheus text (OpenMetrics when asked for)"))
)]
/// Prometheus exposition (OpenMetrics text).
async fn metrics(
    State(metering): State<Arc<Metering>>,
    State(registry): State<Arc<Metrics>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    // Gauges read from the database are refreshed per scrape; if that
    // fails the last values are served and the failure is logged.
    if let Err(e) = metering.refresh_gauges().await {
        tracing::warn!(error = %e, "cannot refresh license gauges");
    }
    // Prometheus asks for OpenMetrics; everything else (promtool, curl,
    // older scrapers) gets the classic text format.
    let open_metrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if open_metrics {
        (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            registry.encode(),
        )
    } else {
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            registry.encode_prometheus_text(),
        )
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Object, description = "The process is up")))]
/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Object, description = "Ready"),
              (status = 503, body = Object, description = "The database does not answer")))]
/// The process can serve: its database answers.
async fn readyz(State(store): State<Arc<Store>>) -> (StatusCode, Json<Value>) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database" })),
            )
        }
    }
}
