//! Prometheus metrics of one authority, in a registry of its own (no global
//! state: several servers in one test process keep their own counts).

use std::sync::PoisonError;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use tessera_protocol::wire::LicenseState;

/// Label: the status a validation answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `active`, `trial`, `expired`, `suspended`, `revoked`, `not_found`,
    /// `not_modified`.
    pub status: &'static str,
}

/// Label: a license state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `active`, `suspended`, `revoked`.
    pub state: String,
}

/// Label: an expiry horizon.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HorizonLabel {
    /// `30d`, `7d`, `1d`, or `expired`.
    pub within: String,
}

/// Labels: a product (its name) and a stored license state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProductStateLabel {
    /// Product name.
    pub product: String,
    /// `active`, `suspended`, `revoked`.
    pub state: String,
}

/// Label: a webhook delivery attempt's result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `delivered`, `retry`, `failed`.
    pub result: &'static str,
}

/// Labels: an HTTP route (the matched pattern, never the raw path) and method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route pattern, e.g. `/v1/admin/licenses/{id}`.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Histograms by route, then by method (a route has one to three).
type LatencyHandles = std::collections::HashMap<Box<str>, Vec<(Box<str>, Histogram)>>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// The authority's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Validations answered, by status.
    pub validations: Family<StatusLabel, Counter>,
    /// Seconds from a change's commit to its write on a stream.
    pub propagation: Histogram,
    /// Open change streams on this replica.
    pub watchers: Gauge,
    /// Licenses by stored state (all replicas: read from the database).
    pub licenses: Family<StateLabel, Gauge>,
    /// Licenses by product and stored state.
    pub product_licenses: Family<ProductStateLabel, Gauge>,
    /// Active licenses expiring within each horizon (and already past it).
    pub expiring: Family<HorizonLabel, Gauge>,
    /// Horizon events raised, by horizon.
    pub horizon_events: Family<HorizonLabel, Counter>,
    /// Automatic renewals made.
    pub auto_renewals: Counter,
    /// Webhook delivery attempts, by result.
    pub webhook_deliveries: Family<ResultLabel, Counter>,
    /// HTTP request latency by route and method.
    pub http_latency: HistogramFamily<RouteLabel>,
    /// Each (route, method)'s histogram in `http_latency`, found by borrowed
    /// strings: the family's own lookup takes an owned label, two
    /// allocations on every request.
    latency_handles: std::sync::RwLock<LatencyHandles>,
    /// This replica's clock offset from the database's (PostgreSQL).
    pub clock_offset: Gauge,
    /// Consumption reports answered: `counted`, or `duplicate` (a retry).
    pub consumption_reports: Family<ResultLabel, Counter>,
}

/// The registry being filled: each metric is registered and a handle kept
/// (the registry holds a clone).
struct Registrar(Registry);

impl Registrar {
    /// A new metric of type `M`, starting at zero.
    fn add<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        self.add_with(name, help, M::default())
    }

    /// `metric` as built.
    fn add_with<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    /// A family whose `series` exist from the start, at zero: rate() and
    /// alerts need no special case for "never happened yet".
    fn family<L, M>(&mut self, name: &str, help: &str, series: &[L]) -> Family<L, M>
    where
        L: Clone + std::hash::Hash + Eq,
        M: Default,
        Family<L, M>: Metric,
    {
        let family: Family<L, M> = self.add(name, help);
        for labels in series {
            let _ = family.get_or_create(labels);
        }
        family
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registrar(Registry::default());
        let statuses = [
            "active",
            "trial",
            "expired",
            "suspended",
            "revoked",
            "not_found",
            "not_modified",
        ];
        let validations = r.family(
            "tessera_validations",
            "Validations answered, by status",
            &statuses.map(|status| StatusLabel { status }),
        );
        let propagation = r.add_with(
            "tessera_propagation_seconds",
            "Time from a license change's commit to its document being handed to a watch stream",
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        );
        let watchers = r.add("tessera_watchers", "Change streams open on this replica");
        let states = LicenseState::ALL.map(|state| StateLabel {
            state: state.to_string(),
        });
        let licenses = r.family("tessera_licenses", "Licenses by stored state", &states);
        let product_licenses = r.add(
            "tessera_product_licenses",
            "Licenses by product and stored state",
        );
        let expiring = r.add(
            "tessera_licenses_expiring",
            "Active licenses whose expiry falls within the horizon (within=\"expired\": already past it)",
        );
        let horizon_events = r.add(
            "tessera_horizon_events",
            "Expiry horizon events raised by the scheduler",
        );
        let auto_renewals = r.add("tessera_auto_renewals", "Licenses renewed automatically");
        let webhook_deliveries = r.family(
            "tessera_webhook_deliveries",
            "Webhook delivery attempts by result (delivered, retry, failed)",
            &["delivered", "retry", "failed"].map(|result| ResultLabel { result }),
        );
        let http_latency = r.add_with(
            "tessera_http_request_duration_seconds",
            "HTTP request latency by route pattern and method",
            Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        );
        let clock_offset = r.add(
            "tessera_clock_offset_seconds",
            "How far the database's clock is ahead of this replica's (PostgreSQL; leases run on the database's time)",
        );
        let consumption_reports = r.family(
            "tessera_consumption_reports",
            "Metered consumption reports answered, by result (counted; duplicate: a retry counted before)",
            &["counted", "duplicate"].map(|result| ResultLabel { result }),
        );
        Self {
            registry: r.0,
            clock_offset,
            consumption_reports,
            validations,
            propagation,
            watchers,
            licenses,
            product_licenses,
            expiring,
            horizon_events,
            auto_renewals,
            webhook_deliveries,
            http_latency,
            latency_handles: std::sync::RwLock::default(),
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

    /// Count a horizon event.
    pub fn horizon_event(&self, within: &str) {
        self.horizon_events
            .get_or_create(&HorizonLabel {
                within: within.to_owned(),
            })
            .inc();
    }

    /// Count a consumption report.
    pub fn consumption_report(&self, duplicate: bool) {
        let result = if duplicate { "duplicate" } else { "counted" };
        self.consumption_reports
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Count an automatic renewal.
    pub fn auto_renewal(&self) {
        self.auto_renewals.inc();
    }

    /// Count a webhook delivery attempt.
    pub fn webhook_delivery(&self, result: &'static str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Record one HTTP request's latency.
    pub fn http_request(&self, route: &str, method: &str, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let find = |handles: &LatencyHandles| {
            handles
                .get(route)
                .and_then(|by_method| by_method.iter().find(|(m, _)| &**m == method))
                .map(|(_, histogram)| histogram.observe(seconds))
        };
        let handles = &self.latency_handles;
        if find(&handles.read().unwrap_or_else(PoisonError::into_inner)).is_some() {
            return;
        }
        // First time for this pair: the family's histogram, kept for next time.
        let histogram = self
            .http_latency
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .clone();
        histogram.observe(seconds);
        let mut handles = handles.write().unwrap_or_else(PoisonError::into_inner);
        let by_method = handles.entry(route.into()).or_default();
        if !by_method.iter().any(|(m, _)| &**m == method) {
            by_method.push((method.into(), histogram));
        }
    }

    /// The Prometheus text format (0.0.4), for scrapers and tools that do
    /// not ask for OpenMetrics (`promtool check metrics`, `curl`): counter
    /// families are named with their `_total` suffix and the `# EOF` and
    /// `# UNIT` lines are left out.
    #[must_use]
    pub fn encode_prometheus_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }

    /// The exposition text (OpenMetrics).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// OpenMetrics → Prometheus text 0.0.4 for what `prometheus-client` emits.
fn openmetrics_to_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 256);
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_and_method_keeps_one_latency_histogram() {
        let m = Metrics::default();
        let ms = std::time::Duration::from_millis(1);
        for _ in 0..3 {
            m.http_request("/v1/validate", "POST", ms);
        }
        m.http_request("/v1/validate", "GET", ms);
        m.http_request("/healthz", "GET", ms);
        let text = m.encode_prometheus_text();
        let count = |route: &str, method: &str| {
            let line = format!(
                "tessera_http_request_duration_seconds_count{{route=\"{route}\",method=\"{method}\"}} "
            );
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&line)).collect();
            assert_eq!(lines.len(), 1, "{line} once in\n{text}");
            lines[0][line.len()..].to_owned()
        };
        assert_eq!(count("/v1/validate", "POST"), "3");
        assert_eq!(count("/v1/validate", "GET"), "1");
        assert_eq!(count("/healthz", "GET"), "1");
    }

    #[test]
    fn counters_get_their_total_name_in_text_format() {
        let m = Metrics::default();
        m.validation("active");
        let text = m.encode_prometheus_text();
        assert!(text.contains("# HELP tessera_validations_total Validations answered"));
        assert!(text.contains("# TYPE tessera_validations_total counter"));
        assert!(text.contains("tessera_validations_total{status=\"active\"} 1"));
        assert!(text.contains("# TYPE tessera_propagation_seconds histogram"));
        assert!(!text.contains("# EOF"));
        assert!(m.encode().trim_end().ends_with("# EOF"));
    }
}
