//! The expiry role's metrics (`sluice_expiry_<name>[_total]`), declared in
//! one place. Counters per app are labelled `app` and `action` (`moved`,
//! `deleted`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric the expiry role exports.
#[derive(Clone)]
pub struct ExpiryMetrics {
    /// Partitions moved or deleted, by app and action.
    pub partitions: Family<Labels, Counter>,
    /// Objects moved or deleted, by app and action.
    pub objects: Family<Labels, Counter>,
    /// Bytes moved or deleted, by app and action.
    pub bytes: Family<Labels, Counter>,
    /// Due partitions left for a later pass, by app and reason
    /// (`recent_write`, `claimed`).
    pub held: Family<Labels, Counter>,
    /// Partitions whose action failed (left as they were), by app.
    pub errors: Family<Labels, Counter>,
    /// Store requests made, by operation (`list`, `get`, `put`, `head`,
    /// `delete`; a bulk delete counts once per request it sends).
    pub store_requests: Family<Labels, Counter>,
    /// Passes finished.
    pub passes: Counter,
    /// How long a pass took.
    pub pass_seconds: Histogram,
    /// Partitions that failed in the latest pass.
    pub last_pass_errors: Gauge,
}

impl ExpiryMetrics {
    /// Creates and registers the metrics.
    pub fn register(r: &mut Registry) -> ExpiryMetrics {
        let m = ExpiryMetrics {
            partitions: Family::default(),
            objects: Family::default(),
            bytes: Family::default(),
            held: Family::default(),
            errors: Family::default(),
            store_requests: Family::default(),
            passes: Counter::default(),
            pass_seconds: Histogram::new([0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
            last_pass_errors: Gauge::default(),
        };
        r.register(
            "sluice_expiry_partitions",
            "Partitions moved or deleted, by app and action",
            m.partitions.clone(),
        );
        r.register(
            "sluice_expiry_objects",
            "Objects moved or deleted, by app and action",
            m.objects.clone(),
        );
        r.register(
            "sluice_expiry_bytes",
            "Bytes moved or deleted, by app and action",
            m.bytes.clone(),
        );
        r.register(
            "sluice_expiry_held",
            "Due partitions left for a later pass, by app and reason",
            m.held.clone(),
        );
        r.register(
            "sluice_expiry_errors",
            "Partitions whose action failed, by app",
            m.errors.clone(),
        );
        r.register(
            "sluice_expiry_store_requests",
            "Store requests, by operation",
            m.store_requests.clone(),
        );
        r.register("sluice_expiry_passes", "Passes finished", m.passes.clone());
        r.register(
            "sluice_expiry_pass_seconds",
            "Duration of a pass",
            m.pass_seconds.clone(),
        );
        r.register(
            "sluice_expiry_last_pass_errors",
            "Partitions that failed in the latest pass",
            m.last_pass_errors.clone(),
        );
        m
    }

    /// Counts a finished action.
    pub fn acted(&self, app: &str, action: &str, objects: u64, bytes: u64) {
        let labels = vec![("app".into(), app.into()), ("action".into(), action.into())];
        self.partitions.get_or_create(&labels).inc();
        self.objects.get_or_create(&labels).inc_by(objects);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Counts a held partition.
    pub fn held(&self, app: &str, reason: &str) {
        let labels = vec![("app".into(), app.into()), ("reason".into(), reason.into())];
        self.held.get_or_create(&labels).inc();
    }

    /// Counts a failed partition.
    pub fn failed(&self, app: &str) {
        self.errors
            .get_or_create(&vec![("app".into(), app.into())])
            .inc();
    }

    /// Counts `n` store requests of `op`.
    pub fn requests(&self, op: &str, n: u64) {
        self.store_requests
            .get_or_create(&vec![("op".into(), op.into())])
            .inc_by(n);
    }
}
