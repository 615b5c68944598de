//! The agent's metrics, declared in one place. Names follow
//! `sluice_agent_<name>_<unit>[_total]`; counters get their `_total` suffix
//! from the encoder. Labels are bounded (levels, reasons), never per file.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric the agent exports.
#[derive(Clone, Default)]
pub struct AgentMetrics {
    /// Lines read from files.
    pub lines_read: Counter,
    /// Bytes read from files.
    pub bytes_read: Counter,
    /// Lines longer than `max_line_bytes`, truncated and flagged.
    pub lines_truncated: Counter,
    /// Lines that were not valid UTF-8, kept lossily and flagged.
    pub lines_lossy: Counter,
    /// Empty lines skipped (they carry no event).
    pub lines_empty: Counter,
    /// Records dropped, by reason (stays 0 for files; UDP sources count here).
    pub records_dropped: Family<Vec<(String, String)>, Counter>,
    /// Records written durably to the spool.
    pub records_spooled: Counter,
    /// Spool entries written.
    pub spool_entries_written: Counter,
    /// Bytes in the spool's live segments.
    pub spool_bytes: Gauge,
    /// Entries in the spool not yet acknowledged by JetStream.
    pub spool_unacked_entries: Gauge,
    /// Times sources had to wait because the spool was full.
    pub spool_full_waits: Counter,
    /// Damaged spool regions found and skipped at start.
    pub spool_corrupt_frames: Counter,
    /// Bytes of damaged spool regions skipped at start.
    pub spool_corrupt_bytes: Counter,
    /// Bytes cut from a torn spool tail at start.
    pub spool_torn_bytes: Counter,
    /// Batches acknowledged by JetStream.
    pub batches_published: Counter,
    /// Records acknowledged by JetStream.
    pub records_published: Counter,
    /// Batches JetStream reported as duplicates (a resend it had already).
    pub batches_duplicate: Counter,
    /// Failed publish attempts.
    pub publish_errors: Counter,
    /// Publish retries.
    pub publish_retries: Counter,
    /// Age of the oldest spool entry not yet acknowledged, in seconds.
    pub oldest_unacked_age_seconds: Gauge,
    /// Files currently open.
    pub files_open: Gauge,
    /// Files currently tracked (open or not).
    pub files_tracked: Gauge,
    /// File errors (unreadable, vanished while opening), by kind.
    pub file_errors: Family<Vec<(String, String)>, Counter>,
    /// File rotations and truncations detected, by kind.
    pub file_rotations: Family<Vec<(String, String)>, Counter>,
    /// Invalid names normalised.
    pub names_normalized: Counter,
    /// Records received by a network source, by `source` (`syslog_udp`,
    /// `syslog_tcp`, `syslog_tls`, `syslog_unix`, `http`).
    pub received_records: Family<Vec<(String, String)>, Counter>,
    /// Bytes received by a network source, by `source`.
    pub received_bytes: Family<Vec<(String, String)>, Counter>,
    /// Records kept but flagged, by `source` and `reason` (`malformed`,
    /// `truncated`, `incomplete`, `lossy`).
    pub received_flagged: Family<Vec<(String, String)>, Counter>,
    /// Requests or datagrams refused, by `source` and `reason`.
    pub rejected: Family<Vec<(String, String)>, Counter>,
    /// HTTP responses, by `status`.
    pub http_responses: Family<Vec<(String, String)>, Counter>,
    /// Connections open now, by `source`.
    pub connections_open: Family<Vec<(String, String)>, Gauge>,
    /// Connections accepted, by `source`.
    pub connections_accepted: Family<Vec<(String, String)>, Counter>,
    /// Connections refused or closed by the agent, by `source` and `reason`
    /// (`limit`, `idle`, `tls`).
    pub connections_closed: Family<Vec<(String, String)>, Counter>,
    /// Datagrams the kernel dropped on the syslog UDP socket since it was
    /// opened (receive buffer overflow).
    pub udp_kernel_drops: Gauge,
    /// Heartbeats of another running agent with this agent's id seen in KV
    /// `sluice_agents`.
    pub id_conflicts: Counter,
}

impl AgentMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> AgentMetrics {
        let m = AgentMetrics::default();
        let r = registry;
        r.register(
            "sluice_agent_lines_read",
            "Lines read from files",
            m.lines_read.clone(),
        );
        r.register(
            "sluice_agent_read_bytes",
            "Bytes read from files",
            m.bytes_read.clone(),
        );
        r.register(
            "sluice_agent_lines_truncated",
            "Lines truncated to max_line_bytes",
            m.lines_truncated.clone(),
        );
        r.register(
            "sluice_agent_lines_lossy",
            "Lines that were not valid UTF-8",
            m.lines_lossy.clone(),
        );
        r.register(
            "sluice_agent_lines_empty",
            "Empty lines skipped",
            m.lines_empty.clone(),
        );
        r.register(
            "sluice_agent_records_dropped",
            "Records dropped, by reason",
            m.records_dropped.clone(),
        );
        r.register(
            "sluice_agent_records_spooled",
            "Records written durably to the spool",
            m.records_spooled.clone(),
        );
        r.register(
            "sluice_agent_spool_entries_written",
            "Spool entries written",
            m.spool_entries_written.clone(),
        );
        r.register(
            "sluice_agent_spool_bytes",
            "Bytes in live spool segments",
            m.spool_bytes.clone(),
        );
        r.register(
            "sluice_agent_spool_unacked_entries",
            "Spool entries not yet acknowledged",
            m.spool_unacked_entries.clone(),
        );
        r.register(
            "sluice_agent_spool_full_waits",
            "Times sources waited for spool space",
            m.spool_full_waits.clone(),
        );
        r.register(
            "sluice_agent_spool_corrupt_frames",
            "Damaged spool regions skipped",
            m.spool_corrupt_frames.clone(),
        );
        r.register(
            "sluice_agent_spool_corrupt_bytes",
            "Bytes of damaged spool regions",
            m.spool_corrupt_bytes.clone(),
        );
        r.register(
            "sluice_agent_spool_torn_bytes",
            "Bytes cut from a torn spool tail",
            m.spool_torn_bytes.clone(),
        );
        r.register(
            "sluice_agent_batches_published",
            "Batches acknowledged by JetStream",
            m.batches_published.clone(),
        );
        r.register(
            "sluice_agent_records_published",
            "Records acknowledged by JetStream",
            m.records_published.clone(),
        );
        r.register(
            "sluice_agent_batches_duplicate",
            "Resent batches JetStream already had",
            m.batches_duplicate.clone(),
        );
        r.register(
            "sluice_agent_publish_errors",
            "Failed publish attempts",
            m.publish_errors.clone(),
        );
        r.register(
            "sluice_agent_publish_retries",
            "Publish retries",
            m.publish_retries.clone(),
        );
        r.register(
            "sluice_agent_oldest_unacked_age_seconds",
            "Age of the oldest unacknowledged spool entry",
            m.oldest_unacked_age_seconds.clone(),
        );
        r.register(
            "sluice_agent_files_open",
            "Files open",
            m.files_open.clone(),
        );
        r.register(
            "sluice_agent_files_tracked",
            "Files tracked",
            m.files_tracked.clone(),
        );
        r.register(
            "sluice_agent_file_errors",
            "File errors, by kind",
            m.file_errors.clone(),
        );
        r.register(
            "sluice_agent_file_rotations",
            "Rotations and truncations detected, by kind",
            m.file_rotations.clone(),
        );
        r.register(
            "sluice_agent_id_conflicts",
            "Heartbeats of another running agent with the same agent id",
            m.id_conflicts.clone(),
        );
        r.register(
            "sluice_agent_names_normalized",
            "Invalid names normalised",
            m.names_normalized.clone(),
        );
        r.register(
            "sluice_agent_received_records",
            "Records received by network sources, by source",
            m.received_records.clone(),
        );
        r.register(
            "sluice_agent_received_bytes",
            "Bytes received by network sources, by source",
            m.received_bytes.clone(),
        );
        r.register(
            "sluice_agent_received_flagged",
            "Received records kept but flagged, by source and reason",
            m.received_flagged.clone(),
        );
        r.register(
            "sluice_agent_rejected",
            "Requests or datagrams refused, by source and reason",
            m.rejected.clone(),
        );
        r.register(
            "sluice_agent_http_responses",
            "HTTP ingestion responses, by status",
            m.http_responses.clone(),
        );
        r.register(
            "sluice_agent_connections_open",
            "Network source connections open, by source",
            m.connections_open.clone(),
        );
        r.register(
            "sluice_agent_connections_accepted",
            "Network source connections accepted, by source",
            m.connections_accepted.clone(),
        );
        r.register(
            "sluice_agent_connections_closed",
            "Connections refused or closed by the agent, by source and reason",
            m.connections_closed.clone(),
        );
        r.register(
            "sluice_agent_udp_kernel_drops",
            "Datagrams dropped by the kernel on the syslog UDP socket",
            m.udp_kernel_drops.clone(),
        );
        m
    }
}

impl AgentMetrics {
    /// Counts a rotation or truncation of `kind`.
    pub fn rotation(&self, kind: &str) {
        self.file_rotations
            .get_or_create(&label("kind", kind))
            .inc();
    }
}

/// A two-label set for a metric family.
pub fn labels2(k1: &str, v1: &str, k2: &str, v2: &str) -> Vec<(String, String)> {
    vec![
        (k1.to_string(), v1.to_string()),
        (k2.to_string(), v2.to_string()),
    ]
}

/// A one-label set for a metric family.
pub fn label(key: &str, value: &str) -> Vec<(String, String)> {
    vec![(key.to_string(), value.to_string())]
}
