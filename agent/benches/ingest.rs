//! The agent's network sources, end to end into JetStream, against a local
//! `nats-server` started for the run.
//!
//! Prints, in one run:
//! (a) the limit: raw JetStream publish of pre-encoded ~64 KiB batches;
//! (b) syslog over TCP: octet-counted 200-byte RFC 5424 messages over 4
//!     connections, as fast as they are taken: msgs/s, and the ratio to (a);
//! (c) syslog over UDP paced at 50k msgs/s for 10 s: loss %; then unpaced
//!     for 2 s: msgs/s offered and loss %;
//! (d) HTTP: 1000-record JSON posts over 4 keep-alive connections:
//!     records/s, and the ratio to (a).
//!
//! Each figure counts records acknowledged by JetStream (the agent's
//! `records_published` counter), not records merely received.
//!
//! `cargo bench -p sluice-agent --bench ingest` (`BENCH_MESSAGES` sets the
//! size of (b) and (d); default 2,000,000).

mod shared;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use shared::{Agent, LINE_BYTES, raw_limit};
use sluice_testing::{
    NatsServer, bench_runtime, bench_size, free_port, process_cpu_secs, wait_until,
};

const PUBLISHED: &str = "sluice_agent_records_published_total";
const CONNECTIONS: usize = 4;

/// A 200-byte RFC 5424 message.
fn syslog_message(conn: usize, n: usize) -> String {
    let head =
        format!("<134>1 2026-11-22T10:00:00.000001Z web-{conn} shop 42 - - conn {conn} msg {n} ");
    format!("{head}{}", "x".repeat(LINE_BYTES - head.len()))
}

/// Waits until JetStream acknowledged `total` records; returns the seconds
/// since `start`.
fn wait_published(agent: &Agent, total: f64, start: Instant) -> f64 {
    wait_until(Duration::from_secs(600), "records published", || {
        agent.metric(PUBLISHED) >= total
    });
    start.elapsed().as_secs_f64()
}

fn tcp(agent: &Agent, port: u16, messages: usize, raw: f64) {
    let per_conn = messages / CONNECTIONS;
    let payloads: Vec<Vec<u8>> = (0..CONNECTIONS)
        .map(|c| {
            let mut buf = Vec::with_capacity(per_conn * (LINE_BYTES + 5));
            for n in 0..per_conn {
                let m = syslog_message(c, n);
                write!(buf, "{} {m}", m.len()).unwrap();
            }
            buf
        })
        .collect();
    let before = agent.metric(PUBLISHED);
    let cpu0 = process_cpu_secs(agent.pid());
    let start = Instant::now();
    let senders: Vec<_> = payloads
        .into_iter()
        .map(|buf| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.write_all(&buf).unwrap();
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let total = (per_conn * CONNECTIONS) as f64;
    let secs = wait_published(agent, before + total, start);
    let cpu = process_cpu_secs(agent.pid()) - cpu0;
    println!(
        "(b) syslog TCP, octet-counted {LINE_BYTES}-byte messages, {CONNECTIONS} connections: {total:.0} in {secs:.2} s: {:.0} msgs/s, {:.1} MB/s, agent {:.2} CPU-s/GB, {:.0} % of (a)",
        total / secs,
        total * LINE_BYTES as f64 / secs / 1e6,
        cpu / (total * LINE_BYTES as f64 / 1e9),
        100.0 * total / secs / raw
    );
}

/// Sends datagrams at `rate` per second (unpaced when 0) for `secs`;
/// returns how many were sent.
fn send_udp(port: u16, rate: u64, secs: f64) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        if rate > 0 {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        let m = syslog_message(9, sent as usize);
        if socket.send(m.as_bytes()).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Waits for the published count to settle and returns what arrived.
fn settled(agent: &Agent, before: f64, sent: u64) -> f64 {
    let mut last = -1.0;
    let mut stable_since = Instant::now();
    loop {
        let now = agent.metric(PUBLISHED) - before;
        if now >= sent as f64 {
            return now;
        }
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(3) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn udp(agent: &Agent, port: u16) {
    for (label, rate, secs) in [
        ("paced at 50k msgs/s", 50_000u64, 10.0),
        ("unpaced", 0, 2.0),
    ] {
        let before = agent.metric(PUBLISHED);
        let start = Instant::now();
        let sent = send_udp(port, rate, secs);
        let offered = sent as f64 / start.elapsed().as_secs_f64();
        let got = settled(agent, before, sent);
        println!(
            "(c) syslog UDP {label}: {sent} sent at {offered:.0} msgs/s, {got:.0} arrived, loss {:.3} %",
            100.0 * (sent as f64 - got) / sent as f64
        );
    }
    println!(
        "    UDP drops: agent {} (spool full), kernel {}",
        agent.metric("sluice_agent_rejected_total") + 0.0,
        agent.metric("sluice_agent_udp_kernel_drops") + 0.0
    );
}

fn http(agent: &Agent, port: u16, records: usize, raw: f64) {
    let per_post = 1_000;
    let posts = records / per_post / CONNECTIONS;
    let body: String = {
        let items: Vec<String> = (0..per_post)
            .map(|i| {
                format!(
                    r#"{{"service":"checkout","level":"info","message":"order {i} paid by card, basket of three items, shipping to warehouse seven","timestamp":"2026-11-22T10:00:00.123Z","metadata":{{"request_id":"req-{i}","user":"u-{i}"}}}}"#
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    let before = agent.metric(PUBLISHED);
    let cpu0 = process_cpu_secs(agent.pid());
    let start = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let head = format!(
                    "POST /api/v1/logs HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let mut buf = vec![0u8; 1 << 20];
                for _ in 0..posts {
                    s.write_all(head.as_bytes()).unwrap();
                    s.write_all(body.as_bytes()).unwrap();
                    // Read one response: headers, then Content-Length bytes.
                    let mut got = Vec::new();
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "connection closed");
                        got.extend_from_slice(&buf[..n]);
                        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&got[..end]).to_string();
                            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                            let len: usize = head
                                .lines()
                                .filter_map(|l| l.split_once(':'))
                                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                                .and_then(|(_, v)| v.trim().parse().ok())
                                .unwrap_or(0);
                            while got.len() < end + 4 + len {
                                let n = s.read(&mut buf).unwrap();
                                got.extend_from_slice(&buf[..n]);
                            }
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let answered = start.elapsed().as_secs_f64();
    let total = (posts * CONNECTIONS * per_post) as f64;
    let secs = wait_published(agent, before + total, start);
    let cpu = process_cpu_secs(agent.pid()) - cpu0;
    println!(
        "(d) HTTP, {per_post}-record posts ({} KiB), {CONNECTIONS} connections: {total:.0} records answered in {answered:.2} s, published in {secs:.2} s: {:.0} records/s, agent {:.1} µs CPU per record, {:.0} % of (a)",
        body.len() / 1024,
        total / secs,
        cpu / total * 1e6,
        100.0 * total / secs / raw
    );
}

fn main() {
    let messages = bench_size("BENCH_MESSAGES", 2_000_000);
    let runtime = bench_runtime();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "agent ingest benchmark: nats-server local, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (raw, _) = runtime.block_on(raw_limit(&nats));
    let syslog_port = free_port();
    let http_port = free_port();
    let agent = Agent::start(
        dir.path(),
        &nats,
        "ingest",
        &format!(
            "[agent.syslog]\nudp = \"127.0.0.1:{syslog_port}\"\ntcp = \"127.0.0.1:{syslog_port}\"\n\
             [agent.http]\nlisten = \"127.0.0.1:{http_port}\"\n"
        ),
    );
    wait_until(Duration::from_secs(20), "the agent's listeners", || {
        TcpStream::connect(("127.0.0.1", http_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", agent.port)).is_ok()
    });
    tcp(&agent, syslog_port, messages, raw);
    udp(&agent, syslog_port);
    http(&agent, http_port, messages, raw);
    agent.stop();
}
