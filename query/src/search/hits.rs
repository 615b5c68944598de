//! Histograms: matches counted per time step, in one series or one per
//! level, service, app or host (facets are the totals of such series).
//!
//! A query that looks only at `app`, `service` and `level` is answered from
//! the sidecars' minute counts without opening a blob, when the step is a
//! whole number of minutes and no counted minute straddles an end of the
//! range. Any other blob (a text term, an old sidecar without minute
//! counts, a minute cut by the range) is read and its matches counted.
//!
//! Steps are aligned to the epoch (a 5-minute step starts at :00, :05, …).
//! The recent window adds the records newer than the newest one filed for
//! their app, which no blob can hold yet. Unlike a search, counts are not
//! told apart by id. Compaction inputs listed beside all of their outputs
//! are left out (the sidecar's `replaces`), so a finished compaction whose
//! inputs are not deleted yet counts once; a record the filterer stored
//! twice (a retry after a lost acknowledgement), or one listed while only
//! some outputs of a run are stored, counts twice until compaction is done.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::Tiered;
use serde::Serialize;
use sluice_core::index::BlobIndex;
use sluice_core::{Level, Record};

use super::plan::{Candidate, plan};
use super::read::{Keep, READ_CONCURRENCY, read_wave, step_of};
use super::{By, Request, SidecarCache, Stats, StoreUnreachable};
use crate::recent::Window;

/// Nanoseconds in a minute: the sidecars' count granularity.
const MINUTE_NS: i64 = 60_000_000_000;

/// A histogram.
#[derive(Debug, Serialize)]
pub struct Hits {
    /// The step, in seconds.
    pub step_secs: i64,
    /// The start of each step, in seconds since the epoch.
    pub timestamps: Vec<i64>,
    /// One series per group, largest first; `values` aligns with
    /// `timestamps`.
    pub series: Vec<Series>,
    pub total: u64,
    /// Whether the answer came from the sidecars (and the window) alone.
    pub index_only: bool,
    /// Blobs counted from their sidecar's minute counts.
    pub blobs_counted_by_index: u64,
    pub stats: Stats,
}

/// Counts of one group.
#[derive(Debug, Serialize)]
pub struct Series {
    pub group: String,
    pub values: Vec<u64>,
    pub total: u64,
}

/// Counts `request`'s matches per step of `step_ns`, split `by`. The range
/// must be finite (`to_ns` not `i64::MAX`).
pub async fn hits(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: &Request,
    recent: Option<&Window>,
    step_ns: i64,
    by: By,
) -> Result<Hits, StoreUnreachable> {
    let counted = hits_once(store, sidecars, request, recent, step_ns, by).await?;
    if !counted.stats.listing_stale {
        return Ok(counted);
    }
    // A blob listed a while ago was compacted away (its records are in the
    // outputs, which that listing did not hold): list again, as a search
    // does.
    hits_once(store, sidecars, request, recent, step_ns, by).await
}

async fn hits_once(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: &Request,
    recent: Option<&Window>,
    step_ns: i64,
    by: By,
) -> Result<Hits, StoreUnreachable> {
    let started = Instant::now();
    let mut stats = Stats::default();
    let planned = plan(store, sidecars, request, &mut stats).await?;
    let mut bins: HashMap<(i64, String), u64> = HashMap::new();
    let by_index = by.index_only()
        && request.query.index_only()
        && request.level.as_ref().is_none_or(|e| e.index_only())
        && request.service.as_ref().is_none_or(|e| e.index_only());
    let mut counted_by_index = 0;
    let mut to_read: Vec<Candidate> = Vec::new();
    for candidate in planned.candidates {
        let answered = by_index
            && candidate
                .index
                .as_ref()
                .is_some_and(|index| from_minutes(index, request, step_ns, by, &mut bins));
        if answered {
            counted_by_index += 1;
        } else {
            to_read.push(candidate);
        }
    }
    let shared = Arc::new(request.clone());
    let keep = Keep::Counts { step_ns, by };
    for wave in to_read.chunks(READ_CONCURRENCY) {
        if Instant::now() >= request.deadline {
            stats.timed_out();
            break;
        }
        for scanned in read_wave(store, &shared, wave, keep).await {
            scanned.account(&mut stats);
            for (key, n) in scanned.counts {
                *bins.entry(key).or_default() += n;
            }
        }
    }
    if let Some(window) = recent {
        // Only what no blob can hold yet: newer than the app's newest filed
        // record.
        let unfiled = |r: &Record| {
            planned
                .filed_until
                .get(&r.app)
                .is_none_or(|until| r.ts > *until)
        };
        let matched = window.matching(request, &mut stats);
        stats.recent_matched = 0;
        for r in matched.iter().filter(|r| unfiled(r)) {
            stats.recent_matched += 1;
            *bins
                .entry((step_of(r.ts, step_ns), by.group(r)))
                .or_default() += 1;
        }
    }
    if stats.listing_stale {
        sidecars.forget_listings();
    }
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    let first = step_of(request.from_ns, step_ns);
    let last = step_of(request.to_ns - 1, step_ns);
    let steps = ((last - first) / step_ns + 1) as usize;
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for ((at, group), n) in bins {
        let slot = ((at - first) / step_ns) as usize;
        if slot < steps {
            groups.entry(group).or_insert_with(|| vec![0; steps])[slot] += n;
        }
    }
    let mut series: Vec<Series> = groups
        .into_iter()
        .map(|(group, values)| Series {
            total: values.iter().sum(),
            group,
            values,
        })
        .collect();
    series.sort_by(|a, b| b.total.cmp(&a.total).then(a.group.cmp(&b.group)));
    Ok(Hits {
        step_secs: step_ns / 1_000_000_000,
        timestamps: (0..steps as i64)
            .map(|i| (first + i * step_ns).div_euclid(1_000_000_000))
            .collect(),
        total: series.iter().map(|s| s.total).sum(),
        series,
        index_only: stats.blobs_read == 0,
        blobs_counted_by_index: counted_by_index,
        stats,
    })
}

/// Adds a blob's matches from its sidecar's minute counts; `false` (and
/// nothing added) when they cannot answer exactly.
fn from_minutes(
    index: &BlobIndex,
    request: &Request,
    step_ns: i64,
    by: By,
    bins: &mut HashMap<(i64, String), u64>,
) -> bool {
    let Some(cells) = &index.minutes else {
        return false;
    };
    if step_ns % MINUTE_NS != 0 {
        return false;
    }
    let (from, to) = (request.from_ns, request.to_ns);
    let cut = |start: i64| {
        let end = start.saturating_add(MINUTE_NS);
        (start < from && end > from) || (start < to && end > to)
    };
    if cells.iter().any(|c| cut(c.start_ns())) {
        return false;
    }
    let services: Vec<&String> = index.services.iter().collect();
    let mut probe = super::probe(&index.app, "", Level::Info);
    for cell in cells {
        let start = cell.start_ns();
        if start < from || start >= to {
            continue;
        }
        let (Some(service), Some(level)) = (
            services.get(cell.service as usize),
            Level::ALL.get(usize::from(cell.level)),
        ) else {
            continue;
        };
        probe.service.clone_from(service);
        probe.level = *level;
        probe.ts = start;
        let counted = request.query.matches(&probe)
            && request.level.as_ref().is_none_or(|e| e.matches(&probe))
            && request.service.as_ref().is_none_or(|e| e.matches(&probe));
        if counted {
            *bins
                .entry((step_of(start, step_ns), by.group(&probe)))
                .or_default() += cell.count;
        }
    }
    true
}
