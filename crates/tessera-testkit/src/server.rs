//! The real authority on 127.0.0.1:0 in this process, a temp data
//! directory, an injected clock, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_protocol::{PublicKey, Timestamp, TrustedKeys};
use tessera_server::clock::ManualClock;
use tessera_server::{Server, ServerConfig};
use tokio::sync::oneshot;

/// A running in-process authority.
pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub admin_key: String,
    pub public_key: PublicKey,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How to start a [`TestServer`].
#[derive(Default)]
pub struct Options {
    /// Validations per minute per IP (0 = off).
    pub rate_limit: u32,
    /// Share a clock (e.g. with a client under test).
    pub clock: Option<Arc<ManualClock>>,
    /// Listen here instead of on a fresh port (restarts).
    pub addr: Option<SocketAddr>,
    /// Limits other than the defaults.
    pub limits: Option<tessera_server::Limits>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, options).await
    }

    /// Start on an existing data directory (restarts).
    pub async fn start_in(dir: tempfile::TempDir, options: Options) -> Self {
        let clock = options
            .clock
            .unwrap_or_else(|| Arc::new(ManualClock::new(Utc::now())));
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.rate_limit_per_minute = options.rate_limit;
        config.clock = clock.clone();
        if let Some(limits) = options.limits {
            config.limits = limits;
        }
        let server = Server::open(config).await.expect("server opens");
        let public_key = server.startup().public_key.clone();
        let admin_key = std::fs::read_to_string(server.startup().admin_key_path.clone())
            .unwrap()
            .trim()
            .to_owned();
        let listener = tokio::net::TcpListener::bind(
            options
                .addr
                .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            dir,
            admin_key,
            public_key,
            clock,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop gracefully and hand back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn now(&self) -> Timestamp {
        use tessera_server::clock::Clock;
        self.clock.now()
    }

    pub fn keys(&self) -> TrustedKeys {
        TrustedKeys::single(self.public_key.clone())
    }

    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request(method, path, body, Some(&self.admin_key.clone()))
            .await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Validations answered so far, from `/metrics`.
    pub async fn validations(&self) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        crate::count_validations(&text)
    }

    pub async fn validate(&self, body: Value) -> (StatusCode, Value) {
        self.request("POST", "/v1/validate", Some(body), None).await
    }

    /// Issue a license; returns (id, token).
    pub async fn issue(&self, body: Value) -> (String, String) {
        let (status, v) = self.admin("POST", "/v1/admin/licenses", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (
            v["license"]["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn issue_default(&self) -> (String, String) {
        self.issue(json!({"customer": "Acme", "plan": "enterprise", "features": ["sso", "audit"], "duration": "30d"}))
            .await
    }
}

/// Assert an error answer's status and code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}
