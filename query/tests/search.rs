//! Searching filed blobs in a real s3s-fs: the pruned, early-stopping search
//! returns what a full scan of the same records returns, skips what the
//! sidecars rule out, reads blobs whose sidecar is broken, and flags a
//! corrupt blob instead of failing or hiding it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use sluice_core::index::{IndexBuilder, sidecar_key};
use sluice_core::layout::{BlobKind, Partition, blob_name};
use sluice_core::store::{Store, open};
use sluice_core::time::NS_PER_HOUR;
use sluice_core::{Level, Record};
use sluice_query::lang::parse;
use sluice_query::search::{Order, Request, SidecarCache, search};
use sluice_testing::S3Server;

/// 2026-11-22T10:00:00Z.
const BASE: i64 = 1_795_341_600_000_000_000;
const HOURS: i64 = 3;

const WORDS: &[&str] = &[
    "order created",
    "payment declined for order",
    "Card Expired",
    "timeout talking to warehouse",
    "timed out waiting for lock",
    "refund issued",
    "user logged in",
    "cache miss for key",
];

/// Deterministic records: two apps, three hours, five services, a rare
/// needle word in two records.
fn records() -> Vec<Record> {
    let mut seed: u64 = 42;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let services = ["checkout", "billing", "api", "web", "worker"];
    (0..3000u64)
        .map(|i| {
            let app = if next(3) == 0 { "billing" } else { "shop" };
            let mut msg = WORDS[next(WORDS.len() as u64) as usize].to_string();
            if i == 777 || i == 2222 {
                msg.push_str(" zebra");
            }
            let mut attrs = BTreeMap::new();
            attrs.insert("request_id".to_string(), format!("req-{}", next(500)));
            Record {
                id: format!("01JTEST{i:019}"),
                ts: BASE + (next((HOURS * NS_PER_HOUR / 1_000_000) as u64) * 1_000_000) as i64,
                app: app.into(),
                service: services[next(5) as usize].into(),
                host: format!("web-{}", next(3)),
                level: Level::ALL[next(6) as usize],
                msg,
                attrs,
                source: "file:/var/log/app.log".into(),
            }
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

enum Sidecar {
    Good,
    Missing,
    Corrupt,
}

/// Writes `records` as one blob of their partition, with its sidecar as
/// asked. Returns the blob's key.
async fn put_blob(
    store: &Store,
    partition: &Partition,
    records: &[Record],
    sidecar: Sidecar,
) -> String {
    let mut ndjson = Vec::new();
    let mut index = IndexBuilder::new(&partition.app);
    for r in records {
        let line = r.to_json();
        index.push(r, line.len());
        ndjson.extend_from_slice(line.as_bytes());
        ndjson.push(b'\n');
    }
    let blob = gzip(&ndjson);
    let key = store.key(&format!(
        "{}/{}",
        partition.prefix(),
        blob_name(BlobKind::Part, "test")
    ));
    let idx = index.finish(blob.len() as u64, false).to_bytes();
    store.inner.put(&key, blob.into()).await.unwrap();
    let side = object_store::path::Path::from(sidecar_key(key.as_ref()));
    match sidecar {
        Sidecar::Good => {
            store.inner.put(&side, idx.into()).await.unwrap();
        }
        Sidecar::Corrupt => {
            store
                .inner
                .put(&side, b"{\"version\":1,".to_vec().into())
                .await
                .unwrap();
        }
        Sidecar::Missing => {}
    }
    key.to_string()
}

/// Files `records` as three blobs per partition, the first of each
/// partition of `shop` written a second time (as a compaction race leaves
/// it), one sidecar corrupt and one missing.
async fn file(store: &Store, records: &[Record]) -> usize {
    let mut by_partition: BTreeMap<Partition, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_partition
            .entry(Partition::of(&r.app, r.ts))
            .or_default()
            .push(r.clone());
    }
    let mut blobs = 0;
    for (n, (partition, recs)) in by_partition.iter().enumerate() {
        let third = recs.len().div_ceil(3);
        for (i, chunk) in recs.chunks(third).enumerate() {
            let sidecar = match (n, i) {
                (0, 1) => Sidecar::Corrupt,
                (1, 2) => Sidecar::Missing,
                _ => Sidecar::Good,
            };
            put_blob(store, partition, chunk, sidecar).await;
            blobs += 1;
            if i == 0 && partition.app == "shop" {
                put_blob(store, partition, chunk, Sidecar::Good).await;
                blobs += 1;
            }
        }
    }
    blobs
}

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
                let answer = search(&store, &cache, &req).await;
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
    let answer = search(&store, &cache, &request("zebra", &["shop", "billing"], 100)).await;
    let s = &answer.stats;
    assert_eq!(s.blobs_considered, blobs);
    assert!(s.skipped_by_bloom > 0, "{s:?}");
    assert!(s.blobs_read < blobs / 2, "{s:?}");
    assert_eq!(s.sidecars_unreadable, 2, "{s:?}");
    assert_eq!(s.partitions, 6, "{s:?}");
    // Warm: the good sidecars come from the cache.
    assert_eq!(s.sidecars_read, 0, "{s:?}");
    // The newest 10 of everything stop early.
    let answer = search(&store, &cache, &request("", &["shop"], 10)).await;
    assert!(answer.stats.skipped_by_order > 0, "{:?}", answer.stats);
    assert!(!answer.total_exact);
    // Asked for an exact count, every candidate is read.
    let mut req = request("service:checkout", &["billing"], 5);
    req.exact_count = true;
    let answer = search(&store, &cache, &req).await;
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
    let answer = search(&store, &cache, &req).await;
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
    let answer = search(&store, &cache, &request("", &["nothing"], 10)).await;
    assert!(
        answer.logs.is_empty() && !answer.stats.partial,
        "{:?}",
        answer.stats
    );
}
