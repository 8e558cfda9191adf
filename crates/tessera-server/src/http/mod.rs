//! HTTP: one router per API area, assembled here.
//!
//! - [`public`]: what licensed products call (`/v1/validate`, `/v1/keys`);
//! - [`admin`]: the vendor's admin API (`/v1/admin/…`, admin key required);
//! - [`backstage`]: health, readiness and metrics for operators;
//! - [`console`]: the admin web console (pages at `/`);
//! - [`openapi`]: `/openapi.json`, assembled from the handlers' annotations.
//!
//! Handlers hold no SQL and no business rules: they parse, call the one
//! component they need (see [`crate::licenses`]), and map errors with
//! [`ApiError`].

pub mod access;
pub mod admin;
pub mod backstage;
pub mod client;
pub mod console;
mod error;
mod extract;
pub mod import;
pub mod keygen;
mod lean_watch;
pub mod machines;
pub mod offline;
pub mod openapi;
pub mod policies;
pub mod public;
pub mod quotas;
pub mod ratelimit;
pub mod serve;
pub mod sites;
pub mod trials;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::Request;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use extract::{Admin, ApiJson, ApiPath, ApiQuery, AuthFailures};
pub use watch::WatchSlots;

use crate::Limits;
use crate::auth::AdminAuth;
use crate::licenses::{Changes, Machines, Metering, Push, Validator};
use ratelimit::IpRateLimiter;

/// Declares [`Parts`] and a `FromRef` for each of its fields, from one list:
/// a handler's `State<T>` clones only its part.
macro_rules! parts {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// Everything handlers may need; each takes its slice via `FromRef`.
        pub struct Parts {
            $($(#[$doc])* pub $field: $ty,)*
        }

        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        })*
    };
}

parts! {
    /// Policies, issuing, changes.
    changes: Arc<Changes>,
    /// Validation.
    validator: Arc<Validator>,
    /// Push and change streams.
    push: Arc<Push>,
    /// Metering and the fleet.
    metering: Arc<Metering>,
    /// Machines: activations and leases.
    machines: Arc<Machines>,
    /// The Keygen-compatible API.
    keygen: Arc<crate::keygen::Keygen>,
    /// Trials.
    trials: Arc<crate::licenses::Trials>,
    /// Sites and their relays.
    sites: Arc<crate::licenses::Sites>,
    /// Metrics.
    metrics: Arc<crate::metrics::Metrics>,
    /// Webhook endpoints.
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// The signer (its public keys for `/v1/keys`).
    signer: Arc<crate::signer::DocumentSigner>,
    /// The store (for readiness).
    store: Arc<crate::store::Store>,
    /// The clock (pages show "now").
    clock: Arc<dyn crate::clock::Clock>,
    /// Admin key check.
    admin: Arc<AdminAuth>,
    /// Console sessions.
    sessions: Arc<crate::auth::Sessions>,
    /// Per-IP limiter for validation (`None` = off).
    limiter: Option<Arc<IpRateLimiter>>,
    /// Per-IP limiter of failed admin authentications.
    auth_failures: AuthFailures,
    /// Open change streams per client address.
    watch_slots: Arc<WatchSlots>,
    /// Proxies whose forwarding headers name the client.
    trusted_proxies: Arc<client::TrustedProxies>,
    /// Limits.
    limits: Limits,
    /// Cancelled when the server begins to shut down: ends change streams,
    /// which would otherwise keep the graceful shutdown waiting forever.
    shutdown: CancellationToken,
}

/// The app state: one `Arc`, so the per-request clone axum makes of it is
/// one reference count, however many parts there are.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    /// The state holding `parts`.
    #[must_use]
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let public = public::router(state.clone())
        .merge(machines::public_router(&state))
        .merge(quotas::public_router(&state))
        .merge(trials::public_router(&state))
        .merge(sites::public_router(&state))
        .merge(keygen::router(&state))
        .layer(DefaultBodyLimit::max(state.limits.public_body_bytes));
    let admin = admin::router()
        .merge(machines::admin_router())
        .merge(quotas::admin_router())
        .merge(policies::admin_router())
        .merge(offline::admin_router())
        .merge(sites::admin_router())
        .merge(access::admin_router())
        .merge(import::admin_router())
        .layer(DefaultBodyLimit::max(state.limits.admin_body_bytes));
    let streams = public::streams(state.clone());
    Router::new()
        .merge(public)
        .merge(admin)
        .merge(backstage::router())
        .merge(console::router(&state))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            record_latency,
        ))
        .with_state(state.clone())
        .layer(
            // Spans carry method and path only: tokens never travel in URLs,
            // and headers (Authorization) are not recorded.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
        .merge(streams.with_state(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            client::client_address,
        ))
}

/// Latency by route pattern (`MatchedPath`, so ids never become label
/// values) and method. A route layer: unmatched paths are not recorded.
async fn record_latency(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Both clones are cheap: `MatchedPath` is an `Arc<str>`, a standard
    // method a plain value.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    if let Some(route) = route {
        metrics.http_request(route.as_str(), method.as_str(), started.elapsed());
    }
    response
}

/// Grace given to in-flight requests at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
