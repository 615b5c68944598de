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

use std::fmt::{self, Write as _};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};
use sluice_core::record::{Level, parse_ts};

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

const NANOS_PER_SEC: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

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
/// epoch number whose unit is guessed from its magnitude.
fn json_ts(value: &Value, now_nanos: i64) -> Option<i64> {
    match value {
        Value::String(text) => parse_ts(text).or_else(|| {
            // Loggers also write "2026-11-22 10:00:00.123" and the like; accept
            // those only when the whole string is the timestamp.
            let (nanos, used) = leading_ts(text.as_bytes(), now_nanos)?;
            (used == text.len()).then_some(nanos)
        }),
        Value::Number(n) => {
            if let Some(int) = n.as_i64() {
                int.checked_mul(10i64.pow(epoch_unit_digits(int.unsigned_abs() as f64)))
            } else {
                // Either a float or an integer beyond i64, which no unit can
                // bring into nanosecond range; the float path rejects it.
                epoch_float(n.as_f64()?)
            }
        }
        _ => None,
    }
}

/// Decimal digits per unit for an epoch number of the given magnitude: 9 for
/// seconds, 6 for milliseconds, 3 for microseconds, 0 for nanoseconds (a unit
/// is `10^digits` nanoseconds). Present-day times in each unit are orders of
/// magnitude apart, so the thresholds are unambiguous.
fn epoch_unit_digits(magnitude: f64) -> u32 {
    if magnitude < 1e11 {
        9
    } else if magnitude < 1e14 {
        6
    } else if magnitude < 1e17 {
        3
    } else {
        0
    }
}

fn epoch_float(value: f64) -> Option<i64> {
    if !value.is_finite() || value.abs() >= 9.0e18 {
        return None;
    }
    let digits = epoch_unit_digits(value.abs());
    // Scaling the f64 would lose precision (1795341600.123456 s is only
    // representable to about 0.2 µs), so read the decimal digits of its
    // shortest round-trip text instead: that is what the logger wrote.
    let mut text = DecimalBuf::default();
    if write!(text, "{}", value.abs()).is_err() {
        // Only magnitudes far below one unit need more room than the buffer.
        return Some((value * 10f64.powi(digits as i32)).round() as i64);
    }
    let bytes = text.as_bytes();
    let point = bytes.iter().position(|&c| c == b'.').unwrap_or(bytes.len());
    let (whole_digits, frac_digits) = bytes.split_at(point);
    let mut whole: i64 = 0;
    for &d in whole_digits {
        whole = whole
            .checked_mul(10)?
            .checked_add(i64::from(d.checked_sub(b'0')?))?;
    }
    // Digits past the nanosecond are dropped, as for textual fractions.
    let mut frac: i64 = 0;
    for i in 0..digits as usize {
        let d = frac_digits
            .get(i + 1)
            .filter(|d| d.is_ascii_digit())
            .map_or(0, |d| d - b'0');
        frac = frac * 10 + i64::from(d);
    }
    let nanos = whole.checked_mul(10i64.pow(digits))?.checked_add(frac)?;
    Some(if value < 0.0 { -nanos } else { nanos })
}

/// A fixed-size buffer for formatting one float without allocating.
struct DecimalBuf {
    bytes: [u8; 48],
    len: usize,
}

impl Default for DecimalBuf {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl DecimalBuf {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for DecimalBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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

/// A byte cursor for the timestamp scanners.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8], i: usize) -> Self {
        Self { b, i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Consumes exactly `n` digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let slice = self.b.get(self.i..self.i + n)?;
        let mut value = 0u32;
        for &d in slice {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        self.i += n;
        Some(value)
    }

    /// Consumes one or two digits.
    fn one_or_two_digits(&mut self) -> Option<u32> {
        let first = self.digits(1)?;
        match self.digits(1) {
            Some(second) => Some(first * 10 + second),
            None => Some(first),
        }
    }

    /// Consumes an optional `.fff` or `,fff` fraction (at least one digit) and
    /// returns it in nanoseconds. Digits beyond the ninth are skipped.
    fn fraction(&mut self) -> u32 {
        let has_fraction = matches!(self.peek(), Some(b'.' | b','))
            && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit);
        if !has_fraction {
            return 0;
        }
        self.i += 1;
        let mut value = 0u32;
        let mut count = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            if count < 9 {
                value = value * 10 + u32::from(d - b'0');
                count += 1;
            }
            self.i += 1;
        }
        value * 10u32.pow(9 - count)
    }

    /// Consumes `hh:mm:ss` plus an optional fraction.
    fn time(&mut self) -> Option<Time> {
        let hour = self.digits(2)?;
        self.eat(b':').then_some(())?;
        let minute = self.digits(2)?;
        self.eat(b':').then_some(())?;
        let second = self.digits(2)?;
        let nanos = self.fraction();
        Some(Time {
            hour,
            minute,
            second,
            nanos,
        })
    }

    /// Consumes a three-letter English month abbreviation, any case.
    fn month_name(&mut self) -> Option<u32> {
        let name = self.b.get(self.i..self.i + 3)?;
        let mut lower = [0u8; 3];
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        let month = MONTHS.iter().position(|m| *m == lower)?;
        self.i += 3;
        u32::try_from(month + 1).ok()
    }

    /// Consumes a three-letter English weekday abbreviation, any case.
    fn weekday_name(&mut self) -> Option<()> {
        let name = self.b.get(self.i..self.i + 3)?;
        let mut lower = [0u8; 3];
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        WEEKDAYS.contains(&lower).then_some(())?;
        self.i += 3;
        Some(())
    }

    /// Consumes an optional zone: `Z`, `+hh:mm`, `+hhmm` or `+hh` (or `-`).
    /// Returns the offset east of UTC in seconds; `None` only for a malformed
    /// or out-of-range zone. No zone at all means UTC.
    fn zone(&mut self) -> Option<i64> {
        match self.peek() {
            Some(b'Z' | b'z') => {
                self.i += 1;
                Some(0)
            }
            Some(sign @ (b'+' | b'-'))
                if self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) =>
            {
                self.i += 1;
                let hours = self.digits(2)?;
                let colon = self.eat(b':');
                let minutes = match self.digits(2) {
                    Some(m) => m,
                    None if colon => return None,
                    None => 0,
                };
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let secs = i64::from(hours * 3600 + minutes * 60);
                Some(if sign == b'-' { -secs } else { secs })
            }
            _ => Some(0),
        }
    }
}

const MONTHS: [[u8; 3]; 12] = [
    *b"jan", *b"feb", *b"mar", *b"apr", *b"may", *b"jun", *b"jul", *b"aug", *b"sep", *b"oct",
    *b"nov", *b"dec",
];
const WEEKDAYS: [[u8; 3]; 7] = [
    *b"mon", *b"tue", *b"wed", *b"thu", *b"fri", *b"sat", *b"sun",
];

/// A time of day as written in a line.
#[derive(Clone, Copy)]
struct Time {
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

/// Nanoseconds since the epoch for a local date and time at `offset_secs`
/// east of UTC; `None` when the date or time is invalid or out of range.
fn to_nanos(year: i32, month: u32, day: u32, time: Time, offset_secs: i64) -> Option<i64> {
    let local = NaiveDate::from_ymd_opt(year, month, day)?
        .and_hms_nano_opt(time.hour, time.minute, time.second, time.nanos)?
        .and_utc()
        .timestamp_nanos_opt()?;
    local.checked_sub(offset_secs.checked_mul(NANOS_PER_SEC)?)
}

/// Resolves a date written without a year (syslog, glog) to the most recent
/// such date: this year, unless that would be more than a day in the future
/// (a December line read in January), in which case last year.
fn without_year(month: u32, day: u32, time: Time, now_nanos: i64) -> Option<i64> {
    let year = DateTime::<Utc>::from_timestamp_nanos(now_nanos).year();
    match to_nanos(year, month, day, time, 0) {
        Some(nanos) if nanos <= now_nanos.saturating_add(NANOS_PER_DAY) => Some(nanos),
        _ => to_nanos(year.checked_sub(1)?, month, day, time, 0),
    }
}

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
    let open = head.iter().position(|&c| c == b'[')?;
    clf_ts(b, open + 1)
}

/// `YYYY-MM-DD[T ]hh:mm:ss[.f][zone]` and `YYYY/MM/DD hh:mm:ss[.f][zone]`.
fn iso_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let mut c = Cursor::new(b, start);
    let year = c.digits(4)?;
    let sep = c.peek().filter(|s| *s == b'-' || *s == b'/')?;
    c.i += 1;
    let month = c.digits(2)?;
    c.eat(sep).then_some(())?;
    let day = c.digits(2)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let time = c.time()?;
    let offset = c.zone()?;
    let nanos = to_nanos(i32::try_from(year).ok()?, month, day, time, offset)?;
    Some((nanos, c.i))
}

/// Common Log Format: `dd/Mon/yyyy:hh:mm:ss[ zone]`.
fn clf_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let mut c = Cursor::new(b, start);
    let day = c.digits(2)?;
    c.eat(b'/').then_some(())?;
    let month = c.month_name()?;
    c.eat(b'/').then_some(())?;
    let year = c.digits(4)?;
    c.eat(b':').then_some(())?;
    let time = c.time()?;
    let before_zone = c.i;
    let offset = if c.eat(b' ') && matches!(c.peek(), Some(b'+' | b'-')) {
        c.zone()?
    } else {
        c.i = before_zone;
        0
    };
    let nanos = to_nanos(i32::try_from(year).ok()?, month, day, time, offset)?;
    Some((nanos, c.i))
}

/// `Mon dd hh:mm:ss` (day space-padded or not), as BSD syslog writes it.
fn month_day_time(c: &mut Cursor<'_>) -> Option<(u32, u32, Time)> {
    let month = c.month_name()?;
    c.eat(b' ').then_some(())?;
    while c.eat(b' ') {}
    let day = c.one_or_two_digits()?;
    c.eat(b' ').then_some(())?;
    let time = c.time()?;
    Some((month, day, time))
}

/// BSD syslog `Nov 22 10:00:00`; the year is inferred from `now_nanos`.
fn syslog_ts(b: &[u8], start: usize, now_nanos: i64) -> Option<(i64, usize)> {
    let mut c = Cursor::new(b, start);
    let (month, day, time) = month_day_time(&mut c)?;
    let nanos = without_year(month, day, time, now_nanos)?;
    Some((nanos, c.i))
}

/// ctime `Sat Nov 22 10:00:00[.f] 2026`, as in Apache's error log.
fn ctime_ts(b: &[u8], start: usize) -> Option<(i64, usize)> {
    let mut c = Cursor::new(b, start);
    c.weekday_name()?;
    c.eat(b' ').then_some(())?;
    let (month, day, time) = month_day_time(&mut c)?;
    c.eat(b' ').then_some(())?;
    let year = c.digits(4)?;
    let nanos = to_nanos(i32::try_from(year).ok()?, month, day, time, 0)?;
    Some((nanos, c.i))
}

/// glog `Lmmdd hh:mm:ss.uuuuuu`; the year is inferred from `now_nanos`.
fn glog_ts(b: &[u8], now_nanos: i64) -> Option<i64> {
    let mut c = Cursor::new(b, 1);
    let month = c.digits(2)?;
    let day = c.digits(2)?;
    c.eat(b' ').then_some(())?;
    let time = c.time()?;
    without_year(month, day, time, now_nanos)
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
        let secs = base / NANOS_PER_SEC;
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
