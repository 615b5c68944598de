//! What happens to records once a source has handed them over: the writer
//! makes them durable in the spool, and the publisher ships the spool to
//! JetStream.
//!
//! ```text
//!  chunks ─> writer thread ─> spool ─> publisher task ─> JetStream
//!                              ^                            │
//!                              └──────── acks ──────────────┘
//! ```
//!
//! Each stage keeps its part of the agent's invariants:
//!
//! * The writer (`writer`) groups chunks into [`entry`]s and appends them with
//!   one fsync. A file's read position becomes durable only inside an entry,
//!   so it is never ahead of the spool. When the spool is full the writer
//!   waits for space, and the bounded channel makes the sources wait with
//!   it.
//! * The [`spool`] hands out an entry only after its fsync and frees it only
//!   once it is acked; torn or corrupt data is cut back or skipped with a
//!   count.
//! * The publisher (`publisher`) acks an entry in the spool only once
//!   JetStream stored every one of its batches; a batch sent again carries
//!   the same `Nats-Msg-Id`, so the stream's duplicate window drops it.

pub mod entry;
pub(crate) mod publisher;
pub mod spool;
pub(crate) mod writer;
