//! End-to-end tests across components: the real `sluice` binary started
//! as its users start it, against a real `nats-server` and a real S3 server
//! (`s3s-fs`), both from the `sluice-testing` harness.
//!
//! | test | what crosses |
//! | --- | --- |
//! | `filterer.rs` | `LOGS` → `sluice filterer` → S3 blobs and sidecars, read back by DuckDB; kill -9, store outages, two filterers, dead letters |
//! | `alerts.rs` | `sluice alerter` and `sluice alerts` (silences) against a webhook receiver |
//! | `up.rs` | `sluice up`: every role on one machine, from a log line to a stored blob |
//! | `lifecycle.rs` | every role on the role runtime: SIGTERM while NATS is away, a taken admin port |
//! | `query.rs` | `sluice-agent` → `LOGS` → `sluice filterer` → S3 → `sluice query`: 30 queries against a naive scan of the blobs |
//! | `read.rs` | `sluice search`, `tail` and `request` against a running `sluice query` |
//! | `check.rs` | `sluice check` and `sluice-agent check`: a bad value in every section, with file and line |

use std::path::PathBuf;

/// The `sluice` binary, built with the profile of the tests.
pub fn sluice_binary() -> PathBuf {
    sluice_testing::workspace_binary("sluice", "sluice")
}
