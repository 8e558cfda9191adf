//! A real authority (port 0), a site created on it, and relays started in
//! this process on port 0 with the bundle handed over as a file would be —
//! no route from the relay (or its instances) to the authority unless a
//! test gives one.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_client::{Client, Verdict};
use tessera_protocol::TrustedKeys;
use tessera_relay::{Relay, RelayConfig};
use tessera_testkit::TestServer;
use tokio_util::sync::CancellationToken;

/// A relay serving on 127.0.0.1:0.
pub struct RunningRelay {
    pub relay: Arc<Relay>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    /// Stop it and wait until its state is closed.
    pub async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        let _ = self.task.await;
        self.dir
    }

    /// `GET /v1/relay/status`.
    pub async fn status(&self) -> Value {
        reqwest::get(format!("{}/v1/relay/status", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POST a JSON body to the relay.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Start a relay in `dir` trusting `keys`, configured by `adjust`.
pub async fn start_relay_in(
    dir: tempfile::TempDir,
    keys: TrustedKeys,
    adjust: impl FnOnce(&mut RelayConfig),
) -> RunningRelay {
    let mut config = RelayConfig::new(dir.path().to_owned(), keys);
    adjust(&mut config);
    let relay = Relay::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let relay = Arc::clone(&relay);
        let stop = stop.clone();
        async move { relay.serve(listener, stop).await.unwrap() }
    });
    RunningRelay {
        relay,
        url,
        dir,
        stop,
        task,
    }
}

/// A relay's key, made as `tessera relay init` makes it.
pub fn relay_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) =
        tessera_relay::keyfile::load_or_create(&tessera_relay::key_path(dir.path())).unwrap();
    (dir, key.public_key().to_paserk())
}

/// Create `site` on the authority for `relay_key` with these shares; the
/// bundle file's text.
pub async fn create_site(s: &TestServer, site: &str, relay_key: &str, licenses: Value) -> String {
    let (status, v) = s
        .admin_post(
            "/v1/admin/sites",
            json!({"site": site, "relay_key": relay_key, "licenses": licenses, "valid_for": "30d"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["bundle"].to_string()
}

/// A client of the relay (only the relay's URL: no route to the
/// authority), pinning the authority's key alone.
pub fn client_of(
    url: &str,
    s: &TestServer,
    dir: &std::path::Path,
    fp: &str,
) -> tessera_client::Builder {
    Client::builder()
        .server(url)
        .public_key(s.public_key.clone())
        .state_dir(dir)
        .tick(Duration::from_millis(20))
        .fingerprint(fp)
}

/// Wait (bounded) until the published verdict satisfies `pred`.
pub async fn until(client: &Client, what: &str, pred: impl Fn(&Verdict) -> bool) -> Arc<Verdict> {
    let mut rx = client.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|v| pred(v))).await;
    match waited {
        Ok(Ok(v)) => v.clone(),
        _ => panic!(
            "timed out waiting for {what}; verdict is {:#?}",
            client.verdict()
        ),
    }
}

/// Wait (bounded) until `check` holds.
pub async fn eventually(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A relay in a fresh directory holding the bundle of site `plant-7`
/// created on `s` with these licenses (taken as if carried in by hand).
pub async fn site_relay(s: &TestServer, licenses: Value) -> RunningRelay {
    let (dir, key) = relay_dir();
    let bundle = create_site(s, "plant-7", &key, licenses).await;
    let relay = start_relay_in(dir, s.keys(), |_| {}).await;
    relay.relay.take_bundle(&bundle).await.unwrap();
    relay
}
