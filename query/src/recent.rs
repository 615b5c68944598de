//! The recent window: the newest records, read live from `LOGS`, so a
//! search finds what the filterer has not filed yet (the LSM tree's
//! memtable, in front of the sorted, indexed blobs).
//!
//! Every query instance reads the whole stream with an ordered consumer,
//! starting [`Window::span_ns`] back (the filterer's flush interval plus a
//! margin, so everything not yet in a blob is covered), and keeps records
//! until their JSON size passes `[query] recent_bytes`, dropping the
//! oldest-arrived first. A record both here and in a blob is answered once
//! (the search tells records apart by id). Records whose subject names
//! another app are not kept: the filterer sets them aside too.
//!
//! When the stream cannot be read the window says so ([`Window::fault`]),
//! and answers are flagged partial rather than silently missing the newest
//! records.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use async_nats::jetstream;
use futures::StreamExt;
use sluice_core::Record;
use sluice_core::role::retry_until;
use sluice_core::subject::decode_checked;
use sluice_core::time::now_nanos;
use tokio_util::sync::CancellationToken;

use crate::metrics::QueryMetrics;
use crate::search::Request;

/// Bytes a record is taken to cost besides its text fields.
const RECORD_OVERHEAD: usize = 160;

/// The newest records, bounded by bytes.
pub struct Window {
    inner: Mutex<Inner>,
    max_bytes: usize,
    span_ns: i64,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<Record>,
    bytes: usize,
    /// Records held per app.
    apps: std::collections::BTreeMap<String, usize>,
    /// Why the window may be missing records now, if it may.
    fault: Option<String>,
}

fn cost(r: &Record) -> usize {
    RECORD_OVERHEAD
        + r.id.len()
        + r.app.len()
        + r.service.len()
        + r.host.len()
        + r.msg.len()
        + r.source.len()
        + r.attrs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
}

impl Window {
    /// A window of at most `max_bytes` that reads `span_ns` back when it
    /// (re)starts.
    pub fn new(max_bytes: usize, span_ns: i64) -> Window {
        Window {
            inner: Mutex::new(Inner {
                fault: Some("the recent window has not read the stream yet".into()),
                ..Inner::default()
            }),
            max_bytes,
            span_ns,
        }
    }

    /// How far back the window reads when it starts.
    pub fn span_ns(&self) -> i64 {
        self.span_ns
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds records that arrived, dropping the oldest past the byte cap;
    /// the records and estimated bytes held after.
    pub fn push(&self, records: Vec<Record>) -> (usize, usize) {
        let mut inner = self.lock();
        for r in records {
            inner.bytes += cost(&r);
            *inner.apps.entry(r.app.clone()).or_default() += 1;
            inner.records.push_back(r);
        }
        while inner.bytes > self.max_bytes {
            let Some(old) = inner.records.pop_front() else {
                break;
            };
            inner.bytes -= cost(&old);
            if let Some(n) = inner.apps.get_mut(&old.app) {
                *n -= 1;
                if *n == 0 {
                    inner.apps.remove(&old.app);
                }
            }
        }
        (inner.records.len(), inner.bytes)
    }

    /// The records `request` accepts, and how many were looked at.
    pub fn matching(&self, request: &Request) -> (Vec<Record>, u64) {
        let inner = self.lock();
        let found = inner
            .records
            .iter()
            .filter(|r| request.accepts(r))
            .cloned()
            .collect();
        (found, inner.records.len() as u64)
    }

    /// The apps the window holds records of.
    pub fn apps(&self) -> Vec<String> {
        self.lock().apps.keys().cloned().collect()
    }

    /// Records held, and their estimated bytes.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.records.len(), inner.bytes)
    }

    /// Why the window may be missing the newest records, if it may.
    pub fn fault(&self) -> Option<String> {
        self.lock().fault.clone()
    }

    fn set_fault(&self, fault: Option<String>) {
        self.lock().fault = fault;
    }
}

/// Feeds `window` from `stream` until `stop` is cancelled, reopening the
/// reader (after the last sequence read) whenever it breaks off.
pub async fn feed(
    js: jetstream::Context,
    stream: String,
    window: std::sync::Arc<Window>,
    metrics: QueryMetrics,
    stop: CancellationToken,
) {
    let mut last_seq = 0u64;
    loop {
        let start = now_nanos().saturating_sub(window.span_ns);
        let opened = retry_until(
            &stop,
            crate::ROLE,
            "the recent window's stream reader",
            || sluice_core::nats::ordered_reader(&js, &stream, start, last_seq),
        )
        .await;
        let Some(mut messages) = opened else {
            return;
        };
        window.set_fault(None);
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return,
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(err)) => {
                    window.set_fault(Some(format!(
                        "the recent window lost stream {stream}: {err}"
                    )));
                    tracing::warn!(error = %err, "the recent window's reader broke off; reopening");
                    break;
                }
                None => break,
            };
            if let Ok(info) = message.info() {
                last_seq = info.stream_sequence;
            }
            match decode_checked(message.subject.as_str(), &message.payload) {
                Ok((_, records)) => {
                    metrics.recent_records_in.inc_by(records.len() as u64);
                    let (held, bytes) = window.push(records);
                    metrics.recent_records.set(held as i64);
                    metrics.recent_bytes.set(bytes as i64);
                }
                Err(misfiled) => {
                    metrics.recent_refused.inc();
                    tracing::debug!(reason = %misfiled, "a message the recent window does not keep");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::parse;
    use crate::search::Order;

    fn record(i: usize) -> Record {
        Record {
            id: format!("id{i:04}"),
            ts: 1_000 + i as i64,
            app: "shop".into(),
            service: "api".into(),
            host: "h".into(),
            level: sluice_core::Level::Info,
            msg: format!("message {i:02}"),
            attrs: Default::default(),
            source: String::new(),
        }
    }

    #[test]
    fn the_window_keeps_the_newest_within_its_bytes() {
        let one = cost(&record(0));
        let window = Window::new(one * 10, 0);
        window.push((0..25).map(record).collect());
        let (held, bytes) = window.size();
        assert_eq!(held, 10);
        assert!(bytes <= one * 10);
        let request = Request {
            query: parse("message").unwrap(),
            level: None,
            service: None,
            apps: vec!["shop".into()],
            from_ns: 0,
            to_ns: i64::MAX,
            limit: 100,
            offset: 0,
            order: Order::Newest,
            after: None,
            exact_count: false,
            deadline: std::time::Instant::now(),
        };
        let (found, scanned) = window.matching(&request);
        assert_eq!(scanned, 10);
        assert_eq!(found.first().map(|r| r.id.as_str()), Some("id0015"));
        assert!(window.fault().is_some(), "a window that never read says so");
    }
}
