//! Change streams on a connection of their own (served without hyper's
//! buffers, src/http/lean_watch.rs) and on a connection hyper already
//! serves: the same stream either way, and HTTP spoken correctly on the
//! lean path (chunks, close, refusals, HTTP/1.0, bad heads).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tessera_server::Limits;
use tessera_testkit::{Backend, Options, TestServer};

/// A raw connection to the server.
fn connect(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    conn
}

/// Read from `conn` until `done` holds for what was read, EOF, or `within`.
fn read_until(
    conn: &mut TcpStream,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        match conn.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if done(&String::from_utf8_lossy(&got)) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

fn watch_request(token: &str, version: &str) -> String {
    format!("GET /v1/watch {version}\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_stream_on_its_own_connection_is_chunked_and_ends_with_the_revocation() {
    let (s, id, token) = TestServer::with_license(Backend::Sqlite).await;
    let addr = s.addr;
    let mut conn = connect(addr);
    let (head, conn) = blocking(move || {
        conn.write_all(watch_request(&token, "HTTP/1.1").as_bytes())
            .unwrap();
        let (got, _) = read_until(&mut conn, T, |t| t.contains("event: status"));
        (got, conn)
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "connection: close",
        "cache-control: no-cache",
        "date: ",
    ] {
        assert!(
            head.to_ascii_lowercase().contains(line),
            "{line} missing: {head}"
        );
    }
    assert!(head.contains("id: 1\n"), "{head}");
    // The first chunk's size line is the event's length in hex.
    let body = &head[head.find("\r\n\r\n").unwrap() + 4..];
    let (size, rest) = body.split_once("\r\n").unwrap();
    let size = usize::from_str_radix(size, 16).unwrap();
    assert!(
        rest.len() >= size && rest.starts_with("event: status"),
        "{body}"
    );
    s.act(&id, "revoke").await;
    let mut conn = conn;
    let (tail, after) = blocking(move || {
        let tail = read_until(&mut conn, T, |t| t.ends_with("0\r\n\r\n")).0;
        (tail, read_until(&mut conn, T, |_| false))
    })
    .await;
    assert!(tail.contains("id: 2\n"), "the revocation is pushed: {tail}");
    assert!(
        tail.ends_with("\r\n0\r\n\r\n"),
        "the chunked body ends: {tail:?}"
    );
    assert_eq!(
        after,
        (String::new(), true),
        "then the connection closes (Connection: close)"
    );
}

#[tokio::test]
async fn a_stream_after_other_requests_on_one_connection_is_served_too() {
    let (s, _, token) = TestServer::with_license(Backend::Sqlite).await;
    let mut conn = connect(s.addr);
    let (health, stream) = blocking(move || {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let (health, _) = read_until(&mut conn, T, |t| t.ends_with("}") || t.ends_with("ok"));
        conn.write_all(watch_request(&token, "HTTP/1.1").as_bytes())
            .unwrap();
        let (stream, _) = read_until(&mut conn, T, |t| t.contains("event: status"));
        (health, stream)
    })
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(stream.starts_with("HTTP/1.1 200"), "{stream}");
    assert!(stream.contains("id: 1\n"), "{stream}");
    assert!(
        !stream.to_ascii_lowercase().contains("connection: close"),
        "hyper keeps the connection: {stream}"
    );
}

#[tokio::test]
async fn refusals_and_bad_heads_get_json_errors_on_the_lean_path() {
    let (s, _, token) = TestServer::with_license(Backend::Sqlite).await;
    let addr = s.addr;
    let ask = |request: Vec<u8>| {
        blocking(move || {
            let mut conn = connect(addr);
            conn.write_all(&request).unwrap();
            read_until(&mut conn, T, |_| false)
        })
    };
    // No credential: 401, a JSON body of the stated length, then closed.
    let (got, closed) = ask(b"GET /v1/watch HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()).await;
    assert!(closed, "closed after the refusal: {got}");
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"))
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "{got}");
    let error: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["code"], "unauthorized", "{body}");
    // A head that is not HTTP/1.x.
    let (got, closed) = ask(b"GET /v1/watch HTTQ/1.1\r\nhost: x\r\n\r\n".to_vec()).await;
    assert!(closed && got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("\"bad_request\""), "{got}");
    // A head over 16 KiB.
    let mut huge = format!(
        "GET /v1/watch HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n",
        "a".repeat(20_000)
    )
    .into_bytes();
    huge.extend_from_slice(b"\r\n");
    let (got, closed) = ask(huge).await;
    assert!(closed && got.starts_with("HTTP/1.1 431"), "{got}");
    // HTTP/1.0 has no chunks: the events come as they are, and the
    // connection's end ends the body.
    let (got, _) = {
        let request = watch_request(&token, "HTTP/1.0").into_bytes();
        blocking(move || {
            let mut conn = connect(addr);
            conn.write_all(&request).unwrap();
            read_until(&mut conn, T, |t| t.contains("event: status"))
        })
        .await
    };
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        !got.to_ascii_lowercase().contains("transfer-encoding"),
        "{got}"
    );
    assert!(got.contains("\r\n\r\nevent: status"), "{got}");
}

#[tokio::test]
async fn a_closed_stream_frees_its_place_at_once() {
    let limits = Limits {
        max_watchers_per_ip: 1,
        ..Limits::default()
    };
    let s = TestServer::start_with(Options {
        backend: Backend::Sqlite,
        limits: Some(limits),
        ..Options::default()
    })
    .await;
    let (_, token) = s.issue_default().await;
    let addr = s.addr;
    let open = move |token: String| {
        blocking(move || {
            let mut conn = connect(addr);
            conn.write_all(watch_request(&token, "HTTP/1.1").as_bytes())
                .unwrap();
            let (got, _) = read_until(&mut conn, T, |t| {
                t.contains("event: status") || t.contains("too_many_streams")
            });
            (got, conn)
        })
    };
    let (first, conn) = open(token.clone()).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (second, _) = open(token.clone()).await;
    assert!(
        second.starts_with("HTTP/1.1 503"),
        "the one place is taken: {second}"
    );
    drop(conn);
    // The peer's close is seen at once (the lean path reads while it
    // streams), not at the next keep-alive 15 s later.
    let started = Instant::now();
    loop {
        let (again, _) = open(token.clone()).await;
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the place was not freed: {again}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_request_line_that_arrives_in_pieces_is_still_served() {
    let (s, _, token) = TestServer::with_license(Backend::Sqlite).await;
    let mut conn = connect(s.addr);
    let got = blocking(move || {
        let request = watch_request(&token, "HTTP/1.1");
        conn.write_all(&request.as_bytes()[..8]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        conn.write_all(&request.as_bytes()[8..]).unwrap();
        read_until(&mut conn, T, |t| t.contains("event: status")).0
    })
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("id: 1\n"), "{got}");
}
