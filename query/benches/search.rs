//! The search benchmark: about 2 GB of realistic NDJSON (20 apps × 24
//! hours, request ids shared across services and apps, a few rare needles)
//! filed through the real `sluice filterer` and its compaction into s3s-fs,
//! then, in one run:
//!
//! (a) the limit: decompress and scan every blob on every core, doing what
//!     the service does per line (parse the record, match the query);
//! (b) DuckDB (Python) over the same files with
//!     `read_json_auto(…, hive_partitioning=1)`;
//! (c) `sluice query` (release binary, its own process, started after
//!     filing so its first query is cold; `LOGS` is purged first, so
//!     answers come from the blobs, not the recent window).
//!
//! Each row prints the figure, the target and whether it is met.
//! `cargo bench -p sluice-query --bench search` (`BENCH_BYTES` sets the
//! raw size; default 2,000,000,000). It builds the release `sluice` binary
//! first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::time::{NS_PER_HOUR, NS_PER_SEC, now_nanos};
use sluice_core::{Level, Record};
use sluice_testing::{
    Lcg, NatsServer, S3Server, bench_runtime, bench_size, free_port, metric_value,
    process_peak_rss_mib, spawn_bench_role, try_http_get, wait_until,
};

const APPS: usize = 20;
const NEEDLE: &str = "req-needle-7";
const RARE: &str = "zanzibar";
const UNINDEXED: &str = r"/timeout after 9\d\d ms/";

/// Records `from..to` of `total`, spread evenly over 24 hours from
/// `start`: requests of 3 to 6 records across services (and sometimes
/// apps) share a request id; a needle request and a rare word appear a few
/// times.
fn chunk(rng: &mut Lcg, from: usize, to: usize, total: usize, start: i64) -> Vec<Record> {
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

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
}

/// Records and raw bytes the sidecars count, and whether `part-` blobs
/// remain (compaction not done).
fn filed(root: &Path) -> (u64, u64, bool) {
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

/// (a): every blob decompressed, every line parsed and matched against
/// each query, on every core; seconds and the matches per query.
fn scan_all(blobs: &[PathBuf], queries: &[&str]) -> (f64, Vec<u64>) {
    let exprs: Arc<Vec<_>> = Arc::new(
        queries
            .iter()
            .map(|q| sluice_query::lang::parse(q).unwrap())
            .collect(),
    );
    let counts: Arc<Vec<AtomicU64>> = Arc::new(queries.iter().map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let blobs = Arc::new(blobs.to_vec());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (exprs, counts, next, blobs) =
                (exprs.clone(), counts.clone(), next.clone(), blobs.clone());
            std::thread::spawn(move || {
                use std::io::BufRead;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = blobs.get(i) else { break };
                    let bytes = std::fs::read(path).unwrap();
                    let mut reader = std::io::BufReader::with_capacity(
                        256 << 10,
                        flate2::read::MultiGzDecoder::new(bytes.as_slice()),
                    );
                    let mut line = Vec::new();
                    while reader.read_until(b'\n', &mut line).unwrap() > 0 {
                        if let Ok(r) = serde_json::from_slice::<Record>(line.trim_ascii_end()) {
                            for (e, c) in exprs.iter().zip(counts.iter()) {
                                if e.matches(&r) {
                                    c.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        line.clear();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (
        secs,
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
    )
}

/// (b): DuckDB over the blob files; seconds and the count per SQL filter.
fn duckdb(root: &Path, filters: &[&str]) -> Vec<(f64, u64)> {
    let script = format!(
        r#"
import duckdb, json, sys, time
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
src = "read_json_auto('{}/app=*/dt=*/hour=*/*.ndjson.gz', hive_partitioning=1, format='newline_delimited')"
out = []
for f in json.loads(sys.argv[1]):
    t = time.time()
    n = con.execute(f"SELECT count(*) FROM {{src}} WHERE {{f}}").fetchone()[0]
    out.append([time.time() - t, n])
print(json.dumps(out))
"#,
        root.display()
    );
    let output = Command::new("python3")
        .args(["-c", &script, &serde_json::to_string(filters).unwrap()])
        .output()
        .expect("python3 with duckdb (./dev/setup --test installs it)");
    assert!(
        output.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("duckdb printed {stdout:?}: {e}"))
}

/// One API call: wall seconds and the answer.
fn call(port: u16, path: &str) -> (f64, Value) {
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
fn warm(port: u16, path: &str, runs: usize) -> (f64, Value) {
    let mut all: Vec<(f64, Value)> = (0..runs).map(|_| call(port, path)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.swap_remove(runs / 2)
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn row(what: &str, figure: String, target: &str, ok: bool) {
    println!(
        "{:<58} {:>28}   target {:<22} {}",
        what,
        figure,
        target,
        if ok { "met" } else { "MISSED" }
    );
}

fn main() {
    let target_bytes = bench_size("BENCH_BYTES", 2_000_000_000);
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.ancestors().nth(3).unwrap().to_path_buf();
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "sluice", "--bin", "sluice"])
        .status()
        .unwrap();
    assert!(built.success(), "cannot build the release sluice binary");
    let sluice = target_dir.join("release/sluice");
    let runtime = bench_runtime();
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (filterer_port, query_port) = (free_port(), free_port());
    let config = tmp.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n{}\
             [filterer]\nid = \"bench\"\nflush_interval_secs = 2\ncompaction_grace_secs = 0\ncompaction_interval_secs = 1\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{filterer_port}\"\n\
             [query]\nlisten = \"127.0.0.1:{query_port}\"\n",
            nats.url(),
            s3.store_section("bench"),
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

    // (a) the limit.
    let needle_q = format!("request_id:{NEEDLE}");
    let (scan_secs, counts) = scan_all(&blobs, &[&needle_q, RARE, UNINDEXED]);
    let limit_mbs = raw as f64 / 1e6 / scan_secs;
    println!(
        "(a) the limit: every blob decompressed, parsed and matched on every core: {scan_secs:.2} s, {limit_mbs:.0} MB/s raw (needle {}, rare word {}, unindexed {} matches)",
        counts[0], counts[1], counts[2]
    );

    // (b) DuckDB.
    let duck = duckdb(
        &root,
        &[
            &format!("attrs.request_id = '{NEEDLE}'"),
            &format!("regexp_matches(msg, '\\b{RARE}\\b')"),
            r"regexp_matches(msg, 'timeout after 9\d\d ms')",
        ],
    );
    println!(
        "(b) DuckDB read_json_auto over the same files: needle {:.2} s ({}), rare word {:.2} s ({}), regex {:.2} s ({})",
        duck[0].0, duck[0].1, duck[1].0, duck[1].1, duck[2].0, duck[2].1
    );

    // (c) Sluice.
    let query = spawn_bench_role(&sluice, &["query"], &config);
    wait_until(Duration::from_secs(30), "the query service", || {
        try_http_get(query_port, "/ready").is_ok_and(|(s, _)| s == 200)
    });
    let needle = format!("/api/v1/logs/search?query={}&limit=100", enc(&needle_q));
    let (cold, a) = call(query_port, &needle);
    assert_eq!(
        a["total"], counts[0],
        "the needle's matches: {}",
        a["stats"]
    );
    let cold_requests = a["stats"]["store_requests"].clone();
    let (hot, a) = warm(query_port, &needle, 7);
    let needle_requests = a["stats"]["store_requests"].clone();
    let needle_read = a["stats"]["blobs_read"].clone();
    let rare = format!("/api/v1/logs/search?query={RARE}&limit=100");
    let (rare_secs, r) = warm(query_port, &rare, 5);
    assert_eq!(r["total"], counts[1], "{}", r["stats"]);
    let common = "/api/v1/logs/search?query=order&app=app03&limit=100";
    let (common_secs, c) = warm(query_port, common, 5);
    assert_eq!(c["logs"].as_array().unwrap().len(), 100);
    let hits = format!(
        "/api/v1/logs/hits?app=app03&by=level&step=5m&start_time={}&end_time={}",
        start / NS_PER_SEC,
        (start + 24 * NS_PER_HOUR) / NS_PER_SEC
    );
    let (hits_secs, h) = warm(query_port, &hits, 5);
    let unindexed = format!(
        "/api/v1/logs/search?query={}&limit=100&count=exact",
        enc(UNINDEXED)
    );
    let (scan_api_secs, u) = call(query_port, &unindexed);
    assert_eq!(u["total"], counts[2], "{}", u["stats"]);
    let scanned_mb = raw as f64 / 1e6;
    let api_mbs = scanned_mb / scan_api_secs;
    let rss = process_peak_rss_mib(query.0.id());
    let metrics = try_http_get(query_port, "/metrics").unwrap().1;
    let requests_total = metric_value(&metrics, "sluice_query_store_requests_total");

    println!();
    row(
        "needle by request id, all apps, cold",
        format!("{:.0} ms ({cold_requests} store requests)", cold * 1e3),
        "<= 1500 ms",
        cold <= 1.5,
    );
    row(
        "needle by request id, all apps, warm",
        format!(
            "{:.1} ms ({needle_requests} requests, {needle_read} blobs)",
            hot * 1e3
        ),
        "<= 100 ms",
        hot <= 0.1,
    );
    row(
        "needle: faster than (a) the full scan",
        format!("{:.0}x", scan_secs / hot),
        ">= 20x",
        scan_secs / hot >= 20.0,
    );
    row(
        "needle: faster than (b) DuckDB",
        format!("{:.0}x", duck[0].0 / hot),
        ">= 50x",
        duck[0].0 / hot >= 50.0,
    );
    row(
        "rare word, all apps, warm",
        format!(
            "{:.1} ms ({} requests)",
            rare_secs * 1e3,
            r["stats"]["store_requests"]
        ),
        "<= 300 ms",
        rare_secs <= 0.3,
    );
    row(
        "newest 100 of a common word, one app, warm",
        format!(
            "{:.1} ms ({} blobs read)",
            common_secs * 1e3,
            c["stats"]["blobs_read"]
        ),
        "<= 200 ms",
        common_secs <= 0.2,
    );
    let hits_index = h["index_only"] == true && h["stats"]["blobs_read"] == 0;
    row(
        "level histogram, one app, 24 h in 5 min steps",
        format!(
            "{:.1} ms (blobs read {})",
            hits_secs * 1e3,
            h["stats"]["blobs_read"]
        ),
        "<= 50 ms, none read",
        hits_secs <= 0.05 && hits_index,
    );
    row(
        "a query no index helps (regex), all apps",
        format!(
            "{api_mbs:.0} MB/s = {:.0} % of (a)",
            100.0 * api_mbs / limit_mbs
        ),
        ">= 60 % of (a)",
        api_mbs >= 0.6 * limit_mbs,
    );
    row(
        "query service peak RSS",
        format!("{rss:.0} MiB"),
        "<= 300 MiB",
        rss <= 300.0,
    );
    println!("store requests over the whole run: {requests_total}");
    drop(query);
}
