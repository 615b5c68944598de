//! The filterer end to end, against a real nats-server and a real S3 server
//! (s3s-fs): records filed per app and hour exactly once after compaction,
//! sidecars that agree with their blobs, DuckDB reading the layout, and
//! kill -9, store outages, two filterers and undecodable input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use rand::Rng;
use sluice_core::index::BlobIndex;
use sluice_core::layout::Partition;
use sluice_core::record::now_nanos;
use sluice_core::time::NS_PER_HOUR as HOUR_NS;
use sluice_core::{Level, Record};
use sluice_testing::{
    NatsServer, S3_BUCKET, S3Server, free_port, http_get, metric_value, signal, wait_until,
};

const PREFIX: &str = "logs";

/// Three closed hours: from five to three hours ago.
fn hour_start(k: i64) -> i64 {
    (now_nanos() / HOUR_NS - 5 + k) * HOUR_NS
}

struct Filterer {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Filterer {
    fn new(dir: &Path, name: &str, nats: &NatsServer, s3: &S3Server, extra: &str) -> Filterer {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[nats]\nurl = \"{}\"\n{}\
                 [filterer]\nid = \"{name}\"\nflush_interval_secs = 1\ncompaction_grace_secs = 0\n\
                 compaction_interval_secs = 1\n{extra}\n[filterer.admin]\nlisten = \"127.0.0.1:{port}\"\n",
                nats.url(),
                s3.store_section(PREFIX),
            ),
        )
        .unwrap();
        Filterer {
            child: None,
            config,
            port,
            log: dir.join(format!("{name}.log")),
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(sluice_tests::sluice_binary())
                .args(["filterer", "--config"])
                .arg(&self.config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let port = self.port;
        wait_until(Duration::from_secs(30), "filterer admin endpoint", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "KILL");
            let _ = c.wait();
        }
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        c.wait().ok()?.code()
    }

    fn metric(&self, name: &str) -> f64 {
        metric_value(&http_get(self.port, "/metrics").1, name)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Filterer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn record(app: &str, n: usize, ts: i64) -> Record {
    let level = [
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Debug,
        Level::Info,
    ][n % 5];
    Record {
        id: ulid::Ulid::new().to_string(),
        ts,
        app: app.into(),
        service: format!("svc{}", n % 3),
        host: "host-1".into(),
        level,
        msg: format!("{app} request {n} handled \u{1b}[31m\"quoted\"\t ok"),
        attrs: [("request_id".to_string(), format!("req-{n}"))].into(),
        source: "test".into(),
    }
}

/// Publishes records straight to `LOGS`, as an agent would.
async fn publish(js: &jetstream::Context, records: &[Record]) {
    sluice_testing::publish_records(js, records, 500).await;
}

async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    sluice_core::nats::ensure_stream(&js, &nats.config())
        .await
        .unwrap();
    js
}

struct Stored {
    /// Blob relative key -> records.
    blobs: BTreeMap<String, Vec<Record>>,
    /// Blob relative key -> its sidecar, when present.
    sidecars: HashMap<String, BlobIndex>,
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Everything under the store prefix, read straight from the S3 server's
/// directory.
fn stored(s3: &S3Server) -> Stored {
    let base = s3.root().join(S3_BUCKET).join(PREFIX);
    let mut out = Stored {
        blobs: BTreeMap::new(),
        sidecars: HashMap::new(),
    };
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            if let Some(blob) = rel.strip_suffix(".idx") {
                if let Ok(idx) = BlobIndex::from_bytes(&bytes) {
                    out.sidecars.insert(blob.to_string(), idx);
                }
            } else if rel.ends_with(".ndjson.gz") {
                let text = gunzip(&bytes);
                let records = text
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice::<Record>(l).unwrap())
                    .collect();
                out.blobs.insert(rel, records);
            }
        }
    }
    out
}

/// After compaction: every expected id exactly once, each app under its own
/// prefix and hour, only sorted `compact-` blobs, sidecars that agree with
/// their blobs.
fn check_compacted(s3: &S3Server, expected: &HashMap<String, Record>) -> Result<(), String> {
    let st = stored(s3);
    let mut seen: HashSet<String> = HashSet::new();
    for (key, records) in &st.blobs {
        let (partition, name) = Partition::parse_key(key).ok_or(format!("bad key {key}"))?;
        if !name.starts_with("compact-") {
            return Err(format!("{key} is not compacted yet"));
        }
        let idx = st
            .sidecars
            .get(key)
            .ok_or(format!("{key} has no sidecar"))?;
        if idx.records != records.len() as u64 || idx.app != partition.app || !idx.sorted {
            return Err(format!(
                "sidecar of {key} disagrees: {} vs {}",
                idx.records,
                records.len()
            ));
        }
        let min = records.iter().map(|r| r.ts).min().unwrap_or(0);
        let max = records.iter().map(|r| r.ts).max().unwrap_or(0);
        if (idx.min_ts, idx.max_ts) != (min, max) {
            return Err(format!("time range of {key} disagrees"));
        }
        let mut levels: BTreeMap<String, u64> = BTreeMap::new();
        for r in records {
            *levels.entry(r.level.as_str().to_string()).or_default() += 1;
        }
        if idx.levels != levels {
            return Err(format!("level counts of {key} disagree"));
        }
        let services: std::collections::BTreeSet<String> =
            records.iter().map(|r| r.service.clone()).collect();
        if idx.services != services {
            return Err(format!("services of {key} disagree"));
        }
        let file = s3.root().join(S3_BUCKET).join(PREFIX).join(key);
        if idx.compressed_bytes != std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) {
            return Err(format!("compressed size of {key} disagrees"));
        }
        if !records.windows(2).all(|w| w[0].ts <= w[1].ts) {
            return Err(format!("{key} is not sorted"));
        }
        // It names the blobs it replaced, none of which is left.
        let replaces = idx
            .replaces
            .as_ref()
            .ok_or(format!("sidecar of {key} names no inputs"))?;
        let left = |input: &String| {
            st.blobs
                .keys()
                .any(|k| k.rsplit('/').next() == Some(input.as_str()))
        };
        if replaces.inputs.is_empty() || replaces.inputs.iter().any(left) {
            return Err(format!("{key} replaces {:?}", replaces.inputs));
        }
        for r in records.iter().step_by(97) {
            if !idx.may_contain(&r.msg) || !idx.may_contain_value(&r.attrs["request_id"]) {
                return Err(format!("bloom of {key} misses a record"));
            }
        }
        for r in records {
            if r.app != partition.app || Partition::of(&r.app, r.ts) != partition {
                return Err(format!("record of {} {} filed under {key}", r.app, r.ts));
            }
            if !seen.insert(r.id.clone()) {
                return Err(format!("record {} stored twice", r.id));
            }
            match expected.get(&r.id) {
                Some(e) if e == r => {}
                Some(_) => return Err(format!("record {} changed", r.id)),
                None => return Err(format!("unexpected record {}", r.id)),
            }
        }
    }
    if seen.len() != expected.len() {
        return Err(format!(
            "{} of {} records stored",
            seen.len(),
            expected.len()
        ));
    }
    Ok(())
}

fn wait_compacted(
    s3: &S3Server,
    expected: &HashMap<String, Record>,
    timeout: Duration,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check_compacted(s3, expected) {
            Ok(()) => return,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("not compacted as expected: {last}\n{}", tail(&log()));
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn records_for(apps: &[&str], per_app_hour: usize) -> Vec<Record> {
    let mut out = Vec::new();
    for app in apps {
        for h in 0..3 {
            for n in 0..per_app_hour {
                let ts = hour_start(h) + (n as i64 * 997_000_001) % HOUR_NS;
                out.push(record(app, n + h as usize * per_app_hour, ts));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_to_store_exactly_once_after_compaction_and_duckdb_reads_it() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let apps = ["shop", "web", "billing", "auth", "search"];
    // Files the agent tails: one per app, lines stamped in three closed hours.
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let per_app_hour = 1_000_000 / 15;
    let mut files_toml = String::new();
    let mut sent_levels: HashMap<(String, String), u64> = HashMap::new();
    let mut lines_total = 0usize;
    for app in apps {
        let mut text = String::with_capacity(per_app_hour * 3 * 120);
        for h in 0..3 {
            for n in 0..per_app_hour {
                let ts = sluice_core::record::format_ts(
                    hour_start(h) + (n as i64 * 53_000_017) % HOUR_NS,
                );
                let level = ["INFO", "WARN", "ERROR", "DEBUG"][n % 4];
                *sent_levels
                    .entry((app.to_string(), level.to_string()))
                    .or_default() += 1;
                text.push_str(&format!(
                    "{ts} {level} {app} hour {h} line {n} req-{h}-{n}\n"
                ));
                lines_total += 1;
            }
        }
        std::fs::write(logs.join(format!("{app}.log")), text).unwrap();
        files_toml.push_str(&format!(
            "[[agent.files]]\ninclude = [\"{}/{app}.log\"]\napp = \"{app}\"\n",
            logs.display()
        ));
    }
    let agent_config = sluice_core::config::Config::parse(&format!(
        "[nats]\nurl = \"{}\"\n[agent]\nid = \"e2e\"\nhost = \"e2e-host\"\ndata_dir = \"{}\"\n\
         [agent.admin]\nlisten = \"127.0.0.1:{}\"\n[agent.limits]\nnice = 0\n{files_toml}",
        nats.url(),
        tmp.path().join("agent").display(),
        free_port()
    ))
    .unwrap();
    let (stop_agent, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(sluice_agent::run(agent_config, async move {
        let _ = stopped.await;
    }));
    let mut filterer = Filterer::new(tmp.path(), "f1", &nats, &s3, "max_blob_bytes = 67108864");
    filterer.start();

    // Wait for everything to be filed and compacted.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut ok = false;
    while Instant::now() < deadline {
        let st = stored(&s3);
        let all_compact = st.blobs.keys().all(|k| k.contains("/compact-"));
        let n: usize = st.blobs.values().map(Vec::len).sum();
        if all_compact && n >= lines_total && st.blobs.len() == 15 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        ok,
        "not all filed and compacted\n{}",
        tail(&filterer.log_text())
    );
    let st = stored(&s3);
    let mut ids = HashSet::new();
    let mut msgs = HashSet::new();
    for (key, records) in &st.blobs {
        let (partition, _) = Partition::parse_key(key).unwrap();
        let idx = &st.sidecars[key];
        assert_eq!(idx.records as usize, records.len());
        for r in records {
            assert_eq!(r.app, partition.app, "{key}");
            assert_eq!(Partition::of(&r.app, r.ts), partition);
            assert!(ids.insert(r.id.clone()), "duplicate id in {key}");
            assert!(msgs.insert(r.msg.clone()), "duplicate line in {key}");
        }
    }
    assert_eq!(ids.len(), lines_total);

    // DuckDB reads one app's partitions as they are.
    let glob = s3
        .root()
        .join(S3_BUCKET)
        .join(PREFIX)
        .join("app=shop/dt=*/hour=*/*.ndjson.gz");
    let script = format!(
        "import duckdb\nrows = duckdb.sql(\"select app, level, count(*) from read_json_auto('{}', hive_partitioning=1) group by all order by all\").fetchall()\nfor r in rows: print(f'{{r[0]}} {{r[1]}} {{r[2]}}')\n",
        glob.display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb failed (install it with `pip install duckdb`, or run ./dev/test): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got: HashMap<(String, String), u64> = HashMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        got.insert(
            (parts[0].to_string(), parts[1].to_string()),
            parts[2].parse().unwrap(),
        );
    }
    let want: HashMap<(String, String), u64> = sent_levels
        .into_iter()
        .filter(|((app, _), _)| app == "shop")
        .collect();
    assert_eq!(got, want, "duckdb counts per level");

    let _ = stop_agent.send(());
    agent.await.unwrap().unwrap();
    assert_eq!(filterer.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_flush_loses_nothing() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let records = records_for(&["shop", "web", "auth"], 20_000);
    let expected: HashMap<String, Record> =
        records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let mut f = Filterer::new(tmp.path(), "k1", &nats, &s3, "max_blob_bytes = 262144");
    f.start();
    let publisher = {
        let js = js.clone();
        let records = records.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(10_000) {
                publish(&js, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for _ in 0..5 {
        let wait = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        f.kill9();
        f.start();
    }
    publisher.await.unwrap();
    wait_compacted(&s3, &expected, Duration::from_secs(120), || f.log_text());
    assert_eq!(f.log_text().matches("filterer running").count(), 6);
    assert_eq!(f.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_acks_nothing_unwritten_and_loses_nothing() {
    let nats = NatsServer::start();
    let mut s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let records = records_for(&["shop", "web"], 5_000);
    let expected: HashMap<String, Record> =
        records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let mut f = Filterer::new(tmp.path(), "o1", &nats, &s3, "");
    f.start();
    publish(&js, &records[..records.len() / 2]).await;
    wait_until(Duration::from_secs(30), "first half stored", || {
        f.metric("sluice_filterer_messages_acked_total") > 0.0
    });
    s3.stop();
    let acked_before = f.metric("sluice_filterer_messages_acked_total");
    publish(&js, &records[records.len() / 2..]).await;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Nothing can be acknowledged while nothing can be written.
        assert_eq!(
            f.metric("sluice_filterer_messages_acked_total"),
            acked_before
        );
    }
    assert!(f.metric("sluice_filterer_store_errors_total") > 0.0);
    s3.start_again();
    wait_compacted(&s3, &expected, Duration::from_secs(120), || f.log_text());
    assert_eq!(f.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_filterers_share_the_consumer() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let records = records_for(&["shop", "web", "auth", "billing"], 10_000);
    let expected: HashMap<String, Record> =
        records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let mut a = Filterer::new(tmp.path(), "a", &nats, &s3, "max_blob_bytes = 262144");
    let mut b = Filterer::new(tmp.path(), "b", &nats, &s3, "max_blob_bytes = 262144");
    a.start();
    b.start();
    publish(&js, &records).await;
    wait_compacted(&s3, &expected, Duration::from_secs(120), || {
        a.log_text() + &b.log_text()
    });
    // Both did work.
    assert!(a.metric("sluice_filterer_messages_acked_total") > 0.0);
    assert!(b.metric("sluice_filterer_messages_acked_total") > 0.0);
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_batches_go_to_the_dead_letter_stream() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let mut f = Filterer::new(tmp.path(), "d1", &nats, &s3, "");
    f.start();
    js.publish(
        "logs.shop.info",
        bytes::Bytes::from_static(b"\xc1 not msgpack"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let good = records_for(&["shop"], 10);
    publish(&js, &good).await;
    let expected: HashMap<String, Record> =
        good.iter().map(|r| (r.id.clone(), r.clone())).collect();
    wait_compacted(&s3, &expected, Duration::from_secs(60), || f.log_text());
    assert_eq!(f.metric("sluice_filterer_dead_letters_total"), 1.0);
    let mut dl = js
        .get_stream(sluice_filterer::DEADLETTER_STREAM)
        .await
        .unwrap();
    assert_eq!(dl.info().await.unwrap().state.messages, 1);
    let msg = dl.get_raw_message(1).await.unwrap();
    assert_eq!(msg.payload.as_ref(), b"\xc1 not msgpack");
    let reason = msg.headers.get("Sluice-Reason").unwrap().to_string();
    assert!(reason.contains("not a valid sluice batch"), "{reason}");
    assert_eq!(f.terminate(), Some(0));
}

/// The subject names the app: records that claim another app or level
/// than their subject, or a subject with an invalid app, are filed nowhere;
/// each message is set aside whole with its reason and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_claiming_another_app_or_level_are_dead_lettered_not_filed() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let mut f = Filterer::new(tmp.path(), "m1", &nats, &s3, "");
    f.start();
    let misfiled = sluice_testing::publish_misfiled(&js).await;
    let good = records_for(&["shop"], 10);
    publish(&js, &good).await;
    let expected: HashMap<String, Record> =
        good.iter().map(|r| (r.id.clone(), r.clone())).collect();
    // Exactly the good records are filed: any other record fails this.
    wait_compacted(&s3, &expected, Duration::from_secs(60), || f.log_text());
    let keys: Vec<String> = stored(&s3).blobs.into_keys().collect();
    assert!(keys.iter().all(|k| k.starts_with("app=shop/")), "{keys:#?}");
    sluice_testing::wait_dead_lettered(&js, sluice_filterer::ROLE, &misfiled).await;
    let by_reason = |reason: &str| {
        f.metric(&format!(
            "sluice_filterer_dead_letters_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(by_reason("other_app"), 2.0);
    assert_eq!(by_reason("other_level"), 1.0);
    assert_eq!(by_reason("invalid_app"), 1.0);
    assert_eq!(by_reason("invalid_subject"), 1.0);
    assert_eq!(by_reason("undecodable"), 0.0);
    assert_eq!(f.metric("sluice_filterer_dead_letters_total"), 5.0);
    // The dead letter is the original payload, unchanged.
    let letters = sluice_testing::dead_letters(&js, sluice_filterer::ROLE).await;
    let records = sluice_core::codec::decode_batch(&letters[0].payload).unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.app == "billing"));
    assert_eq!(f.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_record_for_a_compacted_hour_is_compacted_again() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let mut f = Filterer::new(tmp.path(), "l1", &nats, &s3, "");
    f.start();
    let first = records_for(&["shop"], 100);
    publish(&js, &first).await;
    let mut expected: HashMap<String, Record> =
        first.iter().map(|r| (r.id.clone(), r.clone())).collect();
    wait_compacted(&s3, &expected, Duration::from_secs(60), || f.log_text());
    let late = record("shop", 999_999, hour_start(1) + 5);
    publish(&js, std::slice::from_ref(&late)).await;
    expected.insert(late.id.clone(), late);
    wait_compacted(&s3, &expected, Duration::from_secs(60), || f.log_text());
    assert_eq!(f.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_store_fails_health_and_acks_nothing() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let js = jetstream(&nats).await;
    let f = Filterer::new(tmp.path(), "p1", &nats, &s3, "");
    // Wrong credentials: a permanent error.
    let text = std::fs::read_to_string(&f.config).unwrap();
    let secret = s3.store_config(PREFIX).secret_access_key.unwrap();
    std::fs::write(&f.config, text.replace(&secret, "not-the-secret")).unwrap();
    let mut f = f;
    f.start();
    publish(&js, &records_for(&["shop"], 50)).await;
    wait_until(
        Duration::from_secs(30),
        "/health to report the refusing store",
        || {
            let (status, body) = http_get(f.port, "/health");
            status == 503 && body.contains("refuses")
        },
    );
    assert!(f.metric("sluice_filterer_store_errors_total") >= 1.0);
    assert_eq!(f.metric("sluice_filterer_messages_acked_total"), 0.0);
    assert!(f.log_text().contains("object store refuses the write"));
    assert_eq!(f.terminate(), Some(0));
}
