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
//!
//! Each record held has a [`Position`]: its message's stream sequence and
//! its place in the message. Positions are the same on every instance, so
//! a live tail ([`Window::after`]) resumes from a `Last-Event-ID` on any of
//! them, and says when records it should have sent were dropped already.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_nats::jetstream;
use futures::StreamExt;
use sluice_core::Record;
use sluice_core::role::retry_until;
use sluice_core::subject::decode_checked;
use sluice_core::time::now_nanos;
use tokio_util::sync::CancellationToken;

use crate::metrics::QueryMetrics;
use crate::search::{Request, Stats};

/// Where a record stands in the stream: its message's sequence, and its
/// place among the message's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub index: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.seq, self.index)
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(text: &str) -> Result<Position, String> {
        let bad = || format!("{text:?} is not a position this service gave out (<seq>-<index>)");
        let (seq, index) = text.split_once('-').ok_or_else(bad)?;
        Ok(Position {
            seq: seq.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

/// Records after a position, as [`Window::after`] gives them.
#[derive(Debug, Default)]
pub struct After {
    /// The records that passed the filter, in stream order.
    pub records: Vec<(Position, Record)>,
    /// The last position looked at (where the next call goes on).
    pub looked: Option<Position>,
    /// Records after the asked position were dropped before they could be
    /// given.
    pub gap: bool,
}

/// Bytes a record is taken to cost besides its text fields.
const RECORD_OVERHEAD: usize = 160;

/// The newest records, bounded by bytes.
pub struct Window {
    inner: Mutex<Inner>,
    max_bytes: usize,
    span_ns: i64,
    /// The newest position held, for tails waiting on new records.
    latest: tokio::sync::watch::Sender<Option<Position>>,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<(Position, Record)>,
    /// The first position ever held, and the newest one dropped: a tail
    /// asking for records between them may have missed some.
    first: Option<Position>,
    dropped: Option<Position>,
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
            latest: tokio::sync::watch::Sender::new(None),
        }
    }

    /// How far back the window reads when it starts.
    pub fn span_ns(&self) -> i64 {
        self.span_ns
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the records of message `seq`, dropping the oldest past the byte
    /// cap; the records and estimated bytes held after.
    pub fn push(&self, seq: u64, records: Vec<Record>) -> (usize, usize) {
        let mut inner = self.lock();
        let mut newest = None;
        for (index, r) in records.into_iter().enumerate() {
            let position = Position {
                seq,
                index: index as u32,
            };
            inner.first.get_or_insert(position);
            newest = Some(position);
            inner.bytes += cost(&r);
            *inner.apps.entry(r.app.clone()).or_default() += 1;
            inner.records.push_back((position, r));
        }
        while inner.bytes > self.max_bytes {
            let Some((position, old)) = inner.records.pop_front() else {
                break;
            };
            inner.dropped = Some(position);
            inner.bytes -= cost(&old);
            if let Some(n) = inner.apps.get_mut(&old.app) {
                *n -= 1;
                if *n == 0 {
                    inner.apps.remove(&old.app);
                }
            }
        }
        let held = (inner.records.len(), inner.bytes);
        drop(inner);
        if newest.is_some() {
            self.latest.send_replace(newest);
        }
        held
    }

    /// The records `request` accepts; counts what was looked at into
    /// `stats`, and flags them partial when the window may miss records.
    pub fn matching(&self, request: &Request, stats: &mut Stats) -> Vec<Record> {
        let inner = self.lock();
        let found: Vec<Record> = inner
            .records
            .iter()
            .map(|(_, r)| r)
            .filter(|r| request.accepts(r))
            .cloned()
            .collect();
        stats.recent_scanned = inner.records.len() as u64;
        stats.recent_matched = found.len() as u64;
        if let Some(fault) = &inner.fault {
            stats.partial = true;
            stats.errors.push(fault.clone());
        }
        found
    }

    /// Up to `max` records after `from` (from the oldest held when `None`)
    /// that pass `keep`.
    pub fn after(
        &self,
        from: Option<Position>,
        max: usize,
        keep: impl Fn(&Record) -> bool,
    ) -> After {
        let inner = self.lock();
        let start = from.map_or(0, |p| inner.records.partition_point(|(q, _)| *q <= p));
        let gap = from.is_some_and(|p| {
            inner.dropped.is_some_and(|d| d > p)
                || inner.first.is_some_and(|f| f.seq > p.seq.saturating_add(1))
        });
        let mut out = After {
            looked: from,
            gap,
            ..After::default()
        };
        for (position, record) in inner.records.range(start..) {
            if out.records.len() >= max {
                break;
            }
            out.looked = Some(*position);
            if keep(record) {
                out.records.push((*position, record.clone()));
            }
        }
        out
    }

    /// The newest position held: changes whenever records arrive.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Position>> {
        self.latest.subscribe()
    }

    /// The newest position held.
    pub fn latest(&self) -> Option<Position> {
        *self.latest.borrow()
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
                    let (held, bytes) = window.push(last_seq, records);
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
        window.push(1, (0..25).map(record).collect());
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
        let mut stats = Stats::default();
        let found = window.matching(&request, &mut stats);
        assert_eq!(stats.recent_scanned, 10);
        assert_eq!(found.first().map(|r| r.id.as_str()), Some("id0015"));
        assert!(stats.partial, "a window that never read says so");
    }

    #[test]
    fn a_tail_goes_on_after_its_position_and_sees_gaps() {
        let one = cost(&record(0));
        let window = Window::new(one * 10, 0);
        window.push(5, (0..4).map(record).collect());
        window.push(6, (4..8).map(record).collect());
        let at = |seq, index| Some(Position { seq, index });
        assert_eq!(window.latest(), at(6, 3));
        let even = |r: &Record| r.id.ends_with(['0', '2', '4', '6', '8']);
        let after = window.after(at(5, 1), 100, even);
        let ids: Vec<_> = after.records.iter().map(|(_, r)| r.id.as_str()).collect();
        assert_eq!(ids, ["id0002", "id0004", "id0006"]);
        assert_eq!((after.looked, after.gap), (at(6, 3), false));
        // Positions print and read back.
        assert_eq!("6-3".parse::<Position>().ok(), at(6, 3));
        assert!("6:3".parse::<Position>().is_err());
        // Four more records push the oldest two out: a tail still at 5-0
        // missed 5-1.
        window.push(7, (8..12).map(record).collect());
        assert!(window.after(at(5, 0), 100, even).gap);
        assert!(!window.after(at(5, 1), 100, even).gap);
        // A position before the window's first record may have missed some.
        assert!(window.after(at(2, 0), 100, even).gap);
        assert_eq!(window.after(at(7, 3), 100, even).records.len(), 0);
    }
}
