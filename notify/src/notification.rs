//! The notification model: what the alerter and the aggregator decide to tell
//! a receiver, independent of how it is rendered on the wire.
//!
//! A [`Notification`] is stored as JSON (this type's serde form) in the
//! JetStream outbox and rendered for delivery by [`crate::slack`] and
//! [`crate::webhook`]. Its `id`
//! is assigned once, when the notification is created, and is kept on every
//! redelivery so receivers can de-duplicate.
//!
//! Timestamps are integer nanoseconds since the Unix epoch (UTC), as in
//! [`sluice_core::Record`]; the wire formats render them as RFC 3339.
//!
//! Optional fields, `labels` and `samples` default when absent from the stored
//! JSON, so outbox entries written by an older version still load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_core::Level;

/// Longest sample message sent, bytes.
pub const MAX_SAMPLE_BYTES: usize = 1_000;
/// Samples sent per notification, at most.
pub const MAX_SAMPLES: usize = 5;

/// Appended to text that [`Notification::truncated`] cut short.
pub const ELLIPSIS: &str = "…";

/// What happened. Serialised in `snake_case` (`"new_group"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An alert rule's condition started to hold.
    Firing,
    /// An alert rule's condition stopped holding.
    Resolved,
    /// The aggregator saw a message group (template) for the first time.
    NewGroup,
    /// A group that had been quiet or resolved started occurring again.
    Regressed,
    /// A group's rate rose sharply above its usual level.
    Spike,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 5] = [
        Kind::Firing,
        Kind::Resolved,
        Kind::NewGroup,
        Kind::Regressed,
        Kind::Spike,
    ];

    /// The serialised name (`"firing"`, `"new_group"` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Firing => "firing",
            Kind::Resolved => "resolved",
            Kind::NewGroup => "new_group",
            Kind::Regressed => "regressed",
            Kind::Spike => "spike",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use sluice_core::aggregates::Sample;

/// A message for one receiver about one event (an alert firing or resolving,
/// a new, regressed or spiking message group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id, stable across redelivery: receivers use it to de-duplicate.
    pub id: String,
    /// Name of the receiver (from the configuration) this is addressed to.
    pub receiver: String,
    /// What happened.
    pub kind: Kind,
    /// One-line summary, e.g. `checkout-errors: 37 errors in 60s`.
    pub title: String,
    /// Component that raised it: `"alerter"` or `"aggregator"`.
    pub source: String,
    /// Name of the alert rule, for notifications raised by a rule.
    #[serde(default)]
    pub rule: Option<String>,
    /// Application the records belong to.
    pub app: String,
    /// Service within the application, when the rule or group names one.
    #[serde(default)]
    pub service: Option<String>,
    /// Level the rule or group is about, when it names one.
    #[serde(default)]
    pub level: Option<Level>,
    /// Number of matching records in the window (or in the group).
    pub count: u64,
    /// Length of the counting window in seconds, when there is one.
    #[serde(default)]
    pub window_secs: Option<u64>,
    /// The `group_by` values this notification is about, by label name.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The message group's fingerprint, for aggregator notifications.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The message group's template, for aggregator notifications.
    #[serde(default)]
    pub template: Option<String>,
    /// Example records, most relevant first.
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// Earliest matching record, nanoseconds since the epoch.
    pub first_seen: i64,
    /// Latest matching record, nanoseconds since the epoch.
    pub last_seen: i64,
    /// Link to the query UI showing the matching records, when configured.
    #[serde(default)]
    pub link: Option<String>,
    /// When the notification was created, nanoseconds since the epoch.
    pub created: i64,
}

impl Notification {
    /// A copy bounded in size for delivery: keeps the first `max_samples`
    /// samples and cuts each sample's message, and the template, to at most
    /// `max_msg_bytes` bytes (at a UTF-8 character boundary) followed by
    /// [`ELLIPSIS`] (3 bytes) when something was cut. Text that fits is kept
    /// as it is. Every other field is copied unchanged.
    pub fn truncated(&self, max_msg_bytes: usize, max_samples: usize) -> Notification {
        Notification {
            id: self.id.clone(),
            receiver: self.receiver.clone(),
            kind: self.kind,
            title: self.title.clone(),
            source: self.source.clone(),
            rule: self.rule.clone(),
            app: self.app.clone(),
            service: self.service.clone(),
            level: self.level,
            count: self.count,
            window_secs: self.window_secs,
            labels: self.labels.clone(),
            fingerprint: self.fingerprint.clone(),
            template: self
                .template
                .as_deref()
                .map(|t| truncate_bytes(t, max_msg_bytes)),
            samples: self
                .samples
                .iter()
                .take(max_samples)
                .map(|s| Sample {
                    id: s.id.clone(),
                    ts: s.ts,
                    host: s.host.clone(),
                    msg: truncate_bytes(&s.msg, max_msg_bytes),
                    request_id: s.request_id.clone(),
                })
                .collect(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            link: self.link.clone(),
            created: self.created,
        }
    }
}

/// `text` if it is at most `max_bytes` long, else its longest prefix of at
/// most `max_bytes` bytes ending on a character boundary, plus [`ELLIPSIS`].
pub fn truncate_bytes(text: &str, max_bytes: usize) -> String {
    let mut out = String::new();
    push_truncated(&mut out, text, max_bytes);
    out
}

/// Appends what [`truncate_bytes`] returns to `out` (no allocation when
/// `out` has the room).
pub fn push_truncated(out: &mut String, text: &str, max_bytes: usize) {
    if text.len() <= max_bytes {
        out.push_str(text);
        return;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    out.push_str(ELLIPSIS);
}

/// Overwrites `sample` with another record's values, reusing its buffers.
pub fn refill_sample(
    sample: &mut Sample,
    id: &str,
    ts: i64,
    host: &str,
    msg: &str,
    request_id: Option<&str>,
    max_msg_bytes: usize,
) {
    sample.id.clear();
    sample.id.push_str(id);
    sample.ts = ts;
    sample.host.clear();
    sample.host.push_str(host);
    sample.msg.clear();
    push_truncated(&mut sample.msg, msg, max_msg_bytes);
    match (&mut sample.request_id, request_id) {
        (Some(buf), Some(r)) => {
            buf.clear();
            buf.push_str(r);
        }
        (slot, r) => *slot = r.map(str::to_string),
    }
}

/// A link to the query UI's search for an app's records in a time range.
pub fn search_link(
    base: &str,
    app: &str,
    service: Option<&str>,
    level: Level,
    from: i64,
    to: i64,
) -> String {
    let mut url = format!(
        "{}/?app={}&level={}&from={}&to={}",
        base.trim_end_matches('/'),
        app,
        level.as_str(),
        sluice_core::record::format_ts(from),
        sluice_core::record::format_ts(to)
    );
    if let Some(s) = service {
        url.push_str("&service=");
        url.push_str(s);
    }
    url
}

#[cfg(test)]
pub(crate) mod tests {
    /// Notifications of any shape and size, for the formats' properties.
    pub(crate) fn arb_notification() -> impl proptest::strategy::Strategy<Value = Notification> {
        use proptest::prelude::*;
        let text = || ".{0,400}";
        let sample = (
            text(),
            any::<i64>(),
            ".{0,50}",
            proptest::option::of(".{0,50}"),
        );
        (
            (
                proptest::sample::select(Kind::ALL.to_vec()),
                text(),
                proptest::option::of(text()),
                text(),
                proptest::option::of(text()),
                proptest::option::of(proptest::sample::select(Level::ALL.to_vec())),
                any::<u64>(),
                proptest::option::of(any::<u64>()),
            ),
            (
                proptest::collection::btree_map(".{0,60}", ".{0,300}", 0..40),
                proptest::option::of(text()),
                proptest::option::of(prop_oneof![text(), "https://[a-z./?=&%]{0,3500}",]),
                proptest::collection::vec(sample, 0..60),
                any::<(i64, i64)>(),
                prop_oneof![Just(0usize), 1usize..20_000],
            ),
        )
            .prop_map(|(a, b)| {
                let (kind, title, rule, app, service, level, count, window_secs) = a;
                let (labels, template, link, samples, (first_seen, last_seen), big) = b;
                let mut n = sample_notification();
                n.kind = kind;
                n.title = title;
                n.rule = rule;
                n.app = app;
                n.service = service;
                n.level = level;
                n.count = count;
                n.window_secs = window_secs;
                n.labels = labels;
                n.template = template;
                n.link = link;
                n.first_seen = first_seen;
                n.last_seen = last_seen;
                n.samples = samples
                    .into_iter()
                    .map(|(msg, ts, host, request_id)| Sample {
                        id: "s".into(),
                        ts,
                        host,
                        msg: msg.repeat(1 + big / 400),
                        request_id,
                    })
                    .collect();
                n
            })
    }

    use super::*;
    use proptest::prelude::*;

    /// A typical alerter notification, shared with the other modules' tests.
    pub(crate) fn sample_notification() -> Notification {
        Notification {
            id: "01JDQ3N7Z5K3W8M2X4R6T9V0BC".into(),
            receiver: "ops-slack".into(),
            kind: Kind::Firing,
            title: "checkout-errors: 37 errors in 60s".into(),
            source: "alerter".into(),
            rule: Some("checkout-errors".into()),
            app: "shop".into(),
            service: Some("checkout".into()),
            level: Some(Level::Error),
            count: 37,
            window_secs: Some(60),
            labels: BTreeMap::from([("host".to_string(), "web-1".to_string())]),
            fingerprint: None,
            template: None,
            samples: vec![
                Sample {
                    id: "01JDQ3N7Z5K3W8M2X4R6T9V0BD".into(),
                    ts: 1_795_341_600_123_456_789,
                    host: "web-1".into(),
                    msg: "payment declined for order 8812".into(),
                    request_id: Some("req-123".into()),
                },
                Sample {
                    id: "01JDQ3N7Z5K3W8M2X4R6T9V0BE".into(),
                    ts: 1_795_341_601_000_000_000,
                    host: "web-1".into(),
                    msg: "payment declined for order <8813> & retried".into(),
                    request_id: None,
                },
            ],
            first_seen: 1_795_341_600_123_456_789,
            last_seen: 1_795_341_659_000_000_000,
            link: Some("https://sluice.example.com/query?q=app%3Dshop".into()),
            created: 1_795_341_660_000_000_000,
        }
    }

    #[test]
    fn kind_serialises_snake_case() {
        for kind in Kind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
        assert_eq!(Kind::NewGroup.to_string(), "new_group");
    }

    #[test]
    fn json_round_trip() {
        let n = sample_notification();
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("\"level\":\"ERROR\""), "{json}");
        assert!(json.contains("\"kind\":\"firing\""), "{json}");
        let back: Notification = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn absent_optional_fields_default() {
        let json = r#"{"id":"x","receiver":"r","kind":"spike","title":"t",
            "source":"aggregator","app":"shop","count":3,
            "first_seen":1,"last_seen":2,"created":3}"#;
        let n: Notification = serde_json::from_str(json).unwrap();
        assert_eq!(n.kind, Kind::Spike);
        assert!(n.rule.is_none() && n.level.is_none() && n.link.is_none());
        assert!(n.labels.is_empty() && n.samples.is_empty());
    }

    #[test]
    fn truncated_cuts_huge_message() {
        let mut n = sample_notification();
        n.samples[0].msg = "x".repeat(1 << 20);
        n.template = Some("y".repeat(1 << 20));
        let t = n.truncated(1000, 10);
        assert_eq!(t.samples[0].msg.len(), 1000 + ELLIPSIS.len());
        assert!(t.samples[0].msg.ends_with(ELLIPSIS));
        assert_eq!(t.template.as_deref().unwrap().len(), 1000 + ELLIPSIS.len());
        // Short text is untouched.
        assert_eq!(t.samples[1].msg, n.samples[1].msg);
        assert!(serde_json::to_vec(&t).unwrap().len() < 4000);
    }

    #[test]
    fn truncated_respects_char_boundaries() {
        let mut n = sample_notification();
        n.samples[0].msg = "é".repeat(10); // 2 bytes each
        let t = n.truncated(5, 10);
        assert_eq!(t.samples[0].msg, "éé…");
        let t = n.truncated(0, 10);
        assert_eq!(t.samples[0].msg, "…");
        let t = n.truncated(20, 10);
        assert_eq!(t.samples[0].msg, n.samples[0].msg);
    }

    #[test]
    fn truncated_limits_samples() {
        let mut n = sample_notification();
        let first = n.samples[0].clone();
        n.samples = vec![first; 1000];
        assert_eq!(n.truncated(100, 5).samples.len(), 5);
        assert_eq!(n.truncated(100, 0).samples.len(), 0);
        assert_eq!(n.truncated(100, 5000).samples.len(), 1000);
        let t = n.truncated(100, 5);
        assert_eq!(t.id, n.id);
        assert_eq!(t.labels, n.labels);
        assert_eq!(t.link, n.link);
    }

    proptest! {
        #[test]
        fn truncated_is_bounded(
            msgs in proptest::collection::vec(".{0,300}", 0..40),
            template in proptest::option::of(".{0,300}"),
            max_bytes in 0usize..200,
            max_samples in 0usize..20,
        ) {
            let mut n = sample_notification();
            n.template = template.clone();
            n.samples = msgs
                .iter()
                .map(|m| Sample { msg: m.clone(), ..n.samples[0].clone() })
                .collect();
            let t = n.truncated(max_bytes, max_samples);
            prop_assert_eq!(t.samples.len(), msgs.len().min(max_samples));
            for (cut, orig) in t.samples.iter().zip(&msgs) {
                prop_assert!(cut.msg.len() <= max_bytes + ELLIPSIS.len());
                if orig.len() <= max_bytes {
                    prop_assert_eq!(&cut.msg, orig);
                } else {
                    let kept = cut.msg.strip_suffix(ELLIPSIS).unwrap();
                    prop_assert!(orig.starts_with(kept));
                }
            }
            if let Some(t) = &t.template {
                prop_assert!(t.len() <= max_bytes + ELLIPSIS.len());
            }
        }
    }
}
