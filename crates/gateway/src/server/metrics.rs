//! The gateway's Prometheus metrics, typed: each counter is a field, each label set a struct.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of accepted messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RegionLabels {
    pub(crate) region: &'static str,
}

/// Labels of rejected messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RejectLabels {
    pub(crate) reason: &'static str,
}

/// Labels of dropped fields: the reportable path and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct DropLabels {
    pub(crate) field: String,
    pub(crate) reason: &'static str,
}

/// Labels of answered requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) status: u16,
}

/// Every metric the gateway exports on `/metrics`.
#[derive(Debug)]
pub struct GatewayMetrics {
    pub(crate) registry: Registry,
    pub(crate) accepted: Family<RegionLabels, Counter>,
    pub(crate) rejected: Family<RejectLabels, Counter>,
    pub(crate) dropped: Family<DropLabels, Counter>,
    pub(crate) requests: Family<StatusLabels, Counter>,
    pub(crate) produce_seconds: Histogram,
    pub(crate) in_flight: Gauge,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("veil_gateway");
        let accepted = Family::<RegionLabels, Counter>::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let dropped = Family::<DropLabels, Counter>::default();
        let requests = Family::<StatusLabels, Counter>::default();
        let produce_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let in_flight = Gauge::default();
        registry.register(
            "messages_accepted",
            "Messages filtered and acknowledged by Kafka",
            accepted.clone(),
        );
        registry.register(
            "messages_rejected",
            "Messages refused whole, by reason",
            rejected.clone(),
        );
        registry.register(
            "fields_dropped",
            "Fields removed from accepted messages, by field and reason",
            dropped.clone(),
        );
        registry.register("requests", "Answered requests by status", requests.clone());
        registry.register(
            "produce_latency_seconds",
            "Time from producing a request's messages to Kafka's last acknowledgement",
            produce_seconds.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests waiting for Kafka's acknowledgement",
            in_flight.clone(),
        );
        GatewayMetrics {
            registry,
            accepted,
            rejected,
            dropped,
            requests,
            produce_seconds,
            in_flight,
        }
    }
}

impl GatewayMetrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
