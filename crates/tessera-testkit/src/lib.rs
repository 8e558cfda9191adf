//! Test harnesses shared by the Tessera crates (dev-dependency only):
//! - [`server`]: the real authority in this process on port 0;
//! - [`fake`]: a fake authority whose answers a test writes, for hostile
//!   documents and failure modes;
//! - [`process`]: the built binary as a server or agent process;
//! - [`browser`]: headless Chromium through chromedriver;
//! - [`sse`]: reading `/v1/watch` streams;
//! - [`hostile`]: reproducible hostile status documents (`tests/data/`).

pub mod browser;
mod browserless;
pub mod conformance;
pub mod fake;
pub mod hostile;
pub mod process;
pub mod server;
pub mod sse;

/// A blocking TCP connection to `to` from the loopback address `from`
/// (any of 127.0.0.0/8), to test limits per client address.
pub fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

pub use browserless::Browserless;
pub use server::{Backend, Options, Stopped, TestDatabase, TestServer, assert_error};

/// Sum of `tessera_validations_total` in a metrics text. Panics when the
/// family is not there at all, so a count of zero is a real zero.
/// A new, well-formed license token that no authority has issued.
#[must_use]
pub fn random_token() -> String {
    let token = tessera_protocol::LicenseToken::generate(&mut rand::rng());
    token.expose_secret().to_owned()
}

/// A response's status and body: JSON when it parses, else the text.
pub async fn answer(res: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

pub fn count_validations(metrics: &str) -> u64 {
    assert!(
        metrics.contains("# TYPE tessera_validations counter")
            || metrics.contains("# TYPE tessera_validations_total counter"),
        "no validation counter in /metrics:\n{metrics}"
    );
    metrics
        .lines()
        .filter(|l| l.starts_with("tessera_validations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Run each test against both backends: `sqlite::<name>` always,
/// `postgres::<name>` on a fresh database when `TESSERA_TEST_POSTGRES_URL`
/// is set (otherwise it prints why it is skipped). One body, two runs.
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block )*) => {
        $( $(#[$meta])* async fn $name($backend: $crate::Backend) $body )*

        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = $crate::Backend::postgres(stringify!($name)) {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// Run `promtool check metrics` on an exposition text and fail the test on
/// any complaint. promtool comes from Debian's `prometheus` package, which
/// `scripts/test` installs; without it the test fails and says so.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    // promtool reads the Prometheus text format; the OpenMetrics `# EOF`
    // line is the only difference it trips on.
    let body: String = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| format!("{l}\n"))
        .collect();
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            panic!("promtool is needed (apt-get install prometheus; scripts/test does it): {e}")
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool check metrics:\n{complaints}"
    );
}

/// Assert that `v` is a license as the admin API shows it (`LicenseView`):
/// every field an operator reads is there.
pub fn assert_license_view(v: &serde_json::Value) {
    for field in [
        "id",
        "customer",
        "plan",
        "features",
        "state",
        "status",
        "revision",
        "valid_from",
        "expires_at",
    ] {
        assert!(v.get(field).is_some(), "the license lacks {field}: {v}");
    }
}
