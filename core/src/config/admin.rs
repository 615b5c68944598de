//! `[agent.admin]`, `[filterer.admin]`, `[aggregator] admin` and
//! `[alerter] admin`: each process's local admin endpoint.

use std::net::SocketAddr;

use serde::Deserialize;

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
pub(super) fn default_stall_secs() -> u64 {
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
