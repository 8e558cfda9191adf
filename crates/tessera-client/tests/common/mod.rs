//! Helpers shared by the client's integration tests.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::clock::Clock;
use tessera_client::{Builder, Client, PublicKey, Watching};

/// A client of `url` pinning `key`, its state in `dir`, its time from `clock`.
pub fn builder(url: &str, key: PublicKey, dir: &Path, clock: Arc<dyn Clock>) -> Builder {
    Client::builder()
        .server(url)
        .public_key(key)
        .state_dir(dir)
        .clock(clock)
}

/// As [`builder`], with the refresh loop ticking every 20 ms and no change
/// stream: polling is the only way news arrives.
pub fn polling(url: &str, key: PublicKey, dir: &Path, clock: Arc<dyn Clock>) -> Builder {
    builder(url, key, dir, clock)
        .tick(Duration::from_millis(20))
        .watch(Watching::Off)
}

/// An authority on `server_clock` with one 30-day license, and a polling
/// client of it (its time from `client_clock`, state in `dir`) that has
/// fetched its first document.
pub async fn licensed(
    server_clock: &Arc<tessera_client::clock::ManualClock>,
    client_clock: &Arc<tessera_client::clock::ManualClock>,
    dir: &Path,
) -> (tessera_testkit::TestServer, Client) {
    let s = tessera_testkit::TestServer::start_with(tessera_testkit::Options {
        clock: Some(server_clock.clone()),
        ..tessera_testkit::Options::default()
    })
    .await;
    let (_, token) = s
        .issue(serde_json::json!({"customer": "Acme", "plan": "p", "duration": "30d"}))
        .await;
    let client = polling(&s.url, s.public_key.clone(), dir, client_clock.clone())
        .token(&token)
        .start()
        .unwrap();
    client.refresh().await.unwrap();
    (s, client)
}

/// Wait (bounded) until the published verdict satisfies `pred`.
pub async fn until(
    client: &Client,
    what: &str,
    pred: impl Fn(&tessera_client::Verdict) -> bool,
) -> Arc<tessera_client::Verdict> {
    let mut rx = client.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| pred(v))).await;
    match waited {
        Ok(Ok(v)) => v.clone(),
        _ => panic!(
            "timed out waiting for {what}; verdict is {:#?}",
            client.verdict()
        ),
    }
}
