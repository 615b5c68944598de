//! Request stitching: one request's records across every app and service
//! the caller may read, in time order, with one span per (app, service)
//! and the gaps between them.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sluice_core::{Level, Record};

use super::logs::exact;
use super::params::{MAX_LIMIT, Pairs};
use super::{Api, ApiError, apps_for, caller};
use crate::lang::{Expr, Field};
use crate::search::{Order, search};

/// Records a stitched request holds by default.
const DEFAULT_RECORDS: usize = 1_000;
/// The longest request or trace id looked up.
const MAX_VALUE_BYTES: usize = 256;

/// The records of one (app, service) in a request.
#[derive(Debug, Serialize, PartialEq)]
pub struct Span {
    pub app: String,
    pub service: String,
    /// First and last record time, ns.
    pub first_ts: i64,
    pub last_ts: i64,
    pub duration_ms: f64,
    pub count: u64,
    /// The most severe level among them.
    pub level: Level,
    /// Time from the end of the span before (by start) to this one's start,
    /// when they do not overlap; 0 when they do or for the first span.
    pub gap_before_ms: f64,
}

/// The spans of `logs` (in time order), ordered by start.
pub fn spans(logs: &[Record]) -> Vec<Span> {
    let mut by: BTreeMap<(&str, &str), Span> = BTreeMap::new();
    for r in logs {
        let span = by
            .entry((r.app.as_str(), r.service.as_str()))
            .or_insert_with(|| Span {
                app: r.app.clone(),
                service: r.service.clone(),
                first_ts: r.ts,
                last_ts: r.ts,
                duration_ms: 0.0,
                count: 0,
                level: r.level,
                gap_before_ms: 0.0,
            });
        span.first_ts = span.first_ts.min(r.ts);
        span.last_ts = span.last_ts.max(r.ts);
        span.count += 1;
        span.level = span.level.max(r.level);
    }
    let mut out: Vec<Span> = by.into_values().collect();
    out.sort_by(|a, b| (a.first_ts, &a.app, &a.service).cmp(&(b.first_ts, &b.app, &b.service)));
    let mut reached = i64::MIN;
    for span in &mut out {
        span.duration_ms = ms(span.last_ts - span.first_ts);
        if reached != i64::MIN && span.first_ts > reached {
            span.gap_before_ms = ms(span.first_ts - reached);
        }
        reached = reached.max(span.last_ts);
    }
    out
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

pub async fn request(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(value): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    if value.is_empty() || value.len() > MAX_VALUE_BYTES || value.chars().any(char::is_control) {
        return Err(ApiError::bad(format!(
            "a request id is 1 to {MAX_VALUE_BYTES} bytes without control characters"
        )));
    }
    let pairs = Pairs(&pairs);
    pairs.known(&["limit"])?;
    let limit = pairs.number("limit", DEFAULT_RECORDS, 1, MAX_LIMIT)?;
    let filters = pairs.filters(|_| 0)?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let mut request = api.request(filters.clone(), apps.clone(), limit, Order::Oldest);
    let id = Expr::Or(vec![
        exact(Field::Attr("request_id".into()), &value),
        exact(Field::Attr("trace_id".into()), &value),
    ]);
    request.query = match filters.query {
        Expr::All => id,
        other => Expr::And(vec![id, other]),
    };
    let answer = search(&api.store, &api.sidecars, &request, Some(&api.recent)).await?;
    api.metrics.observe(&answer.stats, started.elapsed());
    tracing::info!(
        token = caller.name(),
        request = %value,
        apps = ?apps,
        results = answer.logs.len(),
        "request"
    );
    let spans = spans(&answer.logs);
    Ok(axum::Json(json!({
        "request": value,
        "logs": answer.logs,
        "spans": spans,
        "total": answer.total,
        "total_exact": answer.total_exact,
        "stats": answer.stats,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64, app: &str, service: &str, level: Level) -> Record {
        Record {
            id: format!("id{ts}"),
            ts,
            app: app.into(),
            service: service.into(),
            host: "h".into(),
            level,
            msg: "m".into(),
            attrs: Default::default(),
            source: String::new(),
        }
    }

    #[test]
    fn spans_cover_each_service_with_gaps_between() {
        let ms = 1_000_000;
        let logs = [
            rec(0, "shop", "web", Level::Info),
            rec(5 * ms, "shop", "api", Level::Info),
            rec(8 * ms, "shop", "api", Level::Error),
            rec(20 * ms, "billing", "pay", Level::Warn),
            rec(30 * ms, "shop", "web", Level::Info),
        ];
        let all = spans(&logs);
        let view: Vec<_> = all
            .iter()
            .map(|s| {
                (
                    s.service.as_str(),
                    s.count,
                    s.level,
                    s.duration_ms,
                    s.gap_before_ms,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("web", 2, Level::Info, 30.0, 0.0),
                ("api", 2, Level::Error, 3.0, 0.0),
                ("pay", 1, Level::Warn, 0.0, 0.0),
            ]
        );
        // Without the web span that overlaps everything, the gaps show.
        let inner = spans(&logs[1..4]);
        assert_eq!(inner[1].gap_before_ms, 12.0);
    }
}
