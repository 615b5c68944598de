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

pub mod multiline;
mod parse;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::num::NonZeroU32;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use sluice_core::config::{FileSourceConfig, ReadFrom};
use sluice_core::names;
use sluice_core::record::{ATTR_LOSSY, ATTR_TRUNCATED, now_nanos};

use crate::metrics::{AgentMetrics, label};
use crate::pipeline::entry::{FINGERPRINT_BYTES, FileKey, FilePos, Positions, fingerprint};
use crate::sources::{Chunk, ChunkSender, LineRecord};
use multiline::{Event, Line, Merger, MultilineRule};
use parse::parse_line;

/// Deepest directory walk for `**` patterns.
const MAX_WALK_DEPTH: usize = 16;

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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    dir: PathBuf,
    depth: usize,
}

/// A source's configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct SourceError {
    pattern: String,
    reason: String,
}

fn glob(pattern: &str) -> Result<Glob, SourceError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| SourceError {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

fn glob_set<'a>(patterns: impl Iterator<Item = &'a String>) -> Result<GlobSet, SourceError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(glob(p)?);
    }
    builder.build().map_err(|e| SourceError {
        pattern: String::new(),
        reason: e.to_string(),
    })
}

/// The directory to walk for a pattern, and how deep.
fn root_of(pattern: &str) -> Root {
    let path = Path::new(pattern);
    let mut dir = PathBuf::new();
    let mut rest = Vec::new();
    for comp in path.components() {
        let text = comp.as_os_str().to_string_lossy();
        let is_meta = text.contains(['*', '?', '[', '{']);
        if rest.is_empty() && !is_meta {
            dir.push(comp);
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        // A literal path: watch its directory.
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Root {
            dir: parent,
            depth: 1,
        };
    }
    let depth = if rest.iter().any(|c| c.contains("**")) {
        MAX_WALK_DEPTH
    } else {
        rest.len()
    };
    Root { dir, depth }
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
            timeout_nanos: i64::try_from(m.timeout_ms)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000),
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

    fn matches(&self, path: &Path) -> bool {
        if !self.include.is_match(path) || self.exclude_path.is_match(path) {
            return false;
        }
        match path.file_name() {
            Some(name) => !self.exclude_name.is_match(name),
            None => false,
        }
    }
}

/// The default service of a file: its name up to the first `.`
/// (`checkout` for `checkout.log` and `checkout.log.1`), made a valid name.
pub fn service_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = name.split('.').find(|s| !s.is_empty()).unwrap_or("");
    names::normalize(stem).into_owned()
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

type Limiter = governor::DefaultDirectRateLimiter;

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

/// Head of a file: (bytes covered, hash).
fn head_fingerprint(file: &File, size: u64) -> std::io::Result<(u32, u64)> {
    let len = (size as usize).min(FINGERPRINT_BYTES);
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok((len as u32, fingerprint(&buf)))
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

    fn watch_roots(
        &self,
        watcher: &mut notify::RecommendedWatcher,
        watched: &mut HashSet<PathBuf>,
    ) {
        for source in &self.opts.sources {
            for root in &source.roots {
                if watched.contains(&root.dir) || !root.dir.is_dir() {
                    continue;
                }
                let mode = if root.depth > 1 {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                match watcher.watch(&root.dir, mode) {
                    Ok(()) => {
                        watched.insert(root.dir.clone());
                    }
                    Err(err) => {
                        tracing::debug!(dir = %root.dir.display(), error = %err, "cannot watch directory, relying on rescans");
                    }
                }
            }
        }
    }

    /// Finds files rotated away while the agent was down: a known inode no
    /// longer matched by the globs, looked up in the directory it was last
    /// seen in.
    fn recover_rotated(&mut self) {
        let known: Vec<FilePos> = self.positions.iter().cloned().collect();
        let mut by_dir: HashMap<PathBuf, Vec<FilePos>> = HashMap::new();
        for pos in known {
            if let Some(dir) = Path::new(&pos.path).parent() {
                by_dir.entry(dir.to_path_buf()).or_default().push(pos);
            }
        }
        for (dir, wanted) in by_dir {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let key = FileKey {
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                let Some(pos) = wanted.iter().find(|p| p.key == key) else {
                    continue;
                };
                let path = entry.path();
                let source = self
                    .opts
                    .sources
                    .iter()
                    .position(|s| s.matches(Path::new(&pos.path)));
                let Some(source) = source else { continue };
                let origin = PathBuf::from(&pos.path);
                let service = self.service_for(source, &origin);
                self.open(path, origin, key, source, service, false);
            }
        }
    }

    fn service_for(&self, source: usize, path: &Path) -> String {
        match &self.opts.sources[source].service {
            Some(s) => s.clone(),
            None => service_from_path(path),
        }
    }

    /// Walks every include glob, opening new files and marking which tracked
    /// files are still matched.
    fn rescan(&mut self) {
        for t in self.files.values_mut() {
            t.matched = false;
        }
        let mut found: Vec<(PathBuf, std::fs::Metadata, usize)> = Vec::new();
        for (index, source) in self.opts.sources.iter().enumerate() {
            for root in &source.roots {
                walk(&root.dir, root.depth, &mut |path, meta| {
                    if source.matches(path) {
                        found.push((path.to_path_buf(), meta.clone(), index));
                    }
                });
            }
        }
        for (path, meta, source) in found {
            let key = FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            if let Some(t) = self.files.get_mut(&key) {
                t.matched = true;
                if t.path != path {
                    t.origin = path.clone();
                    t.path = path;
                }
                if t.file.is_none() && meta.len() != t.read_offset {
                    self.reopen(key);
                }
                continue;
            }
            let service = self.service_for(source, &path);
            self.open(path.clone(), path, key, source, service, true);
        }
        self.metrics.files_tracked.set(self.files.len() as i64);
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

    fn open_count(&self) -> usize {
        self.files.values().filter(|t| t.file.is_some()).count()
    }

    /// Makes room for one more open file by closing the longest-idle one.
    fn ensure_fd_budget(&mut self) -> bool {
        if self.open_count() < self.opts.max_open_files.max(1) {
            return true;
        }
        let victim = self
            .files
            .values()
            .filter(|t| t.file.is_some() && t.partial.is_empty())
            .min_by_key(|t| t.last_data)
            .map(|t| t.key);
        match victim {
            Some(key) => {
                if let Some(t) = self.files.get_mut(&key) {
                    t.file = None;
                }
                true
            }
            None => false,
        }
    }

    fn open(
        &mut self,
        path: PathBuf,
        origin: PathBuf,
        key: FileKey,
        source: usize,
        service: String,
        matched: bool,
    ) {
        if !self.ensure_fd_budget() {
            return;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(err) => {
                self.warn_once(&path, "open", &err);
                return;
            }
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(err) => {
                self.warn_once(&path, "stat", &err);
                return;
            }
        };
        // The path may have been replaced between the scan and the open.
        let key = if meta.ino() == key.ino && meta.dev() == key.dev {
            key
        } else {
            FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        };
        let size = meta.len();
        let (fp_len, fp_hash) = match head_fingerprint(&file, size) {
            Ok(fp) => fp,
            Err(err) => {
                self.warn_once(&path, "read", &err);
                return;
            }
        };
        self.warned.remove(&path);
        let src = &self.opts.sources[source];
        let (start, known) = match self.positions.get(&key) {
            Some(pos) if pos.fp_len <= fp_len && same_head(&file, pos) => {
                if pos.offset > size {
                    self.metrics.rotation("truncated");
                    (0, true)
                } else {
                    (pos.offset, true)
                }
            }
            _ if self.opts.first_start && src.read_from == ReadFrom::End => (size, false),
            _ => (0, false),
        };
        let merger = src.multiline.clone().map(Merger::new);
        let label = format!("file:{}", path.display());
        tracing::debug!(path = %path.display(), offset = start, "following file");
        self.files.insert(
            key,
            Tracked {
                key,
                path,
                origin,
                source,
                service: Arc::from(service),
                label: Arc::from(label),
                file: Some(file),
                read_offset: start,
                partial: Vec::new(),
                partial_len: 0,
                sent_offset: start,
                fp_len,
                fp_hash,
                merger,
                last_data: Instant::now(),
                matched,
            },
        );
        self.metrics.files_open.set(self.open_count() as i64);
        // Register a new file in the spool at once, with no records: should
        // it be rotated away before its first lines are spooled, a restart
        // still knows its inode and finds it by that in its directory.
        if !known && let Some(t) = self.files.get(&key) {
            let app = self.opts.sources[t.source].app.clone();
            let chunk = t.chunk(&app, t.pos(start), Vec::new());
            self.send(chunk);
        }
    }

    fn reopen(&mut self, key: FileKey) {
        if !self.ensure_fd_budget() {
            return;
        }
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        match File::open(&t.path) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.ino() == key.ino && m.dev() == key.dev => {
                    t.file = Some(f);
                    t.last_data = Instant::now();
                }
                _ => {}
            },
            Err(err) => {
                let path = t.path.clone();
                self.warn_once(&path, "open", &err);
            }
        }
    }

    /// Reads every open file once; returns the bytes read.
    fn read_pass(&mut self, shutdown: &AtomicBool) -> usize {
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        let mut total = 0;
        for key in keys {
            if shutdown.load(Ordering::Relaxed) || self.stopped {
                break;
            }
            total += self.read_file(key);
        }
        total
    }

    fn read_file(&mut self, key: FileKey) -> usize {
        let chunk_bytes = self.opts.read_chunk_bytes;
        let Some(t) = self.files.get_mut(&key) else {
            return 0;
        };
        let Some(file) = t.file.as_ref() else {
            return 0;
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(_) => return 0,
        };
        let size = meta.len();
        let mut truncated = size < t.read_offset;
        if !truncated && size > t.read_offset && t.read_offset > 0 && t.fp_len > 0 {
            let pos = t.pos(0);
            truncated = !same_head(file, &pos);
        }
        let mut out: Vec<LineRecord> = Vec::new();
        let now = now_nanos();
        let source = &self.opts.sources[t.source];
        if truncated {
            self.metrics.rotation("truncated");
            tracing::info!(path = %t.path.display(), offset = t.read_offset, size, "file truncated, reading from the start");
            // Whatever was pending belongs to the old content.
            if let Some(ev) = t.merger.as_mut().and_then(Merger::flush) {
                out.push(event_record(source, &ev, now, &self.metrics));
            }
            t.read_offset = 0;
            t.partial.clear();
            t.partial_len = 0;
            match head_fingerprint(file, size) {
                Ok((len, hash)) => {
                    t.fp_len = len;
                    t.fp_hash = hash;
                }
                Err(_) => return 0,
            }
            let pos = t.pos(0);
            t.sent_offset = 0;
            let chunk = t.chunk(&source.app, pos, out);
            self.send(chunk);
            return 1;
        }
        if size <= t.read_offset {
            return 0;
        }
        let want = ((size - t.read_offset) as usize).min(chunk_bytes);
        if let Some(limiter) = &self.limiter {
            throttle(limiter, want);
        }
        // One buffer for every read: no allocation or zeroing per read.
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let n = match file.read_at(&mut self.buf[..want], t.read_offset) {
            Ok(n) => n,
            Err(err) => {
                let path = t.path.clone();
                self.warn_once(&path, "read", &err);
                return 0;
            }
        };
        let buf = &self.buf[..n];
        if n == 0 {
            return 0;
        }
        t.last_data = Instant::now();
        self.metrics.bytes_read.inc_by(n as u64);
        if t.fp_len < FINGERPRINT_BYTES as u32
            && let Ok((len, hash)) = head_fingerprint(file, size)
        {
            t.fp_len = len;
            t.fp_hash = hash;
        }
        let base = t.read_offset;
        t.read_offset += n as u64;
        let max_line = source.max_line_bytes;
        let mut line_start = 0usize;
        let mut last_end: Option<u64> = None;
        let mut lines = 0u64;
        while let Some(nl) = memchr(b'\n', &buf[line_start..]) {
            let seg = &buf[line_start..line_start + nl];
            let end_offset = base + (line_start + nl + 1) as u64;
            let start_offset = end_offset - (t.partial_len + nl + 1) as u64;
            let full_len = t.partial_len + seg.len();
            let line_bytes: Cow<[u8]> = if t.partial.is_empty() && t.partial_len == 0 {
                Cow::Borrowed(&seg[..seg.len().min(max_line)])
            } else {
                let room = max_line.saturating_sub(t.partial.len());
                let mut joined = std::mem::take(&mut t.partial);
                joined.extend_from_slice(&seg[..seg.len().min(room)]);
                Cow::Owned(joined)
            };
            t.partial_len = 0;
            lines += 1;
            line_start += nl + 1;
            let truncated_from = (full_len > max_line).then_some(full_len);
            let (text, lossy) = decode_line(&line_bytes, truncated_from.is_some());
            let text = text.strip_suffix('\r').unwrap_or(&text);
            match t.merger.as_mut() {
                Some(merger) => {
                    let line = Line {
                        text: text.to_string(),
                        start_offset,
                        end_offset,
                        truncated_from,
                        lossy,
                    };
                    if let Some(ev) = merger.push(line, now) {
                        out.push(event_record(source, &ev, now, &self.metrics));
                    }
                    last_end = Some(end_offset);
                }
                None => {
                    if text.is_empty() {
                        self.metrics.lines_empty.inc();
                    } else {
                        out.push(make_record(
                            source,
                            text,
                            truncated_from,
                            lossy,
                            now,
                            &self.metrics,
                        ));
                    }
                    last_end = Some(end_offset);
                }
            }
        }
        // Keep the unterminated rest, capped.
        let rest = &buf[line_start..];
        if !rest.is_empty() {
            let room = max_line.saturating_sub(t.partial.len());
            t.partial.extend_from_slice(&rest[..rest.len().min(room)]);
            t.partial_len += rest.len();
        }
        self.metrics.lines_read.inc_by(lines);
        let Some(end) = last_end else { return n };
        let safe = t
            .merger
            .as_ref()
            .and_then(Merger::safe_offset)
            .map_or(end, |s| s.min(end));
        let records_len = out.len();
        if records_len > 0 || safe != t.sent_offset {
            t.sent_offset = safe;
            let pos = t.pos(safe);
            let chunk = t.chunk(&source.app, pos, out);
            self.send(chunk);
        }
        n
    }

    /// Timers: multi-line timeouts, idle and rotated-away files.
    fn housekeeping(&mut self) {
        let now = now_nanos();
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        for key in keys {
            let Some(t) = self.files.get_mut(&key) else {
                continue;
            };
            let source = &self.opts.sources[t.source];
            if let Some(ev) = t.merger.as_mut().and_then(|m| m.poll(now)) {
                let record = event_record(source, &ev, now, &self.metrics);
                let safe = t
                    .merger
                    .as_ref()
                    .and_then(Merger::safe_offset)
                    .unwrap_or(ev.end_offset);
                t.sent_offset = safe;
                let pos = t.pos(safe);
                let chunk = t.chunk(&source.app, pos, vec![record]);
                self.send(chunk);
                continue;
            }
            let Some(file) = t.file.as_ref() else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let at_end = meta.len() <= t.read_offset;
            let idle = t.last_data.elapsed();
            let deleted = meta.nlink() == 0;
            if at_end && (deleted || (!t.matched && idle >= self.opts.rotate_wait)) {
                self.finish(key, if deleted { "deleted" } else { "rotated" });
            } else if at_end && idle >= self.opts.idle_close && t.partial.is_empty() {
                tracing::debug!(path = %t.path.display(), "closing idle file");
                t.file = None;
                self.metrics.files_open.set(self.open_count() as i64);
            }
        }
    }

    /// Reads out what is left of a file that is gone and forgets it.
    fn finish(&mut self, key: FileKey, why: &str) {
        let Some(mut t) = self.files.remove(&key) else {
            return;
        };
        self.metrics.rotation(why);
        let now = now_nanos();
        let source = &self.opts.sources[t.source];
        let mut out = Vec::new();
        // An unterminated last line will never be completed now.
        if t.partial_len > 0 {
            let bytes = std::mem::take(&mut t.partial);
            let truncated_from = (t.partial_len > source.max_line_bytes).then_some(t.partial_len);
            let (text, lossy) = decode_line(&bytes, truncated_from.is_some());
            let text = text.into_owned();
            match t.merger.as_mut() {
                Some(m) => {
                    let line = Line {
                        text,
                        start_offset: t.read_offset - t.partial_len as u64,
                        end_offset: t.read_offset,
                        truncated_from,
                        lossy,
                    };
                    if let Some(ev) = m.push(line, now) {
                        out.push(event_record(source, &ev, now, &self.metrics));
                    }
                }
                None if !text.is_empty() => {
                    out.push(make_record(
                        source,
                        &text,
                        truncated_from,
                        lossy,
                        now,
                        &self.metrics,
                    ));
                }
                None => {}
            }
        }
        if let Some(ev) = t.merger.as_mut().and_then(Merger::flush) {
            out.push(event_record(source, &ev, now, &self.metrics));
        }
        tracing::info!(path = %t.path.display(), reason = why, "finished file");
        let mut pos = t.pos(t.read_offset);
        pos.gone = true;
        let chunk = t.chunk(&source.app, pos, out);
        self.send(chunk);
        self.metrics.files_open.set(self.open_count() as i64);
        self.metrics.files_tracked.set(self.files.len() as i64);
    }

    /// Hands a chunk to the spool writer, waiting while it is behind (or
    /// the spool is full).
    fn send(&mut self, chunk: Chunk) {
        if self.tx.send(chunk).is_err() {
            self.stopped = true;
        }
    }
}

/// Whether the file's head still hashes to the fingerprint in `pos`.
fn same_head(file: &File, pos: &FilePos) -> bool {
    let mut buf = vec![0u8; pos.fp_len as usize];
    file.read_exact_at(&mut buf, 0).is_ok() && fingerprint(&buf) == pos.fp_hash
}

/// Blocks until the limiter allows `bytes` more.
fn throttle(limiter: &Limiter, bytes: usize) {
    let Some(n) = NonZeroU32::new(u32::try_from(bytes).unwrap_or(u32::MAX)) else {
        return;
    };
    let clock = governor::clock::DefaultClock::default();
    loop {
        match limiter.check_n(n) {
            Ok(Ok(())) => return,
            Ok(Err(not_until)) => {
                use governor::clock::Clock;
                std::thread::sleep(not_until.wait_time_from(clock.now()));
            }
            // More than the burst: cannot happen as the burst covers a chunk.
            Err(_) => return,
        }
    }
}

/// Waits up to `timeout` for file events; returns whether a rescan is needed.
fn wait_for_events(rx: &Receiver<notify::Result<notify::Event>>, timeout: Duration) -> bool {
    let mut rescan = false;
    let first = match rx.recv_timeout(timeout) {
        Ok(ev) => ev,
        Err(RecvTimeoutError::Timeout) => return false,
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(timeout);
            return false;
        }
    };
    let mut note = |ev: notify::Result<notify::Event>| match ev {
        Ok(ev) => {
            if !matches!(
                ev.kind,
                notify::EventKind::Modify(notify::event::ModifyKind::Data(_))
                    | notify::EventKind::Access(_)
            ) {
                rescan = true;
            }
        }
        Err(_) => rescan = true,
    };
    note(first);
    while let Ok(ev) = rx.try_recv() {
        note(ev);
    }
    rescan
}

fn walk(dir: &Path, depth: usize, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows symlinks, as tailing a linked log file is expected.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            f(&path, &meta);
        } else if meta.is_dir() && depth > 1 {
            walk(&path, depth - 1, f);
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Decodes a line, lossily when it is not UTF-8. A multi-byte character cut
/// by truncation is dropped rather than reported as invalid input.
fn decode_line(bytes: &[u8], was_truncated: bool) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(e) if was_truncated && e.error_len().is_none() => {
            let valid = &bytes[..e.valid_up_to()];
            // Just checked to be valid.
            (String::from_utf8_lossy(valid), false)
        }
        Err(_) => (String::from_utf8_lossy(bytes), true),
    }
}

/// The record of a merged multi-line event.
fn event_record(source: &Source, ev: &Event, now: i64, metrics: &AgentMetrics) -> LineRecord {
    make_record(source, &ev.text, ev.truncated_from, ev.lossy, now, metrics)
}

fn make_record(
    source: &Source,
    text: &str,
    truncated_from: Option<usize>,
    lossy: bool,
    now: i64,
    metrics: &AgentMetrics,
) -> LineRecord {
    let parsed = parse_line(text, now);
    let mut attrs = source.attrs.clone();
    attrs.extend(parsed.attrs);
    if let Some(len) = truncated_from {
        metrics.lines_truncated.inc();
        attrs.insert(ATTR_TRUNCATED.to_string(), len.to_string());
    }
    if lossy {
        metrics.lines_lossy.inc();
        attrs.insert(ATTR_LOSSY.to_string(), "true".to_string());
    }
    LineRecord {
        ts: parsed.ts.unwrap_or(now),
        level: parsed.level,
        msg: parsed.msg,
        attrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_patterns() {
        assert_eq!(
            root_of("/var/log/shop/*.log"),
            Root {
                dir: "/var/log/shop".into(),
                depth: 1
            }
        );
        assert_eq!(
            root_of("/var/log/*/app.log"),
            Root {
                dir: "/var/log".into(),
                depth: 2
            }
        );
        assert_eq!(root_of("/var/log/**/*.log").depth, MAX_WALK_DEPTH);
        assert_eq!(
            root_of("/var/log/syslog"),
            Root {
                dir: "/var/log".into(),
                depth: 1
            }
        );
    }

    #[test]
    fn services_from_paths() {
        assert_eq!(service_from_path(Path::new("/x/checkout.log")), "checkout");
        assert_eq!(
            service_from_path(Path::new("/x/checkout.log.1")),
            "checkout"
        );
        assert_eq!(
            service_from_path(Path::new("/x/Web Server.log")),
            "web-server"
        );
        assert_eq!(service_from_path(Path::new("/x/.hidden")), "hidden");
    }

    #[test]
    fn decode_flags_invalid_utf8_but_not_a_cut_character() {
        assert_eq!(decode_line(b"abc", false), (Cow::Borrowed("abc"), false));
        let (text, lossy) = decode_line(b"a\xffb", false);
        assert!(lossy);
        assert_eq!(text, "a\u{fffd}b");
        let cut = &"é".as_bytes()[..1];
        let joined = [b"ab", cut].concat();
        let (text, lossy) = decode_line(&joined, true);
        assert!(!lossy);
        assert_eq!(text, "ab");
    }

    #[test]
    fn excludes_by_name_and_path() {
        let cfg = FileSourceConfig {
            include: vec!["/var/log/shop/*".into()],
            exclude: vec!["*.gz".into(), "/var/log/shop/secret*".into()],
            app: sluice_core::config::Name::new("shop").unwrap(),
            service: None,
            attrs: BTreeMap::new(),
            read_from: ReadFrom::Beginning,
            max_line_bytes: 100,
            multiline: None,
        };
        let s = Source::new(&cfg).unwrap();
        assert!(s.matches(Path::new("/var/log/shop/a.log")));
        assert!(!s.matches(Path::new("/var/log/shop/a.log.gz")));
        assert!(!s.matches(Path::new("/var/log/shop/secret.log")));
        assert!(!s.matches(Path::new("/var/log/shop/sub/a.log")));
    }
}
