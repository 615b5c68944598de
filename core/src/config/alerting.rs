//! `[[receivers]]`, `[aggregator]` and `[alerter]`: who is told about
//! problems, and when.
//!
//! Rules are parsed one by one so every error names its rule
//! (`rule "checkout-errors": invalid regex …`), and references between
//! sections (a rule's or an owner's receiver) are checked once the whole
//! file is read ([`check_references`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::{AdminConfig, Name, Pattern, default_stall_secs};
use crate::Level;

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

    fn check(&self) -> Result<(), String> {
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
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// A group seen again after this long quiet is announced as regressed.
    #[serde(default = "default_quiet_period_secs")]
    pub quiet_period_secs: u64,
    /// A group whose rate in a minute exceeds its baseline by this factor
    /// (and `spike_min_count`) is announced as spiking.
    #[serde(default = "default_spike_factor")]
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
    #[serde(default)]
    pub threshold: Option<u64>,
    /// The window of `threshold` and `absence`.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Record fields (`service`, `host`, `level`) or attribute names whose
    /// values split the rule into separate alerts.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The receiver notified.
    pub receiver: String,
    /// How long a new alert waits for more of its group before the first
    /// notification.
    #[serde(default = "default_group_wait_secs")]
    pub group_wait_secs: u64,
    /// Least time between notifications of a group that changed.
    #[serde(default = "default_group_interval_secs")]
    pub group_interval_secs: u64,
    /// Least time between notifications of a group that did not change.
    #[serde(default = "default_repeat_interval_secs")]
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

impl RuleConfig {
    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        let fail = |what: String| Err(format!("rule {name:?}: {what}"));
        if name.is_empty() {
            return Err("a rule has an empty name".into());
        }
        match (self.kind, self.threshold) {
            (RuleKind::Threshold, None | Some(0)) => {
                return fail("kind = \"threshold\" needs threshold ≥ 1".into());
            }
            (RuleKind::Every | RuleKind::Absence, Some(_)) => {
                return fail("threshold only applies to kind = \"threshold\"".into());
            }
            _ => {}
        }
        if self.window_secs == 0 {
            return fail("window_secs must be positive".into());
        }
        if self.group_interval_secs == 0 || self.repeat_interval_secs == 0 {
            return fail("group_interval_secs and repeat_interval_secs must be positive".into());
        }
        let mut seen = BTreeSet::new();
        for field in &self.group_by {
            if field.is_empty() || !seen.insert(field) {
                return fail(format!("group_by has an empty or repeated entry {field:?}"));
            }
        }
        Ok(())
    }
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
    pub until: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// `[alerter]`: rules, silences and the built-in system alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlerterConfig {
    /// This instance's name in logs, metrics and stored alert states
    /// (default: the host name and process id).
    #[serde(default)]
    pub id: Option<String>,
    /// The rules, each parsed on its own so errors name it.
    #[serde(default, deserialize_with = "named_rules")]
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
    /// System alert: ingest rate over this multiple of its usual rate.
    #[serde(default = "default_ingest_spike_factor")]
    pub ingest_spike_factor: f64,
    /// Base URL of the query UI, for links in notifications.
    #[serde(default)]
    pub query_url: Option<String>,
    /// Alert groups tracked at most; matches for more are counted and
    /// dropped.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// Longest wait between delivery attempts of a notification, by
    /// whichever role (alerter or aggregator) delivers it (backoff
    /// doubles from 1 s up to this; a `Retry-After` is honoured up to an
    /// hour).
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// On start, the stream is re-read from where the alerters had got to,
    /// but from no further back than this.
    #[serde(default = "default_max_replay_secs")]
    pub max_replay_secs: u64,
    /// `/metrics` and `/health`.
    #[serde(default = "default_alerter_admin")]
    pub admin: AdminConfig,
}

fn default_max_lag_secs() -> u64 {
    300
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
            ingest_spike_factor: default_ingest_spike_factor(),
            query_url: None,
            max_groups: default_max_groups(),
            retry_max_secs: default_retry_max_secs(),
            max_replay_secs: default_max_replay_secs(),
            admin: default_alerter_admin(),
        }
    }
}

/// Parses `[[alerter.rules]]` one table at a time, so an unknown field or a
/// bad regex is reported with the name of its rule.
fn named_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RuleConfig>, D::Error> {
    let tables = Vec::<toml::Table>::deserialize(d)?;
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let name = match table.get("name") {
                Some(toml::Value::String(s)) => format!("rule {s:?}"),
                _ => format!("rule #{}", i + 1),
            };
            RuleConfig::deserialize(toml::Value::Table(table))
                .map_err(|e| serde::de::Error::custom(format!("{name}: {}", e.message())))
        })
        .collect()
}

/// Fills secrets from the environment.
pub(super) fn apply_env(receivers: &mut [ReceiverConfig]) {
    for r in receivers {
        r.apply_env();
    }
}

/// Checks each section and the references between them.
pub(super) fn check_references(
    receivers: &[ReceiverConfig],
    aggregator: &AggregatorConfig,
    alerter: &AlerterConfig,
) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for r in receivers {
        r.check()?;
        if !names.insert(r.name.as_str()) {
            return Err(format!("receiver {:?} is defined twice", r.name));
        }
    }
    let known = |receiver: &str, whose: String| {
        if names.contains(receiver) {
            Ok(())
        } else {
            Err(format!("{whose}: unknown receiver {receiver:?}"))
        }
    };
    for owner in &aggregator.owners {
        known(
            &owner.receiver,
            format!("owner of app {:?}", owner.app.as_str()),
        )?;
    }
    if let Some(r) = &aggregator.default_receiver {
        known(r, "[aggregator] default_receiver".into())?;
    }
    if aggregator.spike_factor.is_nan() || aggregator.spike_factor <= 1.0 {
        return Err("[aggregator] spike_factor must be greater than 1".into());
    }
    let mut rules = BTreeSet::new();
    for rule in &alerter.rules {
        rule.check()?;
        if !rules.insert(rule.name.as_str()) {
            return Err(format!("rule {:?} is defined twice", rule.name));
        }
        known(&rule.receiver, format!("rule {:?}", rule.name))?;
    }
    if alerter.retry_max_secs == 0 || alerter.max_groups == 0 || aggregator.max_groups == 0 {
        return Err("retry_max_secs and max_groups must be positive".into());
    }
    if let Some(r) = &alerter.system_receiver {
        known(r, "[alerter] system_receiver".into())?;
    }
    for (i, s) in alerter.silences.iter().enumerate() {
        if crate::record::parse_ts(&s.until).is_none() {
            return Err(format!(
                "silence #{}: until = {:?} is not an RFC 3339 time",
                i + 1,
                s.until
            ));
        }
        if let Some(rule) = &s.rule
            && !rules.contains(rule.as_str())
        {
            return Err(format!("silence #{}: unknown rule {rule:?}", i + 1));
        }
    }
    Ok(())
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
    fn receiver_and_owner_errors() {
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
            (
                "[[aggregator.owners]]\napp = \"shop\"\nreceiver = \"ghost\"\n",
                "ghost",
            ),
            ("[aggregator]\nspike_factor = 0.5\n", "spike_factor"),
            ("[[alerter.silences]]\nuntil = \"soon\"\n", "RFC 3339"),
        ] {
            let err = error_of(text);
            assert!(err.contains(words), "{text}: {err}");
        }
    }
}
