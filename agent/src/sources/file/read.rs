//! Reading open files: each pass reads a bounded slice of every file,
//! splits it into lines (truncating overlong ones, decoding invalid UTF-8
//! lossily, keeping an unterminated last line for later) and turns the
//! lines into records, under the read rate limit.

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use memchr::memchr;
use sluice_core::record::{ATTR_LOSSY, ATTR_TRUNCATED, now_nanos};

use super::multiline::{Event, Line, Merger};
use super::open::{head_fingerprint, same_head};
use super::parse::parse_line;
use super::{Source, Tailer};
use crate::metrics::AgentMetrics;
use crate::pipeline::entry::{FINGERPRINT_BYTES, FileKey};
use crate::sources::LineRecord;

pub(super) type Limiter = governor::DefaultDirectRateLimiter;

impl Tailer {
    /// Reads every open file once; returns the bytes read.
    pub(super) fn read_pass(&mut self, shutdown: &AtomicBool) -> usize {
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

/// Decodes a line, lossily when it is not UTF-8. A multi-byte character cut
/// by truncation is dropped rather than reported as invalid input.
pub(super) fn decode_line(bytes: &[u8], was_truncated: bool) -> (Cow<'_, str>, bool) {
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
pub(super) fn event_record(
    source: &Source,
    ev: &Event,
    now: i64,
    metrics: &AgentMetrics,
) -> LineRecord {
    make_record(source, &ev.text, ev.truncated_from, ev.lossy, now, metrics)
}

pub(super) fn make_record(
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
}
