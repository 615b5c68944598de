//! Which blobs a search reads: list the hours in range, judge each blob by
//! its sidecar, and order the rest as the answer wants them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use sluice_core::index::{BlobIndex, sidecar_key};
use sluice_core::layout::{
    BLOB_SUFFIX, EXPIRING_MARKER, MOVED_MARKER, Partition, parse_expired_marker,
};
use sluice_core::store::{Store, get_bytes};

use super::{Order, Request, SidecarCache, Stats, StoreUnreachable, Tiered};

/// Sidecars fetched at once (per app).
const SIDECAR_CONCURRENCY: usize = 32;
/// Apps listed and judged at once.
const APP_CONCURRENCY: usize = 8;

/// One blob that may hold a match.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: Path,
    /// Earliest and latest record time the blob may hold.
    pub min_ts: i64,
    pub max_ts: i64,
    /// Its sidecar, when it could be read.
    pub index: Option<Arc<BlobIndex>>,
    /// Whether it is read from the cold store.
    pub cold: bool,
}

/// The blobs a search reads, in the order it reads them.
#[derive(Debug, Default)]
pub struct Planned {
    pub candidates: Vec<Candidate>,
    /// Per app, the latest record time any of its listed blobs holds: the
    /// recent window's records after it are not filed yet.
    pub filed_until: HashMap<String, i64>,
}

/// Lists and judges the blobs of every app of `request`, counting into
/// `stats`. Fails only when the store cannot be listed.
pub async fn plan(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: &Request,
    stats: &mut Stats,
) -> Result<Planned, StoreUnreachable> {
    let mut planned = Planned::default();
    if request.from_ns >= request.to_ns {
        return Ok(planned);
    }
    let plans: Vec<_> = request
        .apps
        .iter()
        .map(|app| plan_app(store, sidecars, app.clone(), request))
        .collect();
    let per_app: Vec<_> = futures::stream::iter(plans)
        .buffer_unordered(APP_CONCURRENCY)
        .collect()
        .await;
    for result in per_app {
        let (app, judged, until, app_stats) = result?;
        stats.add(&app_stats);
        planned.candidates.extend(judged);
        if let Some(until) = until {
            planned.filed_until.insert(app, until);
        }
    }
    match request.order {
        Order::Newest => planned
            .candidates
            .sort_by_key(|c| std::cmp::Reverse(c.max_ts)),
        Order::Oldest => planned.candidates.sort_by_key(|c| c.min_ts),
    }
    Ok(planned)
}

/// One app's part of [`plan`].
async fn plan_app(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    app: String,
    request: &Request,
) -> Result<(String, Vec<Candidate>, Option<i64>, Stats), StoreUnreachable> {
    let mut stats = Stats::default();
    let keys = list_app(store, sidecars, &app, request, &mut stats)
        .await
        .map_err(|err| StoreUnreachable(format!("listing app {app}: {err}")))?;
    let (judged, until) = judge(store, sidecars, request, keys, &mut stats).await;
    Ok((app, judged, until, stats))
}

/// One listed blob: its partition, its key, and whether it is cold.
type Listed = (Partition, Path, bool);

/// The blob keys of `app`'s hours that overlap the request's range, in the
/// hot store and the cold one: its days, then each day in range (one list
/// each), reusing recent listings. Expiry's markers decide what is shown:
/// nothing of a partition in a store marked expiring; cold copies only
/// once marked complete, and then instead of hot blobs of the same name.
async fn list_app(
    stores: &dyn Tiered,
    cache: &SidecarCache,
    app: &str,
    request: &Request,
    stats: &mut Stats,
) -> object_store::Result<Vec<Listed>> {
    let hot = list_tier(stores.hot(), cache, "", app, request, stats).await?;
    if let Some(before) = hot.expired_before {
        let start = Partition {
            app: app.into(),
            hour: before,
        }
        .start_ns();
        if request.from_ns < start {
            stats.expired.push(format!(
                "app {app}: hours before {} were deleted by retention",
                sluice_core::time::format_ts(start)
            ));
        }
    }
    let cold = match stores.cold() {
        Some(cold) => Some(list_tier(cold, cache, "cold-", app, request, stats).await?),
        None => None,
    };
    let mut keys = Vec::new();
    let mut partitions = HashSet::new();
    let mut expiring = HashSet::new();
    let moved = |p: &Partition| {
        cold.as_ref()
            .is_some_and(|c| c.moved.contains(p) && !c.expiring.contains(p))
    };
    for (partition, key) in hot.blobs {
        if hot.expiring.contains(&partition) {
            expiring.insert(partition);
            continue;
        }
        let copied = moved(&partition)
            && key.filename().is_some_and(|name| {
                cold.as_ref()
                    .is_some_and(|c| c.names.contains(&(partition.clone(), name.to_string())))
            });
        if copied {
            stats.skipped_moved += 1;
            continue;
        }
        partitions.insert(partition.clone());
        keys.push((partition, key, false));
    }
    let mut cold_partitions = HashSet::new();
    if let Some(cold) = cold {
        for (partition, key) in cold.blobs {
            if cold.expiring.contains(&partition) {
                expiring.insert(partition);
                continue;
            }
            if !cold.moved.contains(&partition) {
                continue;
            }
            cold_partitions.insert(partition.clone());
            partitions.insert(partition.clone());
            keys.push((partition, key, true));
        }
    }
    stats.partitions += partitions.len() as u64;
    stats.cold_partitions += cold_partitions.len() as u64;
    stats.expiring_partitions += expiring.len() as u64;
    Ok(keys)
}

/// What one store holds of an app's hours in range.
#[derive(Default)]
struct TierListing {
    blobs: Vec<(Partition, Path)>,
    /// Every file name listed, by partition (cold copies are matched by it).
    names: HashSet<(Partition, String)>,
    expiring: HashSet<Partition>,
    moved: HashSet<Partition>,
    expired_before: Option<i64>,
}

/// Lists one store's part of [`list_app`]; `tier` tells the cached
/// listings of the stores apart.
async fn list_tier(
    store: &Store,
    cache: &SidecarCache,
    tier: &str,
    app: &str,
    request: &Request,
    stats: &mut Stats,
) -> object_store::Result<TierListing> {
    let days_key = format!("{tier}days:{app}");
    let days = match cache.listing(&days_key) {
        Some(days) => days,
        None => {
            let app_prefix = store.key(&format!("app={app}"));
            stats.store_requests += 1;
            let listed = store.inner.list_with_delimiter(Some(&app_prefix)).await?;
            // Each day as its first hour and its prefix; the expired-before
            // markers as their hour and key.
            let days: Vec<(Partition, Path)> = listed
                .common_prefixes
                .into_iter()
                .filter_map(|day| {
                    let date = day.filename()?.strip_prefix("dt=")?.to_string();
                    let start = sluice_core::time::parse_ts(&format!("{date}T00:00:00Z"))?;
                    Some((Partition::of(app, start), day))
                })
                .chain(listed.objects.into_iter().filter_map(|o| {
                    let hour = parse_expired_marker(o.location.filename()?)?;
                    Some((
                        Partition {
                            app: app.into(),
                            hour,
                        },
                        o.location,
                    ))
                }))
                .collect();
            let days = Arc::new(days);
            cache.put_listing(days_key, days.clone());
            days
        }
    };
    let first_day = Partition::of(app, request.from_ns).date();
    let last_day = Partition::of(app, request.to_ns - 1).date();
    let mut out = TierListing::default();
    for (day_start, day) in days.iter() {
        if day
            .filename()
            .is_some_and(|n| parse_expired_marker(n).is_some())
        {
            out.expired_before = out.expired_before.max(Some(day_start.hour));
            continue;
        }
        let date = day_start.date();
        if date < first_day || date > last_day {
            continue;
        }
        let day_key = format!("{tier}day:{day}");
        let listed = match cache.listing(&day_key) {
            Some(listed) => listed,
            None => {
                stats.store_requests += 1;
                let metas: Vec<object_store::ObjectMeta> =
                    store.inner.list(Some(day)).try_collect().await?;
                let listed: Vec<(Partition, Path)> = metas
                    .into_iter()
                    .filter_map(|meta| {
                        let rel = store.relative(&meta.location)?;
                        let (partition, _) = Partition::parse_key(&rel)?;
                        (partition.app == app).then_some((partition, meta.location))
                    })
                    .collect();
                let listed = Arc::new(listed);
                cache.put_listing(day_key, listed.clone());
                listed
            }
        };
        for (partition, key) in listed.iter() {
            if partition.end_ns() <= request.from_ns || partition.start_ns() >= request.to_ns {
                continue;
            }
            let name = key.filename().unwrap_or_default();
            match name {
                EXPIRING_MARKER => {
                    out.expiring.insert(partition.clone());
                }
                MOVED_MARKER => {
                    out.moved.insert(partition.clone());
                }
                _ if name.ends_with(BLOB_SUFFIX) => {
                    out.names.insert((partition.clone(), name.to_string()));
                    out.blobs.push((partition.clone(), key.clone()));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Fetches the sidecars of `keys` and keeps the blobs they do not rule
/// out; also the latest record time the listed blobs hold.
async fn judge(
    store: &dyn Tiered,
    sidecars: &SidecarCache,
    request: &Request,
    keys: Vec<Listed>,
    stats: &mut Stats,
) -> (Vec<Candidate>, Option<i64>) {
    stats.blobs_considered += keys.len() as u64;
    let fetched: Vec<(Partition, Path, Fetched, bool)> = futures::stream::iter(keys)
        .map(|(partition, key, cold)| async move {
            let from = if cold {
                store.cold()
            } else {
                Some(store.hot())
            };
            let sidecar = fetch_sidecar(from.unwrap_or(store.hot()), sidecars, &key).await;
            (partition, key, sidecar, cold)
        })
        .buffer_unordered(SIDECAR_CONCURRENCY)
        .collect()
        .await;
    let replaced = replaced(&fetched);
    let mut out = Vec::new();
    let mut until: Option<i64> = None;
    for (partition, key, sidecar, cold) in fetched {
        // What fetching the sidecar cost, whatever is made of it.
        match &sidecar {
            Fetched::Cached(_) => {}
            Fetched::Read(_) => {
                stats.store_requests += 1;
                stats.sidecars_read += 1;
            }
            Fetched::Unreadable(_) => {
                stats.store_requests += 1;
                stats.sidecars_unreadable += 1;
            }
        }
        let is_replaced = !replaced.is_empty()
            && key
                .filename()
                .is_some_and(|name| replaced.contains(&(partition.clone(), name.to_string())));
        if is_replaced {
            stats.skipped_replaced += 1;
            continue;
        }
        let index = match sidecar {
            Fetched::Cached(index) | Fetched::Read(index) => index,
            Fetched::Unreadable(why) => {
                tracing::debug!(blob = %key, %why, "sidecar unreadable; reading the blob in full");
                let max_ts = partition.end_ns() - 1;
                until = until.max(Some(max_ts));
                out.push(Candidate {
                    key,
                    min_ts: partition.start_ns(),
                    max_ts,
                    index: None,
                    cold,
                });
                continue;
            }
        };
        if index.records > 0 {
            until = until.max(Some(index.max_ts));
        }
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
                index: Some(index),
                cold,
            });
        }
    }
    (out, until)
}

/// The listed blobs that compaction outputs listed beside them replace:
/// those of runs whose every output (parts 0 to the last) is listed, so
/// their records are read once, from the outputs.
fn replaced(fetched: &[(Partition, Path, Fetched, bool)]) -> HashSet<(Partition, String)> {
    // Per partition and run: the parts seen, the last part, the inputs.
    type Run<'a> = (HashSet<u32>, Option<u32>, &'a [String]);
    let mut runs: HashMap<(&Partition, &str), Run> = HashMap::new();
    for (partition, _, sidecar, _) in fetched {
        let (Fetched::Cached(index) | Fetched::Read(index)) = sidecar else {
            continue;
        };
        let Some(r) = &index.replaces else {
            continue;
        };
        let run = runs
            .entry((partition, r.run.as_str()))
            .or_insert_with(|| (HashSet::new(), None, &r.inputs));
        run.0.insert(r.part);
        if r.last {
            run.1 = Some(r.part);
        }
    }
    let mut out = HashSet::new();
    for ((partition, _), (parts, last, inputs)) in runs {
        if last.is_some_and(|last| (0..=last).all(|p| parts.contains(&p))) {
            out.extend(inputs.iter().map(|name| (partition.clone(), name.clone())));
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
