//! The notification outbox: a JetStream stream every notification goes
//! through on its way to a receiver, so a pending notification survives
//! restarts and receiver outages.
//!
//! ```text
//!  alerter / aggregator ── publish (Nats-Msg-Id = notification id) ──> SLUICE_OUTBOX
//!                                                                          │ durable "outbox"
//!                        ack  <── delivered ── claim (KV create) ── deliver ┘
//!                        nak(delay) <── retry (backoff, Retry-After)
//!                        term <── rejected (4xx other than 429), counted and logged
//! ```
//!
//! Invariants:
//! - A notification is published with its id as `Nats-Msg-Id`, so the same
//!   notification published twice (by two instances, or by a retry after a
//!   lost ack) is stored once within the duplicate window.
//! - The stream has work-queue retention: a message leaves the stream when
//!   acknowledged, after its delivery. Until then JetStream redelivers it
//!   (after the delay we ask for with a negative acknowledgement, or after
//!   the ack wait when its holder died).
//! - Before an attempt, the deliverer claims the notification's id in the
//!   KV bucket [`CLAIMS_BUCKET`] by compare-and-set; a successful delivery
//!   is recorded there before the acknowledgement. Any number of instances
//!   can run the delivery loop: a notification redelivered to another
//!   instance (a lost acknowledgement, an expired ack wait) finds the record
//!   and is acknowledged without a second delivery. A claim held by
//!   another instance (or contended on every attempt) puts the message back
//!   for 10 s; one that cannot be read or written at all (NATS away) for 2 s,
//!   and is logged.
//! - The one remaining window is a process killed after the receiver
//!   accepted and before the record was written: the notification is sent
//!   again once its claim goes stale. Receivers can de-duplicate by the id
//!   (`X-Sluice-Id`, and `id` in the body).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sluice_core::config::NatsConfig;
use sluice_core::kv::{self as cas, CasError, Current, Decision};
use sluice_core::record::now_nanos;
use sluice_core::time::{self, NS_PER_SEC};
use tokio::sync::Semaphore;

use crate::deliver::Deliverer;
use crate::metrics::DeliveryMetrics;
use crate::notification::Notification;
use crate::policy::Outcome;

/// The outbox stream.
pub const STREAM: &str = "SLUICE_OUTBOX";
/// The subject notifications are published on.
pub const SUBJECT: &str = "sluice.outbox.notifications";
/// The durable consumer every delivering instance shares.
pub const CONSUMER: &str = "outbox";
/// KV bucket of delivery claims.
pub const CLAIMS_BUCKET: &str = "sluice_outbox_claims";
/// How long a delivery may hold a message without a progress report.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// A claim older than this whose holder stopped reporting is taken over.
const CLAIM_STALE_NS: i64 = 90 * NS_PER_SEC;
/// Deliveries in flight per instance.
const CONCURRENCY: usize = 16;
/// How long pending notifications are kept at most.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Window in which a notification published twice is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// The state of a notification's delivery, as recorded in [`CLAIMS_BUCKET`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClaimState {
    /// Being delivered by `by`, claimed at `at` (ns).
    Claimed {
        /// The instance.
        by: String,
        /// When, nanoseconds since the epoch.
        at: i64,
    },
    /// Not being delivered; the next attempt may claim it.
    Free,
    /// The receiver accepted it.
    Delivered {
        /// The instance that delivered it.
        by: String,
        /// When, nanoseconds since the epoch.
        at: i64,
    },
    /// The receiver refused it for good.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The KV key of a notification's claim (ids may hold characters keys
/// cannot).
pub fn claim_key(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    format!("n.{}", hex::encode(&digest[..16]))
}

/// The outbox stream's configuration.
pub fn stream_config(nats: &NatsConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECT.into()],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        storage: jetstream::stream::StorageType::File,
        num_replicas: nats.replicas,
        max_age: MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// Creates (or updates) the outbox stream and the claims bucket.
pub async fn ensure(js: &jetstream::Context, nats: &NatsConfig) -> Result<kv::Store, String> {
    js.create_or_update_stream(stream_config(nats))
        .await
        .map_err(|e| format!("stream {STREAM}: {e}"))?;
    sluice_core::nats::ensure_kv(js, CLAIMS_BUCKET, MAX_AGE, nats.replicas)
        .await
        .map_err(|e| e.to_string())
}

/// The delivery consumer, created when missing.
pub async fn consumer(
    js: &jetstream::Context,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = js
        .get_stream(STREAM)
        .await
        .map_err(|e| format!("stream {STREAM}: {e}"))?;
    stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {CONSUMER}: {e}"))
}

/// Stores a notification in the outbox; returns once JetStream has it,
/// with `true` when the outbox already held a notification with this id
/// (within its duplicate window) and dropped this one.
pub async fn publish(js: &jetstream::Context, n: &Notification) -> Result<bool, String> {
    let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let ack = js
        .send_publish(
            SUBJECT,
            jetstream::message::PublishMessage::build()
                .message_id(n.id.as_str())
                .payload(body.into()),
        )
        .await
        .map_err(|e| format!("publish to the outbox: {e}"))?;
    ack.await
        .map(|a| a.duplicate)
        .map_err(|e| format!("outbox ack: {e}"))
}

/// The result of trying to claim a notification.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// Ours, at this revision.
    Ours(u64),
    /// Delivered (or rejected) already: acknowledge it.
    Done,
    /// Another instance is delivering it now.
    Busy,
}

/// What an attempt does instead of claiming a notification whose claim is
/// in state `current` at `now`; `None` when it may claim it.
fn refusal(current: &Current, now: i64) -> Option<Claim> {
    let state = serde_json::from_slice::<ClaimState>(current.value()?);
    match state {
        Ok(ClaimState::Delivered { .. } | ClaimState::Rejected { .. }) => Some(Claim::Done),
        // Even this process's own claim is only taken over when stale: a
        // redelivery may arrive while the first attempt is still under way.
        Ok(ClaimState::Claimed { at, .. }) if now.saturating_sub(at) <= CLAIM_STALE_NS => {
            Some(Claim::Busy)
        }
        Ok(ClaimState::Claimed { .. } | ClaimState::Free) | Err(_) => None,
    }
}

/// Claims `key` for `instance` by compare-and-set, at most 5 attempts;
/// another instance changing it every time counts as busy. An error is a
/// failure to read or write the claim, not contention.
async fn claim(claims: &kv::Store, key: &str, instance: &str) -> Result<Claim, String> {
    let mine = ClaimState::Claimed {
        by: instance.to_string(),
        at: now_nanos(),
    };
    let value = bytes::Bytes::from(serde_json::to_vec(&mine).map_err(|e| e.to_string())?);
    let updated = cas::update(claims, key, 5, |current| {
        match refusal(current, now_nanos()) {
            Some(refused) => Decision::Done(refused),
            // The revision is known once written.
            None => Decision::Write {
                value: value.clone(),
                outcome: Claim::Ours(0),
            },
        }
    })
    .await;
    match updated {
        Ok(u) => Ok(u.revision.map_or(u.outcome, Claim::Ours)),
        Err(CasError::Conflict { .. }) => Ok(Claim::Busy),
        Err(err) => Err(err.to_string()),
    }
}

async fn record(claims: &kv::Store, key: &str, state: &ClaimState, revision: u64) {
    let Ok(value) = serde_json::to_vec(state) else {
        return;
    };
    if let Err(err) = cas::write(claims, key, revision, value.into()).await {
        tracing::warn!(key, error = %err, "cannot record the delivery state");
    }
}

/// Runs [`deliver_loop`] as one of `role`'s tasks, claiming as the role's
/// claimant and stopping with it: how a notifying role delivers.
pub fn spawn_delivery(
    role: &sluice_core::role::Role,
    js: &jetstream::Context,
    claims: kv::Store,
    deliverer: Deliverer,
    metrics: &DeliveryMetrics,
) {
    role.spawn(deliver_loop(
        js.clone(),
        claims,
        deliverer,
        role.claimant().to_string(),
        metrics.clone(),
        role.stopping(),
    ));
}

/// Delivers what the outbox holds until `shutdown` completes, finishing the
/// attempts under way. `claimant` is who this process is in claims
/// (`sluice_core::role::Role::claimant`).
async fn deliver_loop(
    js: jetstream::Context,
    claims: kv::Store,
    deliverer: Deliverer,
    claimant: String,
    metrics: DeliveryMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // The claimant names this run of this process (`Role::claimant`), so a
    // restart under the same instance id never mistakes an old claim for
    // its own.
    let instance = claimant;
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    'outer: loop {
        let consumer = tokio::select! {
            c = consumer(&js) => c,
            _ = &mut shutdown => break,
        };
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot pull from the outbox yet, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "outbox not ready, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p,
                _ = &mut shutdown => break 'outer,
            };
            let Ok(permit) = permit else { break 'outer };
            let next = tokio::select! {
                m = messages.next() => m,
                _ = &mut shutdown => break 'outer,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "outbox pull interrupted, continuing");
                    continue;
                }
                None => continue 'outer,
            };
            let claims = claims.clone();
            let deliverer = deliverer.clone();
            let instance = instance.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                deliver_one(msg, &claims, &deliverer, &instance, &metrics).await;
                drop(permit);
            });
        }
    }
    // Let the attempts under way finish (each is bounded by its timeout).
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        limit.acquire_many(CONCURRENCY as u32),
    )
    .await;
}

async fn deliver_one(
    msg: jetstream::Message,
    claims: &kv::Store,
    deliverer: &Deliverer,
    instance: &str,
    metrics: &DeliveryMetrics,
) {
    let n: Notification = match serde_json::from_slice(&msg.payload) {
        Ok(n) => n,
        Err(err) => {
            tracing::error!(error = %err, "an outbox message is not a notification; dropped");
            metrics.outcome("-", "invalid");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let key = claim_key(&n.id);
    let mut revision = match claim(claims, &key, instance).await {
        Ok(Claim::Ours(rev)) => rev,
        Ok(Claim::Done) => {
            metrics.outcome(&n.receiver, "already_delivered");
            let _ = msg.double_ack().await;
            return;
        }
        Ok(Claim::Busy) => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(10))))
                .await;
            return;
        }
        Err(err) => {
            tracing::warn!(id = %n.id, error = %err, "cannot claim a notification; retrying");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                .await;
            return;
        }
    };
    let attempt = msg
        .info()
        .map(|i| u32::try_from(i.delivered.saturating_sub(1)).unwrap_or(u32::MAX))
        .unwrap_or(0);
    // Keep the message and the claim ours while the rate limit or the
    // receiver is slow.
    let outcome = {
        let attempt_fut = deliverer.attempt(&n, attempt);
        let mut attempt_fut = std::pin::pin!(attempt_fut);
        loop {
            tokio::select! {
                o = &mut attempt_fut => break o,
                _ = tokio::time::sleep(ACK_WAIT / 3) => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                    let fresh = ClaimState::Claimed { by: instance.to_string(), at: now_nanos() };
                    if let Ok(value) = serde_json::to_vec(&fresh)
                        && let Ok(r) = cas::write(claims, &key, revision, value.into()).await
                    {
                        revision = r;
                    }
                }
            }
        }
    };
    match outcome {
        Outcome::Delivered => {
            let done = ClaimState::Delivered {
                by: instance.to_string(),
                at: now_nanos(),
            };
            record(claims, &key, &done, revision).await;
            metrics.outcome(&n.receiver, "delivered");
            metrics
                .latency_seconds
                .observe(time::ns_to_secs_f64((now_nanos() - n.created).max(0)));
            tracing::info!(id = %n.id, receiver = %n.receiver, kind = %n.kind, "notification delivered");
            if let Err(err) = msg.double_ack().await {
                tracing::warn!(id = %n.id, error = %err, "ack of a delivered notification failed; its redelivery will be skipped");
            }
        }
        Outcome::Retry { after } => {
            record(claims, &key, &ClaimState::Free, revision).await;
            metrics.outcome(&n.receiver, "retry");
            tracing::debug!(id = %n.id, receiver = %n.receiver, attempt, after_ms = after.as_millis() as u64, "delivery failed, will retry");
            let _ = msg.ack_with(AckKind::Nak(Some(after))).await;
        }
        Outcome::Rejected { reason } => {
            let state = ClaimState::Rejected {
                reason: reason.clone(),
            };
            record(claims, &key, &state, revision).await;
            metrics.outcome(&n.receiver, "rejected");
            tracing::error!(id = %n.id, receiver = %n.receiver, reason = %reason, "receiver refused a notification; not retried");
            let _ = msg.ack_with(AckKind::Term).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_are_valid_kv_keys_and_stable() {
        let k = claim_key("r.3f2a/some group@7");
        assert!(k.starts_with("n.") && k.len() == 34);
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        );
        assert_eq!(k, claim_key("r.3f2a/some group@7"));
        assert_ne!(k, claim_key("r.3f2a/some group@8"));
    }

    fn state(s: &ClaimState) -> Current {
        Current::Value {
            revision: 3,
            value: serde_json::to_vec(s).unwrap().into(),
        }
    }

    #[test]
    fn what_may_be_claimed() {
        let now = 1_000 * NS_PER_SEC;
        let claimed = |at| ClaimState::Claimed { by: "a".into(), at };
        let delivered = ClaimState::Delivered {
            by: "b".into(),
            at: 5,
        };
        let rejected = ClaimState::Rejected {
            reason: "404".into(),
        };
        assert_eq!(refusal(&state(&delivered), now), Some(Claim::Done));
        assert_eq!(refusal(&state(&rejected), now), Some(Claim::Done));
        assert_eq!(refusal(&state(&claimed(now - 5)), now), Some(Claim::Busy));
        let edge = now - CLAIM_STALE_NS;
        assert_eq!(refusal(&state(&claimed(edge)), now), Some(Claim::Busy));
        assert_eq!(refusal(&state(&claimed(edge - 1)), now), None, "stale");
        assert_eq!(refusal(&state(&ClaimState::Free), now), None);
        assert_eq!(refusal(&Current::Absent, now), None);
        assert_eq!(refusal(&Current::Deleted { revision: 2 }, now), None);
        let garbage = Current::Value {
            revision: 2,
            value: bytes::Bytes::from_static(b"?"),
        };
        assert_eq!(refusal(&garbage, now), None);
    }

    #[test]
    fn claim_states_round_trip() {
        for s in [
            ClaimState::Claimed {
                by: "a".into(),
                at: 5,
            },
            ClaimState::Free,
            ClaimState::Delivered {
                by: "b".into(),
                at: 6,
            },
            ClaimState::Rejected {
                reason: "404".into(),
            },
        ] {
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<ClaimState>(&text).unwrap(), s);
        }
    }
}
