//! The endpoints besides search — export, hits, tail, context, request
//! stitching, aggregates, errors, apps — against a real nats-server,
//! s3s-fs and aggregator: what each answers, what bad input gets, and that
//! a token for one app never sees a record, count, group or tail event of
//! another.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{BASE, Harness, file_clean, ids_of, open_stream, records};
use sluice_core::layout::Partition;
use sluice_core::time::{NS_PER_HOUR, NS_PER_SEC, now_nanos};
use sluice_core::{Level, Record};
use sluice_testing::{publish_records, wait_for};

const MS: i64 = 1_000_000;
const REQUEST: &str = "req-stitch-42";

/// One request's path: 3 apps, 5 services, a trace id on one record.
fn stitched() -> Vec<Record> {
    let t0 = BASE + NS_PER_HOUR + 30 * 60 * NS_PER_SEC;
    let hop = |n: i64, app: &str, service: &str, level: Level, key: &str| {
        let mut attrs = BTreeMap::new();
        attrs.insert(key.to_string(), REQUEST.to_string());
        Record {
            id: format!("01JSTITCH{n:017}"),
            ts: t0 + n * MS,
            app: app.into(),
            service: service.into(),
            host: "web-1".into(),
            level,
            msg: format!("hop {n} of the request"),
            attrs,
            source: "http".into(),
        }
    };
    vec![
        hop(0, "shop", "web", Level::Info, "request_id"),
        hop(5, "shop", "checkout", Level::Info, "request_id"),
        hop(8, "shop", "checkout", Level::Warn, "request_id"),
        hop(20, "billing", "billing", Level::Error, "request_id"),
        hop(40, "ledger", "worker", Level::Info, "request_id"),
        hop(41, "ledger", "api", Level::Debug, "trace_id"),
        hop(60, "shop", "web", Level::Info, "request_id"),
    ]
}

fn all_records() -> Vec<Record> {
    let mut all = records();
    all.extend(stitched());
    all
}

/// Reads an NDJSON answer to its end.
async fn read_ndjson(mut stream: sluice_testing::Streaming) -> Vec<serde_json::Value> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        while let Some(line) = stream.line(Duration::from_secs(20)).unwrap() {
            if !line.is_empty() {
                out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
            }
        }
        out
    })
    .await
    .unwrap()
}

/// Apps of the records of a JSON array.
fn apps_in(values: &[serde_json::Value]) -> BTreeSet<String> {
    values
        .iter()
        .map(|r| r["app"].as_str().unwrap_or("(none)").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_only_from_the_tokens_apps() {
    let h = Harness::start(true, "").await;
    let all = all_records();
    publish_records(&h.js, &all, 50).await;
    file_clean(&h.store, &all).await;
    let range = format!(
        "start_time={}&end_time={}",
        BASE / NS_PER_SEC,
        (BASE + 4 * NS_PER_HOUR) / NS_PER_SEC
    );
    // The window holds every record, and the aggregator counted each once.
    let aggregates = format!("/api/v1/aggregates?{range}");
    wait_for(
        Duration::from_secs(30),
        "the aggregator's counts",
        async || {
            let (status, a) = h.get(&aggregates, Some("all")).await;
            status == 200 && a["total"] == all.len()
        },
    )
    .await;
    let (_, every) = h.get("/api/v1/errors?limit=10000", Some("all")).await;
    let groups = every["errors"].as_array().unwrap().clone();

    for (me, other) in [("shop", "billing"), ("billing", "shop")] {
        let mine: Vec<&Record> = all.iter().filter(|r| r.app == me).collect();
        let theirs: Vec<&Record> = all.iter().filter(|r| r.app == other).collect();
        let who = Some(me);

        let (status, a) = h
            .get("/api/v1/logs/search?limit=10000&count=exact", who)
            .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["total"], mine.len(), "{me}: {}", a["stats"]);
        assert_eq!(
            apps_in(a["logs"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );

        let (status, a) = h
            .get(&format!("/api/v1/logs/search?app={other}"), who)
            .await;
        assert_eq!(status, 403, "{a}");
        assert!(a["error"].as_str().unwrap().contains(other), "{a}");

        let exported =
            read_ndjson(open_stream(h.port, "/api/v1/logs/export", who, &[]).await).await;
        assert_eq!(exported.len(), mine.len());
        assert_eq!(apps_in(&exported), BTreeSet::from([me.to_string()]));

        let (status, a) = h
            .get(
                &format!("/api/v1/logs/hits?{range}&by=service&step=10m"),
                who,
            )
            .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["total"], mine.len(), "{a}");
        let services: BTreeSet<&str> = mine.iter().map(|r| r.service.as_str()).collect();
        for series in a["series"].as_array().unwrap() {
            assert!(
                services.contains(series["group"].as_str().unwrap()),
                "{series}"
            );
        }

        let (status, a) = h
            .get(&format!("/api/v1/logs/{}/context", mine[10].id), who)
            .await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(
            apps_in(a["logs"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );
        let (status, a) = h
            .get(&format!("/api/v1/logs/{}/context", theirs[10].id), who)
            .await;
        assert_eq!(status, 404, "{a}");

        let (status, a) = h.get(&format!("/api/v1/requests/{REQUEST}"), who).await;
        assert_eq!(status, 200, "{a}");
        let part = stitched().iter().filter(|r| r.app == me).count();
        assert_eq!(a["logs"].as_array().unwrap().len(), part, "{a}");
        assert_eq!(
            apps_in(a["logs"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );
        assert_eq!(
            apps_in(a["spans"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );

        let (status, a) = h.get(&aggregates, who).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["total"], mine.len(), "{a}");
        assert_eq!(
            apps_in(a["rows"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );

        let (status, a) = h.get("/api/v1/errors", who).await;
        assert_eq!(status, 200, "{a}");
        let errors = a["errors"].as_array().unwrap();
        assert!(!errors.is_empty(), "{me} has error records, so groups");
        assert_eq!(apps_in(errors), BTreeSet::from([me.to_string()]));
        let foreign = groups
            .iter()
            .find(|g| g["app"] == other)
            .expect("groups of the other app");
        let fp = foreign["fingerprint"].as_str().unwrap();
        let (status, _) = h.get(&format!("/api/v1/errors/{fp}"), who).await;
        assert_eq!(status, 404);
        let own = errors[0]["fingerprint"].as_str().unwrap();
        let (status, a) = h.get(&format!("/api/v1/errors/{own}"), who).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(
            apps_in(a["groups"].as_array().unwrap()),
            BTreeSet::from([me.to_string()])
        );

        let (_, a) = h.get("/api/v1/apps", who).await;
        assert_eq!(a["apps"], serde_json::json!([me]));
    }

    // Live tail: each token gets only its app's new records.
    let mut tails = Vec::new();
    for me in ["shop", "billing"] {
        let tail = open_stream(h.port, "/api/v1/logs/tail?query=papaya", Some(me), &[]).await;
        assert_eq!(tail.status, 200);
        tails.push((me, tail));
    }
    let fresh: Vec<Record> = ["shop", "billing", "shop", "billing"]
        .iter()
        .enumerate()
        .map(|(i, app)| {
            let mut r = all[0].clone();
            r.id = format!("01JPAPAYA{i:017}");
            r.app = app.to_string();
            r.ts = now_nanos();
            r.msg = format!("papaya {i}");
            r
        })
        .collect();
    publish_records(&h.js, &fresh, 1).await;
    for (me, mut tail) in tails {
        let got = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            while got.len() < 3 {
                match tail.event(Duration::from_secs(2)) {
                    Ok(Some(e)) => {
                        got.push(serde_json::from_str::<serde_json::Value>(&e.data).unwrap())
                    }
                    _ => break,
                }
            }
            got
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 2, "{me}: {got:?}");
        assert_eq!(apps_in(&got), BTreeSet::from([me.to_string()]));
    }

    // Without a token, every endpoint is refused.
    for path in [
        "/api/v1/logs/search",
        "/api/v1/logs/export",
        "/api/v1/logs/hits",
        "/api/v1/logs/tail",
        "/api/v1/logs/01JTEST0000000000000000001/context",
        "/api/v1/requests/req-1",
        "/api/v1/aggregates",
        "/api/v1/errors",
        "/api/v1/errors/0123456789abcdef",
        "/api/v1/apps",
    ] {
        let (status, a) = h.get(path, None).await;
        assert_eq!(status, 401, "{path}: {a}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_stitched_across_apps_and_services() {
    let h = Harness::start(false, "").await;
    let all = all_records();
    file_clean(&h.store, &all).await;
    let (status, a) = h
        .get(&format!("/api/v1/requests/{REQUEST}"), Some("all"))
        .await;
    assert_eq!(status, 200, "{a}");
    let expected: Vec<String> = stitched().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids_of(&a["logs"]), expected, "every record, in time order");
    let spans: Vec<(String, String, u64, String, f64, f64)> = a["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["app"].as_str().unwrap().to_string(),
                s["service"].as_str().unwrap().to_string(),
                s["count"].as_u64().unwrap(),
                s["level"].as_str().unwrap().to_string(),
                s["duration_ms"].as_f64().unwrap(),
                s["gap_before_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    let span = |app: &str, service: &str, count, level: &str, duration, gap| {
        (
            app.to_string(),
            service.to_string(),
            count,
            level.to_string(),
            duration,
            gap,
        )
    };
    assert_eq!(
        spans,
        [
            span("shop", "web", 2, "INFO", 60.0, 0.0),
            span("shop", "checkout", 2, "WARN", 3.0, 0.0),
            span("billing", "billing", 1, "ERROR", 0.0, 0.0),
            span("ledger", "worker", 1, "INFO", 0.0, 0.0),
            span("ledger", "api", 1, "DEBUG", 0.0, 0.0),
        ]
    );
    // The request's bloom value token keeps the rest of the blobs unread.
    assert!(
        a["stats"]["skipped_by_bloom"].as_u64().unwrap() > 0,
        "{}",
        a["stats"]
    );
    // Asked again, the same answer from the bodies kept in memory, with
    // fewer store requests.
    let (_, again) = h
        .get(&format!("/api/v1/requests/{REQUEST}"), Some("all"))
        .await;
    assert_eq!(ids_of(&again["logs"]), expected);
    let read = a["stats"]["blobs_read"].as_u64().unwrap();
    assert!(read > 0, "{}", a["stats"]);
    assert_eq!(a["stats"]["blobs_cached"], 0, "{}", a["stats"]);
    assert_eq!(again["stats"]["blobs_cached"], read, "{}", again["stats"]);
    assert!(
        again["stats"]["store_requests"].as_u64().unwrap() + read
            <= a["stats"]["store_requests"].as_u64().unwrap(),
        "{} then {}",
        a["stats"],
        again["stats"]
    );
    // One app's token sees its part only.
    let (_, a) = h
        .get(&format!("/api/v1/requests/{REQUEST}"), Some("billing"))
        .await;
    assert_eq!(ids_of(&a["logs"]), [expected[3].clone()]);
    assert_eq!(a["spans"].as_array().unwrap().len(), 1);
    // Bad values.
    let long = "x".repeat(300);
    let (status, a) = h
        .get(&format!("/api/v1/requests/{long}"), Some("all"))
        .await;
    assert_eq!(status, 400, "{a}");
    let (status, _) = h.get("/api/v1/requests/req-1?limit=0", Some("all")).await;
    assert_eq!(status, 400);
    h.stop().await;
}

/// Counts per (step start in s, group) of the records `keep` accepts.
fn naive_hits(
    records: &[Record],
    step: i64,
    group: impl Fn(&Record) -> String,
    keep: impl Fn(&Record) -> bool,
) -> BTreeMap<(i64, String), u64> {
    let mut out = BTreeMap::new();
    for r in records.iter().filter(|r| keep(r)) {
        *out.entry((r.ts.div_euclid(step) * step / NS_PER_SEC, group(r)))
            .or_default() += 1;
    }
    out
}

fn hits_of(a: &serde_json::Value) -> BTreeMap<(i64, String), u64> {
    let times: Vec<i64> = a["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let mut out = BTreeMap::new();
    for series in a["series"].as_array().unwrap() {
        let group = series["group"].as_str().unwrap().to_string();
        for (t, v) in times.iter().zip(series["values"].as_array().unwrap()) {
            let v = v.as_u64().unwrap();
            if v > 0 {
                out.insert((*t, group.clone()), v);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_equal_a_count_of_every_record_and_need_no_blob_without_text() {
    let h = Harness::start(false, "").await;
    let all = all_records();
    let blobs = file_clean(&h.store, &all).await;
    let end = BASE + 4 * NS_PER_HOUR;
    let range = |from: i64| {
        format!(
            "start_time={}&end_time={}",
            from / NS_PER_SEC,
            end / NS_PER_SEC
        )
    };
    let in_range = |from: i64| move |r: &Record| r.ts >= from && r.ts < end;

    // Levels from warn up, by level, 5-minute steps: sidecars only.
    let path = format!(
        "/api/v1/logs/hits?{}&level=warn&by=level&step=5m",
        range(BASE)
    );
    let (status, a) = h.get(&path, Some("all")).await;
    assert_eq!(status, 200, "{a}");
    let want = naive_hits(
        &all,
        300 * NS_PER_SEC,
        |r| r.level.as_str().into(),
        |r| r.level >= Level::Warn && in_range(BASE)(r),
    );
    assert_eq!(hits_of(&a), want);
    assert_eq!(a["index_only"], true, "{a}");
    assert_eq!(a["stats"]["blobs_read"], 0);
    // Every blob is counted from its sidecar, or skipped by level.
    assert_eq!(
        a["blobs_counted_by_index"].as_u64().unwrap()
            + a["stats"]["skipped_by_level"].as_u64().unwrap(),
        blobs as u64,
        "{a}"
    );

    // A service query by service: still the index.
    let path = format!(
        "/api/v1/logs/hits?{}&query=service:api OR service:web&by=service&step=1h",
        range(BASE)
    );
    let (_, a) = h.get(&path.replace(' ', "%20"), Some("all")).await;
    let want = naive_hits(
        &all,
        NS_PER_HOUR,
        |r| r.service.clone(),
        |r| (r.service == "api" || r.service == "web") && in_range(BASE)(r),
    );
    assert_eq!(hits_of(&a), want);
    assert_eq!(a["index_only"], true, "{a}");

    // A word must be read, and is still exact.
    let path = format!("/api/v1/logs/hits?{}&query=declined&step=15m", range(BASE));
    let (_, a) = h.get(&path, Some("all")).await;
    let want = naive_hits(
        &all,
        900 * NS_PER_SEC,
        |_| "total".into(),
        |r| r.msg.to_lowercase().contains("declined") && in_range(BASE)(r),
    );
    assert_eq!(hits_of(&a), want);
    assert_eq!(a["index_only"], false);

    // A start inside a minute: the blobs whose minutes it cuts are read.
    let from = BASE + 90 * NS_PER_SEC + 500 * MS;
    let (_, a) = h
        .get(
            &format!("/api/v1/logs/hits?{}&step=1m", range(from)),
            Some("all"),
        )
        .await;
    let want = naive_hits(&all, 60 * NS_PER_SEC, |_| "total".into(), in_range(from));
    assert_eq!(hits_of(&a), want);
    assert!(a["stats"]["blobs_read"].as_u64().unwrap() > 0);

    // By host: the sidecars hold no hosts, so the blobs are read.
    let (status, a) = h
        .get(
            &format!("/api/v1/logs/hits?{}&step=1h&by=host", range(BASE)),
            Some("all"),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    let want = naive_hits(&all, NS_PER_HOUR, |r| r.host.clone(), in_range(BASE));
    assert_eq!(hits_of(&a), want);
    assert_eq!(a["index_only"], false, "{a}");
    assert!(a["stats"]["blobs_read"].as_u64().unwrap() > 0, "{a}");

    // One app's token counts its app only.
    let (_, a) = h
        .get(
            &format!("/api/v1/logs/hits?{}&step=1h", range(BASE)),
            Some("billing"),
        )
        .await;
    assert_eq!(
        a["total"],
        all.iter().filter(|r| r.app == "billing").count()
    );

    for (bad, words) in [
        ("step=0s", "step"),
        ("step=1500ms", "step"),
        ("step=1s&start_time=0", "more than"),
        ("by=hostname", "by \"hostname\""),
        ("query=(", "query"),
    ] {
        let (status, a) = h
            .get(&format!("/api/v1/logs/hits?{bad}"), Some("all"))
            .await;
        assert_eq!(status, 400, "{bad}: {a}");
        assert!(a["error"].as_str().unwrap().contains(words), "{bad}: {a}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_is_the_lines_around_a_record_from_its_host_and_source() {
    let h = Harness::start(false, "").await;
    let t0 = BASE + 10 * 60 * NS_PER_SEC;
    let line = |i: i64, host: &str, source: &str| Record {
        id: format!("01JCONTEXT{host}{source}{i:08}").replace(['-', '/', ':'], "X"),
        ts: t0 + i * MS,
        app: "shop".into(),
        service: "api".into(),
        host: host.into(),
        level: Level::Info,
        msg: format!("line {i}"),
        attrs: Default::default(),
        source: source.into(),
    };
    let mut records = Vec::new();
    for i in 0..20 {
        records.push(line(i, "web-1", "file:/a"));
        records.push(line(i, "web-2", "file:/a"));
        records.push(line(i, "web-1", "file:/b"));
    }
    // Split over two blobs, so the context crosses blobs.
    let partition = sluice_core::layout::Partition::of("shop", t0);
    common::put_blob(&h.store, &partition, &records[..30], common::Sidecar::Good).await;
    common::put_blob(&h.store, &partition, &records[30..], common::Sidecar::Good).await;
    let target = line(10, "web-1", "file:/a");
    let (status, a) = h
        .get(
            &format!("/api/v1/logs/{}/context?before=3&after=2", target.id),
            Some("shop"),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    let want: Vec<String> = (7..=12).map(|i| line(i, "web-1", "file:/a").id).collect();
    assert_eq!(ids_of(&a["logs"]), want);
    assert_eq!(a["record"]["id"], target.id);
    // At the start of the file there is less before.
    let first = line(0, "web-1", "file:/a");
    let (_, a) = h
        .get(
            &format!("/api/v1/logs/{}/context?before=3&after=1", first.id),
            Some("shop"),
        )
        .await;
    assert_eq!(
        ids_of(&a["logs"]),
        [first.id.clone(), line(1, "web-1", "file:/a").id]
    );
    for (bad, status) in [
        (format!("{}/context?before=5000", target.id), 400),
        (format!("{}/context?around=3", target.id), 400),
        ("not-an-id!/context".to_string(), 400),
        ("01JNOSUCHRECORD00000000000/context".to_string(), 404),
    ] {
        let (got, a) = h.get(&format!("/api/v1/logs/{bad}"), Some("shop")).await;
        assert_eq!(got, status, "{bad}: {a}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_streams_every_match_and_stops_when_the_client_goes_away() {
    let h = Harness::start(false, "").await;
    let all = all_records();
    file_clean(&h.store, &all).await;
    // Every match, each once.
    let exported =
        read_ndjson(open_stream(h.port, "/api/v1/logs/export?query=order", Some("all"), &[]).await)
            .await;
    let mut got: Vec<String> = exported
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = all
        .iter()
        .filter(|r| {
            r.msg
                .to_lowercase()
                .split_whitespace()
                .any(|w| w == "order")
        })
        .map(|r| r.id.clone())
        .collect();
    want.sort();
    assert_eq!(got, want);
    let limited =
        read_ndjson(open_stream(h.port, "/api/v1/logs/export?limit=7", Some("all"), &[]).await)
            .await;
    assert_eq!(limited.len(), 7);

    // Many large blobs; the client reads a little and goes away.
    let big: Vec<Record> = (0..60_000i64)
        .map(|i| {
            let mut r = all[(i % 3000) as usize].clone();
            r.id = format!("01JBIG{i:020}");
            r.app = "bulk".into();
            r.ts = BASE + (i % 60) * 60 * NS_PER_SEC + i;
            r.msg = format!("{} {}", r.msg, "filler ".repeat(30));
            r
        })
        .collect();
    let partition = sluice_core::layout::Partition::of("bulk", BASE);
    for chunk in big.chunks(1_000) {
        common::put_blob(&h.store, &partition, chunk, common::Sidecar::Good).await;
    }
    let before = h.metric("sluice_query_blobs_read_total");
    let mut stream = open_stream(h.port, "/api/v1/logs/export?app=bulk", Some("all"), &[]).await;
    assert_eq!(stream.status, 200);
    tokio::task::spawn_blocking(move || {
        for _ in 0..10 {
            stream.line(Duration::from_secs(10)).unwrap();
        }
        drop(stream);
    })
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(20),
        "the export to notice",
        async || h.metric("sluice_query_exports_abandoned_total") >= 1.0,
    )
    .await;
    let read = h.metric("sluice_query_blobs_read_total") - before;
    assert!(
        read < 60.0,
        "{read} of 60 blobs read for a client that left"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_sends_new_matches_and_resumes_from_last_event_id() {
    let h = Harness::start(false, "").await;
    let kiwi = |i: usize, app: &str, word: &str| Record {
        id: format!("01JTAIL{app}{i:012}"),
        ts: now_nanos(),
        app: app.into(),
        service: "api".into(),
        host: "web-1".into(),
        level: Level::Warn,
        msg: format!("{word} {i}"),
        attrs: Default::default(),
        source: "http".into(),
    };
    let path = "/api/v1/logs/tail?query=kiwi&level=warn";
    let mut tail = open_stream(h.port, path, Some("shop"), &[]).await;
    assert_eq!(tail.status, 200);
    let first = [
        kiwi(0, "shop", "kiwi"),
        kiwi(1, "shop", "melon"),
        kiwi(2, "billing", "kiwi"),
        kiwi(3, "shop", "kiwi"),
    ];
    let sent = Instant::now();
    publish_records(&h.js, &first, 1).await;
    let (mut tail, events) = tokio::task::spawn_blocking(move || {
        let events: Vec<_> = (0..2)
            .map(|_| tail.event(Duration::from_secs(5)).unwrap().unwrap())
            .collect();
        (tail, events)
    })
    .await
    .unwrap();
    let delay = sent.elapsed();
    let ids: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, [first[0].id.clone(), first[3].id.clone()]);
    assert!(delay < Duration::from_secs(1), "tail delay {delay:?}");
    println!("a tailed record arrived {delay:?} after it was published");
    let last = events[1].id.clone().expect("events carry their position");
    // Nothing more is sent until something matches.
    let quiet =
        tokio::task::spawn_blocking(move || tail.event(Duration::from_millis(500)).is_err())
            .await
            .unwrap();
    assert!(quiet);

    // Away, then back with Last-Event-ID: nothing missed, nothing twice.
    let second = [kiwi(4, "shop", "kiwi"), kiwi(5, "shop", "kiwi")];
    publish_records(&h.js, &second, 1).await;
    wait_for(
        Duration::from_secs(10),
        "the window to hold them",
        async || h.metric("sluice_query_recent_records_in_total") >= 6.0,
    )
    .await;
    let mut back = open_stream(h.port, path, Some("shop"), &[("Last-Event-ID", &last)]).await;
    let resumed = tokio::task::spawn_blocking(move || {
        (0..2)
            .map(|_| back.event(Duration::from_secs(5)).unwrap().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let ids: Vec<String> = resumed
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, [second[0].id.clone(), second[1].id.clone()]);

    for (headers, words) in [(vec![("Last-Event-ID", "soon")], "Last-Event-ID")] {
        let s = open_stream(h.port, path, Some("shop"), &headers).await;
        assert_eq!(s.status, 400, "{words}");
    }
    let s = open_stream(h.port, "/api/v1/logs/tail?app=billing", Some("shop"), &[]).await;
    assert_eq!(s.status, 403);
    let s = open_stream(h.port, "/api/v1/logs/tail?limit=5", Some("shop"), &[]).await;
    assert_eq!(s.status, 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reused_after_compaction_lists_again() {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let h = Harness::start(false, "").await;
    let all: Vec<Record> = records()
        .into_iter()
        .filter(|r| r.app == "shop")
        .take(200)
        .collect();
    let partition = sluice_core::layout::Partition::of("shop", all[0].ts);
    let same: Vec<Record> = all
        .iter()
        .filter(|r| Partition::of("shop", r.ts) == partition)
        .cloned()
        .collect();
    let first = common::put_blob(&h.store, &partition, &same, common::Sidecar::Good).await;
    let path = "/api/v1/logs/search?query=order&count=exact";
    let (_, before) = h.get(path, Some("shop")).await;
    // Compaction writes the merged blob, then deletes the old one.
    common::put_blob(&h.store, &partition, &same, common::Sidecar::Good).await;
    h.store
        .inner
        .delete(&object_store::path::Path::from(first.as_str()))
        .await
        .unwrap();
    let (_, after) = h.get(path, Some("shop")).await;
    assert_eq!(after["total"], before["total"], "{}", after["stats"]);
    assert_eq!(after["stats"]["partial"], false, "{}", after["stats"]);

    // Counts that read the blobs (hosts are not in the sidecars) list
    // again too, rather than miss the blob compacted away.
    let hits = format!(
        "/api/v1/logs/hits?by=host&start_time={}&end_time={}",
        BASE / NS_PER_SEC,
        (BASE + 4 * NS_PER_HOUR) / NS_PER_SEC
    );
    let (_, counted) = h.get(&hits, Some("shop")).await;
    assert_eq!(counted["total"], same.len(), "{counted}");
    let second = common::put_blob(&h.store, &partition, &same, common::Sidecar::Good).await;
    for key in h
        .store
        .inner
        .list(None)
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
    {
        let key = key.to_string();
        if key.ends_with(".ndjson.gz") && key != second {
            h.store
                .inner
                .delete(&object_store::path::Path::from(key.as_str()))
                .await
                .unwrap();
        }
    }
    let (_, counted) = h.get(&hits, Some("shop")).await;
    assert_eq!(counted["total"], same.len(), "{}", counted["stats"]);
    assert_eq!(counted["stats"]["partial"], false, "{}", counted["stats"]);
    h.stop().await;
}
