//! `[agent.http]`: the agent's HTTP ingestion endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::{MAX_LINE_BYTES, default_max_connections, key_of};
use crate::config::Name;
use crate::config::locate::Issue;
use crate::config::values::{at_most, between, positive, some_non_empty};

/// Largest `[agent.http] max_metadata_bytes`: half of [`MAX_LINE_BYTES`],
/// so the metadata leaves room for the message in a record.
pub const MAX_METADATA_BYTES: usize = MAX_LINE_BYTES / 2;

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
    /// Falls back to the `SLUICE_HTTP_TOKEN` environment variable. Not
    /// empty.
    #[serde(default, deserialize_with = "some_non_empty")]
    pub token: Option<String>,
    /// Largest request body, before and after gzip decoding (413 above).
    #[serde(default = "default_max_body_bytes", deserialize_with = "positive")]
    pub max_body_bytes: usize,
    /// Records per request, at most (400 above).
    #[serde(
        default = "default_max_records_per_request",
        deserialize_with = "positive"
    )]
    pub max_records: usize,
    /// Longest message kept whole; longer ones are truncated and flagged.
    /// From 1 to [`MAX_LINE_BYTES`].
    #[serde(
        default = "default_http_max_message_bytes",
        deserialize_with = "max_message_bytes"
    )]
    pub max_message_bytes: usize,
    /// Largest `metadata` (keys and values) of one record (400 above); at
    /// most [`MAX_METADATA_BYTES`].
    #[serde(
        default = "default_max_attrs_bytes",
        deserialize_with = "max_metadata_bytes"
    )]
    pub max_metadata_bytes: usize,
    /// Body bytes being decoded and spooled at once, at most; requests
    /// beyond it get 429 with `Retry-After`. At least `max_body_bytes`.
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
fn max_message_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    between(d, 1, MAX_LINE_BYTES)
}
fn max_metadata_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_most(d, MAX_METADATA_BYTES)
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

    /// Checks the values that must fit together, once the environment is
    /// applied.
    pub(super) fn check(&self) -> Result<(), Issue> {
        if self.max_in_flight_bytes < self.max_body_bytes {
            return Err(Issue::at_either(
                &key_of("http", "max_in_flight_bytes"),
                &key_of("http", "max_body_bytes"),
                format!(
                    "max_in_flight_bytes = {} must be at least max_body_bytes = {}",
                    self.max_in_flight_bytes, self.max_body_bytes
                ),
            ));
        }
        // An empty token in the file is refused while parsing; this one
        // came from the environment.
        if self.token.as_deref() == Some("") {
            return Err(Issue::at(
                &key_of("http", "token"),
                "SLUICE_HTTP_TOKEN is set but empty",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_HTTP_LISTEN, HttpConfig};
    use crate::config::Config;

    #[test]
    fn an_empty_token_from_the_environment_is_refused_on_the_section() {
        let http = HttpConfig {
            token: Some(String::new()),
            ..HttpConfig::default()
        };
        let text = "[nats]\nreplicas = 1\n[agent.http]\nlisten = \"127.0.0.1:9880\"\n";
        let err = http.check().unwrap_err().render(text);
        assert_eq!(
            err.lines().next(),
            Some("line 3, column 1: [agent.http] token: SLUICE_HTTP_TOKEN is set but empty")
        );
    }

    #[test]
    fn the_section_enables_its_defaults() {
        let c = Config::parse("[agent.http]\n").unwrap();
        let http = c.agent.http.unwrap();
        assert_eq!(http.listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(http.app.as_str(), "default");
    }
}
