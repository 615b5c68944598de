//! Delivery metrics of the outbox, registered by each role that delivers
//! (under its own prefix: `sluice_aggregator_deliveries_total`,
//! `sluice_alerter_deliveries_total` …).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Delivery of notifications from the outbox.
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// Delivery attempts by receiver and outcome (`delivered`, `retry`,
    /// `rejected`, `already_delivered`, `invalid`).
    pub deliveries: Family<Labels, Counter>,
    /// Time from a notification's creation to its delivery.
    pub latency_seconds: Histogram,
    /// Notifications published to the outbox, by kind.
    pub published: Family<Labels, Counter>,
}

impl DeliveryMetrics {
    /// Registers the metrics under `registry` (already prefixed).
    pub fn register(registry: &mut Registry) -> DeliveryMetrics {
        let m = DeliveryMetrics {
            deliveries: Family::default(),
            latency_seconds: Histogram::new([
                0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
            published: Family::default(),
        };
        registry.register(
            "deliveries",
            "Notification delivery attempts by receiver and outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from a notification's creation to its delivery",
            m.latency_seconds.clone(),
        );
        registry.register(
            "notifications_published",
            "Notifications stored in the outbox, by kind",
            m.published.clone(),
        );
        m
    }

    /// Counts one attempt's outcome.
    pub fn outcome(&self, receiver: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&vec![
                ("receiver".into(), receiver.to_string()),
                ("outcome".into(), outcome.to_string()),
            ])
            .inc();
    }

    /// Counts a notification stored in the outbox.
    pub fn published(&self, kind: &str) {
        self.published
            .get_or_create(&vec![("kind".into(), kind.to_string())])
            .inc();
    }
}
