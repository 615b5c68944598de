//! Per-hour record counts by (app, service, level): the "log aggregates" a
//! dashboard draws. Pure logic; stored by [`crate::run`] in the KV bucket
//! [`crate::COUNTS_BUCKET`], one entry per app and hour
//! ([`hour_key`]), merged by compare-and-set so several aggregators can
//! share the work.
//!
//! Hours are the records' own `ts` in UTC, as in the object layout's
//! partitions, so the counts agree with what the filterer filed.

use std::collections::HashMap;

use sluice_core::Level;

pub use sluice_core::aggregates::{
    HourCounts, ServiceCounts, empty_hour, hour_key, hour_label, hour_of,
};

/// One (app, hour) cell of a [`Tally`]: per service, a count per level.
#[derive(Debug)]
struct Cell {
    app: String,
    hour: i64,
    services: Vec<(String, [u64; 6])>,
}

/// Counts gathered between two writes, by (app, hour). Records come in
/// batches of one app, mostly of one hour and a few services, so the cell
/// of the previous record is tried first and services are a short list.
#[derive(Debug, Default)]
pub struct Tally {
    cells: Vec<Cell>,
    index: HashMap<(String, i64), usize>,
    last: usize,
    records: u64,
}

impl Tally {
    /// Counts one record.
    pub fn add(&mut self, app: &str, service: &str, level: Level, ts: i64) {
        self.add_n(app, service, level, ts, 1);
    }

    /// Counts `n` records alike.
    pub fn add_n(&mut self, app: &str, service: &str, level: Level, ts: i64, n: u64) {
        let hour = hour_of(ts);
        let same = self
            .cells
            .get(self.last)
            .is_some_and(|c| c.hour == hour && c.app == app);
        if !same {
            self.last = match self.index.get(&(app.to_string(), hour)) {
                Some(&i) => i,
                None => {
                    self.cells.push(Cell {
                        app: app.to_string(),
                        hour,
                        services: Vec::new(),
                    });
                    let i = self.cells.len() - 1;
                    self.index.insert((app.to_string(), hour), i);
                    i
                }
            };
        }
        let cell = &mut self.cells[self.last];
        let levels = match cell.services.iter().position(|(s, _)| s == service) {
            Some(p) => &mut cell.services[p].1,
            None => {
                cell.services.push((service.to_string(), [0; 6]));
                &mut cell.services.last_mut().expect("just pushed").1
            }
        };
        levels[level.index()] += n;
        self.records += n;
    }

    /// (app, hour) cells held.
    pub fn cells(&self) -> usize {
        self.cells.len()
    }

    /// Records counted.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Takes the cells, leaving the tally empty.
    pub fn take(&mut self) -> Vec<((String, i64), ServiceCounts)> {
        self.records = 0;
        self.last = 0;
        self.index.clear();
        self.cells
            .drain(..)
            .map(|c| {
                let counts = c
                    .services
                    .into_iter()
                    .map(|(service, levels)| {
                        let by_level = Level::ALL
                            .into_iter()
                            .zip(levels)
                            .filter(|(_, n)| *n > 0)
                            .collect();
                        (service, by_level)
                    })
                    .collect();
                ((c.app, c.hour), counts)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_and_keys_sort_by_time() {
        let ts = sluice_core::record::parse_ts("2026-11-22T10:59:59.999Z").unwrap();
        assert_eq!(hour_key("shop", hour_of(ts)), "shop.2026112210");
        assert_eq!(hour_label(hour_of(ts) + 14), "2026112300");
        assert_eq!(empty_hour("shop", hour_of(ts)).hour, "2026-11-22T10:00:00Z");
        assert_eq!(hour_of(-1), -1, "before the epoch rounds down");
    }

    #[test]
    fn tally_counts_by_app_hour_service_level() {
        let mut t = Tally::default();
        let h = sluice_core::time::NS_PER_HOUR;
        t.add("shop", "checkout", Level::Error, 10);
        t.add("shop", "checkout", Level::Error, 20);
        t.add("shop", "cart", Level::Info, 30);
        t.add("shop", "cart", Level::Info, h + 1);
        t.add_n("billing", "api", Level::Warn, 5, 7);
        assert_eq!((t.cells(), t.records()), (3, 11));
        let mut cells = t.take();
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(cells[0].0, ("billing".to_string(), 0));
        let mut stored = empty_hour("shop", 0);
        stored.add(&cells[1].1);
        stored.add(&cells[1].1);
        assert_eq!(stored.counts["checkout"][&Level::Error], 4);
        assert_eq!(stored.total(), 6);
        assert_eq!(t.records(), 0);
    }
}
