//! Exporting: every match of a search, streamed as NDJSON while it is
//! found, until the matches run out, the limit is reached, or the client
//! goes away (then no more blobs are read).
//!
//! Records come in the order blobs are read (newest blobs first for
//! `order=desc`), sorted within each wave of reads but not across the
//! whole answer: sorting everything would mean holding everything. Each id
//! is sent once (up to [`super::page::MAX_IDS_COUNTED`] ids remembered).
//! When a blob cannot be read the stream ends with one line
//! `{"partial":true,"errors":[…]}` instead of a record.

use std::sync::Arc;

use super::Tiered;
use bytes::Bytes;
use sluice_core::Record;
use tokio::sync::mpsc;

use super::plan::{Planned, plan};
use super::read::{Keep, READ_CONCURRENCY, read_wave};
use super::{Request, Seen, SidecarCache, Stats, StoreUnreachable};
use crate::recent::Window;

/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 << 10;

/// A planned export, ready to stream.
pub struct Export {
    request: Arc<Request>,
    planned: Planned,
    recent: Vec<Record>,
    stats: Stats,
}

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every match (or `limit` of them) was sent.
    Done,
    /// The client went away first.
    ClientGone,
}

/// Plans the export of `request` (with its `limit` the most records sent):
/// fails, before anything is sent, when the store cannot be listed.
pub async fn export(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: Request,
    recent: Option<&Window>,
) -> Result<Export, StoreUnreachable> {
    let mut stats = Stats::default();
    let mut matched = recent.map_or_else(Vec::new, |w| w.matching(&request, &mut stats));
    request.sort(&mut matched);
    let planned = plan(store, sidecars, &request, &mut stats).await?;
    Ok(Export {
        request: Arc::new(request),
        planned,
        recent: matched,
        stats,
    })
}

impl Export {
    /// Sends the matches into `tx` as NDJSON chunks; what it cost, and how
    /// it ended.
    pub async fn run(
        self,
        store: &dyn Tiered,
        sidecars: &SidecarCache,
        tx: mpsc::Sender<Bytes>,
    ) -> (Stats, Ended) {
        let started = std::time::Instant::now();
        let Export {
            request,
            planned,
            recent,
            mut stats,
        } = self;
        let mut out = Sender {
            tx,
            buffer: Vec::with_capacity(CHUNK_BYTES * 2),
            seen: Seen::default(),
            left: request.limit,
        };
        let mut ended = out.records(recent).await;
        let candidates = planned.candidates;
        let mut next = 0;
        while ended == Ended::Done && out.left > 0 && next < candidates.len() {
            if out.tx.is_closed() {
                ended = Ended::ClientGone;
                break;
            }
            let wave = &candidates[next..(next + READ_CONCURRENCY).min(candidates.len())];
            next += wave.len();
            let mut matched = Vec::new();
            for scanned in read_wave(store, &request, wave, Keep::Records).await {
                scanned.account(&mut stats);
                matched.extend(scanned.matched);
            }
            request.sort(&mut matched);
            ended = out.records(matched).await;
        }
        if ended == Ended::Done && stats.partial {
            let line = serde_json::json!({"partial": true, "errors": stats.errors});
            out.buffer.extend_from_slice(line.to_string().as_bytes());
            out.buffer.push(b'\n');
        }
        if ended == Ended::Done {
            ended = out.flush().await;
        }
        if stats.listing_stale {
            sidecars.forget_listings();
        }
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        (stats, ended)
    }
}

struct Sender {
    tx: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    seen: Seen,
    left: usize,
}

impl Sender {
    /// Sends `records` (each id once, within the limit), then what is
    /// buffered.
    async fn records(&mut self, records: Vec<Record>) -> Ended {
        for record in records {
            if self.left == 0 {
                break;
            }
            if self.seen.first_time(&record.id) == Some(false) {
                continue;
            }
            self.left -= 1;
            self.buffer.extend_from_slice(record.to_json().as_bytes());
            self.buffer.push(b'\n');
            if self.buffer.len() >= CHUNK_BYTES && self.flush().await == Ended::ClientGone {
                return Ended::ClientGone;
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Ended {
        if self.buffer.is_empty() {
            return Ended::Done;
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES * 2),
        ));
        match self.tx.send(chunk).await {
            Ok(()) => Ended::Done,
            Err(_) => Ended::ClientGone,
        }
    }
}
