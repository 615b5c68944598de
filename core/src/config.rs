//! The one TOML configuration schema shared by every Sluice process.
//!
//! Each process reads the sections it needs; all sections are parsed and
//! checked by every process, so a typo anywhere is caught wherever the file is
//! used. Unknown keys are errors, reported with the file, line and key.
//! Values that must be valid (names, globs, regexes) are checked while
//! parsing, so their errors carry the line too.
//!
//! Secrets may stay out of the file: `[nats] password` and `token` fall back
//! to the `SLUICE_NATS_PASSWORD` and `SLUICE_NATS_TOKEN` environment
//! variables, `[agent.http] token` to `SLUICE_HTTP_TOKEN`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

mod alerting;
pub use alerting::{
    AggregatorConfig, AlerterConfig, GROUP_BY_FIELDS, OwnerConfig, ReceiverConfig, ReceiverKind,
    RuleConfig, RuleKind, SilenceConfig,
};

/// A configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line, column and key.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach NATS and how the `LOGS` stream is set up.
    #[serde(default)]
    pub nats: NatsConfig,
    /// The agent (`sluice-agent`).
    #[serde(default)]
    pub agent: AgentConfig,
    /// Object storage for the filed logs.
    #[serde(default)]
    pub store: StoreConfig,
    /// The filterer (`sluice filterer`).
    #[serde(default)]
    pub filterer: FiltererConfig,
    /// Where notifications go (`[[receivers]]`), shared by the aggregator
    /// and the alerter.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// The error aggregator (`sluice aggregator`).
    #[serde(default)]
    pub aggregator: AggregatorConfig,
    /// The alerter (`sluice alerter`).
    #[serde(default)]
    pub alerter: AlerterConfig,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks configuration text. The error names the line,
    /// column and key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.nats.apply_env();
        config.store.apply_env();
        if let Some(syslog) = &mut config.agent.syslog {
            syslog.apply_defaults();
        }
        if let Some(http) = &mut config.agent.http {
            http.apply_env();
        }
        alerting::apply_env(&mut config.receivers);
        alerting::check_references(&config.receivers, &config.aggregator, &config.alerter)?;
        Ok(config)
    }
}

/// A name that is a valid `app`/`service` token (see [`crate::names`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Name, crate::names::NameError> {
        crate::names::validate(s)?;
        Ok(Name(s.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A regular expression, compiled while parsing so a bad one is reported
/// with its line.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// `[nats]`: connection and stream settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs, comma-separated (`nats://a:4222,nats://b:4222`). When
    /// unset, `sluice up` starts a local server; other processes use
    /// `nats://127.0.0.1:4222`.
    #[serde(default)]
    pub url: Option<String>,
    /// User name for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password; falls back to `SLUICE_NATS_PASSWORD`.
    #[serde(default)]
    pub password: Option<String>,
    /// Token authentication; falls back to `SLUICE_NATS_TOKEN`.
    #[serde(default)]
    pub token: Option<String>,
    /// A `.creds` file (JWT + nkey seed).
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// Require TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// CA certificate(s) to verify the server with (PEM).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Name of the log stream.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Stream replicas (3 in a production cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long the stream keeps records.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// JetStream's duplicate window: a batch re-sent within it is dropped.
    /// Must exceed the longest gap between an agent's first send and its
    /// retry (outage plus backoff).
    #[serde(default = "default_duplicate_window_secs")]
    pub duplicate_window_secs: u64,
    /// Cap on the stream's size in bytes (`-1`: unlimited).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: i64,
    /// How long to wait for a JetStream acknowledgement before retrying.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_stream() -> String {
    "LOGS".into()
}
fn default_replicas() -> usize {
    1
}
fn default_max_age_secs() -> u64 {
    3 * 24 * 3600
}
fn default_duplicate_window_secs() -> u64 {
    600
}
fn default_max_bytes() -> i64 {
    -1
}
fn default_ack_timeout_ms() -> u64 {
    5_000
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: None,
            user: None,
            password: None,
            token: None,
            creds_file: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            stream: default_stream(),
            replicas: default_replicas(),
            max_age_secs: default_max_age_secs(),
            duplicate_window_secs: default_duplicate_window_secs(),
            max_bytes: default_max_bytes(),
            ack_timeout_ms: default_ack_timeout_ms(),
        }
    }
}

impl NatsConfig {
    /// The URL list to connect to.
    pub fn url_or_default(&self) -> &str {
        self.url.as_deref().unwrap_or("nats://127.0.0.1:4222")
    }

    fn apply_env(&mut self) {
        if self.password.is_none() {
            self.password = std::env::var("SLUICE_NATS_PASSWORD").ok();
        }
        if self.token.is_none() {
            self.token = std::env::var("SLUICE_NATS_TOKEN").ok();
        }
    }
}

/// `[agent]`: the per-host agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's identity, part of every batch's `Nats-Msg-Id`; must be
    /// unique per host and stable across restarts. Default: the host name.
    #[serde(default)]
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

fn default_heartbeat_secs() -> u64 {
    30
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sluice/agent")
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

/// `[agent.syslog]`: a syslog endpoint for rsyslog, syslog-ng, `logger` and
/// network devices. RFC 3164 and RFC 5424 are recognised per message; TCP
/// and TLS accept octet-counted and newline-framed messages on the same
/// connection (RFC 6587).
///
/// A section that names no listener (`udp`, `tcp`, `tls`, `unix`) listens
/// on [`DEFAULT_SYSLOG_LISTEN`] over UDP and TCP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// UDP listener address.
    #[serde(default)]
    pub udp: Option<SocketAddr>,
    /// TCP listener address.
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// TLS listener address (RFC 5425); needs `tls_cert_file` and
    /// `tls_key_file`.
    #[serde(default)]
    pub tls: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, TLS clients must present a
    /// certificate signed by one of them.
    #[serde(default)]
    pub tls_client_ca_file: Option<PathBuf>,
    /// A unix datagram socket to create (like `/dev/log`).
    #[serde(default)]
    pub unix: Option<PathBuf>,
    /// The app of records arriving here.
    #[serde(default = "default_syslog_app")]
    pub app: Name,
    /// Records whose APP-NAME (or RFC 3164 TAG) is a key here get that app
    /// instead of `app`.
    #[serde(default)]
    pub app_map: BTreeMap<String, Name>,
    /// The service of records that carry no APP-NAME or TAG.
    #[serde(default = "default_syslog_service")]
    pub service: Name,
    /// Time zone of RFC 3164 timestamps, which carry none: `local`, `UTC`
    /// or an offset such as `+02:00`.
    #[serde(default = "default_syslog_timezone")]
    pub timezone: String,
    /// Longest message kept whole; longer ones are truncated and flagged.
    #[serde(default = "default_syslog_max_message_bytes")]
    pub max_message_bytes: usize,
    /// TCP and TLS connections open at once, at most; more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP or TLS connection that sends nothing for this long is closed.
    #[serde(default = "default_syslog_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Kernel receive buffer requested for the UDP socket, bytes.
    #[serde(default = "default_udp_recv_buffer_bytes")]
    pub udp_recv_buffer_bytes: usize,
}

/// Where a `[agent.syslog]` section without listeners listens.
pub const DEFAULT_SYSLOG_LISTEN: &str = "127.0.0.1:5514";

fn default_syslog_app() -> Name {
    Name("host".into())
}
fn default_syslog_service() -> Name {
    Name("syslog".into())
}
fn default_syslog_timezone() -> String {
    "local".into()
}
fn default_syslog_max_message_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_syslog_idle_timeout_secs() -> u64 {
    600
}
fn default_udp_recv_buffer_bytes() -> usize {
    8 << 20
}

impl Default for SyslogConfig {
    fn default() -> Self {
        let listen = DEFAULT_SYSLOG_LISTEN.parse().ok();
        SyslogConfig {
            udp: listen,
            tcp: listen,
            tls: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            unix: None,
            app: default_syslog_app(),
            app_map: BTreeMap::new(),
            service: default_syslog_service(),
            timezone: default_syslog_timezone(),
            max_message_bytes: default_syslog_max_message_bytes(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_syslog_idle_timeout_secs(),
            udp_recv_buffer_bytes: default_udp_recv_buffer_bytes(),
        }
    }
}

impl SyslogConfig {
    /// Fills in the default listeners when none is named.
    fn apply_defaults(&mut self) {
        if self.udp.is_none() && self.tcp.is_none() && self.tls.is_none() && self.unix.is_none() {
            let listen = DEFAULT_SYSLOG_LISTEN.parse().ok();
            self.udp = listen;
            self.tcp = listen;
        }
    }
}

/// `[agent.http]`: `POST /api/v1/logs`, answered only once the records are
/// durable in the spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listener address.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// The app of posted records that name none.
    #[serde(default = "default_http_app")]
    pub app: Name,
    /// The service of posted records that name none.
    #[serde(default = "default_http_service")]
    pub service: Name,
    /// When set, requests must carry `Authorization: Bearer <token>`.
    /// Falls back to the `SLUICE_HTTP_TOKEN` environment variable.
    #[serde(default)]
    pub token: Option<String>,
    /// Largest request body, before and after gzip decoding (413 above).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Records per request, at most (400 above).
    #[serde(default = "default_max_records_per_request")]
    pub max_records: usize,
    /// Longest message kept whole; longer ones are truncated and flagged.
    #[serde(default = "default_http_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest `metadata` (keys and values) of one record (400 above).
    #[serde(default = "default_max_attrs_bytes")]
    pub max_metadata_bytes: usize,
    /// Body bytes being decoded and spooled at once, at most; requests
    /// beyond it get 429 with `Retry-After`.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// Connections open at once, at most; more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time allowed for a request's headers, and for its body; an idle
    /// keep-alive connection is closed after it too.
    #[serde(default = "default_http_timeout_secs")]
    pub timeout_secs: u64,
}

/// Where a `[agent.http]` section without `listen` listens.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9880";

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9880))
}
fn default_http_app() -> Name {
    Name("default".into())
}
fn default_http_service() -> Name {
    Name("http".into())
}
fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_max_records_per_request() -> usize {
    10_000
}
fn default_http_max_message_bytes() -> usize {
    256 * 1024
}
fn default_max_attrs_bytes() -> usize {
    64 * 1024
}
fn default_max_in_flight_bytes() -> usize {
    64 << 20
}
fn default_http_timeout_secs() -> u64 {
    30
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            app: default_http_app(),
            service: default_http_service(),
            token: None,
            max_body_bytes: default_max_body_bytes(),
            max_records: default_max_records_per_request(),
            max_message_bytes: default_http_max_message_bytes(),
            max_metadata_bytes: default_max_attrs_bytes(),
            max_in_flight_bytes: default_max_in_flight_bytes(),
            max_connections: default_max_connections(),
            timeout_secs: default_http_timeout_secs(),
        }
    }
}

impl HttpConfig {
    fn apply_env(&mut self) {
        if self.token.is_none() {
            self.token = std::env::var("SLUICE_HTTP_TOKEN").ok();
        }
    }
}

/// Where files present at the agent's first start are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From their first byte.
    #[default]
    Beginning,
    /// From their current end: only lines written from now on.
    End,
}

/// `[[agent.files]]`: a set of log files with the same app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to tail (`/var/log/shop/*.log`, `**` allowed).
    pub include: Vec<String>,
    /// Glob patterns excluded, matched against the full path or, when the
    /// pattern has no `/`, the file name (`*.gz`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The app of every record from these files.
    pub app: Name,
    /// The service; default: the file's stem (`checkout` for
    /// `checkout.log`), normalised into a valid name.
    #[serde(default)]
    pub service: Option<Name>,
    /// Fixed attributes added to every record.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// Files present at the very first start: read from the beginning or
    /// the end. Files that appear later are always read from the beginning.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are truncated to this many bytes and flagged.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Multi-line events (stack traces).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
}

fn default_max_line_bytes() -> usize {
    256 * 1024
}

/// `[agent.files.multiline]`: merge continuation lines into one record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a new record; other lines continue
    /// the previous one.
    pub start_pattern: Pattern,
    /// A pending record is emitted after this long without a new line.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_multiline_timeout_ms() -> u64 {
    1_000
}

/// `[agent.spool]`: the crash-safe disk buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Total size cap; sources wait while the spool is full.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
    /// Size at which a new segment file is started.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Group-commit interval: at most this long between a write and its
    /// fsync.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
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
    /// Raw bytes of records per batch, at most (one app, one level).
    #[serde(default = "default_max_batch_bytes")]
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

/// `[agent.admin]`: the local admin endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/metrics` and `/health`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// `/health` fails when the spool holds data and nothing was acked for
    /// this long.
    #[serde(default = "default_stall_secs")]
    pub stall_secs: u64,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9881))
}
fn default_stall_secs() -> u64 {
    30
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            stall_secs: default_stall_secs(),
        }
    }
}

/// `[store]`: where filed logs live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///var/lib/sluice/blobs` or `s3://bucket/prefix`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// S3 endpoint for non-AWS servers (MinIO, Ceph, R2 …),
    /// e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region; falls back to `AWS_REGION`, then `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// S3 access key; falls back to `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// S3 secret key; falls back to `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP endpoints (local servers).
    #[serde(default)]
    pub allow_http: bool,
}

/// The embedded default store.
pub const DEFAULT_STORE_URL: &str = "file:///var/lib/sluice/blobs";

fn default_store_url() -> String {
    DEFAULT_STORE_URL.into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        }
    }
}

impl StoreConfig {
    fn apply_env(&mut self) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if self.access_key_id.is_none() {
            self.access_key_id = env("AWS_ACCESS_KEY_ID");
        }
        if self.secret_access_key.is_none() {
            self.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
        }
        if self.region.is_none() {
            self.region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        }
    }
}

/// `[filterer]`: stream → per-app blobs, and compaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltererConfig {
    /// This instance's name, part of the blobs it writes. Default: the host
    /// name.
    #[serde(default)]
    pub id: Option<String>,
    /// A partition's buffer is written as a blob at this many raw
    /// (uncompressed NDJSON) bytes; compaction merges blobs up to it.
    #[serde(default = "default_max_blob_bytes")]
    pub max_blob_bytes: usize,
    /// A partition's buffer is written at least this often.
    #[serde(default = "default_flush_interval_secs")]
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

/// The host name, or `localhost` when it cannot be read.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[nats]
url = "nats://127.0.0.1:4222"
[agent]
id = "web-1"
data_dir = "/var/lib/sluice/agent"
[[agent.files]]
include = ["/var/log/shop/*.log"]
exclude = ["*.gz"]
app = "shop"
service = "checkout"
[agent.admin]
listen = "127.0.0.1:9881"
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.nats.url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(c.agent.id.as_deref(), Some("web-1"));
        assert_eq!(c.agent.files[0].app.as_str(), "shop");
        assert_eq!(
            c.agent.files[0].service.as_ref().unwrap().as_str(),
            "checkout"
        );
        assert_eq!(c.agent.admin.listen.port(), 9881);
        assert_eq!(c.nats.stream, "LOGS");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Config::parse("[agent]\nid = \"a\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn invalid_app_names_line() {
        let text = "[[agent.files]]\ninclude = [\"/x\"]\napp = \"Shop!\"\n";
        let err = Config::parse(text).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("Shop!"), "{err}");
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = Config::load(Path::new("/nonexistent/sluice.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sluice.toml"));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.agent.spool.fsync_interval_ms, 10);
        assert!(c.agent.files.is_empty());
        assert!(c.agent.syslog.is_none() && c.agent.http.is_none());
    }

    #[test]
    fn listener_sections_enable_their_defaults() {
        let c = Config::parse("[agent.syslog]\n[agent.http]\n").unwrap();
        let syslog = c.agent.syslog.unwrap();
        let listen: SocketAddr = DEFAULT_SYSLOG_LISTEN.parse().unwrap();
        assert_eq!((syslog.udp, syslog.tcp), (Some(listen), Some(listen)));
        assert_eq!(syslog.app.as_str(), "host");
        let http = c.agent.http.unwrap();
        assert_eq!(http.listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(http.app.as_str(), "default");

        let c = Config::parse(
            "[agent.syslog]\ntcp = \"127.0.0.1:601\"\napp = \"net\"\n[agent.syslog.app_map]\nnginx = \"web\"\n",
        )
        .unwrap();
        let syslog = c.agent.syslog.unwrap();
        assert_eq!(syslog.udp, None);
        assert_eq!(syslog.tcp.unwrap().port(), 601);
        assert_eq!(syslog.app_map["nginx"].as_str(), "web");

        let err = Config::parse("[agent.syslog.app_map]\nnginx = \"Web!\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
