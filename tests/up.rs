//! `sluice up` for real: it starts its own nats-server, runs the agent and
//! every tier role; lines written to a tailed file arrive in `LOGS`, are
//! filed, and their error group is announced in the log; SIGTERM stops it
//! all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_testing::{Collector, StopOnDrop, free_port, signal, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_nats_and_the_agent_and_stops_cleanly() {
    assert!(
        sluice_testing::find_binary("nats-server").is_some(),
        "nats-server not found: install it with `apt-get install -y nats-server` (or run ./dev/test)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let nats_port = free_port();
    let admin_port = free_port();
    let filterer_port = free_port();
    let aggregator_port = free_port();
    let alerter_port = free_port();
    let expiry_port = free_port();
    let query_port = free_port();
    let syslog_port = free_port();
    let http_port = free_port();
    let config = tmp.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ndata_dir = \"{}\"\n[agent.admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             [agent.limits]\nnice = 0\n[[agent.files]]\ninclude = [\"{}/*.log\"]\napp = \"up\"\n\
             [agent.syslog]\nudp = \"127.0.0.1:{syslog_port}\"\ntcp = \"127.0.0.1:{syslog_port}\"\n\
             [agent.http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [filterer]\nflush_interval_secs = 1\n[filterer.admin]\nlisten = \"127.0.0.1:{filterer_port}\"\n\
             [aggregator.admin]\nlisten = \"127.0.0.1:{aggregator_port}\"\n\
             [alerter.admin]\nlisten = \"127.0.0.1:{alerter_port}\"\n\
             [expiry.admin]\nlisten = \"127.0.0.1:{expiry_port}\"\n\
             [query]\nlisten = \"127.0.0.1:{query_port}\"\n",
            tmp.path().join("agent").display(),
            logs.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("up.out");
    let mut child = start_up(tmp.path(), &config, nats_port);
    // The banner comes once every role has bound its ports.
    wait_until(Duration::from_secs(30), "sluice up's banner", || {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "sluice up exited with {status} before its banner:\n{}",
                std::fs::read_to_string(tmp.path().join("up.err")).unwrap_or_default()
            );
        }
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("press ctrl-c to stop"))
    });
    assert!(TcpStream::connect(("127.0.0.1", admin_port)).is_ok());
    let printed = std::fs::read_to_string(&out).unwrap();
    // Expiry runs, keeping everything: its first pass lists and acts on
    // nothing.
    assert!(
        printed.contains(&format!(
            "expiry:        http://127.0.0.1:{expiry_port}/metrics (keeps everything)"
        )),
        "{printed}"
    );
    wait_until(Duration::from_secs(20), "expiry's first pass", || {
        sluice_testing::try_http_get(expiry_port, "/metrics")
            .ok()
            .and_then(|(_, body)| {
                sluice_testing::try_metric_value(&body, "sluice_expiry_passes_total")
            })
            .is_some_and(|n| n >= 1.0)
    });
    assert!(printed.contains("sluice is up"), "{printed}");
    assert!(
        printed.contains(&format!("nats://127.0.0.1:{nats_port}")),
        "{printed}"
    );

    assert!(
        printed.contains(&format!("tcp://127.0.0.1:{syslog_port}"))
            && printed.contains(&format!("http://127.0.0.1:{http_port}/api/v1/logs")),
        "{printed}"
    );
    // Both listeners feed the same stream.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            b"<11>1 - h1 udpsvc - - - over udp",
            ("127.0.0.1", syslog_port),
        )
        .unwrap();
    TcpStream::connect(("127.0.0.1", syslog_port))
        .unwrap()
        .write_all(b"<12>1 - h1 tcpsvc - - - over tcp\n")
        .unwrap();
    let body = br#"{"message":"over http","service":"websvc"}"#;
    let mut http = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
    write!(
        http,
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    http.write_all(body).unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut collector = Collector::new(&format!("nats://127.0.0.1:{nats_port}")).await;
    let ok = collector
        .until(Duration::from_secs(30), |r| r.len() >= 3)
        .await;
    assert!(ok, "{:?}", collector.records);
    let mut net: Vec<(&str, &str)> = collector
        .records
        .iter()
        .map(|r| (r.service.as_str(), r.msg.as_str()))
        .collect();
    net.sort();
    assert_eq!(
        net,
        [
            ("tcpsvc", "over tcp"),
            ("udpsvc", "over udp"),
            ("websvc", "over http")
        ]
    );
    collector.records.clear();

    let lines: Vec<String> = (0..500).map(|n| format!("ERROR up line {n}")).collect();
    std::fs::write(logs.join("svc.log"), lines.join("\n") + "\n").unwrap();
    let ok = collector
        .until(Duration::from_secs(30), |r| r.len() >= lines.len())
        .await;
    assert!(
        ok,
        "{} of {} arrived\n{}",
        collector.records.len(),
        lines.len(),
        std::fs::read_to_string(tmp.path().join("up.err")).unwrap_or_default()
    );
    let mut got: Vec<&str> = collector.records.iter().map(|r| r.msg.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(
        collector
            .records
            .iter()
            .all(|r| r.app == "up" && r.service == "svc")
    );
    // The aggregator groups the 500 errors into one group and tells the
    // log receiver `sluice up` configures when the file names none.
    assert!(printed.contains("receiver:      log"), "{printed}");
    for port in [aggregator_port, alerter_port] {
        assert_eq!(sluice_testing::http_get(port, "/health").0, 200);
    }
    wait_until(
        Duration::from_secs(30),
        "the new-group notice in the log",
        || {
            std::fs::read_to_string(tmp.path().join("up.err"))
                .unwrap_or_default()
                .contains("new error in up/svc: ERROR up line <num>")
        },
    );
    // The filterer files them under the data directory.
    let blobs = tmp.path().join("data/blobs/app=up");
    wait_until(
        Duration::from_secs(30),
        "the filterer to file a blob",
        || {
            walk(&blobs)
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        },
    );
    // And the search the banner points at finds them there.
    assert!(
        printed.contains(&format!("http://127.0.0.1:{query_port}/api/v1/logs/search")),
        "{printed}"
    );
    wait_until(
        Duration::from_secs(30),
        "the search to find every line",
        || {
            let (status, body) = sluice_testing::http_get(
                query_port,
                "/api/v1/logs/search?query=up%20line&app=up&limit=1000",
            );
            assert_eq!(status, 200, "{body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            answer["logs"].as_array().map_or(0, Vec::len) == lines.len()
        },
    );

    signal(child.0.id(), "TERM");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // Its nats-server went with it.
    wait_until(Duration::from_secs(10), "nats-server to stop", || {
        TcpStream::connect(("127.0.0.1", nats_port)).is_err()
    });
}

#[test]
fn one_role_failing_stops_every_role_and_up_exits_1() {
    assert!(
        sluice_testing::find_binary("nats-server").is_some(),
        "nats-server not found: install it with `apt-get install -y nats-server` (or run ./dev/test)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let [
        agent_port,
        filterer_port,
        alerter_port,
        expiry_port,
        syslog_port,
        http_port,
        query_port,
    ] = std::array::from_fn(|_| free_port());
    // Something else holds the aggregator's admin port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let config = tmp.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ndata_dir = \"{}\"\n[agent.admin]\nlisten = \"127.0.0.1:{agent_port}\"\n\
             [agent.limits]\nnice = 0\n\
             [agent.syslog]\nudp = \"127.0.0.1:{syslog_port}\"\ntcp = \"127.0.0.1:{syslog_port}\"\n\
             [agent.http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{filterer_port}\"\n\
             [aggregator.admin]\nlisten = \"127.0.0.1:{taken_port}\"\n\
             [alerter.admin]\nlisten = \"127.0.0.1:{alerter_port}\"\n\
             [expiry.admin]\nlisten = \"127.0.0.1:{expiry_port}\"\n\
             [query]\nlisten = \"127.0.0.1:{query_port}\"\n",
            tmp.path().join("agent").display(),
        ),
    )
    .unwrap();
    let err_path = tmp.path().join("up.err");
    let mut child = start_up(tmp.path(), &config, nats_port);
    let mut status = None;
    wait_until(Duration::from_secs(20), "sluice up to exit", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "aggregator stopped: cannot listen on 127.0.0.1:{taken_port}"
        )),
        "{err}"
    );
    // Every other role and the nats-server it started are gone with it.
    for port in [
        nats_port,
        agent_port,
        filterer_port,
        alerter_port,
        http_port,
        query_port,
    ] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still answers after sluice up exited\n{err}"
        );
    }
    drop(taken);
}

#[test]
fn check_reports_bad_files_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "[nats]\nurl = \"nats://x\"\nunknown = true\n").unwrap();
    let out = Command::new(sluice_tests::sluice_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("unknown"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Starts `sluice up` on `config` with its data, stdout (`up.out`) and
/// stderr (`up.err`) under `dir`; stopped by PID when dropped, even when an
/// assertion fails first.
fn start_up(dir: &std::path::Path, config: &std::path::Path, nats_port: u16) -> StopOnDrop {
    let child = Command::new(sluice_tests::sluice_binary())
        .args(["up", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--nats-port", &nats_port.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("up.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("up.err")).unwrap())
        .spawn()
        .unwrap();
    StopOnDrop(child)
}
