//! Sluice's shared core.
//!
//! Everything more than one process needs lives here: the [`record`] model and
//! its JSON form, the MessagePack [`codec`] spoken on the wire, validation of
//! [`names`] that end up in subjects and object keys, the [`subject`] check
//! every consumer of `LOGS` makes and the [`deadletter`] stream it sets
//! refused messages aside on, the one TOML [`config`] schema, [`nats`]
//! connection and stream helpers, the one compare-and-set loop on JetStream
//! [`kv`] and the partition [`claims`] made with it, the [`audit`] stream, the [`time`] units and timestamp scanners, the object [`store`],
//! the [`role`] runtime every long-running process is built on (lifecycle,
//! the [`admin`] endpoint, set-up retry with the one [`backoff`]) and
//! [`telemetry`] set-up. The harness that starts real servers for
//! integration tests is the `sluice-testing` crate.

pub mod admin;
pub mod aggregates;
pub mod audit;
pub mod backoff;
pub mod claims;
pub mod codec;
pub mod config;
pub mod deadletter;
pub mod index;
pub mod kv;
pub mod layout;
pub mod names;
pub mod nats;
pub mod record;
pub mod role;
pub mod shutdown;
pub mod store;
pub mod subject;
pub mod telemetry;
pub mod time;

pub use record::{Level, Record};
