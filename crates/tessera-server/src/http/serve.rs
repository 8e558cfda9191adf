//! The accept loop: HTTP/1.1 connections with read timeouts and limits.
//!
//! `axum::serve` has no header, body or idle timeout and no connection
//! limit, so a few slow clients could hold connections forever and one
//! address could use up every file descriptor. Here:
//!
//! - **headers** must arrive within `header_read_timeout` of the server
//!   waiting for them (hyper's timer: a new connection, or a kept-alive
//!   one between requests — so it is also the keep-alive idle timeout);
//! - a **request body** must be complete within `body_read_timeout` of the
//!   handler starting to read it, right after its headers ([`DeadlineBody`]);
//! - a connection with **no bytes in either direction** for `idle_timeout`
//!   is closed ([`Activity`]): a response the client stopped reading, or a
//!   stream whose peer vanished. Change streams write a keep-alive comment
//!   every 15 s, so a healthy one is never idle;
//! - at most `max_connections` at once (checked against `RLIMIT_NOFILE` at
//!   start) and `max_connections_per_ip` from one address (IPv6 by /64;
//!   trusted proxies are exempt, they carry many clients). Past a limit a
//!   connection is closed at once, before anything is read;
//! - a connection whose first request is `GET /v1/watch` is served by
//!   [`super::lean_watch`], without hyper's buffers.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{TrustedProxies, address_key};
use crate::config::Limits;

/// Descriptors kept free for the database, files and outgoing requests
/// when the connection limit is derived from `RLIMIT_NOFILE`.
const FD_RESERVE: u64 = 128;

/// Connection limits in force, after checking the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in all.
    pub max: usize,
    /// Open connections from one address.
    pub per_ip: usize,
}

/// Raise the soft descriptor limit to the hard one, then fit the
/// configured connection limits under it (with [`FD_RESERVE`] to spare).
/// One address never gets more than three quarters of the total, so others
/// can still connect while it floods.
#[must_use]
pub fn effective_limits(limits: &Limits) -> ConnectionLimits {
    let fd_limit = raise_fd_limit();
    let mut max = limits.max_connections;
    if let Some(fds) = fd_limit {
        let room = usize::try_from(fds.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
        if room < max {
            tracing::warn!(
                fd_limit = fds,
                configured = limits.max_connections,
                using = room,
                "the open-file limit is below the connection limit; raise `ulimit -n` \
                 (a 10,000-instance fleet needs about 10,500)"
            );
            max = room.max(1);
        }
    }
    let per_ip = limits.max_connections_per_ip.min((max * 3 / 4).max(1));
    ConnectionLimits { max, per_ip }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit.
fn raise_fd_limit() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write one rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut rl) } != 0 {
        return None;
    }
    if rl.rlim_cur < rl.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            rl.rlim_cur = rl.rlim_max;
        }
    }
    Some(rl.rlim_cur)
}

/// Open connections, in all and per address.
#[derive(Debug)]
struct Census {
    total: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    limits: ConnectionLimits,
}

/// One connection's place in the census; leaving on drop.
struct Seat {
    census: Arc<Census>,
    key: Option<IpAddr>,
}

impl Census {
    fn admit(self: &Arc<Self>, key: Option<IpAddr>) -> Option<Seat> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.limits.max {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(key) = key {
            let mut by_ip = self
                .by_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = by_ip.entry(key).or_insert(0);
            if *n >= self.limits.per_ip {
                drop(by_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            *n += 1;
        }
        Some(Seat {
            census: self.clone(),
            key,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut by_ip = self
                .census
                .by_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = by_ip.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&key);
                }
            }
        }
        self.census.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve `app` on `listener` until `shutdown`, then stop accepting, let
/// open connections finish (at most `grace`), and return.
///
/// # Errors
/// Never for a single connection's failure; the listener's errors are
/// logged and retried (a full descriptor table is a wait, not an exit).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    trusted: Arc<TrustedProxies>,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let connection_limits = effective_limits(&limits);
    tracing::info!(
        max_connections = connection_limits.max,
        per_ip = connection_limits.per_ip,
        "connection limits"
    );
    let census = Arc::new(Census {
        total: AtomicUsize::new(0),
        by_ip: Mutex::new(HashMap::new()),
        limits: connection_limits,
    });
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let key = (!trusted.contains(peer.ip())).then(|| address_key(peer.ip()));
        let Some(seat) = census.admit(key) else {
            // Closed at once: nothing is read from a connection over a limit.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            shutdown.clone(),
            seat,
        ));
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the shutdown grace; closing them"
        );
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    _seat: Seat,
) {
    // A connection that opens with a change stream is served without
    // hyper's per-connection buffers (lean_watch.rs).
    let first = tokio::select! {
        () = shutdown.cancelled() => return,
        first = super::lean_watch::is_watch(&stream, limits.header_read_timeout) => first,
    };
    match first {
        None => return,
        Some(true) => {
            let timeouts = (limits.header_read_timeout, limits.idle_timeout);
            return super::lean_watch::serve(stream, peer, app, timeouts).await;
        }
        Some(false) => {}
    }
    let activity = Arc::new(AtomicI64::new(now_ms()));
    let io = TokioIo::new(Activity {
        inner: stream,
        last: activity.clone(),
    });
    let body_timeout = limits.body_read_timeout;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_timeout)));
            let app = app.clone();
            async move { tower::ServiceExt::oneshot(app, req).await }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    let mut check = tokio::time::interval(idle / 4);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = check.tick() => {
                let quiet = now_ms() - activity.load(Ordering::Relaxed);
                if quiet >= i64::try_from(idle.as_millis()).unwrap_or(i64::MAX) {
                    tracing::debug!(%peer, "closing a connection idle in both directions");
                    return;
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// A socket that notes when bytes last moved either way.
struct Activity {
    inner: TcpStream,
    last: Arc<AtomicI64>,
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must be complete within a deadline counted from
/// when it is first read (right after the headers, for the extractors that
/// read bodies): a client sending a partial body and then nothing (or one
/// byte a minute) is cut off, whatever the gaps between its bytes. The
/// timer is made on that first read, so requests whose body is never read
/// (`/healthz`, streams) cost no allocation and no clock read.
pub struct DeadlineBody {
    inner: hyper::body::Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: hyper::body::Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
        }
    }
}

/// The error a [`DeadlineBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within the body read timeout")]
pub struct BodyTimeout;

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
