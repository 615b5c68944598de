//! The parameters of the log endpoints, read strictly: an unknown name, a
//! bad value, a reversed range or a limit past the maximum is a 400 that
//! names it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sluice_core::Level;
use sluice_core::time::{epoch_to_ns, now_nanos, parse_ts};

use crate::lang::{Cmp, Expr, Field, Term, Value, parse};
use crate::search::Order;

/// The most records one answer holds.
pub const MAX_LIMIT: usize = 10_000;
/// Records per answer when the caller names no limit.
pub const DEFAULT_LIMIT: usize = 100;

/// The filters every log endpoint shares, checked.
#[derive(Debug, Clone)]
pub struct Filters {
    pub query: Expr,
    pub query_text: String,
    /// Apps named by the caller (empty: every app it may see).
    pub apps: Vec<String>,
    pub service: Option<Expr>,
    pub level: Option<Expr>,
    pub from_ns: i64,
    pub to_ns: i64,
}

/// What a search asked for, checked.
#[derive(Debug)]
pub struct SearchParams {
    pub filters: Filters,
    pub limit: usize,
    pub page: usize,
    pub order: Order,
    pub after: Option<(i64, String)>,
    pub exact_count: bool,
}

/// The names the filters use.
const FILTERS: &[&str] = &["query", "app", "service", "level", "start_time", "end_time"];

/// A query string's pairs, read by name.
pub struct Pairs<'a>(pub &'a [(String, String)]);

impl Pairs<'_> {
    /// Refuses a name outside the filters and `extra`.
    pub fn known(&self, extra: &[&str]) -> Result<(), String> {
        let known = |n: &str| FILTERS.contains(&n) || extra.contains(&n);
        match self.0.iter().find(|(n, _)| !known(n)) {
            Some((name, _)) => Err(format!(
                "unknown parameter {name:?} (known: {})",
                FILTERS
                    .iter()
                    .chain(extra)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Ok(()),
        }
    }

    /// The value of a parameter given at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self
            .0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("{name} is given more than once"));
        }
        Ok(first)
    }

    /// Every value of a repeatable, comma-separated parameter.
    pub fn many(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, String> {
        match self.one(name)? {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n < min => Err(format!("{name} must be at least {min}")),
                Ok(n) if n > max => Err(format!("{name} {n} is over the maximum of {max}")),
                Ok(n) => Ok(n),
                Err(_) => Err(format!("{name} {v:?} is not a number")),
            },
        }
    }

    /// The shared filters; `default_from` is the start when none is given.
    pub fn filters(&self, default_from: impl FnOnce(i64) -> i64) -> Result<Filters, String> {
        let query_text = self.one("query")?.unwrap_or_default().to_string();
        let query = parse(&query_text).map_err(|e| format!("query: {e}"))?;
        let apps: Vec<String> = self.many("app").into_iter().map(String::from).collect();
        for app in &apps {
            sluice_core::names::validate(app).map_err(|e| format!("app {app:?}: {e}"))?;
        }
        let services = self.many("service");
        let service = (!services.is_empty()).then(|| {
            any_of(
                services
                    .iter()
                    .map(|s| text_term(Field::Service, s))
                    .collect(),
            )
        });
        let level = level_param(&self.many("level"))?;
        let now = now_nanos();
        let from_ns = match self.one("start_time")? {
            Some(t) => time_param("start_time", t, now)?,
            None => default_from(now),
        };
        let to_ns = match self.one("end_time")? {
            Some(t) => time_param("end_time", t, now)?,
            None => i64::MAX,
        };
        if from_ns >= to_ns {
            return Err(format!(
                "start_time {} is not before end_time {}",
                self.one("start_time")?.unwrap_or("(the start)"),
                self.one("end_time")?.unwrap_or("(no end)")
            ));
        }
        Ok(Filters {
            query,
            query_text,
            apps,
            service,
            level,
            from_ns,
            to_ns,
        })
    }

    /// `order`: newest first unless `asc`.
    pub fn order(&self) -> Result<Order, String> {
        match self.one("order")? {
            None | Some("desc" | "newest") => Ok(Order::Newest),
            Some("asc" | "oldest") => Ok(Order::Oldest),
            Some(other) => Err(format!("order {other:?} is not desc (newest first) or asc")),
        }
    }
}

/// Reads the search parameters from the query string's pairs.
pub fn search_params(pairs: &[(String, String)]) -> Result<SearchParams, String> {
    let pairs = Pairs(pairs);
    pairs.known(&["limit", "order", "page", "cursor", "count"])?;
    let filters = pairs.filters(|_| 0)?;
    let limit = pairs.number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let page = match pairs.one("page")? {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 && n.saturating_mul(limit) <= 1_000_000 => n,
            Ok(n) if n >= 1 => {
                return Err(format!(
                    "page {n} is too deep for a limit of {limit}: use the cursor for deep paging"
                ));
            }
            _ => return Err(format!("page {v:?} is not a number from 1")),
        },
    };
    let order = pairs.order()?;
    let after = pairs.one("cursor")?.map(decode_cursor).transpose()?;
    if after.is_some() && page > 1 {
        return Err("give page or cursor, not both".into());
    }
    let exact_count = match pairs.one("count")? {
        None | Some("estimate") => false,
        Some("exact") => true,
        Some(other) => return Err(format!("count {other:?} is not exact or estimate")),
    };
    Ok(SearchParams {
        filters,
        limit,
        page,
        order,
        after,
        exact_count,
    })
}

fn text_term(field: Field, raw: &str) -> Expr {
    Expr::Term(Term {
        field,
        value: Value::Text {
            raw: raw.to_string(),
            tokens: Vec::new(),
        },
    })
}

fn any_of(mut parts: Vec<Expr>) -> Expr {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Expr::Or(parts)
    }
}

/// `level=warn` is a minimum; `level=error,fatal` (or repeated) a list.
fn level_param(values: &[&str]) -> Result<Option<Expr>, String> {
    let levels = values
        .iter()
        .map(|v| Level::from_alias(v).ok_or_else(|| format!("level {v:?} is not a level")))
        .collect::<Result<Vec<_>, _>>()?;
    let term = |cmp, level| {
        Expr::Term(Term {
            field: Field::Level,
            value: Value::Level(cmp, level),
        })
    };
    Ok(match levels.as_slice() {
        [] => None,
        [one] => Some(term(Cmp::Ge, *one)),
        many => Some(any_of(many.iter().map(|l| term(Cmp::Eq, *l)).collect())),
    })
}

/// RFC 3339, an epoch number (unit by magnitude), `now`, or `now-<duration>`
/// such as `now-1h`.
pub fn time_param(name: &str, text: &str, now: i64) -> Result<i64, String> {
    if let Some(ns) = parse_ts(text) {
        return Ok(ns);
    }
    if let Ok(n) = text.parse::<i128>() {
        return epoch_to_ns(n).ok_or_else(|| format!("{name} {text:?} is out of range"));
    }
    if text == "now" {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let d = humantime::parse_duration(ago).map_err(|e| format!("{name} {text:?}: {e}"))?;
        return i64::try_from(d.as_nanos())
            .ok()
            .and_then(|d| now.checked_sub(d))
            .ok_or_else(|| format!("{name} {text:?} is out of range"));
    }
    Err(format!(
        "{name} {text:?} is not RFC 3339, an epoch number, now or now-<duration> (now-1h)"
    ))
}

/// The opaque cursor after record `(ts, id)`.
pub fn encode_cursor(ts: i64, id: &str) -> String {
    B64.encode(format!("1:{ts}:{id}"))
}

fn decode_cursor(text: &str) -> Result<(i64, String), String> {
    let bad = || format!("cursor {text:?} is not one this service gave out");
    let raw = B64.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("1"), Some(ts), Some(id)) if !id.is_empty() => {
            Ok((ts.parse().map_err(|_| bad())?, id.to_string()))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Result<SearchParams, String> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        search_params(&pairs)
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, words) in [
            (vec![("querry", "x")], "unknown parameter \"querry\""),
            (vec![("query", "a OR")], "query: at 5"),
            (vec![("limit", "10001")], "over the maximum of 10000"),
            (vec![("limit", "0")], "at least 1"),
            (vec![("limit", "ten")], "not a number"),
            (
                vec![
                    ("start_time", "2026-11-22T11:00:00Z"),
                    ("end_time", "2026-11-22T10:00:00Z"),
                ],
                "is not before end_time",
            ),
            (
                vec![("start_time", "yesterday")],
                "start_time \"yesterday\"",
            ),
            (vec![("level", "loud")], "level \"loud\""),
            (vec![("order", "up")], "order \"up\""),
            (vec![("cursor", "bm9wZQ")], "cursor"),
            (vec![("count", "all")], "count \"all\""),
            (vec![("app", "Bad App")], "app \"Bad App\""),
            (vec![("query", "a"), ("query", "b")], "more than once"),
            (vec![("page", "0")], "page"),
        ] {
            let err = params(&q).expect_err(words);
            assert!(err.contains(words), "{q:?}: {err}");
        }
    }

    #[test]
    fn times_defaults_and_cursors() {
        let now = 1_795_341_600_000_000_000;
        assert_eq!(time_param("t", "now-1h", now), Ok(now - 3_600_000_000_000));
        assert_eq!(time_param("t", "now", now), Ok(now));
        assert_eq!(time_param("t", "1795341600", now), Ok(now));
        assert_eq!(time_param("t", "1795341600000", now), Ok(now));
        assert_eq!(time_param("t", "2026-11-22T10:00:00Z", now), Ok(now));
        let p = params(&[]).unwrap();
        assert_eq!(
            (p.limit, p.page, p.order),
            (DEFAULT_LIMIT, 1, Order::Newest)
        );
        let c = encode_cursor(now, "01JX");
        let p = params(&[("cursor", &c), ("level", "warn"), ("service", "a,b")]).unwrap();
        assert_eq!(p.after, Some((now, "01JX".to_string())));
        assert!(p.filters.level.is_some() && p.filters.service.is_some());
    }
}
