//! Recovery at open: every segment is scanned with bounded memory for the
//! frames that validate; a torn tail is cut, damaged regions and stale
//! frames are skipped and counted, and segments that cannot be read, or
//! whose damage is all that is left, go to `corrupt/`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::frame::{FRAME_MAGIC, HEADER_LEN, Header, frame_len, parse_header};
use super::{Loc, Recovered, Segment, SpoolError, State, io_at, parse_segment_name};

const CORRUPT_DIR: &str = "corrupt";
/// How many damaged segments `corrupt/` keeps before dropping the oldest.
const KEEP_CORRUPT: usize = 8;
/// Read size for checksumming and for hunting the next magic during recovery,
/// so a huge garbage file never has to fit in memory.
const SCAN_CHUNK: usize = 64 << 10;

/// A frame found intact during recovery.
struct FoundFrame {
    seq: u64,
    offset: u64,
    len: u32,
}

struct SegmentScan {
    frames: Vec<FoundFrame>,
    /// Damaged byte ranges `[start, end)`, in file order.
    damaged: Vec<(u64, u64)>,
}

/// Reads a segment with bounded memory: frames are checksummed in chunks
/// and the magic is hunted through a sliding window.
struct Scanner<'a> {
    file: &'a File,
    size: u64,
    chunk: Vec<u8>,
    window: Vec<u8>,
}

impl<'a> Scanner<'a> {
    fn new(file: &'a File, size: u64) -> Self {
        Self {
            file,
            size,
            chunk: vec![0u8; SCAN_CHUNK],
            window: vec![0u8; SCAN_CHUNK],
        }
    }

    fn scan(mut self) -> io::Result<SegmentScan> {
        let mut frames = Vec::new();
        let mut damaged = Vec::new();
        let mut pos = 0u64;
        while pos < self.size {
            if let Some(header) = self.probe(pos)? {
                frames.push(FoundFrame {
                    seq: header.seq,
                    offset: pos,
                    len: header.len,
                });
                pos += frame_len(header.len);
                continue;
            }
            let end = self.resync(pos + 1)?.unwrap_or(self.size);
            damaged.push((pos, end));
            pos = end;
        }
        Ok(SegmentScan { frames, damaged })
    }

    /// The header of the frame at `pos` if a whole, checksummed frame is there.
    fn probe(&mut self, pos: u64) -> io::Result<Option<Header>> {
        if self.size - pos < HEADER_LEN as u64 {
            return Ok(None);
        }
        let mut bytes = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut bytes, pos)?;
        let Some(header) = parse_header(&bytes) else {
            return Ok(None);
        };
        let fits = pos
            .checked_add(frame_len(header.len))
            .is_some_and(|end| end <= self.size);
        if !fits {
            return Ok(None);
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header.len.to_le_bytes());
        hasher.update(&header.seq.to_le_bytes());
        let mut offset = pos + HEADER_LEN as u64;
        let mut remaining = u64::from(header.len);
        while remaining > 0 {
            let n = remaining.min(SCAN_CHUNK as u64) as usize;
            let buf = &mut self.chunk[..n];
            self.file.read_exact_at(buf, offset)?;
            hasher.update(buf);
            offset += n as u64;
            remaining -= n as u64;
        }
        Ok((hasher.finalize() == header.crc).then_some(header))
    }

    /// Offset of the next valid frame at or after `from`, if any.
    fn resync(&mut self, from: u64) -> io::Result<Option<u64>> {
        let magic_len = FRAME_MAGIC.len();
        let mut start = from;
        while self.size.saturating_sub(start) >= magic_len as u64 {
            let n = (self.size - start).min(SCAN_CHUNK as u64) as usize;
            self.file.read_exact_at(&mut self.window[..n], start)?;
            // The magic's bytes are distinct, so no two occurrences overlap
            // and the search's non-overlapping matches are all of them.
            let candidates: Vec<u64> = memchr::memmem::find_iter(&self.window[..n], &FRAME_MAGIC)
                .map(|i| start + i as u64)
                .collect();
            for candidate in candidates {
                if self.probe(candidate)?.is_some() {
                    return Ok(Some(candidate));
                }
            }
            // Overlap windows so a magic straddling the boundary is seen.
            start += (n - (magic_len - 1)) as u64;
        }
        Ok(None)
    }
}

/// Scans every segment file, repairing torn tails and indexing intact frames.
pub(super) fn recover_segments(dir: &Path, recovered: &mut Recovered) -> Result<State, SpoolError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot list spool directory entry");
                continue;
            }
        };
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            names.push((id, entry.path()));
        }
    }
    names.sort_unstable_by_key(|(id, _)| *id);

    let mut opened = Vec::new();
    for (id, path) in names {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .and_then(|file| {
                let meta = file.metadata()?;
                if meta.is_file() {
                    Ok((file, meta.len()))
                } else {
                    Err(io::Error::other("not a regular file"))
                }
            });
        match file {
            Ok((_, 0)) => {
                if let Err(e) = fs::remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "cannot remove empty spool segment");
                }
            }
            Ok((file, size)) => opened.push((id, path, file, size)),
            Err(e) => {
                warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot open spool segment, moving it aside"
                );
                recovered.corrupt_frames += 1;
                recovered.corrupt_bytes += fs::symlink_metadata(&path).map_or(0, |m| m.len());
                if let Err(e) = quarantine(dir, &path) {
                    warn!(
                        path = %path.display(),
                        error = %e,
                        "cannot move unopenable spool segment aside"
                    );
                }
            }
        }
    }

    let mut state = State::default();
    let mut last_seq: Option<u64> = None;
    let count = opened.len();
    for (i, (id, path, file, size)) in opened.into_iter().enumerate() {
        let scan = match Scanner::new(&file, size).scan() {
            Ok(scan) => scan,
            Err(e) => {
                warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot read spool segment, moving it aside"
                );
                recovered.corrupt_frames += 1;
                recovered.corrupt_bytes += size;
                drop(file);
                if let Err(e) = quarantine(dir, &path) {
                    warn!(
                        path = %path.display(),
                        error = %e,
                        "cannot move unreadable spool segment aside"
                    );
                }
                continue;
            }
        };
        let mut damaged = scan.damaged;
        let mut size = size;
        // Only the newest segment was being written when the process died,
        // so only there is damage at the end the expected torn write.
        if i + 1 == count
            && let Some(&(start, end)) = damaged.last()
            && end == size
        {
            match file.set_len(start).and_then(|()| file.sync_data()) {
                Ok(()) => {
                    warn!(
                        path = %path.display(),
                        torn_bytes = end - start,
                        "truncated torn spool tail"
                    );
                    recovered.torn_bytes += end - start;
                    damaged.pop();
                    size = start;
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot truncate torn spool tail");
                }
            }
        }
        if size == 0 {
            drop(file);
            if let Err(e) = fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove empty spool segment");
            }
            continue;
        }

        let mut segment = Segment::new(path, file, size, true);
        let mut regions = damaged.len() as u64;
        let mut region_bytes: u64 = damaged.iter().map(|(start, end)| end - start).sum();
        for frame in scan.frames {
            // A seq that does not increase is an old frame surfacing through
            // corruption (or a misnamed file); trusting it would hand out
            // stale data under a seq that means something else.
            if frame.seq < id || last_seq.is_some_and(|last| frame.seq <= last) {
                regions += 1;
                region_bytes += frame_len(frame.len);
                continue;
            }
            last_seq = Some(frame.seq);
            let loc = Loc {
                segment: id,
                offset: frame.offset,
                len: frame.len,
            };
            state.index.insert(frame.seq, loc);
            segment.entries += 1;
            segment.last_seq = Some(frame.seq);
        }
        if regions > 0 {
            warn!(
                path = %segment.path.display(),
                corrupt_frames = regions,
                corrupt_bytes = region_bytes,
                intact_entries = segment.entries,
                "spool segment is damaged, keeping its intact entries"
            );
            segment.damaged = true;
            recovered.corrupt_frames += regions;
            recovered.corrupt_bytes += region_bytes;
        }
        state.used += size;
        state.segments.insert(id, segment);
    }
    Ok(state)
}

/// Moves a damaged segment into `corrupt/` for inspection, keeping only the
/// newest few there.
pub(super) fn quarantine(dir: &Path, path: &Path) -> io::Result<()> {
    let corrupt = dir.join(CORRUPT_DIR);
    fs::create_dir_all(&corrupt)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("segment path has no file name"))?;
    let target = corrupt.join(name);
    fs::rename(path, &target)?;
    warn!(path = %target.display(), "moved damaged spool segment aside");

    let mut kept: Vec<PathBuf> = fs::read_dir(&corrupt)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    // Segment names sort by seq, so the front holds the oldest damage.
    kept.sort();
    let excess = kept.len().saturating_sub(KEEP_CORRUPT);
    for old in kept.into_iter().take(excess) {
        let removed = if old.is_dir() {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        if let Err(e) = removed {
            warn!(path = %old.display(), error = %e, "cannot prune old damaged spool segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use super::*;
    use crate::pipeline::spool::state::STATE_FILE;
    use crate::pipeline::spool::tests::{append_one, options, payload, read_all, segment_files};
    use crate::pipeline::spool::{Spool, segment_name};

    fn write_entries(dir: &Path, count: u64, len: usize) -> Vec<Vec<u8>> {
        let (spool, _) = Spool::open(options(dir, 1 << 20, 1 << 16)).unwrap();
        let entries: Vec<Vec<u8>> = (0..count).map(|i| payload(i + 100, len)).collect();
        for entry in &entries {
            append_one(&spool, entry);
        }
        entries
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let entries = write_entries(dir.path(), 5, 500);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 1);
        let file = OpenOptions::new().write(true).open(&files[0]).unwrap();
        file.set_len(5 * 520 - 100).unwrap();
        drop(file);

        let (spool, recovered) = Spool::open(options(dir.path(), 1 << 20, 1 << 16)).unwrap();
        assert_eq!(recovered.entries, 4);
        assert_eq!(recovered.torn_bytes, 420);
        assert_eq!((recovered.corrupt_frames, recovered.corrupt_bytes), (0, 0));
        assert_eq!(fs::metadata(&files[0]).unwrap().len(), 4 * 520);
        let got = read_all(&spool, 0);
        assert_eq!(got.into_values().collect::<Vec<_>>(), entries[..4].to_vec());
        let seq = append_one(&spool, b"after");
        assert!(seq >= 5);
        assert_eq!(
            spool.read_next(seq).unwrap(),
            Some((seq, b"after".to_vec()))
        );
    }

    #[test]
    fn garbage_after_the_last_frame_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let entries = write_entries(dir.path(), 5, 500);
        let files = segment_files(dir.path());
        let mut file = OpenOptions::new().append(true).open(&files[0]).unwrap();
        let mut garbage = payload(42, 3_000);
        // A magic in the garbage must not fool the resync either.
        garbage[10..14].copy_from_slice(&FRAME_MAGIC);
        file.write_all(&garbage).unwrap();
        drop(file);

        let (spool, recovered) = Spool::open(options(dir.path(), 1 << 20, 1 << 16)).unwrap();
        assert_eq!(recovered.entries, 5);
        assert_eq!(recovered.torn_bytes, 3_000);
        assert_eq!(recovered.corrupt_frames, 0);
        assert_eq!(
            read_all(&spool, 0).into_values().collect::<Vec<_>>(),
            entries
        );
        assert_eq!(append_one(&spool, b"after"), 6);
        drop(spool);

        // The repaired segment is no longer the last one and reads clean.
        let (spool, recovered) = Spool::open(options(dir.path(), 1 << 20, 1 << 16)).unwrap();
        assert_eq!((recovered.entries, recovered.torn_bytes), (6, 0));
        assert_eq!(recovered.corrupt_frames, 0);
        assert_eq!(spool.read_next(6).unwrap(), Some((6, b"after".to_vec())));
    }

    #[test]
    fn damage_in_the_middle_skips_only_the_hit_frames() {
        let dir = tempfile::tempdir().unwrap();
        let entries = write_entries(dir.path(), 10, 500);
        let files = segment_files(dir.path());
        let file = OpenOptions::new().write(true).open(&files[0]).unwrap();
        // Inside entry 5's payload, then across entry 8's header.
        file.write_all_at(&[0xAA; 50], 4 * 520 + 100).unwrap();
        file.write_all_at(&[0x00; 8], 7 * 520 + 2).unwrap();
        drop(file);

        let (spool, recovered) = Spool::open(options(dir.path(), 1 << 20, 1 << 16)).unwrap();
        assert_eq!(recovered.entries, 8);
        assert_eq!(recovered.corrupt_frames, 2);
        assert_eq!(recovered.corrupt_bytes, 2 * 520);
        assert_eq!(recovered.torn_bytes, 0);
        assert_eq!(recovered.next_seq, 11);
        let got = read_all(&spool, 0);
        let want: BTreeMap<u64, Vec<u8>> = [1, 2, 3, 4, 6, 7, 9, 10]
            .into_iter()
            .map(|s| (s, entries[s as usize - 1].clone()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(spool.used_bytes(), 10 * 520);

        // The agent keeps going; once fully acked, the damaged segment is
        // moved aside rather than deleted.
        let seq = append_one(&spool, b"more");
        assert_eq!(seq, 11);
        for seq in 1..=10 {
            spool.ack(seq);
        }
        assert_eq!(spool.ack_floor(), 11);
        spool.release(b"cp").unwrap();
        assert_eq!(spool.used_bytes(), 24);
        let moved = dir
            .path()
            .join(CORRUPT_DIR)
            .join(files[0].file_name().unwrap());
        assert_eq!(fs::metadata(moved).unwrap().len(), 10 * 520);
    }

    #[test]
    fn garbage_in_the_directory_does_not_stop_open() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 1 << 20, 4_096);
        {
            let (spool, _) = Spool::open(opts.clone()).unwrap();
            append_one(&spool, b"kept");
            spool.release(b"checkpoint").unwrap();
        }
        let state = dir.path().join(STATE_FILE);
        let len = fs::metadata(&state).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&state)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        fs::write(dir.path().join(segment_name(2)), payload(1, 10_000)).unwrap();
        fs::write(dir.path().join(segment_name(50)), payload(2, 777)).unwrap();
        fs::write(dir.path().join(segment_name(60)), b"").unwrap();
        fs::create_dir(dir.path().join(segment_name(70))).unwrap();
        fs::write(dir.path().join("seg-abc.spool"), b"junk").unwrap();
        fs::write(dir.path().join("seg-1.spool"), b"junk").unwrap();
        fs::write(dir.path().join("notes.txt"), b"junk").unwrap();

        let (spool, recovered) = Spool::open(opts.clone()).unwrap();
        assert!(recovered.state_corrupt);
        assert_eq!(recovered.checkpoint, None);
        assert_eq!(recovered.entries, 1);
        assert_eq!(recovered.torn_bytes, 777);
        // The unopenable directory plus the all-garbage segment 2.
        assert_eq!(recovered.corrupt_frames, 2);
        assert!(recovered.corrupt_bytes >= 10_000);
        assert!(recovered.next_seq > 2);
        assert_eq!(
            read_all(&spool, 0).into_values().collect::<Vec<_>>(),
            [b"kept".to_vec()]
        );
        let seq = append_one(&spool, b"new");
        assert_eq!(spool.read_next(seq).unwrap(), Some((seq, b"new".to_vec())));
        spool.ack(1);
        spool.release(b"fresh").unwrap();
        assert!(dir.path().join(CORRUPT_DIR).join(segment_name(2)).exists());
        assert!(dir.path().join(CORRUPT_DIR).join(segment_name(70)).is_dir());
        drop(spool);

        let (_, recovered) = Spool::open(opts).unwrap();
        assert_eq!(recovered.checkpoint.as_deref(), Some(&b"fresh"[..]));
        assert!(!recovered.state_corrupt);
        assert_eq!((recovered.entries, recovered.corrupt_frames), (1, 0));
    }

    #[test]
    fn corrupt_dir_keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=12 {
            let path = dir.path().join(segment_name(id));
            fs::write(&path, b"x").unwrap();
            quarantine(dir.path(), &path).unwrap();
        }
        let mut kept: Vec<String> = fs::read_dir(dir.path().join(CORRUPT_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, (5..=12).map(segment_name).collect::<Vec<_>>());
    }
}
