//! `[aggregator]` and `[[aggregator.owners]]`: error grouping, and who
//! hears about an app's error groups.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::admin::default_stall_secs;
use super::locate::{Issue, Step};
use super::values::{greater_than, positive};
use super::{AdminConfig, Name};

/// `[[aggregator.owners]]`: who hears about an app's error groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerConfig {
    /// The app.
    pub app: Name,
    /// The receiver told about its new, regressed and spiking groups.
    pub receiver: String,
}

/// `[aggregator]`: error grouping and per-hour counts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// This instance's name in logs and metrics (default: the host name).
    #[serde(default)]
    pub id: Option<String>,
    /// Owners per app.
    #[serde(default)]
    pub owners: Vec<OwnerConfig>,
    /// The receiver told about groups of apps that have no owner (none
    /// when unset: such groups are kept but nobody is told).
    #[serde(default)]
    pub default_receiver: Option<String>,
    /// Groups tracked in memory at most; the least recently seen are
    /// evicted (and counted) beyond it. Their state stays in KV.
    #[serde(default = "default_max_groups", deserialize_with = "positive")]
    pub max_groups: usize,
    /// A group seen again after this long quiet is announced as regressed.
    #[serde(default = "default_quiet_period_secs")]
    pub quiet_period_secs: u64,
    /// A group whose rate in a minute exceeds its baseline by this factor
    /// (and `spike_min_count`) is announced as spiking; greater than 1.
    #[serde(default = "default_spike_factor", deserialize_with = "spike_factor")]
    pub spike_factor: f64,
    /// Smallest count in a minute that can be a spike.
    #[serde(default = "default_spike_min_count")]
    pub spike_min_count: u64,
    /// Sample messages kept per group.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Base URL of the query UI, for links in notifications.
    #[serde(default)]
    pub query_url: Option<String>,
    /// `/metrics` and `/health`.
    #[serde(default = "default_aggregator_admin")]
    pub admin: AdminConfig,
}

fn default_max_groups() -> usize {
    10_000
}
fn spike_factor<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    greater_than(d, 1.0)
}
fn default_quiet_period_secs() -> u64 {
    24 * 3600
}
fn default_spike_factor() -> f64 {
    10.0
}
fn default_spike_min_count() -> u64 {
    50
}
fn default_samples() -> usize {
    5
}
fn default_aggregator_admin() -> AdminConfig {
    AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 9883)),
        stall_secs: default_stall_secs(),
    }
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            id: None,
            owners: Vec::new(),
            default_receiver: None,
            max_groups: default_max_groups(),
            quiet_period_secs: default_quiet_period_secs(),
            spike_factor: default_spike_factor(),
            spike_min_count: default_spike_min_count(),
            samples: default_samples(),
            query_url: None,
            admin: default_aggregator_admin(),
        }
    }
}

impl AggregatorConfig {
    /// Checks that the receivers named are defined.
    pub(super) fn check(&self, receivers: &BTreeSet<&str>) -> Result<(), Issue> {
        for (i, owner) in self.owners.iter().enumerate() {
            if !receivers.contains(owner.receiver.as_str()) {
                return Err(Issue::at(
                    &[
                        Step::Key("aggregator"),
                        Step::Key("owners"),
                        Step::Index(i),
                        Step::Key("receiver"),
                    ],
                    format!("unknown receiver {:?}", owner.receiver),
                ));
            }
        }
        if let Some(r) = &self.default_receiver
            && !receivers.contains(r.as_str())
        {
            return Err(Issue::at(
                &[Step::Key("aggregator"), Step::Key("default_receiver")],
                format!("unknown receiver {r:?}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn owner_and_spike_errors() {
        for (text, words) in [
            (
                "[[aggregator.owners]]\napp = \"shop\"\nreceiver = \"ghost\"\n",
                "ghost",
            ),
            ("[aggregator]\nspike_factor = 0.5\n", "spike_factor"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
    }
}
