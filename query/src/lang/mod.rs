//! The query language. This comment is its specification.
//!
//! A query is a boolean expression over records. The empty query (or one of
//! only spaces) matches every record.
//!
//! # Terms
//!
//! | form | matches a record when |
//! |---|---|
//! | `word` | the word's tokens occur, in order and adjacent, in the message or in one attribute value |
//! | `"a phrase"` | the same, for every token of the phrase: `"payment declined"` |
//! | `pay*` | some token of the message or of an attribute value starts with `pay` |
//! | `/regex/` | the regular expression matches somewhere in the message |
//! | `field:value` | the field's value equals `value` (see below) |
//! | `field:"a value"` | the same, for a value with spaces or special characters |
//! | `field:pre*` | the field's value starts with `pre` |
//! | `field:/regex/` | the regular expression matches somewhere in the field's value |
//! | `level:warn`, `level:>=warn` | the level equals, or compares (`>=`, `>`, `<=`, `<`, `=`) |
//!
//! Tokens are the sidecar's (see `sluice_core::index`): runs of letters and
//! digits, lower-cased, at least 2 and at most 64 characters, at most the
//! first 256 of a text. So words match whole words, ignoring case:
//! `declined` matches `Payment DECLINED`, not `undeclined`. A word with no
//! token under those rules (a single character such as `x`, or only
//! punctuation) matches when it is a case-insensitive substring of the
//! message or of an attribute value. A `*` prefix is lower-cased and matched
//! against tokens; it may not be empty.
//!
//! Regular expressions use the syntax of the Rust `regex` crate, are
//! case-sensitive unless they start with `(?i)`, and `\/` stands for `/`.
//! Inside quotes `\"` stands for `"` and `\\` for `\`.
//!
//! # Fields
//!
//! `app`, `service`, `host`, `source` and `id` compare the record's field;
//! `msg` (or `message`) searches the message alone, with the word rules
//! above; `level` compares severity (`trace` < `debug` < `info` < `warn` <
//! `error` < `fatal`, aliases such as `warning` and `err` accepted). Any
//! other name is an attribute key: `request_id:req-123` matches records whose
//! `request_id` attribute is `req-123`. Field names are case-insensitive,
//! attribute keys are not. Values compare ignoring case; a record without
//! the attribute does not match.
//!
//! # Combining
//!
//! Terms next to each other must all match (`AND` may be written between
//! them). `OR` between two terms matches either. `-term` or `NOT term`
//! matches when the term does not. Parentheses group. `NOT` binds tightest,
//! then `AND`, then `OR`: `a b OR c` is `(a AND b) OR c`. The keywords are
//! upper case; lower-case `or` is a word.
//!
//! # Errors
//!
//! A query that does not follow these rules is refused with the position (a
//! 1-based character count) and what was expected there, for example
//! `at 7: expected a term after OR, found the end of the query`.

mod eval;
mod lexer;
mod literals;
mod parser;

pub use eval::Pruning;
pub use literals::LineFilter;
pub use parser::parse;

use sluice_core::Level;

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Matches every record (the empty query).
    All,
    /// Every part matches.
    And(Vec<Expr>),
    /// Some part matches.
    Or(Vec<Expr>),
    /// The part does not match.
    Not(Box<Expr>),
    /// One term.
    Term(Term),
}

/// What a term looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The message and every attribute value (a term without a field).
    Text,
    /// The message alone.
    Msg,
    App,
    Service,
    Host,
    Source,
    Id,
    Level,
    /// An attribute, by key.
    Attr(String),
}

/// How a term compares.
#[derive(Debug, Clone)]
pub enum Value {
    /// A word or a quoted phrase: `raw` as written (unquoted), `tokens` its
    /// tokens.
    Text { raw: String, tokens: Vec<String> },
    /// A `*` prefix, lower-cased, not empty.
    Prefix(String),
    /// A `/regex/`.
    Regex(regex::Regex),
    /// A level comparison.
    Level(Cmp, Level),
}

/// A comparison of levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Cmp {
    /// Whether `level` compares so with `to`.
    pub fn holds(self, level: Level, to: Level) -> bool {
        match self {
            Cmp::Eq => level == to,
            Cmp::Ge => level >= to,
            Cmp::Gt => level > to,
            Cmp::Le => level <= to,
            Cmp::Lt => level < to,
        }
    }
}

/// One `field:value` (or bare) term.
#[derive(Debug, Clone)]
pub struct Term {
    pub field: Field,
    pub value: Value,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct SyntaxError {
    /// 1-based character position in the query.
    pub position: usize,
    /// What was expected, and what was found.
    pub message: String,
}

/// The longest query accepted, in bytes: a guard against a request that
/// would take long to parse or match.
pub const MAX_QUERY_BYTES: usize = 4096;

/// The compiled size a regular expression may reach.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Random queries for property tests: the `terms`, combined by AND, OR and
/// negation up to three levels deep.
#[cfg(test)]
pub(crate) fn arb_queries(
    terms: Vec<&'static str>,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let leaf = prop::sample::select(terms).prop_map(str::to_string);
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("-({a})")),
        ]
    })
}
