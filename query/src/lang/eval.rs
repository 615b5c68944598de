//! What a parsed query decides: whether a record matches, and whether a
//! blob may hold a match, judged by its sidecar alone.

use sluice_core::index::{BlobIndex, for_each_token};
use sluice_core::{Level, Record};

use super::{Expr, Field, Term, Value};

impl Expr {
    /// Whether `record` matches.
    pub fn matches(&self, record: &Record) -> bool {
        match self {
            Expr::All => true,
            Expr::And(parts) => parts.iter().all(|p| p.matches(record)),
            Expr::Or(parts) => parts.iter().any(|p| p.matches(record)),
            Expr::Not(inner) => !inner.matches(record),
            Expr::Term(term) => term.matches(record),
        }
    }

    /// Whether a blob whose sidecar is `index` may hold a matching record:
    /// `false` only when it certainly holds none.
    pub fn may_match(&self, index: &BlobIndex) -> bool {
        match self {
            Expr::All => true,
            Expr::And(parts) => parts.iter().all(|p| p.may_match(index)),
            Expr::Or(parts) => parts.iter().any(|p| p.may_match(index)),
            // A negation rules a blob out only when its sidecar says every
            // record matches the negated part: services and levels are
            // exact sets.
            Expr::Not(inner) => !inner.matches_every_record(index),
            Expr::Term(term) => term.may_match(index),
        }
    }

    /// Whether the sidecar proves every record of the blob matches.
    fn matches_every_record(&self, index: &BlobIndex) -> bool {
        match self {
            Expr::All => true,
            Expr::And(parts) => parts.iter().all(|p| p.matches_every_record(index)),
            Expr::Or(parts) => parts.iter().any(|p| p.matches_every_record(index)),
            Expr::Not(inner) => !inner.may_match(index),
            Expr::Term(Term {
                field: Field::Service,
                value: Value::Text { raw, .. },
            }) => index.services.iter().all(|s| s.eq_ignore_ascii_case(raw)),
            Expr::Term(Term {
                field: Field::Level,
                value: Value::Level(cmp, to),
            }) => levels(index).all(|level| cmp.holds(level, *to)),
            Expr::Term(Term {
                field: Field::App,
                value: Value::Text { raw, .. },
            }) => index.app.eq_ignore_ascii_case(raw),
            Expr::Term(_) => false,
        }
    }

    /// What the sidecar test can prune with: whether some part looks at a
    /// token, a service, a level or an app (for the search statistics).
    pub fn pruning(&self) -> Pruning {
        let mut out = Pruning::default();
        self.visit(&mut |term| match (&term.field, &term.value) {
            (Field::Service, _) => out.service = true,
            (Field::Level, _) => out.level = true,
            (Field::Text | Field::Msg | Field::Attr(_), Value::Text { .. }) => out.bloom = true,
            _ => {}
        });
        out
    }

    /// Whether the query looks only at `app`, `service` and `level`, which
    /// a sidecar's minute counts know exactly.
    pub fn index_only(&self) -> bool {
        let mut only = true;
        self.visit(&mut |term| {
            only &= matches!(term.field, Field::App | Field::Service | Field::Level);
        });
        only
    }

    fn visit(&self, f: &mut impl FnMut(&Term)) {
        match self {
            Expr::All => {}
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| p.visit(f)),
            Expr::Not(inner) => inner.visit(f),
            Expr::Term(term) => f(term),
        }
    }
}

/// Which sidecar tests a query uses.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruning {
    pub service: bool,
    pub level: bool,
    pub bloom: bool,
}

fn levels(index: &BlobIndex) -> impl Iterator<Item = Level> + '_ {
    index
        .levels
        .iter()
        .filter(|(_, count)| **count > 0)
        .filter_map(|(name, _)| Level::from_alias(name))
}

impl Term {
    fn matches(&self, record: &Record) -> bool {
        match &self.field {
            Field::Text => {
                text_matches(&self.value, &record.msg)
                    || record.attrs.values().any(|v| text_matches(&self.value, v))
            }
            Field::Msg => text_matches(&self.value, &record.msg),
            Field::App => value_matches(&self.value, &record.app),
            Field::Service => value_matches(&self.value, &record.service),
            Field::Host => value_matches(&self.value, &record.host),
            Field::Source => value_matches(&self.value, &record.source),
            Field::Id => value_matches(&self.value, &record.id),
            Field::Level => match &self.value {
                Value::Level(cmp, to) => cmp.holds(record.level, *to),
                other => value_matches(other, record.level.as_str()),
            },
            Field::Attr(key) => record
                .attrs
                .get(key)
                .is_some_and(|v| value_matches(&self.value, v)),
        }
    }

    fn may_match(&self, index: &BlobIndex) -> bool {
        match (&self.field, &self.value) {
            (Field::Text | Field::Msg, Value::Text { tokens, .. }) => {
                tokens.iter().all(|t| index.may_contain(t))
            }
            (Field::Attr(_), Value::Text { raw, .. }) => index.may_contain_value(raw),
            (Field::Service, value) => index.services.iter().any(|s| value_matches(value, s)),
            (Field::App, value) => value_matches(value, &index.app),
            (Field::Level, Value::Level(cmp, to)) => levels(index).any(|l| cmp.holds(l, *to)),
            (Field::Level, value) => levels(index).any(|l| value_matches(value, l.as_str())),
            _ => true,
        }
    }
}

/// A field value compared whole: equal ignoring case, a prefix, or a regex.
fn value_matches(value: &Value, field: &str) -> bool {
    match value {
        Value::Text { raw, .. } => field.to_lowercase() == raw.to_lowercase(),
        Value::Prefix(prefix) => field.to_lowercase().starts_with(prefix.as_str()),
        Value::Regex(re) => re.is_match(field),
        Value::Level(..) => false,
    }
}

/// A text searched by words: tokens in order and adjacent, a token prefix,
/// or a regex.
fn text_matches(value: &Value, text: &str) -> bool {
    match value {
        Value::Text { raw, tokens } if tokens.is_empty() => {
            !raw.is_empty() && text.to_lowercase().contains(&raw.to_lowercase())
        }
        Value::Text { tokens, .. } => {
            // Slide over the text's tokens, tracking how far the run of
            // the wanted tokens has got.
            let mut seen: Vec<String> = Vec::with_capacity(tokens.len());
            let mut found = false;
            for_each_token(text, |token| {
                if found {
                    return;
                }
                seen.push(token.to_owned());
                if seen.len() > tokens.len() {
                    seen.remove(0);
                }
                found = seen.len() == tokens.len() && seen.iter().zip(tokens).all(|(a, b)| a == b);
            });
            found
        }
        Value::Prefix(prefix) => {
            let mut found = false;
            for_each_token(text, |token| found |= token.starts_with(prefix.as_str()));
            found
        }
        Value::Regex(re) => re.is_match(text),
        Value::Level(..) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use sluice_core::index::IndexBuilder;

    use super::super::parse;
    use super::*;

    fn record(service: &str, level: Level, msg: &str, attrs: &[(&str, &str)]) -> Record {
        Record {
            id: "01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
            ts: 1_795_341_600_000_000_000,
            app: "shop".into(),
            service: service.into(),
            host: "web-1".into(),
            level,
            msg: msg.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            source: "file:/var/log/shop.log".into(),
        }
    }

    fn matches(query: &str, r: &Record) -> bool {
        parse(query).unwrap().matches(r)
    }

    #[test]
    fn words_match_whole_tokens_ignoring_case() {
        let r = record(
            "checkout",
            Level::Error,
            "Payment DECLINED for order #8812",
            &[("request_id", "req-123"), ("user", "Zoë")],
        );
        for yes in [
            "declined",
            "payment declined",
            "\"payment declined\"",
            "pay*",
            "req-123",
            "zoë",
            "/DECLINED/",
            "service:checkout",
            "SERVICE:CHECKOUT",
            "level:>=warn",
            "level:error",
            "request_id:req-123",
            "request_id:REQ-123",
            "request_id:req*",
            "host:web*",
            "app:shop",
            "-timeout",
            "timeout OR declined",
            "msg:order",
            "#",
            "source:/shop/",
        ] {
            assert!(matches(yes, &r), "{yes} should match");
        }
        for no in [
            "decline",
            "\"declined payment\"",
            "/declined/",
            "service:check",
            "level:fatal",
            "level:<error",
            "request_id:req",
            "trace_id:req-123",
            "-declined",
            "msg:zoë",
            "timeout",
            "NOT (payment OR x)",
        ] {
            assert!(!matches(no, &r), "{no} should not match");
        }
    }

    fn index_of(records: &[Record]) -> BlobIndex {
        let mut builder = IndexBuilder::new("shop");
        for r in records {
            builder.push(r, r.to_json().len());
        }
        builder.finish(0, false)
    }

    #[test]
    fn sidecars_prune_by_token_service_level_and_negation() {
        let blob = [record(
            "checkout",
            Level::Info,
            "order created",
            &[("request_id", "req-1")],
        )];
        let index = index_of(&blob);
        let may = |q: &str| parse(q).unwrap().may_match(&index);
        assert!(may("order"));
        assert!(!may("refund"));
        assert!(!may("service:billing"));
        assert!(!may("level:>=warn"));
        assert!(!may("request_id:req-2"));
        assert!(!may("-service:checkout"));
        assert!(!may("NOT level:info"));
        assert!(may("-refund"));
        assert!(may("refund OR order"));
        assert!(may("/anything/"));
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let words = prop::sample::select(vec![
            "order", "Paid", "card", "x", "déclin", "TIME-out", "ab", "a-b",
        ]);
        (
            prop::sample::select(vec!["checkout", "billing", "api"]),
            prop::sample::select(Level::ALL.to_vec()),
            prop::collection::vec(words.clone(), 0..6),
            prop::option::of(words),
        )
            .prop_map(|(service, level, msg, attr)| {
                let msg = msg.join(" ");
                let attrs: Vec<(&str, &str)> = attr.iter().map(|v| ("request_id", *v)).collect();
                record(service, level, &msg, &attrs)
            })
    }

    fn arb_query() -> impl Strategy<Value = String> {
        super::super::arb_queries(vec![
            "order",
            "paid",
            "card",
            "x",
            "déclin",
            "time-out",
            "\"order paid\"",
            "ord*",
            "/Pa/",
            "service:billing",
            "service:check*",
            "level:>=warn",
            "level:info",
            "request_id:card",
            "request_id:x",
            "msg:card",
            "ab",
            "a-b",
            "host:web-1",
            "app:shop",
        ])
    }

    proptest! {
        /// The sidecar test never rules out a blob holding a match.
        #[test]
        fn pruning_never_misses(records in prop::collection::vec(arb_record(), 1..8), query in arb_query()) {
            let expr = parse(&query).unwrap();
            let index = index_of(&records);
            if records.iter().any(|r| expr.matches(r)) {
                prop_assert!(expr.may_match(&index), "{query} pruned a blob holding a match");
            }
        }
    }
}
