//! Notifications: what the aggregator and the alerter tell people, and how
//! it reaches them without storms, duplicates or losses.
//!
//! ```text
//!  role decides ─> Notification ─ outbox::publish (Nats-Msg-Id = id) ─> SLUICE_OUTBOX
//!                                                                          │ durable "outbox", any instance
//!     receiver <── deliver::Deliverer <── claim (KV compare-and-set) <─────┘
//!   (Slack / webhook / log)   │ rate limit, format, sign, policy::classify
//!                             └─ ack / nak(backoff, Retry-After) / term, counted in metrics
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`notification`] | the model, sample limits, search links |
//! | [`slack`], [`webhook`] | the wire formats; the webhook's signature and how a receiver verifies it |
//! | [`policy`] | what one receiver answer means: delivered, retry when, rejected |
//! | [`deliver`] | one attempt to one receiver |
//! | [`outbox`] | the JetStream outbox and the delivery loop every delivering role runs |
//! | [`metrics`] | delivery metrics, under the role's prefix |
//!
//! Both roles that notify depend on this crate and on `sluice-core`, never
//! on each other.

pub mod deliver;
pub mod metrics;
pub mod notification;
pub mod outbox;
pub mod policy;
pub mod slack;
pub mod webhook;

pub use deliver::Deliverer;

/// Checks what parsing the configuration cannot: its receivers can be
/// built. Every role that delivers notifications (the aggregator, the
/// alerter) has this check as its `validate`; every value check, with its
/// line, is made while the file is parsed.
pub fn validate(config: &sluice_core::config::Config) -> Result<(), sluice_core::role::RoleError> {
    Deliverer::from_config(config)
        .map(|_| ())
        .map_err(sluice_core::role::RoleError::Config)
}
pub use notification::{Kind, Notification, Sample};
