//! What the aggregator keeps, read from its KV buckets: per-hour counts
//! and error groups, each only of the apps the caller may read.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sluice_core::Level;
use sluice_core::aggregates::{ErrorGroup, MAX_HOURS, ReadError, Reader, Sample};
use sluice_core::time::{NS_PER_HOUR, now_nanos};

use super::params::{MAX_LIMIT, Pairs};
use super::{Api, ApiError, apps_for, caller};

/// One `(app, service, level, hour)` count.
#[derive(Debug, Serialize)]
struct Row<'a> {
    app: &'a str,
    service: &'a str,
    level: Level,
    hour: &'a str,
    count: u64,
}

fn unreachable(err: ReadError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("NATS: {err}"))
}

/// The aggregator's buckets, or a 503 naming what is missing.
async fn reader(api: &Api) -> Result<Reader, ApiError> {
    Reader::open(api.jetstream()?).await.map_err(unreachable)
}

pub async fn aggregates(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&[])?;
    let filters = pairs.filters(|now| now - 24 * NS_PER_HOUR)?;
    if !filters.query_text.is_empty() {
        return Err(ApiError::bad(
            "query: the counts are per app, service, level and hour; filter with app, service and level",
        ));
    }
    let reader = reader(&api).await?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let to_ns = filters.to_ns.min(now_nanos()).max(filters.from_ns) - 1;
    if (to_ns - filters.from_ns) / NS_PER_HOUR >= MAX_HOURS {
        return Err(ApiError::bad(format!(
            "the range is over {MAX_HOURS} hours: narrow start_time and end_time"
        )));
    }
    let mut hours = Vec::new();
    for app in &apps {
        let counts = reader
            .hourly_counts(app, filters.from_ns, to_ns)
            .await
            .map_err(unreachable)?;
        hours.extend(
            counts
                .into_iter()
                .filter(|h| h.app == *app && !h.counts.is_empty()),
        );
    }
    hours.sort_by(|a, b| (&a.hour, &a.app).cmp(&(&b.hour, &b.app)));
    let probe = |app: &str, service: &str, level: Level| {
        let record = crate::search::probe(app, service, level);
        filters.level.as_ref().is_none_or(|e| e.matches(&record))
            && filters.service.as_ref().is_none_or(|e| e.matches(&record))
    };
    let rows: Vec<Row<'_>> = hours
        .iter()
        .flat_map(|h| {
            h.counts.iter().flat_map(move |(service, levels)| {
                levels.iter().map(move |(level, count)| Row {
                    app: &h.app,
                    service,
                    level: *level,
                    hour: &h.hour,
                    count: *count,
                })
            })
        })
        .filter(|row| probe(row.app, row.service, row.level))
        .collect();
    let total: u64 = rows.iter().map(|r| r.count).sum();
    Ok(axum::Json(json!({
        "rows": rows,
        "total": total,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// An error group as the API shows it.
#[derive(Debug, Serialize)]
struct Group {
    app: String,
    service: String,
    fingerprint: String,
    template: String,
    level: Level,
    count: u64,
    first_seen: i64,
    last_seen: i64,
    samples: Vec<Sample>,
    hosts: Vec<String>,
    more_hosts: bool,
    /// Occurrences per hour, oldest first: `[hour start in seconds since
    /// the epoch, count]`, for the newest hours that had any.
    hours: Vec<(i64, u64)>,
}

impl From<ErrorGroup> for Group {
    fn from(g: ErrorGroup) -> Group {
        Group {
            app: g.app,
            service: g.service,
            fingerprint: g.fingerprint,
            template: g.template,
            level: g.level,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
            samples: g.samples,
            hosts: g.hosts,
            more_hosts: g.more_hosts,
            hours: g.hours.iter().map(|(h, n)| (h * 3600, *n)).collect(),
        }
    }
}

pub async fn errors(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&["limit"])?;
    let limit = pairs.number("limit", 100, 1, MAX_LIMIT)?;
    let filters = pairs.filters(|_| 0)?;
    let reader = reader(&api).await?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let mut groups: Vec<Group> = Vec::new();
    for app in &apps {
        let found = reader
            .groups(Some(app), usize::MAX)
            .await
            .map_err(unreachable)?;
        groups.extend(found.into_iter().filter(|g| g.app == *app).map(Group::from));
    }
    groups.retain(|g| g.last_seen >= filters.from_ns && g.first_seen < filters.to_ns);
    groups.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.count.cmp(&a.count)));
    let total = groups.len();
    groups.truncate(limit);
    Ok(axum::Json(json!({ "errors": groups, "total": total })).into_response())
}

pub async fn error(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    if fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad(format!(
            "{fingerprint:?} is not a fingerprint (16 hex digits)"
        )));
    }
    let pairs = Pairs(&pairs);
    pairs.known(&[])?;
    let filters = pairs.filters(|_| 0)?;
    let reader = reader(&api).await?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let fingerprint = fingerprint.to_ascii_lowercase();
    let mut groups: Vec<Group> = Vec::new();
    for app in &apps {
        let found = reader
            .fingerprint(app, &fingerprint)
            .await
            .map_err(unreachable)?;
        groups.extend(found.into_iter().filter(|g| g.app == *app).map(Group::from));
    }
    if groups.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no error group {fingerprint} in the apps the caller may read"),
        ));
    }
    Ok(axum::Json(json!({ "fingerprint": fingerprint, "groups": groups })).into_response())
}
