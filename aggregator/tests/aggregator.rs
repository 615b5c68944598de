//! The aggregator end to end: a real nats-server, the aggregator in this
//! process, and a real webhook receiver as the app's owner.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use sluice_aggregator::{AggregatorError, Reader};
use sluice_core::Level;
use sluice_core::config::Config;
use sluice_core::record::now_nanos;
use sluice_core::time::NS_PER_HOUR;
use sluice_testing::{
    Hook, Hooks, NatsServer, free_port, http_get, metric_value, publish_records, test_record,
    wait_for,
};

struct Aggregator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AggregatorError>>,
    admin: u16,
}

impl Aggregator {
    async fn start(nats: &NatsServer, hooks: &Hooks, extra: &str) -> Aggregator {
        let admin = free_port();
        let text = format!(
            r#"
[nats]
url = "{url}"
[[receivers]]
name = "shop-team"
kind = "webhook"
url = "{hook}"
rate_per_minute = 100000
[aggregator]
quiet_period_secs = 3
admin = {{ listen = "127.0.0.1:{admin}" }}
samples = 3
{extra}
[[aggregator.owners]]
app = "shop"
receiver = "shop-team"
"#,
            url = nats.url(),
            hook = hooks.url("/owners"),
        );
        let config = Config::parse(&text).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sluice_aggregator::run(config, async move {
            let _ = rx.await;
        }));
        Aggregator {
            stop: Some(tx),
            task,
            admin,
        }
    }

    fn metric(&self, name: &str) -> f64 {
        metric_value(&http_get(self.admin, "/metrics").1, name)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn ready(nats: &NatsServer) -> (jetstream::Context, Reader) {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if js.get_stream("LOGS").await.is_ok()
            && let Ok(reader) = Reader::open(&js).await
        {
            return (js, reader);
        }
        assert!(Instant::now() < deadline, "the aggregator set up nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records counted for `app` in the hours from an hour before `now`.
async fn last_hour_total(reader: &Reader, app: &str, now: i64) -> u64 {
    let hours = reader
        .hourly_counts(app, now - NS_PER_HOUR, now)
        .await
        .unwrap();
    hours.iter().map(|h| h.total()).sum()
}

fn kinds(got: &[Hook]) -> Vec<String> {
    got.iter()
        .map(|h| h.body["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Errors that differ only in ids, numbers and IPs become one group each;
/// the owner hears of each new group once, of a regression once; the
/// groups and the hourly counts are readable through the library API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_owners_and_hourly_counts() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let agg = Aggregator::start(&nats, &hooks, "").await;
    let (js, reader) = ready(&nats).await;
    let hosts = ["web-1", "web-2", "web-3"];
    let mut records = Vec::new();
    for i in 0..100 {
        let host = hosts[i % 3];
        records.push(test_record(
            "shop",
            "checkout",
            Level::Error,
            host,
            &format!(
                "payment {} declined for order ord_{} from 10.0.{}.{}",
                1000 + i,
                77 * i,
                i % 7,
                i
            ),
        ));
        records.push(test_record(
            "shop",
            "checkout",
            Level::Fatal,
            host,
            &format!(
                "database connection to db-{} lost after {}ms",
                i % 4,
                20 * i
            ),
        ));
        records.push(test_record(
            "shop",
            "checkout",
            Level::Info,
            host,
            "request served",
        ));
    }
    publish_records(&js, &records, 50).await;
    wait_for(
        Duration::from_secs(30),
        "two new-group notices",
        async || hooks.got().len() >= 2,
    )
    .await;
    let got = hooks.got();
    assert_eq!(kinds(&got), ["new_group", "new_group"]);
    let templates: Vec<&str> = got
        .iter()
        .map(|h| h.body["template"].as_str().unwrap())
        .collect();
    assert!(
        templates
            .iter()
            .any(|t| t.starts_with("payment <num> declined")),
        "{templates:?}"
    );
    assert!(
        templates
            .iter()
            .any(|t| t.starts_with("database connection")),
        "{templates:?}"
    );
    for h in &got {
        assert_eq!(h.body["source"], "aggregator");
        assert_eq!(h.body["app"], "shop");
        assert!(!h.body["samples"].as_array().unwrap().is_empty());
    }
    // The groups in KV: counts, samples with request ids, hosts.
    wait_for(Duration::from_secs(20), "counts of 100 each", async || {
        let groups = reader.groups(Some("shop"), 10).await.unwrap();
        groups.len() == 2 && groups.iter().all(|g| g.count == 100)
    })
    .await;
    for g in reader.groups(Some("shop"), 10).await.unwrap() {
        assert_eq!(g.service, "checkout");
        assert!(g.samples.len() <= 3 && !g.samples.is_empty());
        assert!(g.samples.iter().all(|s| s.request_id.is_some()));
        let mut hosts_seen = g.hosts.clone();
        hosts_seen.sort();
        assert_eq!(hosts_seen, hosts);
        assert_eq!(
            g.version,
            sluice_aggregator::fingerprint::NORMALIZATION_VERSION
        );
        let one = reader
            .group("shop", "checkout", &g.fingerprint)
            .await
            .unwrap();
        assert_eq!(one.map(|o| o.fingerprint), Some(g.fingerprint.clone()));
    }
    assert!(reader.groups(Some("billing"), 10).await.unwrap().is_empty());
    // Hourly counts of every record, by service and level.
    let now = now_nanos();
    wait_for(Duration::from_secs(20), "hourly counts", async || {
        last_hour_total(&reader, "shop", now).await == 300
    })
    .await;
    // The records were made within the last minutes: one or two hours.
    let hours = reader
        .hourly_counts("shop", now - NS_PER_HOUR, now)
        .await
        .unwrap();
    let level = |l: Level| -> u64 {
        hours
            .iter()
            .filter_map(|h| h.counts.get("checkout"))
            .filter_map(|c| c.get(&l))
            .sum()
    };
    assert_eq!(
        (level(Level::Error), level(Level::Fatal), level(Level::Info)),
        (100, 100, 100)
    );

    // Quiet for longer than quiet_period_secs (3 s): a regression.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = test_record(
        "shop",
        "checkout",
        Level::Error,
        "web-9",
        "payment 5 declined for order ord_5 from 10.9.9.9",
    );
    publish_records(&js, &[again], 1).await;
    wait_for(
        Duration::from_secs(20),
        "the regression notice",
        async || hooks.got().len() >= 3,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = hooks.got();
    assert_eq!(kinds(&got), ["new_group", "new_group", "regressed"]);
    assert_eq!(got[2].body["count"], 101);
    let mut ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no notification twice");
    assert_eq!(http_get(agg.admin, "/health").0, 200);
    assert_eq!(agg.metric("sluice_aggregator_groups_new_total"), 2.0);
    assert_eq!(agg.metric("sluice_aggregator_errors_in_total"), 201.0);
    agg.stop().await;
}

/// A message of almost 1 MiB is cut in the notification; a flood of distinct messages
/// keeps memory bounded by evicting (and counting) cached groups while every
/// group is still stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_messages_are_cut_and_floods_are_bounded() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let agg = Aggregator::start(&nats, &hooks, "max_groups = 50").await;
    let (js, reader) = ready(&nats).await;
    // Nearly 1 MiB: the most one NATS message carries by default.
    let huge = format!("checksum mismatch {}", "z".repeat((1 << 20) - 4096));
    publish_records(
        &js,
        &[test_record("shop", "upload", Level::Error, "web-1", &huge)],
        1,
    )
    .await;
    wait_for(
        Duration::from_secs(20),
        "the new-group notice",
        async || !hooks.got().is_empty(),
    )
    .await;
    let h = &hooks.got()[0];
    assert!(h.bytes < 16 * 1024, "a {} byte notification", h.bytes);
    let sample = h.body["samples"][0]["msg"].as_str().unwrap();
    assert!(
        sample.len() <= 1003 && sample.ends_with('…'),
        "{} bytes",
        sample.len()
    );
    // 400 distinct messages (different wording, not just different numbers).
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
        "tango",
    ];
    let mut records = Vec::new();
    for a in words {
        for b in words {
            records.push(test_record(
                "flood",
                "api",
                Level::Error,
                "web-1",
                &format!("unexpected {a} while handling {b}"),
            ));
        }
    }
    publish_records(&js, &records, 100).await;
    wait_for(Duration::from_secs(60), "400 stored groups", async || {
        reader.groups(Some("flood"), 1000).await.unwrap().len() == 400
    })
    .await;
    assert!(agg.metric("sluice_aggregator_groups_evicted_total") > 0.0);
    assert!(agg.metric("sluice_aggregator_groups_cached") <= 51.0);
    // The flood app has no owner: kept, counted, nobody told.
    assert_eq!(agg.metric("sluice_aggregator_unowned_total"), 400.0);
    assert_eq!(hooks.got().len(), 1);
    agg.stop().await;
}

/// The subject names the app: records claiming `billing` (or another
/// level) on a `shop` subject make no billing group, no billing count and
/// no notice to billing's owner; nor do the `shop` records riding in the
/// same messages count. Each message is set aside once, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_claiming_another_app_are_neither_grouped_nor_counted() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let billing_owner = "[[aggregator.owners]]\napp = \"billing\"\nreceiver = \"shop-team\"\n";
    let agg = Aggregator::start(&nats, &hooks, billing_owner).await;
    let (js, reader) = ready(&nats).await;
    let misfiled = sluice_testing::publish_misfiled(&js).await;
    let good: Vec<_> = (0..20)
        .map(|i| {
            test_record(
                "shop",
                "checkout",
                Level::Error,
                "web-1",
                &format!("cart {i} could not be saved"),
            )
        })
        .collect();
    publish_records(&js, &good, 50).await;
    wait_for(Duration::from_secs(30), "the shop group", async || {
        let groups = reader.groups(Some("shop"), 10).await.unwrap();
        groups.len() == 1 && groups[0].count == 20
    })
    .await;
    sluice_testing::wait_dead_lettered(&js, sluice_aggregator::ROLE, &misfiled).await;
    let now = now_nanos();
    wait_for(Duration::from_secs(20), "the shop counts", async || {
        last_hour_total(&reader, "shop", now).await == 20
    })
    .await;
    assert_eq!(agg.metric("sluice_aggregator_dead_letters_total"), 5.0);
    assert_eq!(
        agg.metric("sluice_aggregator_dead_letters_total{reason=\"other_app\"}"),
        2.0
    );
    // Nothing of billing anywhere, whatever its name looked like.
    let all = reader.groups(None, 100).await.unwrap();
    assert!(all.iter().all(|g| g.app == "shop"), "{all:#?}");
    for app in ["billing", "Billing"] {
        assert_eq!(last_hour_total(&reader, app, now).await, 0, "{app}");
    }
    wait_for(Duration::from_secs(20), "the shop notice", async || {
        !hooks.got().is_empty()
    })
    .await;
    // A billing notice would need a billing group, and there is none.
    let got = hooks.got();
    assert_eq!(kinds(&got), ["new_group"]);
    assert_eq!(got[0].body["app"], "shop");
    agg.stop().await;
}
