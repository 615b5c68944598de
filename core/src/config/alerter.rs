//! `[alerter]`, `[[alerter.rules]]` and `[[alerter.silences]]`: which
//! records raise alerts, and which notifications are held back.
//!
//! An error in a rule names it (`rule "checkout-errors" pattern: invalid
//! regex …`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::admin::default_stall_secs;
use super::locate::{Issue, Step};
use super::values::{non_empty, positive};
use super::{AdminConfig, Name, Pattern};
use crate::Level;

/// What a rule fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Every matching record, grouped into notifications.
    Every,
    /// At least `threshold` matching records within `window_secs`, per
    /// `group_by` values.
    Threshold,
    /// No matching record for `window_secs`.
    Absence,
}

/// `[[alerter.rules]]`: one alert rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name.
    #[serde(deserialize_with = "non_empty")]
    pub name: String,
    /// The app matched.
    pub app: Name,
    /// The service matched (any when unset).
    #[serde(default)]
    pub service: Option<Name>,
    /// The least severe level matched.
    #[serde(default = "default_min_level")]
    pub min_level: Level,
    /// A regex the message must match.
    #[serde(default)]
    pub pattern: Option<Pattern>,
    /// Attributes that must equal these values.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// `every`, `threshold` or `absence`.
    pub kind: RuleKind,
    /// For `threshold`: the count that fires.
    #[serde(default, deserialize_with = "threshold")]
    pub threshold: Option<u64>,
    /// The window of `threshold` and `absence`.
    #[serde(default = "default_window_secs", deserialize_with = "positive")]
    pub window_secs: u64,
    /// Record fields (`service`, `host`, `level`) or attribute names whose
    /// values split the rule into separate alerts.
    #[serde(default, deserialize_with = "group_by")]
    pub group_by: Vec<String>,
    /// The receiver notified.
    pub receiver: String,
    /// How long a new alert waits for more of its group before the first
    /// notification.
    #[serde(default = "default_group_wait_secs")]
    pub group_wait_secs: u64,
    /// Least time between notifications of a group that changed.
    #[serde(default = "default_group_interval_secs", deserialize_with = "positive")]
    pub group_interval_secs: u64,
    /// Least time between notifications of a group that did not change.
    #[serde(
        default = "default_repeat_interval_secs",
        deserialize_with = "positive"
    )]
    pub repeat_interval_secs: u64,
}

fn default_min_level() -> Level {
    Level::Error
}
fn default_window_secs() -> u64 {
    300
}
fn default_group_wait_secs() -> u64 {
    30
}
fn default_group_interval_secs() -> u64 {
    300
}
fn default_repeat_interval_secs() -> u64 {
    4 * 3600
}

/// Fields of a record `group_by` may name besides attributes.
pub const GROUP_BY_FIELDS: [&str; 4] = ["app", "service", "host", "level"];

fn threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    positive(d).map(Some)
}

/// A number strictly between 0 and 1 (not NaN).
fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v > 0.0 && v < 1.0) {
        return Err(serde::de::Error::custom(format!(
            "{v} must be greater than 0 and less than 1"
        )));
    }
    Ok(v)
}

/// Names without an empty or repeated one.
fn group_by<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let fields = Vec::<String>::deserialize(d)?;
    let mut seen = BTreeSet::new();
    for field in &fields {
        if field.is_empty() || !seen.insert(field) {
            return Err(serde::de::Error::custom(format!(
                "empty or repeated entry {field:?}"
            )));
        }
    }
    Ok(fields)
}

/// `[[alerter.silences]]`: notifications matching these are not sent until
/// `until`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// The rule silenced (any when unset).
    #[serde(default)]
    pub rule: Option<String>,
    /// The app silenced (any when unset).
    #[serde(default)]
    pub app: Option<Name>,
    /// Group labels that must all match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// End of the silence, RFC 3339.
    #[serde(deserialize_with = "rfc3339")]
    pub until: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// A time in RFC 3339.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if crate::record::parse_ts(&s).is_none() {
        return Err(serde::de::Error::custom(format!(
            "{s:?} is not an RFC 3339 time"
        )));
    }
    Ok(s)
}

/// `[alerter]`: rules, silences and the built-in system alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlerterConfig {
    /// This instance's name in logs, metrics and stored alert states
    /// (default: the host name and process id).
    #[serde(default)]
    pub id: Option<String>,
    /// The rules; an error in one names it.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Silences from the file (more come from `sluice alerts silence`).
    #[serde(default)]
    pub silences: Vec<SilenceConfig>,
    /// Receiver of the built-in system alerts (none when unset).
    #[serde(default)]
    pub system_receiver: Option<String>,
    /// System alert: consumers lagging behind the stream by more than this.
    #[serde(default = "default_max_lag_secs")]
    pub max_lag_secs: u64,
    /// System alert `sluice-logs-expiring`: a durable consumer of every
    /// subject whose oldest unacknowledged message is older than this
    /// fraction of the stream's `[nats] max_age_secs`, so the stream would
    /// soon delete records it has not processed (for the filterer: records
    /// not yet filed). Over 0 and under 1; never fires when `max_age_secs`
    /// is 0.
    #[serde(
        default = "default_unprocessed_expiry_warn_fraction",
        deserialize_with = "fraction"
    )]
    pub unprocessed_expiry_warn_fraction: f64,
    /// System alert: ingest rate over this multiple of its usual rate.
    #[serde(default = "default_ingest_spike_factor")]
    pub ingest_spike_factor: f64,
    /// Base URL of the query UI, for links in notifications.
    #[serde(default)]
    pub query_url: Option<String>,
    /// Alert groups tracked at most; matches for more are counted and
    /// dropped.
    #[serde(default = "default_max_groups", deserialize_with = "positive")]
    pub max_groups: usize,
    /// Longest wait between delivery attempts of a notification, by
    /// whichever role (alerter or aggregator) delivers it (backoff
    /// doubles from 1 s up to this; a `Retry-After` is honoured up to an
    /// hour).
    #[serde(default = "default_retry_max_secs", deserialize_with = "positive")]
    pub retry_max_secs: u64,
    /// On start, the stream is re-read from where the alerters had got to,
    /// but from no further back than this.
    #[serde(default = "default_max_replay_secs")]
    pub max_replay_secs: u64,
    /// `/metrics` and `/health`.
    #[serde(default = "default_alerter_admin")]
    pub admin: AdminConfig,
}

fn default_max_groups() -> usize {
    10_000
}
fn default_max_lag_secs() -> u64 {
    300
}
fn default_unprocessed_expiry_warn_fraction() -> f64 {
    0.5
}
fn default_ingest_spike_factor() -> f64 {
    5.0
}
fn default_retry_max_secs() -> u64 {
    300
}
fn default_max_replay_secs() -> u64 {
    3600
}
fn default_alerter_admin() -> AdminConfig {
    AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 9884)),
        stall_secs: default_stall_secs(),
    }
}

impl Default for AlerterConfig {
    fn default() -> Self {
        AlerterConfig {
            id: None,
            rules: Vec::new(),
            silences: Vec::new(),
            system_receiver: None,
            max_lag_secs: default_max_lag_secs(),
            unprocessed_expiry_warn_fraction: default_unprocessed_expiry_warn_fraction(),
            ingest_spike_factor: default_ingest_spike_factor(),
            query_url: None,
            max_groups: default_max_groups(),
            retry_max_secs: default_retry_max_secs(),
            max_replay_secs: default_max_replay_secs(),
            admin: default_alerter_admin(),
        }
    }
}

impl AlerterConfig {
    /// Checks what each rule's values cannot on their own, and that the
    /// receivers and rules named are defined.
    pub(super) fn check(&self, receivers: &BTreeSet<&str>) -> Result<(), Issue> {
        let mut rules = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |key| {
                [
                    Step::Key("alerter"),
                    Step::Key("rules"),
                    Step::Index(i),
                    Step::Key(key),
                ]
            };
            match (rule.kind, rule.threshold) {
                (RuleKind::Threshold, None) => {
                    return Err(Issue::at(
                        &at("kind"),
                        "kind = \"threshold\" needs a threshold",
                    ));
                }
                (RuleKind::Every | RuleKind::Absence, Some(_)) => {
                    return Err(Issue::at(
                        &at("threshold"),
                        "threshold only applies to kind = \"threshold\"",
                    ));
                }
                _ => {}
            }
            if !rules.insert(rule.name.as_str()) {
                return Err(Issue::at(
                    &at("name"),
                    format!("{:?} is defined twice", rule.name),
                ));
            }
            if !receivers.contains(rule.receiver.as_str()) {
                return Err(Issue::at(
                    &at("receiver"),
                    format!("unknown receiver {:?}", rule.receiver),
                ));
            }
        }
        if let Some(r) = &self.system_receiver
            && !receivers.contains(r.as_str())
        {
            return Err(Issue::at(
                &[Step::Key("alerter"), Step::Key("system_receiver")],
                format!("unknown receiver {r:?}"),
            ));
        }
        for (i, silence) in self.silences.iter().enumerate() {
            if let Some(rule) = &silence.rule
                && !rules.contains(rule.as_str())
            {
                return Err(Issue::at(
                    &[
                        Step::Key("alerter"),
                        Step::Key("silences"),
                        Step::Index(i),
                        Step::Key("rule"),
                    ],
                    format!("unknown rule {rule:?}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ReceiverKind, RuleKind};

    const EXAMPLE: &str = r#"
[[receivers]]
name = "ops"
kind = "slack"
url = "https://hooks.slack.com/services/T0/B0/x"
[[receivers]]
name = "hooks"
kind = "webhook"
url = "http://127.0.0.1:8080/alerts"
secret = "k"
[[aggregator.owners]]
app = "shop"
receiver = "ops"
[[alerter.rules]]
name = "checkout-errors"
app = "shop"
service = "checkout"
min_level = "ERROR"
pattern = "payment .* declined"
kind = "threshold"
threshold = 10
window_secs = 60
group_by = ["service"]
receiver = "ops"
group_wait_secs = 5
group_interval_secs = 60
repeat_interval_secs = 3600
[[alerter.rules]]
name = "billing-silent"
app = "billing"
kind = "absence"
window_secs = 600
receiver = "hooks"
attrs = { region = "eu" }
[[alerter.silences]]
rule = "billing-silent"
until = "2026-12-01T00:00:00Z"
comment = "migration"
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.receivers.len(), 2);
        assert_eq!(c.receivers[1].kind, ReceiverKind::Webhook);
        assert_eq!(c.aggregator.owners[0].receiver, "ops");
        let rule = &c.alerter.rules[0];
        assert_eq!((rule.kind, rule.threshold), (RuleKind::Threshold, Some(10)));
        assert!(
            rule.pattern
                .as_ref()
                .unwrap()
                .0
                .is_match("payment 42 declined")
        );
        assert_eq!(c.alerter.rules[1].attrs["region"], "eu");
        assert_eq!(c.alerter.silences[0].comment, "migration");
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn rule_errors_name_the_rule() {
        let rule = |extra: &str| {
            format!(
                "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n[[alerter.rules]]\nname = \"r1\"\napp = \"shop\"\nkind = \"every\"\nreceiver = \"ops\"\n{extra}"
            )
        };
        for (extra, words) in [
            ("pattern = \"payment (\"\n", "invalid regex"),
            ("bogus = 1\n", "bogus"),
            ("min_level = \"LOUD\"\n", "LOUD"),
            ("threshold = 3\n", "threshold"),
            ("window_secs = 0\n", "window_secs"),
            ("group_by = [\"host\", \"host\"]\n", "group_by"),
        ] {
            let err = error_of(&rule(extra));
            assert!(err.contains("rule \"r1\""), "{extra}: {err}");
            assert!(err.contains(words), "{extra}: {err}");
        }
        let err = error_of(&rule("").replace("receiver = \"ops\"\n", "receiver = \"nobody\"\n"));
        assert!(
            err.contains("rule \"r1\"") && err.contains("nobody"),
            "{err}"
        );
        let err = error_of(&rule("").replace("kind = \"every\"", "kind = \"threshold\""));
        assert!(
            err.contains("rule \"r1\"") && err.contains("threshold"),
            "{err}"
        );
        let twice = format!(
            "{}{}",
            rule(""),
            "[[alerter.rules]]\nname = \"r1\"\napp = \"x\"\nkind = \"every\"\nreceiver = \"ops\"\n"
        );
        assert!(error_of(&twice).contains("twice"));
    }

    #[test]
    fn the_expiry_warn_fraction_is_between_0_and_1() {
        assert_eq!(
            Config::parse("")
                .unwrap()
                .alerter
                .unprocessed_expiry_warn_fraction,
            0.5
        );
        let c = Config::parse("[alerter]\nunprocessed_expiry_warn_fraction = 0.8\n").unwrap();
        assert_eq!(c.alerter.unprocessed_expiry_warn_fraction, 0.8);
        for bad in ["0", "0.0", "1", "1.0", "1.5", "-0.2", "nan"] {
            let err = error_of(&format!(
                "[alerter]\nunprocessed_expiry_warn_fraction = {bad}\n"
            ));
            assert!(
                err.contains("unprocessed_expiry_warn_fraction")
                    && err.contains("greater than 0 and less than 1"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn silence_errors() {
        let err = error_of("[[alerter.silences]]\nuntil = \"soon\"\n");
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
