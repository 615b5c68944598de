//! The log endpoints answered from the window and the blobs: search,
//! export, hits and context.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_core::Record;
use sluice_core::time::{NS_PER_HOUR, NS_PER_SEC, now_nanos};

use super::params::{Pairs, encode_cursor, search_params};
use super::{Api, ApiError, apps_for, caller};
use crate::lang::{Expr, Field, Term, Value};
use crate::search::{By, Ended, Order, export, hits as count_hits, search};

/// Steps a histogram may have.
const MAX_STEPS: i64 = 10_000;
/// Steps a histogram gets when the caller names no step.
const DEFAULT_STEPS: i64 = 100;
/// Records of context on each side, by default and at most.
const DEFAULT_CONTEXT: usize = 10;
const MAX_CONTEXT: usize = 1_000;

pub async fn search_logs(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let p = search_params(&pairs)?;
    let apps = apps_for(&api, &caller, &p.filters.apps).await?;
    let query_text = p.filters.query_text.clone();
    let mut request = api.request(p.filters, apps.clone(), p.limit, p.order);
    request.offset = (p.page - 1) * p.limit;
    request.after = p.after;
    request.exact_count = p.exact_count;
    let answer = search(&api.store, &api.sidecars, &request, Some(&api.recent)).await?;
    api.metrics.observe(&answer.stats, started.elapsed());
    tracing::info!(
        token = caller.name(),
        query = %query_text,
        apps = ?apps,
        results = answer.logs.len(),
        total = answer.total,
        partial = answer.stats.partial,
        "search"
    );
    let next_cursor = (answer.logs.len() == p.limit)
        .then(|| answer.logs.last().map(|r| encode_cursor(r.ts, &r.id)))
        .flatten();
    Ok(axum::Json(json!({
        "logs": answer.logs,
        "total": answer.total,
        "total_exact": answer.total_exact,
        "page": p.page,
        "next_cursor": next_cursor,
        "stats": answer.stats,
    }))
    .into_response())
}

pub async fn export_logs(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&["order", "limit"])?;
    let filters = pairs.filters(|_| 0)?;
    let limit = pairs.number("limit", usize::MAX, 1, usize::MAX)?;
    let order = pairs.order()?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let query_text = filters.query_text.clone();
    let mut request = api.request(filters, apps.clone(), limit, order);
    // An export is as long as its data: no timeout, but it stops when the
    // client goes away or the service stops.
    request.deadline = started + std::time::Duration::from_secs(365 * 86_400);
    let planned = export(&api.store, &api.sidecars, request, Some(&api.recent)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let token = caller.name().to_string();
    tokio::spawn(async move {
        let (stats, ended) = tokio::select! {
            done = planned.run(&api.store, &api.sidecars, tx) => done,
            _ = api.stop.cancelled() => return,
        };
        api.metrics.observe(&stats, started.elapsed());
        if ended == Ended::ClientGone {
            api.metrics.exports_abandoned.inc();
        }
        tracing::info!(
            token,
            query = %query_text,
            apps = ?apps,
            blobs_read = stats.blobs_read,
            client_gone = ended == Ended::ClientGone,
            "export"
        );
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

pub async fn hits(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&["step", "by"])?;
    let mut filters = pairs.filters(|now| now - 24 * NS_PER_HOUR)?;
    if pairs.one("end_time")?.is_none() {
        filters.to_ns = now_nanos().max(filters.from_ns + 1);
    }
    let span = filters.to_ns - filters.from_ns;
    let step_ns = match pairs.one("step")? {
        Some(text) => {
            let step = humantime::parse_duration(text)
                .ok()
                .and_then(|d| i64::try_from(d.as_nanos()).ok())
                .filter(|ns| *ns >= NS_PER_SEC && ns % NS_PER_SEC == 0)
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "step {text:?} is not a whole number of seconds such as 30s, 5m or 1h"
                    ))
                })?;
            if span / step >= MAX_STEPS {
                return Err(ApiError::bad(format!(
                    "step {text:?} gives more than {MAX_STEPS} steps over the range"
                )));
            }
            step
        }
        None => nice_step(span),
    };
    let by = match pairs.one("by")? {
        None | Some("total") => By::Total,
        Some("level") => By::Level,
        Some("service") => By::Service,
        Some("app") => By::App,
        Some("host") => By::Host,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "by {other:?} is not level, service, app, host or total"
            )));
        }
    };
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let request = api.request(filters, apps, usize::MAX, Order::Newest);
    let answer = count_hits(
        &api.store,
        &api.sidecars,
        &request,
        Some(&api.recent),
        step_ns,
        by,
    )
    .await?;
    api.metrics.observe(&answer.stats, started.elapsed());
    Ok(axum::Json(answer).into_response())
}

/// The smallest of the usual steps that cuts `span` into at most about
/// [`DEFAULT_STEPS`] steps.
fn nice_step(span: i64) -> i64 {
    const STEPS: [i64; 15] = [
        1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 604_800,
    ];
    STEPS
        .iter()
        .map(|s| s * NS_PER_SEC)
        .find(|s| span / s <= DEFAULT_STEPS)
        .unwrap_or(604_800 * NS_PER_SEC * (span / (604_800 * NS_PER_SEC * DEFAULT_STEPS) + 1))
}

/// `field:value` matching the value whole.
pub(super) fn exact(field: Field, raw: &str) -> Expr {
    Expr::Term(Term {
        field,
        value: Value::Text {
            raw: raw.to_string(),
            tokens: Vec::new(),
        },
    })
}

pub async fn context(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&["before", "after"])?;
    let before = pairs.number("before", DEFAULT_CONTEXT, 0, MAX_CONTEXT)?;
    let after = pairs.number("after", DEFAULT_CONTEXT, 0, MAX_CONTEXT)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad(format!("{id:?} is not a record id")));
    }
    let filters = pairs.filters(|_| 0)?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    // The record itself, by id: first near the time its id was made (a
    // record is mostly filed soon after it happened), then anywhere in the
    // range asked.
    let mut find = api.request(filters.clone(), apps, 1, Order::Newest);
    find.query = exact(Field::Id, &id);
    let mut stats = crate::search::Stats::default();
    let mut record = None;
    let near = ulid::Ulid::from_string(&id).ok().map(|u| {
        let made = i64::try_from(u.timestamp_ms())
            .unwrap_or(0)
            .saturating_mul(1_000_000);
        (
            made.saturating_sub(NS_PER_HOUR),
            made.saturating_add(300 * NS_PER_SEC),
        )
    });
    for (from, to) in near.into_iter().chain([(0, i64::MAX)]) {
        let mut attempt = find.clone();
        attempt.from_ns = attempt.from_ns.max(from);
        attempt.to_ns = attempt.to_ns.min(to);
        if attempt.from_ns >= attempt.to_ns {
            continue;
        }
        let found = search(&api.store, &api.sidecars, &attempt, Some(&api.recent)).await?;
        stats.add(&found.stats);
        record = found.logs.into_iter().next();
        if record.is_some() {
            break;
        }
    }
    let Some(record) = record else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no record {id:?} in the apps and range asked"),
        ));
    };
    // Its neighbours: same app, host and source, on each side of it.
    let side = |order: Order, limit: usize| {
        let mut r = api.request(filters.clone(), vec![record.app.clone()], limit, order);
        r.query = Expr::And(vec![
            exact(Field::Host, &record.host),
            exact(Field::Source, &record.source),
        ]);
        r.from_ns = 0;
        r.to_ns = i64::MAX;
        r.after = Some((record.ts, record.id.clone()));
        r
    };
    let mut logs: Vec<Record> = Vec::new();
    for (order, limit) in [(Order::Newest, before), (Order::Oldest, after)] {
        if limit == 0 {
            continue;
        }
        let answer = search(
            &api.store,
            &api.sidecars,
            &side(order, limit),
            Some(&api.recent),
        )
        .await?;
        stats.add(&answer.stats);
        // Exact equality: the terms above ignore case.
        logs.extend(
            answer
                .logs
                .into_iter()
                .filter(|r| r.host == record.host && r.source == record.source),
        );
        if order == Order::Newest {
            logs.reverse();
            logs.push(record.clone());
        }
    }
    if after == 0 && !logs.iter().any(|r| r.id == record.id) {
        logs.push(record.clone());
    }
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    api.metrics.observe(&stats, started.elapsed());
    Ok(axum::Json(json!({ "record": record, "logs": logs, "stats": stats })).into_response())
}
