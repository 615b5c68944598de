//! What the aggregator keeps, read from its KV buckets: per-hour counts
//! and error groups, each only of the apps the caller may read.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sluice_aggregator::counts::HourCounts;
use sluice_aggregator::groups::ErrorGroup;
use sluice_aggregator::{COUNTS_BUCKET, GROUPS_BUCKET};
use sluice_core::Level;
use sluice_core::nats::kv_newest;
use sluice_core::time::{NS_PER_HOUR, now_nanos, parse_ts};
use sluice_notify::notification::Sample;

use super::params::{MAX_LIMIT, Pairs};
use super::{Api, ApiError, apps_for, caller};

/// KV entries read for one answer, at most.
const MAX_ENTRIES: usize = 200_000;

/// One `(app, service, level, hour)` count.
#[derive(Debug, Serialize)]
struct Row<'a> {
    app: &'a str,
    service: &'a str,
    level: Level,
    hour: &'a str,
    count: u64,
}

fn unreachable(what: &str, err: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("NATS: reading {what}: {err}"),
    )
}

pub async fn aggregates(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&[]).map_err(ApiError::bad)?;
    let filters = pairs
        .filters(|now| now - 24 * NS_PER_HOUR)
        .map_err(ApiError::bad)?;
    if !filters.query_text.is_empty() {
        return Err(ApiError::bad(
            "query: the counts are per app, service, level and hour; filter with app, service and level",
        ));
    }
    let js = api.jetstream()?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let to_ns = filters.to_ns.min(now_nanos().saturating_add(NS_PER_HOUR));
    let mut hours = Vec::new();
    for app in &apps {
        let entries = kv_newest(js, COUNTS_BUCKET, &format!("{app}.*"), MAX_ENTRIES)
            .await
            .map_err(|e| unreachable("the aggregator's counts", e))?;
        for (_, value) in entries {
            let Ok(counts) = serde_json::from_slice::<HourCounts>(&value) else {
                continue;
            };
            let Some(start) = parse_ts(&counts.hour) else {
                continue;
            };
            // An hour counts when it overlaps the range.
            if counts.app == *app && start < to_ns && start + NS_PER_HOUR > filters.from_ns {
                hours.push(counts);
            }
        }
    }
    hours.sort_by(|a, b| (&a.hour, &a.app).cmp(&(&b.hour, &b.app)));
    let probe = |app: &str, service: &str, level: Level| {
        let record = sluice_core::Record {
            id: String::new(),
            ts: 0,
            app: app.into(),
            service: service.into(),
            host: String::new(),
            level,
            msg: String::new(),
            attrs: Default::default(),
            source: String::new(),
        };
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
        }
    }
}

/// The groups under `pattern` of each app in `apps`.
async fn read_groups(
    api: &Api,
    apps: &[String],
    pattern: impl Fn(&str) -> String,
) -> Result<Vec<Group>, ApiError> {
    let js = api.jetstream()?;
    let mut groups = Vec::new();
    for app in apps {
        let entries = kv_newest(js, GROUPS_BUCKET, &pattern(app), MAX_ENTRIES)
            .await
            .map_err(|e| unreachable("the aggregator's error groups", e))?;
        groups.extend(
            entries
                .into_iter()
                .filter_map(|(_, value)| serde_json::from_slice::<ErrorGroup>(&value).ok())
                .filter(|g| g.app == *app)
                .map(Group::from),
        );
    }
    groups.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.count.cmp(&a.count)));
    Ok(groups)
}

pub async fn errors(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&["limit"]).map_err(ApiError::bad)?;
    let limit = pairs
        .number("limit", 100, 1, MAX_LIMIT)
        .map_err(ApiError::bad)?;
    let filters = pairs.filters(|_| 0).map_err(ApiError::bad)?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let mut groups = read_groups(&api, &apps, |app| format!("{app}.>")).await?;
    groups.retain(|g| g.last_seen >= filters.from_ns && g.first_seen < filters.to_ns);
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
    pairs.known(&[]).map_err(ApiError::bad)?;
    let filters = pairs.filters(|_| 0).map_err(ApiError::bad)?;
    let apps = apps_for(&api, &caller, &filters.apps).await?;
    let fingerprint = fingerprint.to_ascii_lowercase();
    let groups = read_groups(&api, &apps, |app| format!("{app}.*.{fingerprint}")).await?;
    if groups.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no error group {fingerprint} in the apps the caller may read"),
        ));
    }
    Ok(axum::Json(json!({ "fingerprint": fingerprint, "groups": groups })).into_response())
}
