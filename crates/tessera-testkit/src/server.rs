//! The real authority on 127.0.0.1:0 in this process, a temp data
//! directory, an injected clock, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_protocol::{
    Expectations, PublicKey, StatusClaims, Timestamp, TrustedKeys, VerifiedDocument,
};
use tessera_server::clock::ManualClock;
use tessera_server::{Server, ServerConfig};
use tokio::sync::oneshot;

/// A running in-process authority.
pub struct TestServer {
    /// The PostgreSQL database, when that is the backend (dropped last).
    pub database: Option<std::sync::Arc<TestDatabase>>,
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

/// Which database a test server uses.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// SQLite in the temp data directory.
    #[default]
    Sqlite,
    /// A fresh PostgreSQL database, dropped when the server is dropped;
    /// the URL of the server to create it on.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend when `TESSERA_TEST_POSTGRES_URL` is set;
    /// otherwise prints why the test is skipped and returns `None`.
    pub fn postgres(test: &str) -> Option<Backend> {
        match std::env::var("TESSERA_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("skipped {test} on PostgreSQL: TESSERA_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }
}

/// A database created for one test and dropped after it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Create `tessera_test_<random>` on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> Self {
        use sqlx::Connection;
        let bytes: [u8; 8] = rand::random();
        let name = format!(
            "tessera_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("the test PostgreSQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A stopped server's data directory, database and address.
pub struct Stopped {
    pub dir: tempfile::TempDir,
    pub database: Option<Arc<TestDatabase>>,
    pub addr: SocketAddr,
}

/// How to start a [`TestServer`].
#[derive(Default)]
pub struct Options {
    /// Which database.
    pub backend: Backend,
    /// Validations per minute per IP (0 = off).
    pub rate_limit: u32,
    /// Share a clock (e.g. with a client under test).
    pub clock: Option<Arc<ManualClock>>,
    /// Listen here instead of on a fresh port (restarts).
    pub addr: Option<SocketAddr>,
    /// Limits other than the defaults.
    pub limits: Option<tessera_server::Limits>,
    /// Reuse this PostgreSQL database (restarts).
    pub database: Option<Arc<TestDatabase>>,
    /// Scheduler and webhook settings other than the defaults.
    pub lifecycle: Option<tessera_server::Lifecycle>,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Measure the clock against PostgreSQL's (off by default: tests move
    /// their clocks by hand).
    pub clock_sync: bool,
    /// Run on the system clock shifted by this much (a replica whose clock
    /// is off) instead of the hand-moved `clock`.
    pub skewed_clock: Option<chrono::Duration>,
}

/// The system clock, `0` ahead (behind when negative), to the second.
#[derive(Debug)]
struct SkewedClock(chrono::Duration);

impl tessera_server::clock::Clock for SkewedClock {
    fn now(&self) -> tessera_protocol::Timestamp {
        tessera_protocol::time::whole_seconds(Utc::now() + self.0)
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Start with defaults on `backend`.
    pub async fn start_on(backend: Backend) -> Self {
        Self::start_with(Options {
            backend,
            ..Options::default()
        })
        .await
    }

    /// A server on `backend` with one license of the default shape:
    /// `(server, license id, token)`.
    pub async fn with_license(backend: Backend) -> (Self, String, String) {
        let s = Self::start_on(backend).await;
        let (id, token) = s.issue_default().await;
        (s, id, token)
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
        let database = match (&options.database, &options.backend) {
            (Some(db), _) => Some(db.clone()),
            (None, Backend::Sqlite) => None,
            (None, Backend::Postgres(url)) => Some(Arc::new(TestDatabase::create(url).await)),
        };
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.rate_limit_per_minute = options.rate_limit;
        config.clock = match options.skewed_clock {
            Some(by) => Arc::new(SkewedClock(by)),
            None => clock.clone(),
        };
        config.database_url = database.as_ref().map(|d| d.url.clone());
        if let Some(limits) = options.limits {
            config.limits = limits;
        }
        if let Some(lifecycle) = options.lifecycle {
            config.lifecycle = lifecycle;
        }
        config.trusted_proxies = options.trusted_proxies;
        config.clock_sync = options.clock_sync;
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
            database,
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

    /// `n` replicas (rate limiting off) on one fresh PostgreSQL database, or
    /// `None` (saying why) without `TESSERA_TEST_POSTGRES_URL`.
    pub async fn postgres_replicas(test: &str, n: usize) -> Option<Vec<TestServer>> {
        let backend = Backend::postgres(test)?;
        let first = Self::start_with(Options {
            backend,
            rate_limit: 0,
            ..Options::default()
        })
        .await;
        let mut all = vec![first];
        for _ in 1..n {
            let next = all[0]
                .replica(Options {
                    rate_limit: 0,
                    ..Options::default()
                })
                .await;
            all.push(next);
        }
        Some(all)
    }

    /// Another replica on this server's PostgreSQL database, with its own
    /// data directory (and signing key) but this server's admin key.
    pub async fn replica(&self, mut options: Options) -> Self {
        let database = self
            .database
            .clone()
            .expect("replicas share a PostgreSQL database");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data)
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(data.join("admin.key"))
            .unwrap();
        std::io::Write::write_all(&mut file, self.admin_key.as_bytes()).unwrap();
        options.database = Some(database);
        if options.clock.is_none() {
            options.clock = Some(self.clock.clone());
        }
        Self::start_in(dir, options).await
    }

    /// Stop gracefully and hand back what a restart needs.
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        Stopped {
            dir: std::mem::replace(&mut self.dir, dir),
            database: self.database.take(),
            addr: self.addr,
        }
    }

    /// Start again on what [`TestServer::stop`] handed back.
    pub async fn restart(stopped: Stopped, mut options: Options) -> Self {
        options.database = stopped.database;
        options.addr = options.addr.or(Some(stopped.addr));
        Self::start_in(stopped.dir, options).await
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

    /// The decoded verdict of validating `token` (which must answer 200).
    pub async fn verdict(&self, token: &str) -> Value {
        let (status, v) = self.validate(serde_json::json!({ "token": token })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["verdict"].clone()
    }

    /// `GET` an admin route.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.admin("GET", path, None).await
    }

    /// `POST` `body` to an admin route.
    pub async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin("POST", path, Some(body)).await
    }

    /// Extend license `id` (`{"by": …}` or `{"to": …}`), which must answer 200.
    pub async fn extend(&self, id: &str, body: Value) -> Value {
        let (status, v) = self
            .admin(
                "POST",
                &format!("/v1/admin/licenses/{id}/extend"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// `POST /v1/admin/licenses/{id}/{action}` with no body (suspend,
    /// reinstate, revoke).
    pub async fn act(&self, id: &str, action: &str) -> (StatusCode, Value) {
        let path = format!("/v1/admin/licenses/{id}/{action}");
        self.admin("POST", &path, None).await
    }

    /// The fleet view of license `id` (`GET …/instances`), which must answer 200.
    pub async fn fleet(&self, id: &str) -> Value {
        let (status, fleet) = self
            .admin("GET", &format!("/v1/admin/licenses/{id}/instances"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{fleet}");
        fleet
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
        crate::answer(req.send().await.unwrap()).await
    }

    /// `POST path` of `body` as `content_type` (none: no header), with no
    /// credentials: the raw response.
    pub async fn post_body(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.url)).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.send().await.unwrap()
    }

    /// `document` verified with this server's keys at its clock's now;
    /// panics when it does not verify.
    pub fn verified(&self, document: &str, expect: &Expectations) -> VerifiedDocument {
        tessera_protocol::verify(document.as_bytes(), &self.keys(), expect, self.now())
            .unwrap_or_else(|e| panic!("the document does not verify: {e}"))
    }

    /// The claims of `document`, verified as an answer for `token` (no nonce).
    pub fn claims(&self, document: &str, token: &str) -> StatusClaims {
        let tfp = tessera_protocol::LicenseToken::parse(token)
            .unwrap()
            .fingerprint();
        self.verified(document, &Expectations::for_token(tfp))
            .claims()
            .clone()
    }

    /// `GET path` with no credentials: the raw response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.url);
        self.http.get(url).send().await.unwrap()
    }

    /// Validations answered so far, from `/metrics`.
    pub async fn validations(&self) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        crate::count_validations(&text)
    }

    pub async fn validate(&self, body: Value) -> (StatusCode, Value) {
        self.request("POST", "/v1/validate", Some(body), None).await
    }

    /// Issue a license to `customer` on plan `p` for `duration`; returns
    /// (id, token).
    pub async fn issue_for(&self, customer: &str, duration: &str) -> (String, String) {
        let body = serde_json::json!({"customer": customer, "plan": "p", "duration": duration});
        self.issue(body).await
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
