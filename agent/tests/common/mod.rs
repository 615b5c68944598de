//! Shared pieces of the agent's end-to-end tests: the agent as a real
//! process, its config, its admin endpoint, and a reader of the `LOGS`
//! stream.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use sluice_core::Record;
use sluice_core::testing::{free_port, signal};

/// The agent binary, started and stopped by PID.
pub struct AgentProcess {
    pub config: PathBuf,
    pub admin_port: u16,
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
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-agent"))
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
        sluice_core::testing::wait_until(Duration::from_secs(20), "agent admin endpoint", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_port, path)
    }

    /// One metric's value (summed over labels), 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        metric_value(&body, name)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn metric_value(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.0 GET against 127.0.0.1:port.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
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

/// Reads the `LOGS` stream incrementally, surviving server restarts.
pub struct Collector {
    js: jetstream::Context,
    next_seq: u64,
    pub records: Vec<Record>,
    pub messages: u64,
}

impl Collector {
    pub async fn new(url: &str) -> Collector {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await
            .unwrap();
        Collector {
            js: jetstream::new(client),
            next_seq: 1,
            records: Vec::new(),
            messages: 0,
        }
    }

    /// Reads whatever the stream has beyond what was read; errors (server
    /// away, stream not there yet) are ignored and retried by the caller.
    pub async fn poll(&mut self) {
        let Ok(mut stream) = self.js.get_stream("LOGS").await else {
            return;
        };
        let Ok(info) = stream.info().await else {
            return;
        };
        let last = info.state.last_sequence;
        if last < self.next_seq {
            return;
        }
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: self.next_seq,
                },
                ..Default::default()
            })
            .await;
        let Ok(consumer) = consumer else { return };
        let Ok(mut messages) = consumer.messages().await else {
            return;
        };
        while self.next_seq <= last {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
            let Ok(Some(Ok(msg))) = next else { return };
            let Ok(info) = msg.info() else { return };
            let seq = info.stream_sequence;
            let records = sluice_core::codec::decode_batch(&msg.payload).expect("batch decodes");
            let subject = msg.subject.to_string();
            for r in &records {
                assert_eq!(
                    subject,
                    sluice_core::codec::subject(&r.app, r.level),
                    "record on the wrong subject"
                );
            }
            self.records.extend(records);
            self.messages += 1;
            self.next_seq = seq + 1;
        }
    }

    /// Polls until `done(records)` or the timeout; returns whether done.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll().await;
            if done(&self.records) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
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
