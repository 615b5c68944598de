//! Which retention applies to an app: an exact rule, else the first glob
//! that matches, else the default.

use std::collections::HashMap;

use globset::{Glob, GlobMatcher};
use sluice_core::config::{ExpiryConfig, Retention};
use sluice_core::time::{NS_PER_DAY, NS_PER_HOUR};

/// The retention of one app, in nanoseconds after its hour ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Which rule it is, for logs and the audit: `app "shop"`,
    /// `app "debug-*"`, `default`.
    pub rule: String,
    pub cold_after_ns: Option<i64>,
    pub delete_after_ns: Option<i64>,
}

impl Resolved {
    fn new(rule: String, r: Retention) -> Resolved {
        let ns = |days: u32| i64::from(days).saturating_mul(NS_PER_DAY);
        Resolved {
            rule,
            cold_after_ns: r.cold_after_days.map(ns),
            delete_after_ns: r.delete_after_days.map(ns),
        }
    }

    /// Whether anything is ever moved or deleted.
    pub fn acts(&self) -> bool {
        self.cold_after_ns.is_some() || self.delete_after_ns.is_some()
    }

    /// The earliest age at which a partition is acted on.
    pub fn first_action_ns(&self) -> Option<i64> {
        match (self.cold_after_ns, self.delete_after_ns) {
            (Some(c), Some(d)) => Some(c.min(d)),
            (c, d) => c.or(d),
        }
    }
}

/// The compiled `[expiry]` rules.
#[derive(Debug, Clone)]
pub struct Rules {
    exact: HashMap<String, Resolved>,
    globs: Vec<(GlobMatcher, Resolved)>,
    default: Resolved,
    /// `[expiry] min_write_age_hours`, ns.
    pub min_write_age_ns: i64,
}

impl Rules {
    /// Compiles the rules (checked when the configuration was parsed).
    pub fn new(cfg: &ExpiryConfig) -> Result<Rules, String> {
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for rule in &cfg.rules {
            let resolved = Resolved::new(format!("app {:?}", rule.app), rule.retention());
            if rule.is_glob() {
                let glob = Glob::new(&rule.app)
                    .map_err(|e| format!("rule for app {:?}: {e}", rule.app))?;
                globs.push((glob.compile_matcher(), resolved));
            } else {
                exact.insert(rule.app.clone(), resolved);
            }
        }
        Ok(Rules {
            exact,
            globs,
            default: Resolved::new("default".into(), cfg.default),
            min_write_age_ns: (cfg.min_write_age_hours * NS_PER_HOUR as f64) as i64,
        })
    }

    /// The retention of `app`.
    pub fn for_app(&self, app: &str) -> &Resolved {
        if let Some(r) = self.exact.get(app) {
            return r;
        }
        self.globs
            .iter()
            .find(|(glob, _)| glob.is_match(app))
            .map_or(&self.default, |(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        let config = sluice_core::config::Config::parse(text).unwrap();
        Rules::new(&config.expiry).unwrap()
    }

    #[test]
    fn exact_beats_glob_and_the_first_glob_wins() {
        let r = rules(
            r#"
[expiry]
default = { delete_after_days = 30 }
[[expiry.rules]]
app = "shop-*"
delete_after_days = 10
[[expiry.rules]]
app = "shop-eu"
delete_after_days = 400
[[expiry.rules]]
app = "shop-e?"
delete_after_days = 5
"#,
        );
        let days = |app: &str| r.for_app(app).delete_after_ns.unwrap() / NS_PER_DAY;
        assert_eq!(days("shop-eu"), 400);
        assert_eq!(r.for_app("shop-eu").rule, "app \"shop-eu\"");
        assert_eq!(days("shop-us"), 10);
        assert_eq!(days("shop-ex"), 10, "the first glob listed wins");
        assert_eq!(days("billing"), 30);
        assert_eq!(r.for_app("billing").rule, "default");
        assert_eq!(r.min_write_age_ns, 24 * NS_PER_HOUR);
    }

    #[test]
    fn without_rules_nothing_acts() {
        let r = rules("");
        assert!(!r.for_app("shop").acts());
        assert_eq!(r.for_app("shop").first_action_ns(), None);
    }
}
