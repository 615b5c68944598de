//! Reading blobs: fetch, decompress as a stream, and keep what the request
//! accepts (the records, or only their counts per time step).

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use sluice_core::Record;
use sluice_core::layout::Partition;
use sluice_core::store::{Store, get_bytes};

use crate::lang::LineFilter;

use super::bodies::BodyCache;
use super::plan::Candidate;
use super::{By, Request, Stats, Tiered};

/// Blobs read at once.
pub const READ_CONCURRENCY: usize = 8;

/// What a read keeps of the records it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Keep {
    Records,
    /// Only counts per (time step, group).
    Counts {
        step_ns: i64,
        by: By,
    },
}

/// What reading one blob gave.
#[derive(Default)]
pub struct Scanned {
    pub matched: Vec<Record>,
    /// Matches per (start of the time step, group), for [`Keep::Counts`].
    pub counts: HashMap<(i64, String), u64>,
    pub records: u64,
    pub unparsed: u64,
    /// Lines the line test ruled out without parsing them.
    pub prefiltered: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// The blob was not there (compacted away since it was listed).
    pub gone: bool,
    /// Its body came from the cache: no store request.
    pub cached: bool,
    /// A cold blob whose storage class needs a restore: its key.
    pub restore_needed: Option<String>,
}

impl Scanned {
    /// Adds what the read cost to `stats`.
    pub fn account(&self, stats: &mut Stats) {
        if self.cached {
            stats.blobs_cached += 1;
        } else {
            stats.store_requests += 1;
        }
        stats.blobs_read += 1;
        stats.bytes_read += self.bytes;
        stats.records_scanned += self.records;
        stats.lines_unparsed += self.unparsed;
        stats.lines_prefiltered += self.prefiltered;
        if let Some(err) = &self.error {
            stats.partial = true;
            stats.errors.push(err.clone());
        }
        stats.listing_stale |= self.gone;
        if let Some(key) = &self.restore_needed {
            stats.partial = true;
            if !stats.restore_needed.contains(key) {
                stats.restore_needed.push(key.clone());
            }
        }
    }
}

/// Reads `wave` with bounded concurrency, in its order.
pub async fn read_wave(
    store: &dyn Tiered,
    request: &Arc<Request>,
    wave: &[Candidate],
    keep: Keep,
) -> Vec<Scanned> {
    read_in_order(store, None, request, wave, keep)
        .collect()
        .await
}

/// Reads `candidates` with bounded concurrency, yielding each blob's result
/// in their order; dropping the stream stops what has not started. With
/// `bodies`, decompressed bodies are taken from and kept in it.
pub fn read_in_order(
    store: &dyn Tiered,
    bodies: Option<Arc<BodyCache>>,
    request: &Arc<Request>,
    candidates: &[Candidate],
    keep: Keep,
) -> impl futures::Stream<Item = Scanned> + use<> {
    let filter = Arc::new(request.line_filter());
    let reads: Vec<_> = candidates
        .iter()
        .map(|c| {
            let from = if c.cold {
                store.cold()
            } else {
                Some(store.hot())
            };
            let blob = Blob {
                store: from.unwrap_or(store.hot()).clone(),
                request: request.clone(),
                filter: filter.clone(),
                bodies: bodies.clone(),
            };
            blob.read(c.key.clone(), keep)
        })
        .collect();
    futures::stream::iter(reads).buffered(READ_CONCURRENCY)
}

/// What reading one blob needs.
struct Blob {
    store: Store,
    request: Arc<Request>,
    filter: Arc<LineFilter>,
    bodies: Option<Arc<BodyCache>>,
}

impl Blob {
    async fn read(self, key: Path, keep: Keep) -> Scanned {
        let Blob {
            store,
            request,
            filter,
            bodies,
        } = self;
        let name = key.to_string();
        // A body still in memory, or the blob's compressed bytes.
        let cached = bodies.as_ref().and_then(|b| b.get(key.as_ref()));
        let fetched = match cached {
            Some(body) => Err(body),
            None => match get_bytes(store.inner.as_ref(), &key).await {
                Ok(bytes) => Ok(bytes),
                Err(err) if sluice_core::store::needs_restore(&err) => {
                    return Scanned {
                        restore_needed: Some(
                            store
                                .relative(&key)
                                .and_then(|rel| Some(Partition::parse_key(&rel)?.0.prefix()))
                                .unwrap_or_else(|| key.to_string()),
                        ),
                        ..Scanned::default()
                    };
                }
                Err(err) => {
                    return Scanned {
                        gone: matches!(err, object_store::Error::NotFound { .. }),
                        error: Some(format!("reading {key}: {err}")),
                        ..Scanned::default()
                    };
                }
            },
        };
        tokio::task::spawn_blocking(move || match (fetched, bodies) {
            (Err(body), _) => Scanned {
                cached: true,
                ..scan_lines(&key, &body[..], &request, &filter, keep)
            },
            (Ok(bytes), Some(bodies)) => {
                let (body, error) = gunzip(&key, &bytes);
                let mut out = scan_lines(&key, &body[..], &request, &filter, keep);
                out.bytes = bytes.len() as u64;
                match error {
                    Some(error) => out.error = Some(error),
                    None => bodies.put(key.to_string(), Arc::new(body)),
                }
                out
            }
            (Ok(bytes), None) => scan(&key, &bytes, &request, &filter, keep),
        })
        .await
        .unwrap_or_else(|e| Scanned {
            error: Some(format!("scanning {name}: {e}")),
            ..Scanned::default()
        })
    }
}

/// The step a time falls in: steps are aligned to the epoch.
pub fn step_of(ts: i64, step_ns: i64) -> i64 {
    ts.div_euclid(step_ns) * step_ns
}

/// Decompresses `bytes` as a stream and keeps what `request` accepts;
/// lines `filter` rules out are counted, not parsed.
pub fn scan(
    key: &Path,
    bytes: &[u8],
    request: &Request,
    filter: &LineFilter,
    keep: Keep,
) -> Scanned {
    let reader =
        std::io::BufReader::with_capacity(256 << 10, flate2::read::MultiGzDecoder::new(bytes));
    let mut out = scan_lines(key, reader, request, filter, keep);
    out.bytes = bytes.len() as u64;
    out
}

/// The whole decompressed body of a blob, and why it stops short if it
/// does.
fn gunzip(key: &Path, bytes: &[u8]) -> (Vec<u8>, Option<String>) {
    use std::io::Read;
    let mut body = Vec::with_capacity(bytes.len().saturating_mul(8));
    let error = flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut body)
        .err()
        .map(|err| format!("{key} is corrupt: {err}"));
    (body, error)
}

/// Keeps what `request` accepts of the NDJSON lines of `reader`.
fn scan_lines(
    key: &Path,
    mut reader: impl BufRead,
    request: &Request,
    filter: &LineFilter,
    keep: Keep,
) -> Scanned {
    let mut out = Scanned::default();
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
        if !filter.may_match(text) {
            out.prefiltered += 1;
            continue;
        }
        match serde_json::from_slice::<Record>(text) {
            Ok(record) if request.accepts(&record) => match keep {
                Keep::Records => out.matched.push(record),
                Keep::Counts { step_ns, by } => {
                    let group = by.group(&record);
                    *out.counts
                        .entry((step_of(record.ts, step_ns), group))
                        .or_default() += 1;
                }
            },
            Ok(_) => {}
            Err(_) => out.unparsed += 1,
        }
    }
    out
}
