//! The console over HTTP (sessions, CSRF, pages, search) on both backends.
//! The browser tests live with the binary (`tessera-cli/tests/console.rs`).

use chrono::Duration;
use serde_json::json;
use tessera_testkit::{Browserless, TestServer, backend_tests};

/// The number shown in the element with this id (maud may order attributes either way).
fn number(page: &str, id: &str) -> u64 {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} on the page"));
    let rest = &page[at..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap() + open;
    rest[open..close]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("#{id} is not a number: {:?}", &rest[open..close]))
}

backend_tests! {
    async fn the_console_answers_an_offline_request_with_a_download(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = s.issue(json!({"customer": "Bank", "plan": "p", "duration": "30d", "max_machines": 1})).await;
        let mut c = Browserless::new(&s);
        c.sign_in(&s.admin_key).await;
        let csrf = c.csrf().await;
        let (status, page, _) = c.get("/offline").await;
        assert_eq!(status, 200);
        assert!(page.contains("Offline activation") && page.contains("href=\"/offline\""));
        let request = tessera_protocol::offline::OfflineRequest {
            tfp: tessera_protocol::LicenseToken::parse(&token).unwrap().fingerprint(),
            mfp: "0123456789abcdef0123456789abcdef".into(),
            nonce: "00112233445566778899".into(),
            mark: s.now(),
            app_version: Some("5.2".into()),
        }
        .encode()
        .unwrap();
        let origin = format!("http://{}", s.addr);
        let (status, body, headers) = c.post("/offline", &[("csrf", &csrf), ("request", &request), ("ttl", "90d")], Some(&origin)).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers["content-disposition"].to_str().unwrap().contains("response.json"));
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "active", "{answer}");
        assert!(answer["document"].as_str().unwrap().starts_with("v4.public."));
        let (_, machines) = s.admin_get(&format!("/v1/admin/licenses/{id}/machines")).await;
        assert_eq!(machines["active"], 1, "{machines}");
        // A misread code comes back on the form with what was typed.
        let flip = if request.ends_with('Z') { 'Y' } else { 'Z' };
        let misread = format!("{}{flip}", &request[..request.len() - 1]);
        let (status, page, _) = c.post("/offline", &[("csrf", &csrf), ("request", &misread), ("ttl", "90d")], Some(&origin)).await;
        assert_eq!(status, 422, "{page}");
        assert!(page.contains("form-error") && page.contains(&misread[..20]), "{page}");
        // Without the session's token nothing is answered.
        let (status, _, _) = c.post("/offline", &[("request", &request)], Some(&origin)).await;
        assert_eq!(status, 403);
    }

    async fn sessions_are_strict_cookies_and_expire(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let mut c = Browserless::new(&s);
        let (status, _, headers) = c.get("/").await;
        assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/login"));
        let (status, page, _) = c.post("/login", &[("key", "tsa_wrong")], None).await;
        assert_eq!(status, 401);
        assert!(page.contains("That admin key is not valid"));
        let set = c.sign_in(&s.admin_key).await;
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=28800"] {
            assert!(set.contains(flag), "{flag} missing in {set}");
        }
        let (status, page, headers) = c.get("/").await;
        assert_eq!(status, 200);
        assert!(page.contains("signed in with key"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(headers["cache-control"], "no-store");
        // Eight hours later the session is over.
        s.clock.advance(Duration::hours(8) + Duration::seconds(1));
        let (status, _, _) = c.get("/").await;
        assert_eq!(status, 303);
    }

    async fn forms_need_the_session_csrf_token_and_a_same_site_origin(backend: Backend) {
        let (s, id, _) = TestServer::with_license(backend.clone()).await;
        let mut c = Browserless::new(&s);
        c.sign_in(&s.admin_key).await;
        let csrf = c.csrf().await;
        let path = format!("/licenses/{id}/suspend");
        let (status, page, _) = c.post(&path, &[("reason", "x")], None).await;
        assert_eq!(status, 403, "no token");
        assert!(page.contains("This form cannot be accepted"));
        let (status, _, _) = c.post(&path, &[("csrf", &"0".repeat(64))], None).await;
        assert_eq!(status, 403, "wrong token");
        let (status, _, _) = c.post(&path, &[("csrf", &csrf)], Some("https://evil.example")).await;
        assert_eq!(status, 403, "another site");
        let (_, l) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(l["state"], "active", "nothing changed");
        let origin = format!("http://{}", s.addr);
        let (status, _, headers) = c.post(&path, &[("csrf", &csrf), ("reason", "late payment")], Some(&origin)).await;
        assert_eq!((status, headers["location"].to_str().unwrap()), (303, format!("/licenses/{id}?done=suspended").as_str()));
        let (_, events) = s.admin_get(&format!("/v1/admin/events?license={id}")).await;
        assert_eq!(events["items"][0]["kind"], "license.suspended");
        assert_eq!(events["items"][0]["actor"], "admin");
        assert_eq!(events["items"][0]["after"]["reason"], "late payment");
        // Logging out ends the session for good.
        let (status, _, _) = c.post("/logout", &[("csrf", &csrf)], None).await;
        assert_eq!(status, 303);
        let (status, _, _) = c.get("/licenses").await;
        assert_eq!(status, 303);
    }

    async fn issuing_in_the_console_shows_the_token_once(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let mut c = Browserless::new(&s);
        c.sign_in(&s.admin_key).await;
        let csrf = c.csrf().await;
        let (status, page, headers) = c
            .post("/licenses", &[("csrf", &csrf), ("customer", "Acme"), ("plan", "gold"), ("features", "sso, audit, api_calls=100/month"), ("duration", "30d"), ("policy", "default")], None)
            .await;
        assert_eq!(status, 201, "{page}");
        assert_eq!(headers["cache-control"], "no-store");
        let start = page.find("tsr_").unwrap();
        let token = &page[start..start + 40];
        assert!(tessera_protocol::LicenseToken::parse(token).is_ok());
        let (_, v) = s.validate(json!({"token": token})).await;
        assert_eq!(v["verdict"]["features"], json!(["sso", "audit", "api_calls"]));
        let id = v["verdict"]["lic"].as_str().unwrap();
        // A metered feature shows its use this period (§22).
        let body = json!({"token": token, "instance_id": "i", "seq": 1, "amounts": {"api_calls": 12}});
        assert_eq!(s.request("POST", "/v1/consumption", Some(body), None).await.0, 200);
        let (status, page, _) = c.get(&format!("/licenses/{id}")).await;
        assert_eq!(status, 200);
        assert!(page.contains("sso, audit, api_calls (12 of 100 this month)"), "{page}");
        assert!(!page.contains(token), "shown once");
        assert!(page.contains("Seats: no usage reported (no limit)"), "the metering line");
        assert!(page.contains("id=\"auto-renew\">manual<"), "renewal is manual");
        // A mistake comes back as the form, with the values kept and a sentence.
        let (status, page, _) = c.post("/licenses", &[("csrf", &csrf), ("customer", "Acme"), ("plan", "gold"), ("max_users", "many")], None).await;
        assert_eq!(status, 422);
        assert!(page.contains("The seat limit must be a whole number.") && page.contains("value=\"Acme\""));
        let (status, page, _) = c.post("/licenses", &[("csrf", &csrf), ("customer", "Acme"), ("plan", "gold"), ("expires_at", "2001-01-01")], None).await;
        assert_eq!(status, 422);
        assert!(page.contains("Expires_at must be in the future"), "{page}");
    }

    async fn pages_search_and_explain_errors(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let mut ids = Vec::new();
        for i in 0..30 {
            let (id, token) = s.issue(json!({"customer": format!("Customer {i:02}"), "plan": if i % 2 == 0 { "gold" } else { "silver" }, "duration": format!("{}d", i + 1)})).await;
            ids.push((id, token));
        }
        let mut c = Browserless::new(&s);
        c.sign_in(&s.admin_key).await;
        let (_, page, _) = c.get("/licenses").await;
        assert!(page.contains("30 licenses · page 1 of 2"), "paginated");
        let (_, page, _) = c.get("/licenses?q=&state=&expiring=&page=2").await;
        assert!(page.contains("page 2 of 2") && page.contains("Customer 00"));
        let (_, page, _) = c.get("/licenses?q=customer+07").await;
        assert!(page.contains("1 licenses") && page.contains("Customer 07"));
        let last4 = &ids[3].1[ids[3].1.len() - 4..];
        let (_, page, _) = c.get(&format!("/licenses?q={last4}")).await;
        assert!(page.contains(&ids[3].0), "found by the token's last four");
        let (_, page, _) = c.get("/licenses?q=SILVER&expiring=7d").await;
        assert!(page.contains("3 licenses"), "silver (odd i) expiring within 7 days: i = 1, 3, 5");
        let (_, page, _) = c.get(&format!("/licenses?q={}", &ids[5].0[..12])).await;
        assert!(page.contains("30 licenses"), "every id starts the same way");
        let (_, page, _) = c.get("/licenses?q=%25").await;
        assert!(page.contains("No license matches") || page.contains("30 licenses"), "wildcards are not wildcards");
        let (status, page, _) = c.get("/licenses?state=happy").await;
        assert_eq!(status, 400);
        assert!(page.contains("Choose a state from the list."));
        let (status, page, _) = c.get("/licenses/lic_01936b2e-7c3a-7def-8a12-0123456789ab").await;
        assert_eq!(status, 404);
        assert!(page.contains("There is no license") && !page.contains("{\"error\""));
        let (status, page, _) = c.get("/licenses/not-an-id").await;
        assert_eq!(status, 404);
        assert!(page.contains("That is not a license id"));
        let (status, page, _) = c.get(&format!("/licenses/{}/extend?by=soon", ids[0].0)).await;
        assert_eq!(status, 422);
        assert!(page.contains("Please check what you entered"));
        // The dashboard counts.
        let (_, page, _) = c.get("/").await;
        assert_eq!(number(&page, "count-active"), 30, "30 active");
        assert_eq!(number(&page, "expiring-7"), 7, "7 expire within 7 days");
        s.clock.advance(Duration::days(2) + Duration::hours(1));
        c.sign_in(&s.admin_key).await; // two days outlive the eight-hour session
        let (_, page, _) = c.get("/").await;
        assert_eq!(number(&page, "count-expired"), 2, "2 expired");
        // The policies and events pages.
        let (status, page, _) = c.get("/policies").await;
        assert_eq!(status, 200);
        assert!(page.contains("default"));
        let (status, page, _) = c.get("/events").await;
        assert_eq!(status, 200);
        assert!(page.contains("license.issued"));
    }

    /// Hardening item 9: 603 instances made the license page 120 KB. The
    /// console's fleet table is paginated (25 a page) with links between pages.
    async fn the_fleet_table_is_paginated(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        for i in 0..30 {
            let (status, _) = s
                .validate(json!({"token": token, "instance_id": format!("i-page{i:04}")}))
                .await;
            assert_eq!(status, 200);
        }
        let mut c = Browserless::new(&s);
        c.sign_in(&s.admin_key).await;
        let (_, page, _) = c.get(&format!("/licenses/{id}")).await;
        assert_eq!(page.matches("i-page").count(), 25, "the first page");
        assert!(page.contains("Installations 1–25 of 30"), "{page}");
        assert!(page.contains(&format!("/licenses/{id}?offset=25")), "a link to the next page");
        let (_, page, _) = c.get(&format!("/licenses/{id}?offset=25")).await;
        assert_eq!(page.matches("i-page").count(), 5, "the rest");
        assert!(page.contains("Installations 26–30 of 30"));
        assert!(page.contains(&format!("/licenses/{id}?offset=0")), "a link back");
        let (_, json, _) = c.get(&format!("/licenses/{id}/fleet.json?offset=25")).await;
        let fleet: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(fleet["instances"].as_array().unwrap().len(), 5);
    }
}
