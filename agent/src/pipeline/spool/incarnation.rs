//! The spool's incarnation: a random id made together with the spool, so
//! that message ids derived from spool positions are never reused.
//!
//! Sequence numbers start again at 1 in a new spool: a re-imaged host, a
//! container restarted without its volume, or two hosts with the same agent
//! id would otherwise publish new batches under ids JetStream has already
//! seen, and its duplicate window would drop them. Every `Nats-Msg-Id` holds
//! the incarnation (see `sluice_core::codec::msg_id`), so ids of different
//! spools never collide, while a batch re-sent from the same spool keeps its
//! id and is still dropped as a duplicate.
//!
//! # File `incarnation`
//!
//! Written once, when the spool is created (or first opened by a version
//! that knows incarnations), and never rewritten. Integers are little-endian.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SLIN"
//! 4       4     format version (1)
//! 8       8     incarnation id (u64, random, never 0)
//! 16      8     first seq: entries below it were spooled before the spool
//!               had an incarnation and keep their old ids
//! 24      4     CRC-32 (IEEE) of bytes 0..24
//! ```
//!
//! It is written like the state file: `incarnation.tmp`, fdatasync, rename,
//! fsync of the directory.
//!
//! # Cases at open
//!
//! * The file is there and valid: it is used.
//! * No file, and a new spool (its next seq is 1): a new id; first seq 1.
//! * No file, but an earlier spool (a state file or segments put its next
//!   seq above 1): written by the version before incarnations. A new id,
//!   and the first seq is the spool's next seq, so every entry already in
//!   it (pending or not) keeps the id it was or would have been sent with:
//!   nothing already sent is stored twice.
//! * The file is damaged: a new id with first seq 1, counted in
//!   [`Recovered::incarnation`](super::Recovered). Pending entries are then
//!   sent under new ids and may be stored twice in the stream; downstream
//!   readers de-duplicate records by their `id`, so nothing is lost.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use tracing::{info, warn};

use super::{SpoolError, io_at, sync_dir};

const FILE: &str = "incarnation";
const TMP_FILE: &str = "incarnation.tmp";
const MAGIC: [u8; 4] = *b"SLIN";
const VERSION: u32 = 1;
const LEN: usize = 28;

/// Which spool wrote an entry, for the ids of its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    /// Random, made with the spool; never 0.
    pub id: u64,
    /// Entries from this seq on were spooled under this incarnation; the
    /// ones below it were spooled before the spool had one.
    pub first_seq: u64,
}

impl Incarnation {
    /// The incarnation to put into the ids of entry `seq`'s batches: `None`
    /// for an entry spooled before the spool had one, which keeps its old
    /// id.
    pub fn for_seq(&self, seq: u64) -> Option<u64> {
        (seq >= self.first_seq).then_some(self.id)
    }
}

/// How [`load_or_create`] came by the incarnation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// Read from the spool.
    #[default]
    Existing,
    /// Made for a new spool.
    New,
    /// Made for a spool written by the version before incarnations.
    Upgrade,
    /// Made again because the file was damaged.
    Replaced,
}

fn encode(inc: &Incarnation) -> [u8; LEN] {
    let mut buf = [0u8; LEN];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..8].copy_from_slice(&VERSION.to_le_bytes());
    buf[8..16].copy_from_slice(&inc.id.to_le_bytes());
    buf[16..24].copy_from_slice(&inc.first_seq.to_le_bytes());
    let crc = crc32fast::hash(&buf[..24]);
    buf[24..].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode(bytes: &[u8]) -> Option<Incarnation> {
    if bytes.len() != LEN || bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().ok()?);
    if crc32fast::hash(&bytes[..24]) != crc {
        return None;
    }
    if u32::from_le_bytes(bytes[4..8].try_into().ok()?) != VERSION {
        return None;
    }
    let id = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let first_seq = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    (id != 0).then_some(Incarnation { id, first_seq })
}

fn random_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// Reads the spool's incarnation, or makes and stores one (see the module
/// docs for the cases); `next_seq` is the seq the next entry gets, above 1
/// only when the directory held an earlier spool.
pub(super) fn load_or_create(
    dir: &Path,
    next_seq: u64,
) -> Result<(Incarnation, Origin), SpoolError> {
    let path = dir.join(FILE);
    let origin = match fs::read(&path) {
        Ok(bytes) => match decode(&bytes) {
            Some(inc) => return Ok((inc, Origin::Existing)),
            None => {
                warn!(
                    path = %path.display(),
                    "spool incarnation is damaged: making a new one; pending entries may be stored twice"
                );
                Origin::Replaced
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound && next_seq > 1 => Origin::Upgrade,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Origin::New,
        Err(e) => return Err(io_at(&path)(e)),
    };
    let inc = Incarnation {
        id: random_id(),
        // A new spool's next seq is 1, so both keep every entry there is
        // under its old id; only a damaged file starts over.
        first_seq: if origin == Origin::Replaced {
            1
        } else {
            next_seq
        },
    };
    let tmp = dir.join(TMP_FILE);
    File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(&encode(&inc))?;
            file.sync_data()
        })
        .map_err(io_at(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)?;
    info!(incarnation = %format_args!("{:016x}", inc.id), first_seq = inc.first_seq, ?origin, "spool incarnation made");
    Ok((inc, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let inc = Incarnation {
            id: 0x0123_4567_89ab_cdef,
            first_seq: 735,
        };
        let bytes = encode(&inc);
        assert_eq!(decode(&bytes), Some(inc));
        for i in 0..LEN {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        assert_eq!(decode(&bytes[..LEN - 1]), None);
        assert_eq!(decode(&[]), None);
        let mut zero = Incarnation {
            id: 0,
            first_seq: 1,
        };
        assert_eq!(decode(&encode(&zero)), None);
        zero.id = 1;
        assert_eq!(decode(&encode(&zero)), Some(zero));
    }

    #[test]
    fn entries_before_the_first_seq_keep_their_old_ids() {
        let inc = Incarnation {
            id: 9,
            first_seq: 10,
        };
        assert_eq!(inc.for_seq(9), None);
        assert_eq!(inc.for_seq(10), Some(9));
        assert_eq!(inc.for_seq(11), Some(9));
    }

    #[test]
    fn new_upgraded_kept_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (new, origin) = load_or_create(dir.path(), 1).unwrap();
        assert_eq!((origin, new.first_seq), (Origin::New, 1));
        let (again, origin) = load_or_create(dir.path(), 50).unwrap();
        assert_eq!((origin, again), (Origin::Existing, new));

        let old = tempfile::tempdir().unwrap();
        let (up, origin) = load_or_create(old.path(), 42).unwrap();
        assert_eq!((origin, up.first_seq), (Origin::Upgrade, 42));
        assert_ne!(up.id, new.id);

        fs::write(old.path().join(FILE), b"garbage").unwrap();
        let (replaced, origin) = load_or_create(old.path(), 60).unwrap();
        assert_eq!((origin, replaced.first_seq), (Origin::Replaced, 1));
        assert_ne!(replaced.id, up.id);
        assert!(!old.path().join(TMP_FILE).exists());
    }
}
