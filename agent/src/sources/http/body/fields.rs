//! The field rules: checks a parsed item's `message`, `app`, `service`,
//! `host`, `level`, `timestamp` and `metadata` as the body specification
//! says, and builds its record.

use std::collections::BTreeMap;

use sluice_core::Level;
use sluice_core::names;
use sluice_core::record::{ATTR_TRUNCATED, parse_ts};
use sluice_core::time;

use super::item::{Meta, RawItem, Val, float_text};
use super::{BodyError, Limits, Posted};

/// Longest accepted `host`, in bytes.
const MAX_HOST_BYTES: usize = 255;
/// Longest piece of client text echoed back in an error message, in bytes.
const MAX_ECHO_BYTES: usize = 64;
/// Values accepted for `level`, as listed in error messages.
const ACCEPTED_LEVELS: &str = "accepted: trace, debug, info, warn, error, fatal or 0-7";
/// The name rule, as quoted in error messages.
const NAME_RULE: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// Checks an item against the rules and builds its record.
pub(super) fn convert(raw: RawItem<'_>, item: usize, limits: &Limits) -> Result<Posted, BodyError> {
    if !raw.is_object {
        return Err(BodyError::NotAnObject { item });
    }
    let message = match raw.message {
        None => return Err(BodyError::field_error(item, "message", "is required")),
        Some(Val::Str(s)) => s,
        Some(_) => return Err(BodyError::field_error(item, "message", "must be a string")),
    };
    let service = name_field(raw.service, item, "service")?;
    let app = name_field(raw.app, item, "app")?;
    let host = host_field(raw.host, item)?;
    let level = level_field(raw.level, item)?;
    let ts = ts_field(raw.timestamp, item)?;

    let mut attrs = match raw.metadata {
        None | Some(Meta::Null) => BTreeMap::new(),
        Some(Meta::Object(attrs)) => attrs,
        Some(Meta::Other) => {
            return Err(BodyError::field_error(
                item,
                "metadata",
                "must be an object",
            ));
        }
        Some(Meta::EmptyKey) => {
            return Err(BodyError::field_error(
                item,
                "metadata",
                "keys must be non-empty",
            ));
        }
    };
    // Metadata wins over top-level fields, and among those the last
    // non-null occurrence wins: hence backwards, never overwriting.
    for (key, value) in raw.extras.into_iter().rev() {
        if key.is_empty() {
            return Err(BodyError::EmptyFieldName { item });
        }
        if attrs.contains_key(key.as_ref()) {
            continue;
        }
        if let Some(text) = value.into_attr() {
            attrs.insert(key.into_owned(), text);
        }
    }
    let attrs_bytes: usize = attrs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if attrs_bytes > limits.max_attrs_bytes {
        return Err(BodyError::field_error(
            item,
            "metadata",
            format!(
                "too large ({attrs_bytes} bytes, at most {})",
                limits.max_attrs_bytes
            ),
        ));
    }

    let msg = if message.len() > limits.max_message_bytes {
        let cut = message.floor_char_boundary(limits.max_message_bytes);
        attrs.insert(ATTR_TRUNCATED.to_string(), message.len().to_string());
        message[..cut].to_owned()
    } else {
        message.into_owned()
    };
    Ok(Posted {
        app,
        service,
        host,
        level,
        ts,
        msg,
        attrs,
    })
}

/// `s` quoted for an error message, cut short when long.
fn quote(s: &str) -> String {
    if s.len() <= MAX_ECHO_BYTES {
        format!("{s:?}")
    } else {
        let cut = s.floor_char_boundary(MAX_ECHO_BYTES);
        format!("{:?}", format!("{}…", &s[..cut]))
    }
}

fn name_field(
    value: Option<Val<'_>>,
    item: usize,
    field: &'static str,
) -> Result<Option<String>, BodyError> {
    match value {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) if names::is_valid(&s) => Ok(Some(s.into_owned())),
        Some(Val::Str(s)) => Err(BodyError::field_error(
            item,
            field,
            format!("{} is not a valid name (must match {NAME_RULE})", quote(&s)),
        )),
        Some(_) => Err(BodyError::field_error(item, field, "must be a string")),
    }
}

fn host_field(value: Option<Val<'_>>, item: usize) -> Result<Option<String>, BodyError> {
    match value {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) if s.is_empty() => {
            Err(BodyError::field_error(item, "host", "must not be empty"))
        }
        Some(Val::Str(s)) if s.len() > MAX_HOST_BYTES => Err(BodyError::field_error(
            item,
            "host",
            format!("too long ({} bytes, at most {MAX_HOST_BYTES})", s.len()),
        )),
        Some(Val::Str(s)) => Ok(Some(s.into_owned())),
        Some(_) => Err(BodyError::field_error(item, "host", "must be a string")),
    }
}

/// A level word; the common spellings skip the allocation in
/// [`Level::from_alias`] and map exactly as it does.
fn level_word(word: &str) -> Option<Level> {
    match word {
        "info" | "INFO" | "Info" => Some(Level::Info),
        "error" | "ERROR" | "Error" => Some(Level::Error),
        "warn" | "WARN" | "Warn" => Some(Level::Warn),
        "debug" | "DEBUG" | "Debug" => Some(Level::Debug),
        "trace" | "TRACE" | "Trace" => Some(Level::Trace),
        "fatal" | "FATAL" | "Fatal" => Some(Level::Fatal),
        _ => Level::from_alias(word).or_else(|| match word.trim().as_bytes() {
            [digit @ b'0'..=b'7'] => Level::from_syslog_severity(u64::from(digit - b'0')),
            _ => None,
        }),
    }
}

fn level_field(value: Option<Val<'_>>, item: usize) -> Result<Level, BodyError> {
    let unknown = |shown: String| {
        BodyError::field_error(
            item,
            "level",
            format!("unknown level {shown} ({ACCEPTED_LEVELS})"),
        )
    };
    match value {
        None | Some(Val::Null) => Ok(Level::Info),
        Some(Val::Str(s)) => level_word(&s).ok_or_else(|| unknown(quote(&s))),
        Some(Val::U64(n)) => Level::from_syslog_severity(n).ok_or_else(|| unknown(n.to_string())),
        Some(Val::I64(n)) => Err(unknown(n.to_string())),
        Some(Val::F64(x)) => Err(unknown(float_text(x))),
        Some(_) => Err(BodyError::field_error(
            item,
            "level",
            "must be a string or a number 0-7",
        )),
    }
}

fn ts_field(value: Option<Val<'_>>, item: usize) -> Result<Option<i64>, BodyError> {
    let out_of_range = |shown: String| {
        BodyError::field_error(
            item,
            "timestamp",
            format!("epoch time {shown} is out of range (years 1677-2262)"),
        )
    };
    match value {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) => match parse_ts(&s) {
            Some(ns) => Ok(Some(ns)),
            None => Err(BodyError::field_error(
                item,
                "timestamp",
                format!(
                    "invalid timestamp {}: expected RFC 3339 such as \
                     \"2026-11-22T10:00:00.123Z\" within years 1677-2262, \
                     or epoch time as a number",
                    quote(&s)
                ),
            )),
        },
        Some(Val::I64(n)) => time::epoch_to_ns(i128::from(n))
            .map(Some)
            .ok_or_else(|| out_of_range(n.to_string())),
        Some(Val::U64(n)) => time::epoch_to_ns(i128::from(n))
            .map(Some)
            .ok_or_else(|| out_of_range(n.to_string())),
        Some(Val::F64(x)) => time::epoch_f64_to_ns(x)
            .map(Some)
            .ok_or_else(|| out_of_range(float_text(x))),
        Some(_) => Err(BodyError::field_error(
            item,
            "timestamp",
            "must be an RFC 3339 string or an epoch number",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::body::decode;
    use crate::sources::http::body::tests::{LIMITS, attrs, err, field_err, one};

    #[test]
    fn message_rules() {
        assert_eq!(
            field_err(r#"{"level":"info"}"#, "message"),
            r#"item 0: field "message": is required"#
        );
        for bad in ["null", "1", "true", "{}", "[\"a\"]"] {
            assert_eq!(
                field_err(&format!(r#"{{"message":{bad}}}"#), "message"),
                r#"item 0: field "message": must be a string"#
            );
        }
        assert_eq!(one(r#"{"message":""}"#).msg, "");
        assert_eq!(
            one(r#"{"message":"a\nb\u00e9\"\ud83d\ude00"}"#).msg,
            "a\nbé\"😀"
        );
        let e = err(r#"[{"message":"a"},{"message":"b"},{"msg":"c"}]"#);
        assert_eq!(e.item(), Some(2));
        assert_eq!(
            e.to_json(),
            r#"{"status":"error","error":"item 2: field \"message\": is required","item":2,"field":"message"}"#
        );
    }

    #[test]
    fn truncation_at_a_char_boundary() {
        let limits = Limits {
            max_message_bytes: 5,
            ..LIMITS
        };
        let decode1 = |msg: &str| {
            let body = serde_json::json!({ "message": msg }).to_string();
            decode(body.as_bytes(), &limits).unwrap().remove(0)
        };
        // "abcd" + "é" (2 bytes) + "f": the limit falls inside "é".
        let p = decode1("abcdéf");
        assert_eq!(p.msg, "abcd");
        assert_eq!(p.attrs, attrs(&[(ATTR_TRUNCATED, "7")]));
        // A 4-byte char straddling the limit.
        let p = decode1("ab😀cd");
        assert_eq!(p.msg, "ab");
        assert_eq!(p.attrs.get(ATTR_TRUNCATED).map(String::as_str), Some("8"));
        // Exactly at the limit: untouched.
        let p = decode1("abcé");
        assert_eq!(p.msg, "abcé");
        assert!(p.attrs.is_empty());
        // Escaped (owned) text is cut too.
        let p = decode1("a\"b\"cdef");
        assert_eq!(p.msg, "a\"b\"c");
        // The flag does not count against the attribute budget.
        let limits = Limits {
            max_message_bytes: 1,
            max_attrs_bytes: 0,
            ..LIMITS
        };
        let p = decode(br#"{"message":"long"}"#, &limits).unwrap().remove(0);
        assert_eq!(p.msg, "l");
    }

    #[test]
    fn names() {
        let p = one(r#"{"message":"m","app":"shop-1","service":"check_out"}"#);
        assert_eq!(p.app.as_deref(), Some("shop-1"));
        assert_eq!(p.service.as_deref(), Some("check_out"));
        let long = "a".repeat(63);
        let p = one(&format!(r#"{{"message":"m","app":"{long}"}}"#));
        assert_eq!(p.app, Some(long));

        for field in ["app", "service"] {
            for bad in ["Shop", "", "-x", "a.b", "é", &"a".repeat(64)] {
                let msg = field_err(&format!(r#"{{"message":"m","{field}":"{bad}"}}"#), field);
                assert!(msg.contains("^[a-z0-9][a-z0-9_-]{0,62}$"), "{msg}");
            }
            for bad in ["1", "true", "{}", "[]"] {
                let msg = field_err(&format!(r#"{{"message":"m","{field}":{bad}}}"#), field);
                assert!(msg.ends_with("must be a string"), "{msg}");
            }
        }
        assert_eq!(
            field_err(r#"{"message":"m","service":"Shop"}"#, "service"),
            r#"item 0: field "service": "Shop" is not a valid name (must match ^[a-z0-9][a-z0-9_-]{0,62}$)"#
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            one(r#"{"message":"m","host":"Web-1.example.com"}"#)
                .host
                .as_deref(),
            Some("Web-1.example.com")
        );
        let max = "h".repeat(255);
        assert_eq!(
            one(&format!(r#"{{"message":"m","host":"{max}"}}"#)).host,
            Some(max)
        );
        assert!(field_err(r#"{"message":"m","host":""}"#, "host").ends_with("must not be empty"));
        let too_long = field_err(
            &format!(r#"{{"message":"m","host":"{}"}}"#, "h".repeat(256)),
            "host",
        );
        assert!(
            too_long.ends_with("too long (256 bytes, at most 255)"),
            "{too_long}"
        );
        assert!(field_err(r#"{"message":"m","host":7}"#, "host").ends_with("must be a string"));
    }

    #[test]
    fn levels() {
        let level = |v: &str| one(&format!(r#"{{"message":"m","level":{v}}}"#)).level;
        for (v, want) in [
            ("\"trace\"", Level::Trace),
            ("\"DEBUG\"", Level::Debug),
            ("\"Info\"", Level::Info),
            ("\"notice\"", Level::Info),
            ("\"warning\"", Level::Warn),
            ("\"WARN\"", Level::Warn),
            ("\"ERR\"", Level::Error),
            ("\"eRrOr\"", Level::Error),
            ("\"critical\"", Level::Fatal),
            ("\"panic\"", Level::Fatal),
            ("\" error \"", Level::Error),
            ("0", Level::Fatal),
            ("1", Level::Fatal),
            ("2", Level::Fatal),
            ("3", Level::Error),
            ("4", Level::Warn),
            ("5", Level::Info),
            ("6", Level::Info),
            ("7", Level::Debug),
            ("\"3\"", Level::Error),
            ("\"7\"", Level::Debug),
            ("null", Level::Info),
        ] {
            assert_eq!(level(v), want, "{v}");
        }
        // Every accepted alias maps as Level::from_alias does.
        for word in [
            "info", "INFO", "Info", "error", "Error", "warn", "debug", "trace", "fatal", "FATAL",
        ] {
            assert_eq!(level_word(word), Level::from_alias(word), "{word}");
        }
        assert_eq!(
            field_err(r#"{"message":"m","level":"loud"}"#, "level"),
            r#"item 0: field "level": unknown level "loud" (accepted: trace, debug, info, warn, error, fatal or 0-7)"#
        );
        for bad in ["8", "-1", "3.0", "\"8\"", "\"\"", "1e3"] {
            let msg = field_err(&format!(r#"{{"message":"m","level":{bad}}}"#), "level");
            assert!(
                msg.contains("unknown level") && msg.contains("0-7"),
                "{msg}"
            );
        }
        for bad in ["true", "{}", "[3]"] {
            let msg = field_err(&format!(r#"{{"message":"m","level":{bad}}}"#), "level");
            assert!(msg.ends_with("must be a string or a number 0-7"), "{msg}");
        }
        // A huge unknown word is not echoed in full.
        let msg = field_err(
            &format!(r#"{{"message":"m","level":"{}"}}"#, "x".repeat(10_000)),
            "level",
        );
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn timestamps() {
        let ts = |v: &str| one(&format!(r#"{{"message":"m","timestamp":{v}}}"#)).ts;
        let base = 1_795_341_600_000_000_000_i64; // 2026-11-22T10:00:00Z
        assert_eq!(parse_ts("2026-11-22T10:00:00Z"), Some(base));
        for (v, want) in [
            ("\"2026-11-22T10:00:00Z\"", base),
            ("\"2026-11-22T10:00:00.123456789Z\"", base + 123_456_789),
            ("\"2026-11-22T11:30:00.5+01:30\"", base + 500_000_000),
            ("\"2026-11-22T05:00:00-05:00\"", base),
            ("1795341600", base),
            ("1795341600123", base + 123_000_000),
            ("1795341600123456", base + 123_456_000),
            ("1795341600123456789", base + 123_456_789),
            ("1795341600.25", base + 250_000_000),
            ("1795341600123.5", base + 123_500_000),
            ("0", 0),
            ("-86400", -86_400_000_000_000),
            ("9200000000", 9_200_000_000_000_000_000),
            ("-9200000000", -9_200_000_000_000_000_000),
            ("-1.5", -1_500_000_000),
        ] {
            assert_eq!(ts(v), Some(want), "{v}");
        }
        // Float seconds keep the digits the sender wrote.
        let ns = ts("1795341600.123").unwrap();
        assert!((ns - (base + 123_000_000)).abs() < 1_000, "{ns}");
        assert_eq!(ts("null"), None);

        for bad in [
            "\"yesterday\"",
            "\"2026-11-22T10:00:00\"",
            "\"2026-11-22\"",
            "\"\"",
            "\"3000-01-01T00:00:00Z\"",
            "9300000000",
            "99999999999",
            "-9300000000",
            "18446744073709551615",
            "1e30",
            "-1e300",
            "9.3e18",
        ] {
            let msg = field_err(
                &format!(r#"{{"message":"m","timestamp":{bad}}}"#),
                "timestamp",
            );
            assert!(
                msg.contains("timestamp") || msg.contains("out of range"),
                "{msg}"
            );
        }
        assert_eq!(
            field_err(r#"{"message":"m","timestamp":9300000000}"#, "timestamp"),
            r#"item 0: field "timestamp": epoch time 9300000000 is out of range (years 1677-2262)"#
        );
        for bad in ["true", "{}", "[1]"] {
            let msg = field_err(
                &format!(r#"{{"message":"m","timestamp":{bad}}}"#),
                "timestamp",
            );
            assert!(
                msg.ends_with("must be an RFC 3339 string or an epoch number"),
                "{msg}"
            );
        }
        // Edges of the representable range.
        assert_eq!(ts("9223372036854775807"), Some(i64::MAX));
        assert_eq!(ts("-9223372036854775808"), Some(i64::MIN));
        assert!(
            err(r#"{"message":"m","timestamp":9223372036854775808}"#).field() == Some("timestamp")
        );
    }

    #[test]
    fn extra_fields_become_attributes_and_metadata_wins() {
        let p = one(
            r#"{"message":"m","user":"top","n":3,"ctx":{"a":1},"gone":null,"metadata":{"user":"meta","gone":null}}"#,
        );
        assert_eq!(
            p.attrs,
            attrs(&[("user", "meta"), ("n", "3"), ("ctx", r#"{"a":1}"#)])
        );
        // Order does not matter for who wins.
        let p = one(r#"{"metadata":{"user":"meta"},"message":"m","user":"top"}"#);
        assert_eq!(p.attrs, attrs(&[("user", "meta")]));
    }

    #[test]
    fn metadata_rules() {
        for bad in ["1", "\"x\"", "true", "[1,2]", "[]"] {
            assert_eq!(
                field_err(
                    &format!(r#"{{"message":"m","metadata":{bad}}}"#),
                    "metadata"
                ),
                r#"item 0: field "metadata": must be an object"#
            );
        }
        assert_eq!(
            field_err(r#"{"message":"m","metadata":{"":"x"}}"#, "metadata"),
            r#"item 0: field "metadata": keys must be non-empty"#
        );
        let e = err(r#"{"message":"m","":"x"}"#);
        assert_eq!(e, BodyError::EmptyFieldName { item: 0 });
        assert_eq!(e.field(), None);
    }

    #[test]
    fn attribute_budget() {
        let limits = Limits {
            max_attrs_bytes: 10,
            ..LIMITS
        };
        // "ab"+"cdef" + "x"+"yz" = 9 bytes; numbers count as their text.
        let fits = br#"{"message":"m","ab":"cdef","metadata":{"x":"yz","n":null}}"#;
        assert_eq!(decode(fits, &limits).unwrap()[0].attrs.len(), 2);
        let over = br#"{"message":"m","ab":"cdef","metadata":{"x":"yz","n":10}}"#;
        let e = decode(over, &limits).unwrap_err();
        assert_eq!(e.field(), Some("metadata"));
        assert_eq!(
            e.to_string(),
            r#"item 0: field "metadata": too large (12 bytes, at most 10)"#
        );
        // Overwritten values count once.
        let dup = br#"{"message":"m","x":"0123456789","metadata":{"x":"y"}}"#;
        assert_eq!(decode(dup, &limits).unwrap()[0].attrs, attrs(&[("x", "y")]));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = one(
            r#"{"message":"a","level":"error","message":"b","level":"debug","k":"1","k":"2","k":null,
                "metadata":{"x":"1"},"metadata":{"y":"2","y":"3"}}"#,
        );
        assert_eq!(p.msg, "b");
        assert_eq!(p.level, Level::Debug);
        assert_eq!(p.attrs, attrs(&[("k", "2"), ("y", "3")]));
        assert_eq!(
            one(r#"{"message":"m","level":"error","level":null}"#).level,
            Level::Info
        );
        assert_eq!(
            field_err(r#"{"message":"m","message":null}"#, "message"),
            r#"item 0: field "message": must be a string"#
        );
    }
}
