//! Value types shared by several sections, checked while parsing so a bad
//! value is reported with its line.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A name that is a valid `app`/`service` token (see [`crate::names`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(pub(super) String);

impl Name {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Name, crate::names::NameError> {
        crate::names::validate(s)?;
        Ok(Name(s.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A regular expression, compiled while parsing so a bad one is reported
/// with its line.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

// Checks of single values, for `deserialize_with`: an error is reported by
// the deserialiser at the value, so it carries the line.

/// A number of at least `min`.
pub(super) fn at_least<'de, D, T>(d: D, min: T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display,
{
    let v = T::deserialize(d)?;
    if v < min {
        return Err(serde::de::Error::custom(format!(
            "{v} is under the minimum of {min}"
        )));
    }
    Ok(v)
}

/// A number of at most `max`.
pub(super) fn at_most<'de, D, T>(d: D, max: T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display,
{
    let v = T::deserialize(d)?;
    if v > max {
        return Err(serde::de::Error::custom(format!(
            "{v} is over the limit of {max}"
        )));
    }
    Ok(v)
}

/// A number from `min` to `max`.
pub(super) fn between<'de, D, T>(d: D, min: T, max: T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display,
{
    let v = T::deserialize(d)?;
    if v < min || v > max {
        return Err(serde::de::Error::custom(format!(
            "{v} must be between {min} and {max}"
        )));
    }
    Ok(v)
}

/// A number greater than `min` (not NaN).
pub(super) fn greater_than<'de, D: Deserializer<'de>>(d: D, min: f64) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_nan() || v <= min {
        return Err(serde::de::Error::custom(format!(
            "{v} must be greater than {min}"
        )));
    }
    Ok(v)
}

/// A string that is not empty.
pub(super) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// A string that is not empty, of an optional key.
pub(super) fn some_non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    non_empty(d).map(Some)
}

/// A number of at least 1.
pub(super) fn positive<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display + From<u8>,
{
    at_least(d, T::from(1))
}
