//! The audit stream: a record of every action that removes or moves filed
//! logs (and, later, of other privileged actions).
//!
//! * Stream `SLUICE_AUDIT`, subjects `sluice.audit.<kind>.<app>` (today
//!   `expiry`), file storage, the `LOGS` stream's replicas, kept for the
//!   configured days (`[expiry] audit_max_age_days`, 0: forever).
//! * One JSON [`Event`] per action. `Nats-Msg-Id` is the action's id, made
//!   when the action starts and kept in its marker, so a run that resumes
//!   an interrupted action after a crash reports it once within the
//!   stream's duplicate window of a day.
//! * The write is acknowledged by JetStream before the action counts as
//!   done; an audit record that cannot be stored leaves the action to be
//!   finished, and reported, by the next pass.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Config as StreamConfig};
use serde::{Deserialize, Serialize};

use crate::config::NatsConfig;

/// The audit stream.
pub const STREAM: &str = "SLUICE_AUDIT";
/// Its subjects.
pub const SUBJECTS: &str = "sluice.audit.>";
/// Its duplicate window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The action's id (a ULID), also its `Nats-Msg-Id`.
    pub id: String,
    /// When it finished, RFC 3339.
    pub at: String,
    /// What did it: `expiry`.
    pub kind: String,
    /// `moved`, `deleted`.
    pub action: String,
    /// The app.
    pub app: String,
    /// The partition (`app=…/dt=…/hour=…`).
    pub partition: String,
    /// Where the objects were (`hot`, `cold`, `hot+cold`).
    pub from: String,
    /// Objects moved or deleted.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The rule that decided it (`app "shop"`, `default`).
    pub rule: String,
    /// The instance that did it.
    pub instance: String,
}

/// The stream's configuration.
pub fn stream_config(nats: &NatsConfig, max_age_days: u64) -> StreamConfig {
    let max_age = Duration::from_secs(max_age_days.saturating_mul(24 * 3600));
    StreamConfig {
        name: STREAM.into(),
        subjects: vec![SUBJECTS.into()],
        max_age,
        num_replicas: nats.replicas.max(1),
        duplicate_window: if max_age.is_zero() {
            DUPLICATE_WINDOW
        } else {
            DUPLICATE_WINDOW.min(max_age)
        },
        ..Default::default()
    }
}

/// Creates or updates the audit stream.
pub async fn ensure(
    js: &jetstream::Context,
    nats: &NatsConfig,
    max_age_days: u64,
) -> Result<(), String> {
    js.get_or_create_stream(stream_config(nats, max_age_days))
        .await
        .map(|_| ())
        .map_err(|e| format!("stream {STREAM}: {e}"))
}

/// The subject of `event`.
pub fn subject(event: &Event) -> String {
    format!("sluice.audit.{}.{}", event.kind, event.app)
}

/// Stores `event`, waiting for JetStream's acknowledgement.
pub async fn publish(js: &jetstream::Context, event: &Event) -> Result<(), String> {
    let payload = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.as_str());
    js.publish_with_headers(subject(event), headers, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map(|_| ())
        .map_err(|e| format!("audit record not stored: {e}"))
}

/// Every event stored so far (at most `max`), oldest first: for
/// `sluice expiry audit` and tests.
pub async fn read_all(js: &jetstream::Context, max: usize) -> Result<Vec<Event>, String> {
    use jetstream::consumer::{DeliverPolicy, pull};
    let stream = js
        .get_stream(STREAM)
        .await
        .map_err(|e| format!("stream {STREAM}: {e}"))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    crate::nats::read_caught_up(consumer, max, "the audit stream", |message| {
        match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::warn!(subject = %message.subject, error = %err, "an audit record that is not an event");
                None
            }
        }
    })
    .await
}
