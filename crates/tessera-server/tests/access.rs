//! Products and scoped admin keys (docs/PROTOCOL.md §28, §29), on both
//! backends: documents carry the product and a client configured for
//! another refuses them; every role is refused (403 `forbidden`) every
//! action it lacks, through the API and the console; product limits,
//! expiry, revocation (sessions end) and the last admin key.

use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::{Expectations, LicenseToken};
use tessera_testkit::{Browserless, TestServer, assert_error, backend_tests};

/// Create an admin key with the bootstrap key; the new key.
async fn key(s: &TestServer, body: Value) -> String {
    let (status, v) = s.admin_post("/v1/admin/keys", body).await;
    assert_eq!(status, 201, "{v}");
    assert!(v.get("key_hash").is_none() && v["key"].as_str().unwrap().starts_with("tsa_"));
    v["key"].as_str().unwrap().to_owned()
}

async fn product(s: &TestServer, name: &str) {
    let (status, v) = s
        .admin_post(
            "/v1/admin/products",
            json!({"name": name, "display_name": name.to_uppercase()}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
}

/// Every admin action a role may or may not take, against license `id`.
fn actions(id: &str) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let l = |rest: &str| format!("/v1/admin/licenses/{id}{rest}");
    vec![
        ("GET", "/v1/admin/licenses".into(), None, "read"),
        ("GET", l(""), None, "read"),
        ("GET", l("/instances"), None, "read"),
        ("GET", l("/usage"), None, "read"),
        ("GET", "/v1/admin/events".into(), None, "read"),
        ("GET", "/v1/admin/products".into(), None, "read"),
        (
            "POST",
            "/v1/admin/licenses".into(),
            Some(json!({"customer": "N", "plan": "p", "duration": "30d"})),
            "issue",
        ),
        ("POST", l("/extend"), Some(json!({"by": "1d"})), "extend"),
        ("POST", l("/suspend"), Some(json!({})), "suspend"),
        ("POST", l("/reinstate"), Some(json!({})), "reinstate"),
        (
            "POST",
            "/v1/admin/policies".into(),
            Some(json!({"name": format!("pol-{}", &id[id.len() - 6..])})),
            "admin",
        ),
        ("GET", "/v1/admin/webhooks".into(), None, "admin"),
        ("GET", "/v1/admin/keys".into(), None, "admin"),
        (
            "POST",
            "/v1/admin/products".into(),
            Some(json!({"name": format!("p-{}", &id[id.len() - 6..])})),
            "admin",
        ),
        ("POST", l("/revoke"), Some(json!({})), "admin"),
    ]
}

fn allowed(role: &str, action: &str) -> bool {
    match role {
        "admin" => true,
        "read" => action == "read",
        "support" => matches!(action, "read" | "extend" | "suspend" | "reinstate"),
        "issuer" => matches!(action, "read" | "issue" | "extend"),
        _ => unreachable!(),
    }
}

backend_tests! {
    async fn products_own_licenses_and_documents_name_them(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (old, old_token) = s.issue_default().await;
        product(&s, "metabase-ee").await;
        assert_error(&s.admin_post("/v1/admin/products", json!({"name": "metabase-ee"})).await, 409, "product_exists");
        for bad in ["", "Metabase", "a_b", "-x", &"a".repeat(65)] {
            assert_error(&s.admin_post("/v1/admin/products", json!({"name": bad})).await, 422, "invalid_product");
        }
        let (status, p) = s.admin_post("/v1/admin/policies", json!({"name": "ee", "product": "metabase-ee", "duration": "365d"})).await;
        assert_eq!((status.as_u16(), p["product"].as_str()), (201, Some("metabase-ee")), "{p}");
        assert_error(&s.admin_post("/v1/admin/policies", json!({"name": "x", "product": "nope"})).await, 404, "product_not_found");

        let (ee, ee_token) = s.issue(json!({"customer": "A", "plan": "p", "policy": "ee"})).await;
        let (ee2, _) = s.issue(json!({"customer": "B", "plan": "p", "product": "metabase-ee", "duration": "30d"})).await;
        assert_error(&s.admin_post("/v1/admin/licenses", json!({"customer": "C", "plan": "p", "policy": "ee", "product": "default"})).await, 422, "wrong_product");
        assert_error(&s.admin_post("/v1/admin/licenses", json!({"customer": "C", "plan": "p", "product": "nope", "duration": "1d"})).await, 404, "product_not_found");

        // Licenses from before products are the `default` product.
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{old}")).await;
        assert_eq!(v["product"], "default");
        let (_, v) = s.admin_get("/v1/admin/licenses?product=metabase-ee").await;
        let mut ids: Vec<&str> = v["items"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        let mut want = vec![ee.as_str(), ee2.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want);
        let (_, v) = s.admin_get("/v1/admin/events?product=default").await;
        assert!(v["items"].as_array().unwrap().iter().all(|e| e["license"] == json!(old)), "{v}");
        let (_, v) = s.admin_get("/v1/admin/products").await;
        let counts: Vec<(String, u64)> = v["items"].as_array().unwrap().iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["licenses"].as_u64().unwrap())).collect();
        assert_eq!(counts, vec![("default".into(), 1), ("metabase-ee".into(), 2)]);

        // The document names the product; a client of another refuses it.
        let (_, v) = s.validate(json!({"token": ee_token})).await;
        let doc = v["document"].as_str().unwrap();
        let tfp = LicenseToken::parse(&ee_token).unwrap().fingerprint();
        assert_eq!(s.claims(doc, &ee_token).product.as_deref(), Some("metabase-ee"));
        let wrong = tessera_protocol::verify(doc.as_bytes(), &s.keys(),
            &Expectations::for_token(tfp.clone()).with_product(Some("default".into())), s.now());
        match wrong {
            Err(e) => assert_eq!(e.code(), "wrong_product", "{e}"),
            Ok(_) => panic!("a metabase-ee license verified for product default"),
        }
        s.verified(doc, &Expectations::for_token(tfp).with_product(Some("metabase-ee".into())));
        let (_, v) = s.validate(json!({"token": old_token})).await;
        let old_tfp = LicenseToken::parse(&old_token).unwrap().fingerprint();
        let claims = s.verified(v["document"].as_str().unwrap(),
            &Expectations::for_token(old_tfp).with_product(Some("default".into()))).claims().clone();
        assert_eq!(claims.product.as_deref(), Some("default"));
    }

    async fn every_role_is_refused_what_it_lacks(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        for role in ["read", "support", "issuer", "admin"] {
            let k = key(&s, json!({"name": format!("k-{role}"), "role": role})).await;
            let (id, _) = s.issue_for(&format!("Customer {role}"), "30d").await;
            for (method, path, body, action) in actions(&id) {
                let got = s.request(method, &path, body, Some(&k)).await;
                if allowed(role, action) {
                    assert!(got.0.is_success(), "{role} {method} {path}: {got:?}");
                } else {
                    assert_error(&got, 403, "forbidden");
                    let message = got.1["error"]["message"].as_str().unwrap();
                    assert!(message.contains(role), "{message}");
                }
            }
        }
        // The audit log names the key that acted.
        let (_, v) = s.admin_get("/v1/admin/events?limit=500").await;
        let issued_by: Vec<&str> = v["items"].as_array().unwrap().iter()
            .filter(|e| e["kind"] == "license.issued" && e["actor"] != "admin")
            .map(|e| e["actor"].as_str().unwrap()).collect();
        let mut issued_by = issued_by;
        issued_by.sort_unstable();
        assert_eq!(issued_by, vec!["k-admin", "k-issuer"]);
        let created: Vec<Value> = v["items"].as_array().unwrap().iter()
            .filter(|e| e["kind"] == "admin_key.created").cloned().collect();
        assert_eq!(created.len(), 4);
        assert!(created.iter().all(|e| !e.to_string().contains("tsa_")), "no key in the log");
    }

    async fn a_key_limited_to_a_product_sees_and_touches_only_it(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        product(&s, "ee").await;
        let (mine, _) = s.issue(json!({"customer": "A", "plan": "p", "product": "ee", "duration": "30d"})).await;
        let (other, _) = s.issue_for("B", "30d").await;
        let k = key(&s, json!({"name": "ci", "role": "issuer", "products": ["ee"]})).await;
        let get = |path: String| { let k = k.clone(); let s = &s; async move { s.request("GET", &path, None, Some(&k)).await } };
        assert_eq!(get(format!("/v1/admin/licenses/{mine}")).await.0, 200);
        assert_error(&get(format!("/v1/admin/licenses/{other}")).await, 403, "forbidden");
        assert_error(&get(format!("/v1/admin/licenses/{other}/instances")).await, 403, "forbidden");
        let (_, list) = get("/v1/admin/licenses".into()).await;
        let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![mine.as_str()]);
        let (_, list) = get("/v1/admin/licenses?product=default".into()).await;
        assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
        let (_, events) = get("/v1/admin/events".into()).await;
        assert!(events["items"].as_array().unwrap().iter().all(|e| e["license"] == json!(mine)), "{events}");
        let (_, products) = get("/v1/admin/products".into()).await;
        assert_eq!(products["items"].as_array().unwrap().len(), 1);
        // Issuing: only into its product.
        let body = json!({"customer": "C", "plan": "p", "duration": "30d"});
        assert_error(&s.request("POST", "/v1/admin/licenses", Some(body.clone()), Some(&k)).await, 403, "forbidden");
        let mut ee = body;
        ee["product"] = json!("ee");
        assert_eq!(s.request("POST", "/v1/admin/licenses", Some(ee), Some(&k)).await.0, 201);
        assert_error(&s.request("POST", &format!("/v1/admin/licenses/{other}/extend"), Some(json!({"by": "1d"})), Some(&k)).await, 403, "forbidden");
        // Routes that span every product are refused to it.
        assert_error(&get("/v1/admin/customers".into()).await, 403, "forbidden");
        assert_error(&s.request("POST", "/v1/admin/offline-activations", Some(json!({})), Some(&k)).await, 403, "forbidden");
        // Unknown products are refused when the key is made.
        assert_error(&s.admin_post("/v1/admin/keys", json!({"name": "x", "role": "read", "products": ["nope"]})).await, 404, "product_not_found");
    }

    async fn keys_expire_and_revoking_ends_their_sessions(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        for (body, code) in [
            (json!({"name": "x", "role": "owner"}), "invalid_role"),
            (json!({"name": "bad name", "role": "read"}), "invalid_name"),
            (json!({"name": "x", "role": "read", "expires": "yesterday"}), "invalid_expiry"),
            (json!({"name": "x", "role": "read", "expires": "2001-01-01"}), "invalid_expiry"),
            (json!({"name": "x", "role": "read", "products": []}), "invalid_products"),
        ] {
            assert_error(&s.admin_post("/v1/admin/keys", body).await, 422, code);
        }
        let temp = key(&s, json!({"name": "temp", "role": "read", "expires": "1h"})).await;
        assert_error(&s.admin_post("/v1/admin/keys", json!({"name": "temp", "role": "read"})).await, 409, "admin_key_exists");
        assert_eq!(s.request("GET", "/v1/admin/licenses", None, Some(&temp)).await.0, 200);
        s.clock.advance(Duration::hours(1) + Duration::seconds(1));
        let expired = s.request("GET", "/v1/admin/licenses", None, Some(&temp)).await;
        assert_error(&expired, 401, "unauthorized");
        assert!(expired.1["error"]["message"].as_str().unwrap().contains("expired"), "{expired:?}");
        let (_, list) = s.admin_get("/v1/admin/keys").await;
        let temp_view = list["items"].as_array().unwrap().iter().find(|k| k["name"] == "temp").unwrap().clone();
        assert_eq!(temp_view["expired"], true);

        // The last full admin key cannot be revoked.
        assert_error(&s.admin("DELETE", "/v1/admin/keys/admin", None).await, 409, "last_admin_key");
        assert_error(&s.admin("DELETE", "/v1/admin/keys/nobody", None).await, 404, "admin_key_not_found");
        let second = key(&s, json!({"name": "second", "role": "admin"})).await;
        // A support key signs in to the console; revoking it ends the session.
        let support = key(&s, json!({"name": "desk", "role": "support"})).await;
        let mut console = Browserless::new(&s);
        console.sign_in(&support).await;
        assert_eq!(console.get("/licenses").await.0, 200);
        assert_eq!(s.request("DELETE", "/v1/admin/keys/desk", None, Some(&second)).await.0, 204);
        let (status, _, headers) = console.get("/licenses").await;
        assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/login"));
        assert_error(&s.request("GET", "/v1/admin/licenses", None, Some(&support)).await, 401, "unauthorized");
        // With another admin key, the bootstrap one can go.
        assert_eq!(s.request("DELETE", "/v1/admin/keys/admin", None, Some(&second)).await.0, 204);
        assert_error(&s.admin_get("/v1/admin/licenses").await, 401, "unauthorized");
        assert_error(&s.request("DELETE", "/v1/admin/keys/second", None, Some(&second)).await, 409, "last_admin_key");
        let (_, events) = s.request("GET", "/v1/admin/events", None, Some(&second)).await;
        let revoked: Vec<&str> = events["items"].as_array().unwrap().iter()
            .filter(|e| e["kind"] == "admin_key.revoked").map(|e| e["actor"].as_str().unwrap()).collect();
        assert_eq!(revoked, vec!["second", "second"]);
    }

    async fn the_console_hides_and_refuses_what_a_role_lacks(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, _) = s.issue_default().await;
        let read = key(&s, json!({"name": "viewer", "role": "read"})).await;
        let support = key(&s, json!({"name": "desk", "role": "support"})).await;

        let mut viewer = Browserless::new(&s);
        viewer.sign_in(&read).await;
        let (status, page, _) = viewer.get(&format!("/licenses/{id}")).await;
        assert_eq!(status, 200);
        for hidden in ["id=\"suspend\"", "id=\"revoke\"", "id=\"extend\"", "href=\"/licenses/new\"", "href=\"/offline\""] {
            assert!(!page.contains(hidden), "a read key's page shows {hidden}");
        }
        assert!(page.contains("id=\"read-only\""));
        let csrf = viewer.csrf().await;
        for (path, form) in [
            (format!("/licenses/{id}/suspend"), vec![("csrf", csrf.as_str())]),
            (format!("/licenses/{id}/extend"), vec![("csrf", csrf.as_str()), ("by", "30d")]),
            (format!("/licenses/{id}/revoke"), vec![("csrf", csrf.as_str())]),
            ("/licenses".to_owned(), vec![("csrf", csrf.as_str()), ("customer", "X"), ("plan", "p")]),
            ("/policies".to_owned(), vec![("csrf", csrf.as_str()), ("name", "n")]),
        ] {
            let (status, body, _) = viewer.post(&path, &form, None).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
        for page in [format!("/licenses/{id}/suspend"), "/licenses/new".into(), "/offline".into()] {
            assert_eq!(viewer.get(&page).await.0, 403, "{page}");
        }
        // Signing out stays everyone's.
        let (status, _, _) = viewer.post("/logout", &[("csrf", csrf.as_str())], None).await;
        assert_eq!(status, 303);

        let mut desk = Browserless::new(&s);
        desk.sign_in(&support).await;
        let (_, page, _) = desk.get(&format!("/licenses/{id}")).await;
        assert!(page.contains("id=\"suspend\"") && page.contains("id=\"extend\""));
        assert!(!page.contains("id=\"revoke\""), "support may not revoke");
        let csrf = desk.csrf().await;
        assert_eq!(desk.post(&format!("/licenses/{id}/revoke"), &[("csrf", csrf.as_str())], None).await.0, 403);
        assert_eq!(desk.post(&format!("/licenses/{id}/suspend"), &[("csrf", csrf.as_str())], None).await.0, 303);
        let (_, v) = s.admin_get(&format!("/v1/admin/licenses/{id}")).await;
        assert_eq!(v["state"], "suspended");
        let (_, events) = s.admin_get(&format!("/v1/admin/events?license={id}")).await;
        assert_eq!(events["items"][0]["actor"], "desk");
    }
}
