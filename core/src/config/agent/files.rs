//! `[[agent.files]]`: the log files the agent tails.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::MAX_LINE_BYTES;
use crate::config::values::between;
use crate::config::{Name, Pattern};

/// Where files present at the agent's first start are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From their first byte.
    #[default]
    Beginning,
    /// From their current end: only lines written from now on.
    End,
}

/// `[[agent.files]]`: a set of log files with the same app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to tail (`/var/log/shop/*.log`, `**` allowed);
    /// at least one.
    #[serde(deserialize_with = "include")]
    pub include: Vec<String>,
    /// Glob patterns excluded, matched against the full path or, when the
    /// pattern has no `/`, the file name (`*.gz`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The app of every record from these files.
    pub app: Name,
    /// The service; default: the file's stem (`checkout` for
    /// `checkout.log`), normalised into a valid name.
    #[serde(default)]
    pub service: Option<Name>,
    /// Fixed attributes added to every record.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// Files present at the very first start: read from the beginning or
    /// the end. Files that appear later are always read from the beginning.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are truncated to this many bytes and flagged; from 1
    /// to [`MAX_LINE_BYTES`].
    #[serde(
        default = "default_max_line_bytes",
        deserialize_with = "max_line_bytes"
    )]
    pub max_line_bytes: usize,
    /// Multi-line events (stack traces).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
}

fn include<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let patterns = Vec::<String>::deserialize(d)?;
    if patterns.is_empty() {
        return Err(serde::de::Error::custom("lists no pattern"));
    }
    Ok(patterns)
}
fn max_line_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    between(d, 1, MAX_LINE_BYTES)
}
fn default_max_line_bytes() -> usize {
    256 * 1024
}

/// `[agent.files.multiline]`: merge continuation lines into one record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a new record; other lines continue
    /// the previous one.
    pub start_pattern: Pattern,
    /// A pending record is emitted after this long without a new line.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_multiline_timeout_ms() -> u64 {
    1_000
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn invalid_app_names_line() {
        let text = "[[agent.files]]\ninclude = [\"/x\"]\napp = \"Shop!\"\n";
        let err = Config::parse(text).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("Shop!"), "{err}");
    }
}
