//! The agent's HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tessera_client::{Client, Error};

use super::page;
use super::view::StatusView;

#[derive(Clone)]
struct AgentState {
    client: Client,
    /// Host header values accepted (DNS-rebinding guard); empty = any.
    hosts: Arc<Vec<String>>,
}

pub fn router(client: Client, addr: SocketAddr) -> Router {
    let hosts = if addr.ip().is_loopback() {
        let port = addr.port();
        vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            addr.to_string(),
        ]
    } else {
        Vec::new()
    };
    let state = AgentState {
        client,
        hosts: Arc::new(hosts),
    };
    Router::new()
        .route("/", get(status_page))
        .route("/v1/status", get(status))
        .route("/v1/refresh", post(refresh))
        .route("/v1/activate", post(activate))
        .route("/v1/usage", post(usage))
        .route("/v1/consume", post(consume))
        .route("/v1/deactivate", post(deactivate))
        .route("/v1/offline/request", post(offline_request))
        .route("/v1/offline/import", post(offline_import))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// Only requests addressed to this agent (Host), and no cross-site posts
/// (Origin): a web page elsewhere must not be able to change the license.
async fn guard(State(state): State<AgentState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !state.hosts.is_empty() && !state.hosts.iter().any(|h| h == host) {
        return error(
            StatusCode::FORBIDDEN,
            "wrong_host",
            "requests must be addressed to the agent's own address",
        );
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) {
        let same = origin.strip_prefix("http://").is_some_and(|o| o == host);
        if !same {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "cross-origin requests are refused",
            );
        }
    }
    if request.method() == axum::http::Method::POST
        && !headers
            .get(CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send Content-Type: application/json",
        );
    }
    let mut response = next.run(request).await;
    // No page of the agent may be framed: a hostile page could otherwise
    // overlay it and trick a click on "Refresh" or "Activate".
    let h = response.headers_mut();
    h.insert(
        "x-frame-options",
        axum::http::HeaderValue::from_static("DENY"),
    );
    if !h.contains_key("content-security-policy") {
        h.insert(
            "content-security-policy",
            axum::http::HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    h.insert(
        "x-content-type-options",
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

async fn status(State(s): State<AgentState>) -> Json<StatusView> {
    Json(StatusView::of(&s.client))
}

fn client_error(e: &Error) -> Response {
    let (status, code) = match e {
        Error::InvalidToken(_) => (StatusCode::BAD_REQUEST, "invalid_token"),
        Error::NoToken => (StatusCode::CONFLICT, "no_token"),
        Error::NoServer => (StatusCode::CONFLICT, "offline_mode"),
        Error::Rollback { .. } => (StatusCode::BAD_GATEWAY, "rollback"),
        Error::Verification(_) => (StatusCode::BAD_GATEWAY, "verification_failed"),
        Error::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
        Error::UnknownQuota(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_feature"),
        Error::InvalidAmount(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"),
        Error::NotGranted(_) => (StatusCode::FORBIDDEN, "not_granted"),
        Error::QuotaExhausted { .. } => (StatusCode::CONFLICT, "quota_exhausted"),
        _ => (StatusCode::BAD_GATEWAY, "authority_unreachable"),
    };
    error(status, code, e.to_string())
}

/// The 400 for a body that is not the JSON expected.
fn bad_json(expected: &str) -> Response {
    let message = format!("expected {expected}");
    error(StatusCode::BAD_REQUEST, "invalid_json", message)
}

/// A round trip's answer: the status after it, or what went wrong.
fn answer<T>(s: &AgentState, result: Result<T, Error>) -> Response {
    match result {
        Ok(_) => Json(StatusView::of(&s.client)).into_response(),
        Err(e) => client_error(&e),
    }
}

async fn refresh(State(s): State<AgentState>) -> Response {
    answer(&s, s.client.refresh().await)
}

#[derive(Debug, Deserialize)]
struct ActivateRequest {
    token: String,
}

async fn activate(State(s): State<AgentState>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<ActivateRequest>(&body) else {
        return bad_json(r#"{"token": "tsr_…"}"#);
    };
    answer(&s, s.client.activate(&req.token).await)
}

/// Give this machine's place back (a license that counts machines).
async fn deactivate(State(s): State<AgentState>) -> Response {
    answer(&s, s.client.deactivate().await)
}

/// Offline activation, step 1 (docs/PROTOCOL.md §25): this machine's
/// request, `{request, code}` (the file's text, and its code to read over
/// the phone).
async fn offline_request(State(s): State<AgentState>) -> Response {
    match s.client.offline_request() {
        Ok(text) => {
            let code = text.lines().last().unwrap_or_default().to_owned();
            Json(json!({"request": text, "code": code})).into_response()
        }
        Err(e) => client_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct ImportRequest {
    /// The response file's content (its JSON, or the bare document).
    response: serde_json::Value,
}

/// Offline activation, step 3: import the response (or a renewal).
async fn offline_import(State(s): State<AgentState>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<ImportRequest>(&body) else {
        return bad_json(
            r#"{"response": <the response file's JSON, or the document as a string>}"#,
        );
    };
    let bytes = match req.response {
        serde_json::Value::String(text) => text.into_bytes(),
        other => other.to_string().into_bytes(),
    };
    answer(&s, s.client.import_offline(&bytes).await)
}

#[derive(Debug, Deserialize)]
struct UsageRequest {
    users: u32,
}

/// The product tells the agent its user count; the agent reports it to
/// the authority now and every usage interval.
async fn usage(State(s): State<AgentState>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<UsageRequest>(&body) else {
        return bad_json(r#"{"users": <whole number>}"#);
    };
    s.client.set_users(req.users);
    StatusCode::ACCEPTED.into_response()
}

#[derive(Deserialize)]
struct ConsumeRequest {
    feature: String,
    amount: u64,
}

/// The product consumes some of a metered feature (§22): counted at once,
/// reported to the authority in batches. 200 `{feature, remaining}`; 409
/// `quota_exhausted` (nothing counted), 422 `unknown_feature` /
/// `invalid_amount`, 403 `not_granted`.
async fn consume(State(s): State<AgentState>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<ConsumeRequest>(&body) else {
        return bad_json(r#"{"feature": "<name>", "amount": <whole number, 0 to 2^53>}"#);
    };
    match s.client.consume(&req.feature, req.amount) {
        Ok(remaining) => {
            Json(json!({"feature": req.feature, "remaining": remaining})).into_response()
        }
        Err(e) => client_error(&e),
    }
}

async fn status_page(State(s): State<AgentState>) -> maud::Markup {
    page::render(&StatusView::of(&s.client))
}

/// Prometheus text: five gauges computed from the verdict at scrape time.
async fn metrics(State(s): State<AgentState>) -> impl IntoResponse {
    let v = StatusView::of(&s.client);
    let now = Utc::now();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: Option<i64>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        if let Some(value) = value {
            out.push_str(&format!("{name} {value}\n"));
        }
    };
    gauge(
        "tessera_license_valid",
        "1 when the license is valid now.",
        Some(i64::from(v.valid)),
    );
    gauge(
        "tessera_license_expires_in_seconds",
        "Seconds until the license expires (negative once expired; absent when perpetual).",
        v.expires_at.map(|t| (t - now).num_seconds()),
    );
    gauge(
        "tessera_license_last_verified_age_seconds",
        "Seconds since the agent last accepted a verified answer.",
        v.last_verified_at.map(|t| (now - t).num_seconds()),
    );
    gauge(
        "tessera_license_revision",
        "Revision of the held status document.",
        v.revision.and_then(|r| i64::try_from(r).ok()),
    );
    gauge(
        "tessera_license_offline",
        "1 when the authority cannot be reached.",
        Some(i64::from(v.offline_since.is_some())),
    );
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
}
