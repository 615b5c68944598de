//! Silences: notifications matching one are not sent until it ends.
//!
//! Silences come from the configuration (`[[alerter.silences]]`) and from
//! `sluice alerts silence`, which stores them in the KV bucket [`BUCKET`]
//! (key: the silence id) where every alerter instance reads them. A silence
//! matches a notification when each of its set fields (rule, app, labels)
//! equals the notification's; an empty silence matches everything. Expired
//! silences are ignored and removed from listings.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sluice_core::config::SilenceConfig;

/// KV bucket of silences made with `sluice alerts silence`.
pub const BUCKET: &str = "sluice_silences";

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Identifier (`config-<n>` for the file's, a ULID for the command's).
    pub id: String,
    /// The rule silenced (any when unset).
    #[serde(default)]
    pub rule: Option<String>,
    /// The app silenced (any when unset).
    #[serde(default)]
    pub app: Option<String>,
    /// Labels that must all match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// End, nanoseconds since the epoch.
    pub until: i64,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who made it (user or `config`).
    #[serde(default)]
    pub created_by: String,
}

impl Silence {
    /// The file's silence number `n` (0-based). `None` when its `until`
    /// does not parse (the configuration check refuses such files).
    pub fn from_config(c: &SilenceConfig, n: usize) -> Option<Silence> {
        Some(Silence {
            id: format!("config-{}", n + 1),
            rule: c.rule.clone(),
            app: c.app.as_ref().map(|a| a.as_str().to_string()),
            labels: c.labels.clone(),
            until: sluice_core::record::parse_ts(&c.until)?,
            comment: c.comment.clone(),
            created_by: "config".into(),
        })
    }

    /// Whether it is still in force at `now`.
    pub fn active(&self, now: i64) -> bool {
        now < self.until
    }

    /// Whether it silences a notification of `rule` about `app` with
    /// `labels` at `now`.
    pub fn matches(
        &self,
        rule: &str,
        app: &str,
        labels: &BTreeMap<String, String>,
        now: i64,
    ) -> bool {
        self.active(now)
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && self.app.as_deref().is_none_or(|a| a == app)
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|got| got == v))
    }
}

/// Stores a silence.
pub async fn add(bucket: &kv::Store, s: &Silence) -> Result<(), String> {
    let value = serde_json::to_vec(s).map_err(|e| e.to_string())?;
    bucket
        .put(s.id.as_str(), value.into())
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot store the silence: {e}"))
}

/// Ends a silence now; `false` when there is none by that id.
pub async fn expire(bucket: &kv::Store, id: &str) -> Result<bool, String> {
    let Some(entry) = bucket.entry(id).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(false);
    }
    bucket
        .delete(id)
        .await
        .map(|_| true)
        .map_err(|e| format!("cannot remove the silence: {e}"))
}

/// The silences in force at `now`: the configuration's, then the stored
/// ones (when there is a bucket).
pub async fn in_force(
    configured: &[SilenceConfig],
    bucket: Option<&kv::Store>,
    now: i64,
) -> Result<Vec<Silence>, String> {
    let mut all: Vec<Silence> = configured
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Silence::from_config(c, i))
        .filter(|s| s.active(now))
        .collect();
    if let Some(bucket) = bucket {
        all.extend(list(bucket, now).await?);
    }
    Ok(all)
}

/// The stored silences still in force at `now`, oldest end first.
/// Entries that do not parse are skipped with a warning.
pub async fn list(bucket: &kv::Store, now: i64) -> Result<Vec<Silence>, String> {
    let mut keys = bucket.keys().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        let Some(value) = bucket.get(&key).await.map_err(|e| e.to_string())? else {
            continue;
        };
        match serde_json::from_slice::<Silence>(&value) {
            Ok(s) if s.active(now) => out.push(s),
            Ok(_) => {}
            Err(err) => tracing::warn!(key, error = %err, "a stored silence does not parse"),
        }
    }
    out.sort_by(|a, b| (a.until, &a.id).cmp(&(b.until, &b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching_needs_every_set_field() {
        let s = Silence {
            id: "x".into(),
            rule: Some("r1".into()),
            app: None,
            labels: labels(&[("service", "checkout")]),
            until: 100,
            comment: String::new(),
            created_by: String::new(),
        };
        let l = labels(&[("service", "checkout"), ("host", "a")]);
        assert!(s.matches("r1", "shop", &l, 50));
        assert!(!s.matches("r2", "shop", &l, 50), "other rule");
        assert!(
            !s.matches("r1", "shop", &labels(&[("service", "cart")]), 50),
            "other label value"
        );
        assert!(!s.matches("r1", "shop", &labels(&[]), 50), "label missing");
        assert!(!s.matches("r1", "shop", &l, 100), "expired");
        let all = Silence {
            rule: None,
            labels: BTreeMap::new(),
            ..s
        };
        assert!(all.matches("anything", "any", &BTreeMap::new(), 0));
    }
}
