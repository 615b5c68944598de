//! The expiry role against real servers: the partitions an independent
//! computation names are moved and deleted, object by object, and nothing
//! else changes; a dry run changes nothing; searches find moved records in
//! the cold store and say why an expired range is empty; every action is
//! audited once.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{DAY, Setup, Where, expected, file_hot, partitions, request, visible};
use sluice_core::layout::{MOVED_MARKER, Partition, parse_expired_marker};
use sluice_core::record::now_nanos;
use sluice_query::search::{SidecarCache, search};
use sluice_testing::filed::{listing, read};

const RULES: &str = r#"
[expiry]
min_write_age_hours = 0
default = { delete_after_days = 5 }

[[expiry.rules]]
app = "shop"
cold_after_days = 3
delete_after_days = 8

[[expiry.rules]]
app = "debug-*"
delete_after_days = 2
"#;

/// (cold, delete) days by app, as RULES says.
fn rule(app: &str) -> (Option<i64>, Option<i64>) {
    match app {
        "shop" => (Some(3), Some(8)),
        "debug-api" => (None, Some(2)),
        _ => (None, Some(5)),
    }
}

fn due_count(all: &[Partition], want: &impl Fn(&Partition) -> Where) -> usize {
    all.iter().filter(|p| want(p) != Where::Hot).count()
}

/// The partition of a relative key, if it is in one.
fn partition_of(rel: &str) -> Option<Partition> {
    Partition::parse_key(rel).map(|(p, _)| p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_due_partitions_move_and_go() {
    let setup = Setup::start(RULES);
    let apps = ["shop", "debug-api", "billing"];
    let all = partitions(&apps, now_nanos(), 10 * 24);
    let counts = file_hot(&setup.s3, &all, 1, 2).await;
    // After the writes: a blob newer than the pass's time is held.
    let now = now_nanos();
    let before_hot = listing(&setup.hot).await;
    assert_eq!(before_hot.len(), all.len() * 2, "a blob and a sidecar each");
    let originals: BTreeMap<String, bytes::Bytes> = {
        let mut m = BTreeMap::new();
        let files = setup.s3.direct_store("hot");
        for rel in before_hot.keys() {
            m.insert(rel.clone(), read(&files, rel).await);
        }
        m
    };
    let want = |p: &Partition| {
        let (c, d) = rule(&p.app);
        expected(p, now, c, d)
    };

    // A dry run decides exactly the independent computation's partitions,
    // and changes nothing.
    let (expiry, nats, _registry) = setup.expiry("e1").await;
    let dry = expiry.pass(None, now).await.unwrap();
    assert!(
        dry.apps_failed.is_empty() && dry.failed.is_empty(),
        "{:?} {:?}",
        dry.apps_failed,
        dry.failed
    );
    assert_eq!(
        dry.actions.len(),
        due_count(&all, &want),
        "{:?}",
        dry.held.len()
    );
    let planned: BTreeSet<(Partition, &str)> = dry
        .actions
        .iter()
        .map(|(a, e)| {
            assert!(e.is_none());
            (a.partition().clone(), a.kind.done())
        })
        .collect();
    let due: BTreeSet<(Partition, &str)> = all
        .iter()
        .filter_map(|p| match want(p) {
            Where::Hot => None,
            Where::Cold => Some((p.clone(), "moved")),
            Where::Gone => Some((p.clone(), "deleted")),
        })
        .collect();
    assert_eq!(planned, due, "the plan names exactly the due partitions");
    assert!(due.iter().any(|(_, k)| *k == "moved") && due.iter().any(|(_, k)| *k == "deleted"));
    assert_eq!(
        listing(&setup.hot).await,
        before_hot,
        "a dry run changes nothing"
    );
    assert!(listing(&setup.cold).await.is_empty());

    // The run.
    let report = expiry.pass(Some(&nats), now).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.busy.is_empty() && report.held.is_empty());
    let done: BTreeSet<(Partition, &str)> = report
        .actions
        .iter()
        .map(|(a, _)| (a.partition().clone(), a.kind.done()))
        .collect();
    assert_eq!(done, due);

    // Object by object.
    let hot = listing(&setup.hot).await;
    let cold = listing(&setup.cold).await;
    let cold_files = setup.s3.direct_store("cold");
    for (rel, bytes) in &originals {
        let p = partition_of(rel).unwrap();
        match want(&p) {
            Where::Hot => {
                assert_eq!(hot.get(rel), Some(&(bytes.len() as u64)), "{rel} stays hot");
                assert!(!cold.contains_key(rel), "{rel} is not copied");
            }
            Where::Cold => {
                assert!(!hot.contains_key(rel), "{rel} left the hot store");
                assert_eq!(
                    &read(&cold_files, rel).await,
                    bytes,
                    "{rel} moved unchanged"
                );
            }
            Where::Gone => {
                assert!(
                    !hot.contains_key(rel) && !cold.contains_key(rel),
                    "{rel} is deleted"
                );
            }
        }
    }
    // Nothing else: the completed-move markers, and one expired-before
    // marker per app.
    for rel in cold.keys() {
        if originals.contains_key(rel) {
            continue;
        }
        let p = partition_of(rel).unwrap_or_else(|| panic!("unexpected {rel} in the cold store"));
        assert!(
            rel.ends_with(MOVED_MARKER) && want(&p) == Where::Cold,
            "unexpected {rel}"
        );
    }
    let mut markers = BTreeMap::new();
    for rel in hot.keys() {
        if originals.contains_key(rel) {
            continue;
        }
        let (app, name) = rel.split_once('/').unwrap();
        let hour = parse_expired_marker(name)
            .unwrap_or_else(|| panic!("unexpected {rel} in the hot store"));
        markers.insert(app.trim_start_matches("app=").to_string(), hour);
    }
    assert_eq!(markers.len(), 3, "{markers:?}");
    for (app, hour) in &markers {
        // Every hour before the marker is gone, the marker's own is not due.
        let p = Partition {
            app: app.clone(),
            hour: *hour,
        };
        assert_ne!(want(&p), Where::Gone, "{app}");
        assert_eq!(
            want(&Partition {
                app: app.clone(),
                hour: hour - 1
            }),
            Where::Gone,
            "{app}"
        );
    }

    // Audited once each.
    let events = sluice_core::audit::read_all(&nats.js, 100_000)
        .await
        .unwrap();
    assert_eq!(events.len(), due.len());
    let ids: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "one id per action");
    let audited: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| (e.partition.clone(), e.action.clone()))
        .collect();
    let due_named: BTreeSet<(String, String)> = due
        .iter()
        .map(|(p, k)| (p.prefix(), k.to_string()))
        .collect();
    assert_eq!(audited, due_named);
    let e = events
        .iter()
        .find(|e| e.app == "shop" && e.action == "moved")
        .unwrap();
    assert_eq!(
        (
            e.objects,
            e.instance.as_str(),
            e.rule.as_str(),
            e.from.as_str()
        ),
        (2, "e1", "app \"shop\"", "hot")
    );
    assert!(e.bytes > 0);

    // What a search sees: every kept and moved record, once; nothing of
    // what was deleted.
    let tiers = setup.tiers();
    let seen = visible(&tiers, &apps, now, 10 * 24 + 1).await;
    let kept: BTreeMap<Partition, u64> = counts
        .iter()
        .filter(|(p, _)| want(p) != Where::Gone)
        .map(|(p, n)| (p.clone(), *n))
        .collect();
    assert_eq!(seen, kept);

    // A cold range finds the moved records and says so.
    let cache = SidecarCache::new(1000);
    let cold_range = request(&["shop"], now - 6 * DAY, now - 4 * DAY);
    let answer = search(&tiers, &cache, &cold_range, None).await.unwrap();
    assert!(
        answer.total > 0 && answer.stats.cold_partitions > 0,
        "{:?}",
        answer.stats
    );
    assert!(answer.stats.expired.is_empty());
    // An expired range returns nothing and says why.
    let expired_range = request(&["debug-api"], now - 9 * DAY, now - 4 * DAY);
    let answer = search(&tiers, &cache, &expired_range, None).await.unwrap();
    assert_eq!(answer.total, 0);
    assert!(
        answer
            .stats
            .expired
            .iter()
            .any(|e| e.contains("app debug-api") && e.contains("deleted by retention")),
        "{:?}",
        answer.stats
    );

    // A second pass has nothing to do, and lists only what it must.
    let again = expiry.pass(Some(&nats), now).await.unwrap();
    assert!(
        again.actions.is_empty() && again.failed.is_empty(),
        "{:?}",
        again.actions.len()
    );
}
