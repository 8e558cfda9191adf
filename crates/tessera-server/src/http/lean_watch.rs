//! A lean HTTP/1.1 connection for a change stream (`GET /v1/watch`).
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for as long
//! as a connection lives — with a stream open for days, that alone is more
//! than the 16 KiB a watcher may cost (BENCHMARKS.md, "Watch streams").
//! A connection whose first request is a change stream is served here
//! instead: its head is read into a buffer that is freed once parsed, the
//! request goes through the same router (so every extractor, limit and
//! layer applies as on any other route), and the response is written
//! straight to the socket, one chunk per event, with no buffer kept
//! between events. The connection closes when the stream ends
//! (`Connection: close`): nothing is pipelined after a stream.
//!
//! Everything else — and a stream asked on a connection already used for
//! other requests — goes through hyper as before.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, Version};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a connection's first bytes must be to be served here.
const WATCH: &[u8] = b"GET /v1/watch";
/// The longest request head accepted (hyper allows more, but a stream's
/// request is a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Whether the connection's first request is a change stream: its first
/// bytes, peeked (not consumed), are `GET /v1/watch` then ` ` or `?`. A
/// request line that has not fully arrived yet goes to hyper. `None`: the
/// peer closed or sent nothing within `timeout`.
pub(super) async fn is_watch(stream: &TcpStream, timeout: Duration) -> Option<bool> {
    let mut first = [0u8; WATCH.len() + 1];
    let n = tokio::time::timeout(timeout, stream.peek(&mut first))
        .await
        .ok()?
        .ok()?;
    if n == 0 {
        return None;
    }
    Some(n == first.len() && first.starts_with(WATCH) && matches!(first[WATCH.len()], b' ' | b'?'))
}

/// Serve one change stream on `stream`, then close it. `timeouts`: for the
/// request head, and for a write the peer takes nothing of.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    (header_timeout, idle_timeout): (Duration, Duration),
) {
    let request = match tokio::time::timeout(header_timeout, read_head(&mut stream, peer)).await {
        Err(_) => return,
        Ok(Err(refusal)) => {
            let _ = write_refusal(&mut stream, refusal, idle_timeout).await;
            return;
        }
        Ok(Ok(request)) => request,
    };
    let http10 = request.version() == Version::HTTP_10;
    let response = match tower::ServiceExt::oneshot(app, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, mut body) = response.into_parts();
    let length = body.size_hint().exact();
    // HTTP/1.0 has no chunks: the body then ends where the connection does.
    let chunked = length.is_none() && !http10;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\nconnection: close\r\n");
    match length {
        Some(n) => head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        None if chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    head.extend_from_slice(b"\r\n");
    if write(&mut stream, &head, idle_timeout).await.is_err() {
        return;
    }
    drop(head);
    let (mut reader, mut writer) = stream.split();
    let mut scratch = [0u8; 64];
    loop {
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)) => frame,
            // Anything the peer sends after its request is ignored; its
            // close (or a reset) ends the stream at once, rather than at
            // the next write.
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        let Some(Ok(frame)) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let sent = if chunked {
            let mut chunk = Vec::with_capacity(data.len() + 12);
            chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            write(&mut writer, &chunk, idle_timeout).await
        } else {
            write(&mut writer, &data, idle_timeout).await
        };
        if sent.is_err() {
            return;
        }
    }
    if chunked {
        let _ = write(&mut writer, b"0\r\n\r\n", idle_timeout).await;
    }
    let _ = writer.shutdown().await;
}

/// Write all of `bytes`, or fail when the peer takes none of them for
/// `idle` (a peer that stopped reading).
async fn write(
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
    idle: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(idle, out.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Not HTTP/1.x, or not parseable.
    Malformed,
    /// Over [`MAX_HEAD`] or [`MAX_HEADERS`].
    TooLarge,
    /// The peer closed before the head was complete.
    Closed,
}

async fn write_refusal(
    stream: &mut TcpStream,
    refusal: Refusal,
    idle: Duration,
) -> std::io::Result<()> {
    let (status, code, message) = match refusal {
        Refusal::Closed => return Ok(()),
        Refusal::Malformed => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "malformed request head",
        ),
        Refusal::TooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request head is over 16 KiB or 64 headers",
        ),
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    write(stream, response.as_bytes(), idle).await
}

/// Read and parse the request head; the buffer is dropped on return.
async fn read_head(stream: &mut TcpStream, peer: SocketAddr) -> Result<Request<Body>, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return to_request(&parsed, peer),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
            Err(_) => return Err(Refusal::Malformed),
        }
        if buf.len() >= MAX_HEAD {
            return Err(Refusal::TooLarge);
        }
        let mut more = [0u8; 1024];
        let n = stream.read(&mut more).await.map_err(|_| Refusal::Closed)?;
        if n == 0 {
            return Err(Refusal::Closed);
        }
        buf.extend_from_slice(&more[..n]);
    }
}

fn to_request(
    parsed: &httparse::Request<'_, '_>,
    peer: SocketAddr,
) -> Result<Request<Body>, Refusal> {
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Refusal::Malformed),
    };
    let mut request = Request::builder()
        .method(parsed.method.ok_or(Refusal::Malformed)?)
        .uri(parsed.path.ok_or(Refusal::Malformed)?)
        .version(version)
        .body(Body::empty())
        .map_err(|_| Refusal::Malformed)?;
    let headers = request.headers_mut();
    for header in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| Refusal::Malformed)?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| Refusal::Malformed)?;
        headers.append(name, value);
    }
    request.extensions_mut().insert(ConnectInfo(peer));
    Ok(request)
}
