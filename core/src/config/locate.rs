//! Where in the file a problem is.
//!
//! Every error names the line and column, and a label of the section and
//! key: `[agent.publish] max_batch_bytes`, `[[agent.files]] #2
//! max_line_bytes`, `rule "checkout-errors" window_secs` or
//! `receiver "ops" url` (rules and receivers are named by their `name`).
//! Errors of the deserialiser carry a position, which is looked up in the
//! file's tree of spans to find the label; a check made after
//! deserialising (an [`Issue`]) names its key, which is looked up to find
//! the position.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// A key of a table.
    Key(&'a str),
    /// An element (0-based) of an array of tables.
    Index(usize),
}

/// A problem found after deserialising, such as two keys of one section
/// that do not fit together, or a reference to a receiver that does not
/// exist.
#[derive(Debug)]
pub(super) struct Issue {
    /// The keys it can be blamed on, best first; the first one present in
    /// the file gives the position.
    keys: Vec<Vec<Step<'static>>>,
    message: String,
}

impl Issue {
    /// A problem with the value of the key at `path`.
    pub(super) fn at(path: &[Step<'static>], message: impl Into<String>) -> Issue {
        Issue {
            keys: vec![path.to_vec()],
            message: message.into(),
        }
    }

    /// A problem of two values together: blamed on `first` when it is in
    /// the file, else on `second`.
    pub(super) fn at_either(
        first: &[Step<'static>],
        second: &[Step<'static>],
        message: impl Into<String>,
    ) -> Issue {
        Issue {
            keys: vec![first.to_vec(), second.to_vec()],
            message: message.into(),
        }
    }

    /// The message for the file `text`: its line, column and key. A key
    /// missing from the file (a default) is placed on its section.
    pub(super) fn render(&self, text: &str) -> String {
        let doc = DeTable::parse(text).ok();
        let doc = doc.as_ref().map(|d| d.get_ref());
        let found = |path: &Vec<Step<'static>>| doc.and_then(|d| lookup(d, path));
        let path = self
            .keys
            .iter()
            .find(|path| found(path).is_some_and(|(_, whole)| whole))
            .unwrap_or(&self.keys[0]);
        let span = found(path).map(|(span, _)| span);
        render(text, span, label(doc, path, Kind::Value), &self.message)
    }
}

/// The message of a deserialisation error of `text`, with its line, column
/// and key.
pub(super) fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return err.to_string().trim_end().to_string();
    };
    let doc = DeTable::parse(text).ok();
    let doc = doc.as_ref().map(|d| d.get_ref());
    let label = doc
        .and_then(|d| find(d, &span))
        .and_then(|(path, kind)| label(doc, &path, kind));
    render(text, Some(span), label, err.message())
}

/// Whether a path names a table or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A table: a section, an element of an array of tables, or an inline
    /// table.
    Table,
    /// Any other value.
    Value,
}

/// The innermost key, value or table of `doc` whose span holds `at`.
fn find<'a>(doc: &'a DeTable<'_>, at: &Range<usize>) -> Option<(Vec<Step<'a>>, Kind)> {
    let mut best = None;
    visit(doc, at, &mut Vec::new(), &mut best);
    best.map(|(path, kind, _)| (path, kind))
}

type Found<'a> = Option<(Vec<Step<'a>>, Kind, usize)>;

fn visit<'a>(
    table: &'a DeTable<'_>,
    at: &Range<usize>,
    path: &mut Vec<Step<'a>>,
    best: &mut Found<'a>,
) {
    for (key, value) in table {
        // An error on a key itself (an unknown key) is about its table.
        consider(key.span(), at, path, Kind::Table, best);
        path.push(Step::Key(key.get_ref()));
        match value.get_ref() {
            DeValue::Table(inner) => {
                consider(value.span(), at, path, Kind::Table, best);
                visit(inner, at, path, best);
            }
            DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => {
                consider(value.span(), at, path, Kind::Value, best);
                for (n, item) in items.iter().enumerate() {
                    path.push(Step::Index(n));
                    consider(item.span(), at, path, Kind::Table, best);
                    if let DeValue::Table(inner) = item.get_ref() {
                        visit(inner, at, path, best);
                    }
                    path.pop();
                }
            }
            _ => consider(value.span(), at, path, Kind::Value, best),
        }
        path.pop();
    }
}

/// Keeps `path` when `span` holds `at` and is no wider than the best so
/// far (on a tie the later, deeper one wins: an array of tables and its
/// first element share the span of the first header).
fn consider<'a>(
    span: Range<usize>,
    at: &Range<usize>,
    path: &[Step<'a>],
    kind: Kind,
    best: &mut Found<'a>,
) {
    let holds = span.start <= at.start && at.end <= span.end;
    let width = span.end - span.start;
    if holds && best.as_ref().is_none_or(|(_, _, w)| width <= *w) {
        *best = Some((path.to_vec(), kind, width));
    }
}

/// The deepest value along `path` that is in the file, and whether it is
/// the one at the end of `path` (`None` when not even the first key is).
fn walk<'a, 'i>(
    doc: &'a DeTable<'i>,
    path: &[Step<'_>],
) -> (Option<&'a Spanned<DeValue<'i>>>, bool) {
    let entry = |table: &'a DeTable<'i>, k: &str| {
        table
            .iter()
            .find(|(key, _)| key.get_ref() == k)
            .map(|(_, v)| v)
    };
    let mut last: Option<&'a Spanned<DeValue<'i>>> = None;
    for step in path {
        let next = match (step, last.map(|v| v.get_ref())) {
            (Step::Key(k), None) => entry(doc, k),
            (Step::Key(k), Some(DeValue::Table(table))) => entry(table, k),
            (Step::Index(n), Some(DeValue::Array(items))) => items.get(*n),
            _ => None,
        };
        match next {
            Some(value) => last = Some(value),
            None => return (last, false),
        }
    }
    (last, true)
}

/// The span of the value at `path`, and whether it is that value's (else
/// it is the span of the deepest table of `path` that is in the file).
fn lookup(doc: &DeTable<'_>, path: &[Step<'_>]) -> Option<(Range<usize>, bool)> {
    let (value, whole) = walk(doc, path);
    value.map(|v| (v.span(), whole))
}

/// Arrays of tables whose elements are named by their `name` key, and the
/// word for an element.
const NAMED: [(&str, &str); 2] = [("alerter.rules", "rule"), ("receivers", "receiver")];

/// `[agent.publish] max_batch_bytes`, `[[agent.files]] #2 max_line_bytes`,
/// `rule "r1" window_secs`; `None` for the top level itself.
fn label(doc: Option<&DeTable<'_>>, path: &[Step<'_>], kind: Kind) -> Option<String> {
    let keys = |steps: &[Step<'_>]| {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(*k),
                Step::Index(_) => None,
            })
            .collect::<Vec<_>>()
            .join(".")
    };
    let Some(i) = path.iter().rposition(|s| matches!(s, Step::Index(_))) else {
        return match (kind, path) {
            (_, []) => None,
            (Kind::Table, _) => Some(format!("[{}]", keys(path))),
            (Kind::Value, [_]) => Some(keys(path)),
            (Kind::Value, [table @ .., key]) => Some(format!(
                "[{}] {}",
                keys(table),
                keys(std::slice::from_ref(key))
            )),
        };
    };
    let Step::Index(n) = path[i] else {
        unreachable!("rposition found an index")
    };
    let array = keys(&path[..i]);
    let name = doc
        .and_then(|d| match walk(d, &path[..=i]) {
            (Some(value), true) => value.get_ref().as_table(),
            _ => None,
        })
        .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == "name"))
        .and_then(|(_, v)| v.get_ref().as_str())
        .filter(|name| !name.is_empty());
    let element = match (NAMED.iter().find(|(a, _)| *a == array), name) {
        (Some((_, word)), Some(name)) => format!("{word} {name:?}"),
        _ => format!("[[{array}]] #{}", n + 1),
    };
    let rest = keys(&path[i + 1..]);
    Some(if rest.is_empty() {
        element
    } else {
        format!("{element} {rest}")
    })
}

/// `line 3, column 7: <label>: <message>`, then the line with the span
/// underlined.
fn render(text: &str, span: Option<Range<usize>>, label: Option<String>, message: &str) -> String {
    let message = message.trim_end();
    let what = match label {
        Some(label) => format!("{label}: {message}"),
        None => message.to_string(),
    };
    let Some(span) = span else {
        return what;
    };
    let start = text.floor_char_boundary(span.start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = text.floor_char_boundary(span.end.clamp(start, line_end));
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let content = text[line_start..line_end].trim_end_matches('\r');
    let width = text[start..end].chars().count().max(1);
    let gutter = " ".repeat(line.to_string().len());
    format!(
        "line {line}, column {column}: {what}\n{gutter} |\n{line} | {content}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label of an error on `target`, found at its first place within
    /// the first `context`.
    fn label_at(text: &str, context: &str, target: &str) -> Option<String> {
        let doc = DeTable::parse(text).unwrap();
        let start = text.find(context).unwrap() + context.find(target).unwrap();
        let (path, kind) = find(doc.get_ref(), &(start..start + target.len())).unwrap();
        label(Some(doc.get_ref()), &path, kind)
    }

    const TEXT: &str = "[agent]\nid = \"a\"\npublish.max_batch_bytes = 1\n\
        [[agent.files]]\ninclude = [\"a\"]\n[agent.files.multiline]\nstart_pattern = \"x\"\n\
        [[agent.files]]\napp = \"y\"\n[aggregator]\nadmin = { listen = \"x\" }\n\
        [[alerter.rules]]\nname = \"r1\"\nkind = \"every\"\n[[alerter.rules]]\nkind = \"x\"\n";

    #[test]
    fn labels_name_the_section_and_key() {
        let at = |context, target| label_at(TEXT, context, target).unwrap_or_default();
        assert_eq!(at("id = \"a\"", "\"a\""), "[agent] id");
        assert_eq!(at("= 1", "1"), "[agent.publish] max_batch_bytes");
        assert_eq!(at("id = ", "id"), "[agent]");
        assert_eq!(at("[\"a\"]", "[\"a\"]"), "[[agent.files]] #1 include");
        assert_eq!(at("[\"a\"]", "\"a\""), "[[agent.files]] #1 include");
        assert_eq!(
            at("start_pattern = \"x\"", "\"x\""),
            "[[agent.files]] #1 multiline.start_pattern"
        );
        assert_eq!(
            at("[agent.files.multiline]", "[agent.files.multiline]"),
            "[[agent.files]] #1 multiline"
        );
        assert_eq!(
            at("[[agent.files]]\napp", "[[agent.files]]"),
            "[[agent.files]] #2"
        );
        assert_eq!(at("\"y\"", "\"y\""), "[[agent.files]] #2 app");
        assert_eq!(at("listen = \"x\"", "\"x\""), "[aggregator.admin] listen");
        assert_eq!(at("\"every\"", "\"every\""), "rule \"r1\" kind");
        assert_eq!(at("kind = \"x\"", "\"x\""), "[[alerter.rules]] #2 kind");
        assert_eq!(
            label_at(TEXT, "[agent]", "[agent]").as_deref(),
            Some("[agent]")
        );
    }

    #[test]
    fn issues_are_placed_on_their_key_or_section() {
        use Step::{Index, Key};
        let place = |path: &[Step<'static>]| Issue::at(path, "bad").render(TEXT);
        let first = |s: String| s.lines().next().unwrap().to_string();
        assert_eq!(
            first(place(&[
                Key("alerter"),
                Key("rules"),
                Index(0),
                Key("kind")
            ])),
            "line 14, column 8: rule \"r1\" kind: bad"
        );
        assert_eq!(
            first(place(&[
                Key("agent"),
                Key("files"),
                Index(1),
                Key("max_line_bytes")
            ])),
            "line 8, column 1: [[agent.files]] #2 max_line_bytes: bad"
        );
        assert_eq!(first(place(&[Key("nats"), Key("url")])), "[nats] url: bad");
        let either = Issue::at_either(
            &[Key("agent"), Key("publish"), Key("max_in_flight")],
            &[Key("agent"), Key("publish"), Key("max_batch_bytes")],
            "bad",
        );
        assert_eq!(
            either.render(TEXT),
            "line 3, column 27: [agent.publish] max_batch_bytes: bad\n  |\n3 | publish.max_batch_bytes = 1\n  |                           ^"
        );
    }
}
