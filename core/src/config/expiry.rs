//! `[expiry]` and `[cold_store]`: how long each app's filed logs are kept,
//! when they move to a cold store, and where that is.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::admin::default_stall_secs;
use super::locate::{Issue, Step};
use super::values::{at_least, positive};
use super::{AdminConfig, StoreConfig};

/// A retention: when a partition moves to the cold store and when it is
/// deleted, in days after its hour ended. Both unset: kept forever, hot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Moved to `[cold_store]` this many days after the hour ended.
    #[serde(default)]
    pub cold_after_days: Option<u32>,
    /// Deleted (from whichever store holds it) this many days after the
    /// hour ended.
    #[serde(default)]
    pub delete_after_days: Option<u32>,
}

/// `[[expiry.rules]]`: the retention of the apps `app` names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryRuleConfig {
    /// An app name (`shop`) or a glob of app names (`shop-*`). An exact
    /// name wins over a glob; among globs the first listed wins.
    pub app: String,
    /// See [`Retention::cold_after_days`].
    #[serde(default)]
    pub cold_after_days: Option<u32>,
    /// See [`Retention::delete_after_days`].
    #[serde(default)]
    pub delete_after_days: Option<u32>,
}

impl ExpiryRuleConfig {
    /// The rule's retention.
    pub fn retention(&self) -> Retention {
        Retention {
            cold_after_days: self.cold_after_days,
            delete_after_days: self.delete_after_days,
        }
    }

    /// Whether `app` is a glob rather than a name.
    pub fn is_glob(&self) -> bool {
        self.app.contains(GLOB_CHARS)
    }
}

/// The characters that make a rule's `app` a glob.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

/// `[expiry]`: the expiry role (`sluice expiry`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryConfig {
    /// This instance's name in logs, metrics, claims and the audit stream
    /// (default: the host name).
    #[serde(default)]
    pub id: Option<String>,
    /// Seconds between passes; at least 1.
    #[serde(default = "default_interval_secs", deserialize_with = "positive")]
    pub interval_secs: u64,
    /// A partition any blob of which was written less than this long ago
    /// is left alone (backfilled old logs are kept this long at least).
    #[serde(
        default = "default_min_write_age_hours",
        deserialize_with = "non_negative"
    )]
    pub min_write_age_hours: f64,
    /// The retention of apps no rule names. Unset: keep everything.
    #[serde(default)]
    pub default: Retention,
    /// Per-app retentions.
    #[serde(default)]
    pub rules: Vec<ExpiryRuleConfig>,
    /// How long the `AUDIT` stream keeps its records, days (0: forever).
    #[serde(default = "default_audit_max_age_days")]
    pub audit_max_age_days: u64,
    /// `/metrics` and `/health`.
    #[serde(default = "default_expiry_admin")]
    pub admin: AdminConfig,
}

fn default_interval_secs() -> u64 {
    3600
}
fn default_min_write_age_hours() -> f64 {
    24.0
}
fn default_audit_max_age_days() -> u64 {
    365
}
fn default_expiry_admin() -> AdminConfig {
    AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 9886)),
        stall_secs: default_stall_secs(),
    }
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v: f64 = at_least(d, 0.0)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!("{v} is not a number")))
    }
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            id: None,
            interval_secs: default_interval_secs(),
            min_write_age_hours: default_min_write_age_hours(),
            default: Retention::default(),
            rules: Vec::new(),
            audit_max_age_days: default_audit_max_age_days(),
            admin: default_expiry_admin(),
        }
    }
}

impl ExpiryConfig {
    /// Whether any retention moves partitions to the cold store.
    pub fn uses_cold(&self) -> bool {
        self.default.cold_after_days.is_some()
            || self.rules.iter().any(|r| r.cold_after_days.is_some())
    }

    /// The checks of the rules, against the cold store (if any).
    pub(super) fn check(&self, cold: Option<&ColdStoreConfig>) -> Result<(), Issue> {
        let at = |i: Option<usize>, key: &'static str| -> Vec<Step<'static>> {
            match i {
                Some(i) => vec![
                    Step::Key("expiry"),
                    Step::Key("rules"),
                    Step::Index(i),
                    Step::Key(key),
                ],
                None => vec![Step::Key("expiry"), Step::Key("default"), Step::Key(key)],
            }
        };
        let named = |i: Option<usize>| match i {
            Some(i) => format!("rule for app {:?}", self.rules[i].app),
            None => "the default rule".to_string(),
        };
        let all = std::iter::once((None, self.default)).chain(
            self.rules
                .iter()
                .enumerate()
                .map(|(i, r)| (Some(i), r.retention())),
        );
        for (i, r) in all {
            if let (Some(cold), Some(delete)) = (r.cold_after_days, r.delete_after_days)
                && delete <= cold
            {
                return Err(Issue::at(
                    &at(i, "delete_after_days"),
                    format!(
                        "{}: delete_after_days ({delete}) must be more than cold_after_days ({cold}), or the logs would be deleted before they move",
                        named(i)
                    ),
                ));
            }
            if r.cold_after_days.is_some() && cold.is_none() {
                return Err(Issue::at(
                    &at(i, "cold_after_days"),
                    format!(
                        "{} moves logs to the cold store, but there is no [cold_store]",
                        named(i)
                    ),
                ));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let Err(why) = check_app_pattern(rule) {
                return Err(Issue::at(
                    &at(Some(i), "app"),
                    format!("{}: {why}", named(Some(i))),
                ));
            }
            if self.rules[..i].iter().any(|r| r.app == rule.app) {
                return Err(Issue::at(
                    &at(Some(i), "app"),
                    format!("a second rule for app {:?}", rule.app),
                ));
            }
        }
        Ok(())
    }
}

/// An app pattern must be a valid name, or a glob that compiles and whose
/// literal characters can occur in a name (so it can match one).
fn check_app_pattern(rule: &ExpiryRuleConfig) -> Result<(), String> {
    if !rule.is_glob() {
        return crate::names::validate(&rule.app).map_err(|e| e.to_string());
    }
    globset::Glob::new(&rule.app).map_err(|e| format!("not a valid glob: {e}"))?;
    let literal_ok = rule.app.chars().all(|c| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, '_' | '-' | '*' | '?' | '[' | ']' | '{' | '}' | ',' | '!')
    });
    if !literal_ok {
        return Err(format!(
            "the glob {:?} can match no app: app names are lower-case letters, digits, _ and -",
            rule.app
        ));
    }
    Ok(())
}

/// `[cold_store]`: where partitions move (same keys as `[store]`, plus a
/// storage class for the copies).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdStoreConfig {
    /// `file:///…` or `s3://bucket/prefix` (another bucket, another prefix,
    /// or the hot store's own bucket and prefix with a storage class).
    pub url: String,
    /// See [`StoreConfig::endpoint`].
    #[serde(default)]
    pub endpoint: Option<String>,
    /// See [`StoreConfig::region`].
    #[serde(default)]
    pub region: Option<String>,
    /// See [`StoreConfig::access_key_id`].
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// See [`StoreConfig::secret_access_key`].
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// See [`StoreConfig::allow_http`].
    #[serde(default)]
    pub allow_http: bool,
    /// S3 storage class of the copies (`STANDARD_IA`, `GLACIER_IR`,
    /// `GLACIER`, …). Classes that need a restore before a read
    /// (`GLACIER`, `DEEP_ARCHIVE`) make searches report the partitions
    /// instead of reading them.
    #[serde(default, deserialize_with = "storage_class")]
    pub storage_class: Option<String>,
}

/// The S3 storage classes.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
];

fn storage_class<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let class = String::deserialize(d)?;
    if STORAGE_CLASSES.contains(&class.as_str()) {
        Ok(Some(class))
    } else {
        Err(serde::de::Error::custom(format!(
            "{class:?} is not an S3 storage class ({})",
            STORAGE_CLASSES.join(", ")
        )))
    }
}

impl ColdStoreConfig {
    /// The store settings, as `[store]` would have them.
    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            url: self.url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            allow_http: self.allow_http,
        }
    }

    pub(super) fn apply_env(&mut self) {
        let mut store = self.store();
        store.apply_env();
        self.access_key_id = store.access_key_id;
        self.secret_access_key = store.secret_access_key;
        self.region = store.region;
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const EXAMPLE: &str = r#"
[expiry]
interval_secs = 3600
min_write_age_hours = 24
default = { delete_after_days = 30 }

[[expiry.rules]]
app = "shop"
cold_after_days = 7
delete_after_days = 365

[[expiry.rules]]
app = "debug-*"
delete_after_days = 3

[cold_store]
url = "s3://logs-cold/sluice"
storage_class = "GLACIER_IR"
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.expiry.default.delete_after_days, Some(30));
        assert_eq!(c.expiry.rules.len(), 2);
        assert_eq!(c.expiry.rules[0].cold_after_days, Some(7));
        assert!(c.expiry.rules[1].is_glob());
        let cold = c.cold_store.unwrap();
        assert_eq!(cold.storage_class.as_deref(), Some("GLACIER_IR"));
        assert_eq!(c.expiry.min_write_age_hours, 24.0);
    }

    #[test]
    fn the_default_keeps_everything() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.expiry.default.cold_after_days, None);
        assert_eq!(c.expiry.default.delete_after_days, None);
        assert!(c.expiry.rules.is_empty() && c.cold_store.is_none());
    }

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn bad_rules_are_named() {
        let e = err(
            "[[expiry.rules]]\napp = \"shop\"\ncold_after_days = 7\ndelete_after_days = 7\n[cold_store]\nurl = \"/tmp/c\"\n",
        );
        assert!(
            e.contains("rule for app \"shop\"") && e.contains("must be more than"),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");

        let e = err("[[expiry.rules]]\napp = \"shop\"\ncold_after_days = 7\n");
        assert!(
            e.contains("rule for app \"shop\"") && e.contains("no [cold_store]"),
            "{e}"
        );

        let e = err("[expiry]\ndefault = { cold_after_days = 1 }\n");
        assert!(e.contains("the default rule"), "{e}");

        for bad in ["Shop", "shop.eu", "sh op*", "[", ""] {
            let e = err(&format!(
                "[[expiry.rules]]\napp = \"{bad}\"\ndelete_after_days = 3\n"
            ));
            assert!(e.contains(&format!("rule for app {bad:?}")), "{bad}: {e}");
        }

        let e = err(
            "[[expiry.rules]]\napp = \"shop\"\ndelete_after_days = 3\n[[expiry.rules]]\napp = \"shop\"\ndelete_after_days = 4\n",
        );
        assert!(e.contains("a second rule for app \"shop\""), "{e}");
        assert!(e.contains("line 5"), "{e}");

        let e = err("[store]\nurl = \"/tmp/s\"\n[cold_store]\nurl = \"/tmp/s/\"\n");
        assert!(e.contains("the cold store is the [store] itself"), "{e}");

        let e = err("[cold_store]\nurl = \"/tmp/c\"\nstorage_class = \"GLACIER-IR\"\n");
        assert!(
            e.contains("not an S3 storage class") && e.contains("line 3"),
            "{e}"
        );

        let e = err("[expiry]\nmin_write_age_hours = -1\n");
        assert!(e.contains("min_write_age_hours"), "{e}");
        let e = err("[expiry]\nbogus = 1\n");
        assert!(e.contains("bogus"), "{e}");
    }
}
