//! One page of a search: the window's matches, then blobs newest first (or
//! oldest first) until the page is full and no unread blob can hold a
//! better record.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::Tiered;
use sluice_core::Record;

use super::plan::{Candidate, plan};
use futures::StreamExt;

use super::read::{Keep, read_in_order};
use super::{Answer, Order, Request, SELECTIVE_BLOBS, SidecarCache, Stats, StoreUnreachable};
use crate::recent::Window;

/// Ids remembered to count each match once.
pub const MAX_IDS_COUNTED: usize = 1 << 20;

/// Searches the window and the blobs of `store` for `request`. Fails only
/// when the store cannot be listed; a blob that cannot be read makes the
/// answer partial.
pub async fn search(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: &Request,
    recent: Option<&Window>,
) -> Result<Answer, StoreUnreachable> {
    let answer = search_once(store, sidecars, request, recent).await?;
    if !answer.stats.listing_stale {
        return Ok(answer);
    }
    // A blob listed a while ago was compacted away: list again.
    sidecars.forget_listings();
    search_once(store, sidecars, request, recent).await
}

async fn search_once(
    store: &dyn Tiered,
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
        let matched = window.matching(request, &mut stats);
        found.add(matched, request, wanted);
    }
    let candidates = if request.limit > 0 {
        plan(store, sidecars, request, &mut stats).await?.candidates
    } else {
        Vec::new()
    };
    let shared = Arc::new(request.clone());
    // Reads run ahead of the one being merged, in order; each result is
    // merged as it comes, so one slow blob does not hold up the others.
    let bodies = (candidates.len() <= SELECTIVE_BLOBS).then(|| sidecars.bodies());
    let mut reads = read_in_order(store, bodies, &shared, &candidates, Keep::Records);
    let mut next = 0;
    while next < candidates.len() {
        if Instant::now() >= request.deadline {
            stats.timed_out();
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
        let Some(scanned) = reads.next().await else {
            break;
        };
        next += 1;
        scanned.account(&mut stats);
        found.add(scanned.matched, request, wanted);
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
    seen: Seen,
    total: u64,
    /// Whether `total` counts every match.
    complete: bool,
}

impl Default for Found {
    fn default() -> Self {
        Found {
            kept: Vec::new(),
            seen: Seen::default(),
            total: 0,
            complete: true,
        }
    }
}

impl Found {
    fn add(&mut self, records: Vec<Record>, request: &Request, wanted: usize) {
        for record in records {
            match self.seen.first_time(&record.id) {
                Some(false) => continue,
                Some(true) => {}
                None => self.complete = false,
            }
            self.total += 1;
            self.kept.push(record);
        }
        request.sort(&mut self.kept);
        // Past the cap of ids held a duplicate can get in; sorted, it lies
        // next to its twin.
        self.kept.dedup_by(|a, b| a.id == b.id);
        self.kept.truncate(wanted);
    }
}

/// The ids met so far, to answer each record once: a record may be in the
/// window and a blob, or in two blobs before compaction removed one.
#[derive(Default)]
pub struct Seen(HashSet<String>);

impl Seen {
    /// Whether `id` is met for the first time; `None` once more than
    /// [`MAX_IDS_COUNTED`] ids are held (it may then be a duplicate).
    pub fn first_time(&mut self, id: &str) -> Option<bool> {
        if self.0.contains(id) {
            return Some(false);
        }
        if self.0.len() >= MAX_IDS_COUNTED {
            return None;
        }
        self.0.insert(id.to_owned());
        Some(true)
    }
}

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
