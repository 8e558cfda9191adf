//! The public API: validate, keys, health, error shapes, limits.

use chrono::Duration;
use serde_json::json;
use tessera_protocol::{Expectations, LicenseToken, Status};
use tessera_testkit::{Options, TestServer, assert_error, backend_tests};

const JSON: &str = "application/json";

backend_tests! {
    async fn validate_returns_a_signed_document_that_verifies(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let (status, v) = s
            .validate(json!({"token": token, "instance_id": "inst-1", "nonce": "n0nce", "app_version": "1.2.3", "usage": {"users": 7}}))
            .await;
        assert_eq!(status, 200, "{v}");
        let token = LicenseToken::parse(&token).unwrap();
        let expect = Expectations::for_token(token.fingerprint()).with_nonce("n0nce");
        let doc = s.verified(v["document"].as_str().unwrap(), &expect);
        let c = doc.claims();
        assert_eq!(c.lic.as_deref(), Some(id.as_str()));
        assert_eq!(c.status, Status::Active);
        assert!(c.valid);
        assert_eq!(c.iid.as_deref(), Some("inst-1"));
        assert_eq!(c.features, vec!["sso".to_string(), "audit".to_string()]);
        assert_eq!(c.customer.as_deref(), Some("Acme"));
        assert_eq!(c.rev, 1);
        assert_eq!(c.iat, s.now());
        // Default policy: refresh 1 h, offline grace 7 d.
        assert_eq!(c.refresh_after, s.now() + Duration::hours(1));
        assert_eq!(c.exp, s.now() + Duration::days(7));
        // The verdict is the decoded claims.
        assert_eq!(v["verdict"]["status"], "active");
        assert_eq!(v["verdict"]["rev"], 1);
    }

    async fn unknown_but_well_formed_tokens_get_a_signed_not_found(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let token = LicenseToken::generate(&mut rand::rng());
        let (status, v) = s.validate(json!({"token": token.expose_secret()})).await;
        assert_eq!(status, 200, "{v}");
        let expect = Expectations::for_token(token.fingerprint());
        let doc = s.verified(v["document"].as_str().unwrap(), &expect);
        assert_eq!(doc.claims().status, Status::NotFound);
        assert!(!doc.claims().valid);
        assert!(doc.claims().lic.is_none());
    }

    async fn malformed_requests_get_json_errors(backend: Backend) {
        let (s, _, token) = TestServer::with_license(backend.clone()).await;
        let typo = format!(
            "{}{}",
            &token[..token.len() - 1],
            if token.ends_with('a') { 'b' } else { 'a' }
        );
        let got = s.validate(json!({"token": typo})).await;
        assert_error(&got, 400, "token_checksum");
        let got = s.validate(json!({"token": "hello"})).await;
        assert_error(&got, 400, "malformed_token");
        let got = s.validate(json!({"token": token, "instance_id": "has space"})).await;
        assert_error(&got, 400, "malformed");
        let got = s.validate(json!({"token": token, "nonce": "x".repeat(200)})).await;
        assert_error(&got, 400, "malformed");
        let got = s.validate(json!({"token": token, "app_version": "v".repeat(65)})).await;
        assert_error(&got, 400, "invalid_app_version");
        let got = s.validate(json!({"tokn": token})).await;
        assert_error(&got, 400, "invalid_json");
        let got = s.validate(json!({"token": token, "usage": {"users": -1}})).await;
        assert_error(&got, 400, "invalid_json");

        let res = s.post_body("/v1/validate", Some(JSON), "{").await;
        assert_eq!(res.status(), 400);
        let res = s.post_body("/v1/validate", None, "{}").await;
        assert_eq!(res.status(), 415);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }

    async fn bodies_over_16_kib_are_refused_with_413(backend: Backend) {
        let (s, _, token) = TestServer::with_license(backend.clone()).await;
        let big = json!({"token": token, "app_version": "x".repeat(17 * 1024)});
        assert_error(&s.validate(big).await, 413, "payload_too_large");
        // Just under the limit is parsed (and refused for its content, not its size).
        let fits = json!({"token": token, "app_version": "x".repeat(15 * 1024)});
        assert_error(&s.validate(fits).await, 400, "invalid_app_version");
    }

    async fn unknown_routes_and_methods_answer_json(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let got = s.request("GET", "/nope", None, None).await;
        assert_error(&got, 404, "route_not_found");
        let got = s.request("GET", "/v1/validate", None, None).await;
        assert_error(&got, 405, "method_not_allowed");
    }

    async fn keys_health_and_readiness(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (status, v) = s.request("GET", "/v1/keys", None, None).await;
        assert_eq!(status, 200);
        let key = &v["keys"][0];
        assert_eq!(key["kid"], s.public_key.kid().as_str());
        assert_eq!(key["alg"], "v4.public");
        assert_eq!(key["public_key"], s.public_key.to_paserk());
        assert!(
            key["public_key"]
                .as_str()
                .unwrap()
                .starts_with("k4.public.")
        );
        let (status, v) = s.request("GET", "/healthz", None, None).await;
        assert_eq!((status.as_u16(), v["status"].as_str()), (200, Some("ok")));
        let (status, v) = s.request("GET", "/readyz", None, None).await;
        assert_eq!(
            (status.as_u16(), v["status"].as_str()),
            (200, Some("ready"))
        );
    }

    async fn validation_is_rate_limited_per_ip_with_headers(backend: Backend) {
        let s = TestServer::start_with(Options {
            backend: backend.clone(),
            rate_limit: 5,
            ..Options::default()
        })
        .await;
        let (_, token) = s.issue_default().await;
        let body = json!({"token": token}).to_string();
        for i in 0..5 {
            let res = s.post_body("/v1/validate", Some(JSON), body.clone()).await;
            assert_eq!(res.status(), 200, "request {i}");
            assert_eq!(res.headers()["ratelimit-limit"], "5");
            assert_eq!(
                res.headers()["ratelimit-remaining"],
                (4 - i).to_string().as_str()
            );
        }
        let res = s.post_body("/v1/validate", Some(JSON), body).await;
        assert_eq!(res.status(), 429);
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "retry-after {retry}");
        assert_eq!(res.headers()["ratelimit-remaining"], "0");
        assert!(res.headers().contains_key("ratelimit-reset"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
        // Other routes are not limited.
        assert_eq!(s.request("GET", "/v1/keys", None, None).await.0, 200);
    }

    async fn documents_follow_the_clock_expiry_shortens_refresh(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (_, token) = s.issue_for("Acme", "2d").await;
        // 30 h before expiry: normal interval.
        assert_eq!(s.verdict(&token).await["status"], "active");
        // 20 h before expiry: within a day, shortened to 15 min.
        s.clock.advance(Duration::hours(28));
        let v = s.verdict(&token).await;
        let refresh =
            chrono::DateTime::parse_from_rfc3339(v["refresh_after"].as_str().unwrap()).unwrap();
        assert_eq!(refresh.to_utc(), s.now() + Duration::minutes(15));
        // Past expiry: status expired, not valid.
        s.clock.advance(Duration::hours(21));
        let v = s.verdict(&token).await;
        assert_eq!((&v["status"], &v["valid"]), (&json!("expired"), &json!(false)));
    }

    async fn trial_licenses_say_trial(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (_, token) = s
            .issue(json!({"customer": "Acme", "plan": "p", "duration": "14d", "trial": true}))
            .await;
        let v = s.verdict(&token).await;
        assert_eq!((&v["status"], &v["valid"]), (&json!("trial"), &json!(true)));
    }

    async fn a_change_is_answered_with_the_new_revision_at_once(backend: Backend) {
        // The seed bug: answers cached by token kept "expired" after a renewal.
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = s.issue_for("Acme", "1d").await;
        let (_, v) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_eq!(v["verdict"]["rev"], 1);
        s.clock.advance(Duration::days(2));
        let (_, v) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_eq!(v["verdict"]["status"], "expired");
        s.extend(&id, json!({"by": "30d"})).await;
        let (_, v) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_eq!(v["verdict"]["rev"], 2);
        assert_eq!(v["verdict"]["status"], "active");
    }

    async fn nonce_less_documents_are_reused_briefly_but_never_across_a_change(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let doc = |v: &serde_json::Value| v["document"].as_str().unwrap().to_owned();
        let (_, first) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        s.clock.advance(Duration::seconds(10));
        let (_, again) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_eq!(doc(&first), doc(&again), "reused within the window");
        let (_, other) = s
            .validate(json!({"token": token, "instance_id": "b"}))
            .await;
        assert_eq!(
            doc(&first),
            doc(&other),
            "one signature per (license, revision) serves every instance"
        );
        assert!(first["verdict"].get("iid").is_none(), "a shared document names no instance: {first}");
        let (_, forced) = s
            .validate(json!({"token": token, "instance_id": "a", "nonce": "fresh"}))
            .await;
        assert_ne!(
            doc(&first),
            doc(&forced),
            "a nonce forces a fresh signature"
        );
        assert_eq!(forced["verdict"]["nonce"], "fresh");
        assert_eq!(forced["verdict"]["iid"], "a", "a forced round trip stays bound to its instance");
        // Both installations are in the fleet view although their answers
        // named neither.
        let fleet = s.fleet(&id).await;
        let seen: Vec<&str> = fleet["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("fleet: {fleet}"))
            .iter()
            .filter_map(|i| i["instance_id"].as_str())
            .collect();
        assert!(seen.contains(&"a") && seen.contains(&"b"), "{fleet}");
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        let (_, changed) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_eq!(changed["verdict"]["rev"], 2, "a change is visible at once");
        s.clock.advance(Duration::seconds(61));
        let (_, later) = s
            .validate(json!({"token": token, "instance_id": "a"}))
            .await;
        assert_ne!(doc(&changed), doc(&later), "not reused past 60 s");
        assert_eq!(
            later["verdict"]["iat"],
            tessera_protocol::time::format(&s.now())
        );
    }

    async fn if_none_match_with_the_current_revision_gets_304(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let post = |tag: Option<String>, body: serde_json::Value| {
            let mut req = s.http.post(format!("{}/v1/validate", s.url)).json(&body);
            if let Some(tag) = tag {
                req = req.header("if-none-match", tag);
            }
            req.send()
        };
        let res = post(None, json!({"token": token})).await.unwrap();
        assert_eq!(res.status(), 200);
        let tag = res.headers()["etag"].to_str().unwrap().to_owned();
        let v: serde_json::Value = res.json().await.unwrap();
        let iat = chrono::DateTime::parse_from_rfc3339(v["verdict"]["iat"].as_str().unwrap()).unwrap();
        assert_eq!(tag, format!("\"1-{}\"", iat.timestamp()));

        s.clock.advance(Duration::minutes(5));
        let res = post(Some(tag.clone()), json!({"token": token}))
            .await
            .unwrap();
        assert_eq!(res.status(), 304);
        assert_eq!(res.headers()["etag"], tag.as_str());
        assert!(res.bytes().await.unwrap().is_empty());

        // A nonce always gets a fresh document.
        let res = post(Some(tag.clone()), json!({"token": token, "nonce": "n1"}))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Garbage tags are ignored.
        let res = post(Some("\"x\"".into()), json!({"token": token}))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // Half the offline grace (3.5 days) later, a fresh exp is due.
        s.clock.advance(Duration::days(4));
        let res = post(Some(tag.clone()), json!({"token": token}))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // A change makes the tag stale at once.
        s.act(&id, "suspend").await;
        let res = post(Some(tag), json!({"token": token})).await.unwrap();
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["verdict"]["rev"], 2);
    }
}
