//! The query service's metrics (`sluice_query_<name>_<unit>[_total]`).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::search::Stats;

type Labels = Vec<(String, String)>;

/// Every metric the query service exports.
#[derive(Clone)]
pub struct QueryMetrics {
    /// Searches answered.
    pub searches: Counter,
    /// Answers flagged partial (a blob unreadable, or the timeout).
    pub partial: Counter,
    /// Time to answer a search.
    pub search_seconds: Histogram,
    /// Blobs read.
    pub blobs_read: Counter,
    /// Compressed bytes read from the store.
    pub bytes_read: Counter,
    /// Store requests made.
    pub store_requests: Counter,
    /// Blobs skipped unread, by `reason` (time, level, service, bloom,
    /// order).
    pub blobs_skipped: Family<Labels, Counter>,
    /// Sidecars that were missing, corrupt or of an unknown version (their
    /// blobs were read in full).
    pub sidecars_unreadable: Counter,
    /// Blob lines that were not records.
    pub lines_unparsed: Counter,
    /// Records the recent window read from the stream.
    pub recent_records_in: Counter,
    /// Stream messages the recent window did not keep (undecodable, or a
    /// record claiming another app than its subject).
    pub recent_refused: Counter,
    /// Records the recent window holds.
    pub recent_records: Gauge,
    /// Estimated bytes the recent window holds.
    pub recent_bytes: Gauge,
    /// Exports stopped because the client went away.
    pub exports_abandoned: Counter,
    /// Live tails open now.
    pub tails_open: Gauge,
}

const REASONS: [&str; 6] = ["time", "level", "service", "bloom", "order", "replaced"];

impl QueryMetrics {
    pub fn register(registry: &mut Registry) -> QueryMetrics {
        let r = registry.sub_registry_with_prefix("sluice_query");
        let m = QueryMetrics {
            searches: Counter::default(),
            partial: Counter::default(),
            search_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            blobs_read: Counter::default(),
            bytes_read: Counter::default(),
            store_requests: Counter::default(),
            blobs_skipped: Family::default(),
            sidecars_unreadable: Counter::default(),
            lines_unparsed: Counter::default(),
            recent_records_in: Counter::default(),
            recent_refused: Counter::default(),
            recent_records: Gauge::default(),
            recent_bytes: Gauge::default(),
            exports_abandoned: Counter::default(),
            tails_open: Gauge::default(),
        };
        // Every reason from the start, so each reads 0 before its first skip.
        for reason in REASONS {
            m.skipped(reason);
        }
        r.register("searches", "Searches answered", m.searches.clone());
        r.register(
            "partial_answers",
            "Answers flagged partial",
            m.partial.clone(),
        );
        r.register(
            "search_seconds",
            "Time to answer a search",
            m.search_seconds.clone(),
        );
        r.register("blobs_read", "Blobs read", m.blobs_read.clone());
        r.register(
            "read_bytes",
            "Compressed bytes read from the store",
            m.bytes_read.clone(),
        );
        r.register(
            "store_requests",
            "Store requests made",
            m.store_requests.clone(),
        );
        r.register(
            "blobs_skipped",
            "Blobs skipped unread, by reason",
            m.blobs_skipped.clone(),
        );
        r.register(
            "sidecars_unreadable",
            "Sidecars missing, corrupt or of an unknown version",
            m.sidecars_unreadable.clone(),
        );
        r.register(
            "lines_unparsed",
            "Blob lines that were not records",
            m.lines_unparsed.clone(),
        );
        r.register(
            "recent_records_in",
            "Records the recent window read from the stream",
            m.recent_records_in.clone(),
        );
        r.register(
            "recent_refused",
            "Stream messages the recent window did not keep",
            m.recent_refused.clone(),
        );
        r.register(
            "recent_records",
            "Records the recent window holds",
            m.recent_records.clone(),
        );
        r.register(
            "recent_bytes",
            "Estimated bytes the recent window holds",
            m.recent_bytes.clone(),
        );
        r.register(
            "exports_abandoned",
            "Exports stopped because the client went away",
            m.exports_abandoned.clone(),
        );
        r.register("tails_open", "Live tails open now", m.tails_open.clone());
        m
    }

    /// The skip counter of `reason`.
    fn skipped(&self, reason: &str) -> Counter {
        self.blobs_skipped
            .get_or_create(&vec![("reason".into(), reason.into())])
            .clone()
    }

    /// Counts one answered search.
    pub fn observe(&self, s: &Stats, took: Duration) {
        self.searches.inc();
        if s.partial {
            self.partial.inc();
        }
        self.search_seconds.observe(took.as_secs_f64());
        self.blobs_read.inc_by(s.blobs_read);
        self.bytes_read.inc_by(s.bytes_read);
        self.store_requests.inc_by(s.store_requests);
        self.sidecars_unreadable.inc_by(s.sidecars_unreadable);
        self.lines_unparsed.inc_by(s.lines_unparsed);
        for (reason, n) in REASONS.iter().zip([
            s.skipped_by_time,
            s.skipped_by_level,
            s.skipped_by_service,
            s.skipped_by_bloom,
            s.skipped_by_order,
            s.skipped_replaced,
        ]) {
            self.skipped(reason).inc_by(n);
        }
    }
}
