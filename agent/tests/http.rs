//! `POST /api/v1/logs` against a real `nats-server`: bodies that arrive,
//! bodies that are refused and why, the durability of a 200, and clients
//! that misbehave.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    AgentProcess, Answer, Collector, assert_config_error, http_post, read_answer, try_http_post,
    wait_for_records, write_config,
};
use sluice_core::Level;
use sluice_core::time::NS_PER_SEC;
use sluice_testing::{NatsServer, free_port, wait_until};

const PATH: &str = "/api/v1/logs";

fn start_agent(tmp: &Path, nats_url: &str, extra: &str) -> (AgentProcess, u16) {
    let port = free_port();
    let section = format!("[agent.http]\nlisten = \"127.0.0.1:{port}\"\napp = \"web\"\n{extra}\n");
    let (config, admin) = write_config(tmp, nats_url, &section);
    let mut agent = AgentProcess::new(config, admin);
    agent.start();
    (agent, port)
}

fn post(port: u16, body: &str) -> Answer {
    http_post(
        port,
        PATH,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{answer:?}");
    let v = answer.json();
    assert_eq!(v["status"], "success", "{answer:?}");
    match (&v["log_id"], &v["log_ids"]) {
        (serde_json::Value::String(id), _) => vec![id.clone()],
        (_, serde_json::Value::Array(ids)) => ids
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
        _ => panic!("no ids in {answer:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_array_ndjson_and_gzip_bodies_arrive_with_their_ids() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, port) = start_agent(tmp.path(), &nats.url(), "");

    let single = post(
        port,
        r#"{"service":"checkout","level":"error","message":"payment declined","timestamp":"2026-11-22T10:00:00.5+01:00","metadata":{"request_id":"req-1","attempt":3}}"#,
    );
    assert!(single.json()["log_id"].is_string(), "{single:?}");
    let single_ids = ids(&single);

    let array: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"service":"cart","level":"WARN","message":"array {i}","app":"shop","host":"web-7"}}"#))
        .collect();
    let array_ids = ids(&post(port, &format!("[{}]", array.join(","))));
    assert_eq!(array_ids.len(), 50);

    let ndjson: String = (0..30)
        .map(|i| {
            format!(
                "{{\"message\":\"ndjson {i}\",\"timestamp\":{}}}\r\n\n",
                1_795_000_000 + i
            )
        })
        .collect();
    let ndjson_ids = ids(&post(port, &ndjson));
    assert_eq!(ndjson_ids.len(), 30);

    let body: String = (0..20)
        .map(|i| format!("{{\"message\":\"gzip {i}\",\"level\":\"debug\"}}\n"))
        .collect();
    let gz = http_post(
        port,
        PATH,
        &[("Content-Encoding", "gzip")],
        &gzip(body.as_bytes()),
    );
    let gzip_ids = ids(&gz);
    assert_eq!(gzip_ids.len(), 20);

    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(&mut collector, 101, Duration::from_secs(30), &agent).await;
    let records = &collector.records;
    assert_eq!(records.len(), 101);
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} not in LOGS"))
    };

    let r = by_id(&single_ids[0]);
    assert_eq!(
        (r.app.as_str(), r.service.as_str(), r.level),
        ("web", "checkout", Level::Error)
    );
    assert_eq!(r.msg, "payment declined");
    assert_eq!(
        sluice_core::record::format_ts(r.ts),
        "2026-11-22T09:00:00.500000000Z"
    );
    assert_eq!(r.attrs["request_id"], "req-1");
    assert_eq!(r.attrs["attempt"], "3");
    assert_eq!(r.host, "test-host");
    assert_eq!(r.source, "http");

    for (i, id) in array_ids.iter().enumerate() {
        let r = by_id(id);
        assert_eq!(r.msg, format!("array {i}"));
        assert_eq!(
            (r.app.as_str(), r.service.as_str(), r.host.as_str(), r.level),
            ("shop", "cart", "web-7", Level::Warn)
        );
    }
    for (i, id) in ndjson_ids.iter().enumerate() {
        let r = by_id(id);
        assert_eq!(r.msg, format!("ndjson {i}"));
        assert_eq!(r.ts, (1_795_000_000 + i as i64) * NS_PER_SEC);
        assert_eq!((r.service.as_str(), r.level), ("http", Level::Info));
    }
    for (i, id) in gzip_ids.iter().enumerate() {
        assert_eq!(by_id(id).msg, format!("gzip {i}"));
    }
    // Ids are unique and sortable in posting order within a request.
    let mut sorted = array_ids.clone();
    sorted.sort();
    assert_eq!(sorted, array_ids);
    assert_eq!(agent.metric("sluice_agent_received_records_total"), 101.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_error() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, port) = start_agent(
        tmp.path(),
        &nats.url(),
        "token = \"s3cret\"\nmax_body_bytes = 100000\nmax_in_flight_bytes = 100000\nmax_records = 100\n",
    );
    let auth = ("Authorization", "Bearer s3cret");
    let send = |body: &[u8], extra: &[(&str, &str)]| {
        let mut headers = vec![auth];
        headers.extend_from_slice(extra);
        http_post(port, PATH, &headers, body)
    };
    // (body, status, item, field, words in the error)
    type Case<'a> = (String, u16, Option<u64>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "{\"message\": \"x\"".into(),
            400,
            Some(0),
            None,
            "invalid JSON",
        ),
        (
            "{\"message\":\"ok\"}\n{\"message\": oops}\n".into(),
            400,
            Some(1),
            None,
            "invalid JSON",
        ),
        (
            "{\"level\":\"info\"}".into(),
            400,
            Some(0),
            Some("message"),
            "required",
        ),
        (
            "[{\"message\":\"ok\"},{\"message\":42}]".into(),
            400,
            Some(1),
            Some("message"),
            "string",
        ),
        (
            "{\"message\":\"x\",\"level\":\"loud\"}".into(),
            400,
            Some(0),
            Some("level"),
            "loud",
        ),
        (
            "{\"message\":\"x\",\"timestamp\":\"yesterday\"}".into(),
            400,
            Some(0),
            Some("timestamp"),
            "timestamp",
        ),
        (
            "{\"message\":\"x\",\"timestamp\":true}".into(),
            400,
            Some(0),
            Some("timestamp"),
            "timestamp",
        ),
        (
            "{\"message\":\"x\",\"metadata\":[1,2]}".into(),
            400,
            Some(0),
            Some("metadata"),
            "object",
        ),
        (
            "{\"message\":\"x\",\"service\":\"Bad Name!\"}".into(),
            400,
            Some(0),
            Some("service"),
            "service",
        ),
        ("[1,2]".into(), 400, Some(0), None, "object"),
        ("".into(), 400, None, None, "no records"),
        ("[]".into(), 400, None, None, "no records"),
        (
            format!("[{}]", vec!["{\"message\":\"m\"}"; 101].join(",")),
            400,
            Some(100),
            None,
            "too many",
        ),
        (
            format!("{{\"message\":\"{}\"}}", "x".repeat(100_001)),
            413,
            None,
            None,
            "100000",
        ),
    ];
    for (body, status, item, field, words) in &cases {
        let a = send(body.as_bytes(), &[]);
        assert_eq!(a.status, *status, "{body:.80}: {a:?}");
        let v = a.json();
        assert_eq!(v["status"], "error", "{a:?}");
        assert!(
            v["error"].as_str().unwrap().contains(words),
            "{body:.80}: {a:?}"
        );
        assert_eq!(v["item"].as_u64(), *item, "{body:.80}: {a:?}");
        assert_eq!(v["field"].as_str(), *field, "{body:.80}: {a:?}");
    }
    // Authentication.
    let a = http_post(port, PATH, &[], b"{\"message\":\"x\"}");
    assert_eq!(a.status, 401, "{a:?}");
    assert!(a.header("www-authenticate").is_some());
    let a = http_post(
        port,
        PATH,
        &[("Authorization", "Bearer nope")],
        b"{\"message\":\"x\"}",
    );
    assert_eq!(a.status, 401, "{a:?}");
    // Encodings: unknown, corrupt gzip, a gzip bomb.
    assert_eq!(send(b"{}", &[("Content-Encoding", "br")]).status, 415);
    let a = send(b"\x1f\x8b\x08\x00garbage", &[("Content-Encoding", "gzip")]);
    assert_eq!(a.status, 400, "{a:?}");
    let bomb = gzip(&vec![b' '; 10_000_000]);
    let a = send(&bomb, &[("Content-Encoding", "gzip")]);
    assert_eq!(a.status, 413, "{a:?}");
    // Wrong method and path.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /api/v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut s).status, 405);
    assert_eq!(http_post(port, "/nope", &[auth], b"{}").status, 404);

    // A good request still works, and nothing bad reached the stream.
    let ok = send(b"{\"message\":\"good\"}", &[]);
    assert_eq!(ok.status, 200, "{ok:?}");
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(&mut collector, 1, Duration::from_secs(20), &agent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.poll().await;
    assert_eq!(collector.records.len(), 1, "{:?}", collector.records);
    let metrics = agent.get("/metrics").1;
    for status in ["400", "401", "405", "413", "415"] {
        if status == "405" {
            continue; // answered by the router before the handler
        }
        assert!(
            metrics.contains(&format!("status=\"{status}\"")),
            "{status}\n{metrics}"
        );
    }
    for reason in [
        "invalid",
        "unauthorized",
        "too_large",
        "unsupported_encoding",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason}\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_request_survives_kill_9() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (mut agent, port) = start_agent(tmp.path(), &nats.url(), "");
    // Publishing is cut off so the records can only be in the spool.
    let mut nats = nats;
    nats.stop();
    let mut all_ids = Vec::new();
    for round in 0..5 {
        let body: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"message":"round {round} record {i}","level":"info"}}"#))
            .collect();
        all_ids.extend(ids(&post(port, &format!("[{}]", body.join(",")))));
    }
    agent.kill9();
    nats.start_again();
    agent.start();
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(
        &mut collector,
        all_ids.len(),
        Duration::from_secs(60),
        &agent,
    )
    .await;
    let got: std::collections::HashSet<&str> =
        collector.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        collector.records.len(),
        all_ids.len(),
        "duplicates or extras"
    );
    for id in &all_ids {
        assert!(got.contains(id.as_str()), "{id} answered 200 but lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_with_retry_after() {
    let mut nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, port) = start_agent(
        tmp.path(),
        &nats.url(),
        "max_body_bytes = 262144\nmax_in_flight_bytes = 1048576\n[agent.spool]\nmax_bytes = 4194304\nsegment_bytes = 1048576\n",
    );
    nats.stop();
    let body: Vec<String> = (0..500)
        .map(|i| format!(r#"{{"message":"filler {i} {}"}}"#, "f".repeat(300)))
        .collect();
    let body = format!("[{}]", body.join(","));
    let start = Instant::now();
    let full = loop {
        let a = post(port, &body);
        if a.status != 200 {
            break a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "spool never filled"
        );
    };
    assert_eq!(full.status, 503, "{full:?}");
    assert_eq!(full.header("retry-after"), Some("5"));
    assert_eq!(full.json()["status"], "error");
    // Once JetStream is back the spool drains and requests succeed again.
    nats.start_again();
    wait_until(
        Duration::from_secs(60),
        "spool drained, request accepted",
        || post(port, r#"{"message":"after the drain"}"#).status == 200,
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_much_in_flight_answers_429() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (_agent, port) = start_agent(
        tmp.path(),
        &nats.url(),
        "max_body_bytes = 100000\nmax_in_flight_bytes = 150000\ntimeout_secs = 10\n",
    );
    // A request whose body is still coming holds its reservation.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n[")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let body = format!("{{\"message\":\"{}\"}}", "b".repeat(60_000));
    let a = post(port, &body);
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(a.header("retry-after"), Some("1"));
    // The slow body times out (408) and frees its share.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(read_answer(&mut slow).status, 408);
    assert_eq!(post(port, &body).status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_flooding_clients_do_not_stop_a_good_one() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, port) = start_agent(
        tmp.path(),
        &nats.url(),
        "max_connections = 50\ntimeout_secs = 3\n",
    );
    // Slow clients: headers one byte at a time, and a body that stalls.
    let slow_headers = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let req = b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n";
        for b in req {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // A flood of silent connections, more than allowed.
    let mut flood = Vec::new();
    for _ in 0..80 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            flood.push(s);
        }
    }
    agent.wait_metric(
        "sluice_agent_connections_closed_total",
        25.0,
        Duration::from_secs(10),
        "refusals counted",
    );
    let start = Instant::now();
    loop {
        let served = try_http_post(port, PATH, &[], br#"{"message":"good client"}"#);
        if served.is_some_and(|a| a.status == 200) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "good client not served\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    // A keep-alive connection left idle after a request is closed too.
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = br#"{"message":"keep-alive"}"#;
    write!(
        keep,
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    keep.write_all(body).unwrap();
    assert_eq!(read_answer(&mut keep).status, 200);
    let idle = Instant::now();
    keep.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    let n = std::io::Read::read(&mut keep, &mut byte).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close the idle connection");
    assert!(
        idle.elapsed() < Duration::from_secs(8),
        "idle keep-alive connection held for {:?}",
        idle.elapsed()
    );
    slow_headers.join().unwrap();
    let metrics = agent.get("/metrics").1;
    assert!(metrics.contains("reason=\"limit\""), "{metrics}");
    drop(flood);
}

#[test]
fn invalid_http_settings_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (section, needle) in [
        ("[agent.http]\nmax_message_bytes = 0\n", "max_message_bytes"),
        (
            "[agent.http]\nmax_body_bytes = 100\nmax_in_flight_bytes = 10\n",
            "max_in_flight_bytes",
        ),
        ("[agent.http]\ntoken = \"\"\n", "token"),
        ("[agent.http]\nlisten = \"x\"\n", "listen"),
    ] {
        assert_config_error(tmp.path(), section, needle);
    }
}
