//! The read side, for the query service and tools: error groups and
//! per-hour counts as the aggregator stores them (the stored forms and
//! their reader live in `sluice_core::aggregates`, a contract both sides
//! share).

pub use sluice_core::aggregates::{MAX_HOURS, ReadError, Reader};
