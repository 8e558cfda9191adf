//! Sites and their relays at the authority (docs/PROTOCOL.md §26): the
//! bundle it signs, the shares of a license's machines, revocation, and a
//! relay's synchronisation proved by its key — each bad input refused with
//! its reason and nothing written.

use chrono::Duration;
use serde_json::json;
use tessera_protocol::SigningKey;
use tessera_protocol::bundle::verify_bundle;
use tessera_protocol::relay::{SyncReport, sign_sync};
use tessera_protocol::wire::{SiteBundleFile, SiteUsage};
use tessera_testkit::{TestServer, assert_error, backend_tests};

fn relay_key() -> SigningKey {
    SigningKey::generate(&mut rand::rng())
}

async fn sync(
    s: &TestServer,
    relay: &SigningKey,
    site: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let report = SyncReport {
        site: site.into(),
        iat: at,
        usage: vec![SiteUsage {
            license: "lic_x".into(),
            machines: 3,
            instances: 4,
            users: Some(9),
        }],
    };
    let proof = sign_sync(&report, relay).unwrap();
    s.request(
        "POST",
        "/v1/relay/sync",
        Some(json!({"proof": proof})),
        None,
    )
    .await
}

backend_tests! {
    async fn a_site_bundle_carries_the_licenses_terms_and_its_share(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, _) = s
            .issue(json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "90d",
                          "max_machines": 20, "machine_mode": "floating", "lease_ttl": "5m"}))
            .await;
        let relay = relay_key();
        let paserk = relay.public_key().to_paserk();
        let (status, v) = s
            .admin_post("/v1/admin/sites", json!({"site": "plant-7", "relay_key": paserk,
                "licenses": [{"license": id, "max_machines": 15}], "valid_for": "10d"}))
            .await;
        assert_eq!(status, 201, "{v}");
        let file: SiteBundleFile = serde_json::from_value(v["bundle"].clone()).unwrap();
        let bundle = verify_bundle(&file.bundle, &s.keys(), s.now()).unwrap();
        assert_eq!((bundle.site.as_str(), bundle.relay_key.as_str()), ("plant-7", paserk.as_str()));
        assert_eq!(bundle.exp, s.now() + Duration::days(10));
        let l = &bundle.licenses[0];
        assert_eq!((l.license.as_str(), l.max_machines, l.lease_ttl, l.rev), (id.as_str(), Some(15), Some(300), 1));
        assert_eq!(l.features, ["sso"]);
        assert!(l.valid);

        // Shares of one license across sites stay within its 20 machines.
        let other = relay_key().public_key().to_paserk();
        let got = s.admin_post("/v1/admin/sites", json!({"site": "plant-8", "relay_key": other,
            "licenses": [{"license": id, "max_machines": 6}]})).await;
        assert_error(&got, 409, "machines_allocated");
        let got = s.admin_post("/v1/admin/sites", json!({"site": "plant-8", "relay_key": other,
            "licenses": [{"license": id, "max_machines": 5}]})).await;
        assert_eq!(got.0, 201, "{}", got.1);
        // A suspension is in the next bundle.
        s.act(&id, "suspend").await;
        let (status, fresh) = s.admin_post("/v1/admin/sites/plant-7/bundle", json!({})).await;
        assert_eq!(status, 200, "{fresh}");
        let fresh: SiteBundleFile = serde_json::from_value(fresh).unwrap();
        let l = verify_bundle(&fresh.bundle, &s.keys(), s.now()).unwrap().licenses[0].clone();
        assert_eq!((l.status, l.valid, l.rev), (tessera_protocol::Status::Suspended, false, 2));

        // A relay synchronises with a proof of its key; its usage is kept.
        let (status, v) = sync(&s, &relay, "plant-7", s.now()).await;
        assert_eq!(status, 200, "{v}");
        let (_, sites) = s.admin_get("/v1/admin/sites").await;
        assert_eq!(sites[0]["site"], "plant-7");
        assert_eq!(sites[0]["usage"][0]["instances"], 4);
        assert!(sites[0]["last_sync_at"].is_string());
        // Another key, another site's name, a stale proof: refused.
        assert_error(&sync(&s, &relay_key(), "plant-7", s.now()).await, 403, "unknown_relay");
        assert_error(&sync(&s, &relay, "plant-9", s.now()).await, 403, "unknown_relay");
        assert_error(&sync(&s, &relay, "plant-7", s.now() - Duration::minutes(10)).await, 403, "unknown_relay");
        let got = s.request("POST", "/v1/relay/sync", Some(json!({"proof": "v4.public.garbage"})), None).await;
        assert_eq!(got.0, 400, "{}", got.1);
        // Revoked: no new bundle, by hand or by sync.
        let (status, _) = s.admin("DELETE", "/v1/admin/sites/plant-7", None).await;
        assert_eq!(status, 200);
        assert_error(&s.admin_post("/v1/admin/sites/plant-7/bundle", json!({})).await, 409, "site_revoked");
        assert_error(&sync(&s, &relay, "plant-7", s.now()).await, 409, "site_revoked");
        assert_error(&s.admin("DELETE", "/v1/admin/sites/plant-7", None).await, 409, "site_revoked");
        // Its share is free again.
        let got = s.admin_post("/v1/admin/sites", json!({"site": "plant-9", "relay_key": relay_key().public_key().to_paserk(),
            "licenses": [{"license": id, "max_machines": 15}]})).await;
        assert_eq!(got.0, 201, "{}", got.1);
    }

    async fn a_sites_share_is_not_free_online(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, token) = s.issue(json!({"customer": "A", "plan": "p", "duration": "30d", "max_machines": 3})).await;
        let activate = |fp: &'static str| {
            s.request("POST", "/v1/machines/activate", Some(json!({"token": token, "fingerprint": fp})), None)
        };
        let (status, v) = activate("online-1").await;
        assert_eq!((status.as_u16(), v["verdict"]["status"].as_str()), (200, Some("active")), "{v}");
        // One place is taken online: a site may hold the other two, not three.
        let key = relay_key().public_key().to_paserk();
        let got = s.admin_post("/v1/admin/sites", json!({"site": "p", "relay_key": key,
            "licenses": [{"license": id, "max_machines": 3}]})).await;
        assert_error(&got, 409, "machines_allocated");
        let got = s.admin_post("/v1/admin/sites", json!({"site": "p", "relay_key": key,
            "licenses": [{"license": id, "max_machines": 2}]})).await;
        assert_eq!(got.0, 201, "{}", got.1);
        // … and then no second machine online.
        let (_, v) = activate("online-2").await;
        assert_eq!(v["verdict"]["status"], "too_many_machines", "{v}");
        // Revoked, the site's share is free again.
        s.admin("DELETE", "/v1/admin/sites/p", None).await;
        let (_, v) = activate("online-2").await;
        assert_eq!(v["verdict"]["status"], "active", "{v}");
    }

    async fn bad_sites_are_refused_with_their_reason(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, _) = s.issue(json!({"customer": "A", "plan": "p", "duration": "30d", "max_machines": 3})).await;
        let key = relay_key().public_key().to_paserk();
        let create = |body: serde_json::Value| s.admin_post("/v1/admin/sites", body);
        assert_error(&create(json!({"site": "Plant 7!", "relay_key": key, "licenses": [{"license": id}]})).await, 422, "invalid_site");
        assert_error(&create(json!({"site": "p", "relay_key": "k4.public.nope", "licenses": [{"license": id}]})).await, 422, "invalid_site");
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": []})).await, 422, "invalid_site");
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": [{"license": id}, {"license": id}]})).await, 422, "invalid_site");
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": [{"license": id, "max_machines": 4}]})).await, 422, "invalid_site");
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": [{"license": id}], "valid_for": "500d"})).await, 422, "invalid_duration");
        let got = create(json!({"site": "p", "relay_key": key, "licenses": [{"license": "lic_01936b2e-7c3a-7def-8a12-0123456789ab"}]})).await;
        assert_eq!(got.0, 404, "{}", got.1);
        let (rid, _) = s.issue(json!({"customer": "B", "plan": "p", "duration": "30d"})).await;
        s.act(&rid, "revoke").await;
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": [{"license": rid}]})).await, 409, "license_revoked");
        // Nothing was written by any of these.
        let (_, sites) = s.admin_get("/v1/admin/sites").await;
        assert_eq!(sites, json!([]));
        assert_eq!(create(json!({"site": "p", "relay_key": key, "licenses": [{"license": id}]})).await.0, 201);
        assert_error(&create(json!({"site": "p", "relay_key": key, "licenses": [{"license": id, "max_machines": 0}]})).await, 409, "site_exists");
        let got = s.admin_post("/v1/admin/sites/nope/bundle", json!({})).await;
        assert_eq!(got.0, 404, "{}", got.1);
    }
}
