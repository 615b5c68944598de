//! The HTTP API, versioned under `/api/v1`. Every answer is JSON (or
//! NDJSON, or server-sent events, where said); an error is
//! `{"error": "<what, naming the parameter>"}` with its status: 400 for a
//! bad request, 401 without a valid token, 403 for an app outside the
//! token's set, 404 for what does not exist, 503 when the store or NATS
//! cannot be reached (the message says which).
//!
//! The log endpoints share the filters `query`, `app` (repeatable or
//! comma-separated; default every app the caller may read), `service`,
//! `level` (one: a minimum; several: a list) and `start_time`/`end_time`
//! (RFC 3339, an epoch number, `now`, `now-1h`; end exclusive).
//!
//! * `GET /api/v1/logs/search` — the filters, `limit` (default 100, at
//!   most 10,000), `order` (`desc`, newest first, or `asc`), `page` (the
//!   first is 1) or `cursor` (from `next_cursor`), `count` (`exact` scans
//!   every candidate). Answers
//!   `{"logs":[…],"total":N,"total_exact":bool,"page":P,"next_cursor":…,"stats":{…}}`.
//! * `GET /api/v1/logs/export` — the filters, `order`, `limit` (default:
//!   no limit): every match as NDJSON, streamed (see
//!   [`crate::search::export`] for its order and its last line when
//!   partial). Work stops when the client goes away.
//! * `GET /api/v1/logs/hits` — the filters (default range: the last 24
//!   hours), `step` (`5m`, `1h`…; default: about 100 steps), `by`
//!   (`level`, `service`, `app` or `host`; default one series; `host`
//!   reads every candidate blob): counts per step, from the
//!   sidecars alone when the query looks only at app, service and level.
//!   Answers `{"step_secs":…,"timestamps":[…],"series":[{"group","values","total"}],"total":N,"index_only":bool,"stats":{…}}`.
//! * `GET /api/v1/logs/tail` — `query`, `app`, `service`, `level`: live
//!   matches as server-sent events, one record (JSON) per event, its `id`
//!   the record's stream position; reconnect with `Last-Event-ID` to go on
//!   after it. An event `gap` says records were dropped from the window
//!   before they could be sent.
//! * `GET /api/v1/logs/{id}/context` — `before`, `after` (default 10, at
//!   most 1,000), `app`: the lines around one record from the same app,
//!   host and source, in time order: `{"record":…,"logs":[…]}`.
//! * `GET /api/v1/requests/{value}` — every record whose `request_id` or
//!   `trace_id` is the value, across apps and services, oldest first, with
//!   one span per (app, service) and the gaps between them:
//!   `{"request":…,"logs":[…],"spans":[…],"total":N,"stats":{…}}`.
//! * `GET /api/v1/aggregates` — `app`, `service`, `level`,
//!   `start_time`/`end_time` (default the last 24 hours): the
//!   aggregator's counts, `{"rows":[{"app","service","level","hour","count"}]}`.
//! * `GET /api/v1/errors` — `app`, `limit` (default 100): the aggregator's
//!   error groups, latest first; `GET /api/v1/errors/{fingerprint}` — the
//!   groups of one fingerprint (one per app and service).
//! * `GET /api/v1/alerts` — the alerter's firing alerts and the silences
//!   in force, of the apps the caller may read:
//!   `{"firing":[{"rule","app","values","last_notified"}],"silences":[…]}`.
//! * `GET /api/v1/apps` — the apps the caller may read that have filed
//!   logs or records in the recent window.
//!
//! Access: with `[[query.tokens]]`, every request carries
//! `Authorization: Bearer <token>` and reads only the token's apps. Without
//! tokens every caller reads every app (the service then listens on
//! loopback unless `allow_anonymous` is set). Every search is logged with
//! the token's name, the query, the apps and the result count.

mod alerts;
mod groups;
mod logs;
pub mod params;
mod requests;
mod tail;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sluice_core::config::{AlerterConfig, QueryConfig, TokenConfig};
use tokio_util::sync::CancellationToken;

use crate::metrics::QueryMetrics;
use crate::recent::Window;
use crate::search::{Order, Request, SidecarCache, StoreUnreachable, Tiers};
use params::Filters;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub store: Tiers,
    pub sidecars: Arc<SidecarCache>,
    pub config: Arc<QueryConfig>,
    /// The alerter's rules and silences: which app each alert concerns.
    pub alerter: Arc<AlerterConfig>,
    pub recent: Arc<Window>,
    pub metrics: QueryMetrics,
    /// NATS, once connected: the aggregator's KV buckets are read through it.
    pub jetstream: Arc<OnceLock<jetstream::Context>>,
    /// Cancelled when the service stops: live tails and exports end.
    pub stop: CancellationToken,
}

impl Api {
    /// The NATS connection, or a 503 saying it is not there.
    fn jetstream(&self) -> Result<&jetstream::Context, ApiError> {
        self.jetstream.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NATS cannot be reached yet: the aggregator's groups and counts are read through it",
            )
        })
    }

    /// A request for `filters` over `apps`, due by the configured timeout.
    fn request(&self, filters: Filters, apps: Vec<String>, limit: usize, order: Order) -> Request {
        Request {
            query: filters.query,
            level: filters.level,
            service: filters.service,
            apps,
            from_ns: filters.from_ns,
            to_ns: filters.to_ns,
            limit,
            offset: 0,
            order,
            after: None,
            exact_count: false,
            deadline: Instant::now() + Duration::from_secs(self.config.timeout_secs),
        }
    }
}

/// The API's routes.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/v1/logs/search", get(logs::search_logs))
        .route("/api/v1/logs/export", get(logs::export_logs))
        .route("/api/v1/logs/hits", get(logs::hits))
        .route("/api/v1/logs/tail", get(tail::tail))
        .route("/api/v1/logs/{id}/context", get(logs::context))
        .route("/api/v1/requests/{value}", get(requests::request))
        .route("/api/v1/aggregates", get(groups::aggregates))
        .route("/api/v1/errors", get(groups::errors))
        .route("/api/v1/errors/{fingerprint}", get(groups::error))
        .route("/api/v1/apps", get(apps))
        .route("/api/v1/alerts", get(alerts::alerts))
        .with_state(api)
}

/// An answer that is an error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// A parameter refused (the message names it) is a 400.
impl From<String> for ApiError {
    fn from(message: String) -> ApiError {
        ApiError::bad(message)
    }
}

impl From<StoreUnreachable> for ApiError {
    fn from(err: StoreUnreachable) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// Who is asking: a token's name and apps, or anyone (no tokens set).
struct Caller<'a> {
    token: Option<&'a TokenConfig>,
}

impl Caller<'_> {
    fn name(&self) -> &str {
        self.token.map_or("anonymous", |t| t.name.as_str())
    }

    fn allows(&self, app: &str) -> bool {
        self.token.is_none_or(|t| t.allows(app))
    }

    /// A 403 naming the first of `apps` the caller may not read.
    fn may_read(&self, apps: &[String]) -> Result<(), ApiError> {
        match apps.iter().find(|a| !self.allows(a)) {
            Some(app) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("token {:?} may not read app {app:?}", self.name()),
            )),
            None => Ok(()),
        }
    }
}

fn caller<'a>(config: &'a QueryConfig, headers: &HeaderMap) -> Result<Caller<'a>, ApiError> {
    if config.tokens.is_empty() {
        return Ok(Caller { token: None });
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this service needs Authorization: Bearer <token>",
            )
        })?;
    config
        .tokens
        .iter()
        .find(|t| {
            t.token
                .as_deref()
                .is_some_and(|s| same(s.as_bytes(), presented.as_bytes()))
        })
        .map(|t| Caller { token: Some(t) })
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The apps that have filed logs, hot or cold.
async fn filed_apps(stores: &Tiers) -> Result<Vec<String>, ApiError> {
    let unreachable = |e: object_store::Error| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the store: {e}"))
    };
    let mut apps = sluice_core::store::apps(&stores.hot)
        .await
        .map_err(unreachable)?;
    if let Some(cold) = &stores.cold {
        apps.extend(sluice_core::store::apps(cold).await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the cold store: {e}"),
            )
        })?);
        apps.sort();
        apps.dedup();
    }
    Ok(apps)
}

/// The apps a request reads: the ones it names, each allowed, or every
/// allowed app with filed logs or records in the recent window.
async fn apps_for(
    api: &Api,
    caller: &Caller<'_>,
    named: &[String],
) -> Result<Vec<String>, ApiError> {
    caller.may_read(named)?;
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let mut apps = filed_apps(&api.store).await?;
    apps.extend(api.recent.apps());
    apps.sort();
    apps.dedup();
    Ok(apps.into_iter().filter(|a| caller.allows(a)).collect())
}

async fn apps(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    let apps = apps_for(&api, &caller, &[]).await?;
    Ok(axum::Json(json!({ "apps": apps })).into_response())
}
