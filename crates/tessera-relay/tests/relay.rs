//! The site relay end to end (docs/PROTOCOL.md §26): a real authority on
//! port 0, a site created on it, its bundle handed to a relay as a file,
//! and SDK instances that know only the relay's address and pin only the
//! authority's key.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client_of, create_site, eventually, relay_dir, site_relay, start_relay_in, until};
use serde_json::json;
use tessera_client::VerdictState;
use tessera_testkit::TestServer;

/// An authority with a floating license of `max` seats, leases of `ttl`.
async fn floating(max: u32, ttl: &str) -> (TestServer, String, String) {
    let s = TestServer::start().await;
    let (id, token) = s
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "90d",
                      "max_machines": max, "machine_mode": "floating", "lease_ttl": ttl}),
        )
        .await;
    (s, id, token)
}

#[tokio::test]
async fn thirty_instances_against_twenty_floating_seats_get_exactly_twenty() {
    let (s, id, token) = floating(20, "6s").await;
    let (dir, relay_key) = relay_dir();
    let bundle = create_site(
        &s,
        "plant-7",
        &relay_key,
        json!([{"license": id, "max_machines": 20}]),
    )
    .await;
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, &bundle).unwrap();
    let relay = start_relay_in(dir, s.keys(), |c| c.bundle_file = Some(file.clone())).await;

    let dirs: Vec<_> = (0..30).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut clients: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            client_of(&relay.url, &s, d.path(), &format!("host-{i}"))
                .token(&token)
                .start()
                .unwrap()
        })
        .collect();
    let settled = |clients: &[tessera_client::Client]| {
        let valid = clients
            .iter()
            .filter(|c| c.verdict().state == VerdictState::Valid)
            .count();
        let refused = clients
            .iter()
            .filter(|c| c.verdict().state == VerdictState::TooManyMachines)
            .count();
        (valid, refused)
    };
    eventually("20 valid and 10 refused", 30, async || {
        settled(&clients) == (20, 10)
    })
    .await;
    // The relay counts 20 places, and every holder's verdict says 20 of 20.
    assert_eq!(relay.status().await["licenses"][0]["machines"], 20);
    for c in clients.iter().filter(|c| c.is_valid()) {
        let m = c.machine().unwrap();
        assert!(m.used <= 20 && m.max == Some(20), "{m:?}");
        assert!(c.has_feature("sso"));
    }
    // Still exactly 20 a few lease renewals later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        settled(&clients),
        (20, 10),
        "{:?}",
        clients
            .iter()
            .map(|c| (c.verdict().state, c.verdict().last_error.clone()))
            .collect::<Vec<_>>()
    );

    // A holder is killed (no deactivation): its seat returns after its
    // lease's TTL, and one of the waiting instances takes it.
    let killed_at = clients.iter().position(|c| c.is_valid()).unwrap();
    let killed = clients.remove(killed_at);
    let lease_end = killed.machine().unwrap().lease_expires_at.unwrap();
    killed.shutdown();
    drop(killed);
    eventually("a waiting instance takes the freed seat", 30, async || {
        settled(&clients) == (20, 9)
    })
    .await;
    // Not before the killed instance's lease ran out (whole seconds on the wire).
    assert!(
        chrono::Utc::now() + chrono::Duration::seconds(1) >= lease_end,
        "the seat returned before its lease ran out ({lease_end})"
    );
    assert_eq!(relay.status().await["licenses"][0]["machines"], 20);
    // The relay's audit log says so.
    let events = relay.relay.store().audit_page(0, 10_000).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("machine.activated"), 21);
    assert!(count("lease.expired") >= 1);
    assert!(count("machine.refused") >= 10);
    for c in &clients {
        c.shutdown();
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_renewal_reaches_the_site_by_file_and_by_synchronisation() {
    let s = TestServer::start().await;
    let (id, token) = s
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "30d"}),
        )
        .await;
    let (dir, relay_key) = relay_dir();
    let bundle = create_site(&s, "plant-7", &relay_key, json!([{"license": id}])).await;
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, &bundle).unwrap();
    let relay = start_relay_in(dir, s.keys(), |c| c.bundle_file = Some(file.clone())).await;
    let idir = tempfile::tempdir().unwrap();
    let client = client_of(&relay.url, &s, idir.path(), "host-a")
        .token(&token)
        .start()
        .unwrap();
    let first = until(&client, "valid through the relay", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    let first_end = first.license.as_ref().unwrap().expires_at.unwrap();
    until(&client, "on the relay's stream", |v| v.connected).await;

    // The vendor renews; a new bundle is carried in and dropped on the file.
    s.clock.advance(chrono::Duration::seconds(5));
    let renewed = s.extend(&id, json!({"by": "365d"})).await;
    let (status, fresh) = s
        .admin_post("/v1/admin/sites/plant-7/bundle", json!({}))
        .await;
    assert_eq!(status, 200, "{fresh}");
    std::fs::write(&file, fresh.to_string()).unwrap();
    let v = until(&client, "the renewal pushed by the relay", |v| {
        v.license.as_ref().and_then(|l| l.expires_at) > Some(first_end)
    })
    .await;
    assert_eq!(
        v.license
            .as_ref()
            .unwrap()
            .expires_at
            .map(|t| tessera_protocol::time::format(&t)),
        renewed["expires_at"].as_str().map(str::to_owned)
    );
    // An older bundle dropped in later is refused: the held one stays.
    std::fs::write(&file, &bundle).unwrap();
    let err = relay.relay.take_bundle(&bundle).await.unwrap_err();
    assert!(err.to_string().contains("older bundle is refused"), "{err}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(client.verdict().license.as_ref().unwrap().expires_at > Some(first_end));

    // With a route to the authority, the relay synchronises by itself:
    // a suspension reaches the site, and its usage reaches the vendor.
    let dir = relay.stop().await;
    let relay = start_relay_in(dir, s.keys(), |c| {
        c.upstream = Some(s.url.clone());
        c.sync_interval = Duration::from_millis(300);
    })
    .await;
    let client2_dir = tempfile::tempdir().unwrap();
    let client2 = client_of(&relay.url, &s, client2_dir.path(), "host-b")
        .token(&token)
        .start()
        .unwrap();
    until(&client2, "valid through the restarted relay", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    let (status, _) = s.act(&id, "suspend").await;
    assert_eq!(status, 200);
    until(&client2, "the suspension, synchronised and pushed", |v| {
        v.state == VerdictState::Suspended
    })
    .await;
    eventually("the relay's usage at the authority", 10, async || {
        let (_, sites) = s.admin_get("/v1/admin/sites").await;
        sites[0]["usage"][0]["instances"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    })
    .await;
    // A revoked site gets no new bundle.
    let (status, _) = s.admin("DELETE", "/v1/admin/sites/plant-7", None).await;
    assert_eq!(status, 200);
    eventually("the relay hears the refusal", 10, async || {
        relay.status().await["last_sync"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("site_revoked"))
    })
    .await;
    client.shutdown();
    client2.shutdown();
    relay.stop().await;
}

/// The site's relay certifies a hall's relay with `seats` of `license`.
async fn hall(
    site: &common::RunningRelay,
    name: &str,
    key: &str,
    license: &str,
    seats: u32,
) -> Result<tessera_protocol::wire::SiteBundleFile, tessera_relay::Error> {
    let share = tessera_protocol::wire::SiteLicense {
        license: license.to_owned(),
        max_machines: Some(seats),
    };
    site.relay
        .add_child(name, key, vec![share], chrono::Duration::days(7))
        .await
}

#[tokio::test]
async fn a_relay_below_a_relay_gets_no_more_than_its_share() {
    let (s, id, token) = floating(20, "15m").await;
    let site = site_relay(&s, json!([{"license": id, "max_machines": 20}])).await;
    // The site's relay certifies a building's relay with 2 of its 20 seats.
    let (hall_dir, hall_key) = relay_dir();
    let child = hall(&site, "plant-7/hall-b", &hall_key, &id, 2)
        .await
        .unwrap();
    let hall_relay = start_relay_in(hall_dir, s.keys(), |c| {
        c.upstream = Some(site.url.clone());
        c.sync_interval = Duration::from_millis(300);
    })
    .await;
    hall_relay
        .relay
        .take_bundle(&serde_json::to_string(&child).unwrap())
        .await
        .unwrap();
    // The site now has 18 places free; the hall 2.
    assert_eq!(site.status().await["licenses"][0]["machines"], 2);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let clients: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            client_of(&hall_relay.url, &s, d.path(), &format!("hall-{i}"))
                .token(&token)
                .start()
                .unwrap()
        })
        .collect();
    eventually("2 valid in the hall, 1 refused", 20, async || {
        clients.iter().filter(|c| c.is_valid()).count() == 2
            && clients
                .iter()
                .any(|c| c.verdict().state == VerdictState::TooManyMachines)
    })
    .await;
    // The hall synchronises with the site relay (not the authority): the
    // site sees its usage.
    eventually("the hall's usage at the site relay", 10, async || {
        site.status().await["children"][0]["usage"][0]["machines"] == 2
    })
    .await;
    // A child's share larger than what is free is refused.
    let (_, other_key) = relay_dir();
    let e = hall(&site, "plant-7/hall-c", &other_key, &id, 19)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("18 of 20 places free"), "{e}");
    for c in &clients {
        c.shutdown();
    }
    hall_relay.stop().await;
    site.stop().await;
}

#[tokio::test]
async fn the_relay_refuses_what_is_not_its_bundle_and_a_clock_set_back() {
    let s = TestServer::start().await;
    let (id, token) = s
        .issue(
            json!({"customer": "Plant 7", "plan": "ent", "features": ["sso"], "duration": "30d"}),
        )
        .await;
    let (dir, relay_key) = relay_dir();
    let bundle = create_site(&s, "plant-7", &relay_key, json!([{"license": id}])).await;
    let relay = start_relay_in(dir, s.keys(), |_| {}).await;
    // Before any bundle: a clear 503.
    let (status, v) = relay.post("/v1/validate", json!({"token": token})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("no_bundle"))
    );
    // An edited bundle: its signature fails.
    let file: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    let text = file["bundle"].as_str().unwrap();
    let mut edited = text.to_owned().into_bytes();
    let at = text.len() / 2;
    edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
    let e = relay
        .relay
        .take_bundle(std::str::from_utf8(&edited).unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("signature") || e.to_string().contains("bundle"),
        "{e}"
    );
    // Another relay's bundle.
    let (_, other_key) = relay_dir();
    let other = create_site(&s, "plant-8", &other_key, json!([{"license": id}])).await;
    let e = relay.relay.take_bundle(&other).await.unwrap_err();
    assert!(e.to_string().contains("another relay's key"), "{e}");
    // A bundle signed by a key the relay does not pin.
    let stranger = TestServer::start().await;
    let (sid, _) = stranger
        .issue(json!({"customer": "X", "plan": "p", "duration": "30d"}))
        .await;
    let forged = create_site(&stranger, "plant-7", &relay_key, json!([{"license": sid}])).await;
    let e = relay.relay.take_bundle(&forged).await.unwrap_err();
    assert!(e.to_string().contains("key"), "{e}");
    // Its own bundle is taken; a token the bundle does not name gets a
    // signed not_found that the instance accepts.
    assert!(relay.relay.take_bundle(&bundle).await.unwrap());
    // A polling product's request is answered with the document signed for
    // it moments ago; a nonce or another instance gets its own.
    let ask = |body: serde_json::Value| relay.post("/v1/validate", body);
    let (_, a) = ask(json!({"token": token, "instance_id": "i-1"})).await;
    let (_, b) = ask(json!({"token": token, "instance_id": "i-1"})).await;
    assert_eq!(a["document"], b["document"]);
    let (_, c) = ask(json!({"token": token, "instance_id": "i-2"})).await;
    assert_ne!(a["document"], c["document"]);
    let (_, d) = ask(json!({"token": token, "instance_id": "i-1", "nonce": "n-1"})).await;
    assert_eq!(d["verdict"]["nonce"], "n-1");
    // Bad input: a clear error, nothing taken.
    let raw = reqwest::Client::new()
        .post(format!("{}/v1/validate", relay.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let v: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(v["error"]["code"], "malformed");
    let (status, v) = relay
        .post("/v1/validate", json!({"token": "tsr_mistyped"}))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("malformed")),
        "{v}"
    );
    let (status, v) = relay
        .post(
            "/v1/machines/activate",
            json!({"token": token, "fingerprint": ""}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_fingerprint")),
        "{v}"
    );
    let (status, v) = relay
        .post("/v1/instances/ack", json!({"token": tessera_protocol::LicenseToken::generate(&mut rand::rng()).expose_secret(), "instance_id": "i-1", "revision": 1}))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (status, v) = relay.post("/v1/nope", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (_, unknown) = s
        .issue(json!({"customer": "Y", "plan": "p", "duration": "30d"}))
        .await;
    let idir = tempfile::tempdir().unwrap();
    let c = client_of(&relay.url, &s, idir.path(), "h")
        .token(&unknown)
        .start()
        .unwrap();
    until(&c, "not found, verified", |v| {
        v.state == VerdictState::NotFound
    })
    .await;
    c.shutdown();

    // The relay's clock set back a day: it stops answering.
    let dir = relay.stop().await;
    let relay = start_relay_in(dir, s.keys(), |c| {
        c.clock = Arc::new(|| chrono::Utc::now() - chrono::Duration::days(1));
    })
    .await;
    let (status, v) = relay.post("/v1/validate", json!({"token": token})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("clock_tampered")),
        "{v}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_chained() {
    let (s, id, token) = floating(2, "15m").await;
    let relay = site_relay(&s, json!([{"license": id, "max_machines": 2}])).await;
    for fp in ["a", "b", "c"] {
        relay
            .post(
                "/v1/machines/activate",
                json!({"token": token, "fingerprint": fp}),
            )
            .await;
    }
    let (status, _) = relay
        .post(
            "/v1/machines/deactivate",
            json!({"token": token, "fingerprint": "a"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, v) = relay
        .post(
            "/v1/machines/deactivate",
            json!({"token": token, "fingerprint": "a"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("not_activated"))
    );
    let events = relay.relay.store().audit_page(0, 100).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "bundle.taken",
            "machine.activated",
            "machine.activated",
            "machine.refused",
            "machine.released"
        ]
    );
    let mut prev = tessera_relay::store::GENESIS.to_owned();
    for e in &events {
        assert_eq!(e.prev, prev);
        let hash = tessera_relay::store::event_hash(
            &e.prev,
            e.at,
            &e.kind,
            &e.license,
            e.machine.as_deref(),
            e.detail.as_deref(),
        );
        assert_eq!(e.hash, hash);
        prev = e.hash.clone();
    }
    // The database refuses to change or delete an event.
    let db = relay.dir.path().join("relay.db");
    let dir = relay.stop().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let e = sqlx::query("UPDATE audit SET kind = 'x' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = sqlx::query("DELETE FROM audit")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    pool.close().await;
    drop(dir);
}
