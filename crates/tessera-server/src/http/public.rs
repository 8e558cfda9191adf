//! The public API: what licensed products call.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use std::sync::Arc;
use tessera_protocol::wire::{KeyInfo, KeysResponse, ValidateRequest};

use super::{ApiError, ApiJson, AppState, ratelimit};
use crate::licenses::LicenseService;

/// `/v1/validate` (rate limited per IP) and `/v1/keys`.
pub fn router(state: AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/v1/validate", post(validate))
        .route_layer(middleware::from_fn_with_state(
            state.limiter.clone(),
            ratelimit::limit,
        ));
    Router::new().merge(limited).route("/v1/keys", get(keys))
}

/// A signed status document for any well-formed token, known or not.
async fn validate(
    State(licenses): State<Arc<LicenseService>>,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Response, ApiError> {
    let signed = licenses.validate(req).await?;
    // The answer's JSON was encoded when the document was signed.
    Ok(([(CONTENT_TYPE, "application/json")], signed.body.clone()).into_response())
}

/// The public keys documents are signed with.
async fn keys(State(licenses): State<Arc<LicenseService>>) -> Json<KeysResponse> {
    let key = licenses.signer().public_key();
    Json(KeysResponse {
        keys: vec![KeyInfo {
            kid: key.kid().to_string(),
            alg: "v4.public".into(),
            public_key: key.to_paserk(),
        }],
    })
}
