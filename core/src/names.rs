//! Names that become parts of subjects and object keys: `app` and `service`.
//!
//! A valid name matches `^[a-z0-9][a-z0-9_-]{0,62}$`. Anything else is either
//! rejected ([`validate`]) or normalised ([`normalize`]) — lower-cased, with
//! every other byte replaced by `-` — and the caller counts a warning. A name
//! that was not checked here never reaches a subject or a key.

use std::borrow::Cow;

/// Longest valid name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Why a name is not a valid token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name {0:?} is longer than 63 bytes")]
    TooLong(String),
    /// The name has a byte outside `[a-z0-9_-]`, or starts with `_` or `-`.
    #[error("name {0:?} must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
    Invalid(String),
}

/// Whether `name` is a valid token.
pub fn is_valid(name: &str) -> bool {
    validate(name).is_ok()
}

/// Checks that `name` is a valid token.
pub fn validate(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(NameError::Empty);
    };
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.to_string()));
    }
    let first_ok = first.is_ascii_lowercase() || first.is_ascii_digit();
    let rest_ok = bytes[1..]
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(NameError::Invalid(name.to_string()))
    }
}

/// Turns any text into a valid token: lower-cases ASCII letters, replaces
/// every other disallowed character with `-`, strips leading `-`/`_`, and
/// truncates to 63 bytes. Text with nothing usable becomes `unknown`.
/// Borrowed when the input was already valid.
pub fn normalize(name: &str) -> Cow<'_, str> {
    if is_valid(name) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len().min(MAX_NAME_LEN));
    for c in name.chars() {
        if out.len() >= MAX_NAME_LEN {
            break;
        }
        let c = c.to_ascii_lowercase();
        let mapped = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if out.is_empty() && (mapped == '-' || mapped == '_') {
            continue;
        }
        out.push(mapped);
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    debug_assert!(is_valid(&out));
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["shop", "a", "0", "web_1", "check-out", &"a".repeat(63)] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "Shop",
            "-x",
            "_x",
            "a.b",
            "a b",
            "a*",
            "a>",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("Shop.Front"), "shop-front");
        assert_eq!(normalize("--x"), "x");
        assert_eq!(normalize("***"), "unknown");
        assert_eq!(normalize(""), "unknown");
        assert_eq!(normalize("logs.>"), "logs--");
        assert!(matches!(normalize("shop"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn normalize_always_gives_a_valid_name(s in ".{0,100}") {
            let n = normalize(&s);
            prop_assert!(is_valid(&n));
            if is_valid(&s) { prop_assert_eq!(n.as_ref(), s.as_str()); }
        }
    }
}
