//! What the network sources (syslog, HTTP) share: per-source counters,
//! connection limits, and handing chunks to the spool writer.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{AgentMetrics, label, labels2};
use crate::sources::{Chunk, ChunkSender};

/// Counters of one network source, resolved once so the hot path only
/// increments atomics.
#[derive(Clone)]
pub struct SourceStats {
    /// The `source` label (`syslog_tcp`, `http`, …).
    pub source: &'static str,
    /// Records received.
    pub records: Counter,
    /// Bytes received.
    pub bytes: Counter,
    metrics: AgentMetrics,
}

impl SourceStats {
    /// The counters of `source`.
    pub fn new(metrics: &AgentMetrics, source: &'static str) -> SourceStats {
        let l = label("source", source);
        SourceStats {
            source,
            records: metrics.received_records.get_or_create(&l).clone(),
            bytes: metrics.received_bytes.get_or_create(&l).clone(),
            metrics: metrics.clone(),
        }
    }

    /// Counts `n` records kept but flagged for `reason`.
    pub fn flagged(&self, reason: &str, n: u64) {
        if n > 0 {
            self.metrics
                .received_flagged
                .get_or_create(&labels2("source", self.source, "reason", reason))
                .inc_by(n);
        }
    }

    /// Counts one refusal (a request, datagram or batch) for `reason`.
    pub fn rejected(&self, reason: &str, n: u64) {
        self.metrics
            .rejected
            .get_or_create(&labels2("source", self.source, "reason", reason))
            .inc_by(n);
    }

    /// Counts a connection the agent refused or closed for `reason`.
    pub fn closed(&self, reason: &str) {
        self.metrics
            .connections_closed
            .get_or_create(&labels2("source", self.source, "reason", reason))
            .inc();
    }

    /// The agent's metrics.
    pub fn metrics(&self) -> &AgentMetrics {
        &self.metrics
    }
}

/// Caps the connections of one listener and keeps the connection gauges.
#[derive(Clone)]
pub struct ConnLimit {
    slots: Arc<Semaphore>,
    open: Gauge,
    accepted: Counter,
    stats: SourceStats,
}

/// One admitted connection; dropping it frees the slot.
pub struct ConnGuard {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnLimit {
    /// At most `max` connections at once for `stats.source`.
    pub fn new(max: usize, stats: SourceStats) -> ConnLimit {
        let l = label("source", stats.source);
        let open = stats.metrics.connections_open.get_or_create(&l).clone();
        let accepted = stats.metrics.connections_accepted.get_or_create(&l).clone();
        ConnLimit {
            slots: Arc::new(Semaphore::new(max.max(1))),
            open,
            accepted,
            stats,
        }
    }

    /// Admits a new connection, or counts it refused when all slots are
    /// taken (the caller closes it).
    pub fn admit(&self) -> Option<ConnGuard> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.accepted.inc();
                self.open.inc();
                Some(ConnGuard {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.stats.closed("limit");
                None
            }
        }
    }
}

/// Hands chunks to the spool writer, waiting while it is behind. False when
/// the writer has stopped.
pub async fn send_all(tx: &ChunkSender, chunks: impl IntoIterator<Item = Chunk>) -> bool {
    for chunk in chunks {
        if tx.send_async(chunk).await.is_err() {
            return false;
        }
    }
    true
}

/// Whether a listener should stop: resolves once `stop` turns true (or its
/// sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
