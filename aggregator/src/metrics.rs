//! The aggregator's metrics (`sluice_aggregator_<name>_<unit>[_total]`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_notify::metrics::DeliveryMetrics;

/// Every metric the aggregator exports.
#[derive(Clone)]
pub struct AggregatorMetrics {
    /// Error records grouped.
    pub errors_in: Counter,
    /// Records counted per hour.
    pub records_counted: Counter,
    /// Messages set aside on the dead-letter stream, not used, by `reason`
    /// (see `sluice_core::subject`).
    pub dead_letters: sluice_core::deadletter::Counts,
    /// Group writes to KV.
    pub group_writes: Counter,
    /// New groups.
    pub groups_new: Counter,
    /// Writes retried because another instance changed the group first.
    pub write_conflicts: Counter,
    /// Groups dropped from the in-memory cache (their state stays in KV).
    pub groups_evicted: Counter,
    /// Groups in the in-memory cache.
    pub groups_cached: Gauge,
    /// Owner notifications decided, any kind.
    pub notifications: Counter,
    /// Groups whose app has no owner (kept, nobody told).
    pub unowned: Counter,
    /// Time to write one batch of groups or counts.
    pub flush_seconds: Histogram,
    /// Delivery from the outbox.
    pub delivery: DeliveryMetrics,
}

impl AggregatorMetrics {
    /// Registers every metric under `sluice_aggregator_`.
    pub fn register(registry: &mut Registry) -> AggregatorMetrics {
        let r = registry.sub_registry_with_prefix("sluice_aggregator");
        let m = AggregatorMetrics {
            errors_in: Counter::default(),
            records_counted: Counter::default(),
            dead_letters: sluice_core::deadletter::Counts::register(r, "dead_letters"),
            group_writes: Counter::default(),
            groups_new: Counter::default(),
            write_conflicts: Counter::default(),
            groups_evicted: Counter::default(),
            groups_cached: Gauge::default(),
            notifications: Counter::default(),
            unowned: Counter::default(),
            flush_seconds: Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            delivery: DeliveryMetrics::register(r),
        };
        r.register("errors_in", "Error records grouped", m.errors_in.clone());
        r.register(
            "records_counted",
            "Records counted per hour",
            m.records_counted.clone(),
        );
        r.register("group_writes", "Group writes to KV", m.group_writes.clone());
        r.register("groups_new", "New error groups", m.groups_new.clone());
        r.register(
            "write_conflicts",
            "Group writes retried after a concurrent change",
            m.write_conflicts.clone(),
        );
        r.register(
            "groups_evicted",
            "Groups dropped from the in-memory cache",
            m.groups_evicted.clone(),
        );
        r.register(
            "groups_cached",
            "Groups in the in-memory cache",
            m.groups_cached.clone(),
        );
        r.register(
            "notifications",
            "Owner notifications decided",
            m.notifications.clone(),
        );
        r.register(
            "unowned",
            "Group notifications for apps without an owner",
            m.unowned.clone(),
        );
        r.register(
            "flush_seconds",
            "Time to write one batch of groups or counts",
            m.flush_seconds.clone(),
        );
        m
    }
}
