//! Routing records to per-partition buffers: pure, no IO.
//!
//! Each record goes to the buffer of its app and UTC hour; the buffer holds
//! the records' NDJSON lines and the sidecar statistics built as they arrive.
//! A buffer is handed out for writing when it reaches `max_blob_bytes`, when
//! it has been open for `flush_interval`, or — the largest first — when all
//! buffers together exceed `max_buffer_bytes`.
//!
//! Every stream message is tracked by the buffers its records went to: the
//! caller acknowledges a message once every one of those buffers is stored.
//!
//! Records are checked again here, whatever the agent did: an `app` that is
//! not a valid name is normalised (and the original kept in
//! `attrs["sluice.invalid_app"]`) so it never reaches a key; a `ts` further
//! in the future than `future_tolerance` is replaced by the arrival time
//! (original in `attrs["sluice.future_ts"]`).

use std::collections::HashMap;

use sluice_core::Record;
use sluice_core::index::IndexBuilder;
use sluice_core::layout::Partition;
use sluice_core::names;
use sluice_core::record::format_ts;

/// Set on records whose app was not a valid name; the value is the original.
pub const ATTR_INVALID_APP: &str = "sluice.invalid_app";
/// Set on records stamped too far in the future; the value is the original
/// `ts`.
pub const ATTR_FUTURE_TS: &str = "sluice.future_ts";

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Raw NDJSON bytes at which a buffer is written.
    pub max_blob_bytes: usize,
    /// Longest a buffer stays open, in nanoseconds.
    pub flush_interval_ns: i64,
    /// Raw bytes across all buffers, at most.
    pub max_buffer_bytes: usize,
    /// How far in the future a `ts` may be, in nanoseconds.
    pub future_tolerance_ns: i64,
}

/// A partition's records, ready to be compressed and stored.
#[derive(Debug)]
pub struct Buffer {
    /// Where the records go.
    pub partition: Partition,
    /// One JSON record per line.
    pub ndjson: Vec<u8>,
    /// Statistics for the sidecar.
    pub index: IndexBuilder,
    /// Stream sequences of the messages with records in this buffer, once
    /// each.
    pub seqs: Vec<u64>,
    /// When the buffer was opened (ns since the epoch).
    pub opened_ns: i64,
    generation: u64,
}

/// What routing one message did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Buffers the message's records went to; the message is done when as
    /// many of them were stored.
    pub buffers: u32,
    /// Records whose app was normalised.
    pub invalid_apps: u64,
    /// Records placed by arrival time.
    pub future: u64,
}

/// The per-partition buffers.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    buffers: HashMap<Partition, Buffer>,
    total_bytes: usize,
    next_generation: u64,
}

impl Router {
    /// An empty router.
    pub fn new(cfg: RouterConfig) -> Router {
        Router {
            cfg,
            buffers: HashMap::new(),
            total_bytes: 0,
            next_generation: 0,
        }
    }

    /// Raw bytes buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Open buffers.
    pub fn open_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// Routes the records of message `seq`; full buffers are appended to
    /// `ready`.
    pub fn push(
        &mut self,
        seq: u64,
        records: Vec<Record>,
        now_ns: i64,
        ready: &mut Vec<Buffer>,
    ) -> Routed {
        let mut routed = Routed::default();
        let mut touched: Vec<u64> = Vec::new();
        for mut record in records {
            if !names::is_valid(&record.app) {
                let original = std::mem::take(&mut record.app);
                record.app = names::normalize(&original).into_owned();
                record.attrs.insert(ATTR_INVALID_APP.to_string(), original);
                routed.invalid_apps += 1;
            }
            if record.ts > now_ns.saturating_add(self.cfg.future_tolerance_ns) {
                record
                    .attrs
                    .insert(ATTR_FUTURE_TS.to_string(), format_ts(record.ts));
                record.ts = now_ns;
                routed.future += 1;
            }
            let partition = Partition::of(&record.app, record.ts);
            let buffer = match self.buffers.get_mut(&partition) {
                Some(b) => b,
                None => {
                    self.next_generation += 1;
                    let b = Buffer {
                        index: IndexBuilder::new(&partition.app),
                        partition: partition.clone(),
                        ndjson: Vec::with_capacity(64 * 1024),
                        seqs: Vec::new(),
                        opened_ns: now_ns,
                        generation: self.next_generation,
                    };
                    self.buffers.entry(partition.clone()).or_insert(b)
                }
            };
            let before = buffer.ndjson.len();
            // Serialising strings, integers and a string map cannot fail.
            let _ = serde_json::to_writer(&mut buffer.ndjson, &record);
            let line = buffer.ndjson.len() - before;
            buffer.ndjson.push(b'\n');
            buffer.index.push(&record, line);
            self.total_bytes += line + 1;
            if buffer.seqs.last() != Some(&seq) {
                buffer.seqs.push(seq);
            }
            if !touched.contains(&buffer.generation) {
                touched.push(buffer.generation);
            }
            if buffer.ndjson.len() >= self.cfg.max_blob_bytes
                && let Some(full) = self.take(&partition)
            {
                ready.push(full);
            }
        }
        routed.buffers = touched.len() as u32;
        routed
    }

    fn take(&mut self, partition: &Partition) -> Option<Buffer> {
        let buffer = self.buffers.remove(partition)?;
        self.total_bytes -= buffer.ndjson.len();
        Some(buffer)
    }

    /// Buffers due by age, then the largest ones while over the total cap.
    pub fn due(&mut self, now_ns: i64) -> Vec<Buffer> {
        let old: Vec<Partition> = self
            .buffers
            .values()
            .filter(|b| now_ns.saturating_sub(b.opened_ns) >= self.cfg.flush_interval_ns)
            .map(|b| b.partition.clone())
            .collect();
        let mut out: Vec<Buffer> = old.iter().filter_map(|p| self.take(p)).collect();
        while self.total_bytes > self.cfg.max_buffer_bytes {
            let largest = self
                .buffers
                .values()
                .max_by_key(|b| b.ndjson.len())
                .map(|b| b.partition.clone());
            match largest.and_then(|p| self.take(&p)) {
                Some(b) => out.push(b),
                None => break,
            }
        }
        out
    }

    /// Every buffer (shutdown).
    pub fn drain(&mut self) -> Vec<Buffer> {
        let all: Vec<Partition> = self.buffers.keys().cloned().collect();
        all.iter().filter_map(|p| self.take(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Level;
    use sluice_core::record::parse_ts;

    const HOUR: i64 = 3_600_000_000_000;

    fn cfg() -> RouterConfig {
        RouterConfig {
            max_blob_bytes: 10_000,
            flush_interval_ns: 60_000_000_000,
            max_buffer_bytes: 100_000,
            future_tolerance_ns: HOUR,
        }
    }

    fn record(app: &str, ts: i64, n: usize) -> Record {
        Record {
            id: format!("id-{n}"),
            ts,
            app: app.into(),
            service: "svc".into(),
            host: "h".into(),
            level: Level::Info,
            msg: format!("message {n}"),
            attrs: Default::default(),
            source: String::new(),
        }
    }

    fn now() -> i64 {
        parse_ts("2026-11-22T10:30:00Z").unwrap()
    }

    #[test]
    fn routes_by_app_and_hour() {
        let mut r = Router::new(cfg());
        let mut ready = Vec::new();
        let t = now();
        let routed = r.push(
            1,
            vec![
                record("shop", t, 0),
                record("shop", t - HOUR, 1),
                record("web", t, 2),
            ],
            t,
            &mut ready,
        );
        assert_eq!(routed.buffers, 3);
        assert!(ready.is_empty());
        let mut all = r.drain();
        all.sort_by(|a, b| a.partition.cmp(&b.partition));
        let prefixes: Vec<String> = all.iter().map(|b| b.partition.prefix()).collect();
        assert_eq!(
            prefixes,
            [
                "app=shop/dt=2026-11-22/hour=09",
                "app=shop/dt=2026-11-22/hour=10",
                "app=web/dt=2026-11-22/hour=10"
            ]
        );
        for b in &all {
            assert_eq!(b.seqs, [1]);
            let line: Record =
                serde_json::from_slice(b.ndjson.strip_suffix(b"\n").unwrap()).unwrap();
            assert_eq!(line.app, b.partition.app);
        }
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn full_buffers_are_handed_out_and_counted_per_generation() {
        let mut r = Router::new(cfg());
        let mut ready = Vec::new();
        let t = now();
        let records: Vec<Record> = (0..300).map(|n| record("shop", t, n)).collect();
        let routed = r.push(7, records, t, &mut ready);
        assert!(!ready.is_empty());
        // Every buffer the message touched counts, including the open one.
        assert_eq!(routed.buffers as usize, ready.len() + r.open_buffers());
        let lines: usize = ready
            .iter()
            .chain(r.drain().iter())
            .map(|b| b.ndjson.iter().filter(|&&c| c == b'\n').count())
            .sum();
        assert_eq!(lines, 300);
    }

    #[test]
    fn invalid_apps_and_future_times_are_fixed_and_flagged() {
        let mut r = Router::new(cfg());
        let mut ready = Vec::new();
        let t = now();
        let routed = r.push(
            1,
            vec![record("../etc", t, 0), record("shop", t + 2 * HOUR, 1)],
            t,
            &mut ready,
        );
        assert_eq!(routed.invalid_apps, 1);
        assert_eq!(routed.future, 1);
        let all = r.drain();
        for b in &all {
            assert!(names::is_valid(&b.partition.app));
            let line: Record =
                serde_json::from_slice(b.ndjson.strip_suffix(b"\n").unwrap()).unwrap();
            if line.id == "id-0" {
                assert_eq!(line.attrs[ATTR_INVALID_APP], "../etc");
                assert_eq!(line.app, "etc");
            } else {
                assert_eq!(line.ts, t);
                assert!(line.attrs.contains_key(ATTR_FUTURE_TS));
            }
        }
    }

    #[test]
    fn due_by_age_and_by_total_size() {
        let mut c = cfg();
        c.max_buffer_bytes = 5_000;
        let mut r = Router::new(c);
        let mut ready = Vec::new();
        let t = now();
        r.push(
            1,
            (0..10).map(|n| record("a", t, n)).collect(),
            t,
            &mut ready,
        );
        assert!(r.due(t).is_empty());
        assert_eq!(r.due(t + 61_000_000_000).len(), 1);
        r.push(
            2,
            (0..40).map(|n| record("b", t, n)).collect(),
            t,
            &mut ready,
        );
        r.push(
            3,
            (0..5).map(|n| record("c", t, n)).collect(),
            t,
            &mut ready,
        );
        let due = r.due(t);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].partition.app, "b");
        assert!(r.buffered_bytes() <= 5_000);
    }
}
