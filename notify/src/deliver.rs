//! One delivery attempt of a notification to its receiver: the rate limit,
//! the HTTP request in the receiver's format, and the verdict of
//! [`crate::policy::classify`] on the answer.
//!
//! - `slack`: POST of [`crate::slack::slack_body`] as JSON.
//! - `webhook`: POST of [`crate::webhook::webhook_body`] with
//!   `X-Sluice-Id` (the notification id, for de-duplication),
//!   `X-Sluice-Timestamp` and, when the receiver has a secret,
//!   `X-Sluice-Signature` ([`crate::webhook::sign`]).
//! - `log`: the notification is written to the process log.
//!
//! Sample messages are cut before formatting, so a 1 MiB log line never
//! reaches a receiver whole.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_core::config::{Config, ReceiverConfig, ReceiverKind};

use sluice_core::backoff::Backoff;
use sluice_core::record::now_nanos;
use sluice_core::time::NS_PER_SEC;

use crate::notification::{MAX_SAMPLE_BYTES, MAX_SAMPLES, Notification};
use crate::policy::{Outcome, classify};
use crate::{slack, webhook};

type Limiter = governor::DefaultDirectRateLimiter;

struct Receiver {
    config: ReceiverConfig,
    limiter: Limiter,
}

/// Delivers notifications to the configured receivers.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    receivers: Arc<HashMap<String, Receiver>>,
    backoff: Backoff,
}

impl Deliverer {
    /// The deliverer of a configuration: its `[[receivers]]`, retried as
    /// `[alerter] retry_max_secs` says (every delivering role retries
    /// alike, whichever role produced the notification).
    pub fn from_config(config: &Config) -> Result<Deliverer, String> {
        let backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(config.alerter.retry_max_secs.max(1)),
        );
        Deliverer::new(&config.receivers, backoff)
    }

    /// Delivers to `receivers`, retrying with `backoff`.
    pub fn new(receivers: &[ReceiverConfig], backoff: Backoff) -> Result<Deliverer, String> {
        sluice_core::nats::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let receivers = receivers
            .iter()
            .map(|r| {
                let per_minute = NonZeroU32::new(r.rate_per_minute).unwrap_or(NonZeroU32::MIN);
                let limiter =
                    governor::RateLimiter::direct(governor::Quota::per_minute(per_minute));
                (
                    r.name.clone(),
                    Receiver {
                        config: r.clone(),
                        limiter,
                    },
                )
            })
            .collect();
        Ok(Deliverer {
            client,
            receivers: Arc::new(receivers),
            backoff,
        })
    }

    /// Makes one attempt (`attempt` counts earlier failures), waiting for
    /// the receiver's rate limit first.
    pub async fn attempt(&self, n: &Notification, attempt: u32) -> Outcome {
        let Some(receiver) = self.receivers.get(&n.receiver) else {
            return Outcome::Rejected {
                reason: format!("unknown receiver {:?}", n.receiver),
            };
        };
        receiver.limiter.until_ready().await;
        let n = n.truncated(MAX_SAMPLE_BYTES, MAX_SAMPLES);
        let config = &receiver.config;
        let url = config.url.as_deref().unwrap_or_default();
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let request = match config.kind {
            ReceiverKind::Log => {
                tracing::warn!(
                    receiver = %config.name,
                    id = %n.id,
                    kind = ?n.kind,
                    app = %n.app,
                    count = n.count,
                    "{}",
                    n.title
                );
                return Outcome::Delivered;
            }
            ReceiverKind::Slack => self
                .client
                .post(url)
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .body(slack::slack_body(&n).to_string()),
            ReceiverKind::Webhook => {
                let body = webhook::webhook_body(&n);
                let now = now_nanos().div_euclid(NS_PER_SEC);
                let mut req = self
                    .client
                    .post(url)
                    .timeout(timeout)
                    .header("Content-Type", "application/json")
                    .header(webhook::ID_HEADER, &n.id)
                    .header(webhook::TIMESTAMP_HEADER, now.to_string());
                if let Some(secret) = &config.secret {
                    req = req.header(
                        webhook::SIGNATURE_HEADER,
                        webhook::sign(secret.as_bytes(), now, &body),
                    );
                }
                req.body(body)
            }
        };
        let jitter: f64 = rand::random();
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                classify(
                    Some(status),
                    retry_after.as_deref(),
                    attempt,
                    &self.backoff,
                    SystemTime::now(),
                    jitter,
                )
            }
            Err(err) => {
                tracing::debug!(receiver = %config.name, error = %err, "delivery attempt failed");
                classify(
                    None,
                    None,
                    attempt,
                    &self.backoff,
                    SystemTime::now(),
                    jitter,
                )
            }
        }
    }
}
