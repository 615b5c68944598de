//! The HTTP API, versioned under `/api/v1`. Every answer is JSON; an error
//! is `{"error": "<what, naming the parameter>"}` with its status: 400 for
//! a bad request, 401 without a valid token, 403 for an app outside the
//! token's set, 503 when the store cannot be reached.
//!
//! * `GET /api/v1/logs/search` — `query`, `app` (repeatable or
//!   comma-separated; default every app the caller may read), `service`,
//!   `level` (one: a minimum; several: a list), `start_time`/`end_time`
//!   (RFC 3339, an epoch number, `now`, `now-1h`; end exclusive), `limit`
//!   (default 100, at most 10,000), `order` (`desc`, newest first, or
//!   `asc`), `page` (from 1) or `cursor` (from `next_cursor`), `count`
//!   (`exact` scans every candidate). Answers
//!   `{"logs":[…],"total":N,"total_exact":bool,"page":P,"next_cursor":…,"stats":{…}}`.
//! * `GET /api/v1/apps` — the apps the caller may read that have filed
//!   logs or records in the recent window.
//!
//! Access: with `[[query.tokens]]`, every request carries
//! `Authorization: Bearer <token>` and reads only the token's apps. Without
//! tokens every caller reads every app (the service then listens on
//! loopback unless `allow_anonymous` is set). Every search is logged with
//! the token's name, the query, the apps and the result count.

pub mod params;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use object_store::ObjectStore;
use serde_json::json;
use sluice_core::config::{QueryConfig, TokenConfig};
use sluice_core::store::Store;

use crate::metrics::QueryMetrics;
use crate::recent::Window;
use crate::search::{Request, SidecarCache, search};
use params::{encode_cursor, search_params};

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub sidecars: Arc<SidecarCache>,
    pub config: Arc<QueryConfig>,
    pub recent: Arc<Window>,
    pub metrics: QueryMetrics,
}

/// The API's routes.
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/v1/logs/search", get(search_logs))
        .route("/api/v1/apps", get(apps))
        .with_state(api)
}

/// An answer that is an error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
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

/// The apps that have filed logs (`app=<name>/` under the store's prefix).
async fn filed_apps(store: &Store) -> Result<Vec<String>, ApiError> {
    let listed = store
        .inner
        .list_with_delimiter(Some(&store.prefix))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the store: {e}")))?;
    let mut apps: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.strip_prefix("app=").map(String::from))
        .filter(|a| sluice_core::names::is_valid(a))
        .collect();
    apps.sort();
    Ok(apps)
}

/// The apps a request reads: the ones it names, each allowed, or every
/// allowed app with filed logs or records in the recent window.
async fn apps_for(
    api: &Api,
    caller: &Caller<'_>,
    named: &[String],
) -> Result<Vec<String>, ApiError> {
    if let Some(app) = named.iter().find(|a| !caller.allows(a)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("token {:?} may not read app {app:?}", caller.name()),
        ));
    }
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

async fn search_logs(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = caller(&api.config, &headers)?;
    let p = search_params(&pairs).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let apps = apps_for(&api, &caller, &p.apps).await?;
    let request = Request {
        query: p.query,
        level: p.level,
        service: p.service,
        apps: apps.clone(),
        from_ns: p.from_ns,
        to_ns: p.to_ns,
        limit: p.limit,
        offset: (p.page - 1) * p.limit,
        order: p.order,
        after: p.after,
        exact_count: p.exact_count,
        deadline: started + Duration::from_secs(api.config.timeout_secs),
    };
    let answer = search(&api.store, &api.sidecars, &request, Some(&api.recent))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    api.metrics.observe(&answer.stats, started.elapsed());
    tracing::info!(
        token = caller.name(),
        query = %p.query_text,
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
