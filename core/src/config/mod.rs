//! The one TOML configuration schema shared by every Sluice process.
//!
//! Each process reads the sections it needs; all sections are parsed and
//! checked by every process, so a typo anywhere is caught wherever the file is
//! used. Unknown keys are errors, reported with the file, line and key.
//! Values that must be valid (names, regexes, time zones, limits such as
//! [`MAX_BATCH_BYTES`]) are checked while parsing, so their errors carry
//! the line too. So do the checks made once a file is read: values of one
//! section that must fit together (`[agent.http] max_in_flight_bytes` and
//! `max_body_bytes`) and references between sections (a rule's receiver),
//! each placed on the line of the key it blames, or on its section's
//! header when that key is left to its default. What needs the machine —
//! files that must exist, TLS material that must load, addresses that must
//! bind — and the agent's glob patterns, which it compiles, are checked by
//! the process that uses them.
//!
//! An error reads `line 5, column 19: [agent.publish] max_batch_bytes:
//! 300000 is over the limit of 262144`, then quotes the line with the value
//! underlined; elements of arrays of tables are `[[agent.files]] #2`, or
//! `rule "name"` and `receiver "name"`.
//!
//! Each section has its own module: `nats`, `agent` (with `files`,
//! `syslog` and `http`), `store`, `filterer`, `receivers`, `aggregator`,
//! `alerter`, `query`, `expiry` (with `[cold_store]`); the shared value types are in `values`, the admin endpoint of
//! every process in `admin`, and the placing of errors in `locate`.
//!
//! Secrets may stay out of the file: `[nats] password` and `token` fall back
//! to the `SLUICE_NATS_PASSWORD` and `SLUICE_NATS_TOKEN` environment
//! variables, `[agent.http] token` to `SLUICE_HTTP_TOKEN`, a `[[query.tokens]]` token to
//! `SLUICE_QUERY_TOKEN_<NAME>`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod admin;
mod agent;
mod aggregator;
mod alerter;
mod expiry;
mod filterer;
mod locate;
mod nats;
mod query;
mod receivers;
mod store;
mod values;

pub use admin::AdminConfig;
pub use agent::{
    AgentConfig, DEFAULT_HTTP_LISTEN, DEFAULT_SYSLOG_LISTEN, FileSourceConfig, HttpConfig,
    LimitsConfig, MAX_BATCH_BYTES, MAX_LINE_BYTES, MAX_METADATA_BYTES, MIN_SPOOL_BYTES,
    MultilineConfig, PublishConfig, ReadFrom, SpoolConfig, SyslogConfig,
};
pub use aggregator::{AggregatorConfig, OwnerConfig};
pub use alerter::{AlerterConfig, GROUP_BY_FIELDS, RuleConfig, RuleKind, SilenceConfig};
pub use expiry::{ColdStoreConfig, ExpiryConfig, ExpiryRuleConfig, Retention};
pub use filterer::{FiltererConfig, MIN_BLOB_BYTES};
pub use nats::NatsConfig;
pub use query::{QueryConfig, TokenConfig};
pub use receivers::{ReceiverConfig, ReceiverKind};
pub use store::{DEFAULT_STORE_URL, StoreConfig};
pub use values::{Name, Pattern};

use locate::Issue;

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
    /// The search API (`sluice query`).
    #[serde(default)]
    pub query: QueryConfig,
    /// Retention and the cold tier (`sluice expiry`).
    #[serde(default)]
    pub expiry: ExpiryConfig,
    /// Where partitions move when a retention says so (read by the
    /// expiry role and the query service).
    #[serde(default)]
    pub cold_store: Option<ColdStoreConfig>,
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
        let mut config: Config = toml::from_str(text).map_err(|e| locate::toml_error(text, &e))?;
        config.nats.apply_env();
        config.store.apply_env();
        config.agent.apply_env();
        receivers::apply_env(&mut config.receivers);
        config.query.apply_env();
        if let Some(cold) = &mut config.cold_store {
            cold.apply_env();
        }
        config.check().map_err(|issue| issue.render(text))?;
        Ok(config)
    }

    /// The checks that need more than one value: values of one section
    /// that must fit together, and references between sections.
    fn check(&self) -> Result<(), Issue> {
        self.agent.check()?;
        let receivers = receivers::check(&self.receivers)?;
        self.aggregator.check(&receivers)?;
        self.alerter.check(&receivers)?;
        self.query.check()?;
        self.expiry.check(self.cold_store.as_ref())?;
        if let Some(cold) = &self.cold_store {
            let same =
                |a: &str, b: &str| a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/');
            if same(&cold.url, &self.store.url) && cold.endpoint == self.store.endpoint {
                return Err(Issue::at(
                    &[locate::Step::Key("cold_store"), locate::Step::Key("url")],
                    "the cold store is the [store] itself: give it another bucket or prefix (a storage class alone cannot tell the copies from the originals)",
                ));
            }
        }
        Ok(())
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
    fn missing_file_is_a_read_error() {
        let err = Config::load(Path::new("/nonexistent/sluice.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sluice.toml"));
    }
}
