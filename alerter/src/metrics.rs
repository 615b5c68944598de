//! The alerter's metrics (`sluice_alerter_<name>_<unit>[_total]`), with the
//! outbox delivery metrics of `sluice_notify` under the same prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_notify::metrics::DeliveryMetrics;

/// Every metric the alerter exports.
#[derive(Clone)]
pub struct AlerterMetrics {
    /// Stream messages read.
    pub messages_in: Counter,
    /// Records checked against the rules.
    pub records_in: Counter,
    /// Rule matches.
    pub matches: Counter,
    /// Messages set aside on the dead-letter stream, not matched, by
    /// `reason` (see `sluice_core::subject`).
    pub dead_letters: sluice_core::deadletter::Counts,
    /// Groups tracked.
    pub groups: Gauge,
    /// Matches dropped because the group cap was reached.
    pub groups_refused: Counter,
    /// Due notifications not sent because a silence matched.
    pub silenced: Counter,
    /// Silences the alerter holds: the configuration's and those stored
    /// and in force at the last read of the bucket, set on every read.
    pub silences_loaded: Gauge,
    /// Due notifications another instance had already sent.
    pub claimed_elsewhere: Counter,
    /// Age of the newest record processed when it was processed.
    pub processing_delay_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Delivery from the outbox.
    pub delivery: DeliveryMetrics,
}

impl AlerterMetrics {
    /// Registers every metric under `sluice_alerter_`.
    pub fn register(registry: &mut Registry) -> AlerterMetrics {
        let r = registry.sub_registry_with_prefix("sluice_alerter");
        let m = AlerterMetrics {
            messages_in: Counter::default(),
            records_in: Counter::default(),
            matches: Counter::default(),
            dead_letters: sluice_core::deadletter::Counts::register(r, "dead_letters"),
            groups: Gauge::default(),
            groups_refused: Counter::default(),
            silenced: Counter::default(),
            silences_loaded: Gauge::default(),
            claimed_elsewhere: Counter::default(),
            processing_delay_seconds: Gauge::default(),
            delivery: DeliveryMetrics::register(r),
        };
        r.register("messages_in", "Stream messages read", m.messages_in.clone());
        r.register(
            "records_in",
            "Records checked against the rules",
            m.records_in.clone(),
        );
        r.register("matches", "Rule matches", m.matches.clone());
        r.register("groups", "Alert groups tracked", m.groups.clone());
        r.register(
            "groups_refused",
            "Matches dropped because the group cap was reached",
            m.groups_refused.clone(),
        );
        r.register(
            "silenced",
            "Due notifications held back by a silence",
            m.silenced.clone(),
        );
        r.register(
            "silences_loaded",
            "Silences held, configured and stored, as of the last read",
            m.silences_loaded.clone(),
        );
        r.register(
            "claimed_elsewhere",
            "Due notifications another instance had already sent",
            m.claimed_elsewhere.clone(),
        );
        r.register(
            "processing_delay_seconds",
            "Age of the newest stream message when it was processed",
            m.processing_delay_seconds.clone(),
        );
        m
    }
}
