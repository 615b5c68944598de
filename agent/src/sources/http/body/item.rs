//! The streaming item deserializer: reads one item of the body straight
//! from the JSON text into a [`RawItem`], borrowing strings from the body
//! where it can and keeping nested objects and arrays as compact JSON text,
//! before any field rule is checked.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A string borrowed from the body when it has no escapes.
type Text<'de> = Cow<'de, str>;

/// One item as parsed, before any rule is checked.
#[derive(Default)]
pub(super) struct RawItem<'de> {
    pub(super) is_object: bool,
    pub(super) message: Option<Val<'de>>,
    pub(super) service: Option<Val<'de>>,
    pub(super) app: Option<Val<'de>>,
    pub(super) host: Option<Val<'de>>,
    pub(super) level: Option<Val<'de>>,
    pub(super) timestamp: Option<Val<'de>>,
    pub(super) metadata: Option<Meta>,
    pub(super) extras: Vec<(Text<'de>, Val<'de>)>,
}

/// A JSON value; objects and arrays are kept as compact JSON text.
pub(super) enum Val<'de> {
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
    pub(super) fn into_attr(self) -> Option<String> {
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
pub(super) fn float_text(x: f64) -> String {
    // Serialising a float cannot fail.
    serde_json::to_string(&x).unwrap_or_default()
}

/// The `metadata` field as parsed: an object's entries are already
/// attributes.
pub(super) enum Meta {
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

#[cfg(test)]
mod tests {
    use crate::sources::http::body::tests::{attrs, one};

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
}
