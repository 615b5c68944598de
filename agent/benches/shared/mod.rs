//! What the agent's benchmarks share: the agent as a release-built process,
//! and the limit every figure is compared with (raw JetStream publishing,
//! measured in the same run).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sluice_core::codec::encode_batch;
use sluice_core::config::NatsConfig;
use sluice_core::{Level, Record};
use sluice_testing::{NatsServer, StopOnDrop, free_port, http_get, metric_value};

/// Bytes per benchmark line or message.
pub const LINE_BYTES: usize = 200;

/// A 200-byte line (with its newline) for file `file`, number `n`.
pub fn line(file: usize, n: usize, ts: &str) -> String {
    let head = format!("{ts} INFO file{file} line {n} ");
    format!("{head}{}", "x".repeat(LINE_BYTES - 1 - head.len()))
}

/// One metric of the process whose admin endpoint is on `port`.
pub fn metric(port: u16, name: &str) -> f64 {
    metric_value(&http_get(port, "/metrics").1, name)
}

/// The agent binary, configured with `sources` (raw TOML) and started.
pub struct Agent {
    pub child: StopOnDrop,
    pub port: u16,
}

impl Agent {
    pub fn start(dir: &Path, nats: &NatsServer, name: &str, sources: &str) -> Agent {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[nats]\nurl = \"{}\"\n[agent]\nid = \"bench-{name}\"\ndata_dir = \"{}\"\n\
                 [agent.admin]\nlisten = \"127.0.0.1:{port}\"\n[agent.limits]\nnice = 0\n{sources}\n",
                nats.url(),
                dir.join(format!("data-{name}")).display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-agent"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Ready: the spool is recovered and every source is open.
        sluice_testing::wait_until(Duration::from_secs(30), "the agent to be ready", || {
            sluice_testing::try_http_get(port, "/ready").is_ok_and(|(status, _)| status == 200)
        });
        Agent {
            child: StopOnDrop(child),
            port,
        }
    }

    /// Tails `include` as app `app`.
    pub fn files(dir: &Path, nats: &NatsServer, include: &str, app: &str) -> Agent {
        let sources = format!("[[agent.files]]\ninclude = [\"{include}\"]\napp = \"{app}\"\n");
        Agent::start(dir, nats, app, &sources)
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric(self.port, name)
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn stop(self) {
        drop(self.child);
    }
}

/// The limit: raw JetStream publish of pre-encoded batches of 200 records
/// (~64 KiB), 64 in flight, into a stream set up like `LOGS`. Returns
/// (records/s, MB/s of line bytes).
pub async fn raw_limit(nats: &NatsServer) -> (f64, f64) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let cfg = NatsConfig {
        stream: "RAW".into(),
        ..NatsConfig::default()
    };
    let mut stream_cfg = sluice_core::nats::stream_config(&cfg);
    stream_cfg.subjects = vec!["raw.>".into()];
    js.create_stream(stream_cfg).await.unwrap();
    let ts = "2026-11-22T10:00:00.000000000Z";
    let records: Vec<Record> = (0..)
        .map(|n| Record {
            id: ulid::Ulid::new().to_string(),
            ts: 1_795_428_000_000_000_000,
            app: "bench".into(),
            service: "file0".into(),
            host: "bench-host".into(),
            level: Level::Info,
            msg: line(0, n, ts),
            attrs: Default::default(),
            source: "file:/tmp/bench/file0.log".into(),
        })
        .take(200)
        .collect();
    let payload = bytes::Bytes::from(encode_batch(&records));
    let per_msg = records.len();
    let total_msgs = 6_000usize;
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..total_msgs {
        if in_flight.len() >= 64 {
            let done: Result<_, async_nats::jetstream::context::PublishError> =
                in_flight.next().await.unwrap();
            done.unwrap();
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw:{i}").as_str());
        let ack = js
            .publish_with_headers("raw.bench.info", headers, payload.clone())
            .await
            .unwrap();
        in_flight.push(async move { ack.await });
    }
    while let Some(r) = in_flight.next().await {
        r.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let lines = (total_msgs * per_msg) as f64;
    println!(
        "(a) raw JetStream publish: {} msgs of {} KiB ({per_msg} records): {:.0} records/s, {:.1} MB/s of line bytes, {:.1} MB/s on the wire",
        total_msgs,
        payload.len() / 1024,
        lines / secs,
        lines * LINE_BYTES as f64 / secs / 1e6,
        (total_msgs * payload.len()) as f64 / secs / 1e6
    );
    js.delete_stream("RAW").await.unwrap();
    (lines / secs, lines * LINE_BYTES as f64 / secs / 1e6)
}
