//! `[agent]` and its subsections: the per-host agent.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::AdminConfig;
use super::locate::{Issue, Step};
use super::values::{at_least, at_most};

mod files;
mod http;
mod syslog;

pub use files::{FileSourceConfig, MultilineConfig, ReadFrom};
pub use http::{DEFAULT_HTTP_LISTEN, HttpConfig, MAX_METADATA_BYTES};
pub use syslog::{DEFAULT_SYSLOG_LISTEN, SyslogConfig};

/// Largest `[agent.publish] max_batch_bytes`: it keeps every NATS message
/// under the server's default 1 MiB `max_payload`, with room for the wire
/// overhead.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Longest line or message that can be configured (`[[agent.files]]
/// max_line_bytes`, `[agent.syslog]` and `[agent.http]`
/// `max_message_bytes`), for the same reason as [`MAX_BATCH_BYTES`].
pub const MAX_LINE_BYTES: usize = 512 * 1024;

/// Smallest `[agent.spool] max_bytes`: a few of the largest possible
/// entries must fit.
pub const MIN_SPOOL_BYTES: u64 = 4 << 20;

/// `[agent]`: the per-host agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's identity, part of every batch's `Nats-Msg-Id`; must be
    /// unique per host and stable across restarts, without whitespace or
    /// `:`. Default: the host name.
    #[serde(default, deserialize_with = "agent_id")]
    pub id: Option<String>,
    /// The `host` of every record. Default: the host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Where the spool and its checkpoint live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Log file sources (`[[agent.files]]`).
    #[serde(default)]
    pub files: Vec<FileSourceConfig>,
    /// The disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Publishing to JetStream.
    #[serde(default)]
    pub publish: PublishConfig,
    /// How much of the host the agent may use.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The admin endpoint (`/metrics`, `/health`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// The syslog endpoint (`[agent.syslog]`); off when the section is
    /// absent.
    #[serde(default)]
    pub syslog: Option<SyslogConfig>,
    /// The HTTP ingestion endpoint (`[agent.http]`); off when the section is
    /// absent.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// How often the agent writes its heartbeat to KV `sluice_agents`, from
    /// which it notices another running agent with the same `id`.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
}

/// A non-empty id without whitespace or `:`, which separate the parts of
/// a `Nats-Msg-Id`.
fn agent_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = String::deserialize(d)?;
    if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(serde::de::Error::custom(format!(
            "{id:?} must be non-empty, without whitespace or ':'"
        )));
    }
    Ok(Some(id))
}

fn default_heartbeat_secs() -> u64 {
    30
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sluice/agent")
}

/// Connections a syslog or HTTP listener accepts at once by default.
fn default_max_connections() -> usize {
    1024
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: None,
            host: None,
            data_dir: default_data_dir(),
            files: Vec::new(),
            spool: SpoolConfig::default(),
            publish: PublishConfig::default(),
            limits: LimitsConfig::default(),
            admin: AdminConfig::default(),
            syslog: None,
            http: None,
            heartbeat_secs: default_heartbeat_secs(),
        }
    }
}

impl AgentConfig {
    /// Fills in the listener defaults and the secrets from the environment.
    pub(super) fn apply_env(&mut self) {
        if let Some(syslog) = &mut self.syslog {
            syslog.apply_defaults();
        }
        if let Some(http) = &mut self.http {
            http.apply_env();
        }
    }

    /// Checks the values of a section that must fit together.
    pub(super) fn check(&self) -> Result<(), Issue> {
        if let Some(syslog) = &self.syslog {
            syslog.check()?;
        }
        if let Some(http) = &self.http {
            http.check()?;
        }
        Ok(())
    }
}

/// The path of `key` in `[agent.<section>]`.
fn key_of(section: &'static str, key: &'static str) -> [Step<'static>; 3] {
    [Step::Key("agent"), Step::Key(section), Step::Key(key)]
}

/// `[agent.spool]`: the crash-safe disk buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Total size cap; sources wait while the spool is full. At least
    /// [`MIN_SPOOL_BYTES`].
    #[serde(
        default = "default_spool_max_bytes",
        deserialize_with = "spool_max_bytes"
    )]
    pub max_bytes: u64,
    /// Size at which a new segment file is started.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Group-commit interval: at most this long between a write and its
    /// fsync.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
}

fn spool_max_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    at_least(d, MIN_SPOOL_BYTES)
}
fn default_spool_max_bytes() -> u64 {
    1 << 30
}
fn default_segment_bytes() -> u64 {
    32 << 20
}
fn default_fsync_interval_ms() -> u64 {
    10
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: default_spool_max_bytes(),
            segment_bytes: default_segment_bytes(),
            fsync_interval_ms: default_fsync_interval_ms(),
        }
    }
}

/// `[agent.publish]`: batching and flow control towards JetStream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Raw bytes of records per batch, at most (one app, one level); at
    /// most [`MAX_BATCH_BYTES`].
    #[serde(
        default = "default_max_batch_bytes",
        deserialize_with = "max_batch_bytes"
    )]
    pub max_batch_bytes: usize,
    /// Records per batch, at most.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
    /// Publishes awaiting their acknowledgement, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Cap of the retry backoff.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn max_batch_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_most(d, MAX_BATCH_BYTES)
}
fn default_max_batch_bytes() -> usize {
    128 * 1024
}
fn default_max_batch_records() -> usize {
    2_000
}
fn default_max_in_flight() -> usize {
    64
}
fn default_max_backoff_ms() -> u64 {
    5_000
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            max_batch_bytes: default_max_batch_bytes(),
            max_batch_records: default_max_batch_records(),
            max_in_flight: default_max_in_flight(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

/// `[agent.limits]`: keep the agent out of the host's way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Read rate limit across all files, bytes per second (unset: none).
    #[serde(default)]
    pub read_bytes_per_sec: Option<u64>,
    /// Async runtime worker threads.
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
    /// CPU niceness applied at start (0–19; unset: unchanged).
    #[serde(default = "default_nice")]
    pub nice: Option<i32>,
    /// Put the agent in the idle IO scheduling class at start.
    #[serde(default)]
    pub io_idle: bool,
    /// Files held open at once, at most.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Close a file after this long without new data (it is reopened when
    /// it grows).
    #[serde(default = "default_idle_close_secs")]
    pub idle_close_secs: u64,
}

fn default_worker_threads() -> usize {
    2
}
fn default_nice() -> Option<i32> {
    Some(10)
}
fn default_max_open_files() -> usize {
    512
}
fn default_idle_close_secs() -> u64 {
    300
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            read_bytes_per_sec: None,
            worker_threads: default_worker_threads(),
            nice: default_nice(),
            io_idle: false,
            max_open_files: default_max_open_files(),
            idle_close_secs: default_idle_close_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Config::parse("[agent]\nid = \"a\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.agent.spool.fsync_interval_ms, 10);
        assert!(c.agent.files.is_empty());
        assert!(c.agent.syslog.is_none() && c.agent.http.is_none());
    }
}
