//! The read side, for the query service and tools: error groups and
//! per-hour counts as the aggregator stores them.

use async_nats::jetstream::{self, kv};

use crate::counts::{HourCounts, empty_hour, hour_key, hour_of};
use crate::groups::ErrorGroup;

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
            .get_key_value(crate::GROUPS_BUCKET)
            .await
            .map_err(|e| nats("error groups")(e.to_string()))?;
        let counts = js
            .get_key_value(crate::COUNTS_BUCKET)
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
        let entries =
            sluice_core::nats::kv_newest(&self.js, crate::GROUPS_BUCKET, pattern, MAX_GROUPS_READ)
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
        let key = crate::groups::group_key(app, service, fingerprint);
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
