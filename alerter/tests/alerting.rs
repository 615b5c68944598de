//! The alerter end to end: a real nats-server, real alerter instances in
//! this process, and a real webhook receiver started by the test. Storms,
//! receiver outages with an alerter restart in the middle, three instances
//! on one stream, and absence firing and resolving.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sluice_alerter::AlerterError;
use sluice_core::Level;
use sluice_core::config::Config;
use sluice_core::record::parse_ts;
use sluice_core::time::NS_PER_MS;
use sluice_testing::{
    Hook, Hooks, NatsServer, free_port, http_get, metric_value, publish_records, test_record,
    try_http_get, try_metric_value, wait_for,
};

struct Alerter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AlerterError>>,
}

impl Alerter {
    /// Starts an alerter in this process and waits until its `/ready`
    /// answers 200 (its streams and buckets are set up). Fails at once with
    /// the role's error when it stops instead, and after 60 s with what
    /// `/ready` and the nats-server said last.
    async fn start(nats: &NatsServer, text: &str) -> Alerter {
        // The role's own log lines, shown with a failing test's output.
        sluice_core::telemetry::init();
        let config = Config::parse(text).unwrap();
        let admin = admin_port(text);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sluice_alerter::run(config, async move {
            let _ = rx.await;
        }));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if task.is_finished() {
                panic!("the alerter stopped while setting up: {:?}", task.await);
            }
            let answer = tokio::task::spawn_blocking(move || try_http_get(admin, "/ready"))
                .await
                .unwrap();
            if matches!(answer, Ok((200, _))) {
                break;
            }
            if Instant::now() > deadline {
                let log = nats.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                panic!(
                    "the alerter was not ready within 60 s: /ready {answer:?}; nats log:\n{tail}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Alerter {
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn config(nats: &NatsServer, hooks: &Hooks, id: &str, rules: &str) -> String {
    format!(
        r#"
[nats]
url = "{url}"
[[receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"
secret = "k"
rate_per_minute = 100000
timeout_secs = 2
[alerter]
id = "{id}"
retry_max_secs = 2
admin = {{ listen = "127.0.0.1:{admin}" }}
{rules}
"#,
        url = nats.url(),
        hook = hooks.url("/hook"),
        admin = free_port(),
    )
}

/// The admin port a [`config`] text chose.
fn admin_port(text: &str) -> u16 {
    text.split("listen = \"127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|p| p.parse().ok())
        .expect("the config names an admin port")
}

/// A JetStream context (the streams exist once an alerter is ready).
async fn js(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(nats.url()).await.unwrap())
}

fn kinds(got: &[Hook]) -> Vec<String> {
    got.iter()
        .map(|h| h.body["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn field<'a>(h: &'a Hook, name: &str) -> &'a serde_json::Value {
    &h.body[name]
}

fn rule_of(h: &Hook) -> &str {
    field(h, "rule").as_str().unwrap_or_default()
}

fn count_of(h: &Hook) -> u64 {
    field(h, "count").as_u64().unwrap()
}

fn created_of(h: &Hook) -> i64 {
    parse_ts(field(h, "created").as_str().unwrap()).unwrap()
}

fn label(h: &Hook, name: &str) -> String {
    field(h, "labels")[name]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sum of the counts of `rule`'s notifications, by `service` label.
fn sums(got: &[Hook], rule: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for h in got.iter().filter(|h| rule_of(h) == rule) {
        *out.entry(label(h, "service")).or_default() += count_of(h);
    }
    out
}

fn assert_unique_ids(got: &[Hook]) {
    let mut seen = HashSet::new();
    for h in got {
        assert!(!h.id.is_empty(), "a delivery without X-Sluice-Id");
        assert_eq!(field(h, "id").as_str(), Some(h.id.as_str()));
        assert!(seen.insert(h.id.clone()), "delivered twice: {}", h.id);
    }
}

/// Every notification arrived once, and the `every-error` counts add up to
/// `sent` records spread evenly over `services`.
fn assert_every_error_once(got: &[Hook], services: &[&str], sent: u64) {
    assert_unique_ids(got);
    let every = sums(got, "every-error");
    for s in services {
        assert_eq!(every[*s], sent / services.len() as u64, "{s}: {every:?}");
    }
}

/// Each group's notifications of `rule` are at least `interval` apart.
fn assert_spaced(got: &[Hook], rule: &str, interval: Duration) {
    let mut by_group: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for h in got.iter().filter(|h| rule_of(h) == rule) {
        by_group
            .entry(label(h, "service"))
            .or_default()
            .push(created_of(h));
    }
    for (group, mut times) in by_group {
        times.sort();
        for w in times.windows(2) {
            assert!(
                w[1] - w[0] >= interval.as_nanos() as i64,
                "{rule}/{group}: two notifications {} ms apart",
                (w[1] - w[0]) / NS_PER_MS
            );
        }
    }
}

const SERVICES: [&str; 4] = ["checkout", "cart", "search", "auth"];

async fn burst(js: &jetstream::Context, n: usize, services: &[&str]) {
    let records: Vec<_> = (0..n)
        .map(|i| {
            test_record(
                "shop",
                services[i % services.len()],
                Level::Error,
                "web-1",
                &format!("payment {i} declined"),
            )
        })
        .collect();
    publish_records(js, &records, 500).await;
}

const STORM_RULES: &str = r#"
[[alerter.rules]]
name = "every-error"
app = "shop"
kind = "every"
group_by = ["service"]
receiver = "hook"
group_wait_secs = 1
group_interval_secs = 4
[[alerter.rules]]
name = "too-many"
app = "shop"
kind = "threshold"
threshold = 1000
window_secs = 60
group_by = ["service"]
receiver = "hook"
group_wait_secs = 1
group_interval_secs = 4
repeat_interval_secs = 3600
"#;

/// 100k matching errors within 10 s: at most one notification per group per
/// group_interval, and the counts add up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_grouped_with_exact_counts() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let alerter = Alerter::start(&nats, &config(&nats, &hooks, "a1", STORM_RULES)).await;
    let js = js(&nats).await;
    let started = Instant::now();
    for round in 0..10u32 {
        burst(&js, 10_000, &SERVICES).await;
        let next = started + Duration::from_secs(u64::from(round) + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    // Paced at 10k a second; a loaded machine may stretch it a little.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the storm took {:?}",
        started.elapsed()
    );
    wait_for(
        Duration::from_secs(60),
        "every error reported",
        async || sums(&hooks.got(), "every-error").values().sum::<u64>() == 100_000,
    )
    .await;
    // Nothing more arrives afterwards.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = hooks.got();
    assert_unique_ids(&got);
    let every = sums(&got, "every-error");
    for s in SERVICES {
        assert_eq!(every[s], 25_000, "{s}: {every:?}");
    }
    assert_spaced(&got, "every-error", Duration::from_secs(4));
    let storm_secs = 12;
    let per_group = got.iter().filter(|h| rule_of(h) == "every-error").count() / 4;
    assert!(
        per_group <= storm_secs / 4 + 2,
        "{per_group} notifications per group"
    );
    let threshold: Vec<_> = got.iter().filter(|h| rule_of(h) == "too-many").collect();
    assert_eq!(threshold.len(), 4, "one firing notice per service");
    for h in threshold {
        assert_eq!(field(h, "kind"), "firing");
        assert!(count_of(h) >= 1000, "{}", h.body);
        assert_eq!(field(h, "window_secs"), 60);
    }
    alerter.stop().await;
}

const EVERY_FAST: &str = r#"
[[alerter.rules]]
name = "every-error"
app = "shop"
kind = "every"
group_by = ["service"]
receiver = "hook"
group_wait_secs = 0
group_interval_secs = 2
"#;

/// The receiver refuses connections for 15 s, then answers 500 for 15 s,
/// and the alerter is restarted in the middle: once the receiver is back,
/// every notification arrives exactly once and the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_failing_for_30s_gets_everything_once() {
    let nats = NatsServer::start();
    let mut hooks = Hooks::new();
    let first = Alerter::start(&nats, &config(&nats, &hooks, "a1", EVERY_FAST)).await;
    let js = js(&nats).await;
    let down_since = Instant::now();
    let services = &SERVICES[..3];
    let mut sent = 0u64;
    for _ in 0..4 {
        burst(&js, 300, services).await;
        sent += 300;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    first.stop().await;
    let second = Alerter::start(&nats, &config(&nats, &hooks, "a2", EVERY_FAST)).await;
    for _ in 0..4 {
        burst(&js, 300, services).await;
        sent += 300;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let outbox = || async {
        let mut s = js.get_stream(sluice_notify::outbox::STREAM).await.unwrap();
        s.info().await.unwrap().state.messages
    };
    tokio::time::sleep_until((down_since + Duration::from_secs(15)).into()).await;
    hooks.answer(500);
    hooks.listen().await;
    tokio::time::sleep_until((down_since + Duration::from_secs(30)).into()).await;
    let pending = outbox().await;
    assert!(pending >= 6, "only {pending} notifications pending");
    assert!(hooks.got().is_empty());
    hooks.answer(200);
    wait_for(
        Duration::from_secs(60),
        "the pending notifications",
        async || sums(&hooks.got(), "every-error").values().sum::<u64>() >= sent,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = hooks.got();
    assert_every_error_once(&got, services, sent);
    assert_eq!(outbox().await, 0, "the outbox is empty");
    second.stop().await;
}

/// Three alerter instances read the same stream: each notification is
/// delivered once, the counts add up, and the group timers hold across
/// instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_each_notification_once() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let rules = r#"
[[alerter.rules]]
name = "every-error"
app = "shop"
kind = "every"
group_by = ["service"]
receiver = "hook"
group_wait_secs = 1
group_interval_secs = 3
[[alerter.rules]]
name = "too-many"
app = "shop"
kind = "threshold"
threshold = 200
window_secs = 60
group_by = ["service"]
receiver = "hook"
group_wait_secs = 0
group_interval_secs = 3
repeat_interval_secs = 3600
"#;
    let mut alerters = Vec::new();
    for id in ["a1", "a2", "a3"] {
        alerters.push(Alerter::start(&nats, &config(&nats, &hooks, id, rules)).await);
    }
    let js = js(&nats).await;
    let services = &SERVICES[..3];
    let mut sent = 0u64;
    for _ in 0..12 {
        burst(&js, 300, services).await;
        sent += 300;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    wait_for(
        Duration::from_secs(60),
        "every error reported",
        async || sums(&hooks.got(), "every-error").values().sum::<u64>() >= sent,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = hooks.got();
    assert_every_error_once(&got, services, sent);
    assert_spaced(&got, "every-error", Duration::from_secs(3));
    let threshold: Vec<_> = got.iter().filter(|h| rule_of(h) == "too-many").collect();
    assert_eq!(threshold.len(), 3, "one firing notice per service");
    for a in alerters {
        a.stop().await;
    }
}

/// `absence` fires when a service goes silent for the window and resolves
/// when it returns, and a gap shorter than the window does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absence_fires_and_resolves_without_flapping() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let rules = r#"
[[alerter.rules]]
name = "billing-silent"
app = "shop"
service = "billing"
min_level = "INFO"
kind = "absence"
window_secs = 4
receiver = "hook"
group_wait_secs = 0
group_interval_secs = 2
"#;
    let alerter = Alerter::start(&nats, &config(&nats, &hooks, "a1", rules)).await;
    let js = js(&nats).await;
    let beat = || async {
        let r = test_record("shop", "billing", Level::Info, "web-1", "invoice run ok");
        publish_records(&js, &[r], 1).await;
        Instant::now()
    };
    let beats = |secs: f64| async move {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let mut last = Instant::now();
        while Instant::now() < until {
            last = beat().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        last
    };
    beats(3.0).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let last = beats(3.0).await;
    assert!(
        hooks.got().is_empty(),
        "a short gap fired: {:?}",
        hooks.got()
    );
    wait_for(Duration::from_secs(15), "the absence alert", async || {
        !hooks.got().is_empty()
    })
    .await;
    let fired = hooks.got()[0].clone();
    assert_eq!(field(&fired, "kind"), "firing");
    // The window counts from the last record's own time, taken just
    // before `last`.
    assert!(
        fired.at + Duration::from_millis(300) >= last + Duration::from_secs(4),
        "fired {:?} after the last record",
        fired.at - last
    );
    // Still silent: no repeat, no flapping, and a restart in the middle
    // neither resolves nor fires it again.
    alerter.stop().await;
    let alerter = Alerter::start(&nats, &config(&nats, &hooks, "a2", rules)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hooks.got().len(), 1, "{:?}", kinds(&hooks.got()));
    let back = beats(4.0).await;
    wait_for(Duration::from_secs(15), "the resolve", async || {
        hooks.got().len() >= 2
    })
    .await;
    let got = hooks.got();
    assert_eq!(field(&got[1], "kind"), "resolved");
    assert!(got[1].at <= back + Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.got().len(), 2, "{:?}", hooks.got());
    alerter.stop().await;
}

/// The built-in consumer-lag alert: a durable consumer of the stream that
/// stops acknowledging while records keep coming is reported to the
/// system receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_fires_the_lag_alert() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let text = config(&nats, &hooks, "a1", "").replace(
        "[alerter]\n",
        "[alerter]\nsystem_receiver = \"hook\"\nmax_lag_secs = 2\n",
    );
    let alerter = Alerter::start(&nats, &text).await;
    let js = js(&nats).await;
    let stream = js.get_stream("LOGS").await.unwrap();
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("stuck".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    burst(&js, 10, &["checkout"]).await;
    wait_for(Duration::from_secs(45), "the lag alert", async || {
        hooks
            .got()
            .iter()
            .any(|h| rule_of(h) == "sluice-consumer-lag" && label(h, "consumer") == "stuck")
    })
    .await;
    let got = hooks.got();
    let alert = got
        .iter()
        .find(|h| rule_of(h) == "sluice-consumer-lag")
        .unwrap();
    assert_eq!(field(alert, "kind"), "firing");
    assert!(
        field(alert, "title")
            .as_str()
            .unwrap()
            .contains("consumer stuck is"),
        "{}",
        alert.body
    );
    alerter.stop().await;
}

/// The built-in logs-expiring alert: a durable consumer of every subject
/// that never acknowledges is reported once its oldest message is older
/// than the configured fraction of the stream's max age — before the
/// stream deletes it — and not as lagging, whose limit is far off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_about_to_lose_records_fires_the_expiry_alert() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    // Records live 20 s; the alert fires at 10 % of that.
    let text = config(&nats, &hooks, "a1", "")
        .replace(
            "[nats]\n",
            "[nats]\nmax_age_secs = 20\nduplicate_window_secs = 10\n",
        )
        .replace(
            "[alerter]\n",
            "[alerter]\nsystem_receiver = \"hook\"\nmax_lag_secs = 3600\n\
             unprocessed_expiry_warn_fraction = 0.1\n",
        );
    let alerter = Alerter::start(&nats, &text).await;
    let js = js(&nats).await;
    let stream = js.get_stream("LOGS").await.unwrap();
    assert_eq!(stream.cached_info().config.max_age, Duration::from_secs(20));
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("unfiled".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let fired = |got: &[Hook]| {
        got.iter()
            .any(|h| rule_of(h) == "sluice-logs-expiring" && label(h, "consumer") == "unfiled")
    };
    // Records keep coming, so the consumer owes some whenever the alerter
    // samples (every 15 s), even after the first ones expired.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fired(&hooks.got()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the expiry alert: {:?}",
            hooks.got().iter().map(|h| &h.body).collect::<Vec<_>>()
        );
        burst(&js, 5, &["checkout"]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let got = hooks.got();
    let alert = got
        .iter()
        .find(|h| rule_of(h) == "sluice-logs-expiring")
        .unwrap();
    assert_eq!(field(alert, "kind"), "firing");
    let title = field(alert, "title").as_str().unwrap();
    assert!(
        title.contains("consumer unfiled has an unprocessed message")
            && title.contains("stream LOGS deletes messages after 20s"),
        "{}",
        alert.body
    );
    assert!(
        !got.iter().any(|h| rule_of(h) == "sluice-consumer-lag"),
        "the lag alert fired too: {got:?}"
    );
    alerter.stop().await;
}

/// A receiver that refuses a notification for good (404) is not retried:
/// the refusal is counted, and nothing else is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_is_not_retried_and_is_counted() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    hooks.answer(404);
    let text = config(&nats, &hooks, "a1", EVERY_FAST);
    let admin = admin_port(&text);
    let alerter = Alerter::start(&nats, &text).await;
    let js = js(&nats).await;
    burst(&js, 10, &["checkout"]).await;
    const REJECTED: &str = "sluice_alerter_deliveries_total{outcome=\"rejected\"}";
    let rejected = || metric_value(&http_get(admin, "/metrics").1, REJECTED);
    // The series exists once the first outcome is counted.
    wait_for(Duration::from_secs(20), "the refusal", async || {
        try_metric_value(&http_get(admin, "/metrics").1, REJECTED).is_some_and(|n| n >= 1.0)
    })
    .await;
    // Retries would come within seconds (retry_max_secs = 2).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hooks.requests(), 1, "a refused notification was sent again");
    assert_eq!(rejected(), 1.0);
    alerter.stop().await;
}

const BILLING_AND_SHOP: &str = r#"
[[alerter.rules]]
name = "billing-errors"
app = "billing"
kind = "every"
receiver = "hook"
group_wait_secs = 0

[[alerter.rules]]
name = "shop-errors"
app = "shop"
kind = "every"
receiver = "hook"
group_wait_secs = 0
"#;

/// The subject names the app: records claiming `billing` on a `shop`
/// subject do not fire billing's rule, nor do the `shop` records riding in
/// the same messages fire shop's; each message is set aside with its
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_claiming_another_app_fire_no_rule() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let text = config(&nats, &hooks, "a1", BILLING_AND_SHOP);
    let admin = admin_port(&text);
    let alerter = Alerter::start(&nats, &text).await;
    let js = js(&nats).await;
    let misfiled = sluice_testing::publish_misfiled(&js).await;
    burst(&js, 10, &["checkout"]).await;
    // Only the 10 good records: the shop records in refused messages are
    // not counted either.
    wait_for(Duration::from_secs(30), "the shop notices", async || {
        hooks.got().iter().map(count_of).sum::<u64>() >= 10
    })
    .await;
    sluice_testing::wait_dead_lettered(&js, sluice_alerter::ROLE, &misfiled).await;
    let metric = |name: &str| metric_value(&http_get(admin, "/metrics").1, name);
    assert_eq!(metric("sluice_alerter_dead_letters_total"), 5.0);
    // Every match there was: the billing rule never matched.
    assert_eq!(metric("sluice_alerter_matches_total"), 10.0);
    let got = hooks.got();
    let rules: HashSet<&str> = got.iter().map(rule_of).collect();
    assert_eq!(rules, HashSet::from(["shop-errors"]), "{got:#?}");
    assert_eq!(got.iter().map(count_of).sum::<u64>(), 10);
    alerter.stop().await;
}
