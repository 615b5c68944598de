//! `[agent.syslog]`: the agent's syslog endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{MAX_LINE_BYTES, default_max_connections, key_of};
use crate::config::Name;
use crate::config::locate::Issue;
use crate::config::values::between;

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
    #[serde(default = "default_syslog_timezone", deserialize_with = "timezone")]
    pub timezone: String,
    /// Longest message kept whole; longer ones are truncated and flagged.
    /// From 1 to [`MAX_LINE_BYTES`].
    #[serde(
        default = "default_syslog_max_message_bytes",
        deserialize_with = "max_message_bytes"
    )]
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
/// A time zone the agent's syslog parser reads: `local`, `utc` or `z` in
/// any case, or an offset `±HH:MM`, `±HHMM` or `±HH` of less than a day.
fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !is_timezone(&s) {
        return Err(serde::de::Error::custom(format!(
            "invalid time zone {s:?}: expected \"local\", \"utc\" or an offset such as \"+02:00\" or \"-0530\""
        )));
    }
    Ok(s)
}

fn is_timezone(s: &str) -> bool {
    let t = s.trim();
    if ["local", "utc", "z"]
        .iter()
        .any(|z| t.eq_ignore_ascii_case(z))
    {
        return true;
    }
    let number = |d: &[u8], max: u8| match d {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => (a - b'0') * 10 + (b - b'0') <= max,
        _ => false,
    };
    match t.as_bytes() {
        [b'+' | b'-', rest @ ..] => match rest {
            [h @ .., b':', m1, m2] if h.len() == 2 => number(h, 23) && number(&[*m1, *m2], 59),
            [h1, h2, m1, m2] => number(&[*h1, *h2], 23) && number(&[*m1, *m2], 59),
            [h1, h2] => number(&[*h1, *h2], 23),
            _ => false,
        },
        _ => false,
    }
}

fn max_message_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    between(d, 1, MAX_LINE_BYTES)
}
fn default_syslog_max_message_bytes() -> usize {
    64 * 1024
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
    pub(super) fn apply_defaults(&mut self) {
        if self.udp.is_none() && self.tcp.is_none() && self.tls.is_none() && self.unix.is_none() {
            let listen = DEFAULT_SYSLOG_LISTEN.parse().ok();
            self.udp = listen;
            self.tcp = listen;
        }
    }

    /// Checks the values that must fit together.
    pub(super) fn check(&self) -> Result<(), Issue> {
        if self.tls.is_some() && (self.tls_cert_file.is_none() || self.tls_key_file.is_none()) {
            return Err(Issue::at(
                &key_of("syslog", "tls"),
                "a tls listener needs tls_cert_file and tls_key_file",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{DEFAULT_SYSLOG_LISTEN, is_timezone};
    use crate::config::Config;

    #[test]
    fn time_zones_are_those_the_agent_reads() {
        for zone in [
            "local", "LOCAL", "utc", "UTC", "z", "Z", " utc ", "+02:00", "-05:30", "+0200",
            "-0530", "+02", "+00", "-23:59",
        ] {
            assert!(is_timezone(zone), "{zone:?}");
        }
        for zone in [
            "",
            "GMT",
            "Mars/Olympus",
            "02:00",
            "+2",
            "+2:00",
            "+02:0",
            "+020",
            "+24:00",
            "+02:60",
            "+02:00:00",
            "+02-00",
        ] {
            assert!(!is_timezone(zone), "{zone:?}");
        }
    }

    #[test]
    fn the_section_enables_its_defaults() {
        let c = Config::parse("[agent.syslog]\n").unwrap();
        let syslog = c.agent.syslog.unwrap();
        let listen: SocketAddr = DEFAULT_SYSLOG_LISTEN.parse().unwrap();
        assert_eq!((syslog.udp, syslog.tcp), (Some(listen), Some(listen)));
        assert_eq!(syslog.app.as_str(), "host");

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
