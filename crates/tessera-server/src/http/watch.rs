//! `GET /v1/watch`: server-sent events carrying each new signed document of
//! one license.
//!
//! `Authorization: Bearer <license token>` (never in the URL),
//! `Tessera-Instance: <id>`, `Last-Event-ID: <revision held>`. Events are
//! `event: status`, `id: <revision>`, `data: <document>`; a comment every
//! 15 s keeps proxies from closing the idle stream. After a revocation the
//! revoked document is sent and the stream ends. A stream also gets a fresh
//! copy of the current document at its `refresh_after`, so a client that is
//! only ever connected never runs out of offline grace. An idle stream costs
//! one parked task: nothing polls.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tessera_protocol::Status;
use tokio_util::sync::CancellationToken;

use super::ApiError;
use super::extract::bearer;
use crate::Limits;
use crate::error::Error;
use crate::licenses::{Push, Watch};

/// Header naming the instance that watches.
pub const INSTANCE_HEADER: &str = "tessera-instance";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

#[utoipa::path(
    get,
    path = "/v1/watch",
    tag = "public",
    security(("license_token" = [])),
    params(
        ("Tessera-Instance" = Option<String>, Header, description = "The watching instance's id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Revision held: the first event is skipped when it is current")
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "`event: status`, `id: <revision>`, `data: <document>`; keep-alive comments"),
        (status = "4XX", body = tessera_protocol::wire::ErrorBody, description = "JSON error"),
        (status = 503, body = tessera_protocol::wire::ErrorBody, description = "Watcher limit reached")
    )
)]
pub(super) async fn watch(
    State(licenses): State<Arc<Push>>,
    State(limits): State<Limits>,
    State(shutdown): State<CancellationToken>,
    State(slots): State<Arc<WatchSlots>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let slot = slots.take(super::ratelimit::client_key_of(&parts.extensions))?;
    let token = bearer(&parts).ok_or(ApiError(Error::Unauthorized(
        crate::error::STREAM_CREDENTIAL,
    )))?;
    let last_event_id = match header(&parts.headers, "last-event-id") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError(Error::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID is a revision number",
            ))
        })?),
        None => None,
    };
    let watch = licenses
        .open_watch(
            token,
            header(&parts.headers, INSTANCE_HEADER),
            last_event_id,
        )
        .await?;
    let stream = events(licenses, watch, slot, shutdown, limits.keep_alive);
    // Frames are encoded once per document and shared by every stream
    // (Bytes are reference-counted): a change costs each stream one write.
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// A comment line: keeps proxies and the client's read timeout content.
const KEEP_ALIVE: Bytes = Bytes::from_static(b":\n\n");

/// Open change streams per client address (IPv6 by /64).
#[derive(Debug)]
pub struct WatchSlots {
    per_ip: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open stream's place; released on drop.
struct WatchSlot {
    slots: Arc<WatchSlots>,
    key: std::net::IpAddr,
}

impl WatchSlots {
    /// At most `per_ip` open streams from one address.
    #[must_use]
    pub fn new(per_ip: usize) -> Self {
        Self {
            per_ip,
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(self: &Arc<Self>, key: std::net::IpAddr) -> Result<WatchSlot, ApiError> {
        let mut open = self.lock();
        let n = open.entry(key).or_insert(0);
        if *n >= self.per_ip {
            return Err(ApiError(Error::Unavailable {
                code: "too_many_streams",
                message: format!(
                    "this address already holds {} change streams; poll instead",
                    self.per_ip
                ),
            }));
        }
        *n += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Marks the instance disconnected when the stream ends, however it ends.
struct Connected {
    licenses: Arc<Push>,
    watch: Watch,
    _slot: WatchSlot,
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(instance) = &self.watch.instance {
            self.licenses.close_watch(&self.watch.license, instance);
        }
    }
}

struct StreamState {
    conn: Connected,
    shutdown: CancellationToken,
    keep_alive: tokio::time::Interval,
    /// Fires at the held document's `refresh_after`; kept across wake-ups
    /// (re-armed only when the document changes) so a change costs no
    /// timer-wheel churn per stream.
    refresh: std::pin::Pin<Box<tokio::time::Sleep>>,
    finished: bool,
}

fn deadline(licenses: &Push, at: tessera_protocol::Timestamp) -> tokio::time::Instant {
    let wait = (at - licenses.now())
        .to_std()
        .unwrap_or(std::time::Duration::ZERO);
    tokio::time::Instant::now() + wait
}

fn events(
    licenses: Arc<Push>,
    watch: Watch,
    slot: WatchSlot,
    shutdown: CancellationToken,
    keep_alive: std::time::Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let refresh = Box::pin(tokio::time::sleep_until(deadline(
        &licenses,
        watch.last.refresh_after,
    )));
    let state = StreamState {
        conn: Connected {
            licenses,
            watch,
            _slot: slot,
        },
        shutdown,
        keep_alive,
        refresh,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.finished {
            return None;
        }
        if let Some(first) = s.conn.watch.first.take() {
            s.finished = first.status == Status::Revoked;
            let frame = first.frame.clone();
            return Some((Ok(frame), s));
        }
        loop {
            let next = tokio::select! {
                () = s.shutdown.cancelled() => return None,
                _ = s.keep_alive.tick() => return Some((Ok(KEEP_ALIVE), s)),
                changed = s.conn.watch.subscription.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    s.conn.watch.subscription.rx.borrow_and_update().clone()
                }
                () = &mut s.refresh => {
                    match s.conn.licenses.current_pushed(&s.conn.watch.token_hash).await {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot refresh a watched document; closing the stream");
                            return None;
                        }
                    }
                }
            };
            if !next.is_newer_than(&s.conn.watch.last) {
                if s.refresh.is_elapsed() {
                    // Nothing newer to offer yet: look again in a minute.
                    let at = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
                    s.refresh.as_mut().reset(at);
                }
                continue;
            }
            if let Some(at) = next.committed_at {
                s.conn.licenses.metrics().propagation(at.elapsed());
            }
            if next.refresh_after != s.conn.watch.last.refresh_after {
                let at = deadline(&s.conn.licenses, next.refresh_after);
                s.refresh.as_mut().reset(at);
            }
            s.conn.watch.last = next.clone();
            s.finished = next.status == Status::Revoked;
            let frame = next.frame.clone();
            return Some((Ok(frame), s));
        }
    })
}
