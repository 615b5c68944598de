//! `sluice expiry run --once` killed with SIGKILL at five random moments of
//! a pass over 1,008 partitions, then run to the end: at every stop each
//! partition is seen whole (all its records, once) or, if it was to be
//! deleted, not at all; at the end every partition is wholly hot, wholly
//! cold or wholly deleted as planned, and each action is audited once.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Setup, Where, expected, file_hot, partitions, visible};
use sluice_core::layout::{EXPIRING_MARKER, MOVED_MARKER, MOVING_MARKER, Partition};
use sluice_core::record::now_nanos;
use sluice_testing::filed::listing;
use sluice_testing::{Lcg, workspace_binary};

const RULES: &str = r#"
[expiry]
min_write_age_hours = 0
admin = { listen = "127.0.0.1:0" }

[[expiry.rules]]
app = "a"
cold_after_days = 2
delete_after_days = 12

[[expiry.rules]]
app = "b"
delete_after_days = 4
"#;

fn rule(app: &str) -> (Option<i64>, Option<i64>) {
    match app {
        "a" => (Some(2), Some(12)),
        _ => (None, Some(4)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_every_partition_stays_whole() {
    let setup = Setup::start(RULES);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, &setup.text).unwrap();
    let sluice = workspace_binary("sluice", "sluice");
    let apps = ["a", "b"];
    let hours = 21 * 24;
    let all = partitions(&apps, now_nanos(), hours);
    assert_eq!(all.len(), 1008);
    let counts = file_hot(&setup.s3, &all, 2, 2).await;
    let tiers = setup.tiers();
    // What may be gone: due for deletion at any time of the test (the
    // hour may turn while it runs).
    let started = now_nanos();
    let may_go = |p: &Partition, until: i64| {
        let (c, d) = rule(&p.app);
        expected(p, started, c, d) == Where::Gone || expected(p, until, c, d) == Where::Gone
    };

    let seed = now_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for _ in 0..5 {
        let mut child = Command::new(&sluice)
            .args(["expiry", "run", "--once", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(150 + rng.next(750));
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Whole, or (when it was to go) gone: never part, never twice.
        let seen = visible(&tiers, &apps, now_nanos(), hours + 1).await;
        let now = now_nanos();
        for (p, n) in &counts {
            let got = seen.get(p).copied().unwrap_or(0);
            assert!(
                got == *n || (got == 0 && may_go(p, now)),
                "{} shows {got} of {n} records after a kill at {wait:?}",
                p.prefix()
            );
        }
    }
    assert!(kills >= 4, "only {kills} runs were still going when killed");

    // The run that finishes.
    let before = now_nanos();
    let status = Command::new(&sluice)
        .args(["expiry", "run", "--once", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let after = now_nanos();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let place = |p: &Partition| {
        let (c, d) = rule(&p.app);
        let (a, b) = (expected(p, before, c, d), expected(p, after, c, d));
        if a == b { vec![a] } else { vec![a, b] }
    };
    let hot = listing(&setup.hot).await;
    let cold = listing(&setup.cold).await;
    for rel in hot.keys().chain(cold.keys()) {
        for marker in [EXPIRING_MARKER, MOVING_MARKER] {
            assert!(!rel.ends_with(marker), "{rel} left behind");
        }
    }
    let in_store = |listing: &std::collections::BTreeMap<String, u64>, p: &Partition| {
        listing
            .keys()
            .filter(|k| k.starts_with(&format!("{}/", p.prefix())) && !k.ends_with(MOVED_MARKER))
            .count()
    };
    let mut due = BTreeSet::new();
    for p in &all {
        let (h, c) = (in_store(&hot, p), in_store(&cold, p));
        let now_at = match (h, c) {
            (4, 0) => Where::Hot,
            (0, 4) => Where::Cold,
            (0, 0) => Where::Gone,
            _ => panic!("{} is split: {h} objects hot, {c} cold", p.prefix()),
        };
        assert!(
            place(p).contains(&now_at),
            "{} is {now_at:?}, not {:?}",
            p.prefix(),
            place(p)
        );
        if now_at != Where::Hot {
            due.insert(p.prefix());
        }
    }
    // No record lost from what was kept or moved.
    let seen = visible(&tiers, &apps, now_nanos(), hours + 1).await;
    for (p, n) in &counts {
        if !due.contains(&p.prefix()) || in_store(&cold, p) > 0 {
            assert_eq!(seen.get(p), Some(n), "{}", p.prefix());
        } else {
            assert_eq!(seen.get(p), None, "{}", p.prefix());
        }
    }
    // Each action audited once, whatever the kills interrupted.
    let client = async_nats::connect(setup.nats.url()).await.unwrap();
    let events = sluice_core::audit::read_all(&async_nats::jetstream::new(client), 100_000)
        .await
        .unwrap();
    let audited: Vec<&str> = events.iter().map(|e| e.partition.as_str()).collect();
    let unique: BTreeSet<&str> = audited.iter().copied().collect();
    assert_eq!(audited.len(), unique.len(), "a partition audited twice");
    let due_str: BTreeSet<&str> = due.iter().map(String::as_str).collect();
    assert_eq!(unique, due_str);
}
