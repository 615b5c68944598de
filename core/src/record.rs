//! The record: one log line (or one merged multi-line event) with its metadata.
//!
//! Its JSON form is what blobs, the HTTP API and query results carry:
//!
//! ```json
//! {"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BC","ts":"2026-11-22T10:00:00.123456789Z",
//!  "app":"shop","service":"checkout","host":"web-1","level":"ERROR",
//!  "msg":"payment declined for order 8812","attrs":{"request_id":"req-123"},
//!  "source":"file:/var/log/shop/checkout.log"}
//! ```
//!
//! In memory `ts` is integer nanoseconds since the Unix epoch (UTC), which is
//! also how the wire codec carries it; the JSON form renders it as RFC 3339 UTC
//! with nine fractional digits.
//!
//! Flags the agent sets on damaged input live in `attrs` under the
//! `sluice.` prefix ([`ATTR_TRUNCATED`], [`ATTR_LOSSY`]) so they survive every
//! hop without a schema change.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Set when the line was longer than the configured maximum; the value is the
/// original length in bytes, or `true` where it is not known (a stream frame
/// cut at the limit whose rest was skipped).
pub const ATTR_TRUNCATED: &str = "sluice.truncated";
/// Set (to `"true"`) when the line was not valid UTF-8 and was decoded lossily.
pub const ATTR_LOSSY: &str = "sluice.lossy";

/// Severity of a record, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    /// Finest-grained tracing output.
    Trace,
    /// Debugging output.
    Debug,
    /// Normal operation; the default when a line names no level.
    #[default]
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// A failed operation.
    Error,
    /// The process or a whole subsystem cannot go on.
    Fatal,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// Upper-case name, as in the JSON form (`"ERROR"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// Lower-case name, as in subjects (`logs.shop.error`).
    pub fn as_subject_token(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Position in [`Level::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Recognises the level names and common aliases used by logging
    /// libraries and syslog (`warning`, `err`, `crit`, `panic` …), ignoring
    /// case. Returns `None` for anything else.
    pub fn from_alias(word: &str) -> Option<Level> {
        // The canonical names (what the wire carries) without allocating.
        match word {
            "TRACE" => return Some(Level::Trace),
            "DEBUG" => return Some(Level::Debug),
            "INFO" => return Some(Level::Info),
            "WARN" => return Some(Level::Warn),
            "ERROR" => return Some(Level::Error),
            "FATAL" => return Some(Level::Fatal),
            _ => {}
        }
        let lower = word.trim().to_ascii_lowercase();
        let level = match lower.as_str() {
            "trace" | "trc" | "finest" | "finer" => Level::Trace,
            "debug" | "dbg" | "fine" | "debug1" | "debug2" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" => Level::Info,
            "warn" | "wrn" | "warning" => Level::Warn,
            "error" | "err" | "eror" | "severe" => Level::Error,
            "fatal" | "crit" | "critical" | "alert" | "emerg" | "emergency" | "panic" => {
                Level::Fatal
            }
            _ => return None,
        };
        Some(level)
    }

    /// The level of a syslog severity (RFC 5424 §6.2.1): 0–2 (emergency,
    /// alert, critical) Fatal, 3 Error, 4 Warn, 5–6 (notice,
    /// informational) Info, 7 Debug; `None` above 7.
    pub fn from_syslog_severity(severity: u64) -> Option<Level> {
        Some(match severity {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not a level name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown level {0:?}: expected one of TRACE DEBUG INFO WARN ERROR FATAL")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_alias(s).ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One log record. Field meanings are in the README ("The record"); `ts` is nanoseconds since
/// the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unique, time-sortable ULID, assigned once when the record enters the
    /// agent's spool and kept on every resend.
    pub id: String,
    /// When the event happened, in nanoseconds since the epoch.
    #[serde(with = "rfc3339_nanos")]
    pub ts: i64,
    /// The application (tenant); a valid [`crate::names`] token.
    pub app: String,
    /// The service within the application; a valid token.
    pub service: String,
    /// The host the record was collected on.
    pub host: String,
    /// Severity.
    pub level: Level,
    /// The message text.
    pub msg: String,
    /// Extracted fields and flags.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// Where the record came from, e.g. `file:/var/log/shop/checkout.log`.
    #[serde(default)]
    pub source: String,
}

impl Record {
    /// The JSON form, one line, no trailing newline.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub use crate::time::{format_ts, now_nanos, parse_ts};

/// Serde adapter rendering `i64` nanoseconds as RFC 3339 text.
pub mod rfc3339_nanos {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises nanoseconds as RFC 3339 text.
    pub fn serialize<S: Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_ts(*nanos))
    }

    /// Deserialises RFC 3339 text into nanoseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_ts(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}

/// Generates record ids: ULIDs, monotonic within one generator so ids from one
/// agent sort in the order the agent spooled them.
#[derive(Default)]
pub struct IdGen {
    inner: ulid::Generator,
}

impl std::fmt::Debug for IdGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdGen")
    }
}

impl IdGen {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next id, as its 26-character Crockford base32 text.
    pub fn next_id(&mut self) -> String {
        // The monotonic generator only fails when 2^80 ids were made within
        // one millisecond; a fresh random ULID is still unique then.
        self.inner
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            id: "01JDQ3N7Z5K3W8M2X4R6T9V0BC".into(),
            ts: parse_ts("2026-11-22T10:00:00.123456789Z").unwrap(),
            app: "shop".into(),
            service: "checkout".into(),
            host: "web-1".into(),
            level: Level::Error,
            msg: "payment declined for order 8812".into(),
            attrs: [("request_id".to_string(), "req-123".to_string())].into(),
            source: "file:/var/log/shop/checkout.log".into(),
        }
    }

    #[test]
    fn json_form_matches_the_design() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BC","ts":"2026-11-22T10:00:00.123456789Z","app":"shop","service":"checkout","host":"web-1","level":"ERROR","msg":"payment declined for order 8812","attrs":{"request_id":"req-123"},"source":"file:/var/log/shop/checkout.log"}"#
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn control_characters_are_escaped_in_json() {
        let mut r = sample();
        r.msg = "a\u{0}b\u{1b}[31mc\"\\\n".into();
        let json = r.to_json();
        assert!(!json.bytes().any(|b| b < 0x20));
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.msg, r.msg);
    }

    #[test]
    fn level_aliases() {
        assert_eq!(Level::from_alias("warning"), Some(Level::Warn));
        assert_eq!(Level::from_alias("ERR"), Some(Level::Error));
        assert_eq!(Level::from_alias("crit"), Some(Level::Fatal));
        assert_eq!(Level::from_alias("notice"), Some(Level::Info));
        assert_eq!(Level::from_alias("verbose"), None);
        assert!(Level::Error > Level::Warn);
        assert!("bogus".parse::<Level>().is_err());
    }

    #[test]
    fn syslog_severities() {
        let levels: Vec<_> = (0..=8).map(Level::from_syslog_severity).collect();
        use Level::*;
        let want = [Fatal, Fatal, Fatal, Error, Warn, Info, Info, Debug];
        assert_eq!(levels[..8], want.map(Some));
        assert_eq!(levels[8], None);
        assert_eq!(Level::from_syslog_severity(u64::MAX), None);
    }

    #[test]
    fn ids_are_unique_and_sorted() {
        let mut generator = IdGen::new();
        let ids: Vec<String> = (0..10_000).map(|_| generator.next_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
    }
}
