//! Metered quotas (docs/PROTOCOL.md §22): reports counted once per
//! (instance, sequence), per-period totals in UTC, documents carrying the
//! use as of `iat`, a blocking point pushed to every instance, and bad
//! input refused with nothing counted.

use std::time::Duration as StdDuration;

use chrono::{Datelike, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tessera_testkit::sse::SseStream;
use tessera_testkit::{TestServer, assert_error, backend_tests};

const T: StdDuration = StdDuration::from_secs(5);

async fn report(
    s: &TestServer,
    token: &str,
    instance: &str,
    seq: u64,
    amounts: Value,
) -> (reqwest::StatusCode, Value) {
    s.request(
        "POST",
        "/v1/consumption",
        Some(json!({"token": token, "instance_id": instance, "seq": seq, "amounts": amounts})),
        None,
    )
    .await
}

async fn used_in_document(s: &TestServer, token: &str, nonce: &str) -> tessera_protocol::Quota {
    let (_, v) = s.validate(json!({"token": token, "nonce": nonce})).await;
    let claims = s.claims(v["document"].as_str().unwrap(), token);
    claims.entitlements["api_calls"]
        .quota
        .clone()
        .expect("a quota in the document")
}

async fn kinds(s: &TestServer, id: &str) -> Vec<String> {
    let (_, events) = s.admin_get(&format!("/v1/admin/events?license={id}")).await;
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

backend_tests! {
    async fn reports_are_counted_once_and_documents_carry_the_use(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "400d",
                                         "features": ["sso", "api_calls=100/month"]})).await;
        let q = used_in_document(&s, &token, "first").await;
        assert_eq!((q.limit, q.used, q.remaining), (100, Some(0), Some(100)));
        let now = s.now();
        let next_month = if now.month() == 12 { Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0) } else { Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0) }.unwrap();
        assert_eq!(q.period_ends_at, Some(next_month));

        let (status, got) = report(&s, &token, "inst-a", 1, json!({"api_calls": 30})).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!((got["duplicate"].as_bool(), got["quotas"]["api_calls"]["used"].as_u64()), (Some(false), Some(30)));
        // The same report again (a retry after a lost answer): not counted twice.
        let (status, got) = report(&s, &token, "inst-a", 1, json!({"api_calls": 30})).await;
        assert_eq!((status.as_u16(), got["duplicate"].as_bool()), (200, Some(true)), "{got}");
        // The same sequence for other amounts is refused, nothing counted.
        assert_error(&report(&s, &token, "inst-a", 1, json!({"api_calls": 31})).await, 409, "duplicate_sequence");
        // Another instance's sequence 1 is its own.
        let (_, got) = report(&s, &token, "inst-b", 1, json!({"api_calls": 10})).await;
        assert_eq!(got["quotas"]["api_calls"]["used"], 40, "{got}");
        let q = used_in_document(&s, &token, "second").await;
        assert_eq!((q.used, q.remaining), (Some(40), Some(60)));

        let (status, view) = s.admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls")).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!((view["quota"]["used"].as_u64(), view["remaining"].as_u64()), (Some(40), Some(60)));
        assert_eq!(view["periods"][0]["period"], now.format("%Y-%m").to_string());
        assert_eq!(view["periods"][0]["used"], 40);
        let (_, show) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(show["entitlements"]["api_calls"]["quota"]["used"], 40, "{show}");
        assert_error(&s.admin_get(&format!("/v1/admin/licenses/{id}/quotas/sso")).await, 422, "unknown_feature");

        // A new calendar month (UTC) starts from nothing; the old one is kept.
        s.clock.advance(next_month - now + Duration::hours(1));
        assert_eq!(used_in_document(&s, &token, "next-month").await.used, Some(0));
        let (_, got) = report(&s, &token, "inst-a", 2, json!({"api_calls": 5})).await;
        assert_eq!(got["quotas"]["api_calls"]["used"], 5, "{got}");
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls")).await;
        let periods: Vec<(String, u64)> = view["periods"].as_array().unwrap().iter()
            .map(|p| (p["period"].as_str().unwrap().to_owned(), p["used"].as_u64().unwrap())).collect();
        assert_eq!(periods, [(next_month.format("%Y-%m").to_string(), 5), (now.format("%Y-%m").to_string(), 40)]);
        assert!(kinds(&s, &id).await.iter().all(|k| !k.starts_with("quota.")), "no mark passed");
    }

    async fn a_blocking_point_reaches_every_instance_at_once(backend: Backend) {
        let s = TestServer::start_with(tessera_testkit::Options {
            backend: backend.clone(),
            // The webhook endpoint below is on loopback (and never answers).
            lifecycle: Some(tessera_server::Lifecycle {
                webhook_targets: tessera_server::webhooks::WebhookTargets::AllowPrivate,
                ..tessera_server::Lifecycle::default()
            }),
            ..tessera_testkit::Options::default()
        }).await;
        let (status, hook) = s.admin_post("/v1/admin/webhooks", json!({
            "url": "http://127.0.0.1:9/hook", "events": ["quota.threshold", "quota.exhausted"]
        })).await;
        assert_eq!(status, 201, "{hook}");
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "30d",
                                         "features": ["api_calls=100/day"]})).await;
        let auth = format!("Bearer {token}");
        let mut watchers = Vec::new();
        for instance in ["one", "two"] {
            let mut w = SseStream::open(&s.url, &[("authorization", &auth), ("tessera-instance", instance)]).await.map_err(|r| r.status()).unwrap();
            assert_eq!(w.next_revision(T).await, 1);
            watchers.push(w);
        }
        // 80 %: an event (and webhook), no new revision.
        let (_, got) = report(&s, &token, "one", 1, json!({"api_calls": 85})).await;
        assert_eq!(got["quotas"]["api_calls"]["used"], 85);
        assert_eq!(kinds(&s, &id).await[0], "quota.threshold");
        // Past the limit under `block`: revision 2, pushed to both.
        let (_, got) = report(&s, &token, "two", 1, json!({"api_calls": 20})).await;
        assert_eq!(got["quotas"]["api_calls"]["used"], 105);
        for w in &mut watchers {
            let (rev, doc) = w.next_status(T).await.expect("pushed");
            assert_eq!(rev, 2);
            let claims = s.claims(&doc, &token);
            let q = claims.entitlements["api_calls"].quota.clone().unwrap();
            assert_eq!((q.used, q.remaining), (Some(105), Some(0)));
        }
        let k = kinds(&s, &id).await;
        assert_eq!(k[..2], ["quota.exhausted".to_owned(), "quota.threshold".to_owned()], "{k:?}");
        // Further use is still counted, and pushes nothing more.
        let (_, got) = report(&s, &token, "one", 2, json!({"api_calls": 1})).await;
        assert_eq!(got["quotas"]["api_calls"]["used"], 106);
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(view["revision"], 2);
        // Both marks went to the webhook's outbox.
        let (_, log) = s.admin_get(&format!("/v1/admin/webhooks/{}/deliveries", hook["id"].as_str().unwrap())).await;
        let mut kinds: Vec<&str> = log["items"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["quota.exhausted", "quota.threshold"], "{log}");
    }

    async fn overage_and_policy_quotas(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (status, policy) = s.admin_post("/v1/admin/policies", json!({"name": "metered", "duration": "30d",
            "features": ["sso", "exports=10/total/allow_until_percent(150)"]})).await;
        assert_eq!(status, 201, "{policy}");
        assert_eq!(policy["features"], json!(["sso", "exports=10/total/allow_until_percent(150)"]));
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "policy": "metered"})).await;
        let (_, got) = report(&s, &token, "i", 1, json!({"exports": 12})).await;
        assert_eq!(got["quotas"]["exports"]["overage"], "allow_until_percent(150)", "{got}");
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(view["revision"], 1, "exhausted but not yet blocked");
        let (_, _) = report(&s, &token, "i", 2, json!({"exports": 3})).await;
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(view["revision"], 2, "150 % reached: blocked");
    }

    async fn bad_reports_are_refused_with_nothing_counted(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "30d",
                                         "features": ["sso", "api_calls=1000/month"]})).await;
        let max = 1u64 << 53;
        assert_error(&report(&s, &token, "i", 1, json!({"api_calls": max + 1})).await, 422, "invalid_amount");
        assert_error(&report(&s, &token, "i", 1, json!({"api_calls": 1, "nope": 1})).await, 422, "unknown_feature");
        assert_error(&report(&s, &token, "i", 1, json!({"sso": 1})).await, 422, "unknown_feature");
        assert_error(&report(&s, &token, "i", 1, json!({})).await, 422, "invalid_amount");
        assert_error(&report(&s, &token, "i", 0, json!({"api_calls": 1})).await, 422, "invalid_sequence");
        let negative = s.request("POST", "/v1/consumption", Some(json!({"token": token, "instance_id": "i", "seq": 1, "amounts": {"api_calls": -5}})), None).await;
        assert_eq!(negative.0.as_u16() / 100, 4, "{:?}", negative);
        let overflow = s.request("POST", "/v1/consumption", Some(json!({"token": token, "instance_id": "i", "seq": 1, "amounts": {"api_calls": 1e30}})), None).await;
        assert_eq!(overflow.0.as_u16() / 100, 4, "{:?}", overflow);
        assert_error(&report(&s, &tessera_testkit::random_token(), "i", 1, json!({"api_calls": 1})).await, 401, "unauthorized");
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls")).await;
        assert_eq!((view["quota"]["used"].as_u64(), view["periods"].as_array().map(Vec::len)), (Some(0), Some(0)), "{view}");
        // The refused reports left sequence 1 unused.
        let (status, _) = report(&s, &token, "i", 1, json!({"api_calls": 7})).await;
        assert_eq!(status, 200);
        // A period's total never passes 2^62 (under `allow`, use may go far
        // past the limit): the report that would is refused, nothing of it kept.
        let (_, big) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": ["bulk=1/total/allow"]})).await;
        for seq in 1..=512 {
            let (status, got) = report(&s, &big, "i", seq, json!({"bulk": max})).await;
            assert_eq!(status, 200, "{got}");
        }
        for _ in 0..2 {
            assert_error(&report(&s, &big, "i", 513, json!({"bulk": max})).await, 422, "quota_overflow");
        }
        let (_, got) = report(&s, &big, "i", 514, json!({"bulk": 0})).await;
        assert_eq!(got["quotas"]["bulk"]["used"].as_u64(), Some(1 << 62), "{got}");
        // Quota limits above 2^53 are refused at issue.
        let got = s.admin_post("/v1/admin/licenses", json!({"customer": "Acme", "plan": "p", "duration": "30d",
            "features": [format!("api_calls={}/month", max + 1)]})).await;
        assert_error(&got, 422, "invalid_feature");
    }
}

/// Reports counted on two replicas add up, and a blocking point passed on
/// one reaches the streams held by the other.
#[tokio::test]
async fn replicas_share_totals_and_push_the_blocking_point() {
    let Some(replicas) = TestServer::postgres_replicas("quotas_two_replicas", 2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let (id, token) = a
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d", "features": ["api_calls=100/month"]}))
        .await;
    let auth = format!("Bearer {token}");
    let mut on_b = SseStream::open(&b.url, &[("authorization", &auth)])
        .await
        .map_err(|r| r.status())
        .unwrap();
    assert_eq!(on_b.next_revision(T).await, 1);
    let (_, got) = report(b, &token, "one", 1, json!({"api_calls": 60})).await;
    assert_eq!(got["quotas"]["api_calls"]["used"], 60, "{got}");
    let (_, got) = report(a, &token, "two", 1, json!({"api_calls": 50})).await;
    assert_eq!(got["quotas"]["api_calls"]["used"], 110, "{got}");
    let (rev, doc) = on_b.next_status(T).await.expect("pushed across replicas");
    assert_eq!(rev, 2);
    let q = b.claims(&doc, &token).entitlements["api_calls"]
        .quota
        .clone()
        .unwrap();
    assert_eq!(q.used, Some(110));
    let (_, view) = b
        .admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls"))
        .await;
    assert_eq!(view["remaining"], 0, "{view}");
}
