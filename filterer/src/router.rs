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
//! The app a message's records are filed under is the app of its subject,
//! which the caller parsed and checked against every record
//! (`sluice_core::subject`): a record's own claim never chooses a key, and
//! a message that claims another app never gets here. A `ts` further in the
//! future than `future_tolerance` is replaced by the arrival time (original
//! in `attrs["sluice.future_ts"]`).

use std::collections::HashMap;

use sluice_core::Record;
use sluice_core::index::IndexBuilder;
use sluice_core::layout::Partition;
use sluice_core::names;
use sluice_core::record::format_ts;

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

    /// Routes the records of message `seq`, filed under `app`: the app of
    /// the message's subject, which every record was checked to claim. Full
    /// buffers are appended to `ready`.
    pub fn push(
        &mut self,
        seq: u64,
        app: &str,
        records: Vec<Record>,
        now_ns: i64,
        ready: &mut Vec<Buffer>,
    ) -> Routed {
        debug_assert!(names::is_valid(app));
        debug_assert!(records.iter().all(|r| r.app == app));
        let mut routed = Routed::default();
        let mut touched: Vec<u64> = Vec::new();
        for mut record in records {
            if record.ts > now_ns.saturating_add(self.cfg.future_tolerance_ns) {
                record
                    .attrs
                    .insert(ATTR_FUTURE_TS.to_string(), format_ts(record.ts));
                record.ts = now_ns;
                routed.future += 1;
            }
            let partition = Partition::of(app, record.ts);
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
    use sluice_core::time::{NS_PER_HOUR as HOUR, NS_PER_SEC};

    fn cfg() -> RouterConfig {
        RouterConfig {
            max_blob_bytes: 10_000,
            flush_interval_ns: 60 * NS_PER_SEC,
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
            "shop",
            vec![record("shop", t, 0), record("shop", t - HOUR, 1)],
            t,
            &mut ready,
        );
        assert_eq!(routed.buffers, 2);
        let routed = r.push(1, "web", vec![record("web", t, 2)], t, &mut ready);
        assert_eq!(routed.buffers, 1);
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
        let routed = r.push(7, "shop", records, t, &mut ready);
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
    fn future_times_are_fixed_and_flagged() {
        let mut r = Router::new(cfg());
        let mut ready = Vec::new();
        let t = now();
        let routed = r.push(
            1,
            "shop",
            vec![record("shop", t, 0), record("shop", t + 2 * HOUR, 1)],
            t,
            &mut ready,
        );
        assert_eq!(routed.future, 1);
        let all = r.drain();
        assert_eq!(all.len(), 1);
        let lines: Vec<Record> = all[0]
            .ndjson
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].attrs.contains_key(ATTR_FUTURE_TS));
        assert_eq!(lines[1].ts, t);
        assert!(lines[1].attrs.contains_key(ATTR_FUTURE_TS));
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
            "a",
            (0..10).map(|n| record("a", t, n)).collect(),
            t,
            &mut ready,
        );
        assert!(r.due(t).is_empty());
        assert_eq!(r.due(t + 61 * NS_PER_SEC).len(), 1);
        r.push(
            2,
            "b",
            (0..40).map(|n| record("b", t, n)).collect(),
            t,
            &mut ready,
        );
        r.push(
            3,
            "c",
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
