//! The filterer's metrics, declared in one place
//! (`sluice_filterer_<name>_<unit>[_total]`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn durations() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ])
}

/// Every metric the filterer exports.
#[derive(Clone)]
pub struct FiltererMetrics {
    /// Stream messages received.
    pub messages_in: Counter,
    /// Records received.
    pub records_in: Counter,
    /// Messages acknowledged after their records were stored.
    pub messages_acked: Counter,
    /// Messages set aside on the dead-letter stream, not filed, by `reason`
    /// (see `sluice_core::subject`).
    pub dead_letters: sluice_core::deadletter::Counts,
    /// Records placed by arrival time because their ts was in the future.
    pub future_records: Counter,
    /// Blobs written, by kind (`part`, `compact`).
    pub blobs_written: Family<Labels, Counter>,
    /// Raw NDJSON bytes written.
    pub raw_bytes_written: Counter,
    /// Compressed bytes written.
    pub compressed_bytes_written: Counter,
    /// Raw over compressed bytes of the latest blob.
    pub compression_ratio: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Time from taking a buffer to its blob and sidecar being stored.
    pub flush_seconds: Histogram,
    /// Time to compact one partition.
    pub compaction_seconds: Histogram,
    /// Partitions compacted.
    pub compactions: Counter,
    /// Blobs removed by compaction.
    pub compaction_inputs_removed: Counter,
    /// Duplicate records dropped by compaction.
    pub compaction_duplicates: Counter,
    /// Object store errors, by kind (`transient`, `permanent`).
    pub store_errors: Family<Labels, Counter>,
    /// Messages in the stream not yet delivered to the consumer.
    pub consumer_pending: Gauge,
    /// Messages delivered but not yet acknowledged.
    pub consumer_ack_pending: Gauge,
    /// Raw bytes buffered in open partitions.
    pub buffered_bytes: Gauge,
}

impl FiltererMetrics {
    /// Creates and registers the metrics.
    pub fn register(r: &mut Registry) -> FiltererMetrics {
        let m = FiltererMetrics {
            messages_in: Counter::default(),
            records_in: Counter::default(),
            messages_acked: Counter::default(),
            dead_letters: sluice_core::deadletter::Counts::register(
                r,
                "sluice_filterer_dead_letters",
            ),
            future_records: Counter::default(),
            blobs_written: Family::default(),
            raw_bytes_written: Counter::default(),
            compressed_bytes_written: Counter::default(),
            compression_ratio: Gauge::default(),
            flush_seconds: durations(),
            compaction_seconds: durations(),
            compactions: Counter::default(),
            compaction_inputs_removed: Counter::default(),
            compaction_duplicates: Counter::default(),
            store_errors: Family::default(),
            consumer_pending: Gauge::default(),
            consumer_ack_pending: Gauge::default(),
            buffered_bytes: Gauge::default(),
        };
        r.register(
            "sluice_filterer_messages_in",
            "Stream messages received",
            m.messages_in.clone(),
        );
        r.register(
            "sluice_filterer_records_in",
            "Records received",
            m.records_in.clone(),
        );
        r.register(
            "sluice_filterer_messages_acked",
            "Messages acknowledged after storing",
            m.messages_acked.clone(),
        );
        r.register(
            "sluice_filterer_future_records",
            "Records filed by arrival time",
            m.future_records.clone(),
        );
        r.register(
            "sluice_filterer_blobs_written",
            "Blobs written, by kind",
            m.blobs_written.clone(),
        );
        r.register(
            "sluice_filterer_raw_written_bytes",
            "Raw NDJSON bytes written",
            m.raw_bytes_written.clone(),
        );
        r.register(
            "sluice_filterer_compressed_written_bytes",
            "Compressed bytes written",
            m.compressed_bytes_written.clone(),
        );
        r.register(
            "sluice_filterer_compression_ratio",
            "Raw over compressed bytes of the latest blob",
            m.compression_ratio.clone(),
        );
        r.register(
            "sluice_filterer_flush_seconds",
            "Time to compress and store a buffer",
            m.flush_seconds.clone(),
        );
        r.register(
            "sluice_filterer_compaction_seconds",
            "Time to compact a partition",
            m.compaction_seconds.clone(),
        );
        r.register(
            "sluice_filterer_compactions",
            "Partitions compacted",
            m.compactions.clone(),
        );
        r.register(
            "sluice_filterer_compaction_inputs_removed",
            "Blobs removed by compaction",
            m.compaction_inputs_removed.clone(),
        );
        r.register(
            "sluice_filterer_compaction_duplicates",
            "Duplicate records dropped by compaction",
            m.compaction_duplicates.clone(),
        );
        r.register(
            "sluice_filterer_store_errors",
            "Object store errors, by kind",
            m.store_errors.clone(),
        );
        r.register(
            "sluice_filterer_consumer_pending_messages",
            "Messages not yet delivered",
            m.consumer_pending.clone(),
        );
        r.register(
            "sluice_filterer_consumer_ack_pending_messages",
            "Messages delivered, not yet acknowledged",
            m.consumer_ack_pending.clone(),
        );
        r.register(
            "sluice_filterer_buffered_bytes",
            "Raw bytes buffered",
            m.buffered_bytes.clone(),
        );
        m
    }

    /// Counts a store error of `kind`.
    pub fn store_error(&self, kind: &str) {
        self.store_errors
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    /// Counts a blob of `kind` and its sizes.
    pub fn blob(&self, kind: &str, raw: u64, compressed: u64) {
        self.blobs_written
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
        self.raw_bytes_written.inc_by(raw);
        self.compressed_bytes_written.inc_by(compressed);
        if compressed > 0 {
            self.compression_ratio.set(raw as f64 / compressed as f64);
        }
    }
}
