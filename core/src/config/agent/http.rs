//! `[agent.http]`: the agent's HTTP ingestion endpoint.

use std::net::SocketAddr;

use serde::Deserialize;

use super::default_max_connections;
use crate::config::Name;

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
    pub(super) fn apply_env(&mut self) {
        if self.token.is_none() {
            self.token = std::env::var("SLUICE_HTTP_TOKEN").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DEFAULT_HTTP_LISTEN;
    use crate::config::Config;

    #[test]
    fn the_section_enables_its_defaults() {
        let c = Config::parse("[agent.http]\n").unwrap();
        let http = c.agent.http.unwrap();
        assert_eq!(http.listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(http.app.as_str(), "default");
    }
}
