//! Machines (docs/PROTOCOL.md §19): node-locked places, floating leases,
//! signed refusals, the admin list and release, bad input, and the race
//! for the last place on one server and across replicas.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::wire::machine_fingerprint_hash;
use tessera_protocol::{Expectations, LicenseToken, StatusClaims};
use tessera_testkit::process::eventually;
use tessera_testkit::{TestServer, assert_error, backend_tests};

/// Issue a license with these machine settings; (id, token).
async fn machine_license(s: &TestServer, machines: Value) -> (String, String) {
    let mut body = json!({"customer": "Acme", "plan": "p", "duration": "30d"});
    for (k, v) in machines.as_object().unwrap() {
        body[k] = v.clone();
    }
    s.issue(body).await
}

/// A machine request on `path`: the status and the verified claims (bound
/// to machine `fingerprint`), or the error body.
async fn machine_call(
    s: &TestServer,
    path: &str,
    body: Value,
) -> (u16, Result<StatusClaims, Value>) {
    let (status, v) = s.request("POST", path, Some(body.clone()), None).await;
    if status != 200 {
        return (status.as_u16(), Err(v));
    }
    let token = LicenseToken::parse(body["token"].as_str().unwrap()).unwrap();
    let mfp = machine_fingerprint_hash(body["fingerprint"].as_str().unwrap_or(""));
    let expect = Expectations::for_token(token.fingerprint()).with_machine(mfp);
    let doc = s.verified(v["document"].as_str().unwrap(), &expect);
    (200, Ok(doc.claims().clone()))
}

async fn activate(s: &TestServer, token: &str, fingerprint: &str) -> StatusClaims {
    let body = json!({"token": token, "fingerprint": fingerprint, "name": fingerprint});
    let (status, claims) = machine_call(s, "/v1/machines/activate", body).await;
    assert_eq!(status, 200, "{claims:?}");
    claims.unwrap()
}

async fn heartbeat(s: &TestServer, token: &str, fingerprint: &str) -> StatusClaims {
    let body = json!({"token": token, "fingerprint": fingerprint});
    let (status, claims) = machine_call(s, "/v1/machines/heartbeat", body).await;
    assert_eq!(status, 200, "{claims:?}");
    claims.unwrap()
}

async fn events(s: &TestServer, id: &str) -> Vec<String> {
    let (_, v) = s
        .admin_get(&format!("/v1/admin/events?license={id}&after=0&limit=100"))
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

backend_tests! {
    async fn node_locked_places_are_counted_refused_and_freed(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = machine_license(&s, json!({"max_machines": 2})).await;
        let a = activate(&s, &token, "node-a").await;
        assert_eq!(a.status, tessera_protocol::Status::Active);
        assert!(a.valid);
        assert_eq!(a.mfp.as_deref(), Some(machine_fingerprint_hash("node-a").as_str()));
        let m = a.machine.unwrap();
        assert_eq!((m.used, m.max), (1, Some(2)));
        assert_eq!(activate(&s, &token, "node-b").await.machine.unwrap().used, 2);
        // The same machine again keeps its place.
        assert_eq!(activate(&s, &token, "node-a").await.machine.unwrap().used, 2);
        // A third is refused, with a signed document bound to it.
        let c = activate(&s, &token, "node-c").await;
        assert_eq!(c.status, tessera_protocol::Status::TooManyMachines);
        assert!(!c.valid);
        assert!(c.features.is_empty());
        assert!(c.refresh_after <= s.now() + Duration::minutes(5));
        // A document for node-a is worthless on node-c.
        let (_, v) = s
            .request("POST", "/v1/machines/activate", Some(json!({"token": token, "fingerprint": "node-a"})), None)
            .await;
        let tfp = LicenseToken::parse(&token).unwrap().fingerprint();
        let wrong = Expectations::for_token(tfp).with_machine(machine_fingerprint_hash("node-c"));
        let err = tessera_protocol::verify(v["document"].as_str().unwrap().as_bytes(), &s.keys(), &wrong, s.now()).unwrap_err();
        assert_eq!(err.code(), "fingerprint_mismatch");

        // Validation names the machine; an unknown one is not activated.
        let (_, v) = s.validate(json!({"token": token, "fingerprint": "node-b"})).await;
        assert_eq!(v["verdict"]["status"], "active");
        assert_eq!(v["verdict"]["mfp"], machine_fingerprint_hash("node-b"));
        let (_, v) = s.validate(json!({"token": token, "fingerprint": "node-z"})).await;
        assert_eq!(v["verdict"]["status"], "not_activated");
        let (_, v) = s.validate(json!({"token": token})).await;
        assert_eq!(v["verdict"]["status"], "not_activated", "no fingerprint, no place");

        // Deactivating frees the place; twice is a clear error.
        let body = json!({"token": token, "fingerprint": "node-a"});
        let (status, gone) = machine_call(&s, "/v1/machines/deactivate", body.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(gone.unwrap().status, tessera_protocol::Status::NotActivated);
        let got = s.request("POST", "/v1/machines/deactivate", Some(body), None).await;
        assert_error(&got, 409, "not_activated");
        assert!(activate(&s, &token, "node-c").await.valid);

        // The admin list, and a forced release.
        let (status, list) = s.admin_get(&format!("/v1/admin/licenses/{id}/machines")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!((list["active"].as_u64(), list["max_machines"].as_u64()), (Some(2), Some(2)));
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["state"], "deactivated");
        let b = items.iter().find(|m| m["name"] == "node-b").unwrap();
        let path = format!("/v1/admin/licenses/{id}/machines/{}", b["id"].as_str().unwrap());
        let (status, released) = s.admin("DELETE", &path, None).await;
        assert_eq!(status, 200, "{released}");
        assert_eq!(released["state"], "released");
        let got = s.admin("DELETE", &path, None).await;
        assert_error(&got, 404, "machine_not_found");
        assert_eq!(heartbeat(&s, &token, "node-b").await.status, tessera_protocol::Status::NotActivated);

        let kinds = events(&s, &id).await;
        let count = |k: &str| kinds.iter().filter(|e| *e == k).count();
        assert_eq!(count("machine.activated"), 3, "{kinds:?}");
        assert_eq!(count("machine.refused"), 1, "{kinds:?}");
        assert_eq!(count("machine.released"), 2, "{kinds:?}");
    }

    async fn a_floating_lease_lives_by_heartbeats_and_ends_without_them(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let settings = json!({"max_machines": 1, "machine_mode": "floating", "lease_ttl": "10s", "max_borrow": "1h"});
        let (id, token) = machine_license(&s, settings).await;
        let a = activate(&s, &token, "laptop-a").await;
        let lease = a.machine.clone().unwrap();
        assert_eq!(lease.lease_ttl, Some(10));
        assert_eq!(lease.lease_expires_at, Some(s.now() + Duration::seconds(10)));
        assert!(a.exp <= s.now() + Duration::seconds(10), "the lease bounds the document");
        assert!(a.refresh_after <= s.now() + Duration::seconds(4), "heartbeat at a third");
        assert_eq!(activate(&s, &token, "laptop-b").await.status, tessera_protocol::Status::TooManyMachines);
        // Heartbeats keep it.
        for _ in 0..3 {
            s.clock.advance(Duration::seconds(6));
            let h = heartbeat(&s, &token, "laptop-a").await;
            assert!(h.valid);
            assert_eq!(h.machine.unwrap().lease_expires_at, Some(s.now() + Duration::seconds(10)));
        }
        // Heartbeats are written in batches (each half second).
        let lease_end = s.now() + Duration::seconds(10);
        eventually("the heartbeats to be written", StdDuration::from_secs(5), async || {
            let (_, list) = s.admin_get(&format!("/v1/admin/licenses/{id}/machines")).await;
            (list["items"][0]["lease_expires_at"] == tessera_protocol::time::format(&lease_end)).then_some(())
        })
        .await;
        // Silence: past its end the lease is dead to heartbeats at once…
        s.clock.advance(Duration::seconds(11));
        assert_eq!(heartbeat(&s, &token, "laptop-a").await.status, tessera_protocol::Status::LeaseExpired);
        // …holds its place through the 1.5 s grace (another replica's last
        // heartbeats may not be written yet)…
        assert_eq!(activate(&s, &token, "laptop-b").await.status, tessera_protocol::Status::TooManyMachines);
        // …and is ended within its TTL + 2 s.
        s.clock.advance(Duration::seconds(1));
        eventually("the lease to be reaped", StdDuration::from_secs(5), async || {
            events(&s, &id).await.iter().any(|k| k == "lease.expired").then_some(())
        })
        .await;
        assert!(activate(&s, &token, "laptop-b").await.valid);
        // Borrowing keeps a lease offline, up to max_borrow.
        let until = s.now() + Duration::minutes(30);
        let body = json!({"token": token, "fingerprint": "laptop-b", "until": tessera_protocol::time::format(&until)});
        let (status, borrowed) = machine_call(&s, "/v1/machines/borrow", body).await;
        assert_eq!(status, 200);
        assert_eq!(borrowed.unwrap().machine.unwrap().lease_expires_at, Some(until));
        let too_long = s.now() + Duration::hours(2);
        let body = json!({"token": token, "fingerprint": "laptop-b", "until": tessera_protocol::time::format(&too_long)});
        let got = s.request("POST", "/v1/machines/borrow", Some(body), None).await;
        assert_error(&got, 422, "borrow_too_long");
    }

    async fn bad_requests_get_clear_errors(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = machine_license(&s, json!({"max_machines": 3})).await;
        let post = |body: Value| s.request("POST", "/v1/machines/activate", Some(body), None);
        assert_error(&post(json!({"token": token, "fingerprint": ""})).await, 400, "invalid_fingerprint");
        assert_error(&post(json!({"token": token, "fingerprint": "x".repeat(257)})).await, 400, "invalid_fingerprint");
        assert_error(&post(json!({"token": token, "fingerprint": "a", "components": ["c", "c"]})).await, 400, "invalid_fingerprint");
        assert_error(&post(json!({"token": "tsr_nope", "fingerprint": "a"})).await, 400, "malformed_token");
        // An unknown token gets the signed not_found, as from /v1/validate.
        let unknown = tessera_testkit::random_token();
        let (status, v) = post(json!({"token": unknown, "fingerprint": "a"})).await;
        assert_eq!((status.as_u16(), &v["verdict"]["status"]), (200, &json!("not_found")), "{v}");
        let bad_settings = json!({"customer": "A", "plan": "p", "duration": "1d", "max_machines": 0});
        assert_error(&s.admin_post("/v1/admin/licenses", bad_settings).await, 422, "invalid_field");
        let bad_ttl = json!({"customer": "A", "plan": "p", "duration": "1d", "lease_ttl": "0s"});
        assert_error(&s.admin_post("/v1/admin/licenses", bad_ttl).await, 422, "invalid_duration");
        let node_locked = json!({"token": token, "fingerprint": "a", "until": "2099-01-01T00:00:00Z"});
        let got = s.request("POST", "/v1/machines/borrow", Some(node_locked), None).await;
        assert_error(&got, 422, "borrow_not_allowed");
        // A revoked license answers with its own signed status.
        s.act(&id, "revoke").await;
        let r = activate(&s, &token, "a").await;
        assert_eq!(r.status, tessera_protocol::Status::Revoked);
        assert!(!r.valid);
        assert!(events(&s, &id).await.iter().all(|k| k != "machine.activated"), "nothing half-written");
    }

    async fn a_machine_whose_fingerprint_moved_keeps_its_place_by_components(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = machine_license(&s, json!({"max_machines": 1, "fingerprint_match": 2})).await;
        let with = |fp: &str, parts: [&str; 3]| json!({"token": token, "fingerprint": fp, "components": parts});
        let (_, first) = machine_call(&s, "/v1/machines/activate", with("vm-a", ["cpu:x", "disk:y", "mac:z"])).await;
        let first = first.unwrap().machine.unwrap().id.unwrap();
        assert!(heartbeat(&s, &token, "vm-a").await.valid);
        // Re-created VM: new fingerprint, two components in common — the
        // same place, now under the new fingerprint.
        let (_, moved) = machine_call(&s, "/v1/machines/activate", with("vm-b", ["cpu:x", "disk:y", "mac:new"])).await;
        let moved = moved.unwrap();
        assert!(moved.valid, "{moved:?}");
        assert_eq!(moved.machine.unwrap().id.unwrap(), first);
        assert!(heartbeat(&s, &token, "vm-b").await.valid);
        assert_eq!(heartbeat(&s, &token, "vm-a").await.status, tessera_protocol::Status::NotActivated);
        // One component in common is another machine: no place left.
        let (_, other) = machine_call(&s, "/v1/machines/activate", with("vm-c", ["cpu:x", "disk:q", "mac:r"])).await;
        assert_eq!(other.unwrap().status, tessera_protocol::Status::TooManyMachines);
        let (_, list) = s.admin_get(&format!("/v1/admin/licenses/{id}/machines")).await;
        assert_eq!(list["active"], 1);
    }

    async fn fifty_machines_racing_for_ten_places_leave_exactly_ten(backend: Backend) {
        let s = TestServer::start_on(backend.clone()).await;
        let (id, token) = machine_license(&s, json!({"max_machines": 10})).await;
        let won = race(&[&s], &token, 50).await;
        assert_eq!(won, 10);
        let (_, list) = s.admin_get(&format!("/v1/admin/licenses/{id}/machines")).await;
        assert_eq!(list["active"], 10);
    }
}

/// `n` machines activating at once, spread over `servers`; how many won.
async fn race(servers: &[&TestServer], token: &str, n: usize) -> usize {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = servers[i % servers.len()];
        let (url, http) = (s.url.clone(), s.http.clone());
        let body = json!({"token": token, "fingerprint": format!("racer-{i}")});
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(format!("{url}/v1/machines/activate"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            v["verdict"]["status"] == "active"
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_for_ten_places_admit_exactly_ten() {
    let Some(replicas) = TestServer::postgres_replicas("machines_two_replicas", 2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let (id, token) = machine_license(a, json!({"max_machines": 10})).await;
    assert_eq!(race(&[a, b], &token, 50).await, 10);
    let (_, list) = b
        .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
        .await;
    assert_eq!(list["active"], 10);
}

/// A place freed on one replica — by release or by the reaper — reaches a
/// stream held on the other at once, and that replica's kept places are
/// dropped: the machine's next heartbeat there is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_freed_on_one_replica_reaches_streams_and_heartbeats_on_the_other() {
    let Some(replicas) = TestServer::postgres_replicas("machines_freed_across", 2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let settings = json!({"max_machines": 2, "machine_mode": "floating", "lease_ttl": "10s"});
    let (id, token) = machine_license(a, settings).await;
    let m1 = activate(b, &token, "m1").await.machine.unwrap().id.unwrap();
    activate(b, &token, "m2").await;
    // B now keeps both places: heartbeats there read nothing.
    assert!(heartbeat(b, &token, "m1").await.valid);
    let auth = format!("Bearer {token}");
    let mut stream = tessera_testkit::sse::SseStream::open(&b.url, &[("authorization", &auth)])
        .await
        .unwrap();
    stream
        .next_event("machines", StdDuration::from_secs(5))
        .await
        .unwrap();
    let (status, _) = a
        .admin(
            "DELETE",
            &format!("/v1/admin/licenses/{id}/machines/{m1}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    stream
        .next_event("machines", StdDuration::from_secs(5))
        .await
        .expect("B's stream hears of A's release");
    assert_eq!(
        heartbeat(b, &token, "m1").await.status,
        tessera_protocol::Status::NotActivated
    );
    // A lease ended by the reaper (whichever replica runs it) also reaches B.
    assert!(heartbeat(b, &token, "m2").await.valid);
    a.clock.advance(Duration::seconds(13));
    stream
        .next_event("machines", StdDuration::from_secs(10))
        .await
        .expect("B's stream hears of the expiry");
    assert_eq!(
        heartbeat(b, &token, "m2").await.status,
        tessera_protocol::Status::LeaseExpired
    );
}

/// Replicas whose clocks are 5 s behind and 5 s ahead of the database's
/// run leases on the database's time: a lease heartbeated through either
/// stays alive while the reaper runs on either, and ends within its TTL
/// + 2 s of the last heartbeat; each replica reports its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_five_seconds_apart_agree_on_when_a_lease_ends() {
    let Some(backend) = tessera_testkit::Backend::postgres("machines_clock_skew") else {
        return;
    };
    use tessera_testkit::server::Options;
    // Clocks that run 5 s behind and 5 s ahead (the database's is true).
    let skewed = |by: i64| Options {
        skewed_clock: Some(Duration::seconds(by)),
        clock_sync: true,
        ..Options::default()
    };
    let a = TestServer::start_with(Options {
        backend,
        ..skewed(-5)
    })
    .await;
    let b = a.replica(skewed(5)).await;
    for (s, offset) in [(&a, "5"), (&b, "-5")] {
        let line = format!("tessera_clock_offset_seconds {offset}\n");
        eventually(
            "the replica to measure its clock",
            StdDuration::from_secs(5),
            async || {
                let metrics = s.get("/metrics").await.text().await.unwrap();
                metrics.contains(&line).then_some(())
            },
        )
        .await;
    }
    let settings = json!({"max_machines": 1, "machine_mode": "floating", "lease_ttl": "3s"});
    let (id, token) = machine_license(&a, settings).await;
    assert!(activate(&a, &token, "m").await.valid);
    // Twice the TTL of heartbeats, every second, through both replicas.
    let mut last = std::time::Instant::now();
    for i in 0..6 {
        tokio::time::sleep(StdDuration::from_secs(1)).await;
        let via = if i % 2 == 0 { &a } else { &b };
        let h = heartbeat(via, &token, "m").await;
        last = std::time::Instant::now();
        assert!(h.valid, "heartbeat {i} kept the lease: {h:?}");
    }
    let ended = eventually("the lease to end", StdDuration::from_secs(15), async || {
        let (_, list) = b
            .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
            .await;
        (list["items"][0]["state"] == "expired").then(|| last.elapsed())
    })
    .await;
    assert!(
        ended >= StdDuration::from_secs(2),
        "not before its TTL: {ended:?}"
    );
    assert!(
        ended <= StdDuration::from_millis(5_500),
        "within TTL + 2 s (+ the reaper's tick): {ended:?}"
    );
}
