//! Reading blobs: fetch, decompress as a stream, and keep what the request
//! accepts (the records, or only their counts per time step).

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use sluice_core::Record;
use sluice_core::store::{Store, get_bytes};

use super::plan::Candidate;
use super::{By, Request, Stats};

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
    pub bytes: u64,
    pub error: Option<String>,
    /// The blob was not there (compacted away since it was listed).
    pub gone: bool,
}

impl Scanned {
    /// Adds what the read cost to `stats`.
    pub fn account(&self, stats: &mut Stats) {
        stats.store_requests += 1;
        stats.blobs_read += 1;
        stats.bytes_read += self.bytes;
        stats.records_scanned += self.records;
        stats.lines_unparsed += self.unparsed;
        if let Some(err) = &self.error {
            stats.partial = true;
            stats.errors.push(err.clone());
        }
        stats.listing_stale |= self.gone;
    }
}

/// Reads `wave` with bounded concurrency, in its order.
pub async fn read_wave(
    store: &Store,
    request: &Arc<Request>,
    wave: &[Candidate],
    keep: Keep,
) -> Vec<Scanned> {
    let reads: Vec<_> = wave
        .iter()
        .map(|c| read_blob(store.clone(), request.clone(), c.key.clone(), keep))
        .collect();
    futures::stream::iter(reads)
        .buffered(READ_CONCURRENCY)
        .collect()
        .await
}

async fn read_blob(store: Store, request: Arc<Request>, key: Path, keep: Keep) -> Scanned {
    let bytes = match get_bytes(store.inner.as_ref(), &key).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return Scanned {
                gone: matches!(err, object_store::Error::NotFound { .. }),
                error: Some(format!("reading {key}: {err}")),
                ..Scanned::default()
            };
        }
    };
    let name = key.to_string();
    tokio::task::spawn_blocking(move || scan(&key, &bytes, &request, keep))
        .await
        .unwrap_or_else(|e| Scanned {
            error: Some(format!("scanning {name}: {e}")),
            ..Scanned::default()
        })
}

/// The step a time falls in: steps are aligned to the epoch.
pub fn step_of(ts: i64, step_ns: i64) -> i64 {
    ts.div_euclid(step_ns) * step_ns
}

/// Decompresses `bytes` as a stream and keeps what `request` accepts.
pub fn scan(key: &Path, bytes: &[u8], request: &Request, keep: Keep) -> Scanned {
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
            Ok(record) if request.accepts(&record) => match keep {
                Keep::Records => out.matched.push(record),
                Keep::Counts { step_ns, by } => {
                    let group = by.group(&record.service, record.level);
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
