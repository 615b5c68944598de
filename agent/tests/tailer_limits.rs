//! The tailer's resource limits, driven step by step on real files: deleted
//! files are closed, idle files are closed and reopened when they grow, open
//! files are bounded, and the read rate limit holds.

use flume::Receiver;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sluice_agent::metrics::AgentMetrics;
use sluice_agent::pipeline::entry::Positions;
use sluice_agent::sources::Chunk;
use sluice_agent::sources::file::{Source, Tailer, TailerOptions};
use sluice_core::config::{FileSourceConfig, Name, ReadFrom};

fn tailer(dir: &Path, adjust: impl FnOnce(&mut TailerOptions)) -> (Tailer, Receiver<Chunk>) {
    tailer_from(dir, ReadFrom::Beginning, Positions::default(), adjust)
}

fn tailer_from(
    dir: &Path,
    read_from: ReadFrom,
    positions: Positions,
    adjust: impl FnOnce(&mut TailerOptions),
) -> (Tailer, Receiver<Chunk>) {
    let source = Source::new(&FileSourceConfig {
        include: vec![format!("{}/*.log", dir.display())],
        exclude: vec![],
        app: Name::new("limits").unwrap(),
        service: None,
        attrs: Default::default(),
        read_from,
        max_line_bytes: 1024,
        multiline: None,
    })
    .unwrap();
    let mut opts = TailerOptions::new(vec![source]);
    adjust(&mut opts);
    let (tx, rx) = flume::bounded(100_000);
    let metrics = AgentMetrics::register(&mut Registry::default());
    let mut t = Tailer::new(opts, positions, tx, metrics);
    t.recover();
    (t, rx)
}

fn write(path: &Path, lines: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in 0..lines {
        writeln!(f, "line {n} of {}", path.display()).unwrap();
    }
}

fn records(rx: &Receiver<Chunk>) -> usize {
    rx.try_iter().map(|c| c.records.len()).sum()
}

#[test]
fn deleted_files_are_closed_after_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.log");
    write(&path, 10);
    let (mut t, rx) = tailer(dir.path(), |_| {});
    t.step();
    assert_eq!(t.open_files(), 1);
    write(&path, 5);
    std::fs::remove_file(&path).unwrap();
    t.step();
    // Read to its end through the open handle, then closed: space is freed.
    assert_eq!(records(&rx), 15);
    assert_eq!(t.open_files(), 0);
    assert_eq!(t.tracked_files(), 0);
}

#[test]
fn idle_files_are_closed_and_reopened_when_they_grow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idle.log");
    write(&path, 3);
    let (mut t, rx) = tailer(dir.path(), |o| o.idle_close = Duration::ZERO);
    t.step();
    assert_eq!(records(&rx), 3);
    assert_eq!(t.open_files(), 0, "idle file not closed");
    assert_eq!(t.tracked_files(), 1);
    write(&path, 4);
    t.step();
    t.step();
    assert_eq!(records(&rx), 4, "grown file not read after reopening");
}

#[test]
fn open_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(&dir.path().join(format!("f{i}.log")), 2);
    }
    let (mut t, rx) = tailer(dir.path(), |o| o.max_open_files = 5);
    for _ in 0..10 {
        t.step();
        assert!(t.open_files() <= 5, "{} open", t.open_files());
    }
    assert_eq!(records(&rx), 40, "every file read despite the bound");
}

#[test]
fn read_rate_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fast.log");
    let mut f = std::fs::File::create(&path).unwrap();
    let line = format!("{}\n", "r".repeat(1023));
    for _ in 0..1024 {
        f.write_all(line.as_bytes()).unwrap();
    }
    // 1 MiB at 256 KiB/s with a 256 KiB burst: at least ~3 s.
    let (mut t, rx) = tailer(dir.path(), |o| o.read_bytes_per_sec = Some(256 * 1024));
    let start = Instant::now();
    let mut got = 0;
    while got < 1024 {
        t.step();
        got += records(&rx);
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "read 1 MiB in {took:?}"
    );
}

#[test]
fn read_from_end_applies_to_files_present_at_the_first_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    write(&old, 5);
    let (mut t, rx) = tailer_from(dir.path(), ReadFrom::End, Positions::default(), |o| {
        o.first_start = true
    });
    t.step();
    // Nothing old is read, but the file is registered at its end.
    let chunks: Vec<Chunk> = rx.try_iter().collect();
    assert_eq!(chunks.iter().map(|c| c.records.len()).sum::<usize>(), 0);
    let mut positions = Positions::default();
    for c in &chunks {
        positions.apply(c.pos.as_slice());
    }
    assert_eq!(positions.len(), 1);
    write(&old, 2);
    let fresh = dir.path().join("fresh.log");
    write(&fresh, 3);
    t.step();
    // New lines of the old file, and a file that appeared later from its start.
    let chunks: Vec<Chunk> = rx.try_iter().collect();
    assert_eq!(chunks.iter().map(|c| c.records.len()).sum::<usize>(), 5);
    drop(t);
    // A restart is not a first start: it resumes from the durable positions.
    for c in &chunks {
        positions.apply(c.pos.as_slice());
    }
    write(&old, 1);
    let (mut t, rx) = tailer_from(dir.path(), ReadFrom::End, positions, |_| {});
    t.step();
    assert_eq!(records(&rx), 1);
}

#[test]
fn binary_files_become_flagged_lossy_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.log");
    // Every byte value, many times over, in pseudo-random order.
    let mut bytes = Vec::with_capacity(1 << 16);
    let mut x: u32 = 12345;
    for _ in 0..(1 << 16) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((x >> 16) as u8);
    }
    bytes.push(b'\n');
    std::fs::write(&path, &bytes).unwrap();
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    let (mut t, rx) = tailer(dir.path(), |_| {});
    t.step();
    let records: Vec<_> = rx.try_iter().flat_map(|c| c.records).collect();
    assert!(!records.is_empty());
    assert!(records.len() <= newlines);
    assert!(
        records
            .iter()
            .any(|r| r.attrs.get("sluice.lossy").map(String::as_str) == Some("true"))
    );
    for r in &records {
        let flagged = r.attrs.contains_key("sluice.lossy");
        assert_eq!(flagged, r.msg.contains('\u{fffd}'), "{:?}", r.msg);
    }
}

#[test]
fn a_glob_matching_nothing_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, rx) = tailer(&dir.path().join("does/not/exist"), |_| {});
    t.step();
    assert_eq!(t.tracked_files(), 0);
    assert_eq!(records(&rx), 0);
}
