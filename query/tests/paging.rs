//! Deep paging with the cursor while new matching records arrive (newer
//! ones, late ones inside the range being walked, and a blob filed twice as
//! a compaction race leaves it): every record that existed at the start is
//! visited exactly once, and no record twice.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{BASE, Harness, Sidecar, put_blob};
use sluice_core::layout::Partition;
use sluice_core::time::{NS_PER_HOUR, now_nanos};
use sluice_core::{Level, Record};
use sluice_testing::publish_records;

fn mango(i: usize, ts: i64, tag: &str) -> Record {
    Record {
        id: format!("01JPAGE{tag}{i:016}"),
        ts,
        app: "shop".into(),
        service: "api".into(),
        host: format!("web-{}", i % 3),
        level: Level::Info,
        msg: format!("mango {i} sold"),
        attrs: Default::default(),
        source: "http".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_visits_every_record_once_while_new_ones_arrive() {
    let h = Harness::start(false, "").await;
    // 20,000 matches over two hours, in 10 blobs, some sharing a time.
    let initial: Vec<Record> = (0..20_000)
        .map(|i| mango(i, BASE + (i as i64 / 2) * 360_000_000, "OLD"))
        .collect();
    let mut blobs: BTreeMap<Partition, Vec<Vec<Record>>> = BTreeMap::new();
    for chunk in initial.chunks(2_000) {
        blobs
            .entry(Partition::of("shop", chunk[0].ts))
            .or_default()
            .push(chunk.to_vec());
    }
    for (partition, chunks) in &blobs {
        for chunk in chunks {
            put_blob(&h.store, partition, chunk, Sidecar::Good).await;
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut last: Option<(String, String)> = None;
    let mut pages = 0;
    let mut late = 0usize;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/logs/search?query=mango&limit=500&cursor={c}"),
            None => "/api/v1/logs/search?query=mango&limit=500".to_string(),
        };
        let (status, a) = h.get(&path, Some("shop")).await;
        assert_eq!(status, 200, "{a}");
        for r in a["logs"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap().to_string();
            let key = (r["ts"].as_str().unwrap().to_string(), id.clone());
            if let Some(prev) = &last {
                assert!(
                    key < *prev,
                    "newest first across pages: {key:?} after {prev:?}"
                );
            }
            last = Some(key);
            assert!(seen.insert(id.clone()), "{id} visited twice (page {pages})");
        }
        pages += 1;
        // Meanwhile: newer records, late ones inside the range, and a blob
        // filed a second time.
        let newer: Vec<Record> = (0..50)
            .map(|i| mango(pages * 100 + i, now_nanos(), "NEW"))
            .collect();
        let older: Vec<Record> = (0..50)
            .map(|_| {
                late += 1;
                mango(
                    late,
                    BASE + ((late * 7919) as i64 % (2 * NS_PER_HOUR)),
                    "LATE",
                )
            })
            .collect();
        publish_records(&h.js, &[newer, older.clone()].concat(), 25).await;
        put_blob(
            &h.store,
            &Partition::of("shop", older[0].ts),
            &older,
            Sidecar::Good,
        )
        .await;
        if pages % 10 == 0 {
            let (partition, chunks) = blobs.iter().next().unwrap();
            put_blob(&h.store, partition, &chunks[0], Sidecar::Good).await;
        }
        match a["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 200, "the walk does not end");
    }
    let missed: Vec<&str> = initial
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !seen.contains(*id))
        .collect();
    assert!(
        missed.is_empty(),
        "{} never visited, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(3)]
    );
    assert!(
        seen.iter().all(|id| !id.contains("NEW")),
        "records newer than the first page never appear behind the cursor"
    );
    println!(
        "{pages} pages, {} records visited ({} late ones among them)",
        seen.len(),
        seen.len() - initial.len()
    );
    h.stop().await;
}
