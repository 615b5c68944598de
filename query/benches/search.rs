//! The search benchmark: about 2 GB of realistic NDJSON (20 apps × 24
//! hours, request ids shared across services and apps, a few rare needles)
//! filed through the real `sluice filterer` and its compaction into s3s-fs,
//! then, in one run:
//!
//! (a) the limit: every blob decompressed and scanned on every core by the
//!     service's own per-blob code (its line test, parse and match), read
//!     straight from the files; decompression alone is shown too;
//! (b) DuckDB (Python) over the same files with
//!     `read_json_auto(…, hive_partitioning=1)`;
//! (c) `sluice query` (release binary, its own process, started after
//!     filing so its first query is cold; `LOGS` is purged first, so
//!     answers come from the blobs, not the recent window); then records
//!     posted to `sluice-agent`'s HTTP input: the time from its 200 to the
//!     first search finding one, and to its live-tail event.
//!
//! Each row prints the figure, the target and whether it is met.
//! `cargo bench -p sluice-query --bench search` (`BENCH_BYTES` sets the
//! raw size; default 2,000,000,000). It builds the release `sluice` and
//! `sluice-agent` binaries first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::time::{NS_PER_HOUR, NS_PER_SEC};
use sluice_query::search::{Keep, Order, Request, scan};
use sluice_testing::{
    metric_value, process_peak_rss_mib, spawn_bench_role, try_http_get, wait_until,
};

mod corpus;

use corpus::{APPS, NEEDLE, RARE, call, enc, row, warm};

const UNINDEXED: &str = r"/timeout after 9\d\d ms/";

/// A search for `query` over every app and all time, as the service
/// builds it.
fn request(query: &str) -> Request {
    Request {
        query: sluice_query::lang::parse(query).unwrap(),
        level: None,
        service: None,
        apps: (0..APPS).map(|a| format!("app{a:02}")).collect(),
        from_ns: i64::MIN,
        to_ns: i64::MAX,
        limit: 100,
        offset: 0,
        order: Order::Newest,
        after: None,
        exact_count: true,
        deadline: Instant::now() + Duration::from_secs(3600),
    }
}

/// Runs `work` over every blob on every core; seconds and the sum of what
/// it returned.
fn on_all_cores(blobs: &[PathBuf], work: impl Fn(&[u8]) -> u64 + Sync) -> (f64, u64) {
    let next = AtomicUsize::new(0);
    let total = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(path) = blobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let bytes = std::fs::read(path).unwrap();
                    total.fetch_add(work(&bytes), Ordering::Relaxed);
                }
            });
        }
    });
    (start.elapsed().as_secs_f64(), total.load(Ordering::Relaxed))
}

/// (a), the limit for one query: every blob decompressed and scanned with
/// the service's own per-blob code (its line test, parse and match), on
/// every core, straight from the files; seconds and matches.
fn scan_all(blobs: &[PathBuf], query: &str) -> (f64, u64) {
    let request = request(query);
    let filter = request.line_filter();
    let key = object_store::path::Path::from("bench");
    on_all_cores(blobs, |bytes| {
        let scanned = scan(&key, bytes, &request, &filter, Keep::Records);
        assert!(scanned.error.is_none(), "{:?}", scanned.error);
        scanned.matched.len() as u64
    })
}

/// Decompression alone, for reference: seconds and lines.
fn gunzip_all(blobs: &[PathBuf]) -> (f64, u64) {
    on_all_cores(blobs, |bytes| {
        use std::io::Read;
        let mut out = Vec::with_capacity(bytes.len() * 12);
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        memchr::memchr_iter(b'\n', &out).count() as u64
    })
}

/// Posts one record to the agent's HTTP input; when the request was sent,
/// and when its 200 came.
fn post(port: u16, msg: &str) -> (Instant, Instant) {
    use std::io::{Read, Write};
    let body =
        serde_json::json!([{"app": "app00", "service": "api", "level": "info", "message": msg}])
            .to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let sent = Instant::now();
    write!(
        s,
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).unwrap();
    let at = Instant::now();
    assert_eq!(&answer, b"HTTP/1.1 200", "the agent refused the record");
    (sent, at)
}

/// Median and largest of `delays`, in ms.
fn spread(delays: &mut [f64]) -> (f64, f64) {
    delays.sort_by(f64::total_cmp);
    (
        delays[delays.len() / 2] * 1e3,
        delays[delays.len() - 1] * 1e3,
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

fn main() {
    let corpus::Corpus {
        nats: _nats,
        s3: _s3,
        tmp: _tmp,
        config,
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
        ..
    } = corpus::prepare();
    // (a) the limit, per query, and decompression alone.
    let needle_q = format!("request_id:{NEEDLE}");
    let (gunzip_secs, lines) = gunzip_all(&blobs);
    assert_eq!(lines as usize, total, "every record in a blob once");
    let scans: Vec<(f64, u64)> = [needle_q.as_str(), RARE, UNINDEXED]
        .iter()
        .map(|q| scan_all(&blobs, q))
        .collect();
    let counts: Vec<u64> = scans.iter().map(|s| s.1).collect();
    let limit_mbs = |secs: f64| raw as f64 / 1e6 / secs;
    println!(
        "(a) the limit, every blob scanned by the service's per-blob code on every core: needle {:.2} s, rare word {:.2} s, regex {:.2} s = {:.0} MB/s raw (matches {}, {}, {}); decompression alone {gunzip_secs:.2} s = {:.0} MB/s",
        scans[0].0,
        scans[1].0,
        scans[2].0,
        limit_mbs(scans[2].0),
        counts[0],
        counts[1],
        counts[2],
        limit_mbs(gunzip_secs),
    );
    let scan_secs = scans[0].0;

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
    let needle_cached = a["stats"]["blobs_cached"].clone();
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
    let limit_unindexed = limit_mbs(scans[2].0);

    // Fresh records, through the agent's HTTP input: from its 200 to the
    // first search finding the record, and to the tail event.
    let agent = spawn_bench_role(&agent_bin, &[], &config);
    wait_until(Duration::from_secs(30), "the agent", || {
        try_http_get(agent_port, "/ready").is_ok_and(|(s, _)| s == 200)
    });
    let mut fresh = Vec::new();
    for i in 0..7 {
        let word = format!("fresh{i}kiwi");
        let (_, answered) = post(http_port, &format!("a {word} arrived"));
        let path = format!("/api/v1/logs/search?query={word}&app=app00&start_time=now-5m");
        wait_until(Duration::from_secs(30), "the fresh record found", || {
            try_http_get(query_port, &path).is_ok_and(|(s, body)| {
                s == 200 && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["total"] == 1)
            })
        });
        fresh.push(answered.elapsed().as_secs_f64());
    }
    let mut tailed = Vec::new();
    for i in 0..7 {
        let word = format!("tail{i}kiwi");
        let mut events = sluice_testing::Streaming::open(
            query_port,
            &format!("/api/v1/logs/tail?query={word}"),
            &[],
        )
        .unwrap();
        assert_eq!(events.status, 200);
        // The agent answers once the record is on its disk; the tail may
        // have it by then, so the delay is counted from the post.
        let (sent, _) = post(http_port, &format!("a {word} arrived"));
        loop {
            let line = events
                .line(Duration::from_secs(30))
                .unwrap()
                .expect("the tail ended");
            if line.starts_with("data:") && line.contains(&word) {
                break;
            }
        }
        tailed.push(sent.elapsed().as_secs_f64());
    }
    drop(agent);
    let (fresh_median, fresh_max) = spread(&mut fresh);
    let (tail_median, tail_max) = spread(&mut tailed);
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
            "{:.1} ms ({needle_requests} requests, {needle_read} blobs, {needle_cached} in memory)",
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
            "{:.1} ms ({} blobs read, {} requests)",
            common_secs * 1e3,
            c["stats"]["blobs_read"],
            c["stats"]["store_requests"]
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
            "{api_mbs:.0} MB/s = {:.0} % of (a) ({} requests)",
            100.0 * api_mbs / limit_unindexed,
            u["stats"]["store_requests"]
        ),
        ">= 60 % of (a)",
        api_mbs >= 0.6 * limit_unindexed,
    );
    row(
        "fresh record: agent's 200 to the first search finding it",
        format!("median {fresh_median:.0} ms, max {fresh_max:.0} ms"),
        "<= 1000 ms",
        fresh_max <= 1000.0,
    );
    row(
        "tail: post to the agent to the event",
        format!("median {tail_median:.0} ms, max {tail_max:.0} ms"),
        "<= 1000 ms",
        tail_max <= 1000.0,
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
