//! Test harness: real servers on free loopback ports with fresh data
//! directories, stopped and cleaned up on drop.
//!
//! A missing server binary fails the test with a message saying how to
//! install it; tests are never skipped.

use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;

use crate::Record;
use crate::config::{NatsConfig, StoreConfig};

/// A benchmark's size: the environment variable `var` when it holds a
/// number, else `default`.
pub fn bench_size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The small runtime a benchmark drives its clients with, leaving the other
/// cores to the processes measured.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Polls `check` every 20 ms until it returns true; panics with `what` after
/// `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 100 ms from async code until it returns true;
/// panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds a binary on `PATH` (and in the usual sbin directories, where Debian
/// installs `nats-server`).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A real `nats-server -js` on a free loopback port with its own store
/// directory.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until it is ready.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (authentication,
    /// TLS) and waits until it is ready.
    pub fn start_with(args: &[&str]) -> NatsServer {
        let binary = find_binary("nats-server").unwrap_or_else(|| {
            panic!(
                "nats-server not found on PATH: install it with `apt-get install -y nats-server` \
                 (or run ./dev/test, which does)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("sluice-nats-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut server = NatsServer {
            binary,
            port: free_port(),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    fn spawn(&mut self) {
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path().join("store"))
            .arg("-l")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let log_for_wait = log.clone();
        wait_until(Duration::from_secs(20), "nats-server to be ready", || {
            std::fs::read_to_string(&log_for_wait).is_ok_and(|l| l.contains("Server is ready"))
        });
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A `[nats]` section pointing at this server.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: Some(self.url()),
            ..NatsConfig::default()
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped server again on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is already running");
        self.spawn();
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The directory holding the store and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stops a child process: SIGTERM, then SIGKILL after 10 s; waits for it.
pub fn terminate(mut child: Child) {
    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// CPU seconds (user + system) a process has used, from `/proc`. Panics
/// when the process is gone or its stat line cannot be read, rather than
/// reporting a cost of 0.
pub fn process_cpu_secs(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (has the process exited?)"));
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("{path} has no command field: {stat:?}"));
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = match fields.get(11..13) {
        Some([user, system]) => [user, system]
            .iter()
            .map(|v| {
                v.parse::<f64>()
                    .unwrap_or_else(|e| panic!("{path}: cpu time {v:?}: {e}"))
            })
            .sum(),
        _ => panic!("{path} has no utime/stime fields: {stat:?}"),
    };
    let per_sec = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks / per_sec
}

/// A process's peak resident set size in MiB, from `/proc`. Panics when it
/// cannot be read, rather than reporting 0.
pub fn process_peak_rss_mib(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (has the process exited?)"));
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{path} has no VmHWM line"));
    kib / 1024.0
}

/// Sends a signal to a process by PID using the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Sum of a metric's values over its labels in Prometheus text. `name` may
/// hold label pairs, `name{outcome="rejected"}`, to sum only the series
/// that have all of them.
///
/// Panics when the text neither has a sample of the metric nor declares it
/// (`# TYPE`, with a counter's `_total` or a histogram's `_count`/`_sum`
/// suffix taken off): a renamed or missing metric fails the test instead of
/// reading as 0. A declared metric with no matching series is 0. (The
/// prometheus-client encoder leaves out a labelled family that has no series
/// yet, so a role creates the series of its bounded labels up front, as the
/// dead-letter counters do, or a test waits for the first one with
/// [`try_metric_value`].)
pub fn metric_value(body: &str, name: &str) -> f64 {
    try_metric_value(body, name).unwrap_or_else(|| {
        panic!(
            "metric {name} is not in the metrics text ({} lines); was it renamed or never registered?",
            body.lines().count()
        )
    })
}

/// Like [`metric_value`], but `None` when the metric is missing.
pub fn try_metric_value(body: &str, name: &str) -> Option<f64> {
    let (base, wanted) = match name.split_once('{') {
        Some((base, labels)) => (base, split_labels(labels.trim_end_matches('}'))),
        None => (name, Vec::new()),
    };
    let mut found = false;
    let mut sum = 0.0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(base) else {
            continue;
        };
        let labels = match rest.strip_prefix('{') {
            Some(rest) => split_labels(rest.split_once('}').map_or("", |(l, _)| l)),
            None if rest.starts_with(' ') => Vec::new(),
            None => continue,
        };
        found = true;
        if wanted.iter().all(|w| labels.contains(w))
            && let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
        }
    }
    if found {
        return Some(sum);
    }
    let family = ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    let declared = body.lines().any(|l| {
        l.strip_prefix("# TYPE ")
            .and_then(|rest| rest.split(' ').next())
            .is_some_and(|declared| declared == family || declared == base)
    });
    declared.then_some(0.0)
}

/// `a="x",b="y"` as its pairs (values in this project hold no `,`).
fn split_labels(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// A minimal HTTP/1.0 GET against 127.0.0.1:port: the status and the body.
///
/// Panics when nothing listens there or the answer is not HTTP, so an
/// endpoint that is down fails the test instead of reading as empty; use
/// [`try_http_get`] to poll an endpoint that may not be up yet.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path).unwrap_or_else(|err| panic!("GET 127.0.0.1:{port}{path}: {err}"))
}

/// Like [`http_get`], but an error when the endpoint cannot be reached or
/// does not answer HTTP.
pub fn try_http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("cannot connect: {e} (is the process running?)"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let status = out
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                out.chars().take(80).collect::<String>()
            )
        })?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Reads the `LOGS` stream incrementally, surviving server restarts.
pub struct Collector {
    js: jetstream::Context,
    next_seq: u64,
    /// Every record read so far, in stream order.
    pub records: Vec<Record>,
    /// Messages (batches) read so far.
    pub messages: u64,
    /// The `Nats-Msg-Id` of every message read, in stream order (empty
    /// when a message has none).
    pub msg_ids: Vec<String>,
}

impl Collector {
    /// A collector reading from the stream's first message.
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
            msg_ids: Vec::new(),
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
            let records = crate::codec::decode_batch(&msg.payload).expect("batch decodes");
            let subject = msg.subject.to_string();
            for r in &records {
                assert_eq!(
                    subject,
                    crate::codec::subject(&r.app, r.level),
                    "record on the wrong subject"
                );
            }
            self.records.extend(records);
            self.messages += 1;
            self.msg_ids.push(
                msg.headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
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

/// The bucket every [`S3Server`] starts with.
pub const S3_BUCKET: &str = "sluice-test";
/// The access key [`S3Server`] accepts.
pub const S3_ACCESS_KEY: &str = "sluice-test-access";
/// The secret key [`S3Server`] accepts.
pub const S3_SECRET_KEY: &str = "sluice-test-secret";

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else
/// `$HOME/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// A real S3-compatible server (`s3s-fs`) on a free loopback port, serving a
/// fresh directory with the bucket [`S3_BUCKET`] and requiring the keys
/// [`S3_ACCESS_KEY`]/[`S3_SECRET_KEY`].
///
/// s3s-fs keeps each bucket as a directory under its root and each object as
/// a file at its key, so tests can look at [`S3Server::root`] directly.
pub struct S3Server {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    root: PathBuf,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> S3Server {
        let binary = find_binary("s3s-fs")
            .or_else(|| {
                cargo_bin_dir()
                    .map(|d| d.join("s3s-fs"))
                    .filter(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "s3s-fs not found: install it with \
                     `cargo install s3s-fs@0.14.1 --features binary --locked` \
                     (or run ./dev/test, which does)"
                )
            });
        let dir = tempfile::Builder::new()
            .prefix("sluice-s3-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(S3_BUCKET)).expect("cannot create the bucket directory");
        let mut server = S3Server {
            binary,
            port: 0,
            dir,
            root,
            child: None,
        };
        // The free port may be taken between probing and binding; a server
        // that exits at once gets another port.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("s3s-fs would not start:\n{}", server.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    /// Starts the process; false if it exited before accepting connections.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.log_path()).expect("cannot create the s3s-fs log");
        let log_err = log.try_clone().expect("cannot duplicate the log file");
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&self.root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for s3s-fs to accept connections:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `[store]` section for `s3://sluice-test/<prefix>` on this server.
    pub fn store_config(&self, prefix: &str) -> StoreConfig {
        let prefix = prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            format!("s3://{S3_BUCKET}")
        } else {
            format!("s3://{S3_BUCKET}/{prefix}")
        };
        StoreConfig {
            url,
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(S3_ACCESS_KEY.into()),
            secret_access_key: Some(S3_SECRET_KEY.into()),
            allow_http: true,
        }
    }

    /// The directory s3s-fs serves: objects appear as files under
    /// `root/sluice-test/<key>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it
    /// to exit; the port and data stay for [`S3Server::start_again`].
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts a stopped server again on the same port and root.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "s3s-fs is already running");
        assert!(
            self.spawn(),
            "s3s-fs would not start again on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// The server's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Publishes records straight to the `LOGS` stream as an agent would: in
/// batches of one app and level, at most `per_message` records each, with a
/// window of acks in flight. Returns the number of messages.
pub async fn publish_records(
    js: &jetstream::Context,
    records: &[Record],
    per_message: usize,
) -> u64 {
    let mut groups: std::collections::BTreeMap<(String, crate::Level), Vec<Record>> =
        Default::default();
    for r in records {
        groups
            .entry((r.app.clone(), r.level))
            .or_default()
            .push(r.clone());
    }
    let mut acks = futures::stream::FuturesUnordered::new();
    let mut messages = 0;
    for ((app, level), rs) in groups {
        for chunk in rs.chunks(per_message.max(1)) {
            let payload = crate::codec::encode_batch(chunk);
            let ack = js
                .publish(crate::codec::subject(&app, level), payload.into())
                .await
                .expect("publish");
            acks.push(ack.into_future());
            messages += 1;
            if acks.len() >= 128 {
                acks.next().await.expect("an ack").expect("stored");
            }
        }
    }
    while let Some(ack) = acks.next().await {
        ack.expect("stored");
    }
    messages
}

/// A message a sender allowed only `logs.shop.>` might publish to reach
/// another app, and what every consumer of `LOGS` must make of it.
#[derive(Debug, Clone)]
pub struct Misfiling {
    /// The subject it was published on.
    pub subject: String,
    /// The reason label every consumer sets it aside with.
    pub reason: &'static str,
    /// Text the reason must hold (the claimed app or level).
    pub names: &'static str,
}

/// Publishes, over a raw connection, the messages a sender could use to
/// write into the app `billing` or past its subject, each with records that
/// also match a `billing` rule or error group if anyone trusted them:
///
/// 1. `logs.shop.error` whose records all say `app = "billing"`;
/// 2. `logs.shop.error` with one `shop` record and one `"../billing"`;
/// 3. `logs.shop.info` holding an `ERROR` record;
/// 4. `logs.Billing.error` (an invalid app in the subject);
/// 5. `logs.billing` (not `logs.<app>.<level>`).
pub async fn publish_misfiled(js: &jetstream::Context) -> Vec<Misfiling> {
    use crate::Level;
    let billing = |app: &str, level: Level| {
        test_record(
            app,
            "ledger",
            level,
            "web-1",
            "billing ledger mismatch for invoice 4411",
        )
    };
    let cases: Vec<(Misfiling, Vec<Record>)> = vec![
        (
            Misfiling {
                subject: "logs.shop.error".into(),
                reason: "other_app",
                names: "\"billing\"",
            },
            (0..3).map(|_| billing("billing", Level::Error)).collect(),
        ),
        (
            Misfiling {
                subject: "logs.shop.error".into(),
                reason: "other_app",
                names: "\"../billing\"",
            },
            vec![
                billing("shop", Level::Error),
                billing("../billing", Level::Error),
            ],
        ),
        (
            Misfiling {
                subject: "logs.shop.info".into(),
                reason: "other_level",
                names: "ERROR",
            },
            vec![billing("shop", Level::Error)],
        ),
        (
            Misfiling {
                subject: "logs.Billing.error".into(),
                reason: "invalid_app",
                names: "logs.Billing.error",
            },
            vec![billing("Billing", Level::Error)],
        ),
        (
            Misfiling {
                subject: "logs.billing".into(),
                reason: "invalid_subject",
                names: "logs.billing",
            },
            vec![billing("billing", Level::Error)],
        ),
    ];
    let mut out = Vec::new();
    for (case, records) in cases {
        let payload = crate::codec::encode_batch(&records);
        js.publish(case.subject.clone(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        out.push(case);
    }
    out
}

/// One message on the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetterSeen {
    /// The `Sluice-Subject` header: the subject it came on.
    pub subject: String,
    /// The `Sluice-Reason` header.
    pub reason: String,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// What `role` has set aside on the dead-letter stream so far (empty when
/// the stream does not exist yet).
pub async fn dead_letters(js: &jetstream::Context, role: &str) -> Vec<DeadLetterSeen> {
    let subject = crate::deadletter::subject(role);
    let Ok(mut stream) = js.get_stream(crate::deadletter::STREAM).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    for seq in first.max(1)..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        if msg.subject.as_str() != subject {
            continue;
        }
        let header = |name: &str| {
            msg.headers
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        out.push(DeadLetterSeen {
            subject: header("Sluice-Subject"),
            reason: header("Sluice-Reason"),
            payload: msg.payload.clone(),
        });
    }
    out
}

/// Waits until `role` has set every one of `sent` aside, each once, with
/// its reason; panics with what it found otherwise.
pub async fn wait_dead_lettered(js: &jetstream::Context, role: &str, sent: &[Misfiling]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = dead_letters(js, role).await;
        let matched = |m: &Misfiling| {
            seen.iter()
                .filter(|d| {
                    d.subject == m.subject
                        && d.reason.starts_with(m.reason)
                        && d.reason.contains(m.names)
                })
                .count()
        };
        if seen.len() == sent.len() && sent.iter().all(|m| matched(m) == 1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{role} set aside {seen:#?}, expected one each of {sent:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request a [`Hooks`] receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The request path.
    pub path: String,
    /// The `X-Sluice-Id` header (empty when absent).
    pub id: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// The body's size in bytes.
    pub bytes: usize,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Clone, Default)]
struct HookState {
    got: std::sync::Arc<std::sync::Mutex<Vec<Hook>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A webhook receiver on a fixed loopback port that records every POST and
/// answers with a settable status; it can be stopped (the port refuses
/// connections) and started again on the same port.
pub struct Hooks {
    port: u16,
    state: HookState,
    server: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl Hooks {
    /// A receiver on a free port, not yet listening.
    pub fn new() -> Hooks {
        let state = HookState::default();
        state
            .status
            .store(200, std::sync::atomic::Ordering::Relaxed);
        Hooks {
            port: free_port(),
            state,
            server: None,
        }
    }

    /// A receiver listening on a free port.
    pub async fn start() -> Hooks {
        let mut h = Hooks::new();
        h.listen().await;
        h
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts listening (again).
    pub async fn listen(&mut self) {
        use axum::routing::post;
        if self.server.is_some() {
            return;
        }
        async fn record(
            axum::extract::State(state): axum::extract::State<HookState>,
            uri: axum::http::Uri,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::http::StatusCode {
            let id = headers
                .get("x-sluice-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let status = state.status.load(std::sync::atomic::Ordering::Relaxed);
            state
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if status == 200 {
                state.got.lock().unwrap().push(Hook {
                    path: uri.path().to_string(),
                    id,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                    bytes: body.len(),
                    at: Instant::now(),
                });
            }
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }
        let app = axum::Router::new()
            .route("/{*path}", post(record))
            .with_state(self.state.clone());
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .into_future()
                .await;
        });
        self.server = Some((task, tx));
    }

    /// Stops listening: connections are refused until [`Hooks::listen`].
    pub async fn stop(&mut self) {
        if let Some((task, tx)) = self.server.take() {
            let _ = tx.send(());
            task.abort();
            let _ = task.await;
        }
    }

    /// Answers every request with `status` from now on (only 200s are
    /// recorded).
    pub fn answer(&self, status: u16) {
        self.state
            .status
            .store(status, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests received so far, whatever the answer.
    pub fn requests(&self) -> usize {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Everything accepted so far.
    pub fn got(&self) -> Vec<Hook> {
        self.state.got.lock().unwrap().clone()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks::new()
    }
}

/// A record for tests: app, service, level and message given; a fresh id,
/// `ts` now, host `host`, a `request_id` attribute.
pub fn test_record(app: &str, service: &str, level: crate::Level, host: &str, msg: &str) -> Record {
    static IDS: std::sync::Mutex<Option<crate::record::IdGen>> = std::sync::Mutex::new(None);
    let id = IDS
        .lock()
        .unwrap()
        .get_or_insert_with(crate::record::IdGen::new)
        .next_id();
    Record {
        id,
        ts: crate::record::now_nanos(),
        app: app.into(),
        service: service.into(),
        host: host.into(),
        level,
        msg: msg.into(),
        attrs: [(
            "request_id".to_string(),
            format!("req-{}", crate::record::now_nanos()),
        )]
        .into_iter()
        .collect(),
        source: "test".into(),
    }
}
