//! Turns the text of one log line into its fields: time, level, message and
//! extracted attributes.
//!
//! Two shapes of line are understood:
//!
//! * **JSON lines** — the line (after leading whitespace) starts with `{` and
//!   parses as a JSON object. The level, time and message come from the
//!   conventional keys used by structured loggers (`level`/`severity`/`lvl`/
//!   `log.level`, `ts`/`time`/`timestamp`/`@timestamp`/`t`, `msg`/`message`/
//!   `log`/`text`); every other field becomes an attribute, nested objects
//!   flattened to dotted keys. A key only counts as "used" when its value is
//!   recognisable, so an odd level such as `"level":35` stays in the
//!   attributes rather than being thrown away. A line that starts with `{` but
//!   is not a JSON object is treated as plain text.
//! * **Plain lines** — the message is the whole line, unchanged. A leading
//!   timestamp is recognised in the common formats (RFC 3339 / ISO 8601 with
//!   `T` or a space, `YYYY/MM/DD`, BSD syslog `Nov 22 10:00:00`, ctime as in
//!   Apache's error log, Common Log Format `[22/Nov/2026:10:00:00 +0000]`,
//!   glog `E1122 10:00:00.123456`), and the level is the first level word found
//!   as a whole token in the first [`LEVEL_SCAN_BYTES`] bytes.
//!
//! Plain lines are the bulk of what the agent reads, so that path does no
//! regex matching and allocates nothing except the message `String`: the
//! timestamp and level detectors are hand-written byte scanners. Nothing in
//! this module panics on any input; values out of range simply yield no
//! timestamp.

use serde_json::{Map, Value};
use sluice_core::record::{Level, parse_ts};
use sluice_core::time;

/// How many leading bytes of a plain line are searched for a level word.
/// Level markers sit near the start of a line in every common format; looking
/// further would mostly find words in the message itself.
pub const LEVEL_SCAN_BYTES: usize = 128;

/// At most this many attributes are extracted from one JSON line; further
/// fields are ignored so a pathological line cannot blow up a record.
pub const MAX_ATTRS: usize = 64;

/// Nested JSON objects are flattened to dotted keys up to this depth; deeper
/// objects are kept as compact JSON text under the key reached so far.
pub const MAX_FLATTEN_DEPTH: usize = 8;

/// Keys consulted, in order, for a JSON line's level.
const LEVEL_KEYS: [&str; 4] = ["level", "severity", "lvl", "log.level"];
/// Keys consulted, in order, for a JSON line's timestamp.
const TS_KEYS: [&str; 5] = ["ts", "time", "timestamp", "@timestamp", "t"];
/// Keys consulted, in order, for a JSON line's message.
const MSG_KEYS: [&str; 4] = ["msg", "message", "log", "text"];

/// The fields extracted from one log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// When the event happened, in nanoseconds since the epoch (UTC), if the
    /// line carried a recognisable timestamp.
    pub ts: Option<i64>,
    /// The detected severity, [`Level::Info`] when none was found.
    pub level: Level,
    /// The message: the whole line for plain lines, the message field for
    /// JSON lines (or the whole line when they have none).
    pub msg: String,
    /// Fields extracted from JSON lines, in the order they were found; empty
    /// for plain lines.
    pub attrs: Vec<(String, String)>,
}

/// Parses one line of log text (without its line terminator).
///
/// `now_nanos` is the current time in nanoseconds since the epoch; it supplies
/// the year for formats that omit it (syslog, glog).
pub fn parse_line(line: &str, now_nanos: i64) -> Parsed {
    let body = line.trim_start();
    if body.starts_with('{')
        && let Some(parsed) = parse_json(line, body, now_nanos)
    {
        return parsed;
    }
    parse_plain(line, now_nanos)
}

// ---------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------

fn parse_json(line: &str, body: &str, now_nanos: i64) -> Option<Parsed> {
    // Anything but an object (or invalid JSON) falls back to plain parsing.
    let mut map: Map<String, Value> = serde_json::from_str(body).ok()?;

    let mut level = None;
    for key in LEVEL_KEYS {
        if let Some(found) = map.get(key).and_then(json_level) {
            map.remove(key);
            level = Some(found);
            break;
        }
    }
    if level.is_none() {
        // ECS also allows the nested spelling {"log":{"level":"info"}}.
        if let Some(Value::Object(log)) = map.get_mut("log")
            && let Some(found) = log.get("level").and_then(json_level)
        {
            log.remove("level");
            if log.is_empty() {
                map.remove("log");
            }
            level = Some(found);
        }
    }

    let mut ts = None;
    for key in TS_KEYS {
        if let Some(found) = map.get(key).and_then(|v| json_ts(v, now_nanos)) {
            map.remove(key);
            ts = Some(found);
            break;
        }
    }

    let mut msg = None;
    for key in MSG_KEYS {
        // Only a string is a message; e.g. an ECS `log` object is metadata.
        if matches!(map.get(key), Some(Value::String(_)))
            && let Some(Value::String(text)) = map.remove(key)
        {
            msg = Some(text);
            break;
        }
    }

    let mut attrs = Vec::with_capacity(map.len().min(MAX_ATTRS));
    for (key, value) in map {
        if attrs.len() >= MAX_ATTRS {
            break;
        }
        push_attr(&mut attrs, key, value, 0);
    }

    Some(Parsed {
        ts,
        level: level.unwrap_or_default(),
        msg: msg.unwrap_or_else(|| line.to_string()),
        attrs,
    })
}

/// A JSON level value: a name or alias, or a bunyan/pino number.
fn json_level(value: &Value) -> Option<Level> {
    match value {
        Value::String(name) => Level::from_alias(name),
        Value::Number(n) => match n.as_u64()? {
            10 => Some(Level::Trace),
            20 => Some(Level::Debug),
            30 => Some(Level::Info),
            40 => Some(Level::Warn),
            50 => Some(Level::Error),
            60 => Some(Level::Fatal),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON time value: RFC 3339 (or any text form plain lines accept) or an
/// epoch number whose unit is guessed from its magnitude
/// ([`time::EpochUnit`]).
fn json_ts(value: &Value, now_nanos: i64) -> Option<i64> {
    match value {
        Value::String(text) => parse_ts(text).or_else(|| {
            // Loggers also write "2026-11-22 10:00:00.123" and the like; accept
            // those only when the whole string is the timestamp.
            let (nanos, used) = leading_ts(text.as_bytes(), now_nanos)?;
            (used == text.len()).then_some(nanos)
        }),
        Value::Number(n) => match n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)) {
            Some(int) => time::epoch_to_ns(int),
            None => time::epoch_f64_to_ns(n.as_f64()?),
        },
        _ => None,
    }
}

/// Adds one JSON field to `attrs`, flattening nested objects.
fn push_attr(attrs: &mut Vec<(String, String)>, key: String, value: Value, depth: usize) {
    match value {
        Value::String(text) => attrs.push((key, text)),
        Value::Object(map) if depth < MAX_FLATTEN_DEPTH && !map.is_empty() => {
            for (sub, value) in map {
                if attrs.len() >= MAX_ATTRS {
                    return;
                }
                push_attr(attrs, format!("{key}.{sub}"), value, depth + 1);
            }
        }
        // Display on a Value is compact JSON; it cannot fail.
        other => attrs.push((key, other.to_string())),
    }
}

// ---------------------------------------------------------------------------
// Plain lines
// ---------------------------------------------------------------------------

fn parse_plain(line: &str, now_nanos: i64) -> Parsed {
    let bytes = line.as_bytes();
    let (ts, level) = match glog_level(bytes) {
        Some(level) => (glog_ts(bytes, now_nanos), level),
        None => (
            leading_ts(bytes, now_nanos).map(|(nanos, _)| nanos),
            scan_level(bytes).unwrap_or_default(),
        ),
    };
    Parsed {
        ts,
        level,
        msg: line.to_string(),
        attrs: Vec::new(),
    }
}

// --- level detection -------------------------------------------------------

/// The glog header `Lmmdd hh:` (L one of I W E F) at the very start of a line.
/// Single letters are far too common to look for anywhere else.
fn glog_level(b: &[u8]) -> Option<Level> {
    let level = match b.first()? {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    };
    let shape_ok = b.len() >= 9
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
        && b[6].is_ascii_digit()
        && b[7].is_ascii_digit()
        && b[8] == b':';
    shape_ok.then_some(level)
}

/// Bytes that make up a word. `_` counts so identifiers such as
/// `ERR_CONNECTION_REFUSED` or `on_error` are not read as level words.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The first level word among the tokens starting in the first
/// [`LEVEL_SCAN_BYTES`] bytes.
fn scan_level(b: &[u8]) -> Option<Level> {
    let limit = b.len().min(LEVEL_SCAN_BYTES);
    let mut i = 0;
    while i < limit {
        if !is_word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        // A token may run past the scan limit; read it whole (but no further
        // than the longest level word plus one) so a cut cannot turn
        // "ERRORS" into "ERR".
        while i < b.len() && i - start <= MAX_LEVEL_WORD && is_word(b[i]) {
            i += 1;
        }
        if i - start <= MAX_LEVEL_WORD {
            if let Some(level) = classify_token(b, start, i) {
                return Some(level);
            }
        } else {
            while i < limit && is_word(b[i]) {
                i += 1;
            }
        }
    }
    None
}

/// Length of the longest level word ("CRITICAL", "WARNING").
const MAX_LEVEL_WORD: usize = 8;

/// How a token is capitalised.
#[derive(PartialEq, Eq)]
enum Case {
    Upper,
    Lower,
    Capitalised,
    Mixed,
}

fn classify_token(b: &[u8], start: usize, end: usize) -> Option<Level> {
    let token = b.get(start..end)?;
    if token.len() < 3 {
        return None;
    }
    let mut lower = [0u8; MAX_LEVEL_WORD];
    for (dst, src) in lower.iter_mut().zip(token) {
        *dst = src.to_ascii_lowercase();
    }
    // `bare` marks the words accepted in lower or title case even without
    // surrounding punctuation: an "error" or "warning" near the start of a
    // line is nearly always the line's severity, whereas "info", "trace" or
    // "debug" in prose ("trace id", "user info") usually are not.
    let (level, bare) = match lower.get(..token.len())? {
        b"error" => (Level::Error, true),
        b"err" => (Level::Error, false),
        b"severe" => (Level::Error, false),
        b"warn" | b"warning" => (Level::Warn, true),
        b"fatal" => (Level::Fatal, true),
        b"critical" | b"crit" | b"panic" | b"alert" | b"emerg" => (Level::Fatal, false),
        b"info" | b"notice" => (Level::Info, false),
        b"debug" => (Level::Debug, false),
        b"trace" => (Level::Trace, false),
        _ => return None,
    };
    match case_of(token) {
        Case::Upper => Some(level),
        Case::Lower | Case::Capitalised if bare || in_level_context(b, start, end) => Some(level),
        _ => None,
    }
}

fn case_of(token: &[u8]) -> Case {
    let rest_lower = token.iter().skip(1).all(u8::is_ascii_lowercase);
    match token.first() {
        Some(first) if first.is_ascii_lowercase() && rest_lower => Case::Lower,
        Some(first) if first.is_ascii_uppercase() && rest_lower => Case::Capitalised,
        _ if token.iter().all(u8::is_ascii_uppercase) => Case::Upper,
        _ => Case::Mixed,
    }
}

/// Whether the punctuation around a token marks it as a level: `[warn]`,
/// `<info>`, `(debug)`, `[core:error]`, `level=info`, `"level":"info"`,
/// `info: starting`.
fn in_level_context(b: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| b.get(i)).copied();
    let after = b.get(end).copied();
    match before {
        Some(b'[' | b'<' | b'(' | b'=') => return true,
        Some(b'"' | b'\'') => {
            let quoted_value = start
                .checked_sub(2)
                .and_then(|i| b.get(i))
                .is_some_and(|&c| c == b'=' || c == b':');
            if quoted_value {
                return true;
            }
        }
        _ => {}
    }
    matches!(after, Some(b']' | b'>' | b')' | b':'))
}

// --- timestamp detection ---------------------------------------------------
//
// The scanners are `sluice_core::time`'s, shared with the syslog parser;
// what is here is which of them a plain line tries, and where. Times
// without a zone are read as UTC.

const WEEKDAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

/// Recognises a timestamp at the start of a line (optionally after `[`), or
/// a Common Log Format one in brackets among the first few tokens. Returns
/// the time and the index just past the timestamp text.
fn leading_ts(b: &[u8], now_nanos: i64) -> Option<(i64, usize)> {
    let bracketed = b.first() == Some(&b'[');
    let start = usize::from(bracketed);
    let first = *b.get(start)?;
    let found = if first.is_ascii_digit() {
        iso_ts(b, start).or_else(|| clf_ts(b, start))
    } else if first.is_ascii_alphabetic() {
        syslog_ts(b, start, now_nanos).or_else(|| ctime_ts(b, start))
    } else {
        None
    };
    if found.is_some() || bracketed {
        return found;
    }
    // Access logs put the time after the client address and user:
    // `1.2.3.4 - - [22/Nov/2026:10:00:00 +0000] "GET / ..."`.
    let head = b.get(..b.len().min(64))?;
    let open = memchr::memchr(b'[', head)?;
    clf_ts(b, open + 1)
}

/// `YYYY-MM-DD[T ]hh:mm:ss[.f][zone]` and `YYYY/MM/DD hh:mm:ss[.f][zone]`.
fn iso_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let (local, offset, end) = time::scan_rfc3339(b, start)?;
    Some((time::utc_nanos(local, offset.unwrap_or(0))?, end))
}

/// Common Log Format: `dd/Mon/yyyy:hh:mm:ss[ zone]`.
fn clf_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let day = time::scan_digits(b, start, 2)?;
    (b.get(start + 2) == Some(&b'/')).then_some(())?;
    let month = time::month_abbrev(b.get(start + 3..)?)?;
    (b.get(start + 6) == Some(&b'/')).then_some(())?;
    let year = time::scan_digits(b, start + 7, 4)?;
    (b.get(start + 11) == Some(&b':')).then_some(())?;
    let (clock, mut end) = time::scan_time(b, start + 12)?;
    let mut offset = 0;
    if b.get(end) == Some(&b' ') && matches!(b.get(end + 1), Some(b'+' | b'-')) {
        let (zone, after) = time::scan_zone(b, end + 1)?;
        offset = zone.unwrap_or(0);
        end = after;
    }
    let local = time::civil(i32::try_from(year).ok()?, month, day, clock)?;
    Some((time::utc_nanos(local, offset)?, end))
}

/// BSD syslog `Nov 22 10:00:00` (or `Nov 22 2026 10:00:00`); a missing
/// year is inferred from `now_nanos` ([`time::infer_year`]).
fn syslog_ts(b: &[u8], start: usize, now_nanos: i64) -> Option<(i64, usize)> {
    let (stamp, end) = time::scan_bsd(b, start)?;
    Some((stamp.utc(now_nanos)?, end))
}

/// ctime `Sat Nov 22 10:00:00[.f] 2026`, as in Apache's error log.
fn ctime_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let weekday = b.get(start..start + 3)?;
    WEEKDAYS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(weekday))
        .then_some(())?;
    (b.get(start + 3) == Some(&b' ')).then_some(())?;
    let (stamp, end) = time::scan_bsd(b, start + 4)?;
    (stamp.year.is_none() && b.get(end) == Some(&b' ')).then_some(())?;
    let year = time::scan_digits(b, end + 1, 4)?;
    let local = time::civil(
        i32::try_from(year).ok()?,
        stamp.month,
        stamp.day,
        stamp.time,
    )?;
    Some((time::utc_nanos(local, 0)?, end + 5))
}

/// glog `Lmmdd hh:mm:ss.uuuuuu`; the year is inferred from `now_nanos`
/// ([`time::infer_year`]).
fn glog_ts(b: &[u8], now_nanos: i64) -> Option<i64> {
    let month = time::scan_digits(b, 1, 2)?;
    let day = time::scan_digits(b, 3, 2)?;
    (b.get(5) == Some(&b' ')).then_some(())?;
    let (clock, _) = time::scan_time(b, 6)?;
    time::infer_year(now_nanos, |year| {
        time::utc_nanos(time::civil(year, month, day, clock)?, 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference "now" for the tests: 2026-11-22T12:00:00Z.
    fn now() -> i64 {
        parse_ts("2026-11-22T12:00:00Z").unwrap()
    }

    fn ts(text: &str) -> Option<i64> {
        Some(parse_ts(text).unwrap())
    }

    fn attr<'a>(p: &'a Parsed, key: &str) -> Option<&'a str> {
        p.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn plain_lines_table() {
        let long_prefix = "x".repeat(130);
        let beyond_scan = format!("{long_prefix} ERROR late");
        let cases: Vec<(&str, Option<i64>, Level)> = vec![
            // RFC 3339 / ISO 8601.
            (
                "2026-11-22T10:00:00.123Z INFO started",
                ts("2026-11-22T10:00:00.123Z"),
                Level::Info,
            ),
            (
                "2026-11-22T10:00:00+01:00 ERROR boom",
                ts("2026-11-22T09:00:00Z"),
                Level::Error,
            ),
            (
                "2026-11-22T10:00:00-05:30 x",
                ts("2026-11-22T15:30:00Z"),
                Level::Info,
            ),
            (
                "2026-11-22T10:00:00+0100 x",
                ts("2026-11-22T09:00:00Z"),
                Level::Info,
            ),
            (
                "2026-11-22 10:00:00,123 WARN disk low",
                ts("2026-11-22T10:00:00.123Z"),
                Level::Warn,
            ),
            (
                "2026-11-22 10:00:00.123456 DEBUG x=1",
                ts("2026-11-22T10:00:00.123456Z"),
                Level::Debug,
            ),
            (
                "2026-11-22T10:00:00.123456789Z TRACE",
                ts("2026-11-22T10:00:00.123456789Z"),
                Level::Trace,
            ),
            (
                "2026-11-22T10:00:00.123456789123Z x",
                ts("2026-11-22T10:00:00.123456789Z"),
                Level::Info,
            ),
            (
                "[2026-11-22 10:00:00] FATAL oom",
                ts("2026-11-22T10:00:00Z"),
                Level::Fatal,
            ),
            // nginx error log.
            (
                "2026/11/22 10:00:00 [error] 1234#0: *1 open() failed",
                ts("2026-11-22T10:00:00Z"),
                Level::Error,
            ),
            // BSD syslog, year from now; a December line in November is last year's.
            (
                "Nov 22 10:00:00 web-1 sshd[42]: error: PAM auth failed",
                ts("2026-11-22T10:00:00Z"),
                Level::Error,
            ),
            (
                "Nov  2 10:00:00 web-1 cron[1]: job ran",
                ts("2026-11-02T10:00:00Z"),
                Level::Info,
            ),
            (
                "Nov 23 11:00:00 web-1 app: slightly ahead",
                ts("2026-11-23T11:00:00Z"),
                Level::Info,
            ),
            (
                "Dec 31 23:59:59 web-1 app: last year",
                ts("2025-12-31T23:59:59Z"),
                Level::Info,
            ),
            // Common Log Format, at the start and after the client fields.
            (
                "[22/Nov/2026:10:00:00 +0000] GET /",
                ts("2026-11-22T10:00:00Z"),
                Level::Info,
            ),
            (
                r#"1.2.3.4 - - [22/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 12"#,
                ts("2026-11-22T09:00:00Z"),
                Level::Info,
            ),
            // Apache error log (ctime with a fraction).
            (
                "[Sat Nov 22 10:00:00.123456 2026] [core:error] [pid 1] gone",
                ts("2026-11-22T10:00:00.123456Z"),
                Level::Error,
            ),
            // glog.
            (
                "E1122 10:00:00.123456  1234 main.cc:12] failed",
                ts("2026-11-22T10:00:00.123456Z"),
                Level::Error,
            ),
            (
                "W1122 10:00:00.000001  1234 main.cc:12] careful",
                ts("2026-11-22T10:00:00.000001Z"),
                Level::Warn,
            ),
            (
                "I1122 10:00:00.5 1 a.cc:1] fine",
                ts("2026-11-22T10:00:00.5Z"),
                Level::Info,
            ),
            (
                "F1122 10:00:00.5 1 a.cc:1] dead",
                ts("2026-11-22T10:00:00.5Z"),
                Level::Fatal,
            ),
            // Level words and their forms.
            ("level=error msg=\"db down\"", None, Level::Error),
            ("time=x level=\"warn\" msg=y", None, Level::Warn),
            ("[INFO] ready", None, Level::Info),
            ("[debug] cache miss", None, Level::Debug),
            ("<warn> slow", None, Level::Warn),
            ("TRACE entering fn", None, Level::Trace),
            ("CRITICAL disk gone", None, Level::Fatal),
            ("CRIT disk gone", None, Level::Fatal),
            ("ERR connection reset", None, Level::Error),
            ("PANIC: runtime error", None, Level::Fatal),
            ("SEVERE: servlet failed", None, Level::Error),
            ("WARNING: deprecated", None, Level::Warn),
            ("Error: connection refused", None, Level::Error),
            ("this is an error in prose", None, Level::Error),
            ("info: server listening", None, Level::Info),
            ("ünïcode ✓ ERROR here", None, Level::Error),
            // False positives that must not match.
            ("the errors were ignored", None, Level::Info),
            ("a terror attack movie", None, Level::Info),
            ("information only", None, Level::Info),
            ("ERR_CONNECTION_REFUSED seen by on_error", None, Level::Info),
            (
                "user info updated; trace id abc; debug mode",
                None,
                Level::Info,
            ),
            ("user info updated then ERROR", None, Level::Error),
            ("ErRoR mixed case is not a level", None, Level::Info),
            ("Excellent E1122 work", None, Level::Info),
            ("E12345 not glog", None, Level::Info),
            (beyond_scan.as_str(), None, Level::Info),
            // Malformed or out-of-range timestamps.
            ("2026-13-40T10:00:00Z INFO", None, Level::Info),
            ("2026-11-22T25:00:00Z x", None, Level::Info),
            ("2026-11-22T10:00:00+25:00 x", None, Level::Info),
            ("2026-11-22 x", None, Level::Info),
            ("9999-12-31T23:59:59Z far future", None, Level::Info),
            ("Foo 22 10:00:00 no month", None, Level::Info),
            (
                "[31/Feb/2026:10:00:00 +0000] no such day",
                None,
                Level::Info,
            ),
            ("", None, Level::Info),
        ];
        for (line, want_ts, want_level) in cases {
            let parsed = parse_line(line, now());
            assert_eq!(parsed.ts, want_ts, "ts of {line:?}");
            assert_eq!(parsed.level, want_level, "level of {line:?}");
            assert_eq!(parsed.msg, line, "msg of {line:?}");
            assert!(parsed.attrs.is_empty(), "attrs of {line:?}");
        }
    }

    #[test]
    fn syslog_year_rolls_back_in_january() {
        let now = parse_ts("2027-01-01T00:05:00Z").unwrap();
        let p = parse_line("Dec 31 23:59:59 host app: x", now);
        assert_eq!(p.ts, ts("2026-12-31T23:59:59Z"));
        // 29 February in a non-leap year falls back to the last one that fits.
        let now = parse_ts("2025-03-01T00:00:00Z").unwrap();
        let p = parse_line("Feb 29 10:00:00 host app: x", now);
        assert_eq!(p.ts, ts("2024-02-29T10:00:00Z"));
    }

    #[test]
    fn json_line_with_nested_fields() {
        let line = r#"{"level":"error","ts":"2026-11-22T10:00:00Z","msg":"boom","user":"bob","http":{"status":200,"path":"/x"},"tags":["a",1],"ok":true,"none":null}"#;
        let p = parse_line(line, now());
        assert_eq!(p.level, Level::Error);
        assert_eq!(p.ts, ts("2026-11-22T10:00:00Z"));
        assert_eq!(p.msg, "boom");
        let mut attrs = p.attrs.clone();
        attrs.sort();
        let want: Vec<(String, String)> = [
            ("http.path", "/x"),
            ("http.status", "200"),
            ("none", "null"),
            ("ok", "true"),
            ("tags", r#"["a",1]"#),
            ("user", "bob"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(attrs, want);
    }

    #[test]
    fn json_pino_numbers() {
        let p = parse_line(
            r#"{"level":50,"time":1795341600000,"msg":"x","pid":7}"#,
            now(),
        );
        assert_eq!(p.level, Level::Error);
        assert_eq!(p.ts, ts("2026-11-22T10:00:00Z"));
        assert_eq!(p.attrs, vec![("pid".to_string(), "7".to_string())]);
        for (n, level) in [
            (10, Level::Trace),
            (20, Level::Debug),
            (30, Level::Info),
            (40, Level::Warn),
            (60, Level::Fatal),
        ] {
            let p = parse_line(&format!(r#"{{"level":{n},"msg":"x"}}"#), now());
            assert_eq!(p.level, level);
        }
    }

    #[test]
    fn json_unknown_level_is_kept() {
        let p = parse_line(r#"{"level":35,"msg":"x"}"#, now());
        assert_eq!(p.level, Level::Info);
        assert_eq!(attr(&p, "level"), Some("35"));
        let p = parse_line(r#"{"level":"verbose","msg":"x"}"#, now());
        assert_eq!(p.level, Level::Info);
        assert_eq!(attr(&p, "level"), Some("verbose"));
        // An unrecognised first key does not hide a later recognised one.
        let p = parse_line(
            r#"{"level":"verbose","severity":"WARNING","msg":"x"}"#,
            now(),
        );
        assert_eq!(p.level, Level::Warn);
        assert_eq!(attr(&p, "level"), Some("verbose"));
        assert_eq!(attr(&p, "severity"), None);
    }

    #[test]
    fn json_epoch_units() {
        let base = parse_ts("2026-11-22T10:00:00Z").unwrap();
        let secs = base / time::NS_PER_SEC;
        let cases = [
            (format!("{secs}"), base),
            (format!("{secs}.5"), base + 500_000_000),
            (format!("{secs}.123456"), base + 123_456_000),
            (format!("{}", secs * 1000 + 7), base + 7_000_000),
            (format!("{}", secs * 1_000_000 + 7), base + 7_000),
            (format!("{}", base + 7), base + 7),
        ];
        for (number, want) in cases {
            let p = parse_line(&format!(r#"{{"ts":{number},"msg":"x"}}"#), now());
            assert_eq!(p.ts, Some(want), "{number}");
            assert!(p.attrs.is_empty());
        }
        // Out of range: kept as an attribute, no timestamp.
        let p = parse_line(r#"{"ts":1e300,"msg":"x"}"#, now());
        assert_eq!(p.ts, None);
        assert_eq!(attr(&p, "ts"), Some("1e+300"));
        let p = parse_line(r#"{"ts":18446744073709551615,"msg":"x"}"#, now());
        assert_eq!(p.ts, None);
    }

    #[test]
    fn json_key_alternatives() {
        let p = parse_line(
            r#"{"@timestamp":"2026-11-22T10:00:00.5+01:00","log.level":"warn","message":"ecs"}"#,
            now(),
        );
        assert_eq!(
            (p.level, p.ts, p.msg.as_str()),
            (Level::Warn, ts("2026-11-22T09:00:00.5Z"), "ecs")
        );
        assert!(p.attrs.is_empty());

        let p = parse_line(
            r#"{"log":{"level":"debug","logger":"a"},"message":"m"}"#,
            now(),
        );
        assert_eq!(p.level, Level::Debug);
        assert_eq!(p.msg, "m");
        assert_eq!(p.attrs, vec![("log.logger".to_string(), "a".to_string())]);

        // Docker's json-file driver.
        let p = parse_line(
            r#"{"log":"hello\n","stream":"stdout","time":"2026-11-22T10:00:00.1Z"}"#,
            now(),
        );
        assert_eq!(p.msg, "hello\n");
        assert_eq!(p.ts, ts("2026-11-22T10:00:00.1Z"));

        let p = parse_line(
            r#"{"lvl":"crit","t":"2026-11-22 10:00:00,250","text":"t"}"#,
            now(),
        );
        assert_eq!(
            (p.level, p.ts),
            (Level::Fatal, ts("2026-11-22T10:00:00.25Z"))
        );
        assert_eq!(p.msg, "t");
    }

    #[test]
    fn json_without_message_keeps_the_line() {
        let line = r#"  {"event":"login","msg":5}"#;
        let p = parse_line(line, now());
        assert_eq!(p.msg, line);
        assert_eq!(attr(&p, "msg"), Some("5"));
        assert_eq!(attr(&p, "event"), Some("login"));
    }

    #[test]
    fn non_objects_and_invalid_json_are_plain() {
        for line in [
            r#"{not json ERROR"#,
            r#"{"a":1} trailing"#,
            "[1,2,3]",
            "{",
            r#""str""#,
        ] {
            let p = parse_line(line, now());
            assert_eq!(p.msg, line);
            assert!(p.attrs.is_empty());
        }
        assert_eq!(parse_line("{not json ERROR", now()).level, Level::Error);
    }

    #[test]
    fn json_attrs_are_capped_and_depth_limited() {
        let fields: Vec<String> = (0..100).map(|i| format!(r#""k{i:03}":{i}"#)).collect();
        let p = parse_line(&format!("{{{}}}", fields.join(",")), now());
        assert_eq!(p.attrs.len(), MAX_ATTRS);

        let mut deep = String::from("1");
        for _ in 0..12 {
            deep = format!(r#"{{"a":{deep}}}"#);
        }
        let p = parse_line(&format!(r#"{{"d":{deep},"e":{{}}}}"#), now());
        let key = format!("d{}", ".a".repeat(MAX_FLATTEN_DEPTH));
        assert_eq!(p.attrs.len(), 2);
        assert!(attr(&p, &key).is_some_and(|v| v.starts_with(r#"{"a":"#)));
        assert_eq!(attr(&p, "e"), Some("{}"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(line in any::<String>(), now in any::<i64>()) {
            let p = parse_line(&line, now);
            prop_assert!(p.attrs.len() <= MAX_ATTRS);
        }

        #[test]
        fn never_panics_on_timestamp_like_text(
            line in "\\[?[0-9A-Za-z:/ .,TZ+\\-\\[\\]]{0,40}",
            now in any::<i64>(),
        ) {
            let p = parse_line(&line, now);
            prop_assert_eq!(p.msg, line);
        }

        #[test]
        fn never_panics_on_json_numbers(level in any::<f64>(), ts in any::<f64>(), n in any::<i64>()) {
            let line = format!(r#"{{"level":{level},"ts":{ts},"t":{n},"msg":"x"}}"#);
            let _ = parse_line(&line, 0);
            let line = format!(r#"{{"level":{n},"time":{n},"msg":"x"}}"#);
            let _ = parse_line(&line, 0);
        }
    }
}
