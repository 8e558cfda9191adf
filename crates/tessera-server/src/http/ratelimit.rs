//! Per-client-IP rate limiting for the public routes (governor, GCRA).
//!
//! Answers carry `RateLimit-Limit` and `RateLimit-Remaining`; a refused
//! request gets `429` with `Retry-After` and `RateLimit-Reset`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use super::ApiError;
use super::client::ClientKey;
use crate::error::Error;

type Limiter = RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A keyed limiter: `per_minute` requests a minute per IP, in bursts of up
/// to `per_minute`.
pub struct IpRateLimiter {
    limiter: Limiter,
    per_minute: NonZeroU32,
}

// Not derived: the limiter's state lists every client address seen.
impl std::fmt::Debug for IpRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IpRateLimiter({} per minute)", self.per_minute)
    }
}

impl IpRateLimiter {
    /// `None` when `per_minute` is 0 (limiting off).
    #[must_use]
    pub fn new(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            per_minute,
        })
    }

    /// Forget addresses whose allowance is full again (bounded memory).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// The request's client key (see [`super::client`]); the peer address when
/// the middleware that sets it did not run.
pub(crate) fn client_key(request: &Request) -> IpAddr {
    client_key_of(request.extensions())
}

/// As [`client_key`], from a request's extensions.
pub(crate) fn client_key_of(extensions: &axum::http::Extensions) -> IpAddr {
    if let Some(key) = extensions.get::<ClientKey>() {
        return key.0;
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| {
            super::client::address_key(c.0.ip())
        })
}

impl IpRateLimiter {
    /// Take one unit for `key`; `Err(seconds to wait)` past the limit.
    pub(crate) fn take(&self, key: IpAddr) -> Result<(), u64> {
        self.limiter
            .check_key(&key)
            .map(|_| ())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }
}

/// Middleware: refuse with 429 past the limit.
pub async fn limit(
    State(limiter): State<Option<Arc<IpRateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(request).await;
    };
    let key = client_key(&request);
    match limiter.limiter.check_key(&key) {
        Ok(snapshot) => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(
                "ratelimit-limit",
                HeaderValue::from(limiter.per_minute.get()),
            );
            headers.insert(
                "ratelimit-remaining",
                HeaderValue::from(snapshot.remaining_burst_capacity()),
            );
            response
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError(Error::RateLimited { retry_after_secs }).into_response();
            let headers = response.headers_mut();
            headers.insert(
                "ratelimit-limit",
                HeaderValue::from(limiter.per_minute.get()),
            );
            headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
            headers.insert("ratelimit-reset", HeaderValue::from(retry_after_secs));
            response
        }
    }
}

/// Per-IP limiting for a router's routes.
pub trait PerIp {
    /// Its routes limited per client address, or left as they are when
    /// limiting is off (`--rate-limit 0`): then no layer runs per request.
    #[must_use]
    fn limited_per_ip(self, state: &super::AppState) -> Self;
}

impl PerIp for axum::Router<super::AppState> {
    fn limited_per_ip(self, state: &super::AppState) -> Self {
        match &state.limiter {
            Some(limiter) => self.route_layer(axum::middleware::from_fn_with_state(
                Some(limiter.clone()),
                limit,
            )),
            None => self,
        }
    }
}
