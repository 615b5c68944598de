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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::de::{SliceRead, StrRead};
use sluice_core::Level;
use sluice_core::names;
use sluice_core::record::{ATTR_TRUNCATED, parse_ts};

/// Longest accepted `host`, in bytes.
const MAX_HOST_BYTES: usize = 255;
/// Longest piece of client text echoed back in an error message, in bytes.
const MAX_ECHO_BYTES: usize = 64;
/// Values accepted for `level`, as listed in error messages.
const ACCEPTED_LEVELS: &str = "accepted: trace, debug, info, warn, error, fatal or 0-7";
/// The name rule, as quoted in error messages.
const NAME_RULE: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

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

/// Why a body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body holds no item at all.
    #[error("no records")]
    NoRecords,
    /// The body holds more than [`Limits::max_items`] items; `item` is the
    /// index of the first one too many, which equals `max`.
    #[error("item {item}: too many records, at most {max} per request")]
    TooManyRecords {
        /// Index of the first item over the limit.
        item: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not valid JSON.
    #[error("{}invalid JSON at line {line} column {column}: {reason}", ItemPrefix(*.item))]
    InvalidJson {
        /// The item being read when the error was found; `None` after the
        /// closing `]` of an array.
        item: Option<usize>,
        /// 1-based line within the body.
        line: usize,
        /// 1-based column within the line, in bytes.
        column: usize,
        /// What the parser expected or found.
        reason: String,
    },
    /// An item is valid JSON but not an object.
    #[error("item {item}: must be a JSON object")]
    NotAnObject {
        /// Index of the item.
        item: usize,
    },
    /// A top-level field of an item has an empty name.
    #[error("item {item}: field names must be non-empty")]
    EmptyFieldName {
        /// Index of the item.
        item: usize,
    },
    /// A field of an item breaks its rule.
    #[error("item {item}: field {field:?}: {reason}")]
    InvalidField {
        /// Index of the item.
        item: usize,
        /// The field at fault (`metadata` for attribute problems).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Writes `item N: ` for a known item and nothing otherwise.
struct ItemPrefix(Option<usize>);

impl fmt::Display for ItemPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(item) => write!(f, "item {item}: "),
            None => Ok(()),
        }
    }
}

/// The JSON form of a [`BodyError`].
#[derive(Serialize)]
struct ErrorJson<'a> {
    status: &'static str,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl BodyError {
    /// The 0-based index of the item at fault, when the error concerns one.
    pub fn item(&self) -> Option<usize> {
        match self {
            BodyError::NoRecords => None,
            BodyError::InvalidJson { item, .. } => *item,
            BodyError::TooManyRecords { item, .. }
            | BodyError::NotAnObject { item }
            | BodyError::EmptyFieldName { item }
            | BodyError::InvalidField { item, .. } => Some(*item),
        }
    }

    /// The name of the field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            BodyError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The error response body:
    /// `{"status":"error","error":"<display text>","item":3,"field":"level"}`,
    /// without `item` or `field` when [`item`](Self::item) or
    /// [`field`](Self::field) is `None`.
    pub fn to_json(&self) -> String {
        let body = ErrorJson {
            status: "error",
            error: self.to_string(),
            item: self.item(),
            field: self.field(),
        };
        // Serialising strings and integers cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }

    fn field_error(item: usize, field: &'static str, reason: impl Into<String>) -> Self {
        BodyError::InvalidField {
            item,
            field,
            reason: reason.into(),
        }
    }

    fn from_json(err: &serde_json::Error, item: Option<usize>) -> Self {
        let (line, column) = (err.line(), err.column());
        let text = err.to_string();
        let suffix = format!(" at line {line} column {column}");
        let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        BodyError::InvalidJson {
            item,
            line,
            column,
            reason,
        }
    }
}

/// Why a gzip body could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    /// The decompressed body would exceed the limit.
    #[error("decompressed body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not valid gzip (bad header, corrupt or truncated data,
    /// checksum mismatch, trailing garbage).
    #[error("invalid gzip body: {0}")]
    Invalid(String),
}

/// Decompresses a gzip body of one or more members into at most `limit`
/// bytes.
///
/// Decompression stops as soon as the output would pass `limit`, and the
/// output buffer never grows beyond `limit` bytes, so a gzip bomb costs at
/// most `limit` bytes of memory and the time to inflate them.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    const CHUNK: usize = 64 * 1024;
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    let chunk_len = CHUNK.min(limit.saturating_add(1));
    // Text usually compresses 4–10×; start near that and grow by doubling.
    let mut out: Vec<u8> =
        Vec::with_capacity(body.len().saturating_mul(4).max(chunk_len).min(limit));
    let mut chunk = vec![0u8; chunk_len];
    loop {
        // Never ask for more than one byte past the limit.
        let want = chunk_len.min((limit - out.len()).saturating_add(1));
        let n = match decoder.read(&mut chunk[..want]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Invalid(e.to_string())),
        };
        let needed = out.len() + n;
        if needed > limit {
            return Err(GunzipError::TooLarge { limit });
        }
        if needed > out.capacity() {
            let target = out.capacity().saturating_mul(2).max(needed).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
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
    // Byte sums over short chunks cannot overflow and compile to vector code.
    let count: usize = body
        .chunks(128)
        .map(|chunk| usize::from(chunk.iter().map(|&b| u8::from(b == marker)).sum::<u8>()))
        .sum();
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

/// A string borrowed from the body when it has no escapes.
type Text<'de> = Cow<'de, str>;

/// One item as parsed, before any rule is checked.
#[derive(Default)]
struct RawItem<'de> {
    is_object: bool,
    message: Option<Val<'de>>,
    service: Option<Val<'de>>,
    app: Option<Val<'de>>,
    host: Option<Val<'de>>,
    level: Option<Val<'de>>,
    timestamp: Option<Val<'de>>,
    metadata: Option<Meta>,
    extras: Vec<(Text<'de>, Val<'de>)>,
}

/// A JSON value; objects and arrays are kept as compact JSON text.
enum Val<'de> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Text<'de>),
    Object(String),
    Array(String),
}

impl Val<'_> {
    /// The attribute form of the value; `None` for null.
    fn into_attr(self) -> Option<String> {
        Some(match self {
            Val::Null => return None,
            Val::Bool(b) => b.to_string(),
            Val::I64(n) => n.to_string(),
            Val::U64(n) => n.to_string(),
            Val::F64(x) => float_text(x),
            Val::Str(s) => s.into_owned(),
            Val::Object(text) | Val::Array(text) => text,
        })
    }
}

/// JSON text of a float, in shortest round-trip form.
fn float_text(x: f64) -> String {
    // Serialising a float cannot fail.
    serde_json::to_string(&x).unwrap_or_default()
}

/// The `metadata` field as parsed: an object's entries are already
/// attributes.
enum Meta {
    Null,
    Object(BTreeMap<String, String>),
    /// An object with an empty key.
    EmptyKey,
    /// Not an object.
    Other,
}

/// A top-level key of an item.
enum Key<'de> {
    Message,
    Service,
    App,
    Host,
    Level,
    Timestamp,
    Metadata,
    Other(Text<'de>),
}

impl<'de> Key<'de> {
    fn known(name: &str) -> Option<Key<'de>> {
        Some(match name {
            "message" => Key::Message,
            "service" => Key::Service,
            "app" => Key::App,
            "host" => Key::Host,
            "level" => Key::Level,
            "timestamp" => Key::Timestamp,
            "metadata" => Key::Metadata,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::known(v).unwrap_or(Key::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::known(v).unwrap_or_else(|| Key::Other(Cow::Owned(v.to_owned()))))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Deserialises a string, borrowing it from the body when possible.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> Deserialize<'de> for RawItem<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// Builds a [`RawItem`]; any value other than an object gives one with
/// `is_object == false`.
struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = RawItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a log record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawItem<'de>, A::Error> {
        let mut item = RawItem {
            is_object: true,
            ..RawItem::default()
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key {
                Key::Message => item.message = Some(map.next_value()?),
                Key::Service => item.service = Some(map.next_value()?),
                Key::App => item.app = Some(map.next_value()?),
                Key::Host => item.host = Some(map.next_value()?),
                Key::Level => item.level = Some(map.next_value()?),
                Key::Timestamp => item.timestamp = Some(map.next_value()?),
                Key::Metadata => item.metadata = Some(map.next_value()?),
                Key::Other(name) => {
                    let value = map.next_value()?;
                    item.extras.push((name, value));
                }
            }
        }
        Ok(item)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawItem<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawItem::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawItem<'de>, E> {
        Ok(RawItem::default())
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Val<'de>, A::Error> {
        let mut text = String::new();
        JsonText(&mut text).visit_seq(seq)?;
        Ok(Val::Array(text))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<'de>, A::Error> {
        let mut text = String::new();
        JsonText(&mut text).visit_map(map)?;
        Ok(Val::Object(text))
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MetaVisitor)
    }
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = Meta;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
        let mut attrs = BTreeMap::new();
        let mut empty_key = false;
        while let Some(key) = map.next_key_seed(TextSeed)? {
            let value = map.next_value::<Val<'de>>()?;
            empty_key |= key.is_empty();
            if let Some(text) = value.into_attr() {
                attrs.insert(key.into_owned(), text);
            }
        }
        Ok(if empty_key {
            Meta::EmptyKey
        } else {
            Meta::Object(attrs)
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Meta, E> {
        Ok(Meta::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Meta, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Meta::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Meta, E> {
        Ok(Meta::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Meta, E> {
        Ok(Meta::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Meta, E> {
        Ok(Meta::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Meta, E> {
        Ok(Meta::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Meta, E> {
        Ok(Meta::Other)
    }
}

/// Re-serialises any value as compact JSON text, appending to a string.
struct JsonText<'a>(&'a mut String);

impl JsonText<'_> {
    fn push_json<T: Serialize + ?Sized>(&mut self, value: &T) {
        // Serialising a string or a number cannot fail.
        self.0
            .push_str(&serde_json::to_string(value).unwrap_or_default());
    }
}

impl<'de> DeserializeSeed<'de> for JsonText<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonText<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push_str("null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push_str(&v.to_string());
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push_str(&float_text(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.push_json(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push('[');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(',');
            }
            if seq.next_element_seed(JsonText(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.0.push('{');
        let mut first = true;
        while let Some(key) = map.next_key_seed(TextSeed)? {
            if !first {
                self.0.push(',');
            }
            first = false;
            self.push_json(key.as_ref());
            self.0.push(':');
            map.next_value_seed(JsonText(&mut *self.0))?;
        }
        self.0.push('}');
        Ok(())
    }
}

/// Checks an item against the rules and builds its record.
fn convert(raw: RawItem<'_>, item: usize, limits: &Limits) -> Result<Posted, BodyError> {
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

/// Maps a syslog severity to a level.
fn syslog_level(severity: u64) -> Option<Level> {
    Some(match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        7 => Level::Debug,
        _ => return None,
    })
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
            [digit @ b'0'..=b'7'] => syslog_level(u64::from(digit - b'0')),
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
        Some(Val::U64(n)) => syslog_level(n).ok_or_else(|| unknown(n.to_string())),
        Some(Val::I64(n)) => Err(unknown(n.to_string())),
        Some(Val::F64(x)) => Err(unknown(float_text(x))),
        Some(_) => Err(BodyError::field_error(
            item,
            "level",
            "must be a string or a number 0-7",
        )),
    }
}

/// Nanoseconds per unit, guessed from the magnitude of an epoch number.
fn epoch_scale(magnitude: f64) -> i64 {
    if magnitude < 1e11 {
        1_000_000_000
    } else if magnitude < 1e14 {
        1_000_000
    } else if magnitude < 1e17 {
        1_000
    } else {
        1
    }
}

fn epoch_int(n: i128) -> Option<i64> {
    // `n` fits in 65 bits and the scale in 30, so the product cannot overflow.
    let scale = epoch_scale(n.unsigned_abs() as f64);
    i64::try_from(n * i128::from(scale)).ok()
}

fn epoch_float(x: f64) -> Option<i64> {
    let scale = epoch_scale(x.abs());
    // Far outside the i64 range already; below this bound the conversions
    // to i128 are exact, and `try_from` makes the precise check.
    if (x * scale as f64).abs() >= 1e19 {
        return None;
    }
    // Whole and fractional parts apart, so a fraction of seconds keeps the
    // precision of the float rather than that of the scaled product.
    let whole = x.trunc();
    let fraction = ((x - whole) * scale as f64).round();
    let ns = (whole as i128) * i128::from(scale) + fraction as i128;
    i64::try_from(ns).ok()
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
        Some(Val::I64(n)) => epoch_int(i128::from(n))
            .map(Some)
            .ok_or_else(|| out_of_range(n.to_string())),
        Some(Val::U64(n)) => epoch_int(i128::from(n))
            .map(Some)
            .ok_or_else(|| out_of_range(n.to_string())),
        Some(Val::F64(x)) => epoch_float(x)
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
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    const LIMITS: Limits = Limits {
        max_message_bytes: 1024,
        max_attrs_bytes: 1024,
        max_items: 100,
    };

    fn ok(body: &str) -> Vec<Posted> {
        decode(body.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn one(body: &str) -> Posted {
        let mut all = ok(body);
        assert_eq!(all.len(), 1, "{body}");
        all.remove(0)
    }

    fn err(body: &str) -> BodyError {
        match decode(body.as_bytes(), &LIMITS) {
            Ok(p) => panic!("{body}: accepted as {p:?}"),
            Err(e) => e,
        }
    }

    /// The item's error, checked to name `field`.
    fn field_err(item: &str, field: &str) -> String {
        let e = err(item);
        assert_eq!(e.field(), Some(field), "{item}: {e}");
        assert_eq!(e.item(), Some(0), "{item}: {e}");
        e.to_string()
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const TYPICAL: &str = r#"{"service":"checkout","level":"error","message":"payment declined for order 8812 card ****4242","timestamp":"2026-11-22T10:00:00.123Z","metadata":{"request_id":"req-123","user":"u-77"}}"#;

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
        // Float seconds keep sub-microsecond precision only as far as the float does.
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
    fn metadata_values_become_strings() {
        let p = one(
            r#"{"message":"m","metadata":{"s":"text","i":42,"n":-7,"f":1.5,"e":1e3,
                "t":true,"b":false,"z":null,"o":{"b":1,"a":[1,"x",null,{}]},"a":[],"u":"\u00e9\n"}}"#,
        );
        assert_eq!(
            p.attrs,
            attrs(&[
                ("s", "text"),
                ("i", "42"),
                ("n", "-7"),
                ("f", "1.5"),
                ("e", "1000.0"),
                ("t", "true"),
                ("b", "false"),
                ("o", r#"{"b":1,"a":[1,"x",null,{}]}"#),
                ("a", "[]"),
                ("u", "é\n"),
            ])
        );
        // Nested strings are re-escaped as JSON.
        let p = one(r#"{"message":"m","metadata":{"o":{"k\"ey":"v\u0001\n"}}}"#);
        assert_eq!(p.attrs["o"], r#"{"k\"ey":"v\u0001\n"}"#);
        let back: serde_json::Value = serde_json::from_str(&p.attrs["o"]).unwrap();
        assert_eq!(back["k\"ey"], "v\u{1}\n");
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

    #[test]
    fn error_accessors_and_json() {
        let e = err(
            r#"[{"message":"a"},{"message":"a"},{"message":"a"},{"message":"m","level":"loud"}]"#,
        );
        assert_eq!(e.item(), Some(3));
        assert_eq!(e.field(), Some("level"));
        assert_eq!(
            e.to_string(),
            r#"item 3: field "level": unknown level "loud" (accepted: trace, debug, info, warn, error, fatal or 0-7)"#
        );
        assert_eq!(
            e.to_json(),
            r#"{"status":"error","error":"item 3: field \"level\": unknown level \"loud\" (accepted: trace, debug, info, warn, error, fatal or 0-7)","item":3,"field":"level"}"#
        );
        assert_eq!(
            BodyError::NoRecords.to_json(),
            r#"{"status":"error","error":"no records"}"#
        );
    }

    #[test]
    fn gzip_round_trip() {
        let body = format!("{TYPICAL}\n{TYPICAL}\n");
        let out = gunzip(&gz(body.as_bytes()), 1 << 20).unwrap();
        assert_eq!(out, body.as_bytes());
        assert_eq!(decode(&out, &LIMITS).unwrap().len(), 2);
        // Exactly at the limit is fine; one byte less is not.
        assert_eq!(
            gunzip(&gz(body.as_bytes()), body.len()).unwrap().len(),
            body.len()
        );
        assert_eq!(
            gunzip(&gz(body.as_bytes()), body.len() - 1),
            Err(GunzipError::TooLarge {
                limit: body.len() - 1
            })
        );
        assert_eq!(gunzip(&gz(b""), 0).unwrap(), b"");
        // No gzip member at all is not a gzip body.
        assert!(matches!(gunzip(b"", 10), Err(GunzipError::Invalid(_))));
    }

    #[test]
    fn multi_member_gzip() {
        let mut body = gz(b"{\"message\":\"a\"}\n");
        body.extend(gz(b""));
        body.extend(gz(b"{\"message\":\"b\"}\n"));
        let out = gunzip(&body, 1 << 20).unwrap();
        assert_eq!(out, b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..100 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let start = Instant::now();
        let limit = 1 << 20;
        assert_eq!(gunzip(&bomb, limit), Err(GunzipError::TooLarge { limit }));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn gunzip_grows_its_buffer_only_up_to_the_limit() {
        let data = vec![b'x'; 300_000];
        let out = gunzip(&gz(&data), 300_000).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out.capacity() <= 300_000, "{}", out.capacity());
    }

    #[test]
    fn broken_gzip_is_invalid() {
        let good = gz(TYPICAL.as_bytes());
        let invalid = |data: &[u8]| matches!(gunzip(data, 1 << 20), Err(GunzipError::Invalid(_)));
        // Truncated anywhere (including the CRC trailer).
        for cut in [1, 5, 10, 20, good.len() - 4, good.len() - 1] {
            assert!(invalid(&good[..cut]), "cut at {cut}");
        }
        // Not gzip at all.
        assert!(invalid(TYPICAL.as_bytes()));
        // Corrupted checksum.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert!(invalid(&bad));
        // Trailing garbage after a member.
        let mut bad = good.clone();
        bad.extend_from_slice(b"garbage!");
        assert!(invalid(&bad));
        let e = gunzip(&good[..10], 100).unwrap_err();
        assert!(e.to_string().starts_with("invalid gzip body: "), "{e}");
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
            prop_assert_eq!(Some(p.level), syslog_level(level));
            prop_assert_eq!(p.attrs, meta);
        }
    }
}
