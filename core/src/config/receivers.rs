//! `[[receivers]]`: where notifications go, shared by the aggregator and
//! the alerter.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};

use super::locate::{Issue, Step};
use super::values::{non_empty, positive};

/// How a receiver is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A generic webhook: JSON body signed with HMAC-SHA256.
    Webhook,
    /// The process log (for a first run without any URL).
    Log,
}

/// `[[receivers]]`: a destination for notifications, shared by the
/// aggregator and the alerter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name, referred to by rules and owners.
    #[serde(deserialize_with = "non_empty")]
    pub name: String,
    /// `slack`, `webhook` or `log`.
    pub kind: ReceiverKind,
    /// Where to POST (required for `slack` and `webhook`).
    #[serde(default, deserialize_with = "http_url")]
    pub url: Option<String>,
    /// Webhook HMAC key; falls back to the environment variable
    /// `SLUICE_RECEIVER_<NAME>_SECRET` (name upper-cased, `-` as `_`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Deliveries per minute, at most (a burst of the same size is allowed).
    #[serde(default = "default_rate_per_minute", deserialize_with = "positive")]
    pub rate_per_minute: u32,
    /// Time allowed for one delivery attempt.
    #[serde(default = "default_receiver_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_rate_per_minute() -> u32 {
    60
}
fn default_receiver_timeout_secs() -> u64 {
    10
}

impl ReceiverConfig {
    fn apply_env(&mut self) {
        if self.secret.is_none() {
            let var = format!(
                "SLUICE_RECEIVER_{}_SECRET",
                self.name.to_ascii_uppercase().replace('-', "_")
            );
            self.secret = std::env::var(var).ok();
        }
    }
}

/// An http or https URL.
fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    let parsed = url::Url::parse(&url)
        .map_err(|e| serde::de::Error::custom(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(serde::de::Error::custom(format!(
            "{url:?} must be http or https"
        )));
    }
    Ok(Some(url))
}

/// Checks what each receiver's values cannot on their own, and returns
/// the receivers' names.
pub(super) fn check(receivers: &[ReceiverConfig]) -> Result<BTreeSet<&str>, Issue> {
    let mut names = BTreeSet::new();
    for (i, r) in receivers.iter().enumerate() {
        let at = |key| [Step::Key("receivers"), Step::Index(i), Step::Key(key)];
        if r.url.is_none() && matches!(r.kind, ReceiverKind::Slack | ReceiverKind::Webhook) {
            return Err(Issue::at(
                &at("kind"),
                "url is required for slack and webhook receivers",
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(Issue::at(
                &at("name"),
                format!("{:?} is defined twice", r.name),
            ));
        }
    }
    Ok(names)
}

/// Fills secrets from the environment.
pub(super) fn apply_env(receivers: &mut [ReceiverConfig]) {
    for r in receivers {
        r.apply_env();
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn receiver_errors() {
        for (text, words) in [
            (
                "[[receivers]]\nname = \"a\"\nkind = \"slack\"\n",
                "url is required",
            ),
            (
                "[[receivers]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"ftp://x\"\n",
                "http or https",
            ),
            ("[[receivers]]\nname = \"a\"\nkind = \"pager\"\n", "pager"),
            (
                "[[receivers]]\nname = \"a\"\nkind = \"log\"\n[[receivers]]\nname = \"a\"\nkind = \"log\"\n",
                "twice",
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
    }
}
