//! The tailer against a model: random writes, rename rotations,
//! copytruncates and crash-restarts on real files, driven step by step.
//!
//! The model is simply "every non-empty line written, once": after any
//! sequence of operations, the records from chunks that were durable
//! (for a crash, a random prefix of what the tailer had sent since its last
//! start) plus everything after must be exactly the lines written, each
//! once, each file's lines in order.

use flume::Receiver;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use prometheus_client::registry::Registry;
use proptest::prelude::*;
use sluice_agent::metrics::AgentMetrics;
use sluice_agent::pipeline::entry::Positions;
use sluice_agent::sources::Chunk;
use sluice_agent::sources::file::{Source, Tailer, TailerOptions};
use sluice_core::config::{FileSourceConfig, Name, ReadFrom};

const FILES: usize = 3;
const MAX_LINE: usize = 100;

#[derive(Debug, Clone)]
enum Op {
    /// Lines of these lengths (a length of 0 writes an empty line).
    Write(usize, Vec<usize>),
    RotateRename(usize),
    CopyTruncate(usize),
    Step,
    /// Crash: of the chunks sent since the last start, this fraction (in
    /// percent) had reached the spool.
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FILES, prop::collection::vec(prop_oneof![9 => 1usize..90, 1 => Just(0usize), 1 => 90usize..250], 1..12))
            .prop_map(|(f, lens)| Op::Write(f, lens)),
        1 => (0..FILES).prop_map(Op::RotateRename),
        1 => (0..FILES).prop_map(Op::CopyTruncate),
        4 => Just(Op::Step),
        1 => (0u8..=100).prop_map(Op::Crash),
    ]
}

struct Harness {
    dir: tempfile::TempDir,
    tailer: Option<Tailer>,
    rx: Option<Receiver<Chunk>>,
    /// Positions durable before the current tailer started.
    durable_positions: Positions,
    /// Records that reached the "spool".
    durable: Vec<String>,
    /// Chunks sent by the current tailer (not yet known durable).
    pending: Vec<Chunk>,
    rotations: usize,
    written: Vec<String>,
    next_line: HashMap<usize, usize>,
    /// Rename rotations per file: lines carry it, as order only holds
    /// within one physical file.
    generation: HashMap<usize, usize>,
}

fn source(dir: &Path) -> Source {
    Source::new(&FileSourceConfig {
        include: vec![format!("{}/*.log", dir.display())],
        exclude: vec![],
        app: Name::new("model").unwrap(),
        service: None,
        attrs: Default::default(),
        read_from: ReadFrom::Beginning,
        max_line_bytes: MAX_LINE,
        multiline: None,
    })
    .unwrap()
}

impl Harness {
    fn new() -> Harness {
        let mut h = Harness {
            dir: tempfile::tempdir().unwrap(),
            tailer: None,
            rx: None,
            durable_positions: Positions::default(),
            durable: Vec::new(),
            pending: Vec::new(),
            rotations: 0,
            written: Vec::new(),
            next_line: HashMap::new(),
            generation: HashMap::new(),
        };
        h.start();
        h
    }

    fn start(&mut self) {
        let (tx, rx) = flume::bounded(1_000_000);
        let mut opts = TailerOptions::new(vec![source(self.dir.path())]);
        opts.rotate_wait = Duration::ZERO;
        let metrics = AgentMetrics::register(&mut Registry::default());
        let mut tailer = Tailer::new(opts, self.durable_positions.clone(), tx, metrics);
        tailer.recover();
        self.tailer = Some(tailer);
        self.rx = Some(rx);
        self.drain();
    }

    fn drain(&mut self) {
        if let Some(rx) = &self.rx {
            while let Ok(chunk) = rx.try_recv() {
                self.pending.push(chunk);
            }
        }
    }

    fn step(&mut self) {
        self.tailer.as_mut().unwrap().step();
        self.drain();
    }

    fn file(&self, f: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("f{f}.log"))
    }

    fn make_durable(&mut self, count: usize) {
        for chunk in self.pending.drain(..count) {
            self.durable_positions.apply(chunk.pos.as_slice());
            self.durable
                .extend(chunk.records.into_iter().map(|r| r.msg));
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Write(f, lens) => {
                let mut text = String::new();
                for &len in lens {
                    let n = self.next_line.entry(*f).or_default();
                    *n += 1;
                    let n = *n;
                    let generation = self.generation.get(f).copied().unwrap_or(0);
                    let line = if len == 0 {
                        String::new()
                    } else {
                        let head = format!("f{f}g{generation}#{n} ");
                        let body: String = head
                            .chars()
                            .chain(std::iter::repeat('z'))
                            .take(len.max(head.len()))
                            .collect();
                        body
                    };
                    if !line.is_empty() {
                        self.written
                            .push(line[..line.len().min(MAX_LINE)].to_string());
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.file(*f))
                    .unwrap();
                std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
            }
            Op::RotateRename(f) => {
                if self.file(*f).exists() {
                    // The agent has noticed the file (on a live agent, file
                    // events make that near-instant) and its registration
                    // reached the spool; unread lines may remain.
                    self.tailer.as_mut().unwrap().discover();
                    self.drain();
                    let all = self.pending.len();
                    self.make_durable(all);
                    self.rotations += 1;
                    *self.generation.entry(*f).or_default() += 1;
                    let to = self.dir.path().join(format!("f{f}.log.{}", self.rotations));
                    std::fs::rename(self.file(*f), to).unwrap();
                }
            }
            Op::CopyTruncate(f) => {
                // Lines not yet in the spool when the file is truncated are
                // lost by copytruncate's nature; the model truncates only
                // once the tailer has caught up and spooled, as the e2e test
                // does.
                if self.file(*f).exists() {
                    self.step();
                    let all = self.pending.len();
                    self.make_durable(all);
                    std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(self.file(*f))
                        .unwrap();
                }
            }
            Op::Step => self.step(),
            Op::Crash(percent) => {
                self.drain();
                let count = self.pending.len() * usize::from(*percent) / 100;
                self.make_durable(count);
                self.pending.clear();
                self.tailer = None;
                self.rx = None;
                self.start();
            }
        }
    }

    fn finish(mut self) -> (Vec<String>, Vec<String>) {
        for _ in 0..3 {
            self.step();
        }
        let all = self.pending.len();
        self.make_durable(all);
        (self.durable, self.written)
    }
}

fn sequence(line: &str) -> (String, usize) {
    let head = line.split(' ').next().unwrap_or("");
    let (file, n) = head.split_once('#').unwrap();
    (file.to_string(), n.parse().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tailer_delivers_every_line_once(ops in prop::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        let (got, written) = h.finish();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = written.clone();
        want_sorted.sort();
        prop_assert_eq!(got_sorted, want_sorted);
        // Each file's lines arrive in the order written.
        let mut last: HashMap<String, usize> = HashMap::new();
        for line in &got {
            let (file, n) = sequence(line);
            let prev = last.insert(file.clone(), n).unwrap_or(0);
            prop_assert!(n > prev, "{} line {} after {}", file, n, prev);
        }
    }
}
