//! Decoding the body of `POST /api/v1/logs` into records.
//!
//! [`decode`] turns a request body into a list of [`Posted`] records or one
//! precise [`BodyError`]; [`gunzip`] undoes `Content-Encoding: gzip` first,
//! with a hard cap on the decompressed size. A request is all or nothing: the
//! first error rejects the whole body.
//!
//! # Body formats
//!
//! The format is detected from the content, never from `Content-Type`. A
//! leading UTF-8 byte-order mark is ignored. After leading whitespace (space,
//! tab, CR, LF):
//!
//! * `[` — one JSON array of items: `[{"message":"a"},{"message":"b"}]`.
//!   Nothing but whitespace may follow the closing `]`.
//! * anything else — one or more JSON objects one after another, separated by
//!   optional whitespace. This covers a single object and NDJSON; blank lines
//!   and CRLF line ends are fine.
//!
//! An empty body, an empty array or a body of only whitespace is rejected
//! with "no records". More than [`Limits::max_items`] items is rejected with
//! "too many records, at most N per request" (reported at item N).
//!
//! # Items
//!
//! Every item must be a JSON object. Its fields:
//!
//! | field       | type                 | rule |
//! |-------------|----------------------|------|
//! | `message`   | string, **required** | Longer than [`Limits::max_message_bytes`]: cut at the last UTF-8 character boundary within the limit, and the attribute `sluice.truncated` is set to the original length in bytes. |
//! | `service`   | string               | Must match `^[a-z0-9][a-z0-9_-]{0,62}$`. |
//! | `app`       | string               | Same rule as `service`. |
//! | `host`      | string               | Non-empty, at most 255 bytes. |
//! | `level`     | string or integer    | A level name or alias, any case: `trace`, `debug`, `info`, `warn`/`warning`, `error`/`err`, `fatal`/`critical`/`crit`/`panic` and the other aliases of [`Level::from_alias`]. Or a syslog severity 0–7, as a JSON integer or a one-digit string: 0, 1, 2 → fatal; 3 → error; 4 → warn; 5, 6 → info; 7 → debug. Default `info`. |
//! | `timestamp` | string or number     | An RFC 3339 string with any offset (`2026-11-22T10:00:00.123Z`, `2026-11-22T11:00:00+01:00`; `T` may also be `t` or a space); fractional seconds beyond nanoseconds are cut off. Or epoch time as a JSON number (integer or fraction), its unit guessed from the magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, otherwise nanoseconds. Must fall within 1677-09-21 … 2262-04-11 UTC. Absent: the receive time is used. |
//! | `metadata`  | object               | Each entry becomes an attribute (see below). |
//!
//! Every other top-level field also becomes an attribute. A `null` value is
//! the same as an absent field for every field except `message`, which must
//! be a string.
//!
//! ## Attributes
//!
//! Attribute values are strings: a string is kept as it is; a number or a
//! boolean becomes its JSON text (`42`, `-1.5`, `true`; fractions are written
//! in shortest round-trip form, so `1e3` becomes `1000.0`); an object or an
//! array becomes compact JSON text in its original key order (`{"a":[1,2]}`);
//! `null` is skipped. When a `metadata` key and a top-level field share a
//! name, the `metadata` value wins. Keys must be non-empty. The keys and
//! values of all attributes together may hold at most
//! [`Limits::max_attrs_bytes`] bytes (the agent's own `sluice.truncated` flag
//! is not counted).
//!
//! ## Duplicate keys
//!
//! When a key appears more than once in an item or in its `metadata`, the
//! last occurrence wins (a repeated `metadata` replaces the earlier one as a
//! whole), except that a `null` attribute value is skipped rather than
//! removing an earlier value. Objects nested inside attribute values are
//! copied as written, repeated keys included.
//!
//! # Errors
//!
//! A [`BodyError`] names the 0-based item ([`BodyError::item`]), the field at
//! fault ([`BodyError::field`]) and what is wrong, e.g.
//! `item 3: field "level": unknown level "loud" (accepted: trace, debug, info,
//! warn, error, fatal or 0-7)`. JSON syntax errors give the line and column
//! (1-based; columns count bytes) within the body after any byte-order mark:
//! `item 2: invalid JSON at line 3 column 14: expected value`. Nesting more
//! than 127 levels deep, counting the outer array and the item itself, is
//! invalid JSON too ("recursion limit exceeded").
//! [`BodyError::to_json`] renders the response body.

mod error;
mod fields;
mod gzip;
mod item;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::de::{SliceRead, StrRead};
use sluice_core::Level;

pub use error::BodyError;
use fields::convert;
pub use gzip::{GunzipError, gunzip};
use item::RawItem;

/// Size limits applied while decoding a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest `message` kept, in bytes; longer ones are truncated and flagged.
    pub max_message_bytes: usize,
    /// Most bytes the attribute keys and values of one item may hold together.
    pub max_attrs_bytes: usize,
    /// Most items one body may carry.
    pub max_items: usize,
}

/// One record as posted by a client, validated and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The application, a valid name; `None` when absent.
    pub app: Option<String>,
    /// The service, a valid name; `None` when absent.
    pub service: Option<String>,
    /// The host; `None` when absent.
    pub host: Option<String>,
    /// Severity; [`Level::Info`] when absent.
    pub level: Level,
    /// When the event happened, in nanoseconds since the epoch (UTC); `None`
    /// when absent, in which case the caller uses the receive time.
    pub ts: Option<i64>,
    /// The message text, possibly truncated.
    pub msg: String,
    /// Metadata and extra top-level fields, plus `sluice.truncated` when the
    /// message was cut.
    pub attrs: BTreeMap<String, String>,
}

/// Decodes a request body into records; see the [module docs](self) for the
/// accepted formats and field rules.
///
/// The body must be uncompressed (see [`gunzip`]); its size is not limited
/// here, so the caller caps it before reading it into memory. Returns at
/// least one record, or the first error found, in body order.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Vec<Posted>, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let Some(&first) = body.iter().find(|b| !is_json_ws(**b)) else {
        return Err(BodyError::NoRecords);
    };
    let mut out = Vec::with_capacity(estimate_items(body, first, limits));
    // Checking UTF-8 once for the whole body is much cheaper than string by
    // string; a body that fails is parsed again byte-wise, which finds the
    // item and position of the bad byte.
    let result = match std::str::from_utf8(body) {
        Ok(text) if first == b'[' => decode_array(StrRead::new(text), limits, &mut out),
        Ok(text) => decode_stream(StrRead::new(text), body, limits, &mut out),
        Err(_) if first == b'[' => decode_array(SliceRead::new(body), limits, &mut out),
        Err(_) => decode_stream(SliceRead::new(body), body, limits, &mut out),
    };
    result?;
    if out.is_empty() {
        return Err(BodyError::NoRecords);
    }
    Ok(out)
}

/// A guess at the number of items, so the output is allocated once: lines for
/// NDJSON, opening braces for an array; never more than 4096.
fn estimate_items(body: &[u8], first: u8, limits: &Limits) -> usize {
    let marker = if first == b'[' { b'{' } else { b'\n' };
    let count = memchr::memchr_iter(marker, body).count();
    (count + 1).min(limits.max_items).min(4096)
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Decodes one or more top-level values, each of which must be an object.
fn decode_stream<'de, R: serde_json::de::Read<'de>>(
    read: R,
    body: &[u8],
    limits: &Limits,
    out: &mut Vec<Posted>,
) -> Result<(), BodyError> {
    let mut stream = serde_json::Deserializer::new(read).into_iter::<RawItem<'de>>();
    loop {
        let index = out.len();
        if index >= limits.max_items {
            let rest = &body[stream.byte_offset()..];
            if rest.iter().any(|b| !is_json_ws(*b)) {
                return Err(too_many(limits));
            }
            return Ok(());
        }
        match stream.next() {
            None => return Ok(()),
            Some(Ok(raw)) => out.push(convert(raw, index, limits)?),
            Some(Err(e)) => return Err(BodyError::from_json(&e, Some(index))),
        }
    }
}

/// Decodes a body that starts with `[`.
fn decode_array<'de, R: serde_json::de::Read<'de>>(
    read: R,
    limits: &Limits,
    out: &mut Vec<Posted>,
) -> Result<(), BodyError> {
    let mut failure = None;
    let mut de = serde_json::Deserializer::new(read);
    let seed = ArraySeed {
        limits,
        out: &mut *out,
        failure: &mut failure,
    };
    if let Err(e) = seed.deserialize(&mut de) {
        return Err(failure.unwrap_or_else(|| BodyError::from_json(&e, Some(out.len()))));
    }
    de.end().map_err(|e| BodyError::from_json(&e, None))
}

fn too_many(limits: &Limits) -> BodyError {
    BodyError::TooManyRecords {
        item: limits.max_items,
        max: limits.max_items,
    }
}

/// Reads the top-level array, converting each item as soon as it is parsed.
/// A rule violation is parked in `failure` and aborts the parse.
struct ArraySeed<'a> {
    limits: &'a Limits,
    out: &'a mut Vec<Posted>,
    failure: &'a mut Option<BodyError>,
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let index = self.out.len();
            if index >= self.limits.max_items {
                let mut more = false;
                let result = seq.next_element_seed(Refuse(&mut more));
                if more {
                    *self.failure = Some(too_many(self.limits));
                }
                return result.map(|_| ());
            }
            let Some(raw) = seq.next_element::<RawItem<'de>>()? else {
                return Ok(());
            };
            match convert(raw, index, self.limits) {
                Ok(posted) => self.out.push(posted),
                Err(e) => {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("rejected item"));
                }
            }
        }
    }
}

/// Fails as soon as there is an element to read, noting that there was one.
struct Refuse<'a>(&'a mut bool);

impl<'de> DeserializeSeed<'de> for Refuse<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        *self.0 = true;
        Err(de::Error::custom("too many records"))
    }
}

#[cfg(test)]
mod tests {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use sluice_core::names;
    use sluice_core::record::{ATTR_TRUNCATED, parse_ts};
    use std::io::Write;

    use super::*;

    pub(super) const LIMITS: Limits = Limits {
        max_message_bytes: 1024,
        max_attrs_bytes: 1024,
        max_items: 100,
    };

    fn ok(body: &str) -> Vec<Posted> {
        decode(body.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    pub(super) fn one(body: &str) -> Posted {
        let mut all = ok(body);
        assert_eq!(all.len(), 1, "{body}");
        all.remove(0)
    }

    pub(super) fn err(body: &str) -> BodyError {
        match decode(body.as_bytes(), &LIMITS) {
            Ok(p) => panic!("{body}: accepted as {p:?}"),
            Err(e) => e,
        }
    }

    /// The item's error, checked to name `field`.
    pub(super) fn field_err(item: &str, field: &str) -> String {
        let e = err(item);
        assert_eq!(e.field(), Some(field), "{item}: {e}");
        assert_eq!(e.item(), Some(0), "{item}: {e}");
        e.to_string()
    }

    pub(super) fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    pub(super) const TYPICAL: &str = r#"{"service":"checkout","level":"error","message":"payment declined for order 8812 card ****4242","timestamp":"2026-11-22T10:00:00.123Z","metadata":{"request_id":"req-123","user":"u-77"}}"#;

    #[test]
    fn single_object_with_every_field() {
        let body = r#" {"app":"shop","service":"checkout","host":"web-1","level":"error",
            "message":"payment declined","timestamp":"2026-11-22T10:00:00.123Z",
            "metadata":{"request_id":"req-123"},"region":"eu"} "#;
        assert_eq!(
            one(body),
            Posted {
                app: Some("shop".into()),
                service: Some("checkout".into()),
                host: Some("web-1".into()),
                level: Level::Error,
                ts: parse_ts("2026-11-22T10:00:00.123Z"),
                msg: "payment declined".into(),
                attrs: attrs(&[("region", "eu"), ("request_id", "req-123")]),
            }
        );
    }

    #[test]
    fn minimal_item_gets_defaults() {
        let p = one(r#"{"message":"hi"}"#);
        assert_eq!(
            p,
            Posted {
                app: None,
                service: None,
                host: None,
                level: Level::Info,
                ts: None,
                msg: "hi".into(),
                attrs: BTreeMap::new(),
            }
        );
        // null is the same as absent.
        let p = one(
            r#"{"message":"hi","app":null,"service":null,"host":null,"level":null,"timestamp":null,"metadata":null}"#,
        );
        assert_eq!(p, one(r#"{"message":"hi"}"#));
    }

    #[test]
    fn typical_item() {
        let p = one(TYPICAL);
        assert_eq!(p.service.as_deref(), Some("checkout"));
        assert_eq!(p.level, Level::Error);
        assert_eq!(
            p.attrs,
            attrs(&[("request_id", "req-123"), ("user", "u-77")])
        );
    }

    #[test]
    fn array_of_items() {
        let all = ok("\n [ {\"message\":\"a\"} ,\n{\"message\":\"b\",\"level\":\"warn\"}] \n");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].msg, "a");
        assert_eq!(all[1].msg, "b");
        assert_eq!(all[1].level, Level::Warn);
    }

    #[test]
    fn ndjson_with_blank_lines_and_crlf() {
        let body =
            "\r\n{\"message\":\"a\"}\r\n\r\n{\"message\":\"b\"}\n\n  \n{\"message\":\"c\"}\r\n";
        let msgs: Vec<String> = ok(body).into_iter().map(|p| p.msg).collect();
        assert_eq!(msgs, ["a", "b", "c"]);
        // Objects back to back, and a byte-order mark, are accepted too.
        assert_eq!(
            ok("\u{feff}{\"message\":\"a\"}{\"message\":\"b\"}").len(),
            2
        );
    }

    #[test]
    fn empty_bodies_have_no_records() {
        for body in ["", "   ", "\r\n\n\t", "[]", " [ ] \n", "\u{feff}"] {
            let e = err(body);
            assert_eq!(e, BodyError::NoRecords, "{body:?}");
            assert_eq!(e.to_string(), "no records");
            assert_eq!(e.item(), None);
        }
    }

    #[test]
    fn too_many_items() {
        let limits = Limits {
            max_items: 2,
            ..LIMITS
        };
        let item = r#"{"message":"x"}"#;
        for body in [
            format!("[{item},{item},{item}]"),
            format!("{item}\n{item}\n{item}\n"),
            // Even when the extra item is broken.
            format!("[{item},{item},{{oops]"),
            format!("{item}\n{item}\n{{oops\n"),
        ] {
            let e = decode(body.as_bytes(), &limits).unwrap_err();
            assert_eq!(e, BodyError::TooManyRecords { item: 2, max: 2 }, "{body}");
            assert_eq!(e.item(), Some(2));
            assert_eq!(
                e.to_string(),
                "item 2: too many records, at most 2 per request"
            );
        }
        for body in [format!("[{item},{item}]"), format!("{item}\n{item}\n\n")] {
            assert_eq!(decode(body.as_bytes(), &limits).unwrap().len(), 2);
        }
    }

    #[test]
    fn invalid_json_names_item_and_position() {
        let body =
            "{\"message\":\"a\"}\n{\"message\":\"b\"}\n{\"message\": nope}\n{\"message\":\"d\"}\n";
        let e = err(body);
        let BodyError::InvalidJson {
            item, line, column, ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!((*item, *line, *column), (Some(2), 3, 14));
        assert_eq!(
            e.to_string(),
            "item 2: invalid JSON at line 3 column 14: expected ident"
        );

        let e = err("[{\"message\":\"a\"},\n {\"message\":\"b\",}]");
        assert_eq!(e.item(), Some(1));
        assert!(
            e.to_string()
                .starts_with("item 1: invalid JSON at line 2 column 17: ")
        );

        // Truncated body, missing comma, bad escape, invalid UTF-8.
        assert_eq!(err("[{\"message\":\"a\"}").item(), Some(1));
        assert_eq!(
            err("[{\"message\":\"a\"} {\"message\":\"b\"}]").item(),
            Some(1)
        );
        assert_eq!(err("{\"message\":\"a\\q\"}").item(), Some(0));
        let e = decode(b"{\"message\":\"a\xff\"}", &LIMITS).unwrap_err();
        assert!(
            matches!(e, BodyError::InvalidJson { item: Some(0), .. }),
            "{e}"
        );

        // After the array, no item is at fault.
        let e = err("[{\"message\":\"a\"}] x");
        assert!(
            matches!(
                e,
                BodyError::InvalidJson {
                    item: None,
                    line: 1,
                    column: 19,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "invalid JSON at line 1 column 19: trailing characters"
        );
        assert_eq!(
            e.to_json(),
            r#"{"status":"error","error":"invalid JSON at line 1 column 19: trailing characters"}"#
        );
    }

    #[test]
    fn deep_nesting_is_a_json_error_not_a_crash() {
        let body = format!(
            "{{\"message\":\"a\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = err(&body);
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }

    #[test]
    fn items_must_be_objects() {
        assert_eq!(
            err("[{\"message\":\"a\"}, 5]"),
            BodyError::NotAnObject { item: 1 }
        );
        assert_eq!(err("[[1,[2]]]"), BodyError::NotAnObject { item: 0 });
        assert_eq!(
            err("{\"message\":\"a\"}\n\"text\""),
            BodyError::NotAnObject { item: 1 }
        );
        for body in ["null", "true", "-1.5", "[null]", "\"a\""] {
            assert!(
                matches!(err(body), BodyError::NotAnObject { item: 0 }),
                "{body}"
            );
        }
        assert_eq!(err("[1]").to_string(), "item 0: must be a JSON object");
        assert_eq!(
            err("[1]").to_json(),
            r#"{"status":"error","error":"item 0: must be a JSON object","item":0}"#
        );
    }

    fn sample_body() -> Vec<u8> {
        format!(
            "{TYPICAL}\n{{\"message\":\"x\",\"level\":3,\"timestamp\":1795341600.5,\"app\":\"a\",\"host\":\"h\",\"k\":[1,{{\"a\":null}}]}}\n"
        )
        .into_bytes()
    }

    fn small_limits() -> Limits {
        Limits {
            max_message_bytes: 16,
            max_attrs_bytes: 64,
            max_items: 4,
        }
    }

    fn check_invariants(body: &[u8]) -> Result<(), TestCaseError> {
        let limits = small_limits();
        match decode(body, &limits) {
            Ok(items) => {
                prop_assert!(!items.is_empty() && items.len() <= limits.max_items);
                for p in items {
                    prop_assert!(p.msg.len() <= limits.max_message_bytes);
                    let bytes: usize = p
                        .attrs
                        .iter()
                        .filter(|(k, _)| k.as_str() != ATTR_TRUNCATED)
                        .map(|(k, v)| k.len() + v.len())
                        .sum();
                    prop_assert!(bytes <= limits.max_attrs_bytes);
                    prop_assert!(p.app.as_deref().is_none_or(names::is_valid));
                    prop_assert!(p.service.as_deref().is_none_or(names::is_valid));
                }
            }
            Err(e) => {
                let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
                prop_assert_eq!(&json["status"], "error");
                prop_assert_eq!(json["item"].as_u64().map(|i| i as usize), e.item());
            }
        }
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Cut(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (
                any::<usize>(),
                prop::sample::select(b"{}[],:\"\\ 0e-.nt\n".to_vec())
            )
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
            any::<usize>().prop_map(Mutation::Cut),
        ]
    }

    fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
        for m in mutations {
            if data.is_empty() {
                break;
            }
            let n = data.len();
            match *m {
                Mutation::Set(i, b) => data[i % n] = b,
                Mutation::Insert(i, b) => data.insert(i % (n + 1), b),
                Mutation::Remove(i) => {
                    data.remove(i % n);
                }
                Mutation::Cut(i) => data.truncate(i % n),
            }
        }
        data
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            check_invariants(&body)?;
            let _ = gunzip(&body, 4096);
        }

        #[test]
        fn mutated_bodies_never_panic(mutations in prop::collection::vec(mutation(), 1..8)) {
            let body = mutate(sample_body(), &mutations);
            check_invariants(&body)?;
            let mut array = b"[".to_vec();
            array.extend(sample_body().iter().map(|&b| if b == b'\n' { b',' } else { b }));
            array.pop();
            array.push(b']');
            check_invariants(&mutate(array, &mutations))?;
        }

        #[test]
        fn mutated_gzip_never_panics(mutations in prop::collection::vec(mutation(), 1..4)) {
            let packed = mutate(gz(&sample_body()), &mutations);
            if let Ok(plain) = gunzip(&packed, 4096) {
                prop_assert!(plain.len() <= 4096);
                check_invariants(&plain)?;
            }
        }

        #[test]
        fn valid_items_round_trip(
            msg in ".{0,40}",
            level in 0u64..8,
            meta in prop::collection::btree_map("[a-z]{1,5}", ".{0,8}", 0..4),
        ) {
            let body = serde_json::json!({"message": msg, "level": level, "metadata": meta}).to_string();
            let limits = Limits { max_message_bytes: 1 << 10, max_attrs_bytes: 1 << 10, max_items: 10 };
            let p = decode(body.as_bytes(), &limits).unwrap().remove(0);
            prop_assert_eq!(p.msg, msg);
            prop_assert_eq!(Some(p.level), Level::from_syslog_severity(level));
            prop_assert_eq!(p.attrs, meta);
        }
    }
}
