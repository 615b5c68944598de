//! Two expiry instances and a compacting filterer on the same partitions at
//! once: every partition is moved or deleted exactly once (the audit stream
//! shows each once), none is compacted while it is moved, and no record is
//! lost or doubled.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Setup, Where, expected, file_hot, partitions, visible};
use sluice_core::layout::{MOVED_MARKER, Partition};
use sluice_core::record::now_nanos;
use sluice_testing::filed::listing;

const RULES: &str = r#"
[expiry]
min_write_age_hours = 0

[[expiry.rules]]
app = "c"
cold_after_days = 1
delete_after_days = 5

[filterer]
id = "f1"
compaction_grace_secs = 0
compaction_interval_secs = 1
admin = { listen = "127.0.0.1:0" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_and_compaction_act_once_each() {
    let setup = Setup::start(RULES);
    let hours = 7 * 24;
    let all = partitions(&["c"], now_nanos(), hours);
    // Three blobs per hour, each hour marked dirty: compaction wants every
    // one of them.
    let counts = file_hot(&setup.s3, &all, 3, 2).await;
    let client = async_nats::connect(setup.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let dirty = sluice_core::nats::ensure_kv(&js, sluice_filterer::DIRTY_BUCKET, Duration::ZERO, 1)
        .await
        .unwrap();
    for p in &all {
        dirty.put(p.kv_key(), "1".into()).await.unwrap();
    }

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let filterer = tokio::spawn(sluice_filterer::run(setup.config.clone(), async {
        let _ = stop_rx.await;
    }));
    // Compaction gets a head start, so the instances meet it mid-way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (e1, n1, _) = setup.expiry("e1").await;
    let (e2, n2, _) = setup.expiry("e2").await;
    let mut acted: Vec<(String, String)> = Vec::new();
    let mut busy = 0;
    for _ in 0..6 {
        let now = now_nanos();
        let (r1, r2) = tokio::join!(e1.pass(Some(&n1), now), e2.pass(Some(&n2), now));
        for report in [r1.unwrap(), r2.unwrap()] {
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            busy += report.busy.len();
            acted.extend(
                report
                    .actions
                    .iter()
                    .map(|(a, _)| (a.partition().prefix(), a.kind.done().to_string())),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop_tx.send(());
    filterer.await.unwrap().unwrap();
    // The two instances met on some partitions, or compaction held some.
    assert!(busy > 0, "the instances never met: the test shows nothing");

    let now = now_nanos();
    let want = |p: &Partition| expected(p, now, Some(1), Some(5));
    // Exactly once each, by one of the two.
    let once: BTreeSet<&(String, String)> = acted.iter().collect();
    assert_eq!(once.len(), acted.len(), "a partition acted on twice");
    let due: BTreeSet<String> = all
        .iter()
        .filter(|p| want(p) != Where::Hot)
        .map(Partition::prefix)
        .collect();
    let acted_on: BTreeSet<String> = acted.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(acted_on, due);
    let events = sluice_core::audit::read_all(&js, 100_000).await.unwrap();
    let audited: Vec<&str> = events.iter().map(|e| e.partition.as_str()).collect();
    assert_eq!(audited.len(), due.len(), "each action audited once");
    assert_eq!(
        audited.iter().copied().collect::<BTreeSet<_>>().len(),
        due.len()
    );
    let by: BTreeSet<&str> = events.iter().map(|e| e.instance.as_str()).collect();
    assert_eq!(by.len(), 2, "both instances acted: {by:?}");

    // Never compacted mid-move: each cold partition is all part blobs (moved
    // before compaction) or all compaction outputs (after).
    let cold = listing(&setup.cold).await;
    let mut kinds: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for rel in cold.keys().filter(|k| !k.ends_with(MOVED_MARKER)) {
        let (p, name) = Partition::parse_key(rel).unwrap();
        kinds
            .entry(p.prefix())
            .or_default()
            .insert(name.split('-').next().unwrap());
    }
    for (p, k) in &kinds {
        assert_eq!(k.len(), 1, "{p} holds {k:?}");
    }
    assert!(
        kinds.values().any(|k| k.contains("compact")),
        "compaction ran before some moves"
    );

    // Every record of what was kept or moved, once.
    let seen = visible(&setup.tiers(), &["c"], now, hours + 1).await;
    let kept: BTreeMap<Partition, u64> = counts
        .iter()
        .filter(|(p, _)| want(p) != Where::Gone)
        .map(|(p, n)| (p.clone(), *n))
        .collect();
    assert_eq!(seen, kept);
}
