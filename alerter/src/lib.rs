//! The alerter's building blocks: the notification model, its wire formats
//! (Slack Block Kit, signed webhook JSON), the retry policy, and delivery to
//! receivers.
//!
//! ```text
//!  rules / error groups ─> Notification ─> outbox ─> Deliverer::attempt ─> Slack / webhook / log
//!                                                        │
//!                                       policy::classify: delivered, retry after, rejected
//! ```
//!
//! The aggregator and the alerter both produce [`notification::Notification`]s;
//! delivery is shared, so a receiver configured once serves both.

pub mod deliver;
pub mod format;
pub mod notification;
pub mod policy;
