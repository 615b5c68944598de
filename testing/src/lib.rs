//! The test harness: real servers on free loopback ports with fresh data
//! directories, stopped and cleaned up on drop, and the helpers every
//! integration test and benchmark shares.
//!
//! A missing server binary fails the test with a message saying how to
//! install it; tests are never skipped. A helper that reads a metric or an
//! endpoint fails when the metric is missing or the endpoint is down: it
//! never reads as zero.
//!
//! | module | what |
//! | --- | --- |
//! | [`nats`] | `nats-server` with JetStream |
//! | [`s3`] | `s3s-fs`, an S3-compatible server |
//! | [`browser`] | headless Chromium over WebDriver |
//! | [`hooks`] | a webhook receiver |
//! | [`filed`] | blobs and sidecars written straight into a store, and read back |
//! | [`stream`] | publishing to and reading back the `LOGS` stream |
//! | [`misfiled`] | messages that write past their subject, and the dead letters |
//! | [`metrics`], [`net`] | metrics text and admin endpoints |
//! | [`process`] | binaries, signals, CPU and memory of a process |
//! | [`slack`] | Slack's Block Kit structure and limits, checked |
//! | [`wait`], [`bench`] | polling, benchmark sizes |
//! | [`workload`] | the error-record workload of the aggregator's and the alerter's benchmarks |

pub mod bench;
pub mod browser;
pub mod filed;
pub mod hooks;
pub mod metrics;
pub mod misfiled;
pub mod nats;
pub mod net;
pub mod process;
pub mod s3;
pub mod slack;
pub mod stream;
pub mod wait;
pub mod workload;

pub use bench::{Lcg, bench_runtime, bench_size};
pub use browser::Browser;
pub use hooks::{Hook, Hooks};
pub use metrics::{metric_value, try_metric_value};
pub use misfiled::{DeadLetterSeen, Misfiling, dead_letters, publish_misfiled, wait_dead_lettered};
pub use nats::NatsServer;
pub use net::{SseEvent, Streaming, free_port, http_get, try_http_get, try_http_get_as};
pub use process::{
    StopOnDrop, files_under, find_binary, process_cpu_secs, process_peak_rss_mib, signal,
    spawn_bench_role, terminate, workspace_binary,
};
pub use s3::{S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY, S3Server};
pub use stream::{Collector, publish_records, test_record};
pub use wait::{wait_for, wait_until};
