//! Crash-safe disk spool between the sources and the publisher.
//!
//! The [writer](crate::pipeline::writer) groups what the sources read into
//! *entries* (opaque byte payloads) and appends them here; the publisher reads them back in sequence order,
//! publishes them to JetStream and acks them. Disk space is reclaimed only for
//! acked entries, so an unreachable NATS or a `kill -9` loses nothing that was
//! durably appended.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/
//!   lock                              advisory lock: one process per spool
//!   incarnation                       random id made with the spool (see [`incarnation`])
//!   state                             ack floor, sequence high-water mark, checkpoint
//!   seg-00000000000000000001.spool    segment, named after the first seq it may hold
//!   seg-00000000000000000734.spool
//!   corrupt/                          damaged segments kept for inspection (at most 8)
//! ```
//!
//! Files whose names do not match these patterns are ignored.
//!
//! ## Segments
//!
//! A segment is a bare concatenation of frames, one per entry, with no file
//! header. Integers are little-endian.
//!
//! ```text
//! offset  size  field
//! 0       4     magic F3 5C 1D A7 (never valid UTF-8, so rare inside log text)
//! 4       4     payload length (u32)
//! 8       8     sequence number (u64)
//! 16      4     CRC-32 (IEEE) of bytes 4..16 followed by the payload
//! 20      len   payload
//! ```
//!
//! Sequence numbers start at 1 and grow by one across the whole spool; gaps
//! appear only where entries were lost to corruption or to a failed write.
//! Every frame in `seg-N.spool` has a seq of at least `N`. The writer starts a
//! new segment once the next frame would push the current one past
//! `segment_bytes` (a frame larger than that gets a segment of its own), and
//! every [`Spool::open`] starts a new segment: a segment left by an earlier
//! run is never appended to, because the crash may have cut its tail.
//!
//! ## State file
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SLST"
//! 4       4     format version (1)
//! 8       8     ack floor: every seq below it was acked
//! 16      8     seq high-water mark: every seq assigned so far is below it
//! 24      1     1 if a checkpoint follows, 0 if not
//! 25      4     checkpoint length n
//! 29      n     checkpoint (the caller's bytes from the last `release`)
//! 29+n    4     CRC-32 (IEEE) of all preceding bytes
//! ```
//!
//! It is replaced atomically: write `state.tmp`, fdatasync, rename over
//! `state`, fsync the directory.
//!
//! # Invariants
//!
//! * An entry is handed to readers only after its frame was fdatasync'd and,
//!   for a new segment, after the directory was fsync'd so the file itself
//!   survives a crash.
//! * A segment is deleted only when every entry in it is acked, it is not the
//!   segment being appended to, and the checkpoint given to `release` is
//!   durable. The state file is rewritten before a deletion whenever the
//!   deleted entries are not yet below its high-water mark, so sequence
//!   numbers are never reused even when every segment has been deleted.
//! * Entries below the persisted ack floor are never handed out again after a
//!   restart. Acked entries at or above it may be (delivery is at least once;
//!   JetStream's duplicate window absorbs the resend).
//!
//! # Recovery
//!
//! [`Spool::open`] scans every segment in name order and checks each frame's
//! magic, length and checksum. Where a frame does not validate, it searches
//! forward for the next magic at which a whole frame validates and counts the
//! bytes in between as one damaged region. Damage running to the end of the
//! last segment is a torn write: the file is truncated to the end of its last
//! valid frame and the bytes are reported as `torn_bytes`. Damage anywhere
//! else is reported as `corrupt_frames`/`corrupt_bytes`; the segment is kept,
//! its intact frames stay readable, and once all of them are acked the file is
//! moved into `corrupt/` instead of being deleted. A frame whose seq does not
//! increase (an old frame surfacing through corruption) is skipped the same
//! way. Empty segment files are removed, a segment file that cannot be opened
//! is moved into `corrupt/`, and an unreadable state file is treated as absent.
//! Nothing in the directory makes `open` fail except I/O errors on the
//! directory itself.
//!
//! # Concurrency
//!
//! One thread appends; others read, ack and release. The shared index lives
//! behind a mutex that is never held across disk writes or syncs: `append`
//! writes and syncs under its own writer lock and then publishes the new
//! entries to the index in one short critical section, and readers copy the
//! frame location out of the index and `pread` without the lock. An unlinked
//! or renamed segment stays readable through already open handles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

mod frame;
pub mod incarnation;
mod recover;
mod state;

pub use incarnation::Incarnation;

use frame::{encode_frame, frame_len, read_entry};
use recover::{quarantine, recover_segments};
use state::{MAX_CHECKPOINT, Persisted, STATE_TMP_FILE, load_state, write_state};

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".spool";
const SEGMENT_DIGITS: usize = 20;
const LOCK_FILE: &str = "lock";
/// Entries may always be this large, whatever `segment_bytes` is.
const MIN_PAYLOAD_LIMIT: u64 = 64 << 20;
const FIRST_SEQ: u64 = 1;

/// Where and how large the spool is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Directory holding the segments and the state file; created if missing.
    pub dir: PathBuf,
    /// Cap on the bytes of live segments; `append` fails with
    /// [`SpoolError::Full`] beyond it.
    pub max_bytes: u64,
    /// Target size of one segment, the unit in which space is freed.
    pub segment_bytes: u64,
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool i/o on {path} failed: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Appending would exceed `max_bytes`; wait with
    /// [`Spool::wait_for_space`] and retry.
    #[error("spool is full: {needed} bytes needed, {used} of {max} bytes used")]
    Full { needed: u64, used: u64, max: u64 },
    /// An entry (or a whole batch, or a checkpoint) can never fit.
    #[error("{len} bytes exceed the spool's size limit")]
    TooLarge { len: usize },
    /// Another process holds the spool directory.
    #[error("spool directory {dir} is in use by another process")]
    Locked { dir: PathBuf },
    /// The options cannot work.
    #[error("invalid spool options: {0}")]
    InvalidOptions(&'static str),
    /// Every sequence number has been used; only reachable with forged frames.
    #[error("spool sequence numbers are exhausted")]
    SeqExhausted,
}

impl SpoolError {
    /// Whether the error is [`SpoolError::Full`], i.e. worth retrying after
    /// [`Spool::wait_for_space`].
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full { .. })
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The bytes last given to [`Spool::release`], if any.
    pub checkpoint: Option<Vec<u8>>,
    /// Intact entries that are not acked (at or above the persisted floor).
    pub entries: u64,
    /// Bytes cut from the torn tail of the last segment.
    pub torn_bytes: u64,
    /// Damaged regions skipped (plus unopenable segments).
    pub corrupt_frames: u64,
    /// Bytes in those regions.
    pub corrupt_bytes: u64,
    /// Lowest unacked seq (the ack floor); equals `next_seq` when none.
    pub first_seq: u64,
    /// Seq the next appended entry gets.
    pub next_seq: u64,
    /// The state file existed but could not be read or failed its checksum,
    /// so the checkpoint and the ack floor were lost.
    pub state_corrupt: bool,
    /// How the spool's incarnation was come by.
    pub incarnation: incarnation::Origin,
}

/// Where one entry's frame lives.
#[derive(Debug, Clone, Copy)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes on disk, counted against `max_bytes`.
    bytes: u64,
    /// Index entries (acked or not) that live in this segment.
    entries: u64,
    /// How many of those are unacked.
    unacked: u64,
    last_seq: Option<u64>,
    /// No more appends will go here; only sealed segments may be deleted.
    sealed: bool,
    /// Holds damaged bytes, so it goes to `corrupt/` rather than away.
    damaged: bool,
}

impl Segment {
    fn new(path: PathBuf, file: File, bytes: u64, sealed: bool) -> Self {
        Self {
            path,
            file: Arc::new(file),
            bytes,
            entries: 0,
            unacked: 0,
            last_seq: None,
            sealed,
            damaged: false,
        }
    }
}

#[derive(Default)]
struct State {
    /// Keyed by the seq in the file name.
    segments: BTreeMap<u64, Segment>,
    /// Every intact entry still on disk, acked or not.
    index: BTreeMap<u64, Loc>,
    unacked: BTreeSet<u64>,
    next_seq: u64,
    used: u64,
}

impl State {
    fn ack_floor(&self) -> u64 {
        self.unacked.first().copied().unwrap_or(self.next_seq)
    }

    fn locate(&self, seq: u64) -> Option<(Loc, Arc<File>)> {
        let loc = *self.index.get(&seq)?;
        let segment = self.segments.get(&loc.segment)?;
        Some((loc, Arc::clone(&segment.file)))
    }

    /// Drops an entry whose frame turned out unreadable after recovery.
    fn forget(&mut self, seq: u64) {
        let was_unacked = self.unacked.remove(&seq);
        if let Some(loc) = self.index.remove(&seq)
            && let Some(segment) = self.segments.get_mut(&loc.segment)
        {
            segment.entries = segment.entries.saturating_sub(1);
            if was_unacked {
                segment.unacked = segment.unacked.saturating_sub(1);
            }
            segment.damaged = true;
        }
    }

    fn remove_segment(&mut self, id: u64) {
        let Some(segment) = self.segments.remove(&id) else {
            return;
        };
        self.used = self.used.saturating_sub(segment.bytes);
        // Every seq in a segment is at least its id; the guard only keeps
        // `range` from panicking should that ever not hold.
        if let Some(last) = segment.last_seq.filter(|&last| last >= id) {
            let seqs: Vec<u64> = self
                .index
                .range(id..=last)
                .filter(|(_, loc)| loc.segment == id)
                .map(|(&seq, _)| seq)
                .collect();
            for seq in seqs {
                self.index.remove(&seq);
                self.unacked.remove(&seq);
            }
        }
    }
}

/// The segment `append` currently writes to.
struct Active {
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

struct Writer {
    active: Option<Active>,
    /// Next seq to assign; runs ahead of the published one only while an
    /// append is in flight.
    next_seq: u64,
}

/// The frames one append writes into one segment.
struct Chunk {
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    offset: u64,
    created: bool,
    buf: Vec<u8>,
    entries: Vec<(u64, u64, u32)>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }
}

/// Crash-safe, size-capped queue of entries on disk; see the module docs.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    max_payload: u64,
    state: Mutex<State>,
    space: Condvar,
    writer: Mutex<Writer>,
    persisted: Mutex<Persisted>,
    incarnation: Incarnation,
    /// Held for the spool's lifetime: the advisory lock dies with the handle.
    _lock: File,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("segment_bytes", &self.segment_bytes)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means another thread panicked mid-operation; every
/// critical section leaves the state consistent, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spool {
    /// Opens (or creates) the spool in `opts.dir`, recovering whatever a
    /// previous run left there.
    pub fn open(opts: SpoolOptions) -> Result<(Arc<Spool>, Recovered), SpoolError> {
        if opts.max_bytes == 0 {
            return Err(SpoolError::InvalidOptions("max_bytes must be positive"));
        }
        if opts.segment_bytes == 0 {
            return Err(SpoolError::InvalidOptions("segment_bytes must be positive"));
        }
        let dir = opts.dir;
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let lock_file = acquire_lock(&dir)?;

        let mut recovered = Recovered::default();
        let persisted = load_state(&dir, &mut recovered).unwrap_or_default();
        let tmp = dir.join(STATE_TMP_FILE);
        if let Err(e) = fs::remove_file(&tmp)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!(path = %tmp.display(), error = %e, "cannot remove stale state file");
        }

        let mut state = recover_segments(&dir, &mut recovered)?;

        let max_found = state.index.last_key_value().map(|(&seq, _)| seq);
        let max_name = state.segments.last_key_value().map(|(&id, _)| id);
        let next_seq = [
            FIRST_SEQ,
            persisted.floor,
            persisted.high_water,
            max_found.map_or(0, |s| s.saturating_add(1)),
            max_name.map_or(0, |s| s.saturating_add(1)),
        ]
        .into_iter()
        .max()
        .unwrap_or(FIRST_SEQ);
        state.next_seq = next_seq;
        let (incarnation, origin) = incarnation::load_or_create(&dir, next_seq)?;
        recovered.incarnation = origin;

        let unacked: Vec<(u64, u64)> = state
            .index
            .range(persisted.floor..)
            .map(|(&seq, loc)| (seq, loc.segment))
            .collect();
        for (seq, segment) in unacked {
            state.unacked.insert(seq);
            if let Some(segment) = state.segments.get_mut(&segment) {
                segment.unacked += 1;
            }
        }

        recovered.checkpoint = persisted.checkpoint.clone();
        recovered.entries = state.unacked.len() as u64;
        recovered.first_seq = state.ack_floor();
        recovered.next_seq = next_seq;
        info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            used_bytes = state.used,
            entries = recovered.entries,
            first_seq = recovered.first_seq,
            next_seq,
            torn_bytes = recovered.torn_bytes,
            corrupt_frames = recovered.corrupt_frames,
            corrupt_bytes = recovered.corrupt_bytes,
            incarnation = %format_args!("{:016x}", incarnation.id),
            "spool opened"
        );

        let max_payload = opts
            .segment_bytes
            .max(MIN_PAYLOAD_LIMIT)
            .min(u64::from(u32::MAX));
        let spool = Spool {
            dir,
            max_bytes: opts.max_bytes,
            segment_bytes: opts.segment_bytes,
            max_payload,
            state: Mutex::new(state),
            space: Condvar::new(),
            writer: Mutex::new(Writer {
                active: None,
                next_seq,
            }),
            persisted: Mutex::new(persisted),
            incarnation,
            _lock: lock_file,
        };
        Ok((Arc::new(spool), recovered))
    }

    /// Which spool this is, for the ids of the batches its entries hold.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// Appends `payloads` with consecutive seqs, syncs once, and returns the
    /// seq of the first. The entries become readable only after the sync.
    ///
    /// Fails with [`SpoolError::Full`] before writing anything when the batch
    /// does not fit under `max_bytes`, and with [`SpoolError::TooLarge`] when
    /// a payload exceeds `max(segment_bytes, 64 MiB)` or the batch could never
    /// fit. On an I/O error the batch's seqs are skipped, never reused.
    pub fn append(&self, payloads: &[&[u8]]) -> Result<u64, SpoolError> {
        let mut lens = Vec::with_capacity(payloads.len());
        let mut needed: u64 = 0;
        for payload in payloads {
            let too_large = SpoolError::TooLarge { len: payload.len() };
            let len = u32::try_from(payload.len()).map_err(|_| too_large)?;
            let frame = frame_len(len);
            if u64::from(len) > self.max_payload || frame > self.max_bytes {
                return Err(SpoolError::TooLarge { len: payload.len() });
            }
            needed = needed.saturating_add(frame);
            lens.push(len);
        }
        if needed > self.max_bytes {
            // Waiting for space could never help; the caller must split it.
            let len = usize::try_from(needed).unwrap_or(usize::MAX);
            return Err(SpoolError::TooLarge { len });
        }

        let mut writer = lock(&self.writer);
        let first = writer.next_seq;
        if payloads.is_empty() {
            return Ok(first);
        }
        let end = first
            .checked_add(payloads.len() as u64)
            .ok_or(SpoolError::SeqExhausted)?;
        {
            let state = lock(&self.state);
            if state.used.saturating_add(needed) > self.max_bytes {
                return Err(SpoolError::Full {
                    needed,
                    used: state.used,
                    max: self.max_bytes,
                });
            }
        }

        let mut chunks = Vec::new();
        if let Some(active) = &writer.active {
            chunks.push(Chunk {
                id: active.id,
                path: active.path.clone(),
                file: Arc::clone(&active.file),
                offset: active.len,
                created: false,
                buf: Vec::new(),
                entries: Vec::new(),
            });
        }
        if let Err(e) = self.write_batch(&mut chunks, payloads, &lens, first) {
            warn!(
                first_seq = first,
                count = payloads.len(),
                error = %e,
                "spool append failed, abandoning segment"
            );
            self.roll_back(&mut writer, &chunks, end);
            return Err(e);
        }

        let last_id = chunks.last().map(|c| c.id);
        {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            for chunk in &chunks {
                if let Some(segment) = state.segments.get_mut(&chunk.id) {
                    segment.bytes += chunk.buf.len() as u64;
                    segment.entries += chunk.entries.len() as u64;
                    segment.unacked += chunk.entries.len() as u64;
                    if let Some(&(seq, _, _)) = chunk.entries.last() {
                        segment.last_seq = Some(seq);
                    }
                    if Some(chunk.id) != last_id {
                        segment.sealed = true;
                    }
                }
                for &(seq, offset, len) in &chunk.entries {
                    let loc = Loc {
                        segment: chunk.id,
                        offset,
                        len,
                    };
                    state.index.insert(seq, loc);
                    state.unacked.insert(seq);
                }
                state.used += chunk.buf.len() as u64;
            }
            state.next_seq = end;
        }
        writer.next_seq = end;
        writer.active = chunks.pop().map(|c| Active {
            id: c.id,
            len: c.end(),
            path: c.path,
            file: c.file,
        });
        Ok(first)
    }

    /// Encodes the frames into per-segment buffers (rolling to new segments as
    /// needed), writes them and syncs each touched file once.
    fn write_batch(
        &self,
        chunks: &mut Vec<Chunk>,
        payloads: &[&[u8]],
        lens: &[u32],
        first: u64,
    ) -> Result<(), SpoolError> {
        for (seq, (payload, &len)) in (first..).zip(payloads.iter().zip(lens)) {
            let frame = frame_len(len);
            let roll = chunks.last().is_none_or(|c| {
                let end = c.end();
                end > 0 && end.saturating_add(frame) > self.segment_bytes
            });
            if roll {
                let chunk = self.create_segment(seq)?;
                chunks.push(chunk);
            }
            if let Some(chunk) = chunks.last_mut() {
                let offset = chunk.end();
                encode_frame(&mut chunk.buf, seq, len, payload);
                chunk.entries.push((seq, offset, len));
            }
        }
        for chunk in chunks.iter().filter(|c| !c.buf.is_empty()) {
            chunk
                .file
                .write_all_at(&chunk.buf, chunk.offset)
                .map_err(io_at(&chunk.path))?;
        }
        for chunk in chunks.iter().filter(|c| !c.buf.is_empty()) {
            chunk.file.sync_data().map_err(io_at(&chunk.path))?;
        }
        if chunks.iter().any(|c| c.created) {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn create_segment(&self, id: u64) -> Result<Chunk, SpoolError> {
        let path = self.dir.join(segment_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let segment = Segment::new(path.clone(), file, 0, false);
        let file = Arc::clone(&segment.file);
        lock(&self.state).segments.insert(id, segment);
        debug!(path = %path.display(), "spool segment started");
        Ok(Chunk {
            id,
            path,
            file,
            offset: 0,
            created: true,
            buf: Vec::new(),
            entries: Vec::new(),
        })
    }

    /// Undoes what a failed append may have left. The batch's seqs are burnt:
    /// its frames may already be on disk, and a crash would resurrect them
    /// next to a retry carrying the same seqs.
    fn roll_back(&self, writer: &mut Writer, chunks: &[Chunk], end: u64) {
        let mut state = lock(&self.state);
        for chunk in chunks {
            let undone = if chunk.created {
                fs::remove_file(&chunk.path)
            } else {
                chunk.file.set_len(chunk.offset)
            };
            match undone {
                Ok(()) if chunk.created => {
                    state.segments.remove(&chunk.id);
                }
                Ok(()) => {}
                Err(e) => {
                    warn!(
                        path = %chunk.path.display(),
                        error = %e,
                        "cannot undo failed spool write"
                    );
                    // The bytes stay on disk, so they count until removal.
                    if let Some(segment) = state.segments.get_mut(&chunk.id) {
                        segment.bytes += chunk.buf.len() as u64;
                        segment.damaged = true;
                    }
                    state.used += chunk.buf.len() as u64;
                }
            }
            if let Some(segment) = state.segments.get_mut(&chunk.id) {
                segment.sealed = true;
            }
        }
        if let Some(active) = writer.active.take()
            && let Some(segment) = state.segments.get_mut(&active.id)
        {
            segment.sealed = true;
        }
        state.next_seq = end;
        writer.next_seq = end;
    }

    /// Blocks until `needed` more bytes fit under `max_bytes` or `timeout`
    /// passes; returns whether they fit (never, if `needed > max_bytes`).
    pub fn wait_for_space(&self, needed: u64, timeout: Duration) -> bool {
        if needed > self.max_bytes {
            return false;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.state);
        loop {
            if state.used.saturating_add(needed) <= self.max_bytes {
                return true;
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if remaining.is_zero() {
                return false;
            }
            state = self
                .space
                .wait_timeout(state, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The first unacked durable entry with seq >= `from`, without blocking.
    /// Seqs lost to corruption are skipped.
    pub fn read_next(&self, from: u64) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        let mut from = from;
        loop {
            let (seq, loc, file) = {
                let mut state = lock(&self.state);
                let Some(&seq) = state.unacked.range(from..).next() else {
                    return Ok(None);
                };
                match state.locate(seq) {
                    Some((loc, file)) => (seq, loc, file),
                    None => {
                        state.forget(seq);
                        from = seq.saturating_add(1);
                        continue;
                    }
                }
            };
            match read_entry(&file, loc, seq) {
                Ok(Some(payload)) => return Ok(Some((seq, payload))),
                Ok(None) => {
                    warn!(
                        seq,
                        segment = loc.segment,
                        offset = loc.offset,
                        "spool entry damaged on disk, skipping"
                    );
                    lock(&self.state).forget(seq);
                    from = seq.saturating_add(1);
                }
                Err(e) => return Err(io_at(&self.dir.join(segment_name(loc.segment)))(e)),
            }
        }
    }

    /// The seq the next appended entry gets (highest durable seq + 1).
    pub fn next_seq(&self) -> u64 {
        lock(&self.state).next_seq
    }

    /// Marks `seq` acked; unknown or already acked seqs are ignored.
    pub fn ack(&self, seq: u64) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if state.unacked.remove(&seq)
            && let Some(loc) = state.index.get(&seq)
            && let Some(segment) = state.segments.get_mut(&loc.segment)
        {
            segment.unacked = segment.unacked.saturating_sub(1);
        }
    }

    /// Lowest unacked seq; everything below it is acked. Equals
    /// [`Spool::next_seq`] when nothing is unacked.
    pub fn ack_floor(&self) -> u64 {
        lock(&self.state).ack_floor()
    }

    /// Durably stores `checkpoint` together with the ack floor, then deletes
    /// every segment whose entries are all acked (damaged ones go to
    /// `corrupt/`) and wakes [`Spool::wait_for_space`].
    ///
    /// The state file is rewritten only when `checkpoint` differs from the
    /// stored one or a deletion needs a newer seq high-water mark, so calling
    /// this often is cheap; the ack floor is persisted along with those writes.
    pub fn release(&self, checkpoint: &[u8]) -> Result<(), SpoolError> {
        if checkpoint.len() > MAX_CHECKPOINT {
            return Err(SpoolError::TooLarge {
                len: checkpoint.len(),
            });
        }
        let mut persisted = lock(&self.persisted);
        let (floor, high_water, doomed) = {
            let state = lock(&self.state);
            let doomed: Vec<(u64, PathBuf, bool, Option<u64>)> = state
                .segments
                .iter()
                .filter(|(_, s)| s.sealed && s.unacked == 0)
                .map(|(&id, s)| (id, s.path.clone(), s.damaged, s.last_seq))
                .collect();
            (state.ack_floor(), state.next_seq, doomed)
        };

        let newest_doomed = doomed.iter().filter_map(|d| d.3).max();
        let needs_high_water = newest_doomed.is_some_and(|seq| seq >= persisted.high_water);
        if persisted.checkpoint.as_deref() != Some(checkpoint) || needs_high_water {
            let next = Persisted {
                floor,
                high_water,
                checkpoint: Some(checkpoint.to_vec()),
            };
            write_state(&self.dir, &next)?;
            *persisted = next;
        }

        let mut freed = 0u64;
        for (id, path, damaged, _) in doomed {
            let removed = if damaged {
                quarantine(&self.dir, &path)
            } else {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            };
            match removed {
                Ok(()) => {
                    let mut state = lock(&self.state);
                    let before = state.used;
                    state.remove_segment(id);
                    freed += before - state.used;
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot remove acked spool segment");
                }
            }
        }
        if freed > 0 {
            debug!(
                freed_bytes = freed,
                ack_floor = floor,
                "spool segments released"
            );
            self.space.notify_all();
        }
        Ok(())
    }

    /// Bytes of live segments on disk, the figure checked against `max_bytes`.
    pub fn used_bytes(&self) -> u64 {
        lock(&self.state).used
    }

    /// The size cap, `max_bytes`.
    pub fn capacity(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes that can still be appended before the spool is full.
    pub fn free_bytes(&self) -> u64 {
        self.max_bytes.saturating_sub(self.used_bytes())
    }

    /// Durable entries not yet acked.
    pub fn unacked(&self) -> u64 {
        lock(&self.state).unacked.len() as u64
    }

    /// Calls `f(seq, payload)` for every intact entry still on disk, acked or
    /// not, oldest first. Meant for rebuilding state once at startup.
    pub fn scan_all(&self, mut f: impl FnMut(u64, &[u8])) -> Result<(), SpoolError> {
        let entries: Vec<(u64, Loc, Arc<File>)> = {
            let state = lock(&self.state);
            state
                .index
                .keys()
                .filter_map(|&seq| state.locate(seq).map(|(loc, file)| (seq, loc, file)))
                .collect()
        };
        for (seq, loc, file) in entries {
            match read_entry(&file, loc, seq) {
                Ok(Some(payload)) => f(seq, &payload),
                Ok(None) => {
                    warn!(
                        seq,
                        segment = loc.segment,
                        offset = loc.offset,
                        "spool entry damaged on disk, skipping"
                    );
                }
                Err(e) => return Err(io_at(&self.dir.join(segment_name(loc.segment)))(e)),
            }
        }
        Ok(())
    }
}

fn segment_name(id: u64) -> String {
    format!(
        "{SEGMENT_PREFIX}{id:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_DIGITS
    )
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn acquire_lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::state::STATE_FILE;
    use super::*;

    pub(super) fn options(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolOptions {
        SpoolOptions {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
        }
    }

    /// Deterministic pseudo-random bytes, so payloads are checkable by seed.
    pub(super) fn payload(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    pub(super) fn append_one(spool: &Spool, bytes: &[u8]) -> u64 {
        spool.append(&[bytes]).unwrap()
    }

    pub(super) fn read_all(spool: &Spool, from: u64) -> BTreeMap<u64, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut next = from;
        while let Some((seq, bytes)) = spool.read_next(next).unwrap() {
            assert!(seq >= next, "read_next went backwards");
            out.insert(seq, bytes);
            next = seq + 1;
        }
        out
    }

    pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_segment_name)
                    .is_some()
            })
            .collect();
        files.sort();
        files
    }

    fn disk_bytes(dir: &Path) -> u64 {
        segment_files(dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    #[test]
    fn round_trip_ack_release_and_space() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(options(dir.path(), 20_000, 8_192)).unwrap();
        assert_eq!(recovered.next_seq, 1);
        assert_eq!(recovered.first_seq, 1);
        assert_eq!(recovered.checkpoint, None);

        let entries: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 1_000)).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        assert_eq!(spool.append(&refs).unwrap(), 1);
        assert_eq!(spool.next_seq(), 4);
        assert_eq!(spool.unacked(), 3);
        assert_eq!(spool.used_bytes(), 3 * 1_020);
        assert_eq!(spool.used_bytes(), disk_bytes(dir.path()));
        for (i, entry) in entries.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(spool.read_next(seq).unwrap(), Some((seq, entry.clone())));
        }
        assert_eq!(spool.read_next(4).unwrap(), None);

        spool.ack(2);
        assert_eq!(spool.ack_floor(), 1);
        assert_eq!(spool.read_next(2).unwrap().map(|e| e.0), Some(3));
        spool.ack(1);
        assert_eq!(spool.ack_floor(), 3);
        spool.ack(3);
        spool.ack(3);
        spool.ack(999);
        assert_eq!(spool.ack_floor(), 4);
        assert_eq!(spool.unacked(), 0);
        assert_eq!(spool.read_next(0).unwrap(), None);

        // Fill to the cap: 4_020-byte frames, two per 8 KiB segment.
        let big = payload(7, 4_000);
        let mut appended = Vec::new();
        let err = loop {
            match spool.append(&[&big]) {
                Ok(seq) => appended.push(seq),
                Err(e) => break e,
            }
        };
        assert!(err.is_full(), "{err}");
        assert!(matches!(
            err,
            SpoolError::Full {
                needed: 4_020,
                max: 20_000,
                ..
            }
        ));
        assert!(spool.used_bytes() <= 20_000);
        assert!(!spool.wait_for_space(4_020, Duration::ZERO));
        assert!(!spool.wait_for_space(30_000, Duration::from_secs(60)));

        let waiter = {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || spool.wait_for_space(4_020, Duration::from_secs(60)))
        };
        for seq in appended {
            spool.ack(seq);
        }
        let before = spool.used_bytes();
        spool.release(b"cp-1").unwrap();
        assert!(spool.used_bytes() < before);
        assert_eq!(spool.used_bytes(), disk_bytes(dir.path()));
        assert!(waiter.join().unwrap());
        let seq = append_one(&spool, &big);
        assert_eq!(spool.read_next(seq).unwrap(), Some((seq, big.clone())));
    }

    #[test]
    fn too_large_and_empty_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(options(dir.path(), 10_000, 4_096)).unwrap();
        let err = spool.append(&[&vec![0u8; 10_000]]).unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { len: 10_000 }), "{err}");
        let half = vec![1u8; 6_000];
        let err = spool.append(&[&half, &half]).unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
        assert_eq!(spool.append(&[]).unwrap(), 1);
        assert_eq!(spool.used_bytes(), 0);
        assert_eq!(append_one(&spool, b""), 1);
        assert_eq!(spool.read_next(0).unwrap(), Some((1, Vec::new())));
    }

    #[test]
    fn second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_spool, _) = Spool::open(options(dir.path(), 1 << 20, 4_096)).unwrap();
        let err = Spool::open(options(dir.path(), 1 << 20, 4_096)).unwrap_err();
        assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    }

    #[test]
    fn reopen_hands_out_unacked_entries_again() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 1 << 20, 2_048);
        let entries: Vec<Vec<u8>> = (0..10).map(|i| payload(i, 700)).collect();
        {
            let (spool, _) = Spool::open(opts.clone()).unwrap();
            for entry in &entries {
                append_one(&spool, entry);
            }
            assert!(segment_files(dir.path()).len() > 3);
            for seq in 1..=4 {
                spool.ack(seq);
            }
            spool.release(b"cp").unwrap();
            // Unchanged checkpoint and nothing to delete: no rewrite.
            let inode = fs::metadata(dir.path().join(STATE_FILE)).unwrap().ino();
            spool.release(b"cp").unwrap();
            assert_eq!(
                fs::metadata(dir.path().join(STATE_FILE)).unwrap().ino(),
                inode
            );
            // Acked but never released: these may come back.
            spool.ack(5);
            spool.ack(6);
        }
        let (spool, recovered) = Spool::open(opts).unwrap();
        assert_eq!(recovered.checkpoint.as_deref(), Some(&b"cp"[..]));
        assert_eq!(recovered.first_seq, 5);
        assert_eq!(recovered.next_seq, 11);
        assert_eq!(recovered.entries, 6);
        assert_eq!((recovered.torn_bytes, recovered.corrupt_frames), (0, 0));
        let got = read_all(&spool, 0);
        let want: BTreeMap<u64, Vec<u8>> = (5..=10)
            .map(|s| (s, entries[s as usize - 1].clone()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(append_one(&spool, b"next"), 11);

        let mut scanned = Vec::new();
        spool
            .scan_all(|seq, bytes| scanned.push((seq, bytes.to_vec())))
            .unwrap();
        assert!(scanned.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(scanned.last(), Some(&(11, b"next".to_vec())));
        for (seq, bytes) in &scanned[..scanned.len() - 1] {
            assert_eq!(bytes, &entries[*seq as usize - 1]);
        }
    }

    #[test]
    fn seqs_are_not_reused_after_every_segment_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 1 << 20, 1_024);
        {
            let (spool, _) = Spool::open(opts.clone()).unwrap();
            for i in 0..5 {
                append_one(&spool, &payload(i, 900));
            }
            for seq in 1..=5 {
                spool.ack(seq);
            }
            spool.release(b"a").unwrap();
        }
        {
            // Everything left is sealed and acked now, so all of it goes.
            let (spool, recovered) = Spool::open(opts.clone()).unwrap();
            assert_eq!(recovered.entries, 0);
            spool.release(b"a").unwrap();
            assert_eq!(spool.used_bytes(), 0);
            assert!(segment_files(dir.path()).is_empty());
        }
        let (spool, recovered) = Spool::open(opts).unwrap();
        assert_eq!(recovered.next_seq, 6);
        assert_eq!(append_one(&spool, b"x"), 6);
    }

    #[test]
    fn damage_found_while_reading_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(options(dir.path(), 1 << 20, 1 << 16)).unwrap();
        for i in 0..3 {
            append_one(&spool, &payload(i, 100));
        }
        let files = segment_files(dir.path());
        let file = OpenOptions::new().write(true).open(&files[0]).unwrap();
        file.write_all_at(&[0xFF; 4], 120 + 30).unwrap();
        assert_eq!(spool.read_next(1).unwrap().map(|e| e.0), Some(1));
        assert_eq!(spool.read_next(2).unwrap(), Some((3, payload(2, 100))));
        assert_eq!(spool.unacked(), 2);
        let mut seen = Vec::new();
        spool.scan_all(|seq, _| seen.push(seq)).unwrap();
        assert_eq!(seen, [1, 3]);
    }

    #[test]
    fn reader_and_writer_run_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(options(dir.path(), 1 << 20, 16_384)).unwrap();
        const TOTAL: u64 = 400;
        let writer = {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || {
                for batch in 0..TOTAL / 4 {
                    let entries: Vec<Vec<u8>> =
                        (0..4).map(|i| payload(batch * 4 + i, 300)).collect();
                    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
                    loop {
                        match spool.append(&refs) {
                            Ok(_) => break,
                            Err(e) if e.is_full() => {
                                spool.wait_for_space(1_300, Duration::from_secs(60));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        };
        let mut next = 1;
        while next <= TOTAL {
            match spool.read_next(next).unwrap() {
                Some((seq, bytes)) => {
                    assert_eq!(seq, next);
                    assert_eq!(bytes, payload(seq - 1, 300));
                    spool.ack(seq);
                    next += 1;
                    if seq % 16 == 0 {
                        spool.release(&seq.to_le_bytes()).unwrap();
                    }
                }
                None => std::thread::yield_now(),
            }
        }
        writer.join().unwrap();
        assert_eq!(spool.ack_floor(), TOTAL + 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<(usize, u64)>),
        Ack(prop::sample::Index),
        Release(u8),
        Crash,
        ReadAll,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop::collection::vec((0usize..3_000, any::<u64>()), 1..4).prop_map(Op::Append),
            4 => any::<prop::sample::Index>().prop_map(Op::Ack),
            2 => (0u8..3).prop_map(Op::Release),
            1 => Just(Op::Crash),
            1 => Just(Op::ReadAll),
        ]
    }

    /// What the spool must hand out.
    #[derive(Default)]
    struct Model {
        unacked: BTreeMap<u64, Vec<u8>>,
        /// Acked entries at or above the persisted floor's lower bound: a
        /// crash may bring them back.
        maybe_back: BTreeMap<u64, Vec<u8>>,
        /// The floor persisted by the last release that surely wrote state.
        floor: u64,
        checkpoint: Option<Vec<u8>>,
        next_seq: u64,
    }

    fn check_invariants(spool: &Spool, model: &Model, dir: &Path) -> Result<(), TestCaseError> {
        prop_assert_eq!(spool.unacked(), model.unacked.len() as u64);
        let floor = model
            .unacked
            .keys()
            .next()
            .copied()
            .unwrap_or(spool.next_seq());
        prop_assert_eq!(spool.ack_floor(), floor);
        prop_assert!(spool.next_seq() >= model.next_seq);
        prop_assert_eq!(spool.used_bytes(), disk_bytes(dir));
        Ok(())
    }

    proptest! {
        #![proptest_config(Config { cases: 64, failure_persistence: None, ..Config::default() })]

        #[test]
        fn behaves_like_the_model(ops in prop::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let opts = options(dir.path(), 8 << 20, 4_096);
            let (mut spool, recovered) = Spool::open(opts.clone()).unwrap();
            let mut model = Model { next_seq: recovered.next_seq, ..Model::default() };
            for op in ops {
                match op {
                    Op::Append(specs) => {
                        let entries: Vec<Vec<u8>> =
                            specs.iter().map(|&(len, seed)| payload(seed, len)).collect();
                        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
                        let expected = spool.next_seq();
                        let first = spool.append(&refs).unwrap();
                        prop_assert_eq!(first, expected);
                        prop_assert!(first >= model.next_seq, "seq reused");
                        model.next_seq = first + refs.len() as u64;
                        for (seq, entry) in (first..).zip(entries) {
                            model.unacked.insert(seq, entry);
                        }

                    }
                    Op::Ack(index) => {
                        if !model.unacked.is_empty() {
                            let seqs: Vec<u64> = model.unacked.keys().copied().collect();
                            let seq = *index.get(&seqs);
                            spool.ack(seq);
                            let entry = model.unacked.remove(&seq).unwrap();
                            model.maybe_back.insert(seq, entry);
                        }
                    }
                    Op::Release(which) => {
                        let checkpoint = vec![which; 3];
                        let floor = spool.ack_floor();
                        spool.release(&checkpoint).unwrap();
                        if model.checkpoint.as_ref() != Some(&checkpoint) {
                            model.floor = model.floor.max(floor);
                        }
                        model.checkpoint = Some(checkpoint);
                        let floor = model.floor;
                        model.maybe_back.retain(|&seq, _| seq >= floor);
                    }
                    Op::Crash => {
                        drop(spool);
                        let (reopened, recovered) = Spool::open(opts.clone()).unwrap();
                        spool = reopened;
                        prop_assert_eq!(&recovered.checkpoint, &model.checkpoint);
                        prop_assert_eq!(recovered.torn_bytes, 0);
                        prop_assert_eq!(recovered.corrupt_frames, 0);
                        prop_assert!(!recovered.state_corrupt);
                        let got = read_all(&spool, 0);
                        for (seq, entry) in &model.unacked {
                            prop_assert_eq!(got.get(seq), Some(entry), "lost entry {}", seq);
                        }
                        for (seq, entry) in &got {
                            if !model.unacked.contains_key(seq) {
                                let expected = model.maybe_back.get(seq);
                                prop_assert_eq!(expected, Some(entry), "unexpected entry {}", seq);
                            }
                        }
                        prop_assert_eq!(recovered.entries, got.len() as u64);
                        model.unacked = got;
                        model.maybe_back.clear();
                        let floor =
                            model.unacked.keys().next().copied().unwrap_or(recovered.next_seq);
                        prop_assert_eq!(recovered.first_seq, floor);
                    }
                    Op::ReadAll => {
                        prop_assert_eq!(read_all(&spool, 0), model.unacked.clone());
                        let floor = spool.ack_floor();
                        prop_assert_eq!(read_all(&spool, floor), model.unacked.clone());
                    }
                }
                check_invariants(&spool, &model, dir.path())?;
            }
            let mut scanned = BTreeMap::new();
            spool.scan_all(|seq, bytes| { scanned.insert(seq, bytes.to_vec()); }).unwrap();
            for (seq, entry) in &model.unacked {
                prop_assert_eq!(scanned.get(seq), Some(entry));
            }
        }
    }
}
