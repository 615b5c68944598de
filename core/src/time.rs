//! Time: nanosecond units, epoch numbers, and the timestamp texts log lines
//! carry (RFC 3339, BSD syslog), scanned the one way every reader of them
//! shares.
//!
//! Invariants:
//!
//! * In memory a time is `i64` nanoseconds since the Unix epoch (UTC),
//!   which spans 1677-09-21 … 2262-04-11. Every conversion here saturates
//!   or returns `None` outside that range; none panics on any input.
//! * **Epoch units** are guessed from a number's magnitude ([`EpochUnit::of`]):
//!   below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
//!   otherwise nanoseconds. Present-day times in each unit are orders of
//!   magnitude apart, so the thresholds are unambiguous.
//! * The **scanners** ([`scan_rfc3339`], [`scan_bsd`], [`scan_time`],
//!   [`scan_zone`]) read a timestamp at a byte position and return it with
//!   the position just past it; the caller decides what may follow (the
//!   end of a token, a space). They check values (month 1–12, a day the
//!   month has, hours 0–23; second 60 is a leap second), not only shapes.
//! * **Year-less dates** (BSD syslog `Nov 22 10:00:00`, glog) take the year
//!   [`infer_year`] gives: the latest one that does not put the date more
//!   than [`YEARLESS_AHEAD_NS`] (a day) after now. A December line read in
//!   January is last year's, a line from a sender whose clock is a little
//!   ahead on New Year's Eve is next year's, and 29 February goes back to
//!   the last leap year. A date is never placed months in the future:
//!   logs describe the past.

use std::fmt::{self, Write as _};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Nanoseconds per microsecond.
pub const NS_PER_US: i64 = 1_000;
/// Nanoseconds per millisecond.
pub const NS_PER_MS: i64 = 1_000_000;
/// Nanoseconds per second.
pub const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds per minute.
pub const NS_PER_MIN: i64 = 60 * NS_PER_SEC;
/// Nanoseconds per hour.
pub const NS_PER_HOUR: i64 = 3_600 * NS_PER_SEC;
/// Nanoseconds per day (of 86 400 seconds).
pub const NS_PER_DAY: i64 = 86_400 * NS_PER_SEC;

/// How far after now a year-less date may lie and still be given the year
/// that puts it there (see [`infer_year`]): clock skew and a sender's zone
/// read as UTC stay within it.
pub const YEARLESS_AHEAD_NS: i64 = NS_PER_DAY;

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `secs` seconds in nanoseconds, saturating at `i64::MAX`.
pub fn secs_to_ns(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(NS_PER_SEC)
}

/// `ms` milliseconds in nanoseconds, saturating at `i64::MAX`.
pub fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(NS_PER_MS)
}

/// A duration in nanoseconds, saturating at `i64::MAX`.
pub fn duration_to_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `ns` nanoseconds in (fractional) seconds.
pub fn ns_to_secs_f64(ns: i64) -> f64 {
    ns as f64 / NS_PER_SEC as f64
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nine fractional
/// digits, e.g. `2026-11-22T10:00:00.123456789Z`.
pub fn format_ts(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a strict RFC 3339 timestamp (any offset) into nanoseconds since
/// the epoch. Returns `None` when the text is not RFC 3339 or lies outside
/// the range representable in an `i64` of nanoseconds (years 1677–2262).
/// For the liberal forms log lines use, see [`scan_rfc3339`].
pub fn parse_ts(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()?
        .with_timezone(&Utc)
        .timestamp_nanos_opt()
}

// ---------------------------------------------------------------------------
// Epoch numbers

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl EpochUnit {
    /// The unit of an epoch number of this magnitude (absolute value); see
    /// the module docs.
    pub fn of(magnitude: f64) -> EpochUnit {
        if magnitude < 1e11 {
            EpochUnit::Seconds
        } else if magnitude < 1e14 {
            EpochUnit::Millis
        } else if magnitude < 1e17 {
            EpochUnit::Micros
        } else {
            EpochUnit::Nanos
        }
    }

    /// Decimal digits of a nanosecond count per unit (a unit is
    /// `10^digits` nanoseconds).
    pub fn digits(self) -> u32 {
        match self {
            EpochUnit::Seconds => 9,
            EpochUnit::Millis => 6,
            EpochUnit::Micros => 3,
            EpochUnit::Nanos => 0,
        }
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        10i64.pow(self.digits())
    }
}

/// An integer epoch time in nanoseconds, its unit guessed from its
/// magnitude; `None` outside the `i64` nanosecond range.
pub fn epoch_to_ns(n: i128) -> Option<i64> {
    let unit = EpochUnit::of(n.unsigned_abs() as f64);
    i64::try_from(n.checked_mul(i128::from(unit.nanos()))?).ok()
}

/// A fractional epoch time in nanoseconds, its unit guessed from its
/// magnitude; `None` when not finite or outside the `i64` nanosecond range.
///
/// Scaling the float would lose precision (1795341600.123456 s is only
/// representable to about 0.2 µs), so the decimal digits of its shortest
/// round-trip text are read instead: that is what the sender wrote. Digits
/// past the nanosecond are dropped, as for textual fractions.
pub fn epoch_f64_to_ns(value: f64) -> Option<i64> {
    // Far outside the range already; below it the text is at most 20
    // digits before the point.
    if !value.is_finite() || value.abs() >= 1e19 {
        return None;
    }
    let digits = EpochUnit::of(value.abs()).digits();
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

// ---------------------------------------------------------------------------
// Scanners

/// A time of day as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0–23 (checked when made into a date-time).
    pub hour: u32,
    /// 0–59 (checked when made into a date-time).
    pub minute: u32,
    /// 0–60; 60 is a leap second.
    pub second: u32,
    /// Fraction of the second, in nanoseconds.
    pub nanos: u32,
}

/// The `n` (at most 9) ASCII digits at `p` as a number.
pub fn scan_digits(b: &[u8], p: usize, n: usize) -> Option<u32> {
    let digits = b.get(p..p.checked_add(n)?)?;
    digits.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// A three-letter English month abbreviation (any case) at the start of
/// `b`, as its number 1–12.
pub fn month_abbrev(b: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let name = b.get(..3)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    u32::try_from(month + 1).ok()
}

/// An optional fraction at `p`: `.` or `,` and at least one digit (digits
/// past the ninth are skipped). Returns it in nanoseconds and the position
/// after it; `(0, p)` when there is none.
fn scan_fraction(b: &[u8], p: usize) -> (u32, usize) {
    let has_fraction =
        matches!(b.get(p), Some(b'.' | b',')) && b.get(p + 1).is_some_and(u8::is_ascii_digit);
    if !has_fraction {
        return (0, p);
    }
    let mut i = p + 1;
    let mut value = 0u32;
    let mut count = 0;
    while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        if count < 9 {
            value = value * 10 + u32::from(d - b'0');
            count += 1;
        }
        i += 1;
    }
    (value * 10u32.pow(9 - count), i)
}

/// `hh:mm:ss` plus an optional fraction (`.` or `,`) at `p`.
pub fn scan_time(b: &[u8], p: usize) -> Option<(TimeOfDay, usize)> {
    let hour = scan_digits(b, p, 2)?;
    (b.get(p + 2) == Some(&b':')).then_some(())?;
    let minute = scan_digits(b, p + 3, 2)?;
    (b.get(p + 5) == Some(&b':')).then_some(())?;
    let second = scan_digits(b, p + 6, 2)?;
    let (nanos, end) = scan_fraction(b, p + 8);
    let time = TimeOfDay {
        hour,
        minute,
        second,
        nanos,
    };
    Some((time, end))
}

/// A UTC offset `±hh:mm`, `±hhmm` or `±hh` at `p`: seconds east of UTC and
/// the position after it; `None` when malformed or out of range.
pub fn scan_offset(b: &[u8], p: usize) -> Option<(i32, usize)> {
    let sign = match b.get(p)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = scan_digits(b, p + 1, 2)?;
    let (minutes, end) = if b.get(p + 3) == Some(&b':') {
        (scan_digits(b, p + 4, 2)?, p + 6)
    } else if let Some(m) = scan_digits(b, p + 3, 2) {
        (m, p + 5)
    } else {
        (0, p + 3)
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let secs = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    Some((sign * secs, end))
}

/// An optional zone at `p`: `Z`/`z` (UTC) or an offset ([`scan_offset`])
/// when a sign and a digit follow. `Some((None, p))` when there is none;
/// `None` only for a malformed offset.
pub fn scan_zone(b: &[u8], p: usize) -> Option<(Option<i32>, usize)> {
    match b.get(p) {
        Some(b'Z' | b'z') => Some((Some(0), p + 1)),
        Some(b'+' | b'-') if b.get(p + 1).is_some_and(u8::is_ascii_digit) => {
            let (offset, end) = scan_offset(b, p)?;
            Some((Some(offset), end))
        }
        _ => Some((None, p)),
    }
}

/// A calendar date and time of day, validated; second 60 (a leap second) is
/// accepted and reads as the next second.
pub fn civil(year: i32, month: u32, day: u32, time: TimeOfDay) -> Option<NaiveDateTime> {
    let (second, nanos) = if time.second == 60 {
        (59, time.nanos.checked_add(1_000_000_000)?)
    } else {
        (time.second, time.nanos)
    };
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(
        time.hour,
        time.minute,
        second,
        nanos,
    )
}

/// Nanoseconds since the epoch of a local date-time `offset` seconds east
/// of UTC; `None` outside the `i64` range.
pub fn utc_nanos(local: NaiveDateTime, offset: i32) -> Option<i64> {
    local
        .and_utc()
        .timestamp_nanos_opt()?
        .checked_sub(i64::from(offset).checked_mul(NS_PER_SEC)?)
}

/// An RFC 3339 / ISO 8601 date-time at `p`, liberally:
/// `YYYY-MM-DD` (or `YYYY/MM/DD`), `T`, `t` or a space, `hh:mm:ss`, an
/// optional fraction (`.` or `,`) and an optional zone ([`scan_zone`]).
/// Returns the local date-time, its offset (`None`: no zone written) and
/// the position after it.
pub fn scan_rfc3339(b: &[u8], p: usize) -> Option<(NaiveDateTime, Option<i32>, usize)> {
    let year = scan_digits(b, p, 4)?;
    let sep = *b.get(p + 4).filter(|s| matches!(s, b'-' | b'/'))?;
    let month = scan_digits(b, p + 5, 2)?;
    (b.get(p + 7) == Some(&sep)).then_some(())?;
    let day = scan_digits(b, p + 8, 2)?;
    matches!(b.get(p + 10), Some(b'T' | b't' | b' ')).then_some(())?;
    let (time, end) = scan_time(b, p + 11)?;
    let (offset, end) = scan_zone(b, end)?;
    let local = civil(i32::try_from(year).ok()?, month, day, time)?;
    Some((local, offset, end))
}

/// A BSD syslog timestamp as written, without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BsdStamp {
    /// 1–12.
    pub month: u32,
    /// 1–31 (checked against the month when made into a date).
    pub day: u32,
    /// The year, when written (`Nov 22 2026 10:00:00`, as Cisco devices do).
    pub year: Option<i32>,
    /// The time of day.
    pub time: TimeOfDay,
}

impl BsdStamp {
    /// Nanoseconds since the epoch, the date read in UTC; the year, when
    /// not written, from [`infer_year`] at `now_ns`.
    pub fn utc(&self, now_ns: i64) -> Option<i64> {
        self.resolve(now_ns, |local| utc_nanos(local, 0))
    }

    /// Nanoseconds since the epoch, `to_utc` making the local date-time
    /// an instant (a zone's offset); the year, when not written, from
    /// [`infer_year`] at `now_ns`.
    pub fn resolve(
        &self,
        now_ns: i64,
        mut to_utc: impl FnMut(NaiveDateTime) -> Option<i64>,
    ) -> Option<i64> {
        let mut at = |year| civil(year, self.month, self.day, self.time).and_then(&mut to_utc);
        match self.year {
            Some(year) => at(year),
            None => infer_year(now_ns, at),
        }
    }
}

/// `Mmm dd hh:mm:ss[.f]` or `Mmm dd yyyy hh:mm:ss[.f]` at `p`, as BSD
/// syslog (RFC 3164) writes it: any case, the day space-padded or not.
/// Returns the stamp and the position after it.
pub fn scan_bsd(b: &[u8], p: usize) -> Option<(BsdStamp, usize)> {
    let month = month_abbrev(b.get(p..)?)?;
    (b.get(p + 3) == Some(&b' ')).then_some(())?;
    let mut i = p + 4;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let day_len = b
        .iter()
        .skip(i)
        .take(3)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=2).contains(&day_len) || b.get(i + day_len) != Some(&b' ') {
        return None;
    }
    let day = scan_digits(b, i, day_len)?;
    i += day_len + 1;
    let mut year = None;
    if b.get(i + 4) == Some(&b' ') {
        year = Some(i32::try_from(scan_digits(b, i, 4)?).ok()?);
        i += 5;
    }
    let (time, end) = scan_time(b, i)?;
    let stamp = BsdStamp {
        month,
        day,
        year,
        time,
    };
    Some((stamp, end))
}

/// The instant of a date written without its year: `at(year)` is the
/// instant in that year (`None` where the date does not exist, 29 February
/// of a common year). The latest year, from next year back, that puts it
/// at most [`YEARLESS_AHEAD_NS`] after `now_ns`; see the module docs.
pub fn infer_year(now_ns: i64, mut at: impl FnMut(i32) -> Option<i64>) -> Option<i64> {
    let year = DateTime::<Utc>::from_timestamp_nanos(now_ns).year();
    let latest = now_ns.saturating_add(YEARLESS_AHEAD_NS);
    // Eight years back reach a leap year even across a century that is not
    // one (2096 → 2104).
    (year.saturating_sub(8)..=year.saturating_add(1))
        .rev()
        .filter_map(&mut at)
        .find(|&ts| ts <= latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> i64 {
        parse_ts(text).unwrap()
    }

    fn hms(hour: u32, minute: u32, second: u32) -> TimeOfDay {
        TimeOfDay {
            hour,
            minute,
            second,
            nanos: 0,
        }
    }

    fn rfc3339(text: &str) -> Option<(i64, usize)> {
        let (local, offset, end) = scan_rfc3339(text.as_bytes(), 0)?;
        Some((utc_nanos(local, offset.unwrap_or(0))?, end))
    }

    fn bsd(text: &str, now: &str) -> Option<i64> {
        let (stamp, _) = scan_bsd(text.as_bytes(), 0)?;
        stamp.utc(ts(now))
    }

    #[test]
    fn units() {
        assert_eq!(NS_PER_DAY, 86_400 * NS_PER_SEC);
        assert_eq!(NS_PER_HOUR, 60 * NS_PER_MIN);
        assert_eq!(NS_PER_SEC, 1000 * NS_PER_MS);
        assert_eq!(NS_PER_MS, 1000 * NS_PER_US);
        assert_eq!(secs_to_ns(2), 2 * NS_PER_SEC);
        assert_eq!(secs_to_ns(u64::MAX), i64::MAX);
        assert_eq!(secs_to_ns(9_300_000_000), i64::MAX);
        assert_eq!(ms_to_ns(1500), 1_500_000_000);
        assert_eq!(ms_to_ns(u64::MAX), i64::MAX);
        assert_eq!(ns_to_secs_f64(1_500_000_000), 1.5);
        assert_eq!(duration_to_ns(Duration::from_millis(1500)), 1_500_000_000);
        assert_eq!(duration_to_ns(Duration::MAX), i64::MAX);
    }

    #[test]
    fn timestamps_round_trip() {
        for text in [
            "1970-01-01T00:00:00.000000000Z",
            "2262-04-11T23:47:16.854775807Z",
        ] {
            assert_eq!(format_ts(parse_ts(text).unwrap()), text);
        }
        assert_eq!(
            parse_ts("2026-11-22T11:00:00+01:00"),
            parse_ts("2026-11-22T10:00:00Z")
        );
        assert_eq!(parse_ts("yesterday"), None);
    }

    #[test]
    fn epoch_units_by_magnitude() {
        let base = ts("2026-11-22T10:00:00Z");
        let secs = i128::from(base / NS_PER_SEC);
        assert_eq!(epoch_to_ns(secs), Some(base));
        assert_eq!(epoch_to_ns(secs * 1000 + 7), Some(base + 7_000_000));
        assert_eq!(epoch_to_ns(secs * 1_000_000 + 7), Some(base + 7_000));
        assert_eq!(epoch_to_ns(i128::from(base) + 7), Some(base + 7));
        assert_eq!(epoch_to_ns(-86_400), Some(-86_400 * NS_PER_SEC));
        assert_eq!(epoch_to_ns(i128::from(i64::MAX)), Some(i64::MAX));
        assert_eq!(epoch_to_ns(i128::from(i64::MIN)), Some(i64::MIN));
        assert_eq!(epoch_to_ns(9_300_000_000), None);
        assert_eq!(epoch_to_ns(i128::from(u64::MAX)), None);
        assert_eq!(epoch_to_ns(i128::MAX), None);

        assert_eq!(epoch_f64_to_ns(1_795_341_600.25), Some(base + 250_000_000));
        assert_eq!(
            epoch_f64_to_ns(1_795_341_600.123456),
            Some(base + 123_456_000)
        );
        assert_eq!(
            epoch_f64_to_ns(1_795_341_600_123.5),
            Some(base + 123_500_000)
        );
        assert_eq!(epoch_f64_to_ns(-1.5), Some(-1_500_000_000));
        assert_eq!(epoch_f64_to_ns(0.0), Some(0));
        for bad in [f64::NAN, f64::INFINITY, 1e30, -1e300, 9.3e18, 9.3e9] {
            assert_eq!(epoch_f64_to_ns(bad), None, "{bad}");
        }
        assert_eq!(EpochUnit::of(99_999_999_999.0), EpochUnit::Seconds);
        assert_eq!(EpochUnit::of(1e11), EpochUnit::Millis);
        assert_eq!(EpochUnit::of(1e14), EpochUnit::Micros);
        assert_eq!(EpochUnit::of(1e17), EpochUnit::Nanos);
        assert_eq!(EpochUnit::Micros.nanos(), NS_PER_US);
    }

    #[test]
    fn rfc3339_forms() {
        let want = ts("2026-11-22T10:00:00Z");
        for (text, nanos, used) in [
            ("2026-11-22T10:00:00Z", want, 20),
            ("2026-11-22t10:00:00z", want, 20),
            ("2026-11-22 10:00:00", want, 19),
            ("2026/11/22 10:00:00 x", want, 19),
            ("2026-11-22T11:00:00+01:00", want, 25),
            ("2026-11-22T11:00:00+0100", want, 24),
            ("2026-11-22T11:00:00+01", want, 22),
            ("2026-11-22T04:30:00-05:30", want, 25),
            ("2026-11-22T10:00:00.5Z", want + 500_000_000, 22),
            ("2026-11-22T10:00:00,123", want + 123_000_000, 23),
            ("2026-11-22T10:00:00.1234567891Z", want + 123_456_789, 31),
            ("2026-11-22T10:00:00.", want, 19),
            ("2026-11-22T10:00:00+x", want, 19),
            ("2016-12-31T23:59:60Z", ts("2017-01-01T00:00:00Z"), 20),
        ] {
            assert_eq!(rfc3339(text), Some((nanos, used)), "{text}");
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22X10:00:00Z",
            "2026-11/22T10:00:00Z",
            "2026-11-22T10:00:00+24:00",
            "2026-11-22T10:00:00+01:60",
            "2026-11-22T10:00:00+01:",
            "9999-12-31T23:59:59Z",
            "26-11-22T10:00:00Z",
            "",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
        // Not a zone at all: UTC is the caller's choice.
        let (_, offset, _) = scan_rfc3339(b"2026-11-22 10:00:00", 0).unwrap();
        assert_eq!(offset, None);
    }

    #[test]
    fn offsets_and_zones() {
        assert_eq!(scan_offset(b"+02:00", 0), Some((7200, 6)));
        assert_eq!(scan_offset(b"-0530", 0), Some((-19_800, 5)));
        assert_eq!(scan_offset(b"+01", 0), Some((3600, 3)));
        for bad in ["", "CET", "+2", "+24:00", "+01:60", "02:00"] {
            assert_eq!(scan_offset(bad.as_bytes(), 0), None, "{bad:?}");
        }
        assert_eq!(scan_zone(b"Z", 0), Some((Some(0), 1)));
        assert_eq!(scan_zone(b" x", 0), Some((None, 0)));
        assert_eq!(scan_zone(b"+x", 0), Some((None, 0)));
        assert_eq!(scan_zone(b"+9x", 0), None);
    }

    #[test]
    fn bsd_forms() {
        let now = "2026-11-22T12:00:00Z";
        assert_eq!(
            bsd("Nov 22 10:00:00", now),
            Some(ts("2026-11-22T10:00:00Z"))
        );
        assert_eq!(
            bsd("nov  2 10:00:00 x", now),
            Some(ts("2026-11-02T10:00:00Z"))
        );
        assert_eq!(
            bsd("NOV 2 10:00:00.5", now),
            Some(ts("2026-11-02T10:00:00.5Z"))
        );
        assert_eq!(
            bsd("Nov 22 2025 10:00:00", now),
            Some(ts("2025-11-22T10:00:00Z"))
        );
        for bad in [
            "Nov 31 10:00:00",
            "Nov 222 10:00:00",
            "Nov22 10:00:00",
            "Nov 22 10:00",
            "Foo 22 10:00:00",
            "Nov 22 20x6 10:00:00",
            "No",
        ] {
            assert_eq!(bsd(bad, now), None, "{bad}");
        }
        let (stamp, end) = scan_bsd(b"Nov 22 10:00:00: x", 0).unwrap();
        assert_eq!((stamp.day, stamp.year, end), (22, None, 15));
        assert_eq!(month_abbrev(b"DEC"), Some(12));
        assert_eq!(month_abbrev(b"de"), None);
    }

    /// `month day hh:mm:ss` without a year, received at `now`.
    fn yearless(month: u32, day: u32, time: TimeOfDay, now: &str) -> Option<i64> {
        infer_year(ts(now), |y| utc_nanos(civil(y, month, day, time)?, 0))
    }

    #[test]
    fn the_year_of_a_yearless_date() {
        // This year's when in the past or at most a day ahead.
        let now = "2026-11-22T12:00:00Z";
        assert_eq!(
            yearless(11, 22, hms(10, 0, 0), now),
            Some(ts("2026-11-22T10:00:00Z"))
        );
        assert_eq!(
            yearless(11, 23, hms(11, 0, 0), now),
            Some(ts("2026-11-23T11:00:00Z"))
        );
        assert_eq!(
            yearless(11, 23, hms(12, 0, 1), now),
            Some(ts("2025-11-23T12:00:01Z")),
            "more than a day ahead is last year's"
        );
        // A December line read in January, months ahead: last year's.
        assert_eq!(
            yearless(12, 31, hms(23, 59, 59), now),
            Some(ts("2025-12-31T23:59:59Z"))
        );
        assert_eq!(
            yearless(12, 31, hms(23, 59, 58), "2027-01-01T00:00:10Z"),
            Some(ts("2026-12-31T23:59:58Z"))
        );
        // A sender a little ahead on New Year's Eve: next year's.
        assert_eq!(
            yearless(1, 1, hms(0, 0, 1), "2026-12-31T23:59:58Z"),
            Some(ts("2027-01-01T00:00:01Z"))
        );
        // Half a year ahead is never chosen.
        assert_eq!(
            yearless(7, 10, hms(0, 0, 0), "2027-01-15T00:00:00Z"),
            Some(ts("2026-07-10T00:00:00Z"))
        );
        // 29 February goes back to the last leap year.
        assert_eq!(
            yearless(2, 29, hms(10, 0, 0), "2025-03-01T00:00:00Z"),
            Some(ts("2024-02-29T10:00:00Z"))
        );
        assert_eq!(
            yearless(2, 29, hms(12, 0, 0), "2027-06-01T00:00:00Z"),
            Some(ts("2024-02-29T12:00:00Z"))
        );
        assert_eq!(
            yearless(2, 29, hms(12, 0, 0), "2024-02-28T13:00:00Z"),
            Some(ts("2024-02-29T12:00:00Z"))
        );
        assert_eq!(yearless(2, 30, hms(12, 0, 0), "2024-02-28T13:00:00Z"), None);
    }

    proptest! {
        #[test]
        fn a_yearless_date_is_never_far_ahead(
            now in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000,
            month in 1u32..=12,
            day in 1u32..=31,
            hour in 0u32..24,
        ) {
            let time = hms(hour, 0, 0);
            let got = infer_year(now, |y| utc_nanos(civil(y, month, day, time)?, 0));
            if let Some(got) = got {
                prop_assert!(got <= now.saturating_add(YEARLESS_AHEAD_NS));
                // …and is the latest such: a year later is too far ahead
                // (or does not exist).
                let d = DateTime::<Utc>::from_timestamp_nanos(got);
                if let Some(next) = civil(d.year() + 1, month, day, time).and_then(|n| utc_nanos(n, 0)) {
                    prop_assert!(next > now.saturating_add(YEARLESS_AHEAD_NS));
                }
            }
        }

        #[test]
        fn scanners_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40), p in 0usize..44, now in any::<i64>()) {
            let _ = scan_rfc3339(&bytes, p);
            let _ = scan_time(&bytes, p);
            let _ = scan_zone(&bytes, p);
            if let Some((stamp, _)) = scan_bsd(&bytes, p) {
                let _ = stamp.utc(now);
            }
        }

        #[test]
        fn formatted_times_read_back(n in any::<i64>()) {
            let text = format_ts(n);
            prop_assert_eq!(parse_ts(&text), Some(n));
            prop_assert_eq!(rfc3339(&text), Some((n, text.len())));
        }

        #[test]
        fn epoch_integers_in_every_unit(
            // 2001 … 2255: a time of this century and the next two in each unit.
            secs in 1_000_000_000i64..9_000_000_000,
            sub in 0i64..NS_PER_SEC,
        ) {
            let ns = secs * NS_PER_SEC + sub;
            prop_assert_eq!(epoch_to_ns(i128::from(secs)), Some(secs * NS_PER_SEC));
            let ms = secs * 1000 + sub / NS_PER_MS;
            prop_assert_eq!(epoch_to_ns(i128::from(ms)), Some(ms * NS_PER_MS));
            let us = secs * 1_000_000 + sub / NS_PER_US;
            prop_assert_eq!(epoch_to_ns(i128::from(us)), Some(us * NS_PER_US));
            prop_assert_eq!(epoch_to_ns(i128::from(ns)), Some(ns));
        }

        #[test]
        fn epoch_floats_never_panic(x in any::<f64>()) {
            let _ = epoch_f64_to_ns(x);
        }
    }
}
