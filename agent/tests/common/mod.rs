//! Shared pieces of the agent's end-to-end tests: the agent as a real
//! process, its config, its admin endpoint, and a reader of the `LOGS`
//! stream.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_core::Record;
pub use sluice_testing::{Collector, http_get, metric_value};
use sluice_testing::{free_port, signal};

/// The agent binary, started and stopped by PID.
pub struct AgentProcess {
    pub config: PathBuf,
    pub admin_port: u16,
    /// A command the agent is started through (e.g. `setpriv` to drop root).
    pub wrapper: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl AgentProcess {
    pub fn new(config: PathBuf, admin_port: u16) -> AgentProcess {
        let log = config.with_extension("log");
        AgentProcess {
            config,
            admin_port,
            wrapper: Vec::new(),
            child: None,
            log,
            starts: 0,
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = env!("CARGO_BIN_EXE_sluice-agent");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,sluice_agent=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.admin_port;
        // Ready: the spool is recovered and every source is open.
        sluice_testing::wait_until(Duration::from_secs(20), "the agent to be ready", || {
            sluice_testing::try_http_get(port, "/ready").is_ok_and(|(status, _)| status == 200)
        });
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "agent did not stop within 30s of SIGTERM\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running agent's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_port, path)
    }

    /// One metric's value (summed over labels); the test fails when the
    /// metric is missing.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        metric_value(&body, name)
    }

    /// Waits until metric `name` reaches `at_least`. A labelled family has
    /// no series until its first count, so a missing metric only means
    /// "not yet"; the wait fails with `what` after `timeout`.
    pub fn wait_metric(&self, name: &str, at_least: f64, timeout: Duration, what: &str) {
        sluice_testing::wait_until(timeout, what, || {
            let (_, body) = self.get("/metrics");
            sluice_testing::try_metric_value(&body, name).is_some_and(|v| v >= at_least)
        });
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Writes an agent config for `files` sections (raw TOML) and returns its
/// path and admin port.
pub fn write_config(dir: &Path, nats_url: &str, extra: &str) -> (PathBuf, u16) {
    let port = free_port();
    let text = format!(
        r#"
[nats]
url = "{nats_url}"
ack_timeout_ms = 2000

[agent]
id = "test-agent"
host = "test-host"
data_dir = "{data}"

[agent.admin]
listen = "127.0.0.1:{port}"
stall_secs = 3

[agent.limits]
nice = 0

[agent.publish]
max_backoff_ms = 1000

{extra}
"#,
        data = dir.join("data").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// Runs `sluice-agent check --config <path>`: its exit code and stderr.
pub fn check_config(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-agent"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that an agent config with `section` is refused by `check` (exit
/// code 2) with an error mentioning `needle`.
pub fn assert_config_error(dir: &Path, section: &str, needle: &str) {
    let (config, _) = write_config(dir, "nats://127.0.0.1:1", section);
    let (code, err) = check_config(&config);
    assert_eq!(code, Some(2), "{section}");
    assert!(err.contains(needle), "{section}: {err}");
}

/// Checks every expected message arrived exactly once and nothing else did.
/// `expected` maps message text to how many times it was written (once).
pub fn assert_exactly_once(records: &[Record], expected: &[String]) {
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for r in records {
        *counts.entry(r.msg.as_str()).or_default() += 1;
    }
    let mut missing = Vec::new();
    for msg in expected {
        match counts.remove(msg.as_str()) {
            Some(1) => {}
            Some(n) => panic!("message delivered {n} times: {:.120}", msg),
            None => missing.push(msg),
        }
    }
    assert!(
        missing.is_empty(),
        "{} messages missing, e.g. {:.200?}",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        counts.is_empty(),
        "{} unexpected messages, e.g. {:.200?}",
        counts.len(),
        counts.keys().take(3).collect::<Vec<_>>()
    );
    assert_eq!(ids.len(), records.len(), "record ids are not distinct");
    assert_eq!(ids.len(), expected.len());
}

/// A line of about 200 bytes, unique per (file, n).
pub fn line(file: &str, n: usize) -> String {
    let level = ["INFO", "WARN", "ERROR", "DEBUG"][n % 4];
    let body = format!(
        "2026-11-22T10:00:00.{:09}Z {level} {file} line {n} ",
        n % 1_000_000_000
    );
    let pad = 200usize.saturating_sub(body.len());
    format!("{body}{}", "x".repeat(pad))
}

pub fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

/// Waits until `want` records arrived; fails with the agent's log if not.
pub async fn wait_for_records(
    collector: &mut Collector,
    want: usize,
    timeout: Duration,
    agent: &AgentProcess,
) {
    let done = collector.until(timeout, |r| r.len() >= want).await;
    assert!(
        done,
        "{} of {want} arrived\n{}",
        collector.records.len(),
        agent.log_text()
    );
}

/// An HTTP response as the tests see it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.body))
    }
}

/// Reads one HTTP/1.1 response (with Content-Length) from `s`.
pub fn read_answer(s: &mut TcpStream) -> Answer {
    try_read_answer(s).expect("connection closed before a whole response")
}

/// Reads one HTTP/1.1 response, `None` when the connection ends first.
pub fn try_read_answer(s: &mut TcpStream) -> Option<Answer> {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + len {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..head_end + len]).to_string();
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// POSTs `body` with the extra `headers` over a fresh connection.
pub fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    try_http_post(port, path, headers, body).expect("no response")
}

/// POSTs like [`http_post`]; `None` when the server closed the connection
/// without answering.
pub fn try_http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    try_read_answer(&mut s)
}

/// The stream's records whose `attrs[key] == value`.
pub fn with_attr<'a>(records: &'a [Record], key: &str, value: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.attrs.get(key).map(String::as_str) == Some(value))
        .collect()
}
