//! The state file (its layout is in the spool's module docs): encoding and
//! checksumming it, reading it at open, where a damaged one counts as
//! absent, and replacing it atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::warn;

use super::{Recovered, SpoolError, io_at, sync_dir};

pub(super) const STATE_FILE: &str = "state";
pub(super) const STATE_TMP_FILE: &str = "state.tmp";
const STATE_MAGIC: [u8; 4] = *b"SLST";
const STATE_VERSION: u32 = 1;
const STATE_FIXED_LEN: usize = 29;
/// Checkpoints are small (file positions); the cap keeps a garbage state file
/// from being read into memory whole.
pub(super) const MAX_CHECKPOINT: usize = 64 << 20;

/// What the state file holds, as last written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Persisted {
    pub(super) floor: u64,
    pub(super) high_water: u64,
    pub(super) checkpoint: Option<Vec<u8>>,
}

fn encode_state(state: &Persisted) -> Vec<u8> {
    let checkpoint = state.checkpoint.as_deref().unwrap_or_default();
    let mut buf = Vec::with_capacity(STATE_FIXED_LEN + checkpoint.len() + 4);
    buf.extend_from_slice(&STATE_MAGIC);
    buf.extend_from_slice(&STATE_VERSION.to_le_bytes());
    buf.extend_from_slice(&state.floor.to_le_bytes());
    buf.extend_from_slice(&state.high_water.to_le_bytes());
    buf.push(u8::from(state.checkpoint.is_some()));
    // `release` caps checkpoints at MAX_CHECKPOINT, well inside u32.
    buf.extend_from_slice(&(checkpoint.len() as u32).to_le_bytes());
    buf.extend_from_slice(checkpoint);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

fn decode_state(bytes: &[u8]) -> Option<Persisted> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    if body.len() < STATE_FIXED_LEN || crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let (fixed, checkpoint) = body.split_at(STATE_FIXED_LEN);
    let u32_at = |at: usize| {
        fixed
            .get(at..at + 4)?
            .try_into()
            .ok()
            .map(u32::from_le_bytes)
    };
    let u64_at = |at: usize| {
        fixed
            .get(at..at + 8)?
            .try_into()
            .ok()
            .map(u64::from_le_bytes)
    };
    if fixed.get(..4)? != STATE_MAGIC || u32_at(4)? != STATE_VERSION {
        return None;
    }
    let floor = u64_at(8)?;
    let high_water = u64_at(16)?;
    let has_checkpoint = *fixed.get(24)?;
    if usize::try_from(u32_at(25)?).ok()? != checkpoint.len() {
        return None;
    }
    let checkpoint = match has_checkpoint {
        0 if checkpoint.is_empty() => None,
        1 => Some(checkpoint.to_vec()),
        _ => return None,
    };
    Some(Persisted {
        floor,
        high_water,
        checkpoint,
    })
}

/// Reads the state file; a missing one is normal, a damaged one is logged,
/// flagged in `recovered` and treated as missing.
pub(super) fn load_state(dir: &Path, recovered: &mut Recovered) -> Option<Persisted> {
    let path = dir.join(STATE_FILE);
    let read = File::open(&path).and_then(|file| {
        let len = file.metadata()?.len();
        if len > (STATE_FIXED_LEN + MAX_CHECKPOINT + 4) as u64 {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)?;
        Ok(Some(bytes))
    });
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read spool state, ignoring it");
            recovered.state_corrupt = true;
            return None;
        }
    };
    let state = bytes.as_deref().and_then(decode_state);
    if state.is_none() {
        warn!(
            path = %path.display(),
            "spool state is damaged, ignoring it: checkpoint and ack floor are lost"
        );
        recovered.state_corrupt = true;
    }
    state
}

pub(super) fn write_state(dir: &Path, state: &Persisted) -> Result<(), SpoolError> {
    let tmp = dir.join(STATE_TMP_FILE);
    let path = dir.join(STATE_FILE);
    let bytes = encode_state(state);
    File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_data()
        })
        .map_err(io_at(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)
}
