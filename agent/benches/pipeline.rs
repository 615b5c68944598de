//! The agent's benchmark, against a local `nats-server` started for the run.
//!
//! Prints, in one run:
//! (a) the limit: raw JetStream publish of pre-encoded ~64 KiB batches;
//! (b) the agent (release binary, a separate process) shipping pre-written
//!     files of 200-byte lines end to end: lines/s, MB/s, CPU-seconds per GB,
//!     peak RSS, and the ratio to (a);
//! (c) latency from a line appended to its arrival on the stream at a steady
//!     10k lines/s over 100 files, the agent's peak RSS while tailing them,
//!     and its CPU use while idle.
//!
//! `cargo bench -p sluice-agent --bench pipeline` (set `BENCH_LINES` to
//! change the size of (b); default 2,000,000 lines ≈ 400 MB).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sluice_core::codec::encode_batch;
use sluice_core::config::NatsConfig;
use sluice_core::testing::{
    NatsServer, free_port, http_get, metric_value, process_cpu_secs, process_peak_rss_mib, signal,
    wait_until,
};
use sluice_core::{Level, Record};

const LINE_BYTES: usize = 200;

fn line(file: usize, n: usize, ts: &str) -> String {
    let head = format!("{ts} INFO file{file} line {n} ");
    format!("{head}{}", "x".repeat(LINE_BYTES - 1 - head.len()))
}

fn metric(port: u16, name: &str) -> f64 {
    metric_value(&http_get(port, "/metrics").1, name)
}

struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    fn start(dir: &Path, nats: &NatsServer, include: &str, app: &str) -> Agent {
        let port = free_port();
        let config = dir.join(format!("{app}.toml"));
        std::fs::write(
            &config,
            format!(
                "[nats]\nurl = \"{}\"\n[agent]\nid = \"bench-{app}\"\ndata_dir = \"{}\"\n\
                 [agent.admin]\nlisten = \"127.0.0.1:{port}\"\n[agent.limits]\nnice = 0\n\
                 [[agent.files]]\ninclude = [\"{include}\"]\napp = \"{app}\"\n",
                nats.url(),
                dir.join(format!("data-{app}")).display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-agent"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent { child, port }
    }

    fn stop(mut self) {
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

async fn raw_limit(nats: &NatsServer) -> (f64, f64) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let cfg = NatsConfig {
        stream: "RAW".into(),
        ..NatsConfig::default()
    };
    let mut stream_cfg = sluice_core::nats::stream_config(&cfg);
    stream_cfg.subjects = vec!["raw.>".into()];
    js.create_stream(stream_cfg).await.unwrap();
    let ts = "2026-11-22T10:00:00.000000000Z";
    let records: Vec<Record> = (0..)
        .map(|n| Record {
            id: ulid::Ulid::new().to_string(),
            ts: 1_795_428_000_000_000_000,
            app: "bench".into(),
            service: "file0".into(),
            host: "bench-host".into(),
            level: Level::Info,
            msg: line(0, n, ts),
            attrs: Default::default(),
            source: "file:/tmp/bench/file0.log".into(),
        })
        .take(200)
        .collect();
    let payload = bytes::Bytes::from(encode_batch(&records));
    let per_msg = records.len();
    let total_msgs = 6_000usize;
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..total_msgs {
        if in_flight.len() >= 64 {
            let done: Result<_, async_nats::jetstream::context::PublishError> =
                in_flight.next().await.unwrap();
            done.unwrap();
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw:{i}").as_str());
        let ack = js
            .publish_with_headers("raw.bench.info", headers, payload.clone())
            .await
            .unwrap();
        in_flight.push(async move { ack.await });
    }
    while let Some(r) = in_flight.next().await {
        r.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let lines = (total_msgs * per_msg) as f64;
    println!(
        "(a) raw JetStream publish: {} msgs of {} KiB ({per_msg} records): {:.0} records/s, {:.1} MB/s of line bytes, {:.1} MB/s on the wire",
        total_msgs,
        payload.len() / 1024,
        lines / secs,
        lines * LINE_BYTES as f64 / secs / 1e6,
        (total_msgs * payload.len()) as f64 / secs / 1e6
    );
    js.delete_stream("RAW").await.unwrap();
    (lines / secs, lines * LINE_BYTES as f64 / secs / 1e6)
}

fn end_to_end(dir: &Path, nats: &NatsServer, lines: usize, raw_mb: f64) {
    let logs = dir.join("bulk");
    std::fs::create_dir_all(&logs).unwrap();
    let files = 10;
    let ts = "2026-11-22T10:00:00.000000000Z";
    for f in 0..files {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(logs.join(format!("file{f}.log"))).unwrap(),
        );
        for n in 0..lines / files {
            writeln!(w, "{}", line(f, n, ts)).unwrap();
        }
    }
    let total = (lines / files * files) as f64;
    let start = Instant::now();
    let agent = Agent::start(dir, nats, &format!("{}/*.log", logs.display()), "bulk");
    wait_until(
        Duration::from_secs(600),
        "the agent to ship every line",
        || metric(agent.port, "sluice_agent_records_published_total") >= total,
    );
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs(agent.child.id());
    let rss = process_peak_rss_mib(agent.child.id());
    let gb = total * LINE_BYTES as f64 / 1e9;
    let mb_s = total * LINE_BYTES as f64 / secs / 1e6;
    println!(
        "(b) agent end to end: {total:.0} lines in {secs:.2} s: {:.0} lines/s, {mb_s:.1} MB/s, {:.2} CPU-s/GB, peak RSS {rss:.1} MiB, {:.0} % of (a)",
        total / secs,
        cpu / gb,
        100.0 * mb_s / raw_mb
    );
    agent.stop();
}

async fn latency(dir: &Path, nats: &NatsServer) {
    let logs = dir.join("steady");
    std::fs::create_dir_all(&logs).unwrap();
    let files = 100;
    for f in 0..files {
        std::fs::File::create(logs.join(format!("file{f}.log"))).unwrap();
    }
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut sub = client.subscribe("logs.steady.>").await.unwrap();
    let agent = Agent::start(dir, nats, &format!("{}/*.log", logs.display()), "steady");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rate = 10_000u64;
    let secs = 10u64;
    let total = (rate * secs) as usize;
    let writer = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            let mut handles: Vec<std::fs::File> = (0..files)
                .map(|f| {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(logs.join(format!("file{f}.log")))
                        .unwrap()
                })
                .collect();
            let start = Instant::now();
            for n in 0..total {
                let due = start + Duration::from_nanos(n as u64 * 1_000_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let ts = sluice_core::record::format_ts(sluice_core::record::now_nanos());
                let f = n % files;
                handles[f]
                    .write_all(format!("{}\n", line(f, n, &ts)).as_bytes())
                    .unwrap();
            }
        })
    };
    let mut lat: Vec<f64> = Vec::with_capacity(total);
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while lat.len() < total && Instant::now() < deadline {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await else {
            break;
        };
        let now = sluice_core::record::now_nanos();
        for r in sluice_core::codec::decode_batch(&msg.payload).unwrap() {
            lat.push((now - r.ts) as f64 / 1e6);
        }
    }
    writer.join().unwrap();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let rss = process_peak_rss_mib(agent.child.id());
    // Idle: nothing written for a while, then five seconds of observation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = process_cpu_secs(agent.child.id());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = process_cpu_secs(agent.child.id()) - before;
    println!(
        "(c) steady {rate} lines/s over {files} files for {secs} s: {} of {total} arrived, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; peak RSS {rss:.1} MiB; CPU while idle {idle:.3} s over 5 s",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    agent.stop();
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let lines: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "agent benchmark: nats-server local, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (_, raw_mb) = runtime.block_on(raw_limit(&nats));
    end_to_end(dir.path(), &nats, lines, raw_mb);
    runtime.block_on(latency(dir.path(), &nats));
}
