//! Trials (docs/PROTOCOL.md §23): a trial policy; one trial per machine,
//! found again rather than restarted; a per-address limit; converting to a
//! paid license ends the trial, pushed.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::{Value, json};
use tessera_testkit::sse::SseStream;
use tessera_testkit::{Options, TestServer, assert_error, backend_tests};

async fn trial(s: &TestServer, body: Value) -> (reqwest::StatusCode, Value) {
    s.request("POST", "/v1/trials", Some(body), None).await
}

async fn eval_policy(s: &TestServer) {
    let (status, p) = s
        .admin_post(
            "/v1/admin/policies",
            json!({"name": "eval", "trial": true, "duration": "14d", "features": ["sso"]}),
        )
        .await;
    assert_eq!(status, 201, "{p}");
}

backend_tests! {
    async fn a_machine_gets_one_trial_and_a_reinstall_does_not_restart_it(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let got = s.admin_post("/v1/admin/policies", json!({"name": "endless", "trial": true})).await;
        assert_error(&got, 422, "invalid_duration");
        eval_policy(&s).await;
        let started = s.now();
        let (status, first) = trial(&s, json!({"policy": "eval", "fingerprint": "machine-1", "email": "ann@example.com"})).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["created"], true);
        let token = first["token"].as_str().unwrap().to_owned();
        let claims = s.claims(first["document"].as_str().unwrap(), &token);
        assert_eq!((claims.status, claims.expires_at), (tessera_protocol::Status::Trial, Some(started + Duration::days(14))));
        assert_eq!(first["expires_at"], tessera_protocol::time::format(&(started + Duration::days(14))));
        assert_eq!(claims.features, ["sso"]);
        // Three days later the product is reinstalled: the same trial.
        s.clock.advance(Duration::days(3));
        let (status, again) = trial(&s, json!({"policy": "eval", "fingerprint": "machine-1"})).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!((again["created"].as_bool(), &again["license"], &again["token"], &again["expires_at"]),
                   (Some(false), &first["license"], &first["token"], &first["expires_at"]));
        // Another machine: its own.
        let (_, other) = trial(&s, json!({"policy": "eval", "fingerprint": "machine-2"})).await;
        assert_eq!(other["created"], true);
        assert_ne!(other["license"], first["license"]);
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{}", first["license"].as_str().unwrap())).await;
        assert_eq!((view["trial"].as_bool(), view["customer"].as_str(), view["policy"].as_str()), (Some(true), Some("ann@example.com"), Some("eval")));

        // Bad input, nothing started.
        let (status, _) = s.admin_post("/v1/admin/policies", json!({"name": "paid", "duration": "365d"})).await;
        assert_eq!(status, 201);
        assert_error(&trial(&s, json!({"policy": "paid", "fingerprint": "machine-3"})).await, 422, "not_a_trial_policy");
        assert_error(&trial(&s, json!({"policy": "nope", "fingerprint": "machine-3"})).await, 404, "policy_not_found");
        let got = trial(&s, json!({"policy": "eval", "fingerprint": ""})).await;
        assert_eq!(got.0.as_u16(), 400, "{:?}", got);
        assert_error(&trial(&s, json!({"policy": "eval", "fingerprint": "m", "email": "nobody"})).await, 422, "invalid_field");
        let (_, list) = s.admin_get("/v1/admin/licenses?limit=100").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 2, "two trials, nothing else");
    }

    async fn converting_ends_the_trial_on_its_stream(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        eval_policy(&s).await;
        let (_, by_email) = trial(&s, json!({"policy": "eval", "fingerprint": "m-1", "email": "Ann@Example.com"})).await;
        let (_, by_token) = trial(&s, json!({"policy": "eval", "fingerprint": "m-2"})).await;
        let trial_token = by_email["token"].as_str().unwrap().to_owned();
        let auth = format!("Bearer {trial_token}");
        let mut stream = SseStream::open(&s.url, &[("authorization", &auth)]).await.map_err(|r| r.status()).unwrap();
        assert_eq!(stream.next_revision(StdDuration::from_secs(5)).await, 1);
        // A paid license for the same customer (e-mail, any case) ends it.
        let (paid, paid_token) = s.issue(json!({"customer": "Ann", "customer_email": "ann@example.com", "plan": "p", "duration": "365d"})).await;
        let (rev, doc) = stream.next_status(StdDuration::from_secs(5)).await.expect("pushed");
        assert_eq!(rev, 2);
        assert_eq!(s.claims(&doc, &trial_token).status, tessera_protocol::Status::Revoked);
        let (_, events) = s.admin_get(&format!("/v1/admin/events?license={}", by_email["license"].as_str().unwrap())).await;
        assert_eq!(events["items"][0]["after"]["reason"], format!("trial converted to {paid}"));
        // Asked again, the machine gets its (ended) trial, not a new one.
        let (_, again) = trial(&s, json!({"policy": "eval", "fingerprint": "m-1"})).await;
        assert_eq!((again["created"].as_bool(), &again["license"]), (Some(false), &by_email["license"]));
        // By the SDK: the paid token now used where the trial was.
        let convert = |trial_token: &str, token: &str| s.request("POST", "/v1/trials/convert", Some(json!({"trial_token": trial_token, "token": token})), None);
        let t2 = by_token["token"].as_str().unwrap();
        assert_error(&convert(&paid_token, t2).await, 422, "not_a_paid_license");
        let (status, _) = convert(t2, &paid_token).await;
        assert_eq!(status, 204);
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{}", by_token["license"].as_str().unwrap())).await;
        assert_eq!(v["state"], "revoked");
        assert_error(&convert(t2, &paid_token).await, 409, "not_a_trial");
        assert_error(&convert(&paid_token, &paid_token).await, 409, "not_a_trial");
    }

    async fn trials_are_limited_per_address(backend: Backend) {
        let s = TestServer::start_with(Options {
            backend: backend.clone(),
            limits: Some(tessera_server::Limits { trials_per_ip_per_hour: 3, ..tessera_server::Limits::default() }),
            ..Options::default()
        }).await;
        eval_policy(&s).await;
        for i in 0..3 {
            let (status, v) = trial(&s, json!({"policy": "eval", "fingerprint": format!("m-{i}")})).await;
            assert_eq!(status, 200, "{v}");
        }
        let got = trial(&s, json!({"policy": "eval", "fingerprint": "m-9"})).await;
        assert_error(&got, 429, "rate_limited");
    }
}
