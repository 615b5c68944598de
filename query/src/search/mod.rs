//! Searching the recent window and the filed blobs: which objects a query
//! reads, in what order, and when it stops.
//!
//! ```text
//!  apps × days in range ── list ──> blobs and sidecars of each hour
//!        │                                   │ sidecar (cached: immutable)
//!        │                        time / level / service / bloom ──> skipped, counted
//!        v                                   │ may hold a match
//!  newest first (by the sidecar's max_ts) ── read, gunzip as a stream, match
//!        │
//!  stop when the page is full and no unread blob can hold a better record
//! ```
//!
//! Invariants:
//! * A blob is skipped only when its sidecar proves it holds no match
//!   ([`crate::lang::Expr::may_match`]). A blob without a readable sidecar is
//!   read in full, and counted.
//! * Records are told apart by `id`: one found twice (in two blobs before
//!   compaction removed one) is returned and counted once.
//! * A corrupt blob is skipped, named in [`Stats::errors`], and the answer is
//!   flagged partial; so is one cut short by the deadline.
//! * Only keys under the store's prefix and the request's apps are listed
//!   or read.

mod bodies;
mod export;
mod hits;
mod page;
mod plan;
mod read;
mod sidecars;

pub use bodies::{BodyCache, SELECTIVE_BLOBS};
pub use export::{Ended, Export, export};
pub use hits::{Hits, Series, hits};
pub use page::{Seen, search};
pub use read::{Keep, Scanned, scan};
pub use sidecars::SidecarCache;

/// Where a search reads filed logs: the hot store, and the cold store
/// when one is configured. A plain [`Store`] is a hot store alone.
pub trait Tiered: Send + Sync {
    fn hot(&self) -> &Store;
    fn cold(&self) -> Option<&Store>;
}

impl Tiered for Store {
    fn hot(&self) -> &Store {
        self
    }
    fn cold(&self) -> Option<&Store> {
        None
    }
}

/// The hot store and, optionally, the cold one.
#[derive(Debug, Clone)]
pub struct Tiers {
    pub hot: Store,
    pub cold: Option<Store>,
}

impl Tiered for Tiers {
    fn hot(&self) -> &Store {
        &self.hot
    }
    fn cold(&self) -> Option<&Store> {
        self.cold.as_ref()
    }
}

/// The store could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("the store cannot be read: {0}")]
pub struct StoreUnreachable(pub String);

/// A record holding only an app, a service and a level: what an index's
/// counts know of the records they count, to test a query that looks at
/// nothing else (see [`crate::lang::Expr::index_only`]).
pub fn probe(app: &str, service: &str, level: sluice_core::Level) -> Record {
    Record {
        id: String::new(),
        ts: 0,
        app: app.into(),
        service: service.into(),
        host: String::new(),
        level,
        msg: String::new(),
        attrs: Default::default(),
        source: String::new(),
    }
}

/// How a histogram's counts are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    /// One series of every match.
    #[default]
    Total,
    Level,
    Service,
    App,
    /// By host: the sidecars do not count hosts, so every candidate blob
    /// is read.
    Host,
}

impl By {
    /// The series `r` counts in.
    pub fn group(self, r: &Record) -> String {
        match self {
            By::Total => "total".into(),
            By::Level => r.level.as_str().into(),
            By::Service => r.service.clone(),
            By::App => r.app.clone(),
            By::Host => r.host.clone(),
        }
    }

    /// Whether a sidecar's minute counts can answer it.
    pub fn index_only(self) -> bool {
        self != By::Host
    }
}

use serde::Serialize;
use sluice_core::Record;
use sluice_core::store::Store;

use crate::lang::{Expr, LineFilter};

/// The order of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first (the default).
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
}

/// One search over the blobs.
#[derive(Debug, Clone)]
pub struct Request {
    /// The query.
    pub query: Expr,
    /// The `level` parameter, as a query of its own (so skips are counted
    /// by reason).
    pub level: Option<Expr>,
    /// The `service` parameter, likewise.
    pub service: Option<Expr>,
    /// The apps to search (already checked against the caller's token).
    pub apps: Vec<String>,
    /// First nanosecond searched, inclusive.
    pub from_ns: i64,
    /// Last nanosecond searched, exclusive.
    pub to_ns: i64,
    /// How many records to return at most.
    pub limit: usize,
    /// How many of the best records to pass over first (a page).
    pub offset: usize,
    pub order: Order,
    /// Only records after this `(ts, id)` in `order`: a cursor's position.
    pub after: Option<(i64, String)>,
    /// Scan every candidate blob, so `total` is exact.
    pub exact_count: bool,
    /// When the search gives up and answers with what it has (partial).
    pub deadline: std::time::Instant,
}

impl Request {
    /// Whether `record` is an answer: of one of the apps, in range, after
    /// the cursor, matching the query and the parameters.
    pub fn accepts(&self, record: &Record) -> bool {
        self.apps.contains(&record.app) && self.matches_filters(record)
    }

    /// [`Request::accepts`] without the test of the app.
    pub fn matches_filters(&self, record: &Record) -> bool {
        record.ts >= self.from_ns
            && record.ts < self.to_ns
            && self
                .after
                .as_ref()
                .is_none_or(|after| self.past(after, record))
            && self.level.as_ref().is_none_or(|e| e.matches(record))
            && self.service.as_ref().is_none_or(|e| e.matches(record))
            && self.query.matches(record)
    }

    /// Whether `record` comes after position `(ts, id)` in the order.
    fn past(&self, (ts, id): &(i64, String), record: &Record) -> bool {
        let key = (record.ts, record.id.as_str());
        match self.order {
            Order::Newest => key < (*ts, id.as_str()),
            Order::Oldest => key > (*ts, id.as_str()),
        }
    }

    /// The literal test for lines of a blob: texts any record this request
    /// accepts must hold (see [`LineFilter`]).
    pub fn line_filter(&self) -> LineFilter {
        LineFilter::new(
            std::iter::once(&self.query)
                .chain(self.level.as_ref())
                .chain(self.service.as_ref()),
        )
    }

    /// Sorts records into the answer's order.
    pub fn sort(&self, records: &mut [Record]) {
        records.sort_by(|a, b| {
            let ord = (a.ts, &a.id).cmp(&(b.ts, &b.id));
            match self.order {
                Order::Newest => ord.reverse(),
                Order::Oldest => ord,
            }
        });
    }
}

/// What a search found.
#[derive(Debug, Default)]
pub struct Answer {
    /// The page, in the requested order.
    pub logs: Vec<Record>,
    /// Matching records: exact when `total_exact`, otherwise at least this.
    pub total: u64,
    pub total_exact: bool,
    pub stats: Stats,
}

/// What a search cost and what it skipped.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Hour partitions with blobs in the searched range.
    pub partitions: u64,
    /// Blobs in those partitions.
    pub blobs_considered: u64,
    pub skipped_by_time: u64,
    pub skipped_by_level: u64,
    pub skipped_by_service: u64,
    /// Skipped by the rest of the query: its tokens, apps and negations.
    pub skipped_by_bloom: u64,
    /// Blobs left unread because the page was already full of better
    /// records.
    pub skipped_by_order: u64,
    /// Compaction inputs left unread because every output of their
    /// compaction is listed beside them (the outputs hold their records).
    pub skipped_replaced: u64,
    /// Hot blobs left unread because their verified copies in the cold
    /// store are read instead (a move not yet finished).
    pub skipped_moved: u64,
    /// Partitions in range read from the cold store.
    pub cold_partitions: u64,
    /// Partitions in range being deleted by retention: not shown.
    pub expiring_partitions: u64,
    /// Per app whose range reaches hours deleted by retention: which.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<String>,
    /// Cold partitions whose storage class needs a restore before they can
    /// be read (their blobs are not searched; the answer is partial).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restore_needed: Vec<String>,
    pub blobs_read: u64,
    /// Of those, blobs whose decompressed body was still in memory.
    pub blobs_cached: u64,
    /// Blobs whose sidecar was missing, corrupt or of an unknown version:
    /// read in full instead.
    pub sidecars_unreadable: u64,
    pub sidecars_read: u64,
    pub bytes_read: u64,
    /// Store requests made (lists and gets; cached sidecars cost none).
    pub store_requests: u64,
    pub records_scanned: u64,
    /// Records of the recent window looked at, and how many matched.
    pub recent_scanned: u64,
    pub recent_matched: u64,
    /// Lines of a blob that are not records: counted, not returned.
    pub lines_unparsed: u64,
    /// Lines ruled out by the literal test before parsing: none of the
    /// query's required texts occur in them (`records_scanned` counts
    /// them too; a line that is not a record may be among them).
    pub lines_prefiltered: u64,
    pub elapsed_ms: u64,
    /// Some blob could not be read, or the deadline passed.
    pub partial: bool,
    /// What could not be read, and why.
    pub errors: Vec<String>,
    /// A listed blob was gone: the listings reused are out of date.
    #[serde(skip)]
    pub listing_stale: bool,
}

impl Stats {
    /// Adds the costs of `more`.
    pub fn add(&mut self, more: &Stats) {
        self.partitions += more.partitions;
        self.blobs_considered += more.blobs_considered;
        self.skipped_by_time += more.skipped_by_time;
        self.skipped_by_level += more.skipped_by_level;
        self.skipped_by_service += more.skipped_by_service;
        self.skipped_by_bloom += more.skipped_by_bloom;
        self.skipped_by_order += more.skipped_by_order;
        self.skipped_replaced += more.skipped_replaced;
        self.skipped_moved += more.skipped_moved;
        self.cold_partitions += more.cold_partitions;
        self.expiring_partitions += more.expiring_partitions;
        self.expired.extend(more.expired.iter().cloned());
        for p in &more.restore_needed {
            if !self.restore_needed.contains(p) {
                self.restore_needed.push(p.clone());
            }
        }
        self.blobs_read += more.blobs_read;
        self.blobs_cached += more.blobs_cached;
        self.sidecars_unreadable += more.sidecars_unreadable;
        self.sidecars_read += more.sidecars_read;
        self.bytes_read += more.bytes_read;
        self.store_requests += more.store_requests;
        self.records_scanned += more.records_scanned;
        self.recent_scanned += more.recent_scanned;
        self.recent_matched += more.recent_matched;
        self.lines_unparsed += more.lines_unparsed;
        self.lines_prefiltered += more.lines_prefiltered;
        self.partial |= more.partial;
        self.listing_stale |= more.listing_stale;
        self.errors.extend(more.errors.iter().cloned());
    }

    /// Flags the answer partial: the deadline passed.
    pub fn timed_out(&mut self) {
        self.partial = true;
        self.errors
            .push("the query took longer than its timeout".into());
    }
}
