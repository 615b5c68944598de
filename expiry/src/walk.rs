//! Listing what a pass may act on, without listing the whole bucket: the
//! apps (`app=` prefixes, one delimited list), each app's days (`dt=`
//! prefixes, one delimited list per app), and only the days that hold a
//! due hour (one list per day, every hour at once).
//!
//! The cold store is listed per app only where its rule deletes from it,
//! and only from the app's expired-before marker (everything older is
//! gone) to the day now due: the per-app cursor.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use sluice_core::layout::{Partition, parse_expired_marker};
use sluice_core::store::Store;
use sluice_core::time::NS_PER_DAY;

use crate::plan::Side;

/// What one store holds of an app.
#[derive(Debug, Default)]
pub struct AppListing {
    /// The first hour of each day (`dt=`) it has.
    pub days: Vec<i64>,
    /// Its expired-before markers, by hour, with their names.
    pub expired: Vec<(i64, String)>,
}

impl AppListing {
    /// The newest expired-before hour.
    pub fn expired_before(&self) -> Option<i64> {
        self.expired.iter().map(|(h, _)| *h).max()
    }
}

/// The first hour of a day, from its `dt=YYYY-MM-DD` prefix.
pub fn day_of_prefix(prefix: &Path) -> Option<i64> {
    let date = prefix.filename()?.strip_prefix("dt=")?;
    let start = sluice_core::time::parse_ts(&format!("{date}T00:00:00Z"))?;
    Some(Partition::of("x", start).hour)
}

/// The first hour of the day `hour` lies in.
pub fn day_start(hour: i64) -> i64 {
    let per_day = NS_PER_DAY / sluice_core::time::NS_PER_HOUR;
    hour.div_euclid(per_day) * per_day
}

/// One app's days and markers in `store`.
pub async fn app(store: &Store, app: &str) -> object_store::Result<AppListing> {
    let listed = store
        .inner
        .list_with_delimiter(Some(&store.key(&format!("app={app}"))))
        .await?;
    let mut days: Vec<i64> = listed
        .common_prefixes
        .iter()
        .filter_map(day_of_prefix)
        .collect();
    days.sort_unstable();
    let expired = listed
        .objects
        .iter()
        .filter_map(|o| {
            let name = o.location.filename()?;
            Some((parse_expired_marker(name)?, name.to_string()))
        })
        .collect();
    Ok(AppListing { days, expired })
}

/// Every object of one app's day in `store`, by hour.
pub async fn day(
    store: &Store,
    app: &str,
    first_hour: i64,
) -> object_store::Result<BTreeMap<i64, Side>> {
    let date = Partition {
        app: app.to_string(),
        hour: first_hour,
    }
    .date();
    let prefix = store.key(&format!("app={app}/dt={date}"));
    let metas: Vec<object_store::ObjectMeta> =
        store.inner.list(Some(&prefix)).try_collect().await?;
    let mut hours: BTreeMap<i64, Side> = BTreeMap::new();
    for meta in metas {
        let Some(rel) = store.relative(&meta.location) else {
            continue;
        };
        let Some((partition, name)) = Partition::parse_key(&rel) else {
            continue;
        };
        if partition.app != app {
            continue;
        }
        let modified = meta.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
        hours
            .entry(partition.hour)
            .or_default()
            .push(name, meta.size, modified);
    }
    Ok(hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_midnight_utc() {
        let p = Partition::of(
            "x",
            sluice_core::time::parse_ts("2026-11-22T17:30:00Z").unwrap(),
        );
        let first = day_start(p.hour);
        assert_eq!(
            Partition {
                app: "x".into(),
                hour: first
            }
            .prefix(),
            "app=x/dt=2026-11-22/hour=00"
        );
        assert_eq!(
            day_of_prefix(&Path::from("a/app=x/dt=2026-11-22")),
            Some(first)
        );
        assert_eq!(day_of_prefix(&Path::from("a/app=x/dt=2026-13-22")), None);
        assert_eq!(day_start(-1), -24);
    }
}
