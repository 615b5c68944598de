//! Searching filed blobs in a real s3s-fs: the pruned, early-stopping search
//! returns what a full scan of the same records returns, skips what the
//! sidecars rule out, reads blobs whose sidecar is broken, and flags a
//! corrupt blob instead of failing or hiding it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{BASE, HOURS, Sidecar, file, put_blob, put_compacted, records};
use object_store::ObjectStoreExt;
use sluice_core::Record;
use sluice_core::index::Replaces;
use sluice_core::layout::Partition;
use sluice_core::store::{Store, open};
use sluice_core::time::NS_PER_HOUR;
use sluice_query::lang::parse;
use sluice_query::search::{By, Order, Request, SidecarCache, hits, search};
use sluice_testing::S3Server;

fn request(query: &str, apps: &[&str], limit: usize) -> Request {
    Request {
        query: parse(query).unwrap(),
        level: None,
        service: None,
        apps: apps.iter().map(|a| a.to_string()).collect(),
        from_ns: BASE,
        to_ns: BASE + HOURS * NS_PER_HOUR,
        limit,
        offset: 0,
        order: Order::Newest,
        after: None,
        exact_count: false,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

/// The ids a full scan finds, newest first.
fn scan(records: &[Record], req: &Request) -> Vec<String> {
    let mut hits: Vec<Record> = records.iter().filter(|r| req.accepts(r)).cloned().collect();
    req.sort(&mut hits);
    hits.into_iter().map(|r| r.id).collect()
}

fn store_of(s3: &S3Server) -> Store {
    open(&s3.store_config("logs")).unwrap()
}

const QUERIES: &[&str] = &[
    "",
    "zebra",
    "payment declined",
    "\"card expired\"",
    "pay*",
    "-payment",
    "service:checkout",
    "level:>=warn",
    "request_id:req-7",
    "/time(out|d out)/",
    "(zebra OR refund) service:api",
    "NOT level:info",
    "msg:order",
    "host:web-2 OR service:worker",
    "x",
    "order -created level:error",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_search_returns_what_a_full_scan_returns() {
    let s3 = S3Server::start();
    let store = store_of(&s3);
    let records = records();
    let blobs = file(&store, &records).await as u64;
    let cache = SidecarCache::new(10_000);
    for query in QUERIES {
        for apps in [&["shop", "billing"][..], &["billing"][..]] {
            // Every match, and the newest ten.
            for limit in [10_000, 10] {
                let req = request(query, apps, limit);
                let answer = search(&store, &cache, &req, None).await.unwrap();
                let got: Vec<String> = answer.logs.iter().map(|r| r.id.clone()).collect();
                let mut want = scan(&records, &req);
                want.truncate(limit);
                if got != want {
                    let missing: Vec<_> =
                        want.iter().filter(|id| !got.contains(id)).take(5).collect();
                    let extra: Vec<_> =
                        got.iter().filter(|id| !want.contains(id)).take(5).collect();
                    panic!(
                        "{query:?} over {apps:?}, limit {limit}: got {} want {}; missing {missing:?}, extra {extra:?}, stats {:?}",
                        got.len(),
                        want.len(),
                        answer.stats
                    );
                }
                assert!(
                    !answer.stats.partial,
                    "{query:?}: {:?}",
                    answer.stats.errors
                );
                let unique: BTreeSet<&String> = got.iter().collect();
                assert_eq!(unique.len(), got.len(), "{query:?}: an id returned twice");
            }
        }
    }
    // The rare word reads few blobs; the broken sidecars are read anyway.
    let answer = search(
        &store,
        &cache,
        &request("zebra", &["shop", "billing"], 100),
        None,
    )
    .await
    .unwrap();
    let s = &answer.stats;
    assert_eq!(s.blobs_considered, blobs);
    assert!(s.skipped_by_bloom > 0, "{s:?}");
    assert!(s.blobs_read < blobs / 2, "{s:?}");
    assert_eq!(s.sidecars_unreadable, 2, "{s:?}");
    assert_eq!(s.partitions, 6, "{s:?}");
    // Warm: the good sidecars come from the cache.
    assert_eq!(s.sidecars_read, 0, "{s:?}");
    // The newest 10 of everything stop early.
    let answer = search(&store, &cache, &request("", &["shop"], 10), None)
        .await
        .unwrap();
    assert!(answer.stats.skipped_by_order > 0, "{:?}", answer.stats);
    assert!(!answer.total_exact);
    // Asked for an exact count, every candidate is read.
    let mut req = request("service:checkout", &["billing"], 5);
    req.exact_count = true;
    let answer = search(&store, &cache, &req, None).await.unwrap();
    assert!(answer.total_exact);
    assert_eq!(answer.total, scan(&records, &req).len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_is_named_and_the_answer_flagged_partial() {
    let s3 = S3Server::start();
    let store = store_of(&s3);
    let records = records();
    let shop: Vec<Record> = records
        .iter()
        .filter(|r| r.app == "shop")
        .cloned()
        .collect();
    let partition = Partition::of("shop", BASE);
    let in_hour: Vec<Record> = shop
        .iter()
        .filter(|r| Partition::of("shop", r.ts) == partition)
        .cloned()
        .collect();
    put_blob(&store, &partition, &in_hour, Sidecar::Good).await;
    let bad = put_blob(&store, &partition, &in_hour[..10], Sidecar::Good).await;
    store
        .inner
        .put(
            &object_store::path::Path::from(bad.as_str()),
            b"\x1f\x8bnot gzip at all".to_vec().into(),
        )
        .await
        .unwrap();
    let cache = SidecarCache::new(100);
    let mut req = request("", &["shop"], 10_000);
    req.exact_count = true;
    let answer = search(&store, &cache, &req, None).await.unwrap();
    assert!(answer.stats.partial);
    assert!(!answer.total_exact);
    assert!(
        answer
            .stats
            .errors
            .iter()
            .any(|e| e.contains(&bad) && e.contains("corrupt")),
        "{:?}",
        answer.stats.errors
    );
    // The good blob's records are all there.
    assert_eq!(answer.logs.len(), in_hour.len());
    // An app with nothing filed is an empty answer, not an error.
    let answer = search(&store, &cache, &request("", &["nothing"], 10), None)
        .await
        .unwrap();
    assert!(
        answer.logs.is_empty() && !answer.stats.partial,
        "{:?}",
        answer.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_outputs_listed_beside_their_inputs_are_counted_once_and_only_when_complete() {
    let s3 = S3Server::start();
    let store = store_of(&s3);
    let partition = Partition::of("shop", BASE);
    let in_hour: Vec<Record> = records()
        .into_iter()
        .filter(|r| Partition::of(&r.app, r.ts) == partition)
        .collect();
    let third = in_hour.len().div_ceil(3);
    let mut inputs = Vec::new();
    for chunk in in_hour.chunks(third) {
        let key = put_blob(&store, &partition, chunk, Sidecar::Good).await;
        inputs.push(key.rsplit('/').next().unwrap().to_string());
    }
    let mut sorted = in_hour.clone();
    sorted.sort_by_key(|r| r.ts);
    let half = sorted.len() / 2;
    let output = |part: u32, last: bool| Replaces {
        run: "01JRUN".into(),
        part,
        last,
        inputs: inputs.clone(),
    };
    let count = || {
        let store = store.clone();
        async move {
            // A fresh cache: nothing listed before is reused.
            let cache = SidecarCache::new(100);
            let mut req = request("", &["shop"], 10_000);
            req.exact_count = true;
            let found = search(&store, &cache, &req, None).await.unwrap();
            let counted = hits(&store, &cache, &req, None, 60 * 1_000_000_000, By::Total)
                .await
                .unwrap();
            (found, counted)
        }
    };

    // The first output stored, the second not yet: the inputs are still
    // read, so nothing is missing.
    put_compacted(&store, &partition, &sorted[..half], output(0, false)).await;
    let (found, counted) = count().await;
    assert_eq!(found.logs.len(), in_hour.len(), "every record, once");
    assert_eq!(found.stats.skipped_replaced, 0);
    assert!(
        counted.total >= in_hour.len() as u64,
        "no gap: {}",
        counted.total
    );

    // Both stored, inputs not yet deleted: read and counted once.
    put_compacted(&store, &partition, &sorted[half..], output(1, true)).await;
    let (found, counted) = count().await;
    assert_eq!(found.logs.len(), in_hour.len());
    assert_eq!(found.stats.skipped_replaced, 3, "{:?}", found.stats);
    assert_eq!(found.stats.blobs_read, 2, "{:?}", found.stats);
    assert_eq!(counted.total, in_hour.len() as u64, "counted once");
    assert_eq!(counted.stats.skipped_replaced, 3);
    let mut want: Vec<String> = in_hour.iter().map(|r| r.id.clone()).collect();
    let mut got: Vec<String> = found.logs.iter().map(|r| r.id.clone()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}
