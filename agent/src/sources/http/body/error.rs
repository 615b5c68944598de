//! Why a body was rejected: one [`BodyError`] naming the item and field at
//! fault, and the JSON error answer made from it.

use std::fmt;

use serde::Serialize;

/// Why a body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body holds no item at all.
    #[error("no records")]
    NoRecords,
    /// The body holds more than [`Limits::max_items`](super::Limits::max_items)
    /// items; `item` is the index of the first one too many, which equals
    /// `max`.
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

    pub(super) fn field_error(item: usize, field: &'static str, reason: impl Into<String>) -> Self {
        BodyError::InvalidField {
            item,
            field,
            reason: reason.into(),
        }
    }

    pub(super) fn from_json(err: &serde_json::Error, item: Option<usize>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::body::tests::err;

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
}
