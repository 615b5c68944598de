//! The filterer's benchmark, against a local nats-server and s3s-fs started
//! for the run.
//!
//! Prints, in one run:
//! (a) the limit: single-thread gzip -6 of the same NDJSON bytes (flate2 with
//!     zlib-rs, as the filterer uses, and the `gzip -6` command for the
//!     ratio);
//! (b) `sluice filterer` (release binary, its own process) consuming a
//!     pre-loaded `LOGS` into the S3 server: raw MB/s in, records/s,
//!     compression ratio, CPU-seconds per GB.
//!
//! `cargo bench -p sluice --bench filterer` (`BENCH_RECORDS` sets the size;
//! default 2,000,000).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_core::record::now_nanos;
use sluice_core::{Level, Record};
use sluice_testing::{
    NatsServer, S3Server, bench_runtime, bench_size, free_port, http_get, metric_value,
    process_cpu_secs, spawn_bench_role, try_http_get, wait_until,
};

fn records(n: usize) -> Vec<Record> {
    let apps = ["shop", "web", "billing", "auth", "search"];
    let words = [
        "payment",
        "declined",
        "order",
        "user",
        "login",
        "timeout",
        "cache",
        "miss",
        "retry",
        "upstream",
        "connection",
        "reset",
        "request",
        "completed",
        "slow",
        "query",
        "inventory",
        "updated",
    ];
    let now = now_nanos();
    (0..n)
        .map(|i| {
            let w = |k: usize| words[(i * 7 + k * 13) % words.len()];
            Record {
                id: ulid::Ulid::new().to_string(),
                ts: now - ((n - i) as i64) * 1_000_000,
                app: apps[i % apps.len()].into(),
                service: format!("svc-{}", i % 7),
                host: format!("web-{}", i % 20),
                level: [
                    Level::Info,
                    Level::Info,
                    Level::Warn,
                    Level::Error,
                    Level::Debug,
                ][i % 5],
                msg: format!(
                    "{} {} for {} {} in {} ms ({} {})",
                    w(0),
                    w(1),
                    w(2),
                    i * 31 % 100_000,
                    i % 997,
                    w(3),
                    w(4)
                ),
                attrs: [
                    (
                        "request_id".to_string(),
                        format!("req-{:08x}", i.wrapping_mul(2_654_435_761)),
                    ),
                    ("user_id".to_string(), format!("u{}", i % 5000)),
                ]
                .into(),
                source: format!("file:/var/log/app/svc-{}.log", i % 7),
            }
        })
        .collect()
}

fn main() {
    let n = bench_size("BENCH_RECORDS", 2_000_000);
    let runtime = bench_runtime();
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let recs = records(n);

    // (a) the limit, on the same NDJSON bytes.
    let mut ndjson = Vec::new();
    for r in &recs {
        serde_json::to_writer(&mut ndjson, r).unwrap();
        ndjson.push(b'\n');
    }
    let start = Instant::now();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&ndjson).unwrap();
    let gz = enc.finish().unwrap();
    let gzip_secs = start.elapsed().as_secs_f64();
    let file = tmp.path().join("all.ndjson");
    std::fs::write(&file, &ndjson).unwrap();
    let cli = Command::new("gzip")
        .args(["-6", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let raw_mb = ndjson.len() as f64 / 1e6;
    println!(
        "(a) single-thread gzip -6 (flate2 zlib-rs) of {raw_mb:.1} MB NDJSON: {:.1} MB/s, ratio {:.2}; gzip -6 command ratio {:.2}",
        raw_mb / gzip_secs,
        ndjson.len() as f64 / gz.len() as f64,
        ndjson.len() as f64 / cli.stdout.len() as f64
    );
    let gzip_ratio = ndjson.len() as f64 / cli.stdout.len() as f64;
    drop(ndjson);

    // Pre-load LOGS.
    let messages = runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        sluice_core::nats::ensure_stream(&js, &nats.config())
            .await
            .unwrap();
        sluice_testing::publish_records(&js, &recs, 300).await
    });
    drop(recs);

    // (b) the filterer.
    let port = free_port();
    let config = tmp.path().join("filterer.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n{}\
             [filterer]\nid = \"bench\"\nflush_interval_secs = 1\ncompaction = false\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{port}\"\n",
            nats.url(),
            s3.store_section("bench"),
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = spawn_bench_role(
        std::path::Path::new(env!("CARGO_BIN_EXE_sluice")),
        &["filterer"],
        &config,
    );
    let metric = |name: &str| metric_value(&http_get(port, "/metrics").1, name);
    wait_until(
        Duration::from_secs(600),
        "the filterer to store everything",
        || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("the filterer exited with {status}");
            }
            // Until the admin port is bound, nothing is acked yet.
            try_http_get(port, "/metrics").is_ok_and(|(_, body)| {
                metric_value(&body, "sluice_filterer_messages_acked_total") >= messages as f64
            })
        },
    );
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs(child.0.id());
    let raw = metric("sluice_filterer_raw_written_bytes_total");
    let compressed = metric("sluice_filterer_compressed_written_bytes_total");
    let ratio = raw / compressed;
    println!(
        "(b) filterer, pre-loaded LOGS into s3s-fs: {n} records in {secs:.2} s: {:.1} MB/s raw in, {:.0} records/s, compression ratio {ratio:.2} ({:+.1} % vs gzip -6), {:.2} CPU-s/GB, {:.0} % of (a)'s single-thread gzip speed",
        raw / 1e6 / secs,
        n as f64 / secs,
        100.0 * (ratio - gzip_ratio) / gzip_ratio,
        cpu / (raw / 1e9),
        100.0 * (raw / 1e6 / secs) / (raw_mb / gzip_secs)
    );
    drop(child);
}
