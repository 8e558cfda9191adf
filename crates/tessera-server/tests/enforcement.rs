//! Enforcement modes (docs/PROTOCOL.md §24): a policy that only warns
//! signs what its rules refuse as usable, with the refusal named; a policy
//! update previews which verdicts change (dry run, nothing written) and,
//! applied, pushes a new revision to every license under it.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::json;
use tessera_protocol::Status;
use tessera_testkit::sse::SseStream;
use tessera_testkit::{TestServer, assert_error, backend_tests};

const T: StdDuration = StdDuration::from_secs(5);

backend_tests! {
    async fn a_policy_that_warns_signs_refusals_as_usable(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (status, p) = s.admin_post("/v1/admin/policies", json!({"name": "soft", "duration": "30d", "enforcement": "warn"})).await;
        assert_eq!((status.as_u16(), &p["enforcement"]), (201, &json!("warn")), "{p}");
        let got = s.admin_post("/v1/admin/policies", json!({"name": "bad", "enforcement": "lenient"})).await;
        assert_eq!(got.0.as_u16(), 400, "{:?}", got);
        let (_, token) = s.issue(json!({"customer": "Acme", "plan": "p", "policy": "soft", "duration": "1d", "features": ["sso"], "max_machines": 1})).await;
        let activate = async |fp: &str| {
            let (status, v) = s.request("POST", "/v1/machines/activate", Some(json!({"token": token, "fingerprint": fp})), None).await;
            assert_eq!(status, 200, "{v}");
            s.claims(v["document"].as_str().unwrap(), &token)
        };
        assert_eq!(activate("m-1").await.status, Status::Active);
        // The second machine is over the limit: named, but usable.
        let c = activate("m-2").await;
        assert_eq!((c.status, c.valid, c.features.as_slice()), (Status::TooManyMachines, true, &["sso".to_owned()][..]));
        assert_eq!(c.enforcement, tessera_protocol::wire::Enforcement::Warn);
        // Past expiry: marked expired, still usable.
        s.clock.advance(Duration::days(2));
        let c = activate("m-1").await;
        assert_eq!((c.status, c.valid), (Status::Expired, true));
    }

    async fn a_policy_update_is_previewed_then_pushed(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (status, _) = s.admin_post("/v1/admin/policies", json!({"name": "strict", "duration": "30d"})).await;
        assert_eq!(status, 201);
        let (lapsed, lapsed_token) = s.issue(json!({"customer": "Lapsed", "plan": "p", "policy": "strict", "duration": "1d"})).await;
        let (_, _current) = s.issue(json!({"customer": "Current", "plan": "p", "policy": "strict", "duration": "30d"})).await;
        let (_, _other) = s.issue(json!({"customer": "Other", "plan": "p", "duration": "1d"})).await;
        s.clock.advance(Duration::days(2));
        let auth = format!("Bearer {lapsed_token}");
        let mut stream = SseStream::open(&s.url, &[("authorization", &auth), ("tessera-instance", "lapsed-1")]).await.map_err(|r| r.status()).unwrap();
        assert_eq!(stream.next_revision(T).await, 1);
        // The stream's instance reaches the fleet view (written in batches).
        let mut connected = false;
        for _ in 0..50 {
            let fleet = s.fleet(&lapsed).await;
            if fleet["summary"]["connected"] == 1 { connected = true; break; }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        assert!(connected, "the watching instance is recorded");

        let s = &s;
        let patch = async |body: serde_json::Value, dry: bool| {
            s.request("PATCH", &format!("/v1/admin/policies/strict?dry_run={dry}"), Some(body), Some(&s.admin_key)).await
        };
        let (status, preview) = patch(json!({"enforcement": "warn"}), true).await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!((preview["dry_run"].as_bool(), preview["licenses"].as_u64(), preview["instances_connected"].as_u64()), (Some(true), Some(2), Some(1)), "{preview}");
        assert_eq!(preview["changes"], json!([{"license": lapsed, "customer": "Lapsed", "before": "expired", "after": "valid (warns: expired)", "instances_connected": 1}]));
        assert_eq!(preview["policy"]["enforcement"], "warn");
        // Nothing was written.
        let (_, policies) = s.admin_get("/v1/admin/policies").await;
        let strict = policies["items"].as_array().unwrap().iter().find(|p| p["name"] == "strict").unwrap().clone();
        assert_eq!(strict["enforcement"], "enforce");
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{lapsed}")).await;
        assert_eq!(v["revision"], 1);

        // Applied: a new revision for each license under it, pushed.
        let (status, applied) = patch(json!({"enforcement": "warn"}), false).await;
        assert_eq!((status.as_u16(), applied["dry_run"].as_bool()), (200, Some(false)), "{applied}");
        let (rev, doc) = stream.next_status(T).await.expect("pushed");
        assert_eq!(rev, 2);
        let c = s.claims(&doc, &lapsed_token);
        assert_eq!((c.status, c.valid), (Status::Expired, true));
        let (_, events) = s.admin_get("/v1/admin/events?limit=1").await;
        assert_eq!(events["items"][0]["kind"], "policy.updated");
        let (_, other) = s.admin_get("/v1/admin/licenses?customer=Other").await;
        assert_eq!(other["items"][0]["revision"], 1, "another policy's license is untouched");

        // Bad input, nothing written.
        assert_error(&patch(json!({}), false).await, 422, "nothing_to_update");
        assert_error(&patch(json!({"offline_grace": "1m"}), false).await, 422, "invalid_duration");
        let got = patch(json!({"enforcement": "warn", "color": "red"}), false).await;
        assert_eq!(got.0.as_u16(), 400, "{:?}", got);
        let got = s.request("PATCH", "/v1/admin/policies/nope", Some(json!({"enforcement": "warn"})), Some(&s.admin_key)).await;
        assert_error(&got, 404, "policy_not_found");
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{lapsed}")).await;
        assert_eq!(v["revision"], 2);
    }
}
