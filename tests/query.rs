//! Exact answers: records posted to `sluice-agent` over HTTP, through
//! `LOGS` and `sluice filterer` (with compaction) into s3s-fs, then
//! searched through `sluice query`. For 30 queries covering every feature
//! of the language, the ids answered equal those found by a naive scan of
//! the stored blobs (read straight from s3s-fs's directory, decoded as
//! plain JSON, matched by hand-written predicates).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_testing::{Lcg, NatsServer, S3Server, Streaming, try_http_get_as, wait_until};
use sluice_tests::{filed, files, post, stack};

const RECORDS: usize = 200_000;
const APPS: [&str; 4] = ["shop", "billing", "ledger", "search"];
const SERVICES: [&str; 5] = ["api", "web", "worker", "checkout", "db"];
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
const HOUR_MS: u64 = 3_600_000;

/// The posted bodies' records: 4 apps, 5 services, 6 hours ending an hour
/// ago.
fn generate(start_ms: u64) -> Vec<Value> {
    let mut r = Lcg(7);
    (0..RECORDS)
        .map(|i| {
            let n = r.next(100_000);
            let msg = match r.next(9) {
                0 => format!("payment declined for order {n}"),
                1 => format!("order {n} created"),
                2 => "timeout talking to warehouse".to_string(),
                3 => "timed out waiting for lock".to_string(),
                4 => "refund issued to user".to_string(),
                5 => format!("cache miss for key k{}", n % 100),
                6 => "user logged in".to_string(),
                7 => "Payment DECLINED by bank".to_string(),
                _ => "paid in full".to_string(),
            };
            let msg = if i % 40_000 == 17 {
                format!("{msg} zebra crossing")
            } else {
                msg
            };
            let mut metadata = json!({
                "request_id": format!("req-{}", r.next(5_000)),
                "user": format!("u-{}", r.next(50)),
            });
            if r.next(10) == 0 {
                metadata["trace_id"] = json!(format!("4bf{:06x}", r.next(1 << 24)));
            }
            let ms = start_ms + r.next(6 * HOUR_MS);
            json!({
                "app": APPS[r.next(4) as usize],
                "service": SERVICES[r.next(5) as usize],
                "host": format!("web-{}", r.next(3) + 1),
                "level": LEVELS[r.next(6) as usize],
                "message": msg,
                "timestamp": humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(ms)
                ).to_string(),
                "metadata": metadata,
            })
        })
        .collect()
}

/// Every stored record, read from the blobs as plain JSON, once per id.
fn naive_scan(root: &Path) -> Vec<Value> {
    let mut by_id = BTreeMap::new();
    for blob in files(root, ".ndjson.gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&blob).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            by_id.insert(v["id"].as_str().unwrap().to_string(), v);
        }
    }
    by_id.into_values().collect()
}

/// Words as the language defines them, written again here: runs of ASCII
/// letters and digits, lower-cased, two characters or more.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 2)
        .map(str::to_lowercase)
        .collect()
}

fn texts(r: &Value) -> Vec<String> {
    let mut out = vec![r["msg"].as_str().unwrap_or("").to_string()];
    if let Some(attrs) = r["attrs"].as_object() {
        out.extend(attrs.values().filter_map(|v| v.as_str().map(String::from)));
    }
    out
}

fn has_phrase(r: &Value, phrase: &str) -> bool {
    let want = words(phrase);
    texts(r)
        .iter()
        .any(|t| words(t).windows(want.len()).any(|w| w == want.as_slice()))
}

fn has_prefix(r: &Value, prefix: &str) -> bool {
    texts(r)
        .iter()
        .any(|t| words(t).iter().any(|w| w.starts_with(prefix)))
}

fn field<'a>(r: &'a Value, name: &str) -> &'a str {
    r[name].as_str().unwrap_or("")
}

fn attr<'a>(r: &'a Value, name: &str) -> Option<&'a str> {
    r["attrs"][name].as_str()
}

/// A record's time, in ns since the epoch (it is stored as RFC 3339).
fn ts(r: &Value) -> i64 {
    let t = humantime::parse_rfc3339(r["ts"].as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn rank(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
        .unwrap()
}

type Check = Box<dyn Fn(&Value) -> bool>;

/// The 30 queries (with their extra parameters) and what they mean.
fn queries(sample: &Value, source: String) -> Vec<(String, Check)> {
    let id = field(sample, "id").to_string();
    let request = attr(sample, "request_id").unwrap().to_string();
    let in_range = |from: i64, to: i64| {
        move |r: &Value| {
            let at = ts(r);
            at >= from && at < to
        }
    };
    let mid = ts(sample);
    let (from, to) = (mid - 1_800_000_000_000, mid + 1_800_000_000_000);
    let q = |text: &str| format!("query={}", urlencode(text));
    vec![
        (
            q("payment"),
            Box::new(|r: &Value| has_phrase(r, "payment")) as Check,
        ),
        (
            q("payment declined"),
            Box::new(|r: &Value| has_phrase(r, "payment") && has_phrase(r, "declined")),
        ),
        (
            q("\"payment declined\""),
            Box::new(|r: &Value| has_phrase(r, "payment declined")),
        ),
        (q("pay*"), Box::new(|r: &Value| has_prefix(r, "pay"))),
        (
            q("-payment"),
            Box::new(|r: &Value| !has_phrase(r, "payment")),
        ),
        (
            q("NOT cache"),
            Box::new(|r: &Value| !has_phrase(r, "cache")),
        ),
        (
            q("timeout OR refund"),
            Box::new(|r: &Value| has_phrase(r, "timeout") || has_phrase(r, "refund")),
        ),
        (
            q("(timeout OR refund) AND service:api"),
            Box::new(|r: &Value| {
                (has_phrase(r, "timeout") || has_phrase(r, "refund"))
                    && field(r, "service") == "api"
            }),
        ),
        (
            q("app:billing"),
            Box::new(|r: &Value| field(r, "app") == "billing"),
        ),
        (
            q("service:worker"),
            Box::new(|r: &Value| field(r, "service") == "worker"),
        ),
        (
            q("host:WEB-2"),
            Box::new(|r: &Value| field(r, "host") == "web-2"),
        ),
        (
            q("level:error"),
            Box::new(|r: &Value| field(r, "level") == "ERROR"),
        ),
        (
            q("level:>=warn"),
            Box::new(|r: &Value| rank(field(r, "level")) >= 3),
        ),
        (
            q("level:<info"),
            Box::new(|r: &Value| rank(field(r, "level")) < 2),
        ),
        (
            q(&format!("source:\"{source}\"")),
            Box::new(move |r: &Value| field(r, "source") == source),
        ),
        (
            q(&format!("request_id:{request}")),
            Box::new(move |r: &Value| attr(r, "request_id") == Some(request.as_str())),
        ),
        (
            q("user:u-7"),
            Box::new(|r: &Value| attr(r, "user") == Some("u-7")),
        ),
        (
            q("/timed? out/"),
            Box::new(|r: &Value| {
                let m = field(r, "msg");
                m.contains("timed out") || m.contains("time out")
            }),
        ),
        (
            q("service:/^(api|web)$/"),
            Box::new(|r: &Value| matches!(field(r, "service"), "api" | "web")),
        ),
        (q("zebra"), Box::new(|r: &Value| has_phrase(r, "zebra"))),
        (
            q(&format!("id:{id}")),
            Box::new(move |r: &Value| field(r, "id") == id),
        ),
        (
            q("app:shop -level:info"),
            Box::new(|r: &Value| field(r, "app") == "shop" && field(r, "level") != "INFO"),
        ),
        (
            q("DECLINED"),
            Box::new(|r: &Value| has_phrase(r, "declined")),
        ),
        (
            q("msg:user"),
            Box::new(|r: &Value| words(field(r, "msg")).contains(&"user".to_string())),
        ),
        (
            q("trace_id:4bf*"),
            Box::new(|r: &Value| attr(r, "trace_id").is_some_and(|t| t.starts_with("4bf"))),
        ),
        (
            q("(service:api OR service:web) level:error"),
            Box::new(|r: &Value| {
                matches!(field(r, "service"), "api" | "web") && field(r, "level") == "ERROR"
            }),
        ),
        (
            q("NOT (app:shop OR app:billing)"),
            Box::new(|r: &Value| !matches!(field(r, "app"), "shop" | "billing")),
        ),
        (
            format!("{}&app=ledger&level=warn", q("refund -host:web-1")),
            Box::new(|r: &Value| {
                has_phrase(r, "refund")
                    && field(r, "host") != "web-1"
                    && field(r, "app") == "ledger"
                    && rank(field(r, "level")) >= 3
            }),
        ),
        (
            format!("{}&service=db,checkout", q("\"cache miss\" k42")),
            Box::new(|r: &Value| {
                has_phrase(r, "cache miss")
                    && has_phrase(r, "k42")
                    && matches!(field(r, "service"), "db" | "checkout")
            }),
        ),
        (
            format!("{}&start_time={from}&end_time={to}", q("order")),
            Box::new(move |r: &Value| has_phrase(r, "order") && in_range(from, to)(r)),
        ),
    ]
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn search(port: u16, params: &str) -> Value {
    let (status, body) =
        try_http_get_as(port, &format!("/api/v1/logs/search?{params}"), None).unwrap();
    assert_eq!(status, 200, "{params}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_record_posted_to_the_agent_is_found_before_it_is_filed_and_once_after() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval, and listings never reused, so the search
    // after the flush reads the new blob.
    let stack = stack(&nats, &s3, dir.path(), 20, "listing_cache_secs = 0\n");
    let body = json!([{
        "app": "shop",
        "service": "api",
        "level": "warn",
        "message": "a fresh quokka arrived",
        "metadata": {"request_id": "req-quokka"},
    }]);
    post(stack.http, serde_json::to_vec(&body).unwrap().as_slice());
    let answered = std::time::Instant::now();
    let mut found = Value::Null;
    wait_until(Duration::from_secs(10), "the fresh record found", || {
        found = search(stack.query, "query=quokka");
        found["total"] == 1
    });
    let delay = answered.elapsed();
    assert!(
        files(&stack.root, ".ndjson.gz").is_empty(),
        "filed already: the window was not what answered"
    );
    assert_eq!(found["stats"]["recent_matched"], 1, "{found}");
    assert_eq!(found["stats"]["blobs_read"], 0, "{found}");
    assert!(
        delay < Duration::from_secs(5),
        "found {delay:?} after the 200"
    );
    let id = found["logs"][0]["id"].clone();

    wait_until(Duration::from_secs(60), "the record filed", || {
        std::thread::sleep(Duration::from_millis(200));
        filed(&stack.root).0 == 1
    });
    let after = search(stack.query, "query=quokka&count=exact");
    assert_eq!(after["total"], 1, "{after}");
    assert_eq!(after["logs"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["logs"][0]["id"], id, "{after}");
    assert_eq!(after["stats"]["blobs_read"], 1, "in the blob too: {after}");
    assert_eq!(
        after["stats"]["recent_matched"], 1,
        "and in the window: {after}"
    );
}

#[test]
fn thirty_queries_answer_exactly_what_a_naive_scan_of_the_blobs_finds() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = stack(&nats, &s3, dir.path(), 1, "");
    let (http, query, root) = (stack.http, stack.query, stack.root.clone());

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start_ms = (now_ms / HOUR_MS - 7) * HOUR_MS;
    let posted = generate(start_ms);
    for batch in posted.chunks(5_000) {
        post(http, serde_json::to_vec(batch).unwrap().as_slice());
    }
    // Filed, and compaction settled: every record counted, the blobs
    // unchanged for a few seconds.
    let mut last = (0, 0);
    let mut steady = 0;
    wait_until(
        Duration::from_secs(180),
        "every record filed and compacted",
        || {
            let now = filed(&root);
            steady = if now == last && now.0 as usize == RECORDS {
                steady + 1
            } else {
                0
            };
            last = now;
            if steady < 6 {
                std::thread::sleep(Duration::from_millis(500));
            }
            steady >= 6
        },
    );
    let stored = naive_scan(&root);
    assert_eq!(stored.len(), RECORDS, "every posted record is stored once");
    let source = field(&stored[0], "source").to_string();
    let sample = stored
        .iter()
        .find(|r| field(r, "app") == "ledger" && attr(r, "request_id").is_some())
        .unwrap()
        .clone();

    let mut report = Vec::new();
    for (params, check) in queries(&sample, source) {
        let want: BTreeSet<String> = stored
            .iter()
            .filter(|r| check(r))
            .map(|r| field(r, "id").to_string())
            .collect();
        // Every match, streamed.
        let mut export =
            Streaming::open(query, &format!("/api/v1/logs/export?{params}"), &[]).unwrap();
        assert_eq!(export.status, 200, "{params}");
        let mut got = BTreeSet::new();
        while let Some(line) = export.line(Duration::from_secs(60)).unwrap() {
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            assert!(v.get("partial").is_none(), "{params}: {line}");
            assert!(
                got.insert(v["id"].as_str().unwrap().to_string()),
                "{params}: {line} twice"
            );
        }
        assert_eq!(got.len(), want.len(), "{params}");
        assert!(got == want, "{params}: the ids differ");
        // The count, and the first page.
        let (status, body) = try_http_get_as(
            query,
            &format!("/api/v1/logs/search?{params}&count=exact&limit=50"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{params}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["total"], want.len(), "{params}: {}", answer["stats"]);
        assert_eq!(answer["total_exact"], true, "{params}");
        let page: Vec<&str> = answer["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| field(r, "id"))
            .collect();
        let mut newest: Vec<&Value> = stored.iter().filter(|r| check(r)).collect();
        newest.sort_by_key(|r| std::cmp::Reverse((ts(r), field(r, "id").to_string())));
        let want_page: Vec<&str> = newest.iter().take(50).map(|r| field(r, "id")).collect();
        assert_eq!(page, want_page, "{params}: the newest 50, in order");
        report.push(format!(
            "{:>7} {:>5} blobs read of {:>4} {}",
            want.len(),
            answer["stats"]["blobs_read"],
            answer["stats"]["blobs_considered"],
            params
        ));
    }
    println!("{}", report.join("\n"));
}
