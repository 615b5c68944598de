//! `[nats]`: how to reach NATS and how the `LOGS` stream and the KV
//! buckets are set up.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    /// How long the stream keeps records (0: until `max_bytes` is
    /// reached). A consumer whose oldest unprocessed record gets near this
    /// age raises the `sluice-logs-expiring` system alert (see `[alerter]
    /// unprocessed_expiry_warn_fraction`).
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
    /// How long the KV bucket `sluice_partitions` (the filterer's
    /// partitions written since their last compaction) keeps a partition
    /// not written for this many days (0: forever). Such a partition has
    /// long been compacted, so its entry is only growth; one written again
    /// later (a late record) is marked anew.
    #[serde(default = "default_partitions_max_age_days")]
    pub partitions_max_age_days: u64,
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
fn default_partitions_max_age_days() -> u64 {
    30
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
            partitions_max_age_days: default_partitions_max_age_days(),
        }
    }
}

impl NatsConfig {
    /// The URL list to connect to.
    pub fn url_or_default(&self) -> &str {
        self.url.as_deref().unwrap_or("nats://127.0.0.1:4222")
    }

    /// The max age of the KV bucket `sluice_partitions`
    /// ([`Duration::ZERO`]: unlimited).
    pub fn partitions_max_age(&self) -> Duration {
        Duration::from_secs(self.partitions_max_age_days.saturating_mul(24 * 3600))
    }

    pub(super) fn apply_env(&mut self) {
        if self.password.is_none() {
            self.password = std::env::var("SLUICE_NATS_PASSWORD").ok();
        }
        if self.token.is_none() {
            self.token = std::env::var("SLUICE_NATS_TOKEN").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn the_partitions_bucket_keeps_30_days_unless_configured() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.nats.partitions_max_age_days, 30);
        assert_eq!(
            c.nats.partitions_max_age(),
            Duration::from_secs(30 * 24 * 3600)
        );
        let c = Config::parse("[nats]\npartitions_max_age_days = 0\n").unwrap();
        assert_eq!(c.nats.partitions_max_age(), Duration::ZERO);
        let c = Config::parse("[nats]\npartitions_max_age_days = 7\n").unwrap();
        assert_eq!(
            c.nats.partitions_max_age(),
            Duration::from_secs(7 * 24 * 3600)
        );
    }
}
