//! What the alerter keeps, read from its KV buckets: the alerts firing now
//! and the silences in force, each shown only to a caller who may read its
//! app.
//!
//! An alert's app is its rule's (`[[alerter.rules]] app`), or for the
//! system's ingest-spike alert the app it names. Alerts of rules this
//! configuration does not know, the consumer-lag alert, and silences that
//! name no app (directly or through their rule) concern every app: only a
//! caller who may read every app sees them.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_alerter::silence;
use sluice_core::time::now_nanos;

use super::params::Pairs;
use super::{Api, ApiError, Caller, caller};

fn unreachable(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("NATS: the alerter's {what}: {err}"),
    )
}

pub async fn alerts(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    Pairs(&pairs).known(&[])?;
    let js = api.jetstream()?;
    let now = now_nanos();
    let rule_apps: HashMap<&str, &str> = api
        .alerter
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.app.as_str()))
        .collect();
    let mut firing = Vec::new();
    // No bucket yet: no alerter has run, so nothing fires.
    if let Ok(groups) = js.get_key_value(sluice_alerter::GROUPS_BUCKET).await {
        let states = sluice_alerter::firing(&groups)
            .await
            .map_err(|e| unreachable("alerts", e))?;
        for state in states {
            let app = if state.rule == sluice_alerter::system::SPIKE_RULE {
                state.values.first().cloned()
            } else {
                rule_apps.get(state.rule.as_str()).map(|a| a.to_string())
            };
            if visible(&caller, app.as_deref()) {
                firing.push(json!({
                    "rule": state.rule,
                    "app": app,
                    "values": state.values,
                    "last_notified": state.last_notified,
                }));
            }
        }
    }
    let bucket = js.get_key_value(silence::BUCKET).await.ok();
    let mut silences = silence::in_force(&api.alerter.silences, bucket.as_ref(), now)
        .await
        .map_err(|e| unreachable("silences", e))?;
    silences.retain(|s| {
        let app = s
            .app
            .as_deref()
            .or_else(|| s.rule.as_deref().and_then(|r| rule_apps.get(r).copied()));
        visible(&caller, app)
    });
    Ok(axum::Json(json!({ "firing": firing, "silences": silences })).into_response())
}

/// Whether the caller sees what concerns `app` (`None`: every app).
fn visible(caller: &Caller<'_>, app: Option<&str>) -> bool {
    match app {
        Some(app) => caller.allows(app),
        None => caller.token.is_none_or(|t| t.apps.iter().any(|a| a == "*")),
    }
}
