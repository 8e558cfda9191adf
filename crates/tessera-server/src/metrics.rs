//! Prometheus metrics of one authority, in a registry of its own (no global
//! state: several servers in one test process keep their own counts).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Label: the status a validation answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `active`, `trial`, `expired`, `suspended`, `revoked`, `not_found`,
    /// `not_modified`.
    pub status: &'static str,
}

/// The authority's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Validations answered, by status.
    pub validations: Family<StatusLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let validations = Family::<StatusLabel, Counter>::default();
        registry.register(
            "tessera_validations",
            "Validations answered, by status",
            validations.clone(),
        );
        // Every series exists from the start, at zero: rate() and alerts
        // need no special case for "never happened yet".
        for status in [
            "active",
            "trial",
            "expired",
            "suspended",
            "revoked",
            "not_found",
            "not_modified",
        ] {
            let _ = validations.get_or_create(&StatusLabel { status });
        }
        Self {
            registry,
            validations,
        }
    }
}

impl Metrics {
    /// Count a validation answer.
    pub fn validation(&self, status: &'static str) {
        self.validations
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// The exposition text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
