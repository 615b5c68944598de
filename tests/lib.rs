//! End-to-end tests across components: the real `sluice` binary started
//! as its users start it, against a real `nats-server` and a real S3 server
//! (`s3s-fs`), both from the `sluice-testing` harness.
//!
//! | test | what crosses |
//! | --- | --- |
//! | `filterer.rs` | `LOGS` → `sluice filterer` → S3 blobs and sidecars, read back by DuckDB; kill -9, store outages, two filterers, dead letters |
//! | `alerts.rs` | `sluice alerter` and `sluice alerts` (silences) against a webhook receiver |
//! | `up.rs` | `sluice up`: every role on one machine, from a log line to a stored blob |
//! | `lifecycle.rs` | every role on the role runtime: SIGTERM while NATS is away, a taken admin port |
//! | `query.rs` | `sluice-agent` → `LOGS` → `sluice filterer` → S3 → `sluice query`: 30 queries against a naive scan of the blobs |
//! | `read.rs` | `sluice search`, `tail` and `request` against a running `sluice query` |
//! | `check.rs` | `sluice check` and `sluice-agent check`: a bad value in every section, with file and line |
//! | `ui.rs` | the web page in headless Chromium over WebDriver, on records posted to the agent and filed |

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_testing::{
    NatsServer, S3Server, StopOnDrop, free_port, try_http_get_as, wait_until, workspace_binary,
};

/// The `sluice` binary, built with the profile of the tests.
pub fn sluice_binary() -> PathBuf {
    sluice_testing::workspace_binary("sluice", "sluice")
}

/// Posts `body` (JSON) to the agent's HTTP input on `port`; panics unless
/// it answers 200 (the records are in its spool).
pub fn post(port: u16, body: &[u8]) {
    let (status, answer) = post_status(port, body);
    assert_eq!(status, 200, "{answer}");
}

/// Posts `body` (JSON) to the agent's HTTP input on `port`: the status and
/// the body of the answer.
pub fn post_status(port: u16, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

pub use sluice_testing::files_under as files;

/// The records the sidecars under `root` count, and how many sidecars.
pub fn filed(root: &Path) -> (u64, usize) {
    let sidecars = files(root, ".ndjson.gz.idx");
    let records = sidecars
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter_map(|v| v["records"].as_u64())
        .sum();
    (records, sidecars.len())
}

/// Starts `program args… --config config`, its stderr to `log`.
pub fn spawn(program: PathBuf, args: &[&str], config: &Path, log: &Path) -> StopOnDrop {
    StopOnDrop(
        Command::new(program)
            .args(args)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The agent (HTTP input), the filterer, the query service and, when
/// asked, the aggregator, on free ports against one `nats-server` and one
/// S3 server.
pub struct Stack {
    /// The agent's HTTP input.
    pub http: u16,
    /// The query service.
    pub query: u16,
    /// The blobs' directory inside s3s-fs's root.
    pub root: PathBuf,
    _processes: Vec<StopOnDrop>,
}

/// What a [`Stack`] runs.
#[derive(Default)]
pub struct StackOptions<'a> {
    /// The filterer's flush interval.
    pub flush_secs: u64,
    /// Lines appended to the config after `[query] listen`.
    pub query_extra: &'a str,
    /// Whether the aggregator runs too.
    pub aggregator: bool,
}

/// The agent, the filterer and the query service, with `query_extra`
/// appended after `[query] listen`.
pub fn stack(
    nats: &NatsServer,
    s3: &S3Server,
    dir: &Path,
    flush_secs: u64,
    query_extra: &str,
) -> Stack {
    stack_with(
        nats,
        s3,
        dir,
        &StackOptions {
            flush_secs,
            query_extra,
            aggregator: false,
        },
    )
}

/// A [`Stack`] as `options` say.
pub fn stack_with(nats: &NatsServer, s3: &S3Server, dir: &Path, options: &StackOptions) -> Stack {
    let (http, agent_admin, filterer_admin, query, aggregator_admin) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n{}\
             [agent]\ndata_dir = \"{}\"\n[agent.admin]\nlisten = \"127.0.0.1:{agent_admin}\"\n\
             [agent.limits]\nnice = 0\n[agent.http]\nlisten = \"127.0.0.1:{http}\"\n\
             [filterer]\nflush_interval_secs = {}\ncompaction_grace_secs = 0\ncompaction_interval_secs = 1\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{filterer_admin}\"\n\
             [aggregator.admin]\nlisten = \"127.0.0.1:{aggregator_admin}\"\n\
             [query]\nlisten = \"127.0.0.1:{query}\"\n{}",
            nats.url(),
            s3.store_section("logs"),
            dir.join("agent").display(),
            options.flush_secs,
            options.query_extra,
        ),
    )
    .unwrap();
    let logs = |name: &str| dir.join(format!("{name}.log"));
    let sluice = sluice_binary();
    let mut processes = vec![
        spawn(
            workspace_binary("sluice-agent", "sluice-agent"),
            &[],
            &config,
            &logs("agent"),
        ),
        spawn(sluice.clone(), &["filterer"], &config, &logs("filterer")),
        spawn(sluice.clone(), &["query"], &config, &logs("query")),
    ];
    let mut ready = vec![
        (agent_admin, "agent"),
        (filterer_admin, "filterer"),
        (query, "query"),
    ];
    if options.aggregator {
        processes.push(spawn(sluice, &["aggregator"], &config, &logs("aggregator")));
        ready.push((aggregator_admin, "aggregator"));
    }
    for (port, what) in ready {
        wait_until(Duration::from_secs(30), what, || {
            try_http_get_as(port, "/ready", None).is_ok_and(|(s, _)| s == 200)
        });
    }
    Stack {
        http,
        query,
        root: s3.root().join(sluice_testing::S3_BUCKET).join("logs"),
        _processes: processes,
    }
}
