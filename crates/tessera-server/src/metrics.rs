//! Prometheus metrics of one authority, in a registry of its own (no global
//! state: several servers in one test process keep their own counts).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
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
    /// Seconds from a change's commit to its write on a stream.
    pub propagation: Histogram,
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
        let propagation = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        registry.register(
            "tessera_propagation_seconds",
            "Time from a license change's commit to its document being handed to a watch stream",
            propagation.clone(),
        );
        Self {
            registry,
            validations,
            propagation,
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

    /// Record one stream's propagation time.
    pub fn propagation(&self, elapsed: std::time::Duration) {
        self.propagation.observe(elapsed.as_secs_f64());
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
