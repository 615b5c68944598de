//! Live tail: the window's new matching records as server-sent events.
//!
//! Each event is one record's JSON, its `id` the record's stream position
//! (the same on every query instance). A client reconnecting with
//! `Last-Event-ID` gets every matching record after that position that the
//! window still holds, and an event `gap` first when some were dropped
//! before they could be sent. Without it the tail starts at the newest
//! record. The stream ends when the service stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::params::Pairs;
use super::{Api, ApiError, caller};
use crate::recent::Position;
use crate::search::Order;

/// Records taken from the window at once.
const BATCH: usize = 1_000;

pub async fn tail(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let caller = caller(&api.config, &headers)?;
    let pairs = Pairs(&pairs);
    pairs.known(&[])?;
    let filters = pairs.filters(|_| 0)?;
    caller.may_read(&filters.apps)?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad("Last-Event-ID is not text"))?
                .parse::<Position>()
                .map_err(|e| ApiError::bad(format!("Last-Event-ID {e}")))?,
        ),
    };
    let named = filters.apps.clone();
    let token = caller.token.cloned();
    let request = api.request(filters, Vec::new(), usize::MAX, Order::Oldest);
    let keep = move |r: &sluice_core::Record| {
        token.as_ref().is_none_or(|t| t.allows(&r.app))
            && (named.is_empty() || named.contains(&r.app))
            && request.matches_filters(r)
    };
    tracing::info!(token = caller.name(), query = %pairs.one("query").ok().flatten().unwrap_or(""), "tail");
    api.metrics.tails_open.inc();
    let state = Tail {
        updates: api.recent.subscribe(),
        at: resume.or_else(|| api.recent.latest()),
        resumed: resume.is_some(),
        queue: VecDeque::new(),
        api,
        keep: Box::new(keep),
    };
    let events = futures::stream::unfold(state, |mut state| async move {
        let event = state.next().await?;
        Some((Ok::<_, Infallible>(event), state))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

struct Tail {
    api: Api,
    updates: tokio::sync::watch::Receiver<Option<Position>>,
    /// The last position looked at.
    at: Option<Position>,
    /// Whether the client asked to go on from a position (only then is a
    /// gap worth telling).
    resumed: bool,
    queue: VecDeque<Event>,
    keep: Box<dyn Fn(&sluice_core::Record) -> bool + Send + Sync>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.api.metrics.tails_open.dec();
    }
}

impl Tail {
    /// The next event, waiting for new records; `None` when the service
    /// stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            // Mark the current value seen before reading, so a record
            // pushed after the read wakes the wait below.
            self.updates.borrow_and_update();
            let after = self.api.recent.after(self.at, BATCH, &self.keep);
            if after.gap && self.resumed {
                self.queue.push_back(
                    Event::default()
                        .event("gap")
                        .data("records after Last-Event-ID were dropped from the window before they could be sent"),
                );
            }
            self.resumed = false;
            let more = after.looked != self.at;
            self.at = after.looked;
            for (position, record) in after.records {
                self.queue.push_back(
                    Event::default()
                        .id(position.to_string())
                        .data(record.to_json()),
                );
            }
            if !self.queue.is_empty() || more {
                continue;
            }
            tokio::select! {
                changed = self.updates.changed() => changed.ok()?,
                _ = self.api.stop.cancelled() => return None,
            }
        }
    }
}
