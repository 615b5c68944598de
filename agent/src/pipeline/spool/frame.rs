//! One frame of a segment (its layout is in the spool's module docs):
//! encoding it, checking its header and checksum, and reading an entry
//! back from where the index says it is.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::Loc;

pub(super) const FRAME_MAGIC: [u8; 4] = [0xF3, 0x5C, 0x1D, 0xA7];
pub(super) const HEADER_LEN: usize = 20;

pub(super) fn frame_len(len: u32) -> u64 {
    HEADER_LEN as u64 + u64::from(len)
}

fn frame_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

pub(super) fn encode_frame(buf: &mut Vec<u8>, seq: u64, len: u32, payload: &[u8]) {
    buf.extend_from_slice(&FRAME_MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&frame_crc(len, seq, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

pub(super) struct Header {
    pub(super) len: u32,
    pub(super) seq: u64,
    pub(super) crc: u32,
}

pub(super) fn parse_header(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
    let (magic, rest) = bytes.split_first_chunk::<4>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let (seq, rest) = rest.split_first_chunk::<8>()?;
    let (crc, _) = rest.split_first_chunk::<4>()?;
    (*magic == FRAME_MAGIC).then(|| Header {
        len: u32::from_le_bytes(*len),
        seq: u64::from_le_bytes(*seq),
        crc: u32::from_le_bytes(*crc),
    })
}

/// Reads one entry's payload back; `Ok(None)` when the frame no longer
/// matches what the index says or fails its checksum.
pub(super) fn read_entry(file: &File, loc: Loc, seq: u64) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER_LEN];
    let mut payload = vec![0u8; loc.len as usize];
    let read = file
        .read_exact_at(&mut header, loc.offset)
        .and_then(|()| file.read_exact_at(&mut payload, loc.offset + HEADER_LEN as u64));
    match read {
        Ok(()) => {}
        // Someone truncated the file under us: the entry is gone.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let valid = parse_header(&header).is_some_and(|h| {
        h.seq == seq && h.len == loc.len && h.crc == frame_crc(h.len, h.seq, &payload)
    });
    Ok(valid.then_some(payload))
}
