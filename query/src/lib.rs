//! The query role's library: what a search means and how it is answered.
//!
//! * [`lang`] — the query language: its specification, parser, and the two
//!   questions a parsed query answers: does this record match, and may this
//!   blob (judged by its sidecar alone) hold a match.
//! * [`search`] — answering a query from the filed blobs: listing, sidecar
//!   pruning, reading newest first, stopping early.
//!
//! Invariant: the sidecar test never says "no" for a blob holding a record
//! the record test accepts, so a pruned search returns exactly what a full
//! scan returns.

pub mod lang;
pub mod search;
