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

mod shared;

use std::io::Write;

use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

use shared::{Agent, LINE_BYTES, line, metric, raw_limit};
use sluice_testing::{
    NatsServer, bench_runtime, bench_size, process_cpu_secs, process_peak_rss_mib, wait_until,
};

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
    let agent = Agent::files(dir, nats, &format!("{}/*.log", logs.display()), "bulk");
    wait_until(
        Duration::from_secs(600),
        "the agent to ship every line",
        || metric(agent.port, "sluice_agent_records_published_total") >= total,
    );
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs(agent.pid());
    let rss = process_peak_rss_mib(agent.pid());
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
    let agent = Agent::files(dir, nats, &format!("{}/*.log", logs.display()), "steady");
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
    let rss = process_peak_rss_mib(agent.pid());
    // Idle: nothing written for a while, then five seconds of observation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = process_cpu_secs(agent.pid());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = process_cpu_secs(agent.pid()) - before;
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
    let lines = bench_size("BENCH_LINES", 2_000_000);
    let runtime = bench_runtime();
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
