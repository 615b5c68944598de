//! The sources (files, syslog, HTTP), and what every one of them hands to
//! the spool writer.
//!
//! Sources send [`Chunk`]s over one bounded channel ([`channel`]). Files
//! send from the tailer thread and wait while the writer is behind; network
//! sources send from async tasks and wait the same way, which is what makes
//! a full spool slow TCP and HTTP clients down instead of losing records.
//! A chunk can carry a [`Durable`] signal, fired once its records are
//! fsynced into the spool: the HTTP endpoint answers only then.
//!
//! The sources themselves are [`file`](mod@file) (the tailer), [`syslog`]
//! and [`http`]; the two network sources share their counters, connection
//! limits and hand-off to the channel (`net`).

pub mod file;
pub mod http;
mod net;
pub mod syslog;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::pipeline::entry::FilePos;

/// Chunks the writer may have queued before senders wait.
pub const CHANNEL_CHUNKS: usize = 16;

/// The sending side of the writer's channel.
pub type ChunkSender = flume::Sender<Chunk>;
/// The writer's side.
pub type ChunkReceiver = flume::Receiver<Chunk>;

/// The bounded channel from the sources to the spool writer.
pub fn channel() -> (ChunkSender, ChunkReceiver) {
    flume::bounded(CHANNEL_CHUNKS)
}

/// Records of one app and service from one source, sent to the writer as a
/// unit.
#[derive(Debug)]
pub struct Chunk {
    /// The app of every record.
    pub app: Arc<str>,
    /// The service of every record.
    pub service: Arc<str>,
    /// The `host` of every record; `None` is the agent's own host.
    pub host: Option<Arc<str>>,
    /// The `source` of every record (`file:<path>`, `syslog:tcp`, `http`).
    pub source: Arc<str>,
    /// For files: the read position after these records.
    pub pos: Option<FilePos>,
    /// The records; the spool writer adds ids and the shared fields.
    pub records: Vec<LineRecord>,
    /// Ids chosen by the source, one per record; empty when the writer
    /// assigns them.
    pub ids: Vec<ulid::Ulid>,
    /// Fired once the records are durable in the spool.
    pub durable: Option<Durable>,
}

/// What one line (or merged event, or message) contributes to its record;
/// the fields shared by a whole chunk live in the [`Chunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    /// When the event happened (ns since the epoch).
    pub ts: i64,
    /// Severity.
    pub level: sluice_core::Level,
    /// The message.
    pub msg: String,
    /// Extracted fields, the source's fixed attributes and flags.
    pub attrs: BTreeMap<String, String>,
}

/// Tells a waiting source that its chunk is durable. Dropping it without
/// [`Durable::done`] (the writer stopped first) tells the waiter it is not.
#[derive(Debug)]
pub struct Durable(tokio::sync::oneshot::Sender<()>);

/// The waiting side of a [`Durable`]: resolves to `Ok(())` once durable,
/// to an error when the chunk was dropped unwritten.
pub type DurableWait = tokio::sync::oneshot::Receiver<()>;

impl Durable {
    /// A signal and the future that waits for it.
    pub fn new() -> (Durable, DurableWait) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Durable(tx), rx)
    }

    /// The chunk is fsynced.
    pub fn done(self) {
        let _ = self.0.send(());
    }
}
