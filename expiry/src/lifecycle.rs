//! `sluice expiry lifecycle`: the S3 lifecycle configuration that comes
//! closest to the rules, for operators who want the bucket to expire
//! objects itself.
//!
//! It differs from the expiry role, and the notes say so: S3 judges an
//! object's age by when it was written, not by the hour of its logs (a
//! backfill of old logs lives its full term again, and a late blob of an
//! old hour stays after its neighbours); it acts asynchronously, up to a
//! day or two late; it cannot move objects to another bucket or prefix,
//! only change their storage class; it deletes objects one by one, so a
//! search can see half an hour; and a bucket holds at most 1,000 rules.
//! One rule is written per filed app (an overlapping bucket-wide default
//! would win over longer per-app retentions, as S3 applies the earliest
//! expiration), so apps filed later need the command run again.

use serde_json::{Value, json};
use sluice_core::time::NS_PER_DAY;

use crate::rules::Rules;

/// Most rules a bucket's lifecycle configuration may hold.
pub const MAX_RULES: usize = 1000;

/// Where the cold store is, relative to the hot one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdPlace {
    /// No cold store.
    None,
    /// A cold store whose copies get this storage class: the bucket's
    /// rules change the class in place instead of moving the objects.
    SameBucket(String),
    /// A cold store without a storage class: lifecycle rules cannot move
    /// objects to another bucket or prefix.
    Elsewhere,
}

/// The lifecycle configuration (`aws s3api put-bucket-lifecycle-configuration`
/// JSON) for `apps` under `prefix`, and notes on what it cannot express.
pub fn lifecycle(
    apps: &[String],
    rules: &Rules,
    prefix: &str,
    cold: &ColdPlace,
) -> (Value, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = vec![
        "S3 judges age by when an object was written, not by the hour of its logs: backfilled old logs are kept their full term again".to_string(),
        "S3 expires objects asynchronously and one by one: a search may see part of an hour for a day or two".to_string(),
    ];
    let days = |ns: i64| ns / NS_PER_DAY;
    let mut noted_in_place = false;
    let base = if prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    };
    for app in apps {
        let rule = rules.for_app(app);
        let mut entry = json!({
            "ID": format!("sluice-{app}"),
            "Filter": { "Prefix": format!("{base}app={app}/") },
            "Status": "Enabled",
        });
        let mut acts = false;
        if let Some(c) = rule.cold_after_ns {
            match cold {
                ColdPlace::SameBucket(class) => {
                    entry["Transitions"] = json!([{ "Days": days(c), "StorageClass": class }]);
                    acts = true;
                    if !noted_in_place {
                        notes.push(format!("the bucket changes the storage class to {class} in place; it does not move objects to [cold_store]"));
                        noted_in_place = true;
                    }
                }
                ColdPlace::None | ColdPlace::Elsewhere => notes.push(format!(
                    "app {app}: moving to a cold store in another bucket or prefix after {} days cannot be expressed; only the deletion is",
                    days(c)
                )),
            }
        }
        if let Some(d) = rule.delete_after_ns {
            entry["Expiration"] = json!({ "Days": days(d) });
            acts = true;
        }
        if acts {
            out.push(entry);
        }
    }
    if out.len() > MAX_RULES {
        notes.push(format!(
            "{} apps need a rule each, over S3's limit of {MAX_RULES} per bucket",
            out.len()
        ));
    }
    notes.push(
        "apps filed after this was made have no rule: run it again when apps are added".into(),
    );
    (json!({ "Rules": out }), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let config = sluice_core::config::Config::parse(
            r#"
[expiry]
default = { delete_after_days = 30 }
[[expiry.rules]]
app = "shop"
cold_after_days = 7
delete_after_days = 365
[[expiry.rules]]
app = "keep-*"
[cold_store]
url = "s3://hot/logs"
storage_class = "GLACIER_IR"
"#,
        )
        .unwrap();
        Rules::new(&config.expiry).unwrap()
    }

    #[test]
    fn one_rule_per_app_by_prefix() {
        let apps = ["shop".to_string(), "billing".into(), "keep-x".into()];
        let (v, notes) = lifecycle(
            &apps,
            &rules(),
            "logs",
            &ColdPlace::SameBucket("GLACIER_IR".into()),
        );
        let rules = v["Rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "an app kept forever needs no rule: {v}");
        assert_eq!(rules[0]["Filter"]["Prefix"], "logs/app=shop/");
        assert_eq!(rules[0]["Transitions"][0]["Days"], 7);
        assert_eq!(rules[0]["Transitions"][0]["StorageClass"], "GLACIER_IR");
        assert_eq!(rules[0]["Expiration"]["Days"], 365);
        assert_eq!(rules[1]["ID"], "sluice-billing");
        assert_eq!(rules[1]["Expiration"]["Days"], 30);
        assert!(rules[1].get("Transitions").is_none());
        assert!(
            notes
                .iter()
                .any(|n| n.contains("when an object was written"))
        );
    }

    #[test]
    fn a_cold_store_elsewhere_is_noted() {
        let (v, notes) = lifecycle(&["shop".to_string()], &rules(), "", &ColdPlace::Elsewhere);
        assert_eq!(v["Rules"][0]["Filter"]["Prefix"], "app=shop/");
        assert!(v["Rules"][0].get("Transitions").is_none());
        assert!(
            notes.iter().any(|n| n.contains("app shop: moving")),
            "{notes:?}"
        );
    }
}
