//! The blob half of a search: list, judge by sidecar, read newest first,
//! stop early.

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use sluice_core::Record;
use sluice_core::index::{BlobIndex, sidecar_key};
use sluice_core::layout::{BLOB_SUFFIX, Partition};
use sluice_core::store::{Store, get_bytes};

use super::{Answer, Order, Request, SidecarCache, Stats};
use crate::recent::Window;

/// Blobs read at once.
const READ_CONCURRENCY: usize = 8;
/// Ids remembered to count each match once.
const MAX_IDS_COUNTED: usize = 1 << 20;
/// Sidecars fetched at once.
const SIDECAR_CONCURRENCY: usize = 32;

/// One blob that may be read.
struct Candidate {
    key: Path,
    /// Earliest and latest record time the blob may hold.
    min_ts: i64,
    max_ts: i64,
}

/// Searches the blobs of `store` for `request`. Fails only when the store
/// cannot be listed; a blob that cannot be read makes the answer partial.
pub async fn search(
    store: &Store,
    sidecars: &SidecarCache,
    request: &Request,
    recent: Option<&Window>,
) -> Result<Answer, StoreUnreachable> {
    let started = Instant::now();
    let mut stats = Stats::default();
    let wanted = request.offset.saturating_add(request.limit);
    let mut found = Found::default();
    // The newest records first: the window, which the blobs may not hold
    // yet.
    if let Some(window) = recent {
        let (matched, scanned) = window.matching(request);
        stats.recent_scanned = scanned;
        stats.recent_matched = matched.len() as u64;
        found.add(matched, request, wanted);
        if let Some(fault) = window.fault() {
            stats.partial = true;
            stats.errors.push(fault);
        }
    }
    let mut candidates = Vec::new();
    if request.from_ns < request.to_ns && request.limit > 0 {
        for app in &request.apps {
            match list_app(store, app, request, &mut stats).await {
                Ok(keys) => {
                    let judged = judge(store, sidecars, request, keys, &mut stats).await;
                    candidates.extend(judged);
                }
                Err(err) => return Err(StoreUnreachable(format!("listing app {app}: {err}"))),
            }
        }
    }
    match request.order {
        Order::Newest => candidates.sort_by_key(|c| std::cmp::Reverse(c.max_ts)),
        Order::Oldest => candidates.sort_by_key(|c| c.min_ts),
    }
    let shared = Arc::new(request.clone());
    let mut next = 0;
    while next < candidates.len() {
        if Instant::now() >= request.deadline {
            stats.partial = true;
            stats
                .errors
                .push("the query took longer than its timeout".into());
            found.complete = false;
            break;
        }
        if !request.exact_count
            && found.kept.len() >= wanted
            && !can_improve(request, &found.kept, &candidates[next])
        {
            stats.skipped_by_order = (candidates.len() - next) as u64;
            found.complete = false;
            break;
        }
        let wave = &candidates[next..(next + READ_CONCURRENCY).min(candidates.len())];
        next += wave.len();
        let reads: Vec<_> = wave
            .iter()
            .map(|c| read_blob(store.clone(), shared.clone(), c.key.clone()))
            .collect();
        let results: Vec<Scanned> = futures::stream::iter(reads)
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        for scanned in results {
            stats.store_requests += 1;
            stats.blobs_read += 1;
            stats.bytes_read += scanned.bytes;
            stats.records_scanned += scanned.records;
            stats.lines_unparsed += scanned.unparsed;
            found.add(scanned.matched, request, wanted);
            if let Some(err) = scanned.error {
                stats.partial = true;
                stats.errors.push(err);
            }
        }
    }
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Answer {
        logs: found.kept.into_iter().skip(request.offset).collect(),
        total: found.total,
        total_exact: found.complete && !stats.partial,
        stats,
    })
}

/// The matches so far: the best `wanted` of them in order, each id once.
struct Found {
    kept: Vec<Record>,
    seen: HashSet<String>,
    total: u64,
    /// Whether `total` counts every match.
    complete: bool,
}

impl Default for Found {
    fn default() -> Self {
        Found {
            kept: Vec::new(),
            seen: HashSet::new(),
            total: 0,
            complete: true,
        }
    }
}

impl Found {
    fn add(&mut self, records: Vec<Record>, request: &Request, wanted: usize) {
        for record in records {
            // A record in the window and a blob, or in two blobs before
            // compaction removed one, counts once; past the cap of ids
            // held, duplicates may be counted and the total is no longer
            // exact.
            if self.seen.len() < MAX_IDS_COUNTED {
                if !self.seen.insert(record.id.clone()) {
                    continue;
                }
            } else {
                self.complete = false;
            }
            self.total += 1;
            self.kept.push(record);
        }
        request.sort(&mut self.kept);
        self.kept.dedup_by(|a, b| a.id == b.id);
        self.kept.truncate(wanted);
    }
}

/// The store could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("the store cannot be read: {0}")]
pub struct StoreUnreachable(pub String);

/// Whether `candidate` may hold a record better than the worst one kept.
fn can_improve(request: &Request, kept: &[Record], candidate: &Candidate) -> bool {
    let Some(worst) = kept.last() else {
        return true;
    };
    match request.order {
        Order::Newest => candidate.max_ts >= worst.ts,
        Order::Oldest => candidate.min_ts <= worst.ts,
    }
}

/// The blob keys of `app`'s hours that overlap the request's range.
async fn list_app(
    store: &Store,
    app: &str,
    request: &Request,
    stats: &mut Stats,
) -> object_store::Result<Vec<(Partition, Path)>> {
    // The days that exist, then each day in range (one list per day).
    let app_prefix = store.key(&format!("app={app}"));
    stats.store_requests += 1;
    let days = store.inner.list_with_delimiter(Some(&app_prefix)).await?;
    let first_day = Partition::of(app, request.from_ns).date();
    let last_day = Partition::of(app, request.to_ns - 1).date();
    let mut keys = Vec::new();
    let mut partitions = std::collections::HashSet::new();
    for day in days.common_prefixes {
        let Some(date) = day.filename().and_then(|n| n.strip_prefix("dt=")) else {
            continue;
        };
        if date < first_day.as_str() || date > last_day.as_str() {
            continue;
        }
        stats.store_requests += 1;
        let listed: Vec<object_store::ObjectMeta> =
            store.inner.list(Some(&day)).try_collect().await?;
        for meta in listed {
            let Some(rel) = store.relative(&meta.location) else {
                continue;
            };
            let Some((partition, name)) = Partition::parse_key(&rel) else {
                continue;
            };
            if partition.app != app || !name.ends_with(BLOB_SUFFIX) {
                continue;
            }
            if partition.end_ns() <= request.from_ns || partition.start_ns() >= request.to_ns {
                continue;
            }
            partitions.insert(partition.hour);
            keys.push((partition, meta.location));
        }
    }
    stats.partitions += partitions.len() as u64;
    Ok(keys)
}

/// Fetches the sidecars of `keys` and keeps the blobs they do not rule out.
async fn judge(
    store: &Store,
    sidecars: &SidecarCache,
    request: &Request,
    keys: Vec<(Partition, Path)>,
    stats: &mut Stats,
) -> Vec<Candidate> {
    stats.blobs_considered += keys.len() as u64;
    let fetched: Vec<(Partition, Path, Fetched)> = futures::stream::iter(keys)
        .map(|(partition, key)| async move {
            let sidecar = fetch_sidecar(store, sidecars, &key).await;
            (partition, key, sidecar)
        })
        .buffer_unordered(SIDECAR_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (partition, key, sidecar) in fetched {
        let index = match sidecar {
            Fetched::Cached(index) => Some(index),
            Fetched::Read(index) => {
                stats.store_requests += 1;
                stats.sidecars_read += 1;
                Some(index)
            }
            Fetched::Unreadable(why) => {
                stats.store_requests += 1;
                stats.sidecars_unreadable += 1;
                tracing::debug!(blob = %key, %why, "sidecar unreadable; reading the blob in full");
                None
            }
        };
        let Some(index) = index else {
            out.push(Candidate {
                key,
                min_ts: partition.start_ns(),
                max_ts: partition.end_ns() - 1,
            });
            continue;
        };
        if !index.overlaps(request.from_ns, request.to_ns - 1) {
            stats.skipped_by_time += 1;
        } else if request.level.as_ref().is_some_and(|e| !e.may_match(&index)) {
            stats.skipped_by_level += 1;
        } else if request
            .service
            .as_ref()
            .is_some_and(|e| !e.may_match(&index))
        {
            stats.skipped_by_service += 1;
        } else if !request.query.may_match(&index) {
            stats.skipped_by_bloom += 1;
        } else {
            out.push(Candidate {
                key,
                min_ts: index.min_ts,
                max_ts: index.max_ts,
            });
        }
    }
    out
}

enum Fetched {
    Cached(Arc<BlobIndex>),
    Read(Arc<BlobIndex>),
    Unreadable(String),
}

async fn fetch_sidecar(store: &Store, sidecars: &SidecarCache, blob: &Path) -> Fetched {
    let key = sidecar_key(blob.as_ref());
    if let Some(index) = sidecars.get(&key) {
        return Fetched::Cached(index);
    }
    let bytes = match get_bytes(store.inner.as_ref(), &Path::from(key.as_str())).await {
        Ok(bytes) => bytes,
        Err(err) => return Fetched::Unreadable(err.to_string()),
    };
    match BlobIndex::from_bytes(&bytes) {
        Ok(index) => {
            let index = Arc::new(index);
            sidecars.put(key, index.clone());
            Fetched::Read(index)
        }
        Err(err) => Fetched::Unreadable(err.to_string()),
    }
}

/// What reading one blob gave.
#[derive(Default)]
struct Scanned {
    matched: Vec<Record>,
    records: u64,
    unparsed: u64,
    bytes: u64,
    error: Option<String>,
}

async fn read_blob(store: Store, request: Arc<Request>, key: Path) -> Scanned {
    let bytes = match get_bytes(store.inner.as_ref(), &key).await {
        Ok(bytes) => bytes,
        Err(err) => return failed(&key, err),
    };
    let name = key.to_string();
    tokio::task::spawn_blocking(move || scan(&key, &bytes, &request))
        .await
        .unwrap_or_else(|e| Scanned {
            error: Some(format!("scanning {name}: {e}")),
            ..Scanned::default()
        })
}

fn failed(key: &Path, err: object_store::Error) -> Scanned {
    Scanned {
        error: Some(format!("reading {key}: {err}")),
        ..Scanned::default()
    }
}

/// Decompresses `bytes` as a stream and keeps the records `request`
/// accepts.
fn scan(key: &Path, bytes: &[u8], request: &Request) -> Scanned {
    let mut out = Scanned {
        bytes: bytes.len() as u64,
        ..Scanned::default()
    };
    let mut reader =
        std::io::BufReader::with_capacity(256 << 10, flate2::read::MultiGzDecoder::new(bytes));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                out.error = Some(format!("{key} is corrupt: {err}"));
                break;
            }
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() {
            continue;
        }
        out.records += 1;
        match serde_json::from_slice::<Record>(text) {
            Ok(record) => {
                if request.accepts(&record) {
                    out.matched.push(record);
                }
            }
            Err(_) => out.unparsed += 1,
        }
    }
    out
}
