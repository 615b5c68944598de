//! The file source: finds log files by glob, follows them through rotation
//! and truncation, and turns their lines into records.
//!
//! It runs on its own thread and hands [`Chunk`]s — the records from one
//! read of one file, plus that file's new read position — to the spool
//! writer over a bounded channel, so a full spool makes it wait.
//!
//! * **Identity.** A file is its device + inode, plus a fingerprint (hash of
//!   its first bytes, up to 256). A known inode whose head no longer matches
//!   is a new file (inode reuse); a file shorter than 256 bytes is
//!   fingerprinted over what it has, so short files are read at once.
//! * **Discovery.** Include globs are walked from their literal prefix;
//!   `notify` events trigger a rescan at once, and a slow periodic rescan
//!   catches anything an event missed.
//! * **Rotation by rename.** A renamed file keeps its inode: the open handle
//!   is read to its end while the new file at the path is read from its
//!   start. A rotated-away file is closed once it has been idle at its end
//!   for `rotate_wait`; a deleted one as soon as it has been read to its end,
//!   so its disk space is freed.
//! * **Copytruncate.** A file shorter than the read offset, or whose head
//!   changed, was truncated: reading restarts at 0. Lines written between
//!   the agent's last read and the truncation are lost by the nature of
//!   copytruncate; prefer rename + create.
//! * **Positions.** The position sent with a chunk only covers complete lines
//!   that are in its records (a pending multi-line event or an unterminated
//!   last line stays behind it), so after a crash reading resumes exactly
//!   after the last spooled line. Positions only become durable inside spool
//!   entries (see [`crate::pipeline::entry`]).
//! * **Damaged input.** Lines over `max_line_bytes` are truncated and flagged
//!   (`sluice.truncated` = original length); invalid UTF-8 is decoded lossily
//!   and flagged (`sluice.lossy`); unreadable files are warned about, counted
//!   and retried at the next rescan.
//!
//! The work is split by job: `discover` compiles the globs, walks them,
//! watches their directories and finds files rotated away while the agent
//! was down; `open` opens a file (checking its identity and where reading
//! resumes), keeps the open-file budget and closes idle, rotated-away and
//! deleted files; `read` reads open files into lines and records, under the
//! read rate limit. Lines then pass through [`multiline`] and the line
//! parser (`parse`).

mod discover;
pub mod multiline;
mod open;
mod parse;
mod read;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use globset::GlobSet;
use sluice_core::config::{FileSourceConfig, ReadFrom};

use crate::metrics::{AgentMetrics, label};
use crate::pipeline::entry::{FileKey, FilePos, Positions};
use crate::sources::{Chunk, ChunkSender, LineRecord};
pub use discover::SourceError;
use discover::{Root, glob_set, root_of, wait_for_events};
use multiline::{Merger, MultilineRule};
use read::Limiter;

/// A configured file source, compiled.
#[derive(Debug, Clone)]
pub struct Source {
    include: GlobSet,
    exclude_path: GlobSet,
    exclude_name: GlobSet,
    roots: Vec<Root>,
    app: Arc<str>,
    service: Option<String>,
    attrs: BTreeMap<String, String>,
    read_from: ReadFrom,
    max_line_bytes: usize,
    multiline: Option<MultilineRule>,
}

impl Source {
    /// Compiles a `[[agent.files]]` section.
    pub fn new(cfg: &FileSourceConfig) -> Result<Source, SourceError> {
        let include = glob_set(cfg.include.iter())?;
        let exclude_path = glob_set(cfg.exclude.iter().filter(|p| p.contains('/')))?;
        let exclude_name = glob_set(cfg.exclude.iter().filter(|p| !p.contains('/')))?;
        let mut roots: Vec<Root> = cfg.include.iter().map(|p| root_of(p)).collect();
        roots.dedup();
        let multiline = cfg.multiline.as_ref().map(|m| MultilineRule {
            start: m.start_pattern.0.clone(),
            timeout_nanos: sluice_core::time::ms_to_ns(m.timeout_ms),
            max_bytes: cfg.max_line_bytes,
        });
        Ok(Source {
            include,
            exclude_path,
            exclude_name,
            roots,
            app: Arc::from(cfg.app.as_str()),
            service: cfg.service.as_ref().map(|s| s.as_str().to_string()),
            attrs: cfg.attrs.clone(),
            read_from: cfg.read_from,
            max_line_bytes: cfg.max_line_bytes.max(1),
            multiline,
        })
    }
}

/// Tailer settings.
#[derive(Debug, Clone)]
pub struct TailerOptions {
    /// Compiled sources.
    pub sources: Vec<Source>,
    /// True when the agent has never run with this data directory:
    /// `read_from = "end"` applies only then.
    pub first_start: bool,
    /// Open files, at most.
    pub max_open_files: usize,
    /// Close a file after this long without new data.
    pub idle_close: Duration,
    /// Bytes read from one file per pass (fairness between files).
    pub read_chunk_bytes: usize,
    /// Open files are checked at least this often even without events.
    pub poll_interval: Duration,
    /// Globs are walked again at least this often.
    pub rescan_interval: Duration,
    /// Read rate limit in bytes per second.
    pub read_bytes_per_sec: Option<u64>,
    /// How long a rotated-away file is kept open at its end, in case the
    /// application still writes to it, before it is closed.
    pub rotate_wait: Duration,
}

impl TailerOptions {
    /// Defaults for everything but the sources.
    pub fn new(sources: Vec<Source>) -> TailerOptions {
        TailerOptions {
            sources,
            first_start: false,
            max_open_files: 512,
            idle_close: Duration::from_secs(300),
            read_chunk_bytes: 64 * 1024,
            poll_interval: Duration::from_millis(500),
            rescan_interval: Duration::from_secs(10),
            read_bytes_per_sec: None,
            rotate_wait: Duration::from_secs(5),
        }
    }
}

struct Tracked {
    key: FileKey,
    /// Where the file is now.
    path: PathBuf,
    /// The last path at which the globs matched it: what its durable
    /// position records, so a restart can tell which source it belongs to
    /// even after it was rotated to a name the globs do not match.
    origin: PathBuf,
    source: usize,
    service: Arc<str>,
    label: Arc<str>,
    file: Option<File>,
    /// Next byte to read.
    read_offset: u64,
    /// Bytes of an unterminated line, capped at `max_line_bytes`.
    partial: Vec<u8>,
    /// Full length of the unterminated line so far.
    partial_len: usize,
    /// The position last sent with a chunk.
    sent_offset: u64,
    fp_len: u32,
    fp_hash: u64,
    merger: Option<Merger>,
    last_data: Instant,
    /// Seen by the latest glob scan.
    matched: bool,
}

impl Tracked {
    fn chunk(&self, app: &Arc<str>, pos: FilePos, records: Vec<LineRecord>) -> Chunk {
        Chunk {
            app: app.clone(),
            service: self.service.clone(),
            host: None,
            source: self.label.clone(),
            pos: Some(pos),
            records,
            ids: Vec::new(),
            durable: None,
        }
    }

    fn pos(&self, offset: u64) -> FilePos {
        FilePos {
            key: self.key,
            fp_len: self.fp_len,
            fp_hash: self.fp_hash,
            offset,
            path: self.origin.to_string_lossy().into_owned(),
            gone: false,
        }
    }
}

/// Follows files and sends their records to the spool writer.
pub struct Tailer {
    opts: TailerOptions,
    positions: Positions,
    files: HashMap<FileKey, Tracked>,
    tx: ChunkSender,
    metrics: AgentMetrics,
    warned: HashSet<PathBuf>,
    limiter: Option<Limiter>,
    stopped: bool,
    buf: Vec<u8>,
}

impl Tailer {
    /// A tailer resuming from `positions` (the durable positions recovered
    /// from the spool).
    pub fn new(
        opts: TailerOptions,
        positions: Positions,
        tx: ChunkSender,
        metrics: AgentMetrics,
    ) -> Tailer {
        let limiter = opts.read_bytes_per_sec.and_then(|rate| {
            let rate = NonZeroU32::new(u32::try_from(rate).unwrap_or(u32::MAX))?;
            let burst = NonZeroU32::new(
                rate.get()
                    .max(u32::try_from(opts.read_chunk_bytes).unwrap_or(u32::MAX)),
            )?;
            Some(governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Tailer {
            opts,
            positions,
            files: HashMap::new(),
            tx,
            metrics,
            warned: HashSet::new(),
            limiter,
            stopped: false,
            buf: Vec::new(),
        }
    }

    /// Runs until `shutdown` is set or the spool writer goes away.
    pub fn run(mut self, shutdown: Arc<AtomicBool>) {
        let (event_tx, event_rx) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let _ = event_tx.send(res);
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(err) => {
                tracing::warn!(error = %err, "file events unavailable, falling back to polling");
                None
            }
        };
        let mut watched: HashSet<PathBuf> = HashSet::new();
        self.recover();
        let mut last_rescan = Instant::now();
        if let Some(w) = watcher.as_mut() {
            self.watch_roots(w, &mut watched);
        }
        while !shutdown.load(Ordering::Relaxed) && !self.stopped {
            // Read until every file is at its end, then wait for an event.
            let read = self.read_pass(&shutdown);
            self.housekeeping();
            if read > 0 {
                continue;
            }
            let timeout = if self
                .files
                .values()
                .any(|t| t.merger.as_ref().is_some_and(|m| m.has_pending()))
            {
                self.opts.poll_interval.min(Duration::from_millis(50))
            } else {
                self.opts.poll_interval
            };
            let mut rescan = wait_for_events(&event_rx, timeout);
            if last_rescan.elapsed() >= self.opts.rescan_interval {
                rescan = true;
            }
            if rescan {
                last_rescan = Instant::now();
                self.rescan();
                if let Some(w) = watcher.as_mut() {
                    self.watch_roots(w, &mut watched);
                }
            }
        }
        tracing::info!(files = self.files.len(), "file source stopped");
    }

    /// Start-up: finds files rotated away while the agent was down, then
    /// every file the globs match.
    pub fn recover(&mut self) {
        self.recover_rotated();
        self.rescan();
        // `read_from = "end"` is for files present at the first start only;
        // files appearing later are read from their beginning.
        self.opts.first_start = false;
    }

    /// Files currently held open.
    pub fn open_files(&self) -> usize {
        self.open_count()
    }

    /// Files currently followed (open or closed while idle).
    pub fn tracked_files(&self) -> usize {
        self.files.len()
    }

    /// Walks the globs once, opening new files without reading them.
    pub fn discover(&mut self) {
        self.rescan();
    }

    /// One pass without waiting: rescan, read every file to its end, run
    /// the timers. Lets tests (and tools) drive the tailer synchronously.
    pub fn step(&mut self) {
        self.rescan();
        let never = AtomicBool::new(false);
        while self.read_pass(&never) > 0 {}
        self.housekeeping();
    }

    fn warn_once(&mut self, path: &Path, kind: &str, err: &std::io::Error) {
        self.metrics
            .file_errors
            .get_or_create(&label("kind", kind))
            .inc();
        if self.warned.insert(path.to_path_buf()) {
            tracing::warn!(path = %path.display(), error = %err, kind, "cannot read file, will retry");
        } else {
            tracing::debug!(path = %path.display(), error = %err, kind, "cannot read file, will retry");
        }
    }

    /// Hands a chunk to the spool writer, waiting while it is behind (or
    /// the spool is full).
    fn send(&mut self, chunk: Chunk) {
        if self.tx.send(chunk).is_err() {
            self.stopped = true;
        }
    }
}
