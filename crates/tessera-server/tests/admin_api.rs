//! The admin API: authentication, policies, the license lifecycle, events.

use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::{Expectations, LicenseToken, verify};
use tessera_testkit::{Options, TestServer, assert_error, backend_tests};

fn ids(v: &Value) -> Vec<&str> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect()
}

fn expires(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap())
        .unwrap()
        .to_utc()
}

backend_tests! {
    async fn every_admin_route_requires_a_valid_admin_key(backend: Backend) {
        // 52 failures from one address: above the default failure limit
        // (tested on its own below), so it is raised here.
        let s = TestServer::start_with(Options {
            backend: backend.clone(),
            limits: Some(tessera_server::Limits {
                admin_auth_failures_per_minute: 1_000,
                ..tessera_server::Limits::default()
            }),
            ..Options::default()
        })
        .await;
        let (id, _) = s.issue_default().await;
        let other_key = tessera_protocol::AdminKey::generate(&mut rand::rng());
        let routes = [
            ("GET", "/v1/admin/policies".to_string()),
            ("POST", "/v1/admin/policies".to_string()),
            ("GET", "/v1/admin/customers".to_string()),
            ("GET", "/v1/admin/licenses".to_string()),
            ("POST", "/v1/admin/licenses".to_string()),
            ("GET", format!("/v1/admin/licenses/{id}")),
            ("POST", format!("/v1/admin/licenses/{id}/extend")),
            ("POST", format!("/v1/admin/licenses/{id}/suspend")),
            ("POST", format!("/v1/admin/licenses/{id}/reinstate")),
            ("POST", format!("/v1/admin/licenses/{id}/revoke")),
            ("POST", format!("/v1/admin/licenses/{id}/export")),
            ("GET", format!("/v1/admin/licenses/{id}/instances")),
            ("GET", "/v1/admin/events".to_string()),
        ];
        for (method, path) in &routes {
            for bearer in [
                None,
                Some("tsa_nonsense"),
                Some(other_key.expose_secret()),
                Some(s.admin_key.as_str()).map(|_| "Basic abc"),
            ] {
                let got = s.request(method, path, Some(json!({})), bearer).await;
                assert_error(&got, 401, "unauthorized");
            }
        }
        // The license is untouched.
        let (_, v) = s
            .admin_get(&format!("/v1/admin/licenses/{id}"))
            .await;
        assert_eq!(v["revision"], 1);
        let res = s.get("/v1/admin/policies").await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
    }

    async fn policies_create_list_and_refuse_bad_input(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (status, v) = s
            .admin_post("/v1/admin/policies", json!({
                "name": "gold", "duration": "365d", "features": ["sso", "sso", "audit"], "max_users": 50,
                "refresh_interval": "30m", "offline_grace": "14d", "renewal_basis": "from_now"
            }))
            .await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["name"], "gold");
        assert_eq!(v["duration"], "1y");
        assert_eq!(v["features"], json!(["sso", "audit"]));
        assert_eq!(v["refresh_interval"], "30m");
        assert_eq!(v["offline_grace"], "14d");
        assert_eq!(v["renewal_basis"], "from_now");

        let got = s.admin_post("/v1/admin/policies", json!({"name": "gold"})).await;
        assert_error(&got, 409, "policy_exists");
        let got = s.admin_post("/v1/admin/policies", json!({"name": ""})).await;
        assert_error(&got, 422, "missing_field");
        let got = s.admin_post("/v1/admin/policies", json!({"name": "x", "duration": "soon"})).await;
        assert_error(&got, 422, "invalid_duration");
        let got = s.admin_post("/v1/admin/policies", json!({"name": "x", "refresh_interval": "2d", "offline_grace": "1d"})).await;
        assert_error(&got, 422, "invalid_duration");
        let got = s.admin_post("/v1/admin/policies", json!({"name": "x", "auto_renew": true})).await;
        assert_error(&got, 422, "invalid_field");
        let got = s.admin_post("/v1/admin/policies", json!({"name": "x", "renewal_basis": "sometimes"})).await;
        assert_error(&got, 400, "invalid_json");

        let (status, v) = s.admin_get("/v1/admin/policies").await;
        assert_eq!(status, 200);
        let names: Vec<_> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["default", "gold"]);

        // A license under the policy takes its defaults and its client settings.
        let (id, token) = s
            .issue(json!({"customer": "Acme", "plan": "p", "policy": "gold"}))
            .await;
        let (_, l) = s
            .admin_get(&format!("/v1/admin/licenses/{id}"))
            .await;
        assert_eq!(l["features"], json!(["sso", "audit"]));
        assert_eq!(l["max_users"], 50);
        assert_eq!(l["policy"], "gold");
        assert_eq!(expires(&l), s.now() + Duration::days(365));
        let (_, v) = s.validate(json!({"token": token})).await;
        assert_eq!(v["verdict"]["max_users"], 50);
        let refresh =
            chrono::DateTime::parse_from_rfc3339(v["verdict"]["refresh_after"].as_str().unwrap())
                .unwrap();
        assert_eq!(refresh.to_utc(), s.now() + Duration::minutes(30));
        let exp = chrono::DateTime::parse_from_rfc3339(v["verdict"]["exp"].as_str().unwrap()).unwrap();
        assert_eq!(exp.to_utc(), s.now() + Duration::days(14));
    }

    async fn issuing_checks_its_input(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let cases = [
            (json!({"customer": "A", "plan": "p"}), 422, "expiry_required"),
            (json!({"customer": "A", "plan": "p", "duration": "30d", "perpetual": true}), 422, "conflicting_fields"),
            (json!({"customer": "A", "plan": "p", "expires_at": "2001-01-01"}), 422, "expiry_in_past"),
            (json!({"customer": "A", "plan": "p", "expires_at": "someday"}), 422, "invalid_date"),
            (json!({"customer": "", "plan": "p", "duration": "1d"}), 422, "missing_field"),
            (json!({"customer": "A", "plan": "p\u{0007}", "duration": "1d"}), 422, "invalid_field"),
            (json!({"customer": "A", "plan": "p", "duration": "1d", "policy": "nope"}), 404, "policy_not_found"),
            (json!({"customer": "A", "duration": "1d"}), 400, "invalid_json"),
        ];
        for (body, status, code) in cases {
            assert_error(
                &s.admin_post("/v1/admin/licenses", body).await,
                status,
                code,
            );
        }
        let (status, v) = s
            .admin_post("/v1/admin/licenses", json!({"customer": "A", "plan": "p", "perpetual": true}))
            .await;
        assert_eq!(status, 201);
        assert_eq!(v["license"]["expires_at"], Value::Null);
        let token = v["token"].as_str().unwrap();
        assert!(LicenseToken::parse(token).is_ok());
        assert_eq!(v["license"]["token_last4"], &token[token.len() - 4..]);
        // The token is shown once: no read answer contains it.
        let id = v["license"]["id"].as_str().unwrap();
        let (_, shown) = s
            .admin_get(&format!("/v1/admin/licenses/{id}"))
            .await;
        assert!(!shown.to_string().contains(token));
        let (_, listed) = s.admin_get("/v1/admin/licenses").await;
        assert!(!listed.to_string().contains(token));
    }

    async fn show_and_list_with_filters_and_pages(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (a, _) = s.issue_for("Acme", "10d").await;
        let (b, _) = s.issue_for("Acme", "60d").await;
        let (c, _) = s.issue_for("Beta", "5d").await;
        s.admin("POST", &format!("/v1/admin/licenses/{c}/suspend"), None)
            .await;

        let (_, v) = s.admin_get("/v1/admin/licenses").await;
        assert_eq!(ids(&v), [a.as_str(), b.as_str(), c.as_str()]);
        let (_, v) = s
            .admin_get("/v1/admin/licenses?customer=Acme")
            .await;
        assert_eq!(ids(&v), [a.as_str(), b.as_str()]);
        let (_, v) = s
            .admin_get("/v1/admin/licenses?state=suspended")
            .await;
        assert_eq!(ids(&v), [c.as_str()]);
        let (_, v) = s
            .admin_get("/v1/admin/licenses?expiring_within=30d")
            .await;
        assert_eq!(ids(&v), [a.as_str(), c.as_str()]);
        s.clock.advance(Duration::days(7));
        let (_, v) = s
            .admin_get("/v1/admin/licenses?expiring_within=30d")
            .await;
        assert_eq!(
            ids(&v),
            [a.as_str()],
            "already expired licenses are not 'expiring'"
        );

        let (_, v) = s.admin_get("/v1/admin/licenses?limit=2").await;
        assert_eq!(ids(&v), [a.as_str(), b.as_str()]);
        let cursor = v["next_cursor"].as_str().unwrap().to_owned();
        let (_, v) = s
            .admin_get(&format!("/v1/admin/licenses?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(ids(&v), [c.as_str()]);
        assert_eq!(v["next_cursor"], Value::Null);

        let got = s.admin_get("/v1/admin/licenses?state=happy").await;
        assert_error(&got, 400, "invalid_state");
        let got = s.admin_get("/v1/admin/licenses?expiring_within=soon").await;
        assert_error(&got, 400, "invalid_duration");
        let got = s.admin_get("/v1/admin/licenses?limit=x").await;
        assert_error(&got, 400, "invalid_query");
        let got = s.admin_get("/v1/admin/licenses/lic_nope").await;
        assert_error(&got, 400, "invalid_license_id");
        let got = s.admin_get("/v1/admin/licenses/lic_01936b2e-7c3a-7def-8a12-0123456789ab").await;
        assert_error(&got, 404, "license_not_found");
        let (_, v) = s
            .admin_get(&format!("/v1/admin/licenses/{a}"))
            .await;
        tessera_testkit::assert_license_view(&v);
        let (_, v) = s.admin_get("/v1/admin/customers").await;
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
    }

    async fn extend_to_a_date_or_by_a_duration_per_renewal_basis(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        s.admin_post("/v1/admin/policies", json!({"name": "now", "renewal_basis": "from_now"}))
        .await;
        let (a, _) = s.issue_for("A", "10d").await;
        let (b, _) = s
            .issue(json!({"customer": "A", "plan": "p", "duration": "10d", "policy": "now"}))
            .await;
        let start = s.now();

        let (status, v) = s
            .admin_post(&format!("/v1/admin/licenses/{a}/extend"), json!({"by": "30d"}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(expires(&v), start + Duration::days(40), "from expiry");
        let (_, v) = s
            .admin_post(&format!("/v1/admin/licenses/{b}/extend"), json!({"by": "30d"}))
            .await;
        assert_eq!(expires(&v), start + Duration::days(30), "from now");
        let (_, v) = s
            .admin_post(&format!("/v1/admin/licenses/{a}/extend"), json!({"to": "2099-01-01"}))
            .await;
        assert_eq!(v["expires_at"], "2099-01-01T00:00:00Z");
        assert_eq!(v["revision"], 3);

        let path = format!("/v1/admin/licenses/{a}/extend");
        let got = s.admin_post(&path, json!({})).await;
        assert_error(&got, 422, "conflicting_fields");
        let got = s.admin_post(&path, json!({"to": "2099-01-01", "by": "1d"})).await;
        assert_error(&got, 422, "conflicting_fields");
        let got = s.admin_post(&path, json!({"to": "2001-01-01"})).await;
        assert_error(&got, 422, "expiry_in_past");
        let got = s.admin_post(&path, json!({"by": "1 day"})).await;
        assert_error(&got, 422, "invalid_duration");
        let (p, _) = s
            .issue(json!({"customer": "A", "plan": "p", "perpetual": true}))
            .await;
        let got = s.admin_post(&format!("/v1/admin/licenses/{p}/extend"), json!({"by": "1d"})).await;
        assert_error(&got, 409, "license_perpetual");
        s.admin("POST", &format!("/v1/admin/licenses/{a}/revoke"), None)
            .await;
        let got = s.admin_post(&path, json!({"by": "1d"})).await;
        assert_error(&got, 409, "license_revoked");
        // Failed changes leave the revision alone.
        let (_, v) = s
            .admin_get(&format!("/v1/admin/licenses/{a}"))
            .await;
        assert_eq!(v["revision"], 4);
    }

    async fn suspend_reinstate_revoke_transitions(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let act = |action: &str| format!("/v1/admin/licenses/{id}/{action}");
        let got = s.admin("POST", &act("reinstate"), None).await;
        assert_error(&got, 409, "not_suspended");
        let (status, v) = s
            .admin(
                "POST",
                &act("suspend"),
                Some(json!({"reason": "unpaid invoice"})),
            )
            .await;
        assert_eq!(
            (status.as_u16(), v["state"].as_str(), v["status"].as_str()),
            (200, Some("suspended"), Some("suspended"))
        );
        let (_, d) = s.validate(json!({"token": token})).await;
        assert_eq!(
            (
                d["verdict"]["status"].as_str(),
                d["verdict"]["valid"].as_bool()
            ),
            (Some("suspended"), Some(false))
        );
        let got = s.admin("POST", &act("suspend"), None).await;
        assert_error(&got, 409, "already_suspended");
        let (_, v) = s.admin("POST", &act("reinstate"), None).await;
        assert_eq!(v["state"], "active");
        let (_, v) = s.admin("POST", &act("revoke"), None).await;
        assert_eq!(v["state"], "revoked");
        let (_, d) = s.validate(json!({"token": token})).await;
        assert_eq!(d["verdict"]["status"], "revoked");
        let got = s.admin("POST", &act("revoke"), None).await;
        assert_error(&got, 409, "already_revoked");
        let got = s.admin("POST", &act("suspend"), None).await;
        assert_error(&got, 409, "license_revoked");
        let got = s.admin("POST", &act("reinstate"), None).await;
        assert_error(&got, 409, "license_revoked");
        let got = s.admin("POST", &act("suspend"), Some(json!({"reason": 5}))).await;
        assert_error(&got, 400, "invalid_json");
        let got = s.admin("POST", "/v1/admin/licenses/lic_01936b2e-7c3a-7def-8a12-0123456789ab/revoke", None).await;
        assert_error(&got, 404, "license_not_found");
    }

    async fn revision_rises_by_exactly_one_per_change_with_one_event_each(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let steps = [
            ("extend", Some(json!({"by": "1d"}))),
            ("suspend", None),
            ("reinstate", None),
            ("extend", Some(json!({"to": "2099-06-01"}))),
            ("suspend", Some(json!({"reason": "audit"}))),
            ("revoke", None),
        ];
        for (i, (action, body)) in steps.iter().enumerate() {
            let (status, v) = s
                .admin(
                    "POST",
                    &format!("/v1/admin/licenses/{id}/{action}"),
                    body.clone(),
                )
                .await;
            assert_eq!(status, 200, "{action}: {v}");
            assert_eq!(v["revision"], i as u64 + 2, "{action}");
            let (_, d) = s.validate(json!({"token": token})).await;
            assert_eq!(d["verdict"]["rev"], i as u64 + 2);
        }
        let (_, v) = s
            .admin_get(&format!("/v1/admin/events?license={id}&after=0"))
            .await;
        let events = v["items"].as_array().unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "license.issued",
                "license.extended",
                "license.suspended",
                "license.reinstated",
                "license.extended",
                "license.suspended",
                "license.revoked"
            ]
        );
        let revs: Vec<_> = events
            .iter()
            .map(|e| e["revision"].as_u64().unwrap())
            .collect();
        assert_eq!(revs, [1, 2, 3, 4, 5, 6, 7]);
        assert!(events.iter().all(|e| e["actor"] == "admin"));
        assert_eq!(events[5]["after"]["reason"], "audit");
        assert_eq!(events[1]["before"]["revision"], 1);
        assert_eq!(events[1]["after"]["revision"], 2);
    }

    async fn concurrent_changes_never_duplicate_or_skip_a_revision(backend: Backend) {
        let s = std::sync::Arc::new(TestServer::start_on(backend.clone()).await);
        let (id, _) = s.issue_for("A", "1d").await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = s.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let (status, v) = s
                    .admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
                    .await;
                assert_eq!(status, 200, "{v}");
                v["revision"].as_u64().unwrap()
            }));
        }
        let mut revs = Vec::new();
        for t in tasks {
            revs.push(t.await.unwrap());
        }
        revs.sort_unstable();
        assert_eq!(revs, (2..=21).collect::<Vec<u64>>());
        let (_, v) = s
            .admin_get(&format!("/v1/admin/licenses/{id}"))
            .await;
        assert_eq!(
            expires(&v),
            s.now() + Duration::days(21),
            "every extension counted once"
        );
    }

    async fn events_list_newest_first_and_page(backend: Backend) {
        let (s, a, _) = TestServer::with_license(backend.clone()).await;
        let (b, _) = s.issue_default().await;
        s.admin("POST", &format!("/v1/admin/licenses/{a}/suspend"), None)
            .await;
        let (_, v) = s.admin_get("/v1/admin/events?limit=2").await;
        let items = v["items"].as_array().unwrap();
        assert_eq!(items[0]["kind"], "license.suspended");
        assert_eq!(items[1]["license"], b.as_str());
        let before = v["next_cursor"].as_str().unwrap();
        let (_, v) = s
            .admin_get(&format!("/v1/admin/events?limit=2&before={before}"))
            .await;
        assert_eq!(v["items"][0]["license"], a.as_str());
        assert_eq!(v["items"][0]["kind"], "license.issued");
        let (_, v) = s
            .admin_get(&format!("/v1/admin/events?license={b}"))
            .await;
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
        let got = s.admin_get("/v1/admin/events?after=1&before=3").await;
        assert_error(&got, 400, "conflicting_fields");
        let got = s.admin_get("/v1/admin/events?license=x").await;
        assert_error(&got, 400, "invalid_license_id");
    }

    async fn export_signs_a_long_lived_document(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let (status, v) = s
            .admin_post(&format!("/v1/admin/licenses/{id}/export"), json!({"ttl": "365d"}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["format"], "tessera-license-export/1");
        assert_eq!(v["license"], id.as_str());
        let token = LicenseToken::parse(&token).unwrap();
        let expect = Expectations::for_token(token.fingerprint());
        let doc = verify(
            v["document"].as_str().unwrap().as_bytes(),
            &s.keys(),
            &expect,
            s.now() + Duration::days(300),
        )
        .unwrap();
        assert_eq!(doc.claims().exp, s.now() + Duration::days(365));
        let got = s.admin_post(&format!("/v1/admin/licenses/{id}/export"), json!({"ttl": "forever"})).await;
        assert_error(&got, 422, "invalid_duration");
        let (_, events) = s
            .admin_get(&format!("/v1/admin/events?license={id}"))
            .await;
        assert_eq!(events["items"][0]["kind"], "license.exported");
        let (_, l) = s
            .admin_get(&format!("/v1/admin/licenses/{id}"))
            .await;
        assert_eq!(l["revision"], 1, "an export is not a change");
    }

    async fn validations_record_instances_for_the_fleet_view(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        s.validate(
            json!({"token": token, "instance_id": "i-1", "app_version": "2.0", "usage": {"users": 3}}),
        )
        .await;
        s.validate(json!({"token": token, "instance_id": "i-2"}))
            .await;
        s.clock.advance(Duration::minutes(5));
        s.validate(json!({"token": token, "instance_id": "i-1", "usage": {"users": 4}}))
            .await;
        let (status, v) = s
            .admin_get(&format!("/v1/admin/licenses/{id}/instances"))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["summary"]["total"], 2);
        let instances = v["instances"].as_array().unwrap();
        assert_eq!(instances[0]["instance_id"], "i-1");
        assert_eq!(
            instances[0]["app_version"], "2.0",
            "kept when a later report omits it"
        );
        assert_eq!(instances[0]["users"], 4);
        assert_ne!(instances[0]["first_seen"], instances[0]["last_seen"]);
        assert_eq!(instances[1]["instance_id"], "i-2");
    }
}
