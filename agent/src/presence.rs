//! The agent's heartbeat in KV `sluice_agents`, from which it notices
//! another running agent with the same agent id.
//!
//! Two agents sharing an id (two hosts with one name, a copied config, a
//! cloned machine) no longer lose data: each spool has its own incarnation,
//! so their `Nats-Msg-Id`s never collide. But their metrics, logs and
//! heartbeats mix, and an operator should give each its own `[agent] id`:
//! this is a warning, never a refusal.
//!
//! * Key: the agent id, with every byte outside `[A-Za-z0-9_-]` written as
//!   `=XX` (hex), so any id is a valid key and two ids never share one.
//! * Value: JSON [`Heartbeat`].
//! * Every `heartbeat_secs` (with ±10 % jitter, so two agents do not stay in
//!   step) the agent reads the key, then writes its own heartbeat. When the
//!   key holds a heartbeat of another spool incarnation written *after*
//!   this agent's previous one, another agent with this id is running now:
//!   a warning is logged and `sluice_agent_id_conflicts_total` counts it.
//!   The test compares KV revisions, not clocks, so clock skew between
//!   hosts does not matter; and the first read after a start only sets the
//!   baseline, so the heartbeat a previous run of this host left behind
//!   (before its data directory was wiped) is not mistaken for a live one.
//! * NATS being away only delays the heartbeat; nothing waits for it.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::metrics::AgentMetrics;

/// KV bucket of agent heartbeats.
pub const AGENTS_BUCKET: &str = "sluice_agents";
/// A heartbeat not renewed for this long vanishes from the bucket.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// At most one warning per this many heartbeats while the conflict lasts.
const WARN_EVERY: u64 = 20;

/// What an agent writes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The spool's incarnation, 16 hex digits.
    pub incarnation: String,
    /// The host name the agent runs on.
    pub host: String,
    /// The agent's process id.
    pub pid: u32,
    /// When it wrote this, RFC 3339 (for people; never compared).
    pub at: String,
}

/// The KV key of an agent id.
pub fn key(agent_id: &str) -> String {
    let mut out = String::with_capacity(agent_id.len());
    for b in agent_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Judges one read of the key: the heartbeat of another agent with this id
/// written since this agent's last write (`own_revision`), if any. `None`
/// before this agent wrote at all.
pub fn conflict(
    own_revision: Option<u64>,
    own_incarnation: &str,
    seen: Option<(u64, Heartbeat)>,
) -> Option<Heartbeat> {
    let own = own_revision?;
    let (revision, beat) = seen?;
    (revision != own && beat.incarnation != own_incarnation).then_some(beat)
}

/// Writes the heartbeat every `every`, for ever: the caller runs it until
/// the role stops, abandoning a KV call in flight then, so an unreachable
/// server never holds up shutdown.
pub async fn run(
    js: jetstream::Context,
    replicas: usize,
    agent_id: String,
    beat: Heartbeat,
    every: Duration,
    metrics: AgentMetrics,
) {
    let key = key(&agent_id);
    let mut bucket: Option<kv::Store> = None;
    let mut own_revision: Option<u64> = None;
    let mut conflicts = 0u64;
    loop {
        if bucket.is_none() {
            match sluice_core::nats::ensure_kv(&js, AGENTS_BUCKET, MAX_AGE, replicas).await {
                Ok(b) => bucket = Some(b),
                Err(err) => tracing::debug!(error = %err, "agent heartbeat bucket not ready yet"),
            }
        }
        if let Some(b) = &bucket {
            let seen = match b.entry(&key).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => {
                    serde_json::from_slice::<Heartbeat>(&e.value)
                        .ok()
                        .map(|h| (e.revision, h))
                }
                Ok(_) => None,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the agent heartbeat");
                    None
                }
            };
            if let Some(other) = conflict(own_revision, &beat.incarnation, seen) {
                metrics.id_conflicts.inc();
                if conflicts.is_multiple_of(WARN_EVERY) {
                    tracing::warn!(
                        agent_id = %agent_id,
                        other_host = %other.host,
                        other_pid = other.pid,
                        other_incarnation = %other.incarnation,
                        "another agent is running with this agent id; no batch is lost, \
                         but give each agent its own [agent] id"
                    );
                }
                conflicts += 1;
            }
            let mut now = beat.clone();
            now.at = sluice_core::record::format_ts(sluice_core::record::now_nanos());
            match serde_json::to_vec(&now) {
                Ok(value) => match b.put(&key, value.into()).await {
                    Ok(revision) => own_revision = Some(revision),
                    Err(err) => tracing::debug!(error = %err, "cannot write the agent heartbeat"),
                },
                Err(err) => tracing::debug!(error = %err, "cannot encode the agent heartbeat"),
            }
        }
        let jitter = rand::rng().random_range(0.9..=1.1);
        tokio::time::sleep(every.mul_f64(jitter)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(inc: &str) -> Heartbeat {
        Heartbeat {
            incarnation: inc.into(),
            host: "web-1".into(),
            pid: 7,
            at: String::new(),
        }
    }

    #[test]
    fn keys_are_valid_and_distinct() {
        assert_eq!(key("web-1"), "web-1");
        assert_eq!(key("web.1"), "web=2E1");
        assert_eq!(key("web_1"), "web_1");
        assert_ne!(key("a=2E"), key("a."));
        assert_eq!(key("é"), "=C3=A9");
    }

    #[test]
    fn only_a_foreign_write_after_ours_is_a_conflict() {
        // Before our first write: whatever is there is a baseline.
        assert_eq!(conflict(None, "a", Some((3, beat("b")))), None);
        // Our own write is still the latest.
        assert_eq!(conflict(Some(3), "a", Some((3, beat("a")))), None);
        // Someone else wrote since.
        assert_eq!(
            conflict(Some(3), "a", Some((4, beat("b")))),
            Some(beat("b"))
        );
        // Our own incarnation under a newer revision (a write we did not
        // see acknowledged) is not someone else.
        assert_eq!(conflict(Some(3), "a", Some((4, beat("a")))), None);
        assert_eq!(conflict(Some(3), "a", None), None);
    }
}
