//! `[[receivers]]`: where notifications go, shared by the aggregator and
//! the alerter.

use serde::Deserialize;

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
    pub name: String,
    /// `slack`, `webhook` or `log`.
    pub kind: ReceiverKind,
    /// Where to POST (required for `slack` and `webhook`).
    #[serde(default)]
    pub url: Option<String>,
    /// Webhook HMAC key; falls back to the environment variable
    /// `SLUICE_RECEIVER_<NAME>_SECRET` (name upper-cased, `-` as `_`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Deliveries per minute, at most (a burst of the same size is allowed).
    #[serde(default = "default_rate_per_minute")]
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

    pub(super) fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() {
            return Err("a receiver has an empty name".into());
        }
        match (self.kind, &self.url) {
            (ReceiverKind::Slack | ReceiverKind::Webhook, None) => {
                return Err(format!("receiver {name:?}: url is required"));
            }
            (_, Some(url)) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| format!("receiver {name:?}: invalid url {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "receiver {name:?}: url {url:?} must be http or https"
                    ));
                }
            }
            _ => {}
        }
        if self.rate_per_minute == 0 {
            return Err(format!(
                "receiver {name:?}: rate_per_minute must be positive"
            ));
        }
        Ok(())
    }
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
