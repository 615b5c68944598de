//! Writing blobs and their sidecars, with retries, and reading them back.
//!
//! A blob is written before its sidecar, and both before anything that
//! depends on them (acks, deleting compaction inputs). Writes are
//! idempotent — a retry puts the same bytes under the same name — so every
//! failure is simply retried: transient ones quickly with capped, jittered
//! backoff; permanent ones (bad credentials, missing bucket) slowly and
//! loudly, since only an operator can fix them and nothing may be acked
//! meanwhile.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sluice_core::backoff::Backoff;
use sluice_core::index::{BlobIndex, IndexBuilder};
use sluice_core::layout::{BlobKind, Partition, blob_name, index_name};
use sluice_core::record::now_nanos;
use sluice_core::store::{Store, is_permanent};

use crate::metrics::FiltererMetrics;

/// Store health, read by `/health`.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// When the last write succeeded (ns since the epoch).
    pub last_ok_ns: AtomicI64,
    /// When the last permanent error happened (ns since the epoch).
    pub last_permanent_ns: AtomicI64,
    /// The last error, for `/health`.
    pub last_error: std::sync::Mutex<String>,
}

impl StoreHealth {
    /// Healthy unless the latest outcome was a permanent error.
    pub fn check(&self) -> Result<(), String> {
        let bad = self.last_permanent_ns.load(Ordering::Relaxed);
        if bad > 0 && bad > self.last_ok_ns.load(Ordering::Relaxed) {
            let reason = self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            return Err(format!("object store refuses writes: {reason}"));
        }
        Ok(())
    }
}

/// gzip-compresses `raw` (CPU-bound: call from a blocking thread).
pub fn gzip(raw: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(raw.len() / 6 + 1024),
        Compression::new(level.clamp(1, 9)),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

/// Decompresses a (possibly multi-member) gzip blob.
pub fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(compressed.len() * 6);
    MultiGzDecoder::new(compressed).read_to_end(&mut out)?;
    Ok(out)
}

/// Puts `bytes` at `key`, retrying until it succeeds or `stop` is set.
/// Returns false when stopped first.
pub async fn put_retrying(
    store: &Store,
    key: &Path,
    bytes: Bytes,
    health: &StoreHealth,
    metrics: &FiltererMetrics,
    stop: &AtomicBool,
) -> bool {
    let mut attempt: u32 = 0;
    loop {
        match store.inner.put(key, PutPayload::from(bytes.clone())).await {
            Ok(_) => {
                health.last_ok_ns.store(now_nanos(), Ordering::Relaxed);
                return true;
            }
            Err(err) => {
                let permanent = is_permanent(&err);
                metrics.store_error(if permanent { "permanent" } else { "transient" });
                if permanent {
                    health
                        .last_permanent_ns
                        .store(now_nanos(), Ordering::Relaxed);
                    if let Ok(mut last) = health.last_error.lock() {
                        *last = err.to_string();
                    }
                    tracing::error!(object_key = %key, error = %err, "object store refuses the write; nothing is acknowledged until it accepts");
                } else {
                    tracing::warn!(object_key = %key, error = %err, attempt, "object store write failed, retrying");
                }
                let backoff = if permanent {
                    Backoff::new(Duration::from_secs(5), Duration::from_secs(30))
                } else {
                    Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
                };
                let until = Instant::now() + backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The blob's key.
    pub key: Path,
    /// Records in it.
    pub records: u64,
    /// Raw NDJSON bytes.
    pub raw_bytes: u64,
    /// Compressed bytes.
    pub compressed_bytes: u64,
}

/// Compresses `ndjson` off the runtime, writes the blob, then its sidecar.
/// Returns `None` when stopped before both were stored.
#[allow(clippy::too_many_arguments)]
pub async fn write_blob(
    store: &Store,
    partition: &Partition,
    kind: BlobKind,
    writer: &str,
    ndjson: Vec<u8>,
    index: IndexBuilder,
    sorted: bool,
    level: u32,
    health: &StoreHealth,
    metrics: &FiltererMetrics,
    stop: &AtomicBool,
) -> Option<Written> {
    let raw_bytes = ndjson.len() as u64;
    let compressed = tokio::task::spawn_blocking(move || gzip(&ndjson, level))
        .await
        .ok()?;
    let compressed_bytes = compressed.len() as u64;
    let index: BlobIndex = index.finish(compressed_bytes, sorted);
    let name = blob_name(kind, writer);
    let key = store.key(&format!("{}/{}", partition.prefix(), name));
    let idx_key = store.key(&format!("{}/{}", partition.prefix(), index_name(&name)));
    if !put_retrying(store, &key, Bytes::from(compressed), health, metrics, stop).await {
        return None;
    }
    if !put_retrying(
        store,
        &idx_key,
        Bytes::from(index.to_bytes()),
        health,
        metrics,
        stop,
    )
    .await
    {
        return None;
    }
    Some(Written {
        key,
        records: index.records,
        raw_bytes,
        compressed_bytes,
    })
}
