//! The aggregator's stored forms: error groups and per-hour counts as they
//! sit in their JetStream KV buckets, and the reader the query service and
//! tools use. A contract between the aggregator, which writes them, and
//! every reader, so it lives here rather than in either role.
//!
//! * [`GROUPS_BUCKET`]: one [`ErrorGroup`] (JSON) per app, service and
//!   fingerprint, under [`group_key`].
//! * [`COUNTS_BUCKET`]: one [`HourCounts`] (JSON) per app and hour, under
//!   [`hour_key`].

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};

use crate::Level;
use crate::time::NS_PER_HOUR as HOUR_NS;

/// KV bucket of error groups.
pub const GROUPS_BUCKET: &str = "sluice_error_groups";
/// KV bucket of per-hour counts.
pub const COUNTS_BUCKET: &str = "sluice_counts";

/// The hour (hours since the epoch) of a timestamp in ns.
pub fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR_NS)
}

/// `YYYYMMDDHH` (UTC) of an hour since the epoch.
pub fn hour_label(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour.saturating_mul(3600), 0)
        .map(|t| t.format("%Y%m%d%H").to_string())
        .unwrap_or_else(|| "0000000000".into())
}

/// The KV key of an app's hour: `<app>.<YYYYMMDDHH>`.
pub fn hour_key(app: &str, hour: i64) -> String {
    format!("{app}.{}", hour_label(hour))
}

/// One app's counts for one hour, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCounts {
    /// The app.
    pub app: String,
    /// Start of the hour, RFC 3339 (UTC).
    pub hour: String,
    /// Records by service, then by level.
    pub counts: ServiceCounts,
}

impl HourCounts {
    /// The total over services and levels.
    pub fn total(&self) -> u64 {
        self.counts.values().flat_map(|l| l.values()).sum()
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &ServiceCounts) {
        for (service, levels) in other {
            let mine = self.counts.entry(service.clone()).or_default();
            for (level, n) in levels {
                *mine.entry(*level).or_default() += n;
            }
        }
    }
}

/// Counts by service, then level.
pub type ServiceCounts = BTreeMap<String, BTreeMap<Level, u64>>;

/// The stored form of an app's hour before any count.
pub fn empty_hour(app: &str, hour: i64) -> HourCounts {
    HourCounts {
        app: app.to_string(),
        hour: chrono::DateTime::from_timestamp(hour.saturating_mul(3600), 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        counts: BTreeMap::new(),
    }
}

/// One example record attached to a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The record's id (ULID).
    pub id: String,
    /// When the record's event happened, nanoseconds since the epoch.
    pub ts: i64,
    /// Host that produced the record.
    pub host: String,
    /// The record's message, possibly cut to a sample's size.
    pub msg: String,
    /// The record's `request_id` attribute, when it has one.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The KV key of a group: `<app>.<service>.<fingerprint>` (the names are
/// valid tokens, so the key is a valid KV key and its prefix selects an
/// app).
pub fn group_key(app: &str, service: &str, fingerprint: &str) -> String {
    format!("{app}.{service}.{fingerprint}")
}

/// An error group as stored. What [`ErrorGroup::fingerprint`] is and how
/// occurrences are merged is the aggregator's business (its `fingerprint`
/// and `groups` modules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorGroup {
    /// The app.
    pub app: String,
    /// The service.
    pub service: String,
    /// 16 hex digits (the aggregator's `fingerprint::fingerprint_hex`).
    pub fingerprint: String,
    /// The normalised message.
    pub template: String,
    /// The aggregator's normalisation version that made it.
    pub version: u32,
    /// The most severe level seen.
    pub level: Level,
    /// Occurrences.
    pub count: u64,
    /// Earliest occurrence (record `ts`), ns.
    pub first_seen: i64,
    /// Latest occurrence (record `ts`), ns.
    pub last_seen: i64,
    /// The first occurrences and the latest one.
    pub samples: Vec<Sample>,
    /// Hosts it occurred on (a bounded list).
    pub hosts: Vec<String>,
    /// Whether more hosts than listed saw it.
    #[serde(default)]
    pub more_hosts: bool,
    /// Minute (ns / 60 s) of `minute_count`.
    #[serde(default)]
    pub minute: i64,
    /// Occurrences in `minute` so far.
    #[serde(default)]
    pub minute_count: u64,
    /// Usual occurrences per minute (exponentially weighted).
    #[serde(default)]
    pub baseline_per_minute: f64,
    /// When the last spike notice was decided, ns.
    #[serde(default)]
    pub last_spike_notice: i64,
    /// Occurrences per hour (hours since the epoch, by record `ts`), oldest
    /// first, for the newest [`GROUP_HOURS`] hours that had any.
    #[serde(default)]
    pub hours: Vec<(i64, u64)>,
}

/// Hours of occurrences an error group keeps (see [`ErrorGroup::hours`]).
pub const GROUP_HOURS: usize = 48;

/// Adds `count` occurrences in `hour` to `hours` (oldest first), keeping
/// the newest [`GROUP_HOURS`] entries.
pub fn add_hour(hours: &mut Vec<(i64, u64)>, hour: i64, count: u64) {
    match hours.binary_search_by_key(&hour, |(h, _)| *h) {
        Ok(i) => hours[i].1 = hours[i].1.saturating_add(count),
        Err(i) => hours.insert(i, (hour, count)),
    }
    if hours.len() > GROUP_HOURS {
        hours.drain(..hours.len() - GROUP_HOURS);
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bucket is not there (no aggregator has run yet) or NATS failed.
    #[error("cannot read {what}: {message}")]
    Nats {
        /// What was being read.
        what: &'static str,
        /// The cause.
        message: String,
    },
}

fn nats(what: &'static str) -> impl Fn(String) -> ReadError {
    move |message| ReadError::Nats { what, message }
}

/// Reads error groups and hourly counts.
#[derive(Clone)]
pub struct Reader {
    js: jetstream::Context,
    groups: kv::Store,
    counts: kv::Store,
}

/// Groups one read returns at most, before sorting and cutting to the
/// limit asked.
const MAX_GROUPS_READ: usize = 200_000;

/// Most hours one [`Reader::hourly_counts`] call reads.
pub const MAX_HOURS: i64 = 24 * 93;

impl Reader {
    /// Opens the aggregator's buckets.
    pub async fn open(js: &jetstream::Context) -> Result<Reader, ReadError> {
        let groups = js
            .get_key_value(GROUPS_BUCKET)
            .await
            .map_err(|e| nats("error groups")(e.to_string()))?;
        let counts = js
            .get_key_value(COUNTS_BUCKET)
            .await
            .map_err(|e| nats("hourly counts")(e.to_string()))?;
        Ok(Reader {
            js: js.clone(),
            groups,
            counts,
        })
    }

    /// The groups whose keys match `pattern`, most recently seen first.
    async fn matching(&self, pattern: &str, limit: usize) -> Result<Vec<ErrorGroup>, ReadError> {
        let entries = crate::nats::kv_newest(&self.js, GROUPS_BUCKET, pattern, MAX_GROUPS_READ)
            .await
            .map_err(nats("error groups"))?;
        let mut out: Vec<ErrorGroup> = entries
            .iter()
            .filter_map(|(_, value)| serde_json::from_slice::<ErrorGroup>(value).ok())
            .collect();
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        out.truncate(limit);
        Ok(out)
    }

    /// The groups of `app` (every app when `None`), most recently seen
    /// first, at most `limit`: one read of the bucket's newest values under
    /// the app's keys.
    pub async fn groups(
        &self,
        app: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ErrorGroup>, ReadError> {
        let pattern = app.map_or_else(|| ">".to_string(), |a| format!("{a}.>"));
        self.matching(&pattern, limit).await
    }

    /// The groups of `app` with `fingerprint` (one per service).
    pub async fn fingerprint(
        &self,
        app: &str,
        fingerprint: &str,
    ) -> Result<Vec<ErrorGroup>, ReadError> {
        self.matching(&format!("{app}.*.{fingerprint}"), usize::MAX)
            .await
    }

    /// One group.
    pub async fn group(
        &self,
        app: &str,
        service: &str,
        fingerprint: &str,
    ) -> Result<Option<ErrorGroup>, ReadError> {
        let key = group_key(app, service, fingerprint);
        let value = self
            .groups
            .get(&key)
            .await
            .map_err(|e| nats("error groups")(e.to_string()))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// `app`'s counts for each hour from the one holding `from` to the one
    /// holding `to` (ns), oldest first; hours without records are included
    /// with no counts. At most [`MAX_HOURS`] hours (the latest ones).
    pub async fn hourly_counts(
        &self,
        app: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<HourCounts>, ReadError> {
        let last = hour_of(to);
        let first = hour_of(from).max(last - MAX_HOURS + 1);
        let mut out = Vec::new();
        for hour in first..=last {
            let value = self
                .counts
                .get(hour_key(app, hour))
                .await
                .map_err(|e| nats("hourly counts")(e.to_string()))?;
            out.push(
                value
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or_else(|| empty_hour(app, hour)),
            );
        }
        Ok(out)
    }
}
