//! The syslog endpoint against real clients (util-linux `logger`, raw TCP,
//! TLS) and a real `nats-server`: what arrives in `LOGS`, and what bad input
//! and misbehaving clients get.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    AgentProcess, Collector, assert_config_error, wait_for_records, with_attr, write_config,
};
use sluice_core::time::{NS_PER_SEC, NS_PER_US};
use sluice_core::{Level, Record};
use sluice_testing::{NatsServer, free_port, wait_until};

struct Ports {
    udp: u16,
    tcp: u16,
}

fn start_agent(tmp: &Path, nats: &NatsServer, extra: &str) -> (AgentProcess, Ports) {
    let ports = Ports {
        udp: free_port(),
        tcp: free_port(),
    };
    let section = format!(
        "[agent.syslog]\nudp = \"127.0.0.1:{}\"\ntcp = \"127.0.0.1:{}\"\napp = \"net\"\ntimezone = \"local\"\n{extra}\n[agent.syslog.app_map]\nbilling = \"pay\"\n",
        ports.udp, ports.tcp
    );
    let (config, port) = write_config(tmp, &nats.url(), &section);
    let mut agent = AgentProcess::new(config, port);
    agent.start();
    (agent, ports)
}

fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .expect("`logger` (util-linux) is needed: apt-get install -y bsdutils");
    assert!(
        out.status.success(),
        "logger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn by_msg<'a>(records: &'a [Record], msg: &str) -> &'a Record {
    let found: Vec<&Record> = records.iter().filter(|r| r.msg == msg).collect();
    assert_eq!(found.len(), 1, "{msg:?} should arrive exactly once");
    found[0]
}

fn this_host() -> String {
    sluice_core::config::host_name()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_messages_over_udp_and_tcp_arrive_mapped() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, ports) = start_agent(tmp.path(), &nats, "");
    let udp = ports.udp.to_string();
    let tcp = ports.tcp.to_string();
    let before = sluice_core::record::now_nanos();
    let base = ["-n", "127.0.0.1"];
    // (transport args, format args, message, priority, tag)
    type Case<'a> = (Vec<&'a str>, Vec<&'a str>, &'a str, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["-d", "-P", &udp],
            vec!["--rfc3164"],
            "udp 3164 message",
            "local0.err",
            "shop",
        ),
        (
            vec!["-d", "-P", &udp],
            vec!["--rfc5424"],
            "udp 5424 message",
            "user.warning",
            "checkout",
        ),
        (
            vec!["-T", "-P", &tcp],
            vec!["--rfc3164"],
            "tcp 3164 message",
            "daemon.crit",
            "cron",
        ),
        (
            vec!["-T", "-P", &tcp],
            vec!["--rfc5424"],
            "tcp 5424 message",
            "auth.debug",
            "sshd",
        ),
        (
            vec!["-T", "-P", &tcp, "--octet-count"],
            vec!["--rfc5424"],
            "tcp 5424 octet-counted",
            "local7.notice",
            "billing",
        ),
        (
            vec!["-T", "-P", &tcp, "--octet-count"],
            vec!["--rfc3164"],
            "tcp 3164 octet-counted",
            "mail.info",
            "Postfix/SMTPD",
        ),
    ];
    for (transport, format, msg, prio, tag) in &cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(transport);
        args.extend(format);
        args.extend(["-p", prio, "-t", tag, "-i"]);
        args.push(msg);
        logger(&args);
    }
    // RFC 5424 with a MSGID and structured data carrying a request id.
    logger(&[
        "-n",
        "127.0.0.1",
        "-T",
        "-P",
        &tcp,
        "--rfc5424",
        "-p",
        "user.err",
        "-t",
        "api",
        "--msgid",
        "ORDER47",
        "--sd-id",
        "req@32473",
        "--sd-param",
        "request_id=\"r-123\"",
        "--sd-param",
        "user=\"u \\\"7\\\"\"",
        "structured message",
    ]);
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(
        &mut collector,
        cases.len() + 1,
        Duration::from_secs(30),
        &agent,
    )
    .await;
    let after = sluice_core::record::now_nanos();
    let records = collector.records.clone();
    let host = this_host();

    let expect = [
        ("udp 3164 message", Level::Error, "shop", "net", "local0"),
        ("udp 5424 message", Level::Warn, "checkout", "net", "user"),
        ("tcp 3164 message", Level::Fatal, "cron", "net", "daemon"),
        ("tcp 5424 message", Level::Debug, "sshd", "net", "auth"),
        (
            "tcp 5424 octet-counted",
            Level::Info,
            "billing",
            "pay",
            "local7",
        ),
        (
            "tcp 3164 octet-counted",
            Level::Info,
            "postfix-smtpd",
            "net",
            "mail",
        ),
    ];
    for (msg, level, service, app, facility) in expect {
        let r = by_msg(&records, msg);
        assert_eq!(r.level, level, "{msg}: {r:?}");
        assert_eq!(r.service, service, "{msg}: {r:?}");
        assert_eq!(r.app, app, "{msg}: {r:?}");
        assert_eq!(r.host, host, "{msg}: {r:?}");
        assert_eq!(
            r.attrs.get("facility").map(String::as_str),
            Some(facility),
            "{msg}: {r:?}"
        );
        assert!(
            r.attrs.contains_key("procid"),
            "{msg}: -i gives a procid: {r:?}"
        );
        // RFC 3164 carries whole seconds in local time, RFC 5424 microseconds.
        assert!(
            r.ts >= before - 2 * NS_PER_SEC && r.ts <= after + NS_PER_SEC,
            "{msg}: ts {} outside [{before}, {after}]",
            r.ts
        );
        assert!(r.source.starts_with("syslog:"), "{r:?}");
        assert!(!r.attrs.contains_key("syslog.malformed"), "{r:?}");
    }
    assert_eq!(
        by_msg(&records, "tcp 3164 octet-counted").attrs["syslog.appname"],
        "Postfix/SMTPD"
    );
    let r = by_msg(&records, "structured message");
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.service, "api");
    assert_eq!(r.attrs["msgid"], "ORDER47");
    assert_eq!(r.attrs["request_id"], "r-123");
    assert_eq!(r.attrs["user"], "u \"7\"");
    // logger adds its own timeQuality element.
    assert!(r.attrs.contains_key("tzKnown"), "{r:?}");
    assert!(agent.metric("sluice_agent_received_records_total") >= 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_a_unix_socket() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("log.sock");
    let section = format!(
        "[agent.syslog]\nunix = \"{}\"\napp = \"local\"\n",
        socket.display()
    );
    let (config, port) = write_config(tmp.path(), &nats.url(), &section);
    let mut agent = AgentProcess::new(config, port);
    agent.start();
    logger(&[
        "-u",
        socket.to_str().unwrap(),
        "-p",
        "user.warning",
        "-t",
        "backup",
        "disk almost full",
    ]);
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(&mut collector, 1, Duration::from_secs(30), &agent).await;
    let r = by_msg(&collector.records, "disk almost full");
    assert_eq!(
        (r.level, r.service.as_str(), r.app.as_str()),
        (Level::Warn, "backup", "local")
    );
    // Local messages carry no hostname: the agent's own host is used.
    assert_eq!(r.host, "test-host");
    assert_eq!(agent.terminate(), Some(0));
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

fn octet(msg: &str) -> String {
    format!("{} {msg}", msg.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_counted_and_newline_frames_mix_on_one_connection() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, ports) = start_agent(tmp.path(), &nats, "");
    let mut expected = Vec::new();
    let mut stream = Vec::new();
    for i in 0..2_000 {
        let msg = format!("mixed message {i} with\ttabs and = signs [x]");
        let line = format!(
            "<14>1 2026-11-22T10:00:00.{i:06}Z web-{} mixer - - - {msg}",
            i % 3
        );
        if i % 2 == 0 {
            stream.extend_from_slice(octet(&line).as_bytes());
        } else {
            stream.extend_from_slice(line.as_bytes());
            stream.push(b'\n');
        }
        expected.push(msg);
    }
    // An octet-counted message may contain newlines.
    let multi = "<11>1 - web-0 mixer - - - first line\nsecond line";
    stream.extend_from_slice(octet(multi).as_bytes());
    let mut tcp = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    // Odd-sized writes split frames and count prefixes everywhere.
    for piece in stream.chunks(997) {
        tcp.write_all(piece).unwrap();
    }
    drop(tcp);
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(
        &mut collector,
        expected.len() + 1,
        Duration::from_secs(30),
        &agent,
    )
    .await;
    let records = &collector.records;
    assert_eq!(records.len(), expected.len() + 1);
    for (i, msg) in expected.iter().enumerate() {
        let r = by_msg(records, msg);
        assert_eq!(r.host, format!("web-{}", i % 3));
        assert_eq!(r.ts % NS_PER_SEC, (i as i64) * NS_PER_US);
        assert!(!r.attrs.contains_key("syslog.malformed"), "{r:?}");
    }
    let r = by_msg(records, "first line\nsecond line");
    assert_eq!(r.level, Level::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_kept_flagged_and_counted() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, ports) = start_agent(tmp.path(), &nats, "max_message_bytes = 1024\n");
    let send = |bytes: &[u8]| {
        let mut tcp = TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
        tcp.write_all(bytes).unwrap();
    };
    // Garbage bytes, then a good message on the same connection.
    send(b"\x00\xff\xfe garbage \x01\x02\n<13>1 - h app - - - after garbage\n");
    // A newline frame over the limit, then a good one.
    let mut long = b"<13>1 - h app - - - ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5_000));
    long.extend_from_slice(b"\n<13>1 - h app - - - after long line\n");
    send(&long);
    // An octet-counted frame over the limit, then a good one.
    let big = format!("<13>1 - h app - - - {}", "y".repeat(3_000));
    send(
        format!(
            "{}{}",
            octet(&big),
            octet("<13>1 - h app - - - after big frame")
        )
        .as_bytes(),
    );
    // A count too small: the frame's rest becomes a malformed message.
    send(b"10 <13>1 - h app - - - short count\n");
    // A frame cut off by the connection closing.
    send(b"100 <13>1 - h app - - - cut off");
    // Not valid UTF-8 inside a good message.
    send(b"<13>1 - h app - - - caf\xe9 au lait\n");
    // A datagram over the limit.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = format!("<13>Nov 22 10:00:00 host1 app: {}", "z".repeat(2_000));
    udp.send_to(datagram.as_bytes(), ("127.0.0.1", ports.udp))
        .unwrap();

    let mut collector = Collector::new(&nats.url()).await;
    let want = ["after garbage", "after long line", "after big frame"];
    let done = collector
        .until(Duration::from_secs(30), |rs| {
            want.iter().all(|w| rs.iter().any(|r| r.msg == *w))
                && rs.iter().any(|r| r.attrs.contains_key("syslog.incomplete"))
                && rs.iter().any(|r| r.msg.starts_with("caf"))
                && rs.iter().any(|r| r.msg.starts_with("zzz"))
        })
        .await;
    assert!(done, "{:#?}\n{}", collector.records, agent.log_text());
    let records = collector.records.clone();
    let malformed = with_attr(&records, "syslog.malformed", "no PRI");
    assert!(
        malformed.iter().any(|r| r.msg.contains("garbage")),
        "garbage is kept, flagged: {records:#?}"
    );
    let truncated: Vec<&Record> = records
        .iter()
        .filter(|r| r.attrs.contains_key("sluice.truncated"))
        .collect();
    assert!(
        truncated.iter().any(|r| r.msg.starts_with("xxx")),
        "{records:#?}"
    );
    assert!(
        truncated.iter().any(|r| r.msg.starts_with("yyy")),
        "{records:#?}"
    );
    let udp_cut = truncated
        .iter()
        .find(|r| r.msg.starts_with("zzz"))
        .expect("datagram kept");
    assert_eq!(udp_cut.host, "host1");
    assert_eq!(
        udp_cut.attrs["sluice.truncated"],
        datagram.len().to_string()
    );
    assert!(truncated.iter().all(|r| r.msg.len() <= 1_024));
    let cut = with_attr(&records, "syslog.incomplete", "true");
    assert_eq!(cut.len(), 1);
    assert!(cut[0].msg.contains("cut off"), "{:?}", cut[0]);
    let lossy = by_msg(&records, "caf\u{fffd} au lait");
    assert_eq!(lossy.attrs["sluice.lossy"], "true");
    // The count was too small: "<13>1 - h " became one message and the rest
    // of the frame another, flagged, not lost.
    assert!(
        records.iter().any(|r| r.msg.contains("short count")),
        "{records:#?}"
    );

    let metrics = agent.get("/metrics").1;
    for reason in ["truncated", "incomplete", "malformed", "lossy"] {
        let n: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("sluice_agent_received_flagged_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(n >= 1.0, "{reason} not counted:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_flooding_clients_do_not_stop_a_good_one() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, ports) = start_agent(
        tmp.path(),
        &nats,
        "max_connections = 40\nidle_timeout_secs = 3\n",
    );
    let tcp = ports.tcp;
    // A client sending one byte a second, for the whole test. It holds its
    // slot before the flood arrives.
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    agent.wait_metric(
        "sluice_agent_connections_accepted_total",
        1.0,
        Duration::from_secs(10),
        "the slow client admitted",
    );
    let slow = std::thread::spawn(move || {
        for b in b"<13>1 - h slow - - - trickled\n" {
            if s.write_all(&[*b]).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        true
    });
    // A flood: more connections than allowed, all silent.
    let mut flood = Vec::new();
    for _ in 0..60 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", tcp)) {
            flood.push(s);
        }
    }
    agent.wait_metric(
        "sluice_agent_connections_closed_total",
        20.0,
        Duration::from_secs(10),
        "refusals counted",
    );
    // Idle connections are closed after the timeout, freeing their slots;
    // a well-behaved client is then served at once.
    let mut collector = Collector::new(&nats.url()).await;
    let start = Instant::now();
    let good = loop {
        let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        let sent = s.write_all(b"<13>1 - h good - - - served\n").is_ok();
        drop(s);
        let arrived = collector
            .until(Duration::from_secs(2), |rs| {
                rs.iter().any(|r| r.msg == "served")
            })
            .await;
        if sent && arrived {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "a good client was not served while idle clients held the slots\n{}",
            agent.log_text()
        );
    };
    assert!(good < Duration::from_secs(10), "served after {good:?}");
    assert!(
        slow.join().unwrap(),
        "the slow client was cut off while still sending"
    );
    wait_for_records(&mut collector, 2, Duration::from_secs(10), &agent).await;
    assert_eq!(by_msg(&collector.records, "trickled").service, "slow");
    let metrics = agent.get("/metrics").1;
    assert!(metrics.contains("reason=\"idle\""), "{metrics}");
    assert!(metrics.contains("reason=\"limit\""), "{metrics}");
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_beyond_a_full_spool_are_dropped_and_counted() {
    let mut nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (agent, ports) = start_agent(
        tmp.path(),
        &nats,
        "[agent.spool]\nmax_bytes = 4194304\nsegment_bytes = 1048576\n",
    );
    // JetStream is away: the spool fills and stays full.
    nats.stop();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 40_000;
    for i in 0..sent {
        let m = format!("<13>1 - h flood - - - datagram {i} {}", "d".repeat(150));
        udp.send_to(m.as_bytes(), ("127.0.0.1", ports.udp)).unwrap();
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let dropped = || {
        let m = agent.get("/metrics").1;
        let spool_full: f64 = m
            .lines()
            .filter(|l| l.starts_with("sluice_agent_rejected_total") && l.contains("spool_full"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (
            spool_full,
            sluice_testing::metric_value(&m, "sluice_agent_udp_kernel_drops"),
        )
    };
    wait_until(Duration::from_secs(20), "spool-full drops counted", || {
        dropped().0 > 0.0
    });
    nats.start_again();
    let mut collector = Collector::new(&nats.url()).await;
    // Every datagram is accounted for: arrived, or counted as dropped.
    let accounted = collector
        .until(Duration::from_secs(60), |rs| {
            let (agent_drops, kernel_drops) = dropped();
            rs.len() as f64 + agent_drops + kernel_drops >= f64::from(sent)
        })
        .await;
    let (agent_drops, kernel_drops) = dropped();
    assert!(
        accounted,
        "{} arrived + {agent_drops} dropped by the agent + {kernel_drops} by the kernel < {sent}",
        collector.records.len()
    );
    assert_eq!(
        collector.records.len() as f64 + agent_drops + kernel_drops,
        f64::from(sent),
        "more accounted for than sent"
    );
    assert!(
        collector.records.len() > 1_000,
        "the spool took some before it filled"
    );
    let distinct: std::collections::HashSet<&str> =
        collector.records.iter().map(|r| r.msg.as_str()).collect();
    assert_eq!(distinct.len(), collector.records.len(), "duplicates");
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files.
fn tls_files(
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file, cert.der().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_takes_octet_counted_messages() {
    use tokio::io::AsyncWriteExt;
    sluice_core::nats::install_crypto_provider();
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (cert_file, key_file, der) = tls_files(tmp.path());
    let port = free_port();
    let section = format!(
        "[agent.syslog]\ntls = \"127.0.0.1:{port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert_file.display(),
        key_file.display()
    );
    let (config, admin) = write_config(tmp.path(), &nats.url(), &section);
    let mut agent = AgentProcess::new(config, admin);
    agent.start();

    // A plain-text client on the TLS port fails its handshake, counted.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = plain.write_all(b"<13>1 - h app - - - not encrypted\n");
    drop(plain);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    for i in 0..100 {
        let m = format!("<134>1 2026-11-22T10:00:00Z fw-1 firewall - - - secure message {i}");
        tls.write_all(octet(&m).as_bytes()).await.unwrap();
    }
    tls.shutdown().await.unwrap();
    let mut collector = Collector::new(&nats.url()).await;
    wait_for_records(&mut collector, 100, Duration::from_secs(30), &agent).await;
    assert_eq!(collector.records.len(), 100);
    assert!(
        collector
            .records
            .iter()
            .all(|r| r.source == "syslog:tls" && r.host == "fw-1")
    );
    assert!(
        !collector
            .records
            .iter()
            .any(|r| r.msg.contains("not encrypted"))
    );
    wait_until(Duration::from_secs(10), "failed handshake counted", || {
        agent.get("/metrics").1.contains("reason=\"tls\"")
    });
}

#[test]
fn invalid_syslog_settings_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (section, needle) in [
        ("[agent.syslog]\ntimezone = \"Mars/Olympus\"\n", "timezone"),
        (
            "[agent.syslog]\ntls = \"127.0.0.1:6514\"\n",
            "tls_cert_file",
        ),
        (
            "[agent.syslog]\nmax_message_bytes = 0\n",
            "max_message_bytes",
        ),
        ("[agent.syslog]\nudp = \"nonsense\"\n", "udp"),
    ] {
        assert_config_error(tmp.path(), section, needle);
    }
}
