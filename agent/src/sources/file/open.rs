//! Opening and closing files: a file's identity (device, inode and the
//! fingerprint of its head) decides where reading resumes; the open-file
//! budget closes the longest-idle file to make room; idle files are closed
//! and rotated-away or deleted ones read to their end and forgotten.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sluice_core::config::ReadFrom;
use sluice_core::record::now_nanos;

use super::multiline::{Line, Merger};
use super::read::{decode_line, event_record, make_record};
use super::{Tailer, Tracked};
use crate::pipeline::entry::{FINGERPRINT_BYTES, FileKey, FilePos, fingerprint};

/// Head of a file: (bytes covered, hash).
pub(super) fn head_fingerprint(file: &File, size: u64) -> std::io::Result<(u32, u64)> {
    let len = (size as usize).min(FINGERPRINT_BYTES);
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok((len as u32, fingerprint(&buf)))
}

impl Tailer {
    pub(super) fn open_count(&self) -> usize {
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

    pub(super) fn open(
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

    pub(super) fn reopen(&mut self, key: FileKey) {
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

    /// Timers: multi-line timeouts, idle and rotated-away files.
    pub(super) fn housekeeping(&mut self) {
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
}

/// Whether the file's head still hashes to the fingerprint in `pos`.
pub(super) fn same_head(file: &File, pos: &FilePos) -> bool {
    let mut buf = vec![0u8; pos.fp_len as usize];
    file.read_exact_at(&mut buf, 0).is_ok() && fingerprint(&buf) == pos.fp_hash
}
