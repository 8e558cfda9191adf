//! The built `tessera` binary as a process: server and agent, with their
//! printed address, logs in a file, kill -9 and SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running `tessera server` or `tessera agent`.
pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Lines printed before "listening on".
    pub banner: Vec<String>,
    pub log_path: PathBuf,
    http: reqwest::Client,
}

impl Process {
    /// Spawn `bin args…`, logging stderr to `log_path`, and wait for
    /// "listening on …" on stdout.
    pub fn spawn(bin: &str, args: &[&str], log_path: &Path, envs: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(log_path).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .env("TESSERA_LOG", "debug");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("{bin} {args:?} exited before listening; log:\n{log}");
            };
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
            banner.push(line);
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url,
            banner,
            log_path: log_path.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A banner line's value: `  public key:     k4…` → `k4…`.
    pub fn banner_value(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .map(|v| v.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {label:?} in banner {:?}", self.banner))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// kill -9 and wait.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded); the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}{path}", self.url)).send().await;
        let (status, value) = crate::answer(res.unwrap()).await;
        (status.as_u16(), value)
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let (status, value) = crate::answer(req.send().await.unwrap()).await;
        (status.as_u16(), value)
    }

    /// Validations the server answered so far (its `/metrics`).
    pub async fn validations(&self) -> u64 {
        let (_, text) = self.get("/metrics").await;
        crate::count_validations(text.as_str().unwrap_or_default())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tessera server` on a data directory.
pub struct ServerProcess {
    pub process: Process,
    pub data_dir: PathBuf,
    pub public_key: String,
    pub admin_key: String,
}

impl ServerProcess {
    /// Start on `addr` (`127.0.0.1:0` for any port).
    pub fn start(bin: &str, data_dir: &Path, addr: SocketAddr, log_name: &str) -> Self {
        Self::start_with(bin, data_dir, addr, log_name, &[], None)
    }

    /// Start with more arguments; `admin_key` when this data directory will
    /// not hold one (a second replica on a shared database).
    pub fn start_with(
        bin: &str,
        data_dir: &Path,
        addr: SocketAddr,
        log_name: &str,
        extra: &[&str],
        admin_key: Option<&str>,
    ) -> Self {
        let log = data_dir.parent().unwrap().join(log_name);
        let listen = addr.to_string();
        let dir = data_dir.to_str().unwrap();
        let mut args = vec!["server", "--listen", &listen, "--data-dir", dir];
        args.extend_from_slice(extra);
        let process = Process::spawn(bin, &args, &log, &[]);
        let public_key = process.banner_value("public key");
        let admin_key = admin_key.map_or_else(
            || {
                std::fs::read_to_string(data_dir.join("admin.key"))
                    .unwrap()
                    .trim()
                    .to_owned()
            },
            str::to_owned,
        );
        Self {
            process,
            data_dir: data_dir.to_owned(),
            public_key,
            admin_key,
        }
    }

    pub fn url(&self) -> &str {
        &self.process.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.process
            .url
            .trim_start_matches("http://")
            .parse()
            .unwrap()
    }

    pub async fn admin(&self, path: &str, body: Value) -> (u16, Value) {
        self.process.post(path, body, Some(&self.admin_key)).await
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.process.url))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Extend license `id` (`{"by": …}` or `{"to": …}`), which must answer 200.
    pub async fn extend(&self, id: &str, body: Value) -> Value {
        let (status, v) = self
            .admin(&format!("/v1/admin/licenses/{id}/extend"), body)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Issue a license; (id, token).
    /// Issue a license to `customer` on plan `p` for `duration`; returns
    /// (id, token).
    pub async fn issue_for(&self, customer: &str, duration: &str) -> (String, String) {
        let body = serde_json::json!({"customer": customer, "plan": "p", "duration": duration});
        self.issue(body).await
    }

    pub async fn issue(&self, body: Value) -> (String, String) {
        let (status, v) = self.admin("/v1/admin/licenses", body).await;
        assert_eq!(status, 201, "{v}");
        (
            v["license"]["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }
}

/// Wait (bounded, polling) until `check` returns `Some`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
