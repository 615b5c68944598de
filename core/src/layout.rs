//! Where filed logs live in object storage.
//!
//! ```text
//! <prefix>/app=<app>/dt=YYYY-MM-DD/hour=HH/<name>.ndjson.gz        one record per line (the JSON form)
//! <prefix>/app=<app>/dt=YYYY-MM-DD/hour=HH/<name>.ndjson.gz.idx    its sidecar index (see crate::index)
//! ```
//!
//! Partitions are by the record's `ts` in UTC, Hive style, so DuckDB
//! (`read_json_auto('…/app=shop/dt=*/hour=*/*.ndjson.gz', hive_partitioning=1)`),
//! Athena and a person in an S3 console read them as they are. Blob names are
//! `<kind>-<ULID>-<writer>.ndjson.gz`: `part` for blobs written while an hour
//! is open, `compact` for the sorted, de-duplicated blobs compaction makes.
//! The ULID makes names unique across writers and sorts them by creation.
//!
//! Expiry leaves markers (names starting with `_`, which Hive-style readers
//! skip) that every reader obeys:
//!
//! ```text
//! <prefix>/app=<app>/dt=…/hour=HH/_sluice_expiring     being deleted: readers skip the partition's objects in that store
//! <prefix>/app=<app>/dt=…/hour=HH/_sluice_moving       (hot store) being moved; what the move is, for resuming it
//! <cold>/app=<app>/dt=…/hour=HH/_sluice_moved          (cold store) the copies are complete and verified: readers
//!                                                       read them, and skip hot blobs of the same name
//! <prefix>/app=<app>/_sluice_expired_before=YYYY-MM-DDTHH   every hour before this one was deleted by retention
//! ```

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use crate::time::NS_PER_HOUR as HOUR_NS;

/// Suffix of a blob.
pub const BLOB_SUFFIX: &str = ".ndjson.gz";
/// Suffix of a blob's sidecar index.
pub const INDEX_SUFFIX: &str = ".ndjson.gz.idx";

/// Marker of a partition being deleted (see the module doc).
pub const EXPIRING_MARKER: &str = "_sluice_expiring";
/// Marker of a partition being moved to the cold store, in the hot store.
pub const MOVING_MARKER: &str = "_sluice_moving";
/// Marker of a partition whose cold copies are complete, in the cold store.
pub const MOVED_MARKER: &str = "_sluice_moved";
/// Name prefix of an app's expired-before marker.
const EXPIRED_PREFIX: &str = "_sluice_expired_before=";

/// The name of the marker saying every hour of an app before `hour` was
/// deleted by retention: `_sluice_expired_before=YYYY-MM-DDTHH`.
pub fn expired_marker(hour: i64) -> String {
    let p = Partition {
        app: String::new(),
        hour,
    };
    format!(
        "{EXPIRED_PREFIX}{}T{}",
        p.date(),
        &p.prefix()[p.prefix().len() - 2..]
    )
}

/// Parses [`expired_marker`] back into its hour.
pub fn parse_expired_marker(name: &str) -> Option<i64> {
    let rest = name.strip_prefix(EXPIRED_PREFIX)?;
    let (date, hour) = rest.split_once('T')?;
    Partition::from_parts("x", date, hour).map(|p| p.hour)
}

/// One app's hour: the unit of filing and compaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The app (a valid name).
    pub app: String,
    /// Hours since the epoch, UTC.
    pub hour: i64,
}

impl Partition {
    /// The partition of a record of `app` at `ts` (ns since the epoch).
    pub fn of(app: &str, ts: i64) -> Partition {
        Partition {
            app: app.to_string(),
            hour: ts.div_euclid(HOUR_NS),
        }
    }

    /// First nanosecond of the hour.
    pub fn start_ns(&self) -> i64 {
        self.hour.saturating_mul(HOUR_NS)
    }

    /// First nanosecond after the hour.
    pub fn end_ns(&self) -> i64 {
        self.start_ns().saturating_add(HOUR_NS)
    }

    fn start(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_nanos(self.start_ns())
    }

    /// `app=<app>/dt=YYYY-MM-DD/hour=HH`.
    pub fn prefix(&self) -> String {
        format!(
            "app={}/dt={}/hour={:02}",
            self.app,
            self.date(),
            self.start().hour()
        )
    }

    /// The UTC day of the hour, `YYYY-MM-DD` (the `dt=` of the layout).
    pub fn date(&self) -> String {
        let start = self.start();
        format!(
            "{:04}-{:02}-{:02}",
            start.year(),
            start.month(),
            start.day()
        )
    }

    /// A short key for this partition, usable as a NATS KV key:
    /// `<app>.<YYYY-MM-DD>.<HH>`.
    pub fn kv_key(&self) -> String {
        format!("{}.{}.{:02}", self.app, self.date(), self.start().hour())
    }

    /// Parses [`Partition::kv_key`] back.
    pub fn from_kv_key(key: &str) -> Option<Partition> {
        let mut parts = key.split('.');
        let app = parts.next()?;
        let date = parts.next()?;
        let hour = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        Partition::from_parts(app, date, hour)
    }

    fn from_parts(app: &str, date: &str, hour: &str) -> Option<Partition> {
        if !crate::names::is_valid(app) || hour.len() != 2 {
            return None;
        }
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let hour: u32 = hour.parse().ok()?;
        let start = date
            .and_hms_opt(hour, 0, 0)?
            .and_utc()
            .timestamp_nanos_opt()?;
        Some(Partition {
            app: app.to_string(),
            hour: start.div_euclid(HOUR_NS),
        })
    }

    /// Parses `app=<app>/dt=<date>/hour=<HH>/<name>` (a key relative to the
    /// store's prefix) into the partition and the file name.
    pub fn parse_key(rel: &str) -> Option<(Partition, &str)> {
        let mut parts = rel.splitn(4, '/');
        let app = parts.next()?.strip_prefix("app=")?;
        let date = parts.next()?.strip_prefix("dt=")?;
        let hour = parts.next()?.strip_prefix("hour=")?;
        let name = parts.next()?;
        if name.contains('/') {
            return None;
        }
        Some((Partition::from_parts(app, date, hour)?, name))
    }
}

/// What wrote a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// Written while the hour was open.
    Part,
    /// Written by compaction: sorted and de-duplicated.
    Compact,
}

/// A new blob's file name: `<kind>-<ULID>-<writer>.ndjson.gz`.
pub fn blob_name(kind: BlobKind, writer: &str) -> String {
    let kind = match kind {
        BlobKind::Part => "part",
        BlobKind::Compact => "compact",
    };
    format!("{kind}-{}-{writer}{BLOB_SUFFIX}", ulid::Ulid::new())
}

/// The sidecar's name for a blob name.
pub fn index_name(blob_name: &str) -> String {
    format!("{blob_name}.idx")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_ts;

    #[test]
    fn prefixes_are_hive_style_in_utc() {
        let ts = parse_ts("2026-11-22T10:59:59.999999999+01:00").unwrap();
        let p = Partition::of("shop", ts);
        assert_eq!(p.prefix(), "app=shop/dt=2026-11-22/hour=09");
        assert_eq!(p.kv_key(), "shop.2026-11-22.09");
        assert_eq!(Partition::from_kv_key(&p.kv_key()), Some(p.clone()));
        assert_eq!(p.end_ns() - p.start_ns(), HOUR_NS);
        assert!(p.start_ns() <= ts && ts < p.end_ns());
    }

    #[test]
    fn keys_parse_back() {
        let p = Partition::of("shop", parse_ts("2026-01-02T03:04:05Z").unwrap());
        let name = blob_name(BlobKind::Part, "f1");
        let key = format!("{}/{}", p.prefix(), name);
        let (back, n) = Partition::parse_key(&key).unwrap();
        assert_eq!(back, p);
        assert_eq!(n, name);
        assert!(name.starts_with("part-") && name.ends_with("-f1.ndjson.gz"));
        for bad in [
            "app=Shop/dt=2026-01-02/hour=03/x",
            "app=shop/dt=2026-13-02/hour=03/x",
            "app=shop/dt=2026-01-02/hour=24/x",
            "app=shop/dt=2026-01-02/x",
            "app=shop/dt=2026-01-02/hour=03/a/b",
        ] {
            assert!(Partition::parse_key(bad).is_none(), "{bad}");
        }
        assert!(Partition::from_kv_key("a.b").is_none());
    }

    #[test]
    fn expired_markers_parse_back() {
        let p = Partition::of("shop", parse_ts("2026-01-02T03:04:05Z").unwrap());
        let name = expired_marker(p.hour);
        assert_eq!(name, "_sluice_expired_before=2026-01-02T03");
        assert_eq!(parse_expired_marker(&name), Some(p.hour));
        for bad in [
            "_sluice_expired_before=2026-01-02",
            "x",
            "_sluice_expired_before=2026-01-02T3",
        ] {
            assert_eq!(parse_expired_marker(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_before_1970_work() {
        let p = Partition::of("shop", -1);
        assert_eq!(p.prefix(), "app=shop/dt=1969-12-31/hour=23");
    }
}
