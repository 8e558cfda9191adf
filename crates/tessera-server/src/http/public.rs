//! The public API: what licensed products call.

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tessera_protocol::wire::{
    AckRequest, ErrorBody, KeyInfo, KeysResponse, UsageRequest, UsageView, ValidateRequest,
    ValidateResponse,
};

use super::{ApiError, ApiJson, AppState, ratelimit::PerIp};
use crate::licenses::{HeldTag, Metering, Validation, Validator};
use crate::signer::DocumentSigner;

/// `/v1/validate`, `/v1/instances/ack` (rate limited per IP) and `/v1/keys`.
pub fn router(state: AppState) -> Router<AppState> {
    let limited = Router::new()
        .route("/v1/validate", post(validate))
        .route("/v1/instances/ack", post(ack))
        .route("/v1/usage", post(usage))
        .limited_per_ip(&state);
    Router::new().merge(limited).route("/v1/keys", get(keys))
}

#[utoipa::path(
    post,
    path = "/v1/validate",
    tag = "public",
    request_body = ValidateRequest,
    params(("If-None-Match" = Option<String>, Header, description = "ETag of the held document")),
    responses(
        (status = 200, body = ValidateResponse, description = "A signed status document, for every well-formed token"),
        (status = 304, description = "The held document is current"),
        (status = "4XX", body = ErrorBody, description = "JSON error")
    )
)]
/// A signed status document for any well-formed token, known or not.
/// `If-None-Match: "<rev>-<iat>"` (the `ETag` of an earlier answer) may be
/// answered `304 Not Modified`.
async fn validate(
    State(licenses): State<Arc<Validator>>,
    Held(held): Held,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Response, ApiError> {
    Ok(match licenses.validate(req, held).await? {
        Validation::Document(signed) => {
            // The answer's JSON and its ETag were made when the document
            // was signed; a reused answer only copies them.
            (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (ETAG, signed.etag.clone()),
                ],
                signed.body.clone(),
            )
                .into_response()
        }
        Validation::NotModified(tag) => {
            (StatusCode::NOT_MODIFIED, [(ETAG, tag.to_header())]).into_response()
        }
    })
}

/// The `If-None-Match` a validation carries, if it is one of ours (else
/// `None`: answered in full). Read alone: the whole `HeaderMap` would be
/// copied for it.
struct Held(Option<HeldTag>);

impl<S: Send + Sync> FromRequestParts<S> for Held {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .and_then(HeldTag::parse),
        ))
    }
}

/// `/v1/watch`, rate limited per IP. Kept apart from the request tracing
/// and panic layers: a stream lives for days and carries one frame per
/// change to thousands of watchers, so its per-frame path stays bare.
pub fn streams(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/watch", get(super::watch::watch))
        .limited_per_ip(&state)
}

#[utoipa::path(
    post,
    path = "/v1/instances/ack",
    tag = "public",
    request_body = AckRequest,
    responses((status = 204, description = "Recorded"), (status = "4XX", body = ErrorBody, description = "JSON error"))
)]
/// An instance reports the revision it holds.
async fn ack(
    State(licenses): State<Arc<Metering>>,
    ApiJson(req): ApiJson<AckRequest>,
) -> Result<StatusCode, ApiError> {
    licenses.ack(req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/usage",
    tag = "public",
    request_body = UsageRequest,
    responses((status = 200, body = UsageView), (status = "4XX", body = ErrorBody, description = "JSON error"))
)]
/// Metering: an instance reports its user count; the answer says where
/// the license stands against its seat limit.
async fn usage(
    State(licenses): State<Arc<Metering>>,
    ApiJson(req): ApiJson<UsageRequest>,
) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(licenses.report_usage(req).await?))
}

#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "public",
    responses((status = 200, body = KeysResponse))
)]
/// The public keys: the active one (signs new documents) and those retired
/// by rotations, with the time to pin them with.
async fn keys(State(signer): State<Arc<DocumentSigner>>) -> Json<KeysResponse> {
    let info = |key: &tessera_protocol::PublicKey,
                retired_at: Option<tessera_protocol::Timestamp>| KeyInfo {
        kid: key.kid().to_string(),
        alg: "v4.public".into(),
        public_key: key.to_paserk(),
        status: if retired_at.is_some() {
            "retired"
        } else {
            "active"
        }
        .into(),
        retired_at,
    };
    let mut keys = vec![info(signer.public_key(), None)];
    keys.extend(signer.retired().iter().map(|(k, at)| info(k, Some(*at))));
    Json(KeysResponse { keys })
}

/// The public API's part of `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(validate, ack, usage, keys, super::watch::watch))]
pub struct PublicApi;
