//! Entitlements (docs/PROTOCOL.md §20): a feature may end before its
//! license; names have an alphabet; bad input is refused with nothing
//! written. What expiry takes away (§21): a policy's `on_expiry`.

use chrono::Duration;
use serde_json::json;
use tessera_testkit::{TestServer, assert_error, backend_tests};

fn at(t: chrono::DateTime<chrono::Utc>) -> String {
    tessera_protocol::time::format(&t)
}

backend_tests! {
    async fn a_feature_ends_on_its_own_date(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let end = s.now() + Duration::days(2);
        let body = json!({"customer": "Acme", "plan": "p", "duration": "30d",
                          "features": ["sso", format!("audit@{}", at(end))]});
        let (id, token) = s.issue(body).await;
        let (_, view) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(view["features"], json!(["sso", "audit"]));
        assert_eq!(view["entitlements"]["audit"]["expires_at"], json!(at(end)));
        let (_, v) = s.validate(json!({"token": token})).await;
        let claims = s.claims(v["document"].as_str().unwrap(), &token);
        assert_eq!(claims.features, ["sso", "audit"]);
        assert_eq!(claims.entitlements["audit"].expires_at, Some(end));
        // Signed after its end, a document no longer grants it.
        s.clock.advance(Duration::days(3));
        let (_, v) = s.validate(json!({"token": token, "nonce": "after-the-end"})).await;
        let claims = s.claims(v["document"].as_str().unwrap(), &token);
        assert_eq!(claims.features, ["sso"]);
        assert!(claims.entitlements.is_empty());
        assert!(claims.valid, "the license itself runs on");
    }

    async fn bad_features_are_refused_with_nothing_written(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let issue = |features: serde_json::Value| {
            s.admin_post("/v1/admin/licenses", json!({"customer": "Bad", "plan": "p", "duration": "30d", "features": features}))
        };
        let past = at(s.now() - Duration::days(1));
        let after_license = at(s.now() + Duration::days(31));
        for bad in [
            json!(["audit@2026-13-01"]),
            json!([format!("audit@{past}")]),
            json!([format!("audit@{after_license}")]),
            json!(["has space"]),
            json!(["@2030-01-01"]),
            json!(["audit@2030-01-01", "audit@2030-02-01"]),
            json!(["x".repeat(65)]),
        ] {
            assert_error(&issue(bad.clone()).await, 422, "invalid_feature");
        }
        let policy = json!({"name": "addons", "duration": "30d", "features": ["audit@2030-01-01"]});
        assert_error(&s.admin_post("/v1/admin/policies", policy).await, 422, "invalid_feature");
        let (_, list) = s.admin_get("/v1/admin/licenses?customer=Bad").await;
        assert_eq!(list["items"], json!([]), "nothing half-written");
        // A perpetual license takes any future end.
        let body = json!({"customer": "Acme", "plan": "p", "perpetual": true, "features": ["audit@2099-01-01"]});
        let (status, _) = s.admin_post("/v1/admin/licenses", body).await;
        assert_eq!(status, 201);
    }

    async fn what_expiry_takes_away_is_the_policys_choice(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let policy = |name: &str, rule: &str| json!({"name": name, "duration": "30d", "on_expiry": rule});
        let (status, view) = s.admin_post("/v1/admin/policies", policy("keep", "keep_access")).await;
        assert_eq!((status.as_u16(), &view["on_expiry"]), (201, &json!("keep_access")), "{view}");
        let (status, _) = s.admin_post("/v1/admin/policies", policy("versions", "keep_versions_released_before_expiry")).await;
        assert_eq!(status, 201);
        let got = s.admin_post("/v1/admin/policies", policy("bad", "forever")).await;
        assert_error(&got, 400, "invalid_json");
        let issue = |policy: &str| json!({"customer": "Acme", "plan": "p", "policy": policy, "duration": "1d"});
        let (_, keep) = s.issue(issue("keep")).await;
        let (_, versions) = s.issue(issue("versions")).await;
        let (_, plain) = s.issue(issue("default")).await;
        s.clock.advance(Duration::days(2));
        let s = &s;
        let claims = async |token: String| {
            let (_, v) = s.validate(json!({"token": token, "nonce": "after-expiry"})).await;
            s.claims(v["document"].as_str().unwrap(), &token)
        };
        use tessera_protocol::wire::OnExpiry;
        let c = claims(keep).await;
        assert_eq!((c.status, c.valid, c.on_expiry), (tessera_protocol::Status::Expired, true, OnExpiry::KeepAccess));
        // Which versions are covered only the client knows (its release date).
        let c = claims(versions).await;
        assert_eq!((c.status, c.valid, c.on_expiry), (tessera_protocol::Status::Expired, false, OnExpiry::KeepVersionsReleasedBeforeExpiry));
        let c = claims(plain).await;
        assert_eq!((c.status, c.valid, c.on_expiry), (tessera_protocol::Status::Expired, false, OnExpiry::LoseAccess));
    }

    async fn a_license_kept_past_expiry_keeps_its_machines_working(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        for (name, rule) in [("keep", "keep_access"), ("lose", "lose_access")] {
            let (status, _) = s.admin_post("/v1/admin/policies", json!({"name": name, "duration": "30d", "on_expiry": rule})).await;
            assert_eq!(status, 201);
        }
        let issue = |policy: &str| json!({"customer": "Acme", "plan": "p", "policy": policy, "duration": "1d", "max_machines": 2});
        let (_, keep) = s.issue(issue("keep")).await;
        let (_, lose) = s.issue(issue("lose")).await;
        s.clock.advance(Duration::days(2));
        let s = &s;
        let activate = async |token: String| {
            let (status, v) = s.request("POST", "/v1/machines/activate", Some(json!({"token": token, "fingerprint": "m-1"})), None).await;
            assert_eq!(status, 200, "{v}");
            s.claims(v["document"].as_str().unwrap(), &token)
        };
        // Kept past expiry: marked expired, still usable, and the machine
        // takes its place (it used to be refused as if the license had lapsed).
        let c = activate(keep).await;
        assert_eq!((c.status, c.valid), (tessera_protocol::Status::Expired, true));
        assert!(c.machine.as_ref().and_then(|m| m.id.as_ref()).is_some(), "{c:?}");
        let c = activate(lose).await;
        assert_eq!((c.status, c.valid), (tessera_protocol::Status::Expired, false));
        assert!(c.machine.as_ref().and_then(|m| m.id.as_ref()).is_none(), "{c:?}");
    }
}
