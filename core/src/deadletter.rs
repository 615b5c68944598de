//! The dead-letter stream: where a role sets aside a `LOGS` message it will
//! not use, so that nothing is dropped without a trace.
//!
//! * Stream `SLUICE_DEADLETTER`, subjects `sluice.deadletter.<role>`
//!   (`filterer`, `aggregator`, `alerter`), created or updated by every
//!   role that may publish to it, with the `LOGS` stream's replicas and
//!   `max_age`.
//! * The message is the original payload, unchanged, with headers
//!   `Sluice-Reason` (the [`Misfiled`](crate::subject::Misfiled) text, its
//!   first word the reason's label), `Sluice-Subject` (the subject it came
//!   on) and `Sluice-Stream-Seq` (its sequence in `LOGS`).
//! * `Nats-Msg-Id` is `<role>:<LOGS sequence>`: a role that sets the same
//!   message aside twice (a redelivery, a second instance, a replay) stores
//!   it once within the stream's duplicate window of an hour.
//! * A role acknowledges the original only after the dead letter was
//!   stored; when it cannot be, the original is left unacknowledged and is
//!   redelivered.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Config as StreamConfig};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::config::NatsConfig;
use crate::nats::NatsError;
use crate::subject::{Misfiled, REASONS};

/// The dead-letter stream.
pub const STREAM: &str = "SLUICE_DEADLETTER";
/// Duplicate window of the dead-letter stream.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// Attempts to store one dead letter before giving up on it for now.
const ATTEMPTS: u32 = 5;

/// The subject `role` sets messages aside on.
pub fn subject(role: &str) -> String {
    format!("sluice.deadletter.{role}")
}

/// The configuration of the dead-letter stream.
pub fn stream_config(cfg: &NatsConfig) -> StreamConfig {
    let max_age = Duration::from_secs(cfg.max_age_secs);
    StreamConfig {
        name: STREAM.into(),
        subjects: vec!["sluice.deadletter.>".into()],
        max_age,
        num_replicas: cfg.replicas,
        duplicate_window: if max_age.is_zero() {
            DUPLICATE_WINDOW
        } else {
            DUPLICATE_WINDOW.min(max_age)
        },
        ..Default::default()
    }
}

/// Creates the dead-letter stream, or updates it to the configured settings.
pub async fn ensure(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), NatsError> {
    js.create_or_update_stream(stream_config(cfg))
        .await
        .map(|_| ())
        .map_err(|e| NatsError::Request(format!("stream {STREAM}: {e}")))
}

/// One message to set aside.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The role setting it aside.
    pub role: &'a str,
    /// Its sequence in `LOGS`.
    pub stream_seq: u64,
    /// The subject it came on.
    pub subject: &'a str,
    /// Why.
    pub reason: &'a str,
}

/// Stores `payload` on the dead-letter stream, retrying a few times.
pub async fn publish(
    js: &jetstream::Context,
    letter: DeadLetter<'_>,
    payload: Bytes,
) -> Result<(), NatsError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("{}:{}", letter.role, letter.stream_seq),
    );
    // Header values end at a line break; the reason never holds one, but a
    // subject could in principle.
    headers.insert("Sluice-Reason", one_line(letter.reason).as_str());
    headers.insert("Sluice-Subject", one_line(letter.subject).as_str());
    headers.insert("Sluice-Stream-Seq", letter.stream_seq.to_string());
    let subject = subject(letter.role);
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        match js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await
        {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tracing::warn!(error = %last, attempt, "dead letter not stored yet");
    }
    Err(NatsError::Request(format!(
        "dead letter of {} (seq {}) not stored: {last}",
        letter.subject, letter.stream_seq
    )))
}

/// Sets a `LOGS` message aside for `misfiled`: stores it on the
/// dead-letter stream as `role`, then counts and logs it. `false` when it
/// could not be stored: leave the message unacknowledged, so that it is
/// redelivered and set aside later.
pub async fn set_aside(
    js: &jetstream::Context,
    role: &str,
    msg: &jetstream::Message,
    misfiled: &Misfiled,
    counts: &Counts,
) -> bool {
    let stream_seq = msg.info().map_or(0, |i| i.stream_sequence);
    let reason = misfiled.to_string();
    let letter = DeadLetter {
        role,
        stream_seq,
        subject: msg.subject.as_str(),
        reason: &reason,
    };
    match publish(js, letter, msg.payload.clone()).await {
        Ok(()) => {
            counts.inc(misfiled);
            tracing::warn!(subject = %msg.subject, seq = stream_seq, reason = %reason, "message set aside on the dead-letter stream, not used");
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, subject = %msg.subject, seq = stream_seq, "cannot set a message aside");
            false
        }
    }
}

/// A role's count of messages set aside, by `reason`; every reason is
/// exported from the start, at 0.
#[derive(Debug, Clone, Default)]
pub struct Counts(Family<Vec<(String, String)>, Counter>);

impl Counts {
    /// Registers the counter as `name` (exported as `<name>_total`).
    pub fn register(registry: &mut Registry, name: &str) -> Counts {
        let counts = Counts::default();
        for reason in REASONS {
            let _ = counts.0.get_or_create(&label(reason));
        }
        registry.register(
            name,
            "Messages set aside on the dead-letter stream, not used, by reason",
            counts.0.clone(),
        );
        counts
    }

    /// Counts one message set aside.
    pub fn inc(&self, misfiled: &Misfiled) {
        self.0.get_or_create(&label(misfiled.label())).inc();
    }

    /// How many were set aside for `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get_or_create(&label(reason)).get()
    }
}

fn label(reason: &str) -> Vec<(String, String)> {
    vec![("reason".to_string(), reason.to_string())]
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_stream() {
        assert_eq!(subject("filterer"), "sluice.deadletter.filterer");
        let c = stream_config(&NatsConfig::default());
        assert_eq!(c.name, STREAM);
        assert!(c.duplicate_window <= Duration::from_secs(3600));
        assert!(c.duplicate_window >= Duration::from_secs(120));
        assert_eq!(one_line("a\r\nb"), "a  b");
    }
}
