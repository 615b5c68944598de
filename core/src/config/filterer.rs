//! `[filterer]`: stream → per-app blobs, and compaction.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::AdminConfig;
use super::admin::default_stall_secs;
use super::values::{at_least, positive};

/// Smallest `[filterer] max_blob_bytes`.
pub const MIN_BLOB_BYTES: usize = 1024;

/// `[filterer]`: stream → per-app blobs, and compaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltererConfig {
    /// This instance's name, part of the blobs it writes. Default: the host
    /// name.
    #[serde(default)]
    pub id: Option<String>,
    /// A partition's buffer is written as a blob at this many raw
    /// (uncompressed NDJSON) bytes; compaction merges blobs up to it. At
    /// least [`MIN_BLOB_BYTES`].
    #[serde(
        default = "default_max_blob_bytes",
        deserialize_with = "max_blob_bytes"
    )]
    pub max_blob_bytes: usize,
    /// A partition's buffer is written at least this often; at least 1.
    #[serde(default = "default_flush_interval_secs", deserialize_with = "positive")]
    pub flush_interval_secs: u64,
    /// Buffered raw bytes across all partitions, at most; the largest
    /// buffer is written early when it is reached.
    #[serde(default = "default_max_buffer_bytes")]
    pub max_buffer_bytes: usize,
    /// gzip level (1–9).
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// Records stamped further than this in the future are filed by their
    /// arrival time and flagged.
    #[serde(default = "default_future_tolerance_secs")]
    pub future_tolerance_secs: u64,
    /// An hour is compacted once it has been closed this long.
    #[serde(default = "default_compaction_grace_secs")]
    pub compaction_grace_secs: u64,
    /// How often closed hours are looked for.
    #[serde(default = "default_compaction_interval_secs")]
    pub compaction_interval_secs: u64,
    /// Set to false to leave compaction to other instances.
    #[serde(default = "default_true")]
    pub compaction: bool,
    /// The admin endpoint (`/metrics`, `/health`).
    #[serde(default = "default_filterer_admin")]
    pub admin: AdminConfig,
}

fn max_blob_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_least(d, MIN_BLOB_BYTES)
}
fn default_max_blob_bytes() -> usize {
    64 << 20
}
fn default_flush_interval_secs() -> u64 {
    60
}
fn default_max_buffer_bytes() -> usize {
    512 << 20
}
fn default_gzip_level() -> u32 {
    6
}
fn default_future_tolerance_secs() -> u64 {
    3600
}
fn default_compaction_grace_secs() -> u64 {
    600
}
fn default_compaction_interval_secs() -> u64 {
    60
}
fn default_true() -> bool {
    true
}
fn default_filterer_admin() -> AdminConfig {
    AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 9882)),
        stall_secs: default_stall_secs(),
    }
}

impl Default for FiltererConfig {
    fn default() -> Self {
        FiltererConfig {
            id: None,
            max_blob_bytes: default_max_blob_bytes(),
            flush_interval_secs: default_flush_interval_secs(),
            max_buffer_bytes: default_max_buffer_bytes(),
            gzip_level: default_gzip_level(),
            future_tolerance_secs: default_future_tolerance_secs(),
            compaction_grace_secs: default_compaction_grace_secs(),
            compaction_interval_secs: default_compaction_interval_secs(),
            compaction: true,
            admin: default_filterer_admin(),
        }
    }
}
