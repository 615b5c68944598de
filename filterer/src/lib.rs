//! The filterer: stream → per-app blobs in object storage, and compaction.

pub mod blobs;
pub mod compact;
pub mod metrics;
pub mod router;
