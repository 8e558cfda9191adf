//! The SDK's metered quotas (docs/PROTOCOL.md §22): `consume` counts
//! locally and refuses past the quota, reports reach the authority once,
//! and a quota exhausted by one instance reaches the others on their
//! streams at once.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use serde_json::json;
use tessera_client::clock::{Clock, ManualClock};
use tessera_client::{Client, Error};
use tessera_testkit::{Options, TestServer};

fn instance(
    s: &TestServer,
    clock: &Arc<ManualClock>,
    dir: &std::path::Path,
    token: &str,
) -> Client {
    common::builder(&s.url, s.public_key.clone(), dir, clock.clone())
        .tick(StdDuration::from_millis(20))
        .consumption_interval(StdDuration::from_secs(3600))
        .token(token)
        .start()
        .unwrap()
}

async fn used(s: &TestServer, id: &str) -> u64 {
    let (status, view) = s
        .admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls"))
        .await;
    assert_eq!(status, 200, "{view}");
    view["quota"]["used"].as_u64().unwrap()
}

#[tokio::test]
async fn an_exhausted_quota_reaches_every_instance_at_once() {
    // An hour before a month ends (UTC), so that the next one starts soon.
    let month_end = tessera_protocol::QuotaPeriod::Month
        .end(Utc::now())
        .unwrap();
    let clock = Arc::new(ManualClock::new(month_end - chrono::Duration::hours(1)));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let (id, token) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "90d", "features": ["sso", "api_calls=100/month"]}))
        .await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&s, &clock, da.path(), &token);
    let b = instance(&s, &clock, db.path(), &token);
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(
        (a.remaining("api_calls"), a.remaining("sso")),
        (Some(100), None)
    );

    // Local: counted at once, no round trip; bad calls refused.
    assert_eq!(a.consume("api_calls", 60).unwrap(), 40);
    assert!(matches!(a.consume("sso", 1), Err(Error::UnknownQuota(_))));
    assert!(matches!(a.consume("audit", 1), Err(Error::NotGranted(_))));
    assert!(matches!(
        a.consume("api_calls", (1 << 53) + 1),
        Err(Error::InvalidAmount(_))
    ));
    assert_eq!(used(&s, &id).await, 0, "nothing sent yet");
    a.flush_consumption().await.unwrap();
    assert_eq!(used(&s, &id).await, 60);
    a.flush_consumption().await.unwrap();
    assert_eq!(used(&s, &id).await, 60, "nothing new: nothing sent");

    // B knows only its document (used 0): it may consume up to the limit
    // by its count; its report takes the total past 100.
    assert_eq!(b.remaining("api_calls"), Some(100));
    b.consume("api_calls", 45).unwrap();
    b.flush_consumption().await.unwrap();
    assert_eq!(used(&s, &id).await, 105);
    // The blocking point was pushed: A refuses from now on, with no call.
    common::until(&a, "the exhausted quota pushed", |v| {
        v.license.as_ref().is_some_and(|l| l.revision == 2)
    })
    .await;
    assert_eq!(a.remaining("api_calls"), Some(0));
    assert!(matches!(
        a.consume("api_calls", 1),
        Err(Error::QuotaExhausted { remaining: 0, .. })
    ));
    assert_eq!(b.remaining("api_calls"), Some(0), "B's own answer said so");

    // The next month starts again, on the client's clock, with no call.
    assert_eq!(
        tessera_protocol::QuotaPeriod::Month.end(clock.now()),
        Some(month_end)
    );
    clock.set(month_end + chrono::Duration::seconds(1));
    common::until(&a, "a new period", |v| {
        v.has_feature("api_calls") && a.remaining("api_calls") == Some(100)
    })
    .await;
    assert_eq!(a.consume("api_calls", 1).unwrap(), 99);
}

/// A proxy to `upstream` that forwards every request and, for every other
/// consumption report, throws the authority's answer away (502): the
/// report was counted, the client does not know.
async fn lossy_proxy(upstream: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (counter, http) = (lost.clone(), reqwest::Client::new());
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (upstream, http, lost) = (upstream.clone(), http.clone(), counter.clone());
            async move {
                let mut req = http.request(method, format!("{upstream}{uri}")).body(body);
                for name in ["content-type", "authorization", "accept"] {
                    if let Some(v) = headers.get(name) {
                        req = req.header(name, v.clone());
                    }
                }
                let res = req.send().await.unwrap();
                let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
                let content_type = res.headers().get("content-type").cloned();
                let body = res.bytes().await.unwrap();
                if uri.path() == "/v1/consumption" && status.is_success() {
                    let n = lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n % 2 == 0 {
                        return (
                            StatusCode::BAD_GATEWAY,
                            HeaderMap::new(),
                            Bytes::from_static(b"lost"),
                        )
                            .into_response();
                    }
                }
                let mut out = HeaderMap::new();
                if let Some(ct) = content_type {
                    out.insert("content-type", ct);
                }
                (status, out, body).into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, lost)
}

use axum::response::IntoResponse;

#[tokio::test]
async fn a_report_whose_answer_is_lost_is_counted_once() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let (id, token) = s
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": ["api_calls=1000000/total/allow"]}))
        .await;
    let (proxy, lost) = lossy_proxy(s.url.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = common::builder(&proxy, s.public_key.clone(), dir.path(), clock.clone())
        .watch(tessera_client::Watching::Off)
        .consumption_interval(StdDuration::from_secs(3600))
        .token(&token)
        .start()
        .unwrap();
    c.refresh().await.unwrap();
    let mut total = 0;
    for round in 1..=10u64 {
        c.consume("api_calls", round).unwrap();
        total += round;
        // The first attempt's answer is lost; the retry is answered
        // `duplicate` and the amounts are not counted again.
        assert!(
            c.flush_consumption().await.is_err(),
            "round {round}: the answer was lost"
        );
        c.flush_consumption().await.unwrap();
        assert_eq!(used(&s, &id).await, total, "round {round}");
    }
    assert_eq!(lost.load(std::sync::atomic::Ordering::SeqCst), 20);
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("tessera_consumption_reports_total{result=\"duplicate\"} 10"),
        "{text}"
    );
}
