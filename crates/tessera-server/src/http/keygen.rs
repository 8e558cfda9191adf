//! Keygen's license and machine API (docs/KEYGEN.md) under both URL forms
//! Keygen clients use: `/v1/accounts/{account}/…` and, as for a custom
//! domain, `/v1/…`. Handlers call [`crate::keygen::Keygen`]; one
//! middleware ([`envelope`]) turns every error into Keygen's error document
//! and signs every answer as Keygen signs it (`Date`, `Digest` and
//! `Keygen-Signature` over the request target, the `Host` header as the
//! client sent it, the date and the digest).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Digest;

use super::{ApiError, ApiPath, AppState, ratelimit::PerIp};
use crate::error::Error;
use crate::keygen::Keygen;
use crate::keygen::shapes::{MachineDocument, MetaDocument, ValidateKeyMeta, ValidateMeta};
use crate::model::License;

/// Keygen's media type.
const JSONAPI: &str = "application/vnd.api+json";
/// The largest answer signed (Keygen's are a few KiB).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The routes, under both prefixes, rate limited per IP like `/v1/validate`.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/v1", "/v1/accounts/{account}"] {
        router = router
            .route(
                &format!("{prefix}/licenses/actions/validate-key"),
                post(validate_key),
            )
            .route(
                &format!("{prefix}/licenses/{{id}}/actions/validate"),
                post(validate).get(validate),
            )
            .route(
                &format!("{prefix}/licenses/{{id}}/entitlements"),
                get(entitlements),
            )
            .route(&format!("{prefix}/me"), get(me))
            .route(&format!("{prefix}/machines"), post(activate))
            .route(
                &format!("{prefix}/machines/{{id}}"),
                get(machine).delete(deactivate),
            )
            .route(
                &format!("{prefix}/machines/{{id}}/actions/ping"),
                post(ping),
            );
    }
    router
        .limited_per_ip(state)
        .route_layer(middleware::from_fn_with_state(state.clone(), envelope))
}

/// `{id}` of a route (the account, where the path has one, is checked by
/// [`envelope`]).
#[derive(Debug, serde::Deserialize)]
struct IdParam {
    id: String,
}

/// Why a Keygen request failed: Tessera's error, or a refusal Tessera's
/// errors do not name. Either answers a Tessera-shaped error document,
/// which [`envelope`] turns into Keygen's.
enum Fail {
    Api(Error),
    Refused(StatusCode, &'static str, String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Api(e)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::Api(e) => ApiError(e).into_response(),
            Fail::Refused(status, code, message) => {
                let body = json!({"error": {"code": code, "message": message}});
                (status, Json(body)).into_response()
            }
        }
    }
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> Fail {
    Fail::Refused(status, code, message.to_owned())
}

/// The license of `Authorization: License <key>`, with the key as sent.
struct LicenseAuth {
    key: String,
    license: Arc<License>,
}

impl FromRequestParts<AppState> for LicenseAuth {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Fail> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        let Some(header) = header else {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "token_missing",
                "You must be authenticated to complete the request",
            ));
        };
        let Some(key) = header.strip_prefix("License ").map(str::trim) else {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "token_invalid",
                "authentication scheme must be License (Authorization: License <key>)",
            ));
        };
        match state.keygen.license(key).await {
            Ok(Some(license)) => Ok(Self {
                key: key.to_owned(),
                license,
            }),
            Ok(None) => Err(refusal(
                StatusCode::UNAUTHORIZED,
                "license_invalid",
                "license key is invalid",
            )),
            Err(e) => Err(Fail::Api(e)),
        }
    }
}

/// The body as `T`: JSON:API (or plain JSON) only, every field known.
fn document<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, Fail> {
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !matches!(media, Some(JSONAPI | "application/json")) {
        return Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type_invalid",
            "the body must be a JSON:API document (Content-Type: application/vnd.api+json)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.to_string().starts_with("unknown field") {
            "parameter_unpermitted"
        } else {
            "parameter_invalid"
        };
        Fail::Refused(StatusCode::BAD_REQUEST, code, e.to_string())
    })
}

/// `POST …/licenses/actions/validate-key`: always 200 for an outcome,
/// `NOT_FOUND` included.
async fn validate_key(
    State(keygen): State<Arc<Keygen>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Fail> {
    let doc: MetaDocument<ValidateKeyMeta> = document(&headers, &body)?;
    let meta = doc.meta;
    if meta.encrypted == Some(true) || meta.legacy_encrypted == Some(true) {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "legacy encrypted license keys are not served",
        ));
    }
    let license = keygen.license(&meta.key).await?;
    let answer = (keygen)
        .validation(license, &meta.key, meta.nonce, meta.scope.as_ref())
        .await?;
    Ok(Json(answer).into_response())
}

/// `POST …/licenses/{id}/actions/validate` (also `GET`, as Keygen's quick
/// validation), authenticated by the license's key.
async fn validate(
    State(keygen): State<Arc<Keygen>>,
    ApiPath(path): ApiPath<IdParam>,
    auth: LicenseAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Fail> {
    own(&auth, &path.id)?;
    let meta = if body.iter().all(u8::is_ascii_whitespace) {
        ValidateMeta::default()
    } else {
        document::<MetaDocument<ValidateMeta>>(&headers, &body)?.meta
    };
    let answer = (keygen)
        .validation(
            Some(auth.license),
            &auth.key,
            meta.nonce,
            meta.scope.as_ref(),
        )
        .await?;
    Ok(Json(answer).into_response())
}

/// 404 unless `id` is the authenticated license's.
fn own(auth: &LicenseAuth, id: &str) -> Result<(), Fail> {
    if auth.license.id.as_str() == id {
        Ok(())
    } else {
        Err(Fail::Api(Error::NotFound {
            what: "license",
            id: id.to_owned(),
        }))
    }
}

/// `GET …/me`: the authenticated license.
async fn me(State(keygen): State<Arc<Keygen>>, auth: LicenseAuth) -> Result<Response, ApiError> {
    let held = keygen.holding(&auth.license).await?;
    let shapes = keygen.shapes();
    let data = shapes.license(&auth.license, &auth.key, held, keygen.now());
    Ok(Json(json!({"data": data})).into_response())
}

/// `GET …/licenses/{id}/entitlements`.
async fn entitlements(
    State(keygen): State<Arc<Keygen>>,
    ApiPath(path): ApiPath<IdParam>,
    auth: LicenseAuth,
) -> Result<Response, Fail> {
    own(&auth, &path.id)?;
    let shapes = keygen.shapes();
    Ok(Json(shapes.entitlements(&auth.license)).into_response())
}

/// `POST …/machines`: activate (201 with the machine).
async fn activate(
    State(keygen): State<Arc<Keygen>>,
    auth: LicenseAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Fail> {
    let doc: MachineDocument = document(&headers, &body)?;
    if doc.data.kind != "machines" {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "data.type must be machines",
        ));
    }
    if let Some(id) = doc.license_id() {
        own(&auth, id)?;
    }
    let fingerprint = doc.data.attributes.fingerprint.clone();
    let machine = keygen
        .activate(&auth.key, &auth.license, doc.data.attributes)
        .await?;
    let shapes = keygen.shapes();
    let data = shapes.machine(&machine, &auth.license, Some(&fingerprint));
    Ok((StatusCode::CREATED, Json(json!({"data": data}))).into_response())
}

/// `GET …/machines/{id}`.
async fn machine(
    State(keygen): State<Arc<Keygen>>,
    ApiPath(path): ApiPath<IdParam>,
    auth: LicenseAuth,
) -> Result<Response, ApiError> {
    let m = keygen.machine(&auth.license, &path.id).await?;
    let shapes = keygen.shapes();
    Ok(Json(json!({"data": shapes.machine(&m, &auth.license, None)})).into_response())
}

/// `DELETE …/machines/{id}`: deactivate (204).
async fn deactivate(
    State(keygen): State<Arc<Keygen>>,
    ApiPath(path): ApiPath<IdParam>,
    auth: LicenseAuth,
) -> Result<StatusCode, ApiError> {
    keygen.deactivate(&auth.license, &path.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/machines/{id}/actions/ping`: a heartbeat.
async fn ping(
    State(keygen): State<Arc<Keygen>>,
    ApiPath(path): ApiPath<IdParam>,
    auth: LicenseAuth,
) -> Result<Response, ApiError> {
    let m = keygen.ping(&auth.license, &path.id).await?;
    let shapes = keygen.shapes();
    Ok(Json(json!({"data": shapes.machine(&m, &auth.license, None)})).into_response())
}

/// Keygen's title for an error status.
fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Access denied",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict",
        413 => "Payload too large",
        415 => "Unsupported media type",
        422 => "Unprocessable resource",
        429 => "Too many requests",
        503 => "Service unavailable",
        _ => "Internal server error",
    }
}

/// Keygen's error document for a Tessera one.
fn keygen_error(status: StatusCode, tessera: &Value) -> Value {
    let code = tessera["error"]["code"]
        .as_str()
        .unwrap_or("internal")
        .to_ascii_uppercase();
    let detail = tessera["error"]["message"].as_str().unwrap_or_default();
    let mut error = json!({"title": title(status), "detail": detail, "code": code});
    if code == "FINGERPRINT_TAKEN" {
        error["source"] = json!({"pointer": "/data/attributes/fingerprint"});
    }
    json!({"meta": {"id": uuid::Uuid::now_v7().to_string()}, "errors": [error]})
}

/// Around every Keygen route: the account of `/v1/accounts/{account}/…`
/// checked, errors as Keygen's documents, every answer signed.
async fn envelope(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_ascii_lowercase();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    // The Host header as the client sent it (the signature covers it);
    // HTTP/1.1 requires one.
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let account = state.keygen.account();
    let wrong_account = req
        .uri()
        .path()
        .strip_prefix("/v1/accounts/")
        .and_then(|rest| rest.split('/').next())
        .filter(|a| *a != account)
        .map(str::to_owned);
    let response = match wrong_account {
        Some(a) => refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("The requested account '{a}' was not found"),
        )
        .into_response(),
        None => next.run(req).await,
    };
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let bytes = if parts.status.is_client_error() || parts.status.is_server_error() {
        let tessera: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Bytes::from(keygen_error(parts.status, &tessera).to_string())
    } else {
        bytes
    };
    if !bytes.is_empty() {
        parts.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.api+json; charset=utf-8"),
        );
    }
    let date = state
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let digest = format!("sha-256={}", BASE64.encode(sha2::Sha256::digest(&bytes)));
    let signing = format!(
        "(request-target): {method} {target}\nhost: {host}\ndate: {date}\ndigest: {digest}"
    );
    let signature = BASE64.encode(state.signer.sign_raw(signing.as_bytes()));
    let header = format!(
        "keyid=\"{account}\", algorithm=\"ed25519\", signature=\"{signature}\", headers=\"(request-target) host date digest\""
    );
    for (name, value) in [
        ("date", date.clone()),
        ("keygen-date", date),
        ("digest", digest.clone()),
        ("keygen-digest", digest),
        ("keygen-signature", header),
        ("keygen-account-id", account.to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, v);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}
