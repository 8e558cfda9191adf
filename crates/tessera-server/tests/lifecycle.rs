//! Lifecycle on both backends: expiry horizons, auto-renewal, webhooks,
//! metering, metrics. The scheduler and dispatcher run for real (fast
//! intervals); the clock is the test's.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::http::{HeaderMap, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::webhook::verify_signature;
use tessera_server::Lifecycle;
use tessera_testkit::process::eventually;
use tessera_testkit::sse::SseStream;
use tessera_testkit::{Backend, Options, TestServer, backend_tests};

const WAIT: StdDuration = StdDuration::from_secs(10);

fn fast() -> Lifecycle {
    Lifecycle {
        scheduler_interval: StdDuration::from_millis(50),
        webhook_poll: StdDuration::from_millis(50),
        webhook_timeout: StdDuration::from_secs(2),
        // The receivers here listen on loopback.
        webhook_targets: tessera_server::webhooks::WebhookTargets::AllowPrivate,
        ..Lifecycle::default()
    }
}

async fn start(backend: Backend) -> TestServer {
    TestServer::start_with(Options {
        backend,
        lifecycle: Some(fast()),
        ..Options::default()
    })
    .await
}

async fn events_of(s: &TestServer, license: &str, kind: &str) -> Vec<Value> {
    let (status, page) = s
        .admin_get(&format!("/v1/admin/events?license={license}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Let the scheduler run several times at the current clock.
async fn settle() {
    tokio::time::sleep(StdDuration::from_millis(400)).await;
}

async fn license(s: &TestServer, id: &str) -> Value {
    let (status, v) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// A webhook receiver on loopback: answers the first `fail_first` requests
/// with 500, then 200; keeps every request that arrived.
/// Requests as they arrived: headers and raw body.
type Requests = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Receiver {
    got: Requests,
    fail_first: usize,
}

impl Receiver {
    async fn start(fail_first: usize) -> (Self, String) {
        let r = Receiver {
            got: Arc::default(),
            fail_first,
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let mut got = state.got.lock().unwrap();
                    got.push((headers, body.to_vec()));
                    if got.len() <= state.fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn all(&self) -> Vec<(HeaderMap, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

backend_tests! {
    async fn horizons_fire_once_each_across_restarts(backend: Backend) {
        let s = start(backend.clone()).await;
        let (id, _) = s.issue(json!({"customer": "Acme", "plan": "gold", "duration": "40d"})).await;
        // Issued 3 days before expiry: only the narrowest horizon speaks.
        let (late, _) = s.issue(json!({"customer": "Late", "plan": "gold", "duration": "3d"})).await;
        eventually("the 7d event of the late license", WAIT, async || {
            (events_of(&s, &late, "license.expiring").await.len() == 1).then_some(())
        })
        .await;
        let late_events = events_of(&s, &late, "license.expiring").await;
        assert_eq!(late_events[0]["after"]["horizon"], "7d", "the narrowest horizon only");
        settle().await;
        assert!(events_of(&s, &id, "license.expiring").await.is_empty(), "40 days left: nothing yet");

        let mut seen = Vec::new();
        for (advance, horizon) in [(Duration::days(11), "30d"), (Duration::days(23), "7d"), (Duration::days(5) + Duration::hours(12), "1d")] {
            s.clock.advance(advance);
            let events = eventually(horizon, WAIT, async || {
                let e = events_of(&s, &id, "license.expiring").await;
                (e.len() == seen.len() + 1).then_some(e)
            })
            .await;
            assert_eq!(events[0]["after"]["horizon"], horizon, "newest first");
            assert_eq!(events[0]["actor"], "scheduler");
            seen.push(horizon);
            settle().await;
            assert_eq!(events_of(&s, &id, "license.expiring").await.len(), seen.len(), "once per horizon");
        }
        s.clock.advance(Duration::days(1));
        eventually("license.expired", WAIT, async || {
            (events_of(&s, &id, "license.expired").await.len() == 1).then_some(())
        })
        .await;
        // A restart remembers what fired.
        let clock = s.clock.clone();
        let stopped = s.stop().await;
        let s = TestServer::restart(stopped, Options { backend, clock: Some(clock), lifecycle: Some(fast()), ..Options::default() }).await;
        settle().await;
        assert_eq!(events_of(&s, &id, "license.expiring").await.len(), 3);
        assert_eq!(events_of(&s, &id, "license.expired").await.len(), 1);
        // The late one jumped from "7 days" straight past its date: the
        // expired event speaks for the 1-day horizon it skipped.
        assert_eq!(events_of(&s, &late, "license.expiring").await.len(), 1);
        assert_eq!(events_of(&s, &late, "license.expired").await.len(), 1);
        // An extension starts a new period: its horizons fire again.
        s.extend(&id, json!({"by": "10d"})).await;
        eventually("the new period's 30d horizon", WAIT, async || {
            (events_of(&s, &id, "license.expiring").await.len() == 4).then_some(())
        })
        .await;
    }

    async fn auto_renew_extends_once_per_period_and_pushes(backend: Backend) {
        let s = start(backend).await;
        let (status, p) = s.admin_post("/v1/admin/policies", json!({
            "name": "monthly", "duration": "30d", "auto_renew": true, "renew_before": "3d"
        })).await;
        assert_eq!(status, 201, "{p}");
        assert_eq!(p["renew_before"], "3d");
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "gold", "policy": "monthly"})).await;
        let (other, _) = s.issue(json!({"customer": "Manual", "plan": "gold", "duration": "30d"})).await;
        let first_expiry = license(&s, &id).await["expires_at"].as_str().unwrap().to_owned();
        let mut stream = SseStream::open(&s.url, &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
        assert_eq!(stream.next_revision(WAIT).await, 1);
        // 26 days: outside the 3-day window, nothing happens.
        s.clock.advance(Duration::days(26));
        settle().await;
        assert_eq!(license(&s, &id).await["revision"], 1);
        // 27.5 days: inside it, renewed once by one period, pushed.
        s.clock.advance(Duration::hours(36));
        let (rev, _) = stream.next_status(WAIT).await.expect("the renewal is pushed");
        assert_eq!(rev, 2);
        let l = license(&s, &id).await;
        assert_eq!(l["revision"], 2);
        let renewed = chrono::DateTime::parse_from_rfc3339(l["expires_at"].as_str().unwrap()).unwrap();
        let first = chrono::DateTime::parse_from_rfc3339(&first_expiry).unwrap();
        assert_eq!(renewed - first, Duration::days(30), "from the expiry, one period");
        settle().await;
        assert_eq!(license(&s, &id).await["revision"], 2, "once per period");
        assert_eq!(events_of(&s, &id, "license.auto_renewed").await.len(), 1);
        assert_eq!(license(&s, &other).await["revision"], 1, "no auto-renew, no renewal");
        // The next period renews again, once (renewed at day 27.5 to day
        // 60; due from day 57).
        s.clock.advance(Duration::days(30));
        eventually("the second renewal", WAIT, async || {
            (license(&s, &id).await["revision"] == 3).then_some(())
        })
        .await;
        settle().await;
        assert_eq!(events_of(&s, &id, "license.auto_renewed").await.len(), 2);
        // A suspended license is not renewed.
        let (status, _) = s.admin_post(&format!("/v1/admin/licenses/{id}/suspend"), json!({})).await;
        assert_eq!(status, 200);
        s.clock.advance(Duration::days(29));
        settle().await;
        assert_eq!(events_of(&s, &id, "license.auto_renewed").await.len(), 2);
    }

    async fn webhooks_are_signed_retried_and_logged(backend: Backend) {
        let s = start(backend).await;
        let (receiver, url) = Receiver::start(2).await;
        let (status, hook) = s.admin_post("/v1/admin/webhooks", json!({
            "url": url, "events": ["license.extended", "license.revoked"]
        })).await;
        assert_eq!(status, 201, "{hook}");
        let secret = hook["secret"].as_str().unwrap().to_owned();
        let hook_id = hook["id"].as_str().unwrap().to_owned();
        let (_, list) = s.admin_get("/v1/admin/webhooks").await;
        assert!(list["items"][0].get("secret").is_none(), "the secret is shown once");
        let (id, _) = s.issue(json!({"customer": "Acme", "plan": "gold", "duration": "30d"})).await;
        s.extend(&id, json!({"by": "30d"})).await;
        eventually("the first attempt", WAIT, async || (receiver.count() == 1).then_some(())).await;
        // Retries wait for their backoff (on the server's clock).
        settle().await;
        assert_eq!(receiver.count(), 1, "no retry before the backoff");
        s.clock.advance(Duration::minutes(1));
        eventually("the second attempt", WAIT, async || (receiver.count() == 2).then_some(())).await;
        s.clock.advance(Duration::minutes(1));
        eventually("the third attempt", WAIT, async || (receiver.count() == 3).then_some(())).await;
        settle().await;
        s.clock.advance(Duration::hours(2));
        settle().await;
        assert_eq!(receiver.count(), 3, "delivered: no more attempts");
        let mut delivery_ids = Vec::new();
        for (headers, body) in receiver.all() {
            let signature = headers["tessera-signature"].to_str().unwrap();
            verify_signature(signature, &secret, &body, s.now(), 3 * 3_600).expect("signed with the secret");
            assert!(verify_signature(signature, "another-secret-16", &body, s.now(), 3 * 3_600).is_err());
            let payload: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(payload["event"]["kind"], "license.extended");
            assert_eq!(headers["tessera-event"], "license.extended");
            assert_eq!(headers["tessera-delivery"].to_str().unwrap(), payload["delivery"].to_string());
            delivery_ids.push(payload["delivery"].clone());
        }
        assert!(delivery_ids.windows(2).all(|w| w[0] == w[1]), "a retry keeps its delivery id");
        let (_, log) = s.admin_get(&format!("/v1/admin/webhooks/{hook_id}/deliveries")).await;
        let d = &log["items"][0];
        assert_eq!((d["state"].as_str(), d["attempts"].as_u64(), d["last_status"].as_u64()), (Some("delivered"), Some(3), Some(200)), "{log}");
        assert_eq!(log["items"].as_array().unwrap().len(), 1, "issued is not subscribed");

        // An endpoint that never accepts is given up after 24 hours.
        let (never, never_url) = Receiver::start(usize::MAX).await;
        let (_, dead) = s.admin_post("/v1/admin/webhooks", json!({"url": never_url, "events": ["*"]})).await;
        let dead_id = dead["id"].as_str().unwrap().to_owned();
        let (status, _) = s.admin_post(&format!("/v1/admin/licenses/{id}/revoke"), json!({"reason": "test"})).await;
        assert_eq!(status, 200);
        eventually("the first failing attempt", WAIT, async || (never.count() >= 1).then_some(())).await;
        for _ in 0..30 {
            s.clock.advance(Duration::hours(1));
            tokio::time::sleep(StdDuration::from_millis(120)).await;
        }
        let log = eventually("the delivery marked failed", WAIT, async || {
            let (_, log) = s.admin_get(&format!("/v1/admin/webhooks/{dead_id}/deliveries")).await;
            (log["items"][0]["state"] == "failed").then_some(log)
        })
        .await;
        let attempts = log["items"][0]["attempts"].as_u64().unwrap();
        assert!((3..=40).contains(&attempts), "retried with backoff, not hammered: {attempts}");
        assert_eq!(log["items"][0]["last_status"], 500);
        let tried = never.count();
        s.clock.advance(Duration::hours(5));
        settle().await;
        assert_eq!(never.count(), tried, "no attempts after giving up");
        // The revoke reached the first endpoint too (it asked for it).
        eventually("the revoke delivered", WAIT, async || {
            receiver.all().iter().any(|(h, _)| h["tessera-event"] == "license.revoked").then_some(())
        })
        .await;
        // Bad input is explained.
        let (status, v) = s.admin_post("/v1/admin/webhooks", json!({"url": "ftp://x", "events": ["*"]})).await;
        assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some("invalid_url")));
        let (status, v) = s.admin_post("/v1/admin/webhooks", json!({"url": url, "events": ["license.exploded"]})).await;
        assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some("unknown_event_kind")));
        let (status, _) = s.admin("DELETE", &format!("/v1/admin/webhooks/{dead_id}"), None).await;
        assert_eq!(status, 204);
        let (status, _) = s.admin("DELETE", &format!("/v1/admin/webhooks/{dead_id}"), None).await;
        assert_eq!(status, 404);
    }

    async fn metering_reaches_the_fleet_view_and_the_document(backend: Backend) {
        let s = start(backend).await;
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "gold", "duration": "30d", "max_users": 5})).await;
        let report = async |instance: &str, users: u32| {
            let (status, v) = s.request("POST", "/v1/usage", Some(json!({"token": token, "instance_id": instance, "users": users})), None).await;
            assert_eq!(status, 200, "{v}");
            v
        };
        let v = report("i-aaaaaaaa", 3).await;
        assert_eq!((v["seats_in_use"].as_u64(), v["seats_exceeded"].as_bool()), (Some(3), Some(false)));
        let fleet = s.fleet(&id).await;
        assert_eq!(fleet["instances"][0]["users"], 3);
        assert_eq!(fleet["summary"]["seats_exceeded"], false);
        let (_, doc) = s.validate(json!({"token": token})).await;
        assert!(doc["verdict"].get("seats_exceeded").is_none(), "absent while within the limit");

        let mut stream = SseStream::open(&s.url, &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
        stream.next_status(WAIT).await.unwrap();
        // The clock stands still: the pushed document must still come out
        // newer than the one the stream opened with (same revision).
        let v = report("i-bbbbbbbb", 7).await;
        assert_eq!((v["seats_in_use"].as_u64(), v["seats_exceeded"].as_bool()), (Some(7), Some(true)));
        let fleet = s.fleet(&id).await;
        assert_eq!((fleet["summary"]["seats_in_use"].as_u64(), fleet["summary"]["seats_exceeded"].as_bool()), (Some(7), Some(true)));
        let (_, doc) = s.validate(json!({"token": token})).await;
        assert_eq!(doc["verdict"]["seats_exceeded"], true);
        assert_eq!(doc["verdict"]["valid"], true, "informational: the license stays valid");
        let (rev, pushed) = stream.next_status(WAIT).await.expect("crossing the limit is pushed");
        assert_eq!(rev, 1, "same revision, newer document");
        let keys = s.keys();
        let verified = tessera_protocol::verify(pushed.as_bytes(), &keys, &tessera_protocol::Expectations::for_token(tessera_protocol::LicenseToken::parse(&token).unwrap().fingerprint()), s.now()).unwrap();
        assert!(verified.claims().seats_exceeded, "signed into the document");
        // The day's maximum stays when the count drops.
        report("i-bbbbbbbb", 2).await;
        let (_, usage) = s.admin_get(&format!("/v1/admin/licenses/{id}/usage")).await;
        assert_eq!(usage["days"][0]["max_users"], 7, "{usage}");
        assert_eq!(usage["seats_in_use"], 3);
        assert_eq!(usage["seats_exceeded"], false);
        // Wrong tokens and bad input.
        let (status, _) = s.request("POST", "/v1/usage", Some(json!({"token": "tsr_nope", "instance_id": "i-aaaaaaaa", "users": 1})), None).await;
        assert_eq!(status, 401);
        let (status, _) = s.request("POST", "/v1/usage", Some(json!({"token": token, "instance_id": "i-aaaaaaaa", "users": -1})), None).await;
        assert!(status.is_client_error());
    }

    async fn metrics_cover_the_lifecycle_and_pass_promtool(backend: Backend) {
        let s = start(backend).await;
        s.issue(json!({"customer": "Acme", "plan": "gold", "duration": "5d"})).await;
        s.issue(json!({"customer": "Beta", "plan": "gold", "duration": "60d"})).await;
        let (_, token) = s.issue(json!({"customer": "Gamma", "plan": "gold", "duration": "20d"})).await;
        let _stream = SseStream::open(&s.url, &[("authorization", &format!("Bearer {token}"))]).await.unwrap();
        s.validate(json!({"token": token})).await;
        let text = eventually("metrics with the watcher", WAIT, async || {
            let text = s.http.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
            text.contains("tessera_watchers 1").then_some(text)
        })
        .await;
        for line in [
            "tessera_licenses{state=\"active\"} 3",
            "tessera_licenses_expiring{within=\"30d\"} 2",
            "tessera_licenses_expiring{within=\"7d\"} 1",
            "tessera_licenses_expiring{within=\"expired\"} 0",
            "tessera_webhook_deliveries_total{result=\"delivered\"} 0",
            "tessera_validations_total{status=\"active\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("tessera_http_request_duration_seconds_count{route=\"/v1/validate\",method=\"POST\"} 1"), "{text}");
        assert!(text.contains("tessera_propagation_seconds_bucket"));
        assert!(!text.contains("lic_"), "no ids as label values");
        tessera_testkit::promtool_check(&text);
        // Prometheus itself asks for OpenMetrics and gets it.
        let open = s.http.get(format!("{}/metrics", s.url)).header("accept", "application/openmetrics-text;version=1.0.0").send().await.unwrap();
        assert!(open.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
        let open = open.text().await.unwrap();
        assert!(open.contains("# TYPE tessera_validations counter") && open.trim_end().ends_with("# EOF"));
    }
}
