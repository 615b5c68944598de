//! The wire format between agents and the aggregation tier.
//!
//! Any language with a MessagePack library can publish or consume Sluice
//! batches:
//!
//! * **Subject**: `logs.<app>.<level>` with the level lower-case, e.g.
//!   `logs.shop.error` (see [`subject`]). `app` is always a valid name
//!   (`^[a-z0-9][a-z0-9_-]{0,62}$`), so it never contains `.`, `*` or `>`.
//! * **Payload**: one MessagePack array; each element is a map with string keys
//!   `id`, `ts`, `app`, `service`, `host`, `level`, `msg`, `attrs`, `source`.
//!   `ts` is an integer: nanoseconds since the Unix epoch, UTC. `level` is the
//!   upper-case level name. `attrs` is a map of string to string. Every record
//!   in one payload has the subject's app and level. Decoders ignore unknown
//!   keys, and `attrs` and `source` may be missing.
//! * **Header `Nats-Msg-Id`**: `<agent id>:<incarnation>:<spool sequence>:<level>`,
//!   e.g. `web-1:9f3c2a1b0d4e5f60:42:warn` (see [`msg_id`]). The incarnation
//!   is 16 lower-case hex digits, random, made when the agent's spool is
//!   made: a new spool (a re-imaged host, a container without its volume,
//!   another host with the same agent id) starts its sequence at 1 again but
//!   can never repeat an id an old spool used. A batch sent again from the
//!   same spool keeps its id, so JetStream's duplicate window drops resends.
//!   Entries spooled by agents older than incarnations keep the id they had,
//!   `<agent id>:<spool sequence>:<level>`. Agent ids never contain `:`.
//!
//! Example payload, as JSON for readability:
//! `[{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BC","ts":1795428000123456789,"app":"shop",
//!   "service":"checkout","host":"web-1","level":"ERROR","msg":"payment declined",
//!   "attrs":{"request_id":"req-123"},"source":"file:/var/log/shop/checkout.log"}]`

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{Level, Record};

/// Subject prefix of the `LOGS` stream.
pub const SUBJECT_PREFIX: &str = "logs";

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("payload is not a valid sluice batch: {0}")]
pub struct DecodeError(#[from] rmp_serde::decode::Error);

/// A record by reference, for encoding without building a [`Record`]
/// (the agent's hot path shares app, service, host and source between
/// records).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecordRef<'a> {
    /// See [`Record::id`].
    pub id: &'a str,
    /// See [`Record::ts`]: nanoseconds since the epoch.
    pub ts: i64,
    /// See [`Record::app`].
    pub app: &'a str,
    /// See [`Record::service`].
    pub service: &'a str,
    /// See [`Record::host`].
    pub host: &'a str,
    /// See [`Record::level`].
    pub level: Level,
    /// See [`Record::msg`].
    pub msg: &'a str,
    /// See [`Record::attrs`].
    pub attrs: &'a BTreeMap<String, String>,
    /// See [`Record::source`].
    pub source: &'a str,
}

/// Builds one wire payload record by record.
#[derive(Debug)]
pub struct BatchEncoder {
    out: Vec<u8>,
    left: usize,
}

impl BatchEncoder {
    /// Starts a payload of exactly `count` records; `capacity` is a size
    /// hint in bytes.
    pub fn new(count: usize, capacity: usize) -> BatchEncoder {
        let mut out = Vec::with_capacity(capacity);
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, count as u32);
        BatchEncoder { out, left: count }
    }

    /// Appends one record.
    pub fn push(&mut self, record: &RecordRef<'_>) {
        debug_assert!(self.left > 0, "more records than announced");
        self.left = self.left.saturating_sub(1);
        let mut ser = rmp_serde::Serializer::new(&mut self.out).with_struct_map();
        // Strings, integers and a string map always serialise.
        let _ = record.serialize(&mut ser);
    }

    /// The finished payload.
    pub fn finish(self) -> Vec<u8> {
        debug_assert_eq!(self.left, 0, "fewer records than announced");
        self.out
    }
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(r: &'a Record) -> Self {
        RecordRef {
            id: &r.id,
            ts: r.ts,
            app: &r.app,
            service: &r.service,
            host: &r.host,
            level: r.level,
            msg: &r.msg,
            attrs: &r.attrs,
            source: &r.source,
        }
    }
}

#[derive(Deserialize)]
struct WireOwned {
    id: String,
    ts: i64,
    app: String,
    service: String,
    host: String,
    level: Level,
    msg: String,
    #[serde(default)]
    attrs: BTreeMap<String, String>,
    #[serde(default)]
    source: String,
}

impl From<WireOwned> for Record {
    fn from(w: WireOwned) -> Self {
        Record {
            id: w.id,
            ts: w.ts,
            app: w.app,
            service: w.service,
            host: w.host,
            level: w.level,
            msg: w.msg,
            attrs: w.attrs,
            source: w.source,
        }
    }
}

/// Encodes records as one wire payload.
pub fn encode_batch(records: &[Record]) -> Vec<u8> {
    let size: usize = records.iter().map(|r| r.msg.len() + 160).sum();
    let mut encoder = BatchEncoder::new(records.len(), size);
    for record in records {
        encoder.push(&RecordRef::from(record));
    }
    encoder.finish()
}

/// Decodes one wire payload.
pub fn decode_batch(payload: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let wire: Vec<WireOwned> = rmp_serde::from_slice(payload)?;
    Ok(wire.into_iter().map(Record::from).collect())
}

/// A record borrowed from a payload: decoding it allocates nothing but the
/// list of attributes. For consumers that look at records without keeping
/// them (the aggregator, the alerter).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordView<'a> {
    /// See [`Record::id`].
    #[serde(borrow)]
    pub id: &'a str,
    /// See [`Record::ts`]: nanoseconds since the epoch.
    pub ts: i64,
    /// See [`Record::app`].
    #[serde(borrow)]
    pub app: &'a str,
    /// See [`Record::service`].
    #[serde(borrow)]
    pub service: &'a str,
    /// See [`Record::host`].
    #[serde(borrow)]
    pub host: &'a str,
    /// See [`Record::level`].
    pub level: Level,
    /// See [`Record::msg`].
    #[serde(borrow)]
    pub msg: &'a str,
    /// See [`Record::attrs`].
    #[serde(default, borrow)]
    pub attrs: AttrsView<'a>,
    /// See [`Record::source`].
    #[serde(default, borrow)]
    pub source: &'a str,
}

/// A record's attributes borrowed from a payload, in payload order (the
/// first few held inline, without a heap allocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrsView<'a>(pub smallvec::SmallVec<[(&'a str, &'a str); 4]>);

impl<'a> AttrsView<'a> {
    /// The value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AttrsView<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = AttrsView<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = smallvec::SmallVec::new();
                while let Some((k, v)) = m.next_entry::<&'de str, &'de str>()? {
                    out.push((k, v));
                }
                Ok(AttrsView(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<'a> From<&'a Record> for RecordView<'a> {
    fn from(r: &'a Record) -> Self {
        RecordView {
            id: &r.id,
            ts: r.ts,
            app: &r.app,
            service: &r.service,
            host: &r.host,
            level: r.level,
            msg: &r.msg,
            attrs: AttrsView(
                r.attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
            source: &r.source,
        }
    }
}

/// Decodes one wire payload into records borrowed from it.
pub fn decode_views(payload: &[u8]) -> Result<Vec<RecordView<'_>>, DecodeError> {
    Ok(rmp_serde::from_slice(payload)?)
}

/// The subject records of `app` at `level` are published on.
pub fn subject(app: &str, level: Level) -> String {
    debug_assert!(crate::names::is_valid(app));
    format!("{SUBJECT_PREFIX}.{app}.{}", level.as_subject_token())
}

/// The `Nats-Msg-Id` of the batch of `level` records in spool entry `seq` of
/// agent `agent_id`, whose spool has the given incarnation: `None` only for
/// entries spooled before spools had one (see the module docs).
pub fn msg_id(agent_id: &str, incarnation: Option<u64>, seq: u64, level: Level) -> String {
    let level = level.as_subject_token();
    match incarnation {
        Some(inc) => format!("{agent_id}:{inc:016x}:{seq}:{level}"),
        None => format!("{agent_id}:{seq}:{level}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(i: u32, level: Level) -> Record {
        Record {
            id: format!("id-{i}"),
            ts: 1_795_428_000_123_456_789 + i as i64,
            app: "shop".into(),
            service: "checkout".into(),
            host: "web-1".into(),
            level,
            msg: format!("message {i}"),
            attrs: [("request_id".to_string(), format!("req-{i}"))].into(),
            source: "file:/x.log".into(),
        }
    }

    #[test]
    fn round_trips() {
        let records: Vec<Record> = (0..100).map(|i| record(i, Level::Warn)).collect();
        let payload = encode_batch(&records);
        assert_eq!(decode_batch(&payload).unwrap(), records);
    }

    #[test]
    fn payload_is_an_array_of_maps_with_integer_ts() {
        let payload = encode_batch(&[record(1, Level::Error)]);
        let value: serde_json::Value = rmp_serde::from_slice(&payload).unwrap();
        let first = &value.as_array().unwrap()[0];
        assert_eq!(
            first["ts"],
            serde_json::json!(1_795_428_000_123_456_790_i64)
        );
        assert_eq!(first["level"], "ERROR");
        assert_eq!(first["attrs"]["request_id"], "req-1");
    }

    #[test]
    fn decoder_tolerates_missing_optional_and_unknown_keys() {
        let value = serde_json::json!([{ "id": "a", "ts": 5, "app": "x", "service": "y",
            "host": "h", "level": "INFO", "msg": "m", "extra": 1 }]);
        let payload = rmp_serde::to_vec(&value).unwrap();
        let records = decode_batch(&payload).unwrap();
        assert_eq!(records[0].attrs.len(), 0);
        assert_eq!(records[0].source, "");
    }

    #[test]
    fn views_borrow_the_same_records() {
        let records: Vec<Record> = (0..50).map(|i| record(i, Level::Fatal)).collect();
        let payload = encode_batch(&records);
        let views = decode_views(&payload).unwrap();
        let expected: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
        assert_eq!(views, expected);
        assert_eq!(views[3].attrs.get("request_id"), Some("req-3"));
        assert_eq!(views[3].attrs.get("nope"), None);
        let value = serde_json::json!([{ "id": "a", "ts": 5, "app": "x", "service": "y",
            "host": "h", "level": "warning", "msg": "m", "extra": [1, 2] }]);
        let bytes = rmp_serde::to_vec(&value).unwrap();
        let v = decode_views(&bytes).unwrap();
        assert_eq!(
            (v[0].level, v[0].attrs.0.len(), v[0].source),
            (Level::Warn, 0, "")
        );
        assert!(decode_views(b"\xc1garbage").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_batch(b"\xc1\xc1garbage").is_err());
        assert!(decode_batch(&[]).is_err());
        let payload = encode_batch(&[record(1, Level::Info)]);
        assert!(decode_batch(&payload[..payload.len() - 3]).is_err());
    }

    #[test]
    fn subjects_and_ids() {
        assert_eq!(subject("shop", Level::Error), "logs.shop.error");
        assert_eq!(msg_id("web-1", None, 42, Level::Warn), "web-1:42:warn");
        assert_eq!(
            msg_id("web-1", Some(0x9f3c_2a1b_0d4e_5f60), 42, Level::Warn),
            "web-1:9f3c2a1b0d4e5f60:42:warn"
        );
        assert_eq!(
            msg_id("web-1", Some(7), 1, Level::Info),
            "web-1:0000000000000007:1:info"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&bytes);
            let _ = decode_views(&bytes);
        }

        #[test]
        fn any_text_round_trips(msg in ".*", key in ".{0,8}", value in ".*") {
            let mut r = record(0, Level::Debug);
            r.msg = msg;
            r.attrs.insert(key, value);
            let payload = encode_batch(std::slice::from_ref(&r));
            prop_assert_eq!(decode_batch(&payload).unwrap(), vec![r]);
        }
    }
}
