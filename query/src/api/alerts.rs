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
use futures::StreamExt;
use serde_json::json;
use sluice_alerter::rules::GroupState;
use sluice_alerter::silence::{self, Silence};
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
        let mut keys = groups.keys().await.map_err(|e| unreachable("alerts", e))?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unreachable("alerts", e))?;
            if key == sluice_alerter::CHECKPOINT_KEY {
                continue;
            }
            let Some(value) = groups
                .get(&key)
                .await
                .map_err(|e| unreachable("alerts", e))?
            else {
                continue;
            };
            let Ok(state) = serde_json::from_slice::<GroupState>(&value) else {
                continue;
            };
            if !state.firing {
                continue;
            }
            let app = if state.rule == sluice_alerter::system::SPIKE_RULE {
                state.values.first().map(String::as_str)
            } else {
                rule_apps.get(state.rule.as_str()).copied()
            };
            if visible(&caller, app) {
                firing.push(json!({
                    "rule": state.rule,
                    "app": app,
                    "values": state.values,
                    "last_notified": state.last_notified,
                }));
            }
        }
    }
    let mut silences: Vec<Silence> = api
        .alerter
        .silences
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Silence::from_config(c, i))
        .filter(|s| s.active(now))
        .collect();
    if let Ok(bucket) = js.get_key_value(silence::BUCKET).await {
        silences.extend(
            silence::list(&bucket, now)
                .await
                .map_err(|e| unreachable("silences", e))?,
        );
    }
    silences.retain(|s| {
        let app = s
            .app
            .as_deref()
            .or_else(|| s.rule.as_deref().and_then(|r| rule_apps.get(r).copied()));
        visible(&caller, app)
    });
    firing.sort_by(|a, b| a["rule"].as_str().cmp(&b["rule"].as_str()));
    Ok(axum::Json(json!({ "firing": firing, "silences": silences })).into_response())
}

/// Whether the caller sees what concerns `app` (`None`: every app).
fn visible(caller: &Caller<'_>, app: Option<&str>) -> bool {
    match app {
        Some(app) => caller.allows(app),
        None => caller.token.is_none_or(|t| t.apps.iter().any(|a| a == "*")),
    }
}
