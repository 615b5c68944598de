//! The cheap test run on a stored line before it is parsed: texts of which a
//! matching record's JSON line must hold at least one.
//!
//! Why it is exact: a line that is ASCII and holds no `\` carries every
//! string of the record verbatim (JSON escapes only `"`, `\`, control
//! characters and, by choice of the writer, other characters as `\u`, each
//! of which puts a `\` in the line). An ASCII text lower-cases the same under
//! Unicode and ASCII rules. So for such a line, a term whose lower-cased
//! literal is absent from it, ignoring ASCII case, cannot match. Every other
//! line is parsed and matched in full.

use std::cmp::Reverse;

use aho_corasick::AhoCorasick;
use regex_syntax::hir::literal::Extractor;

use super::{Expr, Field, Term, Value};

/// Alternatives past this many are not worth a prefilter.
const MAX_LITERALS: usize = 64;

impl Expr {
    /// Lower-cased texts of which a record matching this expression holds
    /// at least one in its message, an attribute value or a field (see the
    /// module doc). `None` when no such set is known, as for a negation.
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        let set = match self {
            Expr::All | Expr::Not(_) => None,
            // Any part's set holds; the one with the longest shortest
            // literal rules out the most lines.
            Expr::And(parts) => parts
                .iter()
                .filter_map(Expr::required_literals)
                .max_by_key(|set| strength(set)),
            Expr::Or(parts) => {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(part.required_literals()?);
                }
                Some(all)
            }
            Expr::Term(term) => term.required_literals(),
        }?;
        (!set.is_empty() && set.len() <= MAX_LITERALS && set.iter().all(|l| !l.is_empty()))
            .then_some(set)
    }
}

/// How much a set of alternatives rules out: its shortest literal's length,
/// then how few alternatives it has.
fn strength(set: &[Vec<u8>]) -> (usize, Reverse<usize>) {
    let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
    (shortest, Reverse(set.len()))
}

fn lower(text: &str) -> Option<Vec<Vec<u8>>> {
    Some(vec![text.to_lowercase().into_bytes()])
}

impl Term {
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        match (&self.field, &self.value) {
            (Field::Level, _) => None,
            // Every token of a word must occur: the longest says most.
            (Field::Text | Field::Msg, Value::Text { raw, tokens }) => {
                match tokens.iter().max_by_key(|t| t.len()) {
                    Some(token) => Some(vec![token.clone().into_bytes()]),
                    None => lower(raw),
                }
            }
            (_, Value::Text { raw, .. }) => lower(raw),
            (_, Value::Prefix(prefix)) => lower(prefix),
            (_, Value::Regex(re)) => regex_literals(re.as_str()),
            (_, Value::Level(..)) => None,
        }
    }
}

/// Texts one of which starts every match of `pattern`, lower-cased.
fn regex_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let seq = Extractor::new().extract(&hir);
    let literals = seq.literals()?;
    Some(
        literals
            .iter()
            .map(|l| l.as_bytes().to_ascii_lowercase())
            .collect(),
    )
}

/// The test itself, built once per search.
#[derive(Debug, Clone)]
pub struct LineFilter {
    finder: Option<AhoCorasick>,
}

impl LineFilter {
    /// The filter for records that must match every one of `exprs`.
    pub fn new<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> LineFilter {
        let best = exprs
            .into_iter()
            .filter_map(Expr::required_literals)
            .max_by_key(|set| strength(set));
        let finder = best.and_then(|set| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(set)
                .ok()
        });
        LineFilter { finder }
    }

    /// Whether the filter knows literals at all.
    pub fn is_active(&self) -> bool {
        self.finder.is_some()
    }

    /// `false` when the JSON `line` certainly holds no matching record.
    pub fn may_match(&self, line: &[u8]) -> bool {
        let Some(finder) = &self.finder else {
            return true;
        };
        finder.is_match(line) || !line.is_ascii() || memchr::memchr(b'\\', line).is_some()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sluice_core::{Level, Record};

    use super::super::parse;
    use super::*;

    fn literals(query: &str) -> Option<Vec<String>> {
        parse(query).unwrap().required_literals().map(|set| {
            set.into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect()
        })
    }

    #[test]
    fn literals_follow_the_expression() {
        assert_eq!(literals("declined"), Some(vec!["declined".into()]));
        assert_eq!(
            literals("\"Payment DECLINED\""),
            Some(vec!["declined".into()])
        );
        assert_eq!(
            literals("request_id:REQ-Needle-7 level:error"),
            Some(vec!["req-needle-7".into()])
        );
        assert_eq!(
            literals("ab OR timeout"),
            Some(vec!["ab".into(), "timeout".into()])
        );
        assert_eq!(literals("ab OR -timeout"), None);
        assert_eq!(literals("-timeout"), None);
        assert_eq!(literals("level:>=warn"), None);
        assert_eq!(literals(""), None);
        assert_eq!(
            literals(r"/timeout after 9\d\d ms/"),
            Some(vec!["timeout after 9".into()])
        );
        assert_eq!(literals(r"/.*x/"), None);
        assert_eq!(literals("pay*"), Some(vec!["pay".into()]));
    }

    #[test]
    fn lines_needing_a_parse_are_never_filtered() {
        let filter = LineFilter::new([&parse("declined").unwrap()]);
        assert!(filter.is_active());
        assert!(filter.may_match(br#"{"msg":"Payment DECLINED"}"#));
        assert!(!filter.may_match(br#"{"msg":"Payment accepted"}"#));
        // An escape could spell the word; a non-ASCII line could lower-case
        // into it.
        assert!(filter.may_match(br#"{"msg":"d\u0065clined"}"#));
        assert!(filter.may_match("{\"msg\":\"zoë\"}".as_bytes()));
        assert!(LineFilter::new([&parse("-x").unwrap()]).may_match(b"{}"));
    }

    fn record(msg: String, attr: String, host: String) -> Record {
        Record {
            id: "01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            ts: 1_795_341_600_000_000_000,
            app: "shop".into(),
            service: "api".into(),
            host,
            level: Level::Warn,
            msg,
            attrs: [("request_id".to_string(), attr)].into(),
            source: "http".into(),
        }
    }

    fn text() -> impl Strategy<Value = String> {
        // ASCII and not, quotes and backslashes, a Kelvin sign (which
        // lower-cases to `k`), a dotted capital I (to two characters).
        let parts = prop::sample::select(vec![
            "order",
            "Paid",
            "\u{212a}b",
            "kb",
            "\u{130}d",
            "id",
            "a\"b",
            "x\\y",
            "Zo\u{eb}",
            "zoe",
            "9",
            "\n",
            "-",
            " ",
        ]);
        prop::collection::vec(parts, 0..6).prop_map(|p| p.concat())
    }

    fn query() -> impl Strategy<Value = String> {
        super::super::arb_queries(vec![
            "order",
            "paid",
            "kb",
            "\u{212a}b",
            "id",
            "\u{130}d",
            "zoe",
            "zo\u{eb}",
            "\"a\\\"b\"",
            "x",
            "9",
            "ord*",
            "/Pa/",
            "/(?i)kb/",
            "/o.d/",
            "request_id:kb",
            "request_id:\u{212a}B",
            "host:id*",
            "msg:paid",
            "-order",
        ])
    }

    proptest! {
        /// The line test never rules out the line of a matching record.
        #[test]
        fn the_line_test_never_misses(
            msg in text(),
            attr in text(),
            host in text(),
            query in query(),
        ) {
            let expr = parse(&query).unwrap();
            let record = record(msg, attr, host);
            if expr.matches(&record) {
                let line = record.to_json();
                prop_assert!(
                    LineFilter::new([&expr]).may_match(line.as_bytes()),
                    "{} ruled out {}", query, line
                );
            }
        }
    }
}
