//! The `LOGS` stream from a test's side: publishing records as an agent
//! would, reading back what arrived, and records to publish.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use sluice_core::Record;

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

/// Publishes records straight to the `LOGS` stream as an agent would: in
/// batches of one app and level, at most `per_message` records each, with a
/// window of acks in flight. Returns the number of messages.
pub async fn publish_records(
    js: &jetstream::Context,
    records: &[Record],
    per_message: usize,
) -> u64 {
    let mut groups: std::collections::BTreeMap<(String, sluice_core::Level), Vec<Record>> =
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
            let payload = sluice_core::codec::encode_batch(chunk);
            let ack = js
                .publish(sluice_core::codec::subject(&app, level), payload.into())
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

/// A record for tests: app, service, level and message given; a fresh id,
/// `ts` now, host `host`, a `request_id` attribute.
pub fn test_record(
    app: &str,
    service: &str,
    level: sluice_core::Level,
    host: &str,
    msg: &str,
) -> Record {
    static IDS: std::sync::Mutex<Option<sluice_core::record::IdGen>> = std::sync::Mutex::new(None);
    let id = IDS
        .lock()
        .unwrap()
        .get_or_insert_with(sluice_core::record::IdGen::new)
        .next_id();
    Record {
        id,
        ts: sluice_core::record::now_nanos(),
        app: app.into(),
        service: service.into(),
        host: host.into(),
        level,
        msg: msg.into(),
        attrs: [(
            "request_id".to_string(),
            format!("req-{}", sluice_core::record::now_nanos()),
        )]
        .into_iter()
        .collect(),
        source: "test".into(),
    }
}
