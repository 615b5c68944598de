//! The data both query benchmarks run on: about 2 GB of realistic NDJSON
//! (20 apps × 24 hours, request ids shared across services and apps, a few
//! rare needles) published to `LOGS` and filed by the release
//! `sluice filterer` with its compaction into s3s-fs; then `LOGS` is
//! purged, so answers come from the blobs. `BENCH_BYTES` sets the raw
//! size (default 2,000,000,000).

// Each benchmark uses a part of what is here.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::time::{NS_PER_HOUR, now_nanos};
use sluice_core::{Level, Record};
use sluice_testing::{
    Lcg, NatsServer, S3Server, bench_runtime, bench_size, free_port, spawn_bench_role, wait_until,
};

pub const APPS: usize = 20;
pub const NEEDLE: &str = "req-needle-7";
pub const RARE: &str = "zanzibar";

/// The filed data and what serves it.
pub struct Corpus {
    pub runtime: tokio::runtime::Runtime,
    pub nats: NatsServer,
    pub s3: S3Server,
    pub tmp: tempfile::TempDir,
    /// A config for every role, on the ports below.
    pub config: PathBuf,
    pub filterer_port: u16,
    pub query_port: u16,
    pub agent_port: u16,
    pub http_port: u16,
    /// The release binaries.
    pub sluice: PathBuf,
    pub agent_bin: PathBuf,
    /// The blobs' directory in s3s-fs.
    pub root: PathBuf,
    /// The first hour of the data, ns.
    pub start: i64,
    /// Records filed, and their raw NDJSON bytes.
    pub total: usize,
    pub raw: u64,
    pub blobs: Vec<PathBuf>,
    pub js: async_nats::jetstream::Context,
}

/// Records `from..to` of `total`, spread evenly over 24 hours from
/// `start`: requests of 3 to 6 records across services (and sometimes
/// apps) share a request id; a needle request and a rare word appear a few
/// times.
pub fn chunk(rng: &mut Lcg, from: usize, to: usize, total: usize, start: i64) -> Vec<Record> {
    let services = ["api", "web", "worker", "checkout", "db"];
    let step = 24 * NS_PER_HOUR / total as i64;
    let mut out = Vec::with_capacity(to - from);
    let mut i = from;
    while i < to {
        let request = format!("req-{:010x}", rng.next(1 << 40));
        let hops = 3 + rng.next(4) as usize;
        let home = rng.next(APPS as u64) as usize;
        for hop in 0..hops.min(to - i) {
            let app = if rng.next(4) == 0 {
                rng.next(APPS as u64) as usize
            } else {
                home
            };
            let n = rng.next(100_000);
            let level = match rng.next(100) {
                0..=9 => Level::Debug,
                10..=79 => Level::Info,
                80..=91 => Level::Warn,
                92..=98 => Level::Error,
                _ => Level::Fatal,
            };
            let mut msg = match rng.next(8) {
                0 => format!("payment declined for order {n} card ****{:04}", n % 10_000),
                1 => format!("order {n} created for user u{}", n % 5_000),
                2 => format!(
                    "upstream timeout after {} ms talking to inventory",
                    n % 1_000
                ),
                3 => format!("cache miss for key product:{n}"),
                4 => format!("GET /api/v1/products/{n} 200 {} ms", n % 300),
                5 => format!(
                    "user u{} logged in from 10.{}.{}.{}",
                    n % 5_000,
                    n % 256,
                    n % 7,
                    n % 13
                ),
                6 => format!("retrying request to billing (attempt {})", n % 5),
                _ => format!("inventory updated: sku {n} count {}", n % 50),
            };
            let global = i + hop;
            let mut id = request.clone();
            if global % (total / 8).max(1) == 11 {
                id = NEEDLE.to_string();
            }
            if global % (total / 10).max(1) == 23 {
                msg.push_str(&format!(" {RARE}"));
            }
            out.push(Record {
                id: ulid::Ulid::new().to_string(),
                ts: start + global as i64 * step,
                app: format!("app{app:02}"),
                service: services[(hop + home) % services.len()].into(),
                host: format!("web-{}", rng.next(20)),
                level,
                msg,
                attrs: [
                    ("request_id".to_string(), id),
                    ("user_id".to_string(), format!("u{}", n % 5_000)),
                ]
                .into(),
                source: format!("file:/var/log/app/{}.log", services[hop % services.len()]),
            });
        }
        i += hops.min(to - i);
    }
    out
}

pub use sluice_testing::files_under as files;

/// Records and raw bytes the sidecars count, and whether `part-` blobs
/// remain (compaction not done).
pub fn filed(root: &Path) -> (u64, u64, bool) {
    let mut records = 0;
    let mut raw = 0;
    let mut parts = false;
    for side in files(root, ".ndjson.gz.idx") {
        parts |= side
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("part-"));
        if let Some(v) = std::fs::read(&side)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            records += v["records"].as_u64().unwrap_or(0);
            raw += v["raw_bytes"].as_u64().unwrap_or(0);
        }
    }
    (records, raw, parts)
}

/// One API call: wall seconds and the answer.
pub fn call(port: u16, path: &str) -> (f64, Value) {
    let start = Instant::now();
    // A cold query on s3s-fs can take longer than a quick client waits.
    let mut answer = sluice_testing::Streaming::open(port, path, &[]).unwrap();
    let mut body = String::new();
    while let Some(line) = answer.line(Duration::from_secs(300)).unwrap() {
        body.push_str(&line);
    }
    let secs = start.elapsed().as_secs_f64();
    let status = answer.status;
    assert_eq!(status, 200, "{path}: {body}");
    (secs, serde_json::from_str(&body).unwrap())
}

/// The median of `runs` calls (warm caches).
pub fn warm(port: u16, path: &str, runs: usize) -> (f64, Value) {
    let mut all: Vec<(f64, Value)> = (0..runs).map(|_| call(port, path)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.swap_remove(runs / 2)
}

pub fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn row(what: &str, figure: String, target: &str, ok: bool) {
    println!(
        "{:<58} {:>28}   target {:<22} {}",
        what,
        figure,
        target,
        if ok { "met" } else { "MISSED" }
    );
}
/// Builds the release binaries, starts the servers, and files the data.
pub fn prepare() -> Corpus {
    let target_bytes = bench_size("BENCH_BYTES", 2_000_000_000);
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.ancestors().nth(3).unwrap().to_path_buf();
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "sluice",
            "-p",
            "sluice-agent",
            "--bins",
        ])
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the release binaries");
    let sluice = target_dir.join("release/sluice");
    let agent_bin = target_dir.join("release/sluice-agent");
    let runtime = bench_runtime();
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (filterer_port, query_port, agent_port, http_port) =
        (free_port(), free_port(), free_port(), free_port());
    let config = tmp.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n{}\
             [filterer]\nid = \"bench\"\nflush_interval_secs = 2\ncompaction_grace_secs = 0\ncompaction_interval_secs = 1\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{filterer_port}\"\n\
             [query]\nlisten = \"127.0.0.1:{query_port}\"\n\
             [agent]\ndata_dir = \"{}\"\n[agent.admin]\nlisten = \"127.0.0.1:{agent_port}\"\n\
             [agent.limits]\nnice = 0\n[agent.http]\nlisten = \"127.0.0.1:{http_port}\"\n",
            nats.url(),
            s3.store_section("bench"),
            tmp.path().join("agent").display(),
        ),
    )
    .unwrap();
    let js = runtime.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        sluice_core::nats::ensure_stream(&js, &nats.config())
            .await
            .unwrap();
        js
    });

    // Generate and publish about `target_bytes` of records.
    let per_record = 280;
    let total = target_bytes / per_record;
    let start = (now_nanos() / NS_PER_HOUR - 25) * NS_PER_HOUR;
    let mut rng = Lcg(2026);
    let began = Instant::now();
    let mut published = 0;
    while published < total {
        let to = (published + 200_000).min(total);
        let recs = chunk(&mut rng, published, to, total, start);
        runtime.block_on(sluice_testing::publish_records(&js, &recs, 300));
        published = to;
    }
    println!(
        "generated and published {total} records in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let filtering = Instant::now();
    let filterer = spawn_bench_role(&sluice, &["filterer"], &config);
    let root = s3.root().join(sluice_testing::S3_BUCKET).join("bench");
    wait_until(Duration::from_secs(3600), "filing and compaction", || {
        std::thread::sleep(Duration::from_secs(2));
        let (records, _, parts) = filed(&root);
        records as usize == total && !parts
    });
    drop(filterer);
    let (_, raw, _) = filed(&root);
    let blobs = files(&root, ".ndjson.gz");
    let stored: u64 = blobs
        .iter()
        .map(|b| std::fs::metadata(b).unwrap().len())
        .sum();
    println!(
        "filed and compacted in {:.1} s: {:.2} GB raw NDJSON in {} blobs, {:.2} GB stored (ratio {:.1})",
        filtering.elapsed().as_secs_f64(),
        raw as f64 / 1e9,
        blobs.len(),
        stored as f64 / 1e9,
        raw as f64 / stored as f64
    );
    // The window would answer what was published minutes ago: purge the
    // stream, as its retention would.
    runtime.block_on(async {
        js.get_stream(&nats.config().stream)
            .await
            .unwrap()
            .purge()
            .await
            .unwrap();
    });

    Corpus {
        runtime,
        nats,
        s3,
        tmp,
        config,
        filterer_port,
        query_port,
        agent_port,
        http_port,
        sluice,
        agent_bin,
        root,
        start,
        total,
        raw,
        blobs,
        js,
    }
}
