//! Test harnesses shared by the Tessera crates (dev-dependency only):
//! - [`server`]: the real authority in this process on port 0;
//! - [`fake`]: a fake authority whose answers a test writes, for hostile
//!   documents and failure modes;
//! - [`process`]: the built binary as a server or agent process;
//! - [`browser`]: headless Chromium through chromedriver;
//! - [`sse`]: reading `/v1/watch` streams.

pub mod browser;
pub mod fake;
pub mod process;
pub mod server;
pub mod sse;

pub use server::{Backend, Options, Stopped, TestDatabase, TestServer, assert_error};

/// Sum of `tessera_validations_total` in a metrics text. Panics when the
/// family is not there at all, so a count of zero is a real zero.
pub fn count_validations(metrics: &str) -> u64 {
    assert!(
        metrics.contains("# TYPE tessera_validations counter"),
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
