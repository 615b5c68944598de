//! One syslog message (one frame) → the fields of a record. [`parse`] never
//! fails: whatever cannot be understood ends up in `msg`, flagged.
//!
//! - **PRI** `<N>`, 1–3 digits, 0..=191: facility `N / 8` becomes
//!   `attrs["facility"]` (`kern` … `local7`); severity `N % 8` becomes the
//!   level (0–2 Fatal, 3 Error, 4 Warn, 5–6 Info, 7 Debug). Without a valid
//!   PRI the whole frame is the message, level Info, time = receive time, and
//!   `attrs["syslog.malformed"]` says why.
//! - **RFC 5424** when `1 ` follows the PRI: `TIMESTAMP HOSTNAME APP-NAME
//!   PROCID MSGID SD [MSG]`, `-` (or an empty field) is nil. The timestamp is
//!   RFC 3339 with an offset (more than 9 fractional digits are truncated);
//!   nil → receive time, unparsable → receive time and `"bad timestamp"`.
//!   PROCID / MSGID → `attrs["procid"]` / `attrs["msgid"]`. Every SD parameter
//!   becomes `attrs[name]` (escapes `\"` `\\` `\]` undone), or
//!   `attrs["<sd-id>.<name>"]` when `name` is already taken or reserved
//!   (`sluice.*`, `syslog.malformed`); if that is taken too, the first value
//!   wins. A leading BOM is removed from MSG. A header cut short
//!   (`"header cut short"`), an SD element that never ends
//!   (`"unterminated structured data"`) or a broken SD element / missing SD
//!   (`"bad structured data"`) is flagged: header fields ended by their
//!   space and complete SD elements are kept, the rest of the bytes become
//!   `msg`.
//! - **RFC 3164** otherwise, parsed liberally: an optional Cisco sequence
//!   number (`52: `) and clock mark (`*`, `.`), then a timestamp
//!   `Mmm dd hh:mm:ss[.frac]`, `Mmm dd yyyy hh:mm:ss[.frac]` or RFC 3339,
//!   optionally followed by `:` and a zone abbreviation such as `UTC:`
//!   (skipped, not interpreted). Times without an offset are read in
//!   [`ParseOptions::zone`]; a missing year is inferred from the receive
//!   time by the one rule of `sluice_core::time::infer_year` (the latest
//!   year that puts the time at most a day after it). No timestamp →
//!   receive time, and parsing goes on at the same place. Then the HOSTNAME:
//!   the next space-terminated token unless it ends with `:` or contains `[`
//!   (`-` is nil). Then the TAG: up to 48 bytes before `:` or `[pid]:`
//!   (`attrs["procid"]`), followed by `:` and one optional space (an empty
//!   tag, as in `host : msg`, is consumed but gives no app name); without
//!   that pattern there is no app name and MSG is everything after the
//!   hostname.
//! - Invalid UTF-8 is decoded lossily and flagged with
//!   [`ATTR_LOSSY`]` = "true"`. Trailing NULs and one trailing `\n` / `\r\n`
//!   are removed from the frame first.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::str::FromStr;

use chrono::{FixedOffset, Local, NaiveDateTime, Offset, TimeZone};
use sluice_core::Level;
use sluice_core::record::ATTR_LOSSY;
use sluice_core::time;

/// Attribute holding the facility name (`kern`, `user`, … `local7`).
pub const ATTR_FACILITY: &str = "facility";
/// Attribute holding the RFC 5424 PROCID or the RFC 3164 `TAG[pid]`.
pub const ATTR_PROCID: &str = "procid";
/// Attribute holding the RFC 5424 MSGID.
pub const ATTR_MSGID: &str = "msgid";
/// Attribute set to a short reason when the message did not follow the
/// syslog format: `"no PRI"`, `"bad PRI"`, `"PRI out of range"`,
/// `"header cut short"`, `"bad timestamp"`, `"unterminated structured data"`
/// or `"bad structured data"`; several reasons are joined with `"; "`.
pub const ATTR_MALFORMED: &str = "syslog.malformed";

/// Longest RFC 3164 TAG, in bytes.
const MAX_TAG_LEN: usize = 48;

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Zone abbreviations a Cisco device may print after its timestamp
/// (`Nov 22 10:00:00.123 UTC: …`); skipped when followed by `:`.
const CISCO_ZONES: [&str; 20] = [
    "UTC", "GMT", "CET", "CEST", "EET", "EEST", "WET", "WEST", "EST", "EDT", "CST", "CDT", "MST",
    "MDT", "PST", "PDT", "JST", "IST", "AEST", "AEDT",
];

/// Time zone assumed for RFC 3164 timestamps that carry no offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Coordinated Universal Time.
    Utc,
    /// The agent host's local time zone (daylight saving time included).
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

impl FromStr for Zone {
    type Err = String;

    /// Accepts `local`, `utc` / `UTC` / `Z`, or an offset `±HH:MM`, `±HHMM`
    /// or `±HH` (e.g. `+02:00`, `-0530`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") {
            return Ok(Zone::Utc);
        }
        time::scan_offset(t.as_bytes(), 0)
            .filter(|&(_, used)| used == t.len())
            .and_then(|(secs, _)| FixedOffset::east_opt(secs))
            .map(Zone::Fixed)
            .ok_or_else(|| {
                format!(
                    "invalid time zone {s:?}: expected \"local\", \"utc\" or an offset such as \"+02:00\" or \"-0530\""
                )
            })
    }
}

/// Settings for [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Zone for RFC 3164 timestamps without an offset.
    pub zone: Zone,
    /// When the message was received, in nanoseconds since the epoch; used
    /// when the message has no usable timestamp and to pick the year of
    /// year-less timestamps.
    pub now_ns: i64,
}

/// The fields extracted from one syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// When the event happened, in nanoseconds since the epoch (UTC).
    pub ts: i64,
    /// Level derived from the syslog severity (Info without a valid PRI).
    pub level: Level,
    /// HOSTNAME; `None` when absent or nil (`-`).
    pub host: Option<String>,
    /// RFC 5424 APP-NAME or RFC 3164 TAG, as sent; `None` when absent or nil.
    pub app_name: Option<String>,
    /// `facility`, `procid`, `msgid`, structured-data parameters and flags.
    pub attrs: BTreeMap<String, String>,
    /// The message text.
    pub msg: String,
}

/// Parses one syslog message in RFC 5424 or RFC 3164 form (recognised per
/// message). Never fails and never panics; see the module docs for the rules.
pub fn parse(frame: &[u8], opts: &ParseOptions) -> Parsed {
    let frame = trim_frame(frame);
    match std::str::from_utf8(frame) {
        Ok(text) => parse_text(text, opts, false),
        Err(_) => parse_text(&String::from_utf8_lossy(frame), opts, true),
    }
}

/// Removes trailing NULs and one trailing `\n` or `\r\n`.
fn trim_frame(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = b {
        b = rest;
    }
    if let [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n'] = b {
        b = rest;
    }
    while let [rest @ .., 0] = b {
        b = rest;
    }
    b
}

fn parse_text(s: &str, opts: &ParseOptions, lossy: bool) -> Parsed {
    let mut out = Parsed {
        ts: opts.now_ns,
        level: Level::Info,
        host: None,
        app_name: None,
        attrs: BTreeMap::new(),
        msg: String::new(),
    };
    match parse_pri(s.as_bytes()) {
        Ok((pri, pos)) => {
            out.level = Level::from_syslog_severity(u64::from(pri % 8)).unwrap_or(Level::Debug);
            let facility = FACILITIES.get(usize::from(pri / 8)).copied().unwrap_or("");
            out.attrs
                .insert(ATTR_FACILITY.to_string(), facility.to_string());
            if s.as_bytes().get(pos..pos + 2) == Some(b"1 ") {
                parse_5424(s, pos + 2, &mut out);
            } else {
                parse_3164(s, pos, opts, &mut out);
            }
        }
        Err(reason) => {
            out.msg = s.to_string();
            flag(&mut out.attrs, reason);
        }
    }
    if lossy {
        out.attrs.insert(ATTR_LOSSY.to_string(), "true".to_string());
    }
    out
}

/// Adds a malformation reason.
fn flag(attrs: &mut BTreeMap<String, String>, reason: &str) {
    match attrs.get_mut(ATTR_MALFORMED) {
        Some(v) => {
            v.push_str("; ");
            v.push_str(reason);
        }
        None => {
            attrs.insert(ATTR_MALFORMED.to_string(), reason.to_string());
        }
    }
}

/// `<PRI>` → (value, position after `>`).
fn parse_pri(b: &[u8]) -> Result<(u8, usize), &'static str> {
    if b.first() != Some(&b'<') {
        return Err("no PRI");
    }
    let digits = b
        .iter()
        .skip(1)
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 3 || b.get(1 + digits) != Some(&b'>') {
        return Err("bad PRI");
    }
    let value = time::scan_digits(b, 1, digits).ok_or("bad PRI")?;
    u8::try_from(value)
        .ok()
        .filter(|&v| v <= 191)
        .map(|v| (v, digits + 2))
        .ok_or("PRI out of range")
}

/// `s[a..b]`, or `""` when that is not a valid range (it always is when
/// `a` and `b` sit next to ASCII bytes, as everywhere below).
fn sub(s: &str, a: usize, b: usize) -> &str {
    s.get(a..b).unwrap_or_default()
}

/// Position of the first `needle` at or after `from`.
fn find(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    memchr::memchr(needle, b.get(from..)?).map(|i| from + i)
}

fn skip_spaces(b: &[u8], mut p: usize) -> usize {
    while b.get(p) == Some(&b' ') {
        p += 1;
    }
    p
}

fn nil(field: &str) -> Option<String> {
    (!field.is_empty() && field != "-").then(|| field.to_string())
}

// ---------------------------------------------------------------------------
// RFC 5424

fn parse_5424(s: &str, mut p: usize, out: &mut Parsed) {
    let b = s.as_bytes();
    let mut fields = [""; 5];
    let mut n = 0;
    while n < fields.len() {
        let Some(q) = find(b, p, b' ') else { break };
        fields[n] = sub(s, p, q);
        n += 1;
        p = q + 1;
    }
    let [ts, host, app, procid, msgid] = fields;
    if n > 0 && !ts.is_empty() && ts != "-" {
        match parse_rfc3339(ts.as_bytes()) {
            Some((naive, Some(offset))) => match time::utc_nanos(naive, offset) {
                Some(ns) => out.ts = ns,
                None => flag(&mut out.attrs, "bad timestamp"),
            },
            _ => flag(&mut out.attrs, "bad timestamp"),
        }
    }
    out.host = nil(host);
    out.app_name = nil(app);
    if let Some(v) = nil(procid) {
        out.attrs.insert(ATTR_PROCID.to_string(), v);
    }
    if let Some(v) = nil(msgid) {
        out.attrs.insert(ATTR_MSGID.to_string(), v);
    }
    if n < fields.len() || p >= b.len() {
        flag(&mut out.attrs, "header cut short");
        out.msg = sub(s, p, s.len()).to_string();
        return;
    }

    // STRUCTURED-DATA
    match b.get(p) {
        Some(b'-') if matches!(b.get(p + 1), None | Some(b' ')) => p += 1,
        Some(b'[') => {
            while b.get(p) == Some(&b'[') {
                match sd_element(s, p, None) {
                    Ok(end) => {
                        // Validated above, so this pass cannot fail.
                        let _ = sd_element(s, p, Some(&mut out.attrs));
                        p = end;
                    }
                    Err(reason) => {
                        flag(&mut out.attrs, reason);
                        out.msg = sub(s, p, s.len()).to_string();
                        return;
                    }
                }
            }
        }
        _ => {}
    }
    match b.get(p) {
        None => {}
        Some(b' ') => out.msg = strip_bom(sub(s, p + 1, s.len())).to_string(),
        Some(_) => {
            flag(&mut out.attrs, "bad structured data");
            out.msg = strip_bom(sub(s, p, s.len())).to_string();
        }
    }
}

fn strip_bom(msg: &str) -> &str {
    msg.strip_prefix('\u{feff}').unwrap_or(msg)
}

/// Parses one `[SD-ID name="value" …]` starting at `p` (a `[`), returning
/// the position after `]`. With `sink`, the parameters are added to it.
fn sd_element(
    s: &str,
    mut p: usize,
    mut sink: Option<&mut BTreeMap<String, String>>,
) -> Result<usize, &'static str> {
    const UNTERMINATED: &str = "unterminated structured data";
    const BAD: &str = "bad structured data";
    let b = s.as_bytes();
    p += 1;
    let id_start = p;
    while let Some(&c) = b.get(p) {
        if matches!(c, b' ' | b']' | b'=' | b'"') {
            break;
        }
        p += 1;
    }
    let id = sub(s, id_start, p);
    if p >= b.len() {
        return Err(UNTERMINATED);
    }
    if id.is_empty() {
        return Err(BAD);
    }
    loop {
        match b.get(p) {
            None => return Err(UNTERMINATED),
            Some(b']') => return Ok(p + 1),
            Some(b' ') => p = skip_spaces(b, p),
            Some(_) => return Err(BAD),
        }
        if b.get(p) == Some(&b']') {
            return Ok(p + 1);
        }
        let name_start = p;
        while let Some(&c) = b.get(p) {
            if matches!(c, b' ' | b']' | b'=' | b'"') {
                break;
            }
            p += 1;
        }
        let name = sub(s, name_start, p);
        match (b.get(p), b.get(p + 1)) {
            (None, _) | (Some(b'='), None) => return Err(UNTERMINATED),
            (Some(b'='), Some(b'"')) if !name.is_empty() => p += 2,
            _ => return Err(BAD),
        }
        let value_start = p;
        let mut escaped = false;
        loop {
            match b.get(p) {
                None => return Err(UNTERMINATED),
                Some(b'\\') => {
                    escaped = true;
                    p += 2;
                }
                Some(b'"') => break,
                Some(_) => p += 1,
            }
        }
        if let Some(attrs) = sink.as_deref_mut() {
            let raw = sub(s, value_start, p);
            let value = if escaped {
                unescape(raw)
            } else {
                raw.to_string()
            };
            insert_param(attrs, id, name, value);
        }
        p += 1;
    }
}

/// Undoes `\"`, `\\` and `\]`; any other backslash stays.
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut seg = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(&next @ (b'"' | b'\\' | b']')) = b.get(i + 1)
        {
            out.push_str(sub(raw, seg, i));
            out.push(char::from(next));
            i += 2;
            seg = i;
        } else {
            i += 1;
        }
    }
    out.push_str(sub(raw, seg, b.len()));
    out
}

fn reserved(key: &str) -> bool {
    key.starts_with("sluice.") || key == ATTR_MALFORMED
}

fn insert_param(attrs: &mut BTreeMap<String, String>, id: &str, name: &str, value: String) {
    if !reserved(name) {
        match attrs.entry(name.to_string()) {
            Entry::Vacant(slot) => {
                slot.insert(value);
                return;
            }
            Entry::Occupied(_) => {}
        }
    }
    let qualified = format!("{id}.{name}");
    if !reserved(&qualified) {
        attrs.entry(qualified).or_insert(value);
    }
}

// ---------------------------------------------------------------------------
// Timestamps

/// A whole RFC 3339 token (`sluice_core::time::scan_rfc3339`): the local
/// date-time and its offset, `None` when none is written. RFC 5424 allows
/// only `-` between the date's parts and `.` before a fraction, so the
/// scanner's other spellings (`/`, `,`) are refused here.
fn parse_rfc3339(t: &[u8]) -> Option<(NaiveDateTime, Option<i32>)> {
    if t.get(4) != Some(&b'-') || t.get(19) == Some(&b',') {
        return None;
    }
    let (local, offset, end) = time::scan_rfc3339(t, 0)?;
    (end == t.len()).then_some((local, offset))
}

/// Nanoseconds since the epoch of a local time in `zone`. In a daylight
/// saving gap the offset in force just before is used; in an overlap the
/// earlier instant.
fn zoned_nanos(zone: Zone, naive: NaiveDateTime) -> Option<i64> {
    let offset = match zone {
        Zone::Utc => 0,
        Zone::Fixed(o) => o.local_minus_utc(),
        Zone::Local => match Local.from_local_datetime(&naive).earliest() {
            Some(dt) => dt.offset().fix().local_minus_utc(),
            None => Local
                .offset_from_utc_datetime(&naive)
                .fix()
                .local_minus_utc(),
        },
    };
    time::utc_nanos(naive, offset)
}

/// `Mmm dd hh:mm:ss[.frac]` or `Mmm dd yyyy hh:mm:ss[.frac]` at `p`
/// (`sluice_core::time::scan_bsd`), ended by a space, a `:` or the end →
/// (nanoseconds, position after it). The time is read in the zone of
/// `opts`; a missing year is inferred from the receive time
/// (`sluice_core::time::infer_year`).
fn bsd_timestamp(b: &[u8], p: usize, opts: &ParseOptions) -> Option<(i64, usize)> {
    let (stamp, end) = time::scan_bsd(b, p)?;
    if !matches!(b.get(end), None | Some(b' ' | b':')) {
        return None;
    }
    let ts = stamp.resolve(opts.now_ns, |local| zoned_nanos(opts.zone, local))?;
    Some((ts, end))
}

/// Any RFC 3164 timestamp form at `p`, with an optional Cisco clock mark
/// (`*` not synchronised, `.` synchronisation lost) in front.
fn any_timestamp(b: &[u8], p: usize, opts: &ParseOptions) -> Option<(i64, usize)> {
    let p = if matches!(b.get(p), Some(b'*' | b'.')) {
        p + 1
    } else {
        p
    };
    match b.get(p)? {
        c if c.is_ascii_alphabetic() => bsd_timestamp(b, p, opts),
        c if c.is_ascii_digit() => {
            let end = find(b, p, b' ').unwrap_or(b.len());
            // A colon right after the time (`…+01:00:`) cannot be told from
            // the offset's own colons, so only strip one when parsing fails.
            let token = b.get(p..end)?;
            let ((naive, offset), end) = parse_rfc3339(token)
                .map(|v| (v, end))
                .or_else(|| Some((parse_rfc3339(token.strip_suffix(b":")?)?, end - 1)))?;
            let ts = match offset {
                Some(o) => time::utc_nanos(naive, o)?,
                None => zoned_nanos(opts.zone, naive)?,
            };
            Some((ts, end))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// RFC 3164

fn parse_3164(s: &str, mut p: usize, opts: &ParseOptions, out: &mut Parsed) {
    let b = s.as_bytes();
    let mut stamp = any_timestamp(b, p, opts);
    if stamp.is_none() {
        // Cisco sequence number: `<189>52: *Mar  1 …`.
        let digits = b
            .iter()
            .skip(p)
            .take(11)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if (1..=10).contains(&digits) && b.get(p + digits..p + digits + 2) == Some(b": ") {
            stamp = any_timestamp(b, p + digits + 2, opts);
        }
    }
    if let Some((ts, end)) = stamp {
        out.ts = ts;
        p = end;
        if b.get(p) == Some(&b':') {
            p += 1;
        }
        let q = skip_spaces(b, p);
        let rest = b.get(q..).unwrap_or_default();
        let zone_len = memchr::memchr(b':', rest.get(..6).unwrap_or(rest));
        if let Some(colon) = zone_len.map(|i| q + i)
            && CISCO_ZONES.contains(&sub(s, q, colon))
            && matches!(b.get(colon + 1), None | Some(b' '))
        {
            p = colon + 1;
        }
    }
    p = skip_spaces(b, p);

    // HOSTNAME
    if let Some(q) = find(b, p, b' ') {
        let token = sub(s, p, q);
        if !token.is_empty() && !token.ends_with(':') && !token.contains('[') {
            out.host = nil(token);
            p = skip_spaces(b, q);
        }
    }

    // TAG
    let window = b.get(p..).unwrap_or_default();
    let head = window.get(..MAX_TAG_LEN + 1).unwrap_or(window);
    let delim = memchr::memchr3(b'[', b':', b' ', head).map(|i| p + i);
    let mut tag_end = None;
    match delim.map(|t| (t, b.get(t))) {
        Some((t, Some(b':'))) => tag_end = Some((t, t + 1)),
        Some((t, Some(b'['))) => {
            if let Some(close) = find(b, t, b']')
                && b.get(close + 1) == Some(&b':')
                && !b.get(t..close).unwrap_or_default().contains(&b' ')
            {
                if close > t + 1 {
                    out.attrs
                        .insert(ATTR_PROCID.to_string(), sub(s, t + 1, close).to_string());
                }
                tag_end = Some((t, close + 2));
            }
        }
        _ => {}
    }
    if let Some((t, after)) = tag_end {
        out.app_name = (t > p).then(|| sub(s, p, t).to_string());
        p = after;
        if b.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    out.msg = sub(s, p, s.len()).to_string();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: &str = "2026-11-22T10:00:05Z";

    fn ns(rfc3339: &str) -> i64 {
        sluice_core::record::parse_ts(rfc3339).expect("valid test timestamp")
    }

    fn opts() -> ParseOptions {
        ParseOptions {
            zone: Zone::Utc,
            now_ns: ns(NOW),
        }
    }

    fn p(text: &str) -> Parsed {
        parse(text.as_bytes(), &opts())
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn logger_rfc5424() {
        // `logger --rfc5424 -t myapp -p user.notice hello` (util-linux).
        let r = p(concat!(
            "<13>1 2026-11-22T10:00:00.123456+01:00 myhost myapp 4242 - ",
            "[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"123\"] hello\n"
        ));
        assert_eq!(r.ts, ns("2026-11-22T09:00:00.123456Z"));
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.host, some("myhost"));
        assert_eq!(r.app_name, some("myapp"));
        assert_eq!(r.msg, "hello");
        assert_eq!(
            r.attrs,
            attrs(&[
                ("facility", "user"),
                ("procid", "4242"),
                ("tzKnown", "1"),
                ("isSynced", "1"),
                ("syncAccuracy", "123"),
            ])
        );
    }

    #[test]
    fn logger_rfc3164() {
        let r = p("<13>Nov 22 10:00:00 myhost myapp[4242]: hello");
        assert_eq!(r.ts, ns("2026-11-22T10:00:00Z"));
        assert_eq!(r.host, some("myhost"));
        assert_eq!(r.app_name, some("myapp"));
        assert_eq!(r.msg, "hello");
        assert_eq!(r.attrs, attrs(&[("facility", "user"), ("procid", "4242")]));

        // Local socket form: no hostname.
        let r = p("<13>Nov 22 10:00:00 myapp[42]: hi there");
        assert_eq!(r.host, None);
        assert_eq!(r.app_name, some("myapp"));
        assert_eq!(r.msg, "hi there");
        assert_eq!(r.attrs["procid"], "42");
        let r = p("<13>Nov 22 10:00:00 myapp: hi");
        assert_eq!(
            (r.host, r.app_name, r.msg.as_str()),
            (None, some("myapp"), "hi")
        );
        // Space-padded day; the tag without a pid.
        let r = p("<38>Nov  2 03:04:05 gw sshd: Accepted publickey for root");
        assert_eq!(r.ts, ns("2026-11-02T03:04:05Z"));
        assert_eq!(r.host, some("gw"));
        assert_eq!(r.app_name, some("sshd"));
        assert_eq!(r.msg, "Accepted publickey for root");
        assert_eq!(r.attrs["facility"], "auth");
    }

    #[test]
    fn rfc5424_examples() {
        // RFC 5424 §6.5 example 1 (with BOM), minus the typo in the RFC.
        let r = p(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(r.ts, ns("2003-10-11T22:14:15.003Z"));
        assert_eq!(r.level, Level::Fatal);
        assert_eq!(r.host, some("mymachine.example.com"));
        assert_eq!(r.app_name, some("su"));
        assert_eq!(r.msg, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(r.attrs, attrs(&[("facility", "auth"), ("msgid", "ID47")]));

        // Example 2: no BOM, fractional seconds with offset.
        let r = p(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        );
        assert_eq!(r.ts, ns("2003-08-24T12:14:15.000003Z"));
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.attrs["facility"], "local4");
        assert_eq!(r.attrs["procid"], "8710");
        assert_eq!(r.msg, "%% It's time to make the do-nuts.");

        // Examples 3 and 4: structured data, multiple elements, no MSG.
        let r = p(concat!(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ",
            "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]",
            "[examplePriority@32473 class=\"high\" iut=\"9\"]"
        ));
        assert_eq!(r.msg, "");
        assert!(!r.attrs.contains_key(ATTR_MALFORMED));
        assert_eq!(
            r.attrs,
            attrs(&[
                ("facility", "local4"),
                ("msgid", "ID47"),
                ("iut", "3"),
                ("eventSource", "Application"),
                ("eventID", "1011"),
                ("class", "high"),
                ("examplePriority@32473.iut", "9"),
            ])
        );

        // All nil.
        let r = p("<14>1 - - - - - -");
        assert_eq!(r.ts, opts().now_ns);
        assert_eq!((r.host, r.app_name), (None, None));
        assert_eq!(r.msg, "");
        assert_eq!(r.attrs, attrs(&[("facility", "user")]));
        let r = p("<14>1 - - - - - - \u{feff}");
        assert_eq!(r.msg, "");
    }

    #[test]
    fn rfc5424_details() {
        // Escapes, literal backslashes, collisions with header attributes,
        // reserved names, a tenth fractional digit, a leading space kept.
        let r = p(concat!(
            "<13>1 2026-11-22T10:00:00.1234567891Z h a 7 m ",
            "[x@1 v=\"a\\\"b\\\\c\\]d\\e\" procid=\"p\" sluice.lossy=\"spoof\" e=\"\"] ",
            " two spaces\r\n\0"
        ));
        assert_eq!(r.ts, ns("2026-11-22T10:00:00.123456789Z"));
        assert_eq!(r.attrs["v"], "a\"b\\c]d\\e");
        assert_eq!(r.attrs["procid"], "7");
        assert_eq!(r.attrs["x@1.procid"], "p");
        assert_eq!(r.attrs["x@1.sluice.lossy"], "spoof");
        assert_eq!(r.attrs["e"], "");
        assert!(!r.attrs.contains_key(ATTR_LOSSY));
        assert_eq!(r.msg, " two spaces");

        // Leap second and lower-case separators.
        let r = p("<13>1 2016-12-31t23:59:60z h a - - - x");
        assert_eq!(r.ts, ns("2017-01-01T00:00:00Z"));
        // Escaped `]` does not end the element.
        let r = p("<13>1 - h a - - [a k=\"]\\]\"] m");
        assert_eq!((r.attrs["k"].as_str(), r.msg.as_str()), ("]]", "m"));
    }

    #[test]
    fn rsyslog_forward_format() {
        // RSYSLOG_ForwardFormat: high-precision timestamp, 3164 layout.
        let r = p("<30>2026-11-22T10:00:00.123456+01:00 web-1 nginx[812]: GET / 200");
        assert_eq!(r.ts, ns("2026-11-22T09:00:00.123456Z"));
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.host, some("web-1"));
        assert_eq!(r.app_name, some("nginx"));
        assert_eq!(r.attrs["procid"], "812");
        assert_eq!(r.attrs["facility"], "daemon");
        assert_eq!(r.msg, "GET / 200");
        // Traditional forward format with a year-less time in a fixed zone.
        let o = ParseOptions {
            zone: "+02:00".parse().expect("zone"),
            now_ns: ns(NOW),
        };
        let r = parse(b"<30>Nov 22 12:00:00 web-1 nginx: x", &o);
        assert_eq!(r.ts, ns("2026-11-22T10:00:00Z"));
    }

    #[test]
    fn cisco_style() {
        let r = p(
            "<189>52: *Nov 22 10:00:00.123 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up",
        );
        assert_eq!(r.ts, ns("2026-11-22T10:00:00.123Z"));
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.attrs["facility"], "local7");
        assert_eq!(r.host, None);
        assert_eq!(r.app_name, some("%LINK-3-UPDOWN"));
        assert_eq!(r.msg, "Interface GigabitEthernet0/1, changed state to up");

        let r = p("<187>Nov 22 10:00:00: %SYS-3-CPUHOG: Task ran for 2004 msec");
        assert_eq!(r.ts, ns("2026-11-22T10:00:00Z"));
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.app_name, some("%SYS-3-CPUHOG"));
        assert_eq!(r.msg, "Task ran for 2004 msec");

        // Cisco ASA, with and without the device id.
        let r = p("<166>Nov 22 2026 10:00:00: %ASA-6-302013: Built outbound TCP connection 1");
        assert_eq!(r.ts, ns("2026-11-22T10:00:00Z"));
        assert_eq!(r.app_name, some("%ASA-6-302013"));
        assert_eq!(r.msg, "Built outbound TCP connection 1");
        let r = p("<166>Nov 22 2026 10:00:00 fw01 : %ASA-6-302013: Built");
        assert_eq!(r.host, some("fw01"));
        assert_eq!(r.app_name, None);
        assert_eq!(r.msg, "%ASA-6-302013: Built");
    }

    #[test]
    fn year_choice() {
        // Dec 31 message received on Jan 1 → previous year.
        let o = ParseOptions {
            zone: Zone::Utc,
            now_ns: ns("2027-01-01T00:00:10Z"),
        };
        let r = parse(b"<13>Dec 31 23:59:58 h app: x", &o);
        assert_eq!(r.ts, ns("2026-12-31T23:59:58Z"));
        // Jan 1 message received on Dec 31 (sender clock ahead) → next year.
        let o = ParseOptions {
            zone: Zone::Utc,
            now_ns: ns("2026-12-31T23:59:58Z"),
        };
        let r = parse(b"<13>Jan  1 00:00:01 h app: x", &o);
        assert_eq!(r.ts, ns("2027-01-01T00:00:01Z"));
        // Feb 29 only exists in leap years: the last one, never one
        // months ahead.
        let o = ParseOptions {
            zone: Zone::Utc,
            now_ns: ns("2027-06-01T00:00:00Z"),
        };
        let r = parse(b"<13>Feb 29 12:00:00 h app: x", &o);
        assert_eq!(r.ts, ns("2024-02-29T12:00:00Z"));
        // Local zone: just must not fail.
        let o = ParseOptions {
            zone: Zone::Local,
            now_ns: ns(NOW),
        };
        assert_ne!(parse(b"<13>Nov 22 10:00:00 h a: x", &o).ts, 0);
    }

    #[test]
    fn every_severity() {
        let expected = [
            Level::Fatal,
            Level::Fatal,
            Level::Fatal,
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Info,
            Level::Debug,
        ];
        for (facility, name) in FACILITIES.iter().enumerate() {
            for (severity, level) in expected.iter().enumerate() {
                let pri = facility * 8 + severity;
                let r = p(&format!("<{pri}>1 - - - - - - x"));
                assert_eq!(r.level, *level, "pri {pri}");
                assert_eq!(r.attrs["facility"], *name);
                assert!(!r.attrs.contains_key("severity"));
                let r = p(&format!("<{pri}>x"));
                assert_eq!(r.level, *level, "pri {pri}");
            }
        }
    }

    #[test]
    fn malformed_inputs() {
        // (input, level, flag, msg)
        let table: &[(&str, Level, Option<&str>, &str)] = &[
            ("", Level::Info, Some("no PRI"), ""),
            ("plain text", Level::Info, Some("no PRI"), "plain text"),
            ("<>x", Level::Info, Some("bad PRI"), "<>x"),
            ("<ab>x", Level::Info, Some("bad PRI"), "<ab>x"),
            ("<1234>x", Level::Info, Some("bad PRI"), "<1234>x"),
            ("<13", Level::Info, Some("bad PRI"), "<13"),
            ("<192>x", Level::Info, Some("PRI out of range"), "<192>x"),
            ("<999>x", Level::Info, Some("PRI out of range"), "<999>x"),
            ("<11>", Level::Error, None, ""),
            ("<11>1 ", Level::Error, Some("header cut short"), ""),
            (
                "<11>1 - host app",
                Level::Error,
                Some("header cut short"),
                "app",
            ),
            (
                "<11>1 - h a p m ",
                Level::Error,
                Some("header cut short"),
                "",
            ),
            (
                "<11>1 bogus h a - - - x",
                Level::Error,
                Some("bad timestamp"),
                "x",
            ),
            (
                "<11>1 2026-13-01T00:00:00Z h a - - - x",
                Level::Error,
                Some("bad timestamp"),
                "x",
            ),
            (
                "<11>1 2026-11-22T10:00:00 h a - - - x",
                Level::Error,
                Some("bad timestamp"),
                "x",
            ),
            // Spellings a log line may use but RFC 5424 does not allow.
            (
                "<11>1 2026/11/22T10:00:00Z h a - - - x",
                Level::Error,
                Some("bad timestamp"),
                "x",
            ),
            (
                "<11>1 2026-11-22T10:00:00,5Z h a - - - x",
                Level::Error,
                Some("bad timestamp"),
                "x",
            ),
            (
                "<11>1 nope h",
                Level::Error,
                Some("bad timestamp; header cut short"),
                "h",
            ),
            (
                "<11>1 - h a - - [id k=\"v",
                Level::Error,
                Some("unterminated structured data"),
                "[id k=\"v",
            ),
            (
                "<11>1 - h a - - [ok a=\"1\"][id k=\"v\" ",
                Level::Error,
                Some("unterminated structured data"),
                "[id k=\"v\" ",
            ),
            (
                "<11>1 - h a - - [id k=v] m",
                Level::Error,
                Some("bad structured data"),
                "[id k=v] m",
            ),
            (
                "<11>1 - h a - - no sd here",
                Level::Error,
                Some("bad structured data"),
                "no sd here",
            ),
            (
                "<11>1 - h a - - -x",
                Level::Error,
                Some("bad structured data"),
                "-x",
            ),
        ];
        for &(input, level, reason, msg) in table {
            let r = p(input);
            assert_eq!(r.level, level, "{input:?}");
            assert_eq!(
                r.attrs.get(ATTR_MALFORMED).map(String::as_str),
                reason,
                "{input:?}"
            );
            assert_eq!(r.msg, msg, "{input:?}");
            if reason.is_some_and(|r| r.contains("PRI")) {
                assert_eq!(r.ts, opts().now_ns);
                assert!(!r.attrs.contains_key("facility"));
            }
        }
        // Fields completed before the damage are kept.
        let r = p("<11>1 - h a - - [ok a=\"1\"][id k=\"v");
        assert_eq!(r.host, some("h"));
        assert_eq!(r.attrs["a"], "1");
        assert!(!r.attrs.contains_key("k"));
    }

    #[test]
    fn rfc3164_liberal() {
        // No timestamp at all.
        let r = p("<13>myapp[7]: started");
        assert_eq!(r.ts, opts().now_ns);
        assert_eq!((r.host, r.app_name), (None, some("myapp")));
        assert_eq!(r.msg, "started");
        // No tag: everything after the hostname is the message.
        let r = p("<13>Nov 22 10:00:00 host just some text");
        assert_eq!((r.host, r.app_name), (some("host"), None));
        assert_eq!(r.msg, "just some text");
        // Over-long tag is not a tag.
        let long = "t".repeat(49);
        let r = p(&format!("<13>Nov 22 10:00:00 host {long}: x"));
        assert_eq!(r.app_name, None);
        assert_eq!(r.msg, format!("{long}: x"));
        let tag = "t".repeat(48);
        assert_eq!(
            p(&format!("<13>Nov 22 10:00:00 host {tag}: x")).app_name,
            Some(tag)
        );
        // A lone token is the message, not a hostname.
        let r = p("<13>Nov 22 10:00:00 hello");
        assert_eq!((r.host, r.msg.as_str()), (None, "hello"));
        // Year form, fractional seconds, nil hostname.
        let r = p("<13>Nov 22 2025 10:00:00.5 - app: x");
        assert_eq!(r.ts, ns("2025-11-22T10:00:00.5Z"));
        assert_eq!((r.host, r.app_name), (None, some("app")));
        // Impossible date: not a timestamp.
        let r = p("<13>Nov 31 10:00:00 app: x");
        assert_eq!(r.ts, opts().now_ns);
        assert_eq!(r.host, some("Nov"));
    }

    #[test]
    fn lossy_utf8() {
        let r = parse(b"<13>1 - h\xff a - - - caf\xc3 ok\n", &opts());
        assert_eq!(r.host, some("h\u{fffd}"));
        assert_eq!(r.msg, "caf\u{fffd} ok");
        assert_eq!(r.attrs[ATTR_LOSSY], "true");
        let r = parse(b"\xfe\xff", &opts());
        assert_eq!(r.msg, "\u{fffd}\u{fffd}");
        assert_eq!(r.attrs[ATTR_LOSSY], "true");
        assert_eq!(r.attrs[ATTR_MALFORMED], "no PRI");
    }

    #[test]
    fn zone_from_str() {
        assert_eq!("local".parse::<Zone>(), Ok(Zone::Local));
        for utc in ["utc", "UTC", "Z"] {
            assert_eq!(utc.parse::<Zone>(), Ok(Zone::Utc));
        }
        let fixed = |s| Zone::Fixed(FixedOffset::east_opt(s).expect("offset"));
        assert_eq!("+02:00".parse::<Zone>(), Ok(fixed(7200)));
        assert_eq!("-0530".parse::<Zone>(), Ok(fixed(-19800)));
        assert_eq!("+01".parse::<Zone>(), Ok(fixed(3600)));
        for bad in ["", "CET", "+2", "+24:00", "+01:60", "+01:00x", "02:00"] {
            assert!(bad.parse::<Zone>().is_err(), "{bad:?}");
        }
    }

    const SAMPLES: &[&str] = &[
        "<13>1 2026-11-22T10:00:00.123456+01:00 myhost myapp 4242 - [timeQuality tzKnown=\"1\" isSynced=\"1\"] hello",
        "<165>1 2003-10-11T22:14:15.003Z h evntslog - ID47 [a@1 iut=\"3\" x=\"\\]\"][b@2 class=\"high\"] \u{feff}msg",
        "<13>Nov 22 10:00:00 myhost myapp[4242]: hello",
        "<189>52: *Nov 22 10:00:00.123 UTC: %LINK-3-UPDOWN: Interface up",
        "<166>Nov 22 2026 10:00:00: %ASA-6-302013: Built",
        "<30>2026-11-22T10:00:00.123456+01:00 web-1 nginx[812]: GET / 200",
    ];

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes, &opts());
        }

        #[test]
        fn never_panics_on_mutations(
            which in 0..SAMPLES.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
            now in any::<i64>(),
            zone in prop_oneof![Just(Zone::Utc), Just(Zone::Local), (-86_399i32..86_400).prop_map(|s| Zone::Fixed(FixedOffset::east_opt(s).expect("in range")))],
        ) {
            let mut bytes = SAMPLES[which].as_bytes().to_vec();
            for (at, byte, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => { bytes.remove(at); }
                    2 if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.truncate(at),
                }
            }
            let r = parse(&bytes, &ParseOptions { zone, now_ns: now });
            prop_assert!(r.msg.len() <= bytes.len() * 3);
        }
    }
}
