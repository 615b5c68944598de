//! What one spool entry holds, and the file positions it makes durable.
//!
//! An entry is the unit of durability: records of one app, already encoded
//! per level as wire payloads (so a resend is byte-identical and the
//! publisher never re-encodes), plus the read positions of the files whose
//! lines the entry completes. Because positions travel inside the same
//! checksummed frame as the records, a file's durable position can never be
//! ahead of the spool: after a crash the position and the records it covers
//! are either both there or both gone.
//!
//! Entries and the checkpoint are MessagePack (`rmp-serde`, maps with the
//! field names below).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sluice_core::Level;

/// Identity of a file: device and inode, plus a fingerprint of its first
/// bytes so a reused inode is recognised as a different file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Durable read state of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    /// Device and inode.
    pub key: FileKey,
    /// How many leading bytes the fingerprint covers (at most
    /// [`FINGERPRINT_BYTES`]).
    pub fp_len: u32,
    /// Hash of the first `fp_len` bytes.
    pub fp_hash: u64,
    /// Every byte before this offset is in the spool (or was skipped by
    /// `read_from = "end"`).
    pub offset: u64,
    /// Where the file was last seen, to find it again after a rename.
    pub path: String,
    /// The file was read to its end after it was deleted or rotated away;
    /// its state can be forgotten.
    #[serde(default)]
    pub gone: bool,
}

/// Bytes of a file's head covered by its fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// FNV-1a, 64-bit: a fingerprint of a file's head. Not cryptographic; it
/// only has to tell two different log files apart.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The records of one level in an entry, encoded as a wire payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelBatch {
    /// Level of every record in the payload.
    pub level: Level,
    /// Number of records.
    pub records: u32,
    /// The wire payload (see `sluice_core::codec`).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// One spool entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When the entry was written, nanoseconds since the epoch.
    pub created_ns: i64,
    /// The app of every record.
    pub app: String,
    /// Read positions this entry makes durable.
    pub positions: Vec<FilePos>,
    /// The records, one batch per level present.
    pub batches: Vec<LevelBatch>,
}

/// An entry or checkpoint that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("undecodable spool entry: {0}")]
pub struct EntryDecodeError(#[from] rmp_serde::decode::Error);

impl Entry {
    /// Encodes the entry.
    pub fn encode(&self) -> Vec<u8> {
        // Plain structs of strings, integers and byte buffers always encode.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes an entry.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryDecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// The durable read positions of every known file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    map: HashMap<FileKey, FilePos>,
}

impl Positions {
    /// Applies positions in spool order: later ones win; `gone` removes.
    pub fn apply(&mut self, positions: &[FilePos]) {
        for pos in positions {
            if pos.gone {
                self.map.remove(&pos.key);
            } else {
                self.map.insert(pos.key, pos.clone());
            }
        }
    }

    /// The position of a file, if known.
    pub fn get(&self, key: &FileKey) -> Option<&FilePos> {
        self.map.get(key)
    }

    /// Every known position.
    pub fn iter(&self) -> impl Iterator<Item = &FilePos> {
        self.map.values()
    }

    /// Number of known files.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no file is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Encodes the positions as a checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut all: Vec<&FilePos> = self.map.values().collect();
        all.sort_by_key(|p| (p.key.dev, p.key.ino));
        rmp_serde::to_vec_named(&all).unwrap_or_default()
    }

    /// Decodes a checkpoint.
    pub fn decode(bytes: &[u8]) -> Result<Positions, EntryDecodeError> {
        let all: Vec<FilePos> = rmp_serde::from_slice(bytes)?;
        let mut positions = Positions::default();
        positions.apply(&all);
        Ok(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ino: u64, offset: u64) -> FilePos {
        FilePos {
            key: FileKey { dev: 1, ino },
            fp_len: 3,
            fp_hash: fingerprint(b"abc"),
            offset,
            path: format!("/x/{ino}.log"),
            gone: false,
        }
    }

    #[test]
    fn entry_round_trips() {
        let e = Entry {
            created_ns: 7,
            app: "shop".into(),
            positions: vec![pos(1, 10)],
            batches: vec![LevelBatch {
                level: Level::Warn,
                records: 1,
                payload: vec![1, 2, 3],
            }],
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(Entry::decode(b"garbage").is_err());
    }

    #[test]
    fn positions_later_wins_and_gone_forgets() {
        let mut p = Positions::default();
        p.apply(&[pos(1, 10), pos(2, 5)]);
        p.apply(&[pos(1, 20)]);
        assert_eq!(p.get(&FileKey { dev: 1, ino: 1 }).unwrap().offset, 20);
        let mut gone = pos(2, 5);
        gone.gone = true;
        p.apply(&[gone]);
        assert_eq!(p.len(), 1);
        assert_eq!(Positions::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn fingerprints_differ() {
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
    }
}
