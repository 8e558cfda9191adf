//! Regression tests for the hostile review of the authority (RELIABILITY.md,
//! "Hardening"), each named after what it pins. In process, on the real
//! accept loop; what needs the binary (descriptor limits, file modes) is in
//! `tessera-cli/tests/hardening.rs`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::{Expectations, LicenseToken};
use tessera_server::Limits;
use tessera_testkit::sse::SseStream;
use tessera_testkit::{Backend, Options, TestServer, assert_error, backend_tests};

fn limits(edit: impl FnOnce(&mut Limits)) -> Option<Limits> {
    let mut l = Limits::default();
    edit(&mut l);
    Some(l)
}

async fn with_limits(backend: Backend, edit: impl FnOnce(&mut Limits)) -> TestServer {
    TestServer::start_with(Options {
        backend,
        rate_limit: 0,
        limits: limits(edit),
        ..Options::default()
    })
    .await
}

/// Headers and bodies must arrive within a second; idle connections
/// close after `idle_secs`.
fn short_timeouts(l: &mut Limits, idle_secs: u64) {
    l.header_read_timeout = StdDuration::from_secs(1);
    l.body_read_timeout = StdDuration::from_secs(1);
    l.idle_timeout = StdDuration::from_secs(idle_secs);
}

/// A blocking connection from a loopback source address.
async fn tcp_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    tokio::task::spawn_blocking(move || tessera_testkit::connect_from(from, to))
        .await
        .unwrap()
}

/// Whether the server closed `conn` within `within` (EOF or reset on read).
fn closed_within(conn: &mut TcpStream, within: StdDuration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {
                if started.elapsed() >= within {
                    return false;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

async fn get_from(from: [u8; 4], to: SocketAddr, path: &str) -> String {
    let mut conn = tcp_from(from, to).await;
    tokio::task::spawn_blocking({
        let path = path.to_owned();
        move || {
            write!(
                conn,
                "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            conn.set_read_timeout(Some(StdDuration::from_secs(5)))
                .unwrap();
            let mut out = String::new();
            let _ = conn.read_to_string(&mut out);
            out
        }
    })
    .await
    .unwrap()
}

// ----- item 7: timeouts and connection limits --------------------------------

/// Item 7: slow headers, silence, a partial body and a partial login form
/// were all still open after 75 s. Each is now closed by its timeout.
#[tokio::test]
async fn slow_and_silent_connections_are_closed_by_their_timeouts() {
    let s = with_limits(Backend::Sqlite, |l| short_timeouts(l, 30)).await;
    let addr = s.addr;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("silence", Vec::new()),
        ("partial headers", b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec()),
        (
            "partial body",
            b"POST /v1/validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"token\":"
                .to_vec(),
        ),
        (
            "partial login form",
            b"POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 300\r\n\r\nkey=tsa_"
                .to_vec(),
        ),
    ];
    let mut handles = Vec::new();
    for (name, bytes) in cases {
        let mut conn = tcp_from([127, 0, 0, 1], addr).await;
        handles.push(tokio::task::spawn_blocking(move || {
            conn.write_all(&bytes).unwrap();
            let started = Instant::now();
            let closed = closed_within(&mut conn, StdDuration::from_secs(8));
            (name, closed, started.elapsed())
        }));
    }
    for h in handles {
        let (name, closed, took) = h.await.unwrap();
        assert!(closed, "{name}: still open after {took:?}");
        assert!(
            took < StdDuration::from_secs(6),
            "{name}: closed after {took:?}"
        );
    }
    // An idle keep-alive connection goes too (its next headers never come).
    let mut conn = tcp_from([127, 0, 0, 1], addr).await;
    let closed = tokio::task::spawn_blocking(move || {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        closed_within(&mut conn, StdDuration::from_secs(8))
    })
    .await
    .unwrap();
    assert!(closed, "idle keep-alive connection closed");
}

/// Item 7: the new timeouts must not cut off healthy change streams. A
/// stream stays open longer than every timeout (keep-alives every second,
/// idle timeout 3 s) and still receives a change.
#[tokio::test]
async fn a_healthy_stream_outlives_every_timeout() {
    let s = with_limits(Backend::Sqlite, |l| {
        short_timeouts(l, 3);
        l.keep_alive = StdDuration::from_secs(1);
    })
    .await;
    let (id, token) = s.issue_default().await;
    let mut stream = SseStream::open(&s.url, &[("authorization", &format!("Bearer {token}"))])
        .await
        .unwrap();
    assert_eq!(stream.next_revision(StdDuration::from_secs(5)).await, 1);
    let held_until = Instant::now() + StdDuration::from_secs(5);
    while Instant::now() < held_until {
        assert!(
            stream.next(StdDuration::from_secs(3)).await.is_some(),
            "the stream ended"
        );
    }
    s.admin_post(
        &format!("/v1/admin/licenses/{id}/extend"),
        json!({"by": "1d"}),
    )
    .await;
    assert_eq!(
        stream.next_revision(StdDuration::from_secs(5)).await,
        2,
        "a change after 5 s still arrives"
    );
}

/// Item 7: 1,100 idle connections took down validate, admin and console
/// alike. Past the per-address cap a connection is closed at once; another
/// address still reaches `/healthz` and the admin API.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let s = with_limits(Backend::Sqlite, |l| {
        l.max_connections = 40;
        l.max_connections_per_ip = 10;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(tcp_from([127, 0, 0, 1], s.addr).await);
    }
    // The eleventh from the same address is closed before anything is read.
    let mut extra = tcp_from([127, 0, 0, 1], s.addr).await;
    let closed = tokio::task::spawn_blocking(move || {
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        closed_within(&mut extra, StdDuration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(closed, "over the per-address cap: closed");
    // Another address is served.
    let answer = get_from([127, 0, 0, 2], s.addr, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut conn = tcp_from([127, 0, 0, 3], s.addr).await;
    let key = s.admin_key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        write!(
            conn,
            "GET /v1/admin/licenses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        conn.set_read_timeout(Some(StdDuration::from_secs(5))).unwrap();
        let _ = conn.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}

/// Item 7: one IP held 603 change streams on one token. Streams per address
/// are capped; other addresses are not affected.
#[tokio::test]
async fn change_streams_per_address_are_capped() {
    let s = with_limits(Backend::Sqlite, |l| l.max_watchers_per_ip = 3).await;
    let (_, token) = s.issue_default().await;
    let auth = format!("Bearer {token}");
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            SseStream::open(&s.url, &[("authorization", &auth)])
                .await
                .unwrap(),
        );
    }
    let refused = SseStream::open(&s.url, &[("authorization", &auth)])
        .await
        .err()
        .expect("the fourth stream is refused");
    assert_eq!(refused.status().as_u16(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    // From another address: fine (raw request from 127.0.0.2).
    let mut conn = tcp_from([127, 0, 0, 2], s.addr).await;
    let first = tokio::task::spawn_blocking(move || {
        write!(
            conn,
            "GET /v1/watch HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 256];
        conn.set_read_timeout(Some(StdDuration::from_secs(5)))
            .unwrap();
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // A closed stream frees its place.
    drop(open.pop());
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        SseStream::open(&s.url, &[("authorization", &format!("Bearer {token}"))])
            .await
            .is_ok()
    );
}

// ----- item 8: dates --------------------------------------------------------

backend_tests! {
    /// Item 8: `expires_at: 9999-12-31T23:00Z` was accepted and extending it
    /// by 1y stored `+10000-12-30`, which `tessera check` could not parse.
    async fn dates_past_year_9999_are_refused(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (status, v) = s
            .admin_post("/v1/admin/licenses", json!({"customer": "Acme", "plan": "p", "expires_at": "9999-12-31T23:00:00Z"}))
            .await;
        assert_eq!(status, 201, "{v}");
        let id = v["license"]["id"].as_str().unwrap().to_owned();
        let got = s
            .admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1y"}))
            .await;
        assert_error(&got, 400, "date_out_of_range");
        let got = s
            .admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"to": "1969-01-01"}))
            .await;
        assert_error(&got, 400, "date_out_of_range");
        // Unchanged, and its documents still verify.
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(v["revision"], 1);
        // Document lifetimes are capped (the bound a retired key lives by).
        let got = s
            .admin_post(&format!("/v1/admin/licenses/{id}/export"), json!({"ttl": "401d"}))
            .await;
        assert_error(&got, 422, "invalid_duration");
        let got = s
            .admin_post("/v1/admin/policies", json!({"name": "long", "offline_grace": "2y"}))
            .await;
        assert_error(&got, 422, "invalid_duration");
    }

    /// Item 12: names with bidi overrides, isolates or zero-width characters
    /// are refused with a clear 400.
    async fn names_refuse_invisible_and_direction_characters(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        for name in ["Acme\u{202E}moc.evil", "Ac\u{200B}me", "\u{2066}Acme\u{2069}", "\u{FEFF}Acme"] {
            let got = s
                .admin_post("/v1/admin/licenses", json!({"customer": name, "plan": "p", "duration": "30d"}))
                .await;
            assert_error(&got, 400, "invalid_characters");
        }
        let got = s
            .admin_post("/v1/admin/policies", json!({"name": "gold\u{202D}"}))
            .await;
        assert_error(&got, 400, "invalid_characters");
    }

    /// Item 9: each new `instance_id` added a row, without limit. Past the
    /// cap a new installation gets a signed `instance_limit` refusal and an
    /// audit event; installations unseen for the activity window stop
    /// counting and are pruned after the retention; the fleet is paginated.
    async fn instances_are_capped_and_paginated(backend: Backend) {
        let s = TestServer::start_with(Options {
            backend,
            rate_limit: 0,
            limits: limits(|l| l.max_instances_per_license = 2),
            lifecycle: Some(tessera_server::Lifecycle {
                scheduler_interval: StdDuration::from_millis(50),
                ..tessera_server::Lifecycle::default()
            }),
            ..Options::default()
        })
        .await;
        let (id, token) = s.issue_default().await;
        let tfp = LicenseToken::parse(&token).unwrap().fingerprint();
        let check = |v: &Value, nonce: Option<&str>| {
            let mut expect = Expectations::for_token(tfp.clone());
            if let Some(n) = nonce {
                expect = expect.with_nonce(n);
            }
            s.verified(v["document"].as_str().unwrap(), &expect)
                .claims()
                .clone()
        };
        for iid in ["i-aaaa", "i-bbbb"] {
            let (status, v) = s.validate(json!({"token": token, "instance_id": iid})).await;
            assert_eq!(status, 200);
            assert_eq!(check(&v, None).status.as_str(), "active");
        }
        // The third is refused, signed, bound to it and its nonce.
        let (status, v) = s
            .validate(json!({"token": token, "instance_id": "i-cccc", "nonce": "n-1234567890abcdef"}))
            .await;
        assert_eq!(status, 200);
        let refused = check(&v, Some("n-1234567890abcdef"));
        assert_eq!(refused.status.as_str(), "instance_limit");
        assert!(!refused.valid);
        assert!(refused.features.is_empty());
        assert_eq!(refused.iid.as_deref(), Some("i-cccc"));
        // Known installations keep working.
        let (_, v) = s.validate(json!({"token": token, "instance_id": "i-aaaa"})).await;
        assert_eq!(check(&v, None).status.as_str(), "active");
        // Its stream and reports are refused too.
        let refused_stream = SseStream::open(
            &s.url,
            &[("authorization", &format!("Bearer {token}")), ("tessera-instance", "i-cccc")],
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(refused_stream.status().as_u16(), 403);
        let got = s
            .request("POST", "/v1/instances/ack", Some(json!({"token": token, "instance_id": "i-cccc", "revision": 1})), None)
            .await;
        assert_error(&got, 403, "instance_limit");
        // Audited once.
        let (_, events) = s.admin_get(&format!("/v1/admin/events?license={id}")).await;
        let refusals: Vec<&Value> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "license.instance_refused")
            .collect();
        assert_eq!(refusals.len(), 1, "{events}");
        assert_eq!(refusals[0]["after"]["instance_id"], "i-cccc");

        // Paginated fleet.
        let (_, page) = s
            .admin_get(&format!("/v1/admin/licenses/{id}/instances?limit=1"))
            .await;
        assert_eq!(page["instances"].as_array().unwrap().len(), 1);
        assert_eq!(page["summary"]["total"], 2);
        assert_eq!(page["summary"]["active"], 2);
        assert_eq!(page["summary"]["max_instances"], 2);
        assert_eq!(page["next_offset"], 1);
        let (_, page2) = s
            .admin_get(&format!("/v1/admin/licenses/{id}/instances?limit=1&offset=1"))
            .await;
        assert_eq!(page2["instances"].as_array().unwrap().len(), 1);
        assert!(page2["next_offset"].is_null());
        assert_ne!(page["instances"][0]["instance_id"], page2["instances"][0]["instance_id"]);

        // A week later the two stopped counting: a new one is admitted.
        s.clock.advance(Duration::days(8));
        let (_, v) = s.validate(json!({"token": token, "instance_id": "i-dddd"})).await;
        assert_eq!(check(&v, None).status.as_str(), "active");
        // After the retention (90 days) the quiet ones are deleted.
        s.clock.advance(Duration::days(85));
        let deadline = Instant::now() + StdDuration::from_secs(10);
        loop {
            let fleet = s.fleet(&id).await;
            if fleet["summary"]["total"] == 1 {
                assert_eq!(fleet["instances"][0]["instance_id"], "i-dddd");
                break;
            }
            assert!(Instant::now() < deadline, "not pruned: {fleet}");
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    }

    /// Item 10: webhook secrets were stored in clear; a database dump now
    /// shows only the sealed form.
    async fn webhook_secrets_are_sealed_at_rest(backend: Backend) {
        let is_pg = matches!(backend, Backend::Postgres(_));
        let s = TestServer::start_on(backend).await;
        let secret = "whsec_a-very-recognisable-secret-0123";
        let (status, v) = s
            .admin_post("/v1/admin/webhooks", json!({"url": "https://hooks.example.com/x", "events": ["*"], "secret": secret}))
            .await;
        assert_eq!(status, 201, "{v}");
        let stored: Vec<String> = if is_pg {
            use sqlx::Connection;
            let url = &s.database.as_ref().unwrap().url;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM webhooks")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        } else {
            let data = s.dir.path().join("data");
            let mut all = Vec::new();
            for f in ["tessera.db", "tessera.db-wal"] {
                if let Ok(bytes) = std::fs::read(data.join(f)) {
                    all.extend(bytes);
                }
            }
            assert!(
                !all.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is in the database files in clear"
            );
            use sqlx::Connection;
            let url = format!("sqlite://{}?mode=ro", data.join("tessera.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM webhooks")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        };
        assert!(!stored.is_empty());
        for value in stored {
            assert!(value.starts_with("enc1:"), "{value}");
            assert!(!value.contains(secret));
        }
    }

    /// Item 11: webhooks to loopback, link-local, private and credentialed
    /// URLs were accepted, and the delivery log doubled as a port scanner.
    /// Address literals are refused at creation; names are checked after
    /// DNS resolution at each delivery.
    async fn webhooks_cannot_target_internal_addresses(backend: Backend) {
        let s = TestServer::start_with(Options {
            backend,
            lifecycle: Some(tessera_server::Lifecycle {
                scheduler_interval: StdDuration::from_millis(50),
                webhook_poll: StdDuration::from_millis(50),
                ..tessera_server::Lifecycle::default()
            }),
            ..Options::default()
        })
        .await;
        for url in [
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/x",
            "http://[::1]:9/x",
            "https://user:pass@hooks.example.com/x",
        ] {
            let got = s
                .admin_post("/v1/admin/webhooks", json!({"url": url, "events": ["*"]}))
                .await;
            assert_eq!(got.0.as_u16(), 422, "{url}: {}", got.1);
        }
        // A name that resolves to loopback passes creation, not delivery.
        let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let port = receiver.local_addr().unwrap().port();
        let (status, hook) = s
            .admin_post("/v1/admin/webhooks", json!({"url": format!("http://localhost:{port}/hook"), "events": ["*"]}))
            .await;
        assert_eq!(status, 201, "{hook}");
        let hook_id = hook["id"].as_str().unwrap().to_owned();
        s.issue_default().await;
        let deadline = Instant::now() + StdDuration::from_secs(10);
        let attempt = loop {
            let (_, d) = s
                .admin_get(&format!("/v1/admin/webhooks/{hook_id}/deliveries"))
                .await;
            if let Some(e) = d["items"].as_array().and_then(|a| a.first()).and_then(|x| x["last_error"].as_str().map(str::to_owned)) {
                break e;
            }
            assert!(Instant::now() < deadline, "no attempt logged: {d}");
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        };
        assert!(attempt.contains("internal"), "{attempt}");
        assert!(receiver.accept().is_err(), "nothing reached the loopback receiver");
    }

    /// Item 12: failed admin-API authentication is rate-limited per address.
    async fn failed_admin_authentication_is_rate_limited(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let mut statuses = Vec::new();
        for _ in 0..35 {
            let (status, _) = s.request("GET", "/v1/admin/licenses", None, Some("tsa_nonsense")).await;
            statuses.push(status.as_u16());
        }
        assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
        assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    }

    /// A license not in the token cache is read with its installations'
    /// count and seats in use in one query (issue 18's million licenses):
    /// after a restart, with nothing cached, the instance limit and the
    /// seat limit still hold from that first read.
    async fn a_license_read_on_a_miss_brings_its_fleet_figures(backend: Backend) {
        let options = || Options {
            backend: backend.clone(),
            rate_limit: 0,
            limits: limits(|l| l.max_instances_per_license = 2),
            ..Options::default()
        };
        let s = TestServer::start_with(options()).await;
        let (_, token) = s
            .issue(json!({"customer": "Acme", "plan": "gold", "duration": "30d", "max_users": 5}))
            .await;
        for (iid, users) in [("i-aaaa", 3), ("i-bbbb", 7)] {
            let (status, v) = s
                .request("POST", "/v1/usage", Some(json!({"token": token, "instance_id": iid, "users": users})), None)
                .await;
            assert_eq!(status, 200, "{v}");
        }
        // Sightings are written at shutdown; the caches start empty again.
        let s = TestServer::restart(s.stop().await, options()).await;
        let (status, v) = s
            .validate(json!({"token": token, "instance_id": "i-cccc"}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["verdict"]["status"], "instance_limit", "two active of two: {v}");
        let (_, v) = s
            .validate(json!({"token": token, "instance_id": "i-aaaa"}))
            .await;
        assert_eq!(v["verdict"]["status"], "active", "{v}");
        assert_eq!(v["verdict"]["seats_exceeded"], true, "7 users of 5, read with the license: {v}");
        // A second license, never reported on, reads as none in use.
        let (_, other) = s
            .issue(json!({"customer": "Beta", "plan": "gold", "duration": "30d", "max_users": 5}))
            .await;
        // A third without a seat limit: its seats are not read with it, and
        // what its usage view shows must not be taken from that read.
        let (unlimited_id, unlimited) = s
            .issue(json!({"customer": "Gamma", "plan": "gold", "duration": "30d"}))
            .await;
        let (status, v) = s
            .request("POST", "/v1/usage", Some(json!({"token": unlimited, "instance_id": "i-eeee", "users": 4})), None)
            .await;
        assert_eq!(status, 200, "{v}");
        let s = TestServer::restart(s.stop().await, options()).await;
        let (_, v) = s
            .validate(json!({"token": other, "instance_id": "i-dddd"}))
            .await;
        assert_eq!(v["verdict"]["status"], "active", "{v}");
        assert!(v["verdict"].get("seats_exceeded").is_none(), "{v}");
        let (_, v) = s
            .validate(json!({"token": unlimited, "instance_id": "i-eeee"}))
            .await;
        assert_eq!(v["verdict"]["status"], "active", "{v}");
        let (_, usage) = s.admin_get(&format!("/v1/admin/licenses/{unlimited_id}/usage")).await;
        assert_eq!(usage["seats_in_use"], 4, "{usage}");
    }
}

/// Item 12: behind a load balancer every client shared one rate-limit
/// bucket. With `--trusted-proxy`, the client address comes from
/// `X-Forwarded-For`; without it, that header is ignored.
#[tokio::test]
async fn trusted_proxies_name_the_client_for_rate_limits() {
    async fn statuses(s: &TestServer, forwarded_for: &str, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = s
                .http
                .post(format!("{}/v1/validate", s.url))
                .header("x-forwarded-for", forwarded_for)
                .json(&json!({"token": "tsr_nonsense"}))
                .send()
                .await
                .unwrap();
            out.push(r.status().as_u16());
        }
        out
    }
    let trusted = TestServer::start_with(Options {
        rate_limit: 3,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Options::default()
    })
    .await;
    let a = statuses(&trusted, "203.0.113.7", 4).await;
    assert_eq!(a.iter().filter(|s| **s == 429).count(), 1, "{a:?}");
    let b = statuses(&trusted, "203.0.113.8", 3).await;
    assert!(
        b.iter().all(|s| *s != 429),
        "another client, another bucket: {b:?}"
    );
    // IPv6 clients share the bucket of their /64.
    let c = statuses(&trusted, "2001:db8:1:2::1", 3).await;
    assert!(c.iter().all(|s| *s != 429), "{c:?}");
    let d = statuses(&trusted, "2001:db8:1:2::ffff", 1).await;
    assert_eq!(d, vec![429], "same /64");

    let untrusted = TestServer::start_with(Options {
        rate_limit: 3,
        ..Options::default()
    })
    .await;
    let mut all = statuses(&untrusted, "203.0.113.7", 2).await;
    all.extend(statuses(&untrusted, "203.0.113.8", 2).await);
    assert_eq!(
        all.iter().filter(|s| **s == 429).count(),
        1,
        "one bucket: {all:?}"
    );
}

// ----- items 13-17: replicas and streams --------------------------------------

/// Item 14: each replica's batch overwrote `held_revision`, so an older
/// ack written last took the fleet view backwards. The held revision per
/// instance never decreases.
#[tokio::test]
async fn the_held_revision_never_goes_back_across_replicas() {
    let Some(replicas) = TestServer::postgres_replicas("held revision across replicas", 2).await
    else {
        return;
    };
    let [a, b] = <[TestServer; 2]>::try_from(replicas).ok().unwrap();
    let (id, token) = a.issue_default().await;
    for _ in 0..2 {
        a.admin_post(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "1d"}),
        )
        .await;
    }
    async fn fleet_held(s: &TestServer, id: &str) -> Vec<u64> {
        let f = s.fleet(id).await;
        f["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["held_revision"].as_u64().unwrap_or(0))
            .collect()
    }
    async fn ack(s: &TestServer, token: &str, rev: u64) {
        let body = json!({"token": token, "instance_id": "i-fleet01", "revision": rev});
        let (status, v) = s
            .request("POST", "/v1/instances/ack", Some(body), None)
            .await;
        assert_eq!(status, 204, "{v}");
    }
    // Revision 3 to A, written (reading the fleet writes pending sightings)…
    ack(&a, &token, 3).await;
    assert_eq!(fleet_held(&a, &id).await, vec![3]);
    // …then the older 2 to B, written after it.
    ack(&b, &token, 2).await;
    assert_eq!(
        fleet_held(&b, &id).await,
        vec![3],
        "B's older ack did not win"
    );
    assert_eq!(fleet_held(&a, &id).await, vec![3]);
}

/// Item 16: following `?after=<seq>` on PostgreSQL missed 11 of 600 events
/// (a later sequence number committed first). Three replicas, four
/// licenses changing at once, a follower: nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_audit_log_never_skips_an_event() {
    let Some(replicas) = TestServer::postgres_replicas("audit log cursor", 3).await else {
        return;
    };
    let (_, start) = replicas[0].admin_get("/v1/admin/events?limit=1").await;
    let start_seq = start["items"][0]["seq"].as_i64().unwrap_or(0);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(replicas[0].issue_default().await.0);
    }
    let replicas = Arc::new(replicas);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let replicas = replicas.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut after = start_seq;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let (_, page) = replicas[0]
                    .admin_get(&format!("/v1/admin/events?after={after}&limit=1000"))
                    .await;
                for e in page["items"].as_array().unwrap() {
                    let seq = e["seq"].as_i64().unwrap();
                    seen.insert(seq);
                    after = after.max(seq);
                }
                if finished {
                    return seen;
                }
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        })
    };
    let mut writers = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let replicas = replicas.clone();
        let id = id.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..150 {
                let r = &replicas[(n + i) % 3];
                let (status, v) = r
                    .admin_post(
                        &format!("/v1/admin/licenses/{id}/extend"),
                        json!({"by": "1d"}),
                    )
                    .await;
                assert!(status == 200 || status == 409, "{status} {v}");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follower.await.unwrap();
    let (_, all) = replicas[1]
        .admin_get(&format!("/v1/admin/events?after={start_seq}&limit=1000"))
        .await;
    let committed: BTreeSet<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(committed.len() >= 600, "{}", committed.len());
    let missed: Vec<&i64> = committed.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "the follower missed {} events: {missed:?}",
        missed.len()
    );
}

/// Item 17: a request whose database connection died mid-transaction
/// answered 500 `internal`. Nothing was committed, so it is 503 with
/// `Retry-After`, and the change can simply be retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_change_is_503_and_retryable() {
    use sqlx::Connection;
    let Some(backend) = Backend::postgres("connection lost mid-change") else {
        return;
    };
    let s = TestServer::start_with(Options {
        backend,
        rate_limit: 0,
        ..Options::default()
    })
    .await;
    let (id, _) = s.issue_default().await;
    let url = s.database.as_ref().unwrap().url.clone();
    // Hold the license row, so the server's change waits inside its transaction.
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT id FROM licenses WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut blocker)
        .await
        .unwrap();
    let path = format!("/v1/admin/licenses/{id}/extend");
    let change = {
        let http = s.http.clone();
        let url = format!("{}{path}", s.url);
        let key = s.admin_key.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"by": "30d"}))
                .send()
                .await
                .unwrap()
        })
    };
    // Terminate the server's backend while it waits for the row.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if !killed.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never waited on the row"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let response = change.await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    // Nothing was committed; the retry succeeds.
    let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
    assert_eq!(v["revision"], 1);
    let (status, v) = s.admin_post(&path, json!({"by": "30d"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["revision"], 2);
}
