//! The SDK on a license that counts machines (docs/PROTOCOL.md §19): it
//! activates by itself, hears a release or a freed place on its stream,
//! gives its place back on request, and drops a document copied from
//! another machine.

mod common;

use common::until;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use serde_json::{Value, json};
use tessera_client::clock::ManualClock;
use tessera_client::{UnverifiedReason, VerdictState};
use tessera_testkit::{Options, TestServer};

/// A server on `clock` with a license limited to `max` machines.
async fn limited(clock: &Arc<ManualClock>, max: u32) -> (TestServer, String, String) {
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let body = json!({"customer": "Acme", "plan": "p", "features": ["sso"], "duration": "30d", "max_machines": max});
    let (id, token) = s.issue(body).await;
    (s, id, token)
}

fn machine_on(
    s: &TestServer,
    clock: &Arc<ManualClock>,
    dir: &std::path::Path,
    fp: &str,
) -> tessera_client::Builder {
    common::builder(&s.url, s.public_key.clone(), dir, clock.clone())
        .tick(StdDuration::from_millis(20))
        .fingerprint(fp)
}

async fn machines(s: &TestServer, id: &str) -> Value {
    let (status, v) = s
        .admin_get(&format!("/v1/admin/licenses/{id}/machines"))
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn a_released_place_reaches_both_machines_on_their_streams() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (s, id, token) = limited(&clock, 1).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine_on(&s, &clock, dir_a.path(), "host-a")
        .token(&token)
        .start()
        .unwrap();
    until(&a, "host-a activated by itself", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    let m = a.machine().expect("a machine license");
    assert!(m.id.as_deref().is_some_and(|i| i.starts_with("mch_")));
    assert_eq!((m.used, m.max), (1, Some(1)));
    let b = machine_on(&s, &clock, dir_b.path(), "host-b")
        .token(&token)
        .start()
        .unwrap();
    until(&b, "host-b refused", |v| {
        v.state == VerdictState::TooManyMachines
    })
    .await;
    assert!(!b.has_feature("sso"));
    until(&a, "host-a on its stream", |v| v.connected).await;
    until(&b, "host-b on its stream", |v| v.connected).await;

    // The vendor releases host-a: both hear it on their streams, no polling
    // (the clock does not move, so no refresh falls due).
    let list = machines(&s, &id).await;
    let mch = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .admin(
            "DELETE",
            &format!("/v1/admin/licenses/{id}/machines/{mch}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    until(&a, "host-a released", |v| {
        v.state == VerdictState::NotActivated
    })
    .await;
    until(&b, "host-b took the freed place", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    assert!(b.has_feature("sso"));
    // host-a does not take the place back by itself.
    a.refresh().await.unwrap();
    assert_eq!(a.verdict().state, VerdictState::NotActivated);
    assert_eq!(machines(&s, &id).await["active"], 1);
}

#[tokio::test]
async fn deactivate_gives_the_place_back_and_a_copied_state_is_refused() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (s, id, token) = limited(&clock, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let a = machine_on(&s, &clock, dir.path(), "host-a")
        .token(&token)
        .start()
        .unwrap();
    until(&a, "activated", |v| v.state == VerdictState::Valid).await;
    assert_eq!(machines(&s, &id).await["active"], 1);
    let v = a.deactivate().await.unwrap();
    assert_eq!(v.state, VerdictState::NotActivated);
    assert_eq!(machines(&s, &id).await["active"], 0);
    a.activate_machine().await.unwrap();
    assert_eq!(a.verdict().state, VerdictState::Valid);
    a.shutdown();
    drop(a);

    // The same state directory on another machine (another fingerprint),
    // offline: the held document is bound to host-a and is dropped.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let elsewhere = common::builder(
        "http://127.0.0.1:9",
        s.public_key.clone(),
        copy.path(),
        clock.clone(),
    )
    .fingerprint("host-z")
    .start()
    .unwrap();
    let v = elsewhere.verdict();
    assert_eq!(
        (v.state, v.reason),
        (VerdictState::Unverified, Some(UnverifiedReason::NoDocument))
    );
    // And on host-a itself it is kept.
    let home = common::builder(
        "http://127.0.0.1:9",
        s.public_key.clone(),
        dir.path(),
        clock.clone(),
    )
    .fingerprint("host-a")
    .start()
    .unwrap();
    assert_eq!(home.verdict().state, VerdictState::Valid);
}

#[tokio::test]
async fn a_bad_fingerprint_is_refused_at_start() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start().await;
    let err = common::builder(
        &s.url,
        s.public_key.clone(),
        tempfile::tempdir().unwrap().path(),
        clock,
    )
    .fingerprint("")
    .start()
    .unwrap_err();
    assert!(matches!(err, tessera_client::Error::Config(_)), "{err}");
}

/// A re-created VM (new fingerprint, most components the same) takes back
/// its place on a license that matches by components.
#[tokio::test]
async fn a_recreated_vm_keeps_its_place_by_components() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let s = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let body = json!({"customer": "Acme", "plan": "p", "duration": "30d", "max_machines": 1, "fingerprint_match": 2});
    let (id, token) = s.issue(body).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine_on(&s, &clock, dir_a.path(), "vm-before")
        .components(["cpu:Xeon 1", "disk:UUID=1234", "mac:00:11:22:33:44:55"])
        .token(&token)
        .start()
        .unwrap();
    until(&a, "the first VM activated", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    let first = a.machine().unwrap().id.unwrap();
    a.shutdown();
    let b = machine_on(&s, &clock, dir_b.path(), "vm-after")
        .components(["cpu:Xeon 1", "disk:UUID=1234", "mac:66:77:88:99:aa:bb"])
        .token(&token)
        .start()
        .unwrap();
    until(&b, "the re-created VM holds the place", |v| {
        v.state == VerdictState::Valid
    })
    .await;
    assert_eq!(b.machine().unwrap().id.unwrap(), first);
    // Another machine sharing one component only is refused.
    let dir_c = tempfile::tempdir().unwrap();
    let c = machine_on(&s, &clock, dir_c.path(), "vm-other")
        .components(["cpu:Xeon 1", "disk:UUID=9", "mac:00:00:00:00:00:01"])
        .token(&token)
        .start()
        .unwrap();
    until(&c, "another machine refused", |v| {
        v.state == VerdictState::TooManyMachines
    })
    .await;
    assert_eq!(machines(&s, &id).await["active"], 1);
}
