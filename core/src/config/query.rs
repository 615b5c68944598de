//! `[query]`: the search API (`sluice query`), and who may read what.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::Name;
use super::locate::{Issue, Step};
use super::values::positive;

/// `[query]`: the search API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// This instance's name. Default: the host name.
    #[serde(default)]
    pub id: Option<String>,
    /// Where the API (`/api/v1`) and `/metrics`, `/health`, `/ready` are
    /// served.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The in-memory window of the newest records, in bytes of their JSON.
    #[serde(default = "default_recent_bytes", deserialize_with = "positive")]
    pub recent_bytes: usize,
    /// A query running longer answers with what it found, flagged partial.
    #[serde(default = "default_timeout_secs", deserialize_with = "positive")]
    pub timeout_secs: u64,
    /// Sidecars kept parsed in memory.
    #[serde(default = "default_sidecar_cache", deserialize_with = "positive")]
    pub sidecar_cache_entries: usize,
    /// How long a listing of an app's days and hours is reused, in seconds
    /// (0: list on every query). Blobs filed meanwhile hold records the
    /// recent window still has; a blob gone meanwhile (compacted) makes the
    /// search list again.
    #[serde(default = "default_listing_cache_secs")]
    pub listing_cache_secs: u64,
    /// Decompressed blob bodies kept in memory for searches that read few
    /// blobs, in bytes (0: none).
    #[serde(default = "default_body_cache_bytes")]
    pub body_cache_bytes: usize,
    /// Without `[[query.tokens]]`, allow listening on a non-loopback
    /// address (anyone who can connect reads every app).
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Who may read which apps. None: every caller reads every app.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// `[[query.tokens]]`: one caller's secret and the apps it may read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Names the caller in logs; a valid name.
    pub name: Name,
    /// The bearer token. Falls back to `SLUICE_QUERY_TOKEN_<NAME>` (upper
    /// case, `-` as `_`).
    #[serde(default)]
    pub token: Option<String>,
    /// The apps this token reads: names, or `"*"` for all.
    #[serde(deserialize_with = "apps")]
    pub apps: Vec<String>,
}

impl TokenConfig {
    /// Whether this token may read `app`.
    pub fn allows(&self, app: &str) -> bool {
        self.apps.iter().any(|a| a == "*" || a == app)
    }

    /// The environment variable the token falls back to.
    pub fn env_var(&self) -> String {
        format!(
            "SLUICE_QUERY_TOKEN_{}",
            self.name.as_str().to_ascii_uppercase().replace('-', "_")
        )
    }
}

fn apps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let apps = Vec::<String>::deserialize(d)?;
    if apps.is_empty() {
        return Err(serde::de::Error::custom(
            "lists no app (name the apps, or \"*\" for all)",
        ));
    }
    for app in &apps {
        if app != "*" {
            crate::names::validate(app)
                .map_err(|e| serde::de::Error::custom(format!("{app:?}: {e}")))?;
        }
    }
    Ok(apps)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9885))
}
fn default_recent_bytes() -> usize {
    256 << 20
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_sidecar_cache() -> usize {
    100_000
}
fn default_listing_cache_secs() -> u64 {
    30
}
fn default_body_cache_bytes() -> usize {
    96 << 20
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            id: None,
            listen: default_listen(),
            recent_bytes: default_recent_bytes(),
            timeout_secs: default_timeout_secs(),
            sidecar_cache_entries: default_sidecar_cache(),
            listing_cache_secs: default_listing_cache_secs(),
            body_cache_bytes: default_body_cache_bytes(),
            allow_anonymous: false,
            tokens: Vec::new(),
        }
    }
}

impl QueryConfig {
    pub(super) fn apply_env(&mut self) {
        for token in &mut self.tokens {
            if token.token.is_none() {
                token.token = std::env::var(token.env_var())
                    .ok()
                    .filter(|t| !t.is_empty());
            }
        }
    }

    pub(super) fn check(&self) -> Result<(), Issue> {
        if self.tokens.is_empty() && !self.allow_anonymous && !self.listen.ip().is_loopback() {
            return Err(Issue::at(
                &[Step::Key("query"), Step::Key("listen")],
                format!(
                    "{} is not a loopback address: add [[query.tokens]], or set allow_anonymous = true to let anyone who can connect read every app",
                    self.listen
                ),
            ));
        }
        for (i, token) in self.tokens.iter().enumerate() {
            if token.token.as_deref().is_none_or(str::is_empty) {
                return Err(Issue::at(
                    &[Step::Key("query"), Step::Key("tokens"), Step::Index(i)],
                    format!(
                        "token {:?} has no secret: set token, or the environment variable {}",
                        token.name.as_str(),
                        token.env_var()
                    ),
                ));
            }
            if self.tokens[..i].iter().any(|t| t.name == token.name) {
                return Err(Issue::at(
                    &[
                        Step::Key("query"),
                        Step::Key("tokens"),
                        Step::Index(i),
                        Step::Key("name"),
                    ],
                    format!("a second token named {:?}", token.name.as_str()),
                ));
            }
            if self.tokens[..i].iter().any(|t| t.token == token.token) {
                return Err(Issue::at(
                    &[
                        Step::Key("query"),
                        Step::Key("tokens"),
                        Step::Index(i),
                        Step::Key("token"),
                    ],
                    "the same secret as an earlier token",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn defaults_and_tokens() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.query.listen.to_string(), "127.0.0.1:9885");
        assert_eq!(c.query.recent_bytes, 256 << 20);
        assert_eq!(c.query.timeout_secs, 30);
        let c = Config::parse(
            "[query]\nlisten = \"0.0.0.0:9885\"\n[[query.tokens]]\nname = \"shop-team\"\ntoken = \"s3cret\"\napps = [\"shop\", \"billing\"]\n",
        )
        .unwrap();
        assert!(c.query.tokens[0].allows("shop"));
        assert!(!c.query.tokens[0].allows("other"));
        assert_eq!(c.query.tokens[0].env_var(), "SLUICE_QUERY_TOKEN_SHOP_TEAM");
    }

    #[test]
    fn query_errors() {
        for (text, words) in [
            (
                "[query]\nlisten = \"0.0.0.0:9885\"\n",
                "not a loopback address",
            ),
            (
                "[[query.tokens]]\nname = \"a\"\napps = [\"shop\"]\n",
                "SLUICE_QUERY_TOKEN_A",
            ),
            (
                "[[query.tokens]]\nname = \"a\"\ntoken = \"x\"\napps = []\n",
                "lists no app",
            ),
            (
                "[[query.tokens]]\nname = \"a\"\ntoken = \"x\"\napps = [\"Sh op\"]\n",
                "\"Sh op\"",
            ),
            (
                "[[query.tokens]]\nname = \"a\"\ntoken = \"x\"\napps = [\"*\"]\n[[query.tokens]]\nname = \"a\"\ntoken = \"y\"\napps = [\"*\"]\n",
                "a second token named",
            ),
            (
                "[[query.tokens]]\nname = \"a\"\ntoken = \"x\"\napps = [\"*\"]\n[[query.tokens]]\nname = \"b\"\ntoken = \"x\"\napps = [\"*\"]\n",
                "the same secret",
            ),
            ("[query]\ntimeout_secs = 0\n", "timeout_secs"),
            ("[query]\nlisten_on = 1\n", "listen_on"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(words), "{text:?}: {err}");
        }
    }
}
