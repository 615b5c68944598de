//! Compaction: once an hour is closed (plus a grace period), its blobs are
//! merged into a few large ones, sorted by `ts` and de-duplicated by `id`,
//! with fresh sidecars; then the inputs are removed.
//!
//! * Which hours: every blob write marks its partition dirty in the JetStream
//!   KV bucket `sluice_partitions` (key `<app>.<date>.<hour>`, value the
//!   time). Compaction looks only at dirty, closed partitions.
//! * One compactor per partition, and never one while expiry moves or
//!   deletes it: the partition's claim ([`sluice_core::claims`]).
//! * Order: outputs are stored (blob, then sidecar) before any input is
//!   deleted, so a crash leaves duplicates — which readers drop by `id` and
//!   the next compaction removes — never a gap.
//! * A write into the partition while it is compacted bumps the dirty key's
//!   revision, so marking it clean (an update against the revision read
//!   before) fails and the partition is compacted again later, new blob
//!   included. A late record for a compacted hour works the same way.
//! * A line that does not parse as a record is kept as it is, at the end of
//!   the output, and counted: compaction never drops data.
//!
//! The whole partition is merged in memory; partitions of more than a few GB
//! per hour would need an external merge.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::Store as Kv;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sluice_core::Record;
use sluice_core::index::{IndexBuilder, Replaces};
use sluice_core::kv as cas;
use sluice_core::layout::{BLOB_SUFFIX, BlobKind, INDEX_SUFFIX, Partition};
use sluice_core::record::now_nanos;
use sluice_core::store::Store;

use crate::blobs::{StoreHealth, gunzip, write_blob};
use crate::metrics::FiltererMetrics;
use sluice_core::store::get_bytes;

/// Value of a partition's dirty key once it is compacted.
pub const CLEAN: &[u8] = b"clean";

/// Compaction settings.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// This instance's name (blob names).
    pub writer: String,
    /// Who holds claims: `<instance>:<process start>`.
    pub claimant: String,
    /// Raw bytes per output blob, at most.
    pub max_blob_bytes: usize,
    /// How long after its end an hour is compacted.
    pub grace_ns: i64,
    /// gzip level.
    pub gzip_level: u32,
}

/// What compacting one partition did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// Input blobs removed.
    pub inputs: usize,
    /// Output blobs written.
    pub outputs: usize,
    /// Distinct records written.
    pub records: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Lines kept as they were because they did not parse.
    pub unparsed: u64,
}

/// Why compaction of a partition stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Listing, reading or deleting failed; it is retried at the next pass.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A blob is not valid gzip; left in place for an operator.
    #[error("blob {key} is not readable gzip: {error}")]
    Corrupt {
        /// The blob.
        key: String,
        /// What gzip said.
        error: String,
    },
    /// Shut down before the outputs were stored.
    #[error("stopped")]
    Stopped,
}

/// Compacts one partition now (the caller holds its claim).
pub async fn compact_partition(
    store: &Store,
    partition: &Partition,
    opts: &CompactOptions,
    health: &StoreHealth,
    metrics: &FiltererMetrics,
    stop: &AtomicBool,
) -> Result<Compacted, CompactError> {
    let prefix = store.key(&partition.prefix());
    let listed: Vec<object_store::ObjectMeta> =
        store.inner.list(Some(&prefix)).try_collect().await?;
    let mut blobs: Vec<Path> = Vec::new();
    let mut sidecars: Vec<Path> = Vec::new();
    for meta in listed {
        let name = meta.location.filename().unwrap_or_default().to_string();
        if name.ends_with(INDEX_SUFFIX) {
            sidecars.push(meta.location);
        } else if name.ends_with(BLOB_SUFFIX) {
            blobs.push(meta.location);
        }
    }
    blobs.sort();
    // Only compaction outputs, each with its sidecar: nothing to do.
    let already = blobs
        .iter()
        .all(|b| b.filename().is_some_and(|n| n.starts_with("compact-")))
        && sidecars.len() == blobs.len();
    if blobs.is_empty() || already {
        return Ok(Compacted::default());
    }

    // Read and merge.
    let mut records: Vec<Record> = Vec::new();
    let mut unparsed: Vec<Vec<u8>> = Vec::new();
    for key in &blobs {
        let compressed = get_bytes(store.inner.as_ref(), key).await?;
        let raw = tokio::task::spawn_blocking(move || gunzip(&compressed))
            .await
            .map_err(|e| CompactError::Corrupt {
                key: key.to_string(),
                error: e.to_string(),
            })?
            .map_err(|e| CompactError::Corrupt {
                key: key.to_string(),
                error: e.to_string(),
            })?;
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => records.push(r),
                Err(_) => unparsed.push(line.to_vec()),
            }
        }
    }
    let total = records.len() as u64;
    records.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
    let mut seen: HashSet<String> = HashSet::with_capacity(records.len());
    records.retain(|r| seen.insert(r.id.clone()));
    drop(seen);
    let duplicates = total - records.len() as u64;
    if !unparsed.is_empty() {
        tracing::warn!(partition = %partition.prefix(), lines = unparsed.len(), "lines that are not records kept as they are");
    }

    // Write the outputs, each naming the inputs it replaces, then remove
    // the inputs.
    let run = ulid::Ulid::new().to_string();
    let inputs: Vec<String> = blobs
        .iter()
        .filter_map(|b| b.filename().map(str::to_string))
        .collect();
    let mut outputs: u32 = 0;
    let mut replaces = |last: bool| {
        let part = outputs;
        outputs += 1;
        Replaces {
            run: run.clone(),
            part,
            last,
            inputs: inputs.clone(),
        }
    };
    let mut ndjson: Vec<u8> = Vec::new();
    let mut index = IndexBuilder::new(&partition.app);
    let count = records.len();
    for (i, record) in records.iter().enumerate() {
        let before = ndjson.len();
        let _ = serde_json::to_writer(&mut ndjson, record);
        let len = ndjson.len() - before;
        ndjson.push(b'\n');
        index.push(record, len);
        let last = i + 1 == count && unparsed.is_empty();
        if ndjson.len() >= opts.max_blob_bytes || last {
            let (nd, mut ix) = (
                std::mem::take(&mut ndjson),
                std::mem::replace(&mut index, IndexBuilder::new(&partition.app)),
            );
            ix.set_replaces(replaces(last));
            write_output(store, partition, opts, nd, ix, health, metrics, stop).await?;
        }
    }
    if !unparsed.is_empty() {
        for line in &unparsed {
            ndjson.extend_from_slice(line);
            ndjson.push(b'\n');
        }
        index.set_replaces(replaces(true));
        write_output(store, partition, opts, ndjson, index, health, metrics, stop).await?;
    }
    let outputs = outputs as usize;
    for key in blobs.iter().chain(sidecars.iter()) {
        match store.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Compacted {
        inputs: blobs.len(),
        outputs,
        records: count as u64,
        duplicates,
        unparsed: unparsed.len() as u64,
    })
}

#[allow(clippy::too_many_arguments)]
async fn write_output(
    store: &Store,
    partition: &Partition,
    opts: &CompactOptions,
    ndjson: Vec<u8>,
    index: IndexBuilder,
    health: &StoreHealth,
    metrics: &FiltererMetrics,
    stop: &AtomicBool,
) -> Result<(), CompactError> {
    let written = write_blob(
        store,
        partition,
        BlobKind::Compact,
        &opts.writer,
        ndjson,
        index,
        true,
        opts.gzip_level,
        health,
        metrics,
        stop,
    )
    .await
    .ok_or(CompactError::Stopped)?;
    metrics.blob("compact", written.raw_bytes, written.compressed_bytes);
    Ok(())
}

/// Looks for dirty, closed partitions every `interval` and compacts those it
/// can claim, until `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: Store,
    dirty: Kv,
    claims: Kv,
    opts: CompactOptions,
    interval: Duration,
    health: Arc<StoreHealth>,
    metrics: FiltererMetrics,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if let Err(err) = pass(&store, &dirty, &claims, &opts, &health, &metrics, &stop).await {
            tracing::warn!(error = %err, "compaction pass failed, trying again later");
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub use sluice_core::claims::claim;

/// One pass over the dirty partitions.
pub async fn pass(
    store: &Store,
    dirty: &Kv,
    claims: &Kv,
    opts: &CompactOptions,
    health: &StoreHealth,
    metrics: &FiltererMetrics,
    stop: &AtomicBool,
) -> Result<usize, String> {
    let keys: Vec<String> = dirty
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut done = 0;
    for key in keys {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(partition) = Partition::from_kv_key(&key) else {
            continue;
        };
        if partition.end_ns().saturating_add(opts.grace_ns) > now_nanos() {
            continue;
        }
        let Ok(Some(entry)) = dirty.entry(key.clone()).await else {
            continue;
        };
        if entry.value.as_ref() == CLEAN {
            continue;
        }
        // The claim: only one compactor per partition at a time.
        if !claim(claims, &key, &opts.claimant).await {
            continue;
        }
        let started = Instant::now();
        let result = compact_partition(store, &partition, opts, health, metrics, stop).await;
        match result {
            Ok(c) => {
                metrics.compactions.inc();
                metrics
                    .compaction_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.compaction_inputs_removed.inc_by(c.inputs as u64);
                metrics.compaction_duplicates.inc_by(c.duplicates);
                tracing::info!(partition = %partition.prefix(), inputs = c.inputs, outputs = c.outputs, records = c.records, duplicates = c.duplicates, "partition compacted");
                // Conflicts when a blob was written since: compacted again
                // later.
                if let Err(err) = cas::write(dirty, &key, entry.revision, CLEAN.into()).await
                    && !err.is_conflict()
                {
                    tracing::debug!(partition = %partition.prefix(), error = %err, "cannot mark a partition clean; it is compacted again later");
                }
                done += 1;
            }
            Err(err) => {
                tracing::warn!(partition = %partition.prefix(), error = %err, "compaction failed, will retry");
            }
        }
        sluice_core::claims::release(claims, &key).await;
    }
    Ok(done)
}
