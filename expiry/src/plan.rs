//! What a pass does, decided without IO: from what the listing shows of
//! each partition, the rules and the time, which partitions move, which
//! are deleted, and which are held back.
//!
//! * A partition is acted on once its hour ended `cold_after_days` (move)
//!   or `delete_after_days` (delete) ago; delete wins when both are due.
//!   Its hour is the age: every record of a partition lies within its hour
//!   (the sidecars' `max_ts` cannot be later), so no sidecar is read.
//! * A partition with a hot object written less than `min_write_age_hours`
//!   ago is held, whatever its hour (a backfill of old logs is kept that
//!   long), and so is one being resumed.
//! * A marker left by an interrupted action is finished whatever the rules
//!   say now: a half-deleted partition is deleted, a half-moved one moved.

use sluice_core::layout::{EXPIRING_MARKER, MOVED_MARKER, MOVING_MARKER, Partition};

use crate::rules::Rules;

/// One listed object (not a marker) of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its file name within the partition.
    pub name: String,
    pub size: u64,
    /// When it was written, ns since the epoch.
    pub modified_ns: i64,
}

/// What one store holds of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    /// Its objects (blobs, sidecars, anything else that is not a marker).
    pub objects: Vec<Object>,
    /// The expiry markers present.
    pub markers: Vec<String>,
}

impl Side {
    /// Whether the marker `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.markers.iter().any(|m| m == name)
    }

    /// Whether nothing at all is there.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.markers.is_empty()
    }

    /// The bytes of its objects.
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    /// When its newest object was written.
    pub fn written_ns(&self) -> Option<i64> {
        self.objects.iter().map(|o| o.modified_ns).max()
    }

    /// Sorts a listed name into the objects or the markers.
    pub fn push(&mut self, name: &str, size: u64, modified_ns: i64) {
        if is_marker(name) {
            self.markers.push(name.to_string());
        } else {
            self.objects.push(Object {
                name: name.to_string(),
                size,
                modified_ns,
            });
        }
    }
}

/// Whether a file name in a partition is one of expiry's markers.
pub fn is_marker(name: &str) -> bool {
    [EXPIRING_MARKER, MOVING_MARKER, MOVED_MARKER].contains(&name)
}

/// A partition as the listing saw it, in the hot store and (when listed)
/// the cold store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub partition: Partition,
    pub hot: Side,
    pub cold: Side,
}

/// What is done to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Copied to the cold store, verified, then removed from the hot one.
    Move,
    /// Marked expiring, then removed from both stores.
    Delete,
}

impl Kind {
    /// The word in the audit, metrics and the plan: `moved`, `deleted`.
    pub fn done(self) -> &'static str {
        match self {
            Kind::Move => "moved",
            Kind::Delete => "deleted",
        }
    }
}

/// One decided action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: Kind,
    /// The rule that decided it (`app "shop"`, `default`, or `resume` for
    /// an interrupted action the rules no longer ask for).
    pub rule: String,
    /// The partition as listed: what the action covers.
    pub observed: Observed,
}

impl Action {
    pub fn partition(&self) -> &Partition {
        &self.observed.partition
    }

    /// Objects it moves or deletes.
    pub fn objects(&self) -> usize {
        match self.kind {
            Kind::Move => self.observed.hot.objects.len(),
            Kind::Delete => self.observed.hot.objects.len() + self.observed.cold.objects.len(),
        }
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        match self.kind {
            Kind::Move => self.observed.hot.bytes(),
            Kind::Delete => self.observed.hot.bytes() + self.observed.cold.bytes(),
        }
    }

    /// Which stores it touches: `hot`, `cold`, `hot+cold`.
    pub fn from(&self) -> &'static str {
        let o = &self.observed;
        match (self.kind, o.hot.is_empty(), o.cold.is_empty()) {
            (Kind::Move, _, _) | (Kind::Delete, false, true) => "hot",
            (Kind::Delete, true, false) => "cold",
            (Kind::Delete, _, _) => "hot+cold",
        }
    }

    /// Whether it finishes an action a crash interrupted.
    pub fn resumes(&self) -> bool {
        let o = &self.observed;
        o.hot.has(EXPIRING_MARKER) || o.cold.has(EXPIRING_MARKER) || o.hot.has(MOVING_MARKER)
    }
}

/// What was decided for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Act(Action),
    /// Due, but a hot object was written at this time, too recently.
    Held {
        written_ns: i64,
    },
    /// Nothing to do.
    Keep,
}

/// What a pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Due partitions held back by a recent write, with its time.
    pub held: Vec<(Partition, i64)>,
}

/// Decides every partition.
pub fn plan(observed: Vec<Observed>, rules: &Rules, now_ns: i64) -> Plan {
    let mut out = Plan::default();
    for o in observed {
        let partition = o.partition.clone();
        match decide(o, rules, now_ns) {
            Decision::Act(action) => out.actions.push(action),
            Decision::Held { written_ns } => out.held.push((partition, written_ns)),
            Decision::Keep => {}
        }
    }
    out
}

/// Decides one partition.
pub fn decide(o: Observed, rules: &Rules, now_ns: i64) -> Decision {
    let rule = rules.for_app(&o.partition.app);
    let age = now_ns.saturating_sub(o.partition.end_ns());
    let due = |after: Option<i64>| after.is_some_and(|after| age >= after);
    let resume_delete = o.hot.has(EXPIRING_MARKER) || o.cold.has(EXPIRING_MARKER);
    let resume_move = o.hot.has(MOVING_MARKER);
    let kind = if due(rule.delete_after_ns) || resume_delete {
        if o.hot.is_empty() && o.cold.is_empty() {
            return Decision::Keep;
        }
        Kind::Delete
    } else if due(rule.cold_after_ns) || resume_move {
        if o.hot.is_empty() {
            return Decision::Keep;
        }
        Kind::Move
    } else {
        return Decision::Keep;
    };
    if let Some(written_ns) = o.hot.written_ns()
        && now_ns.saturating_sub(written_ns) < rules.min_write_age_ns
    {
        return Decision::Held { written_ns };
    }
    let by_rule = match kind {
        Kind::Delete => due(rule.delete_after_ns),
        Kind::Move => due(rule.cold_after_ns),
    };
    Decision::Act(Action {
        kind,
        rule: if by_rule {
            rule.rule.clone()
        } else {
            "resume".into()
        },
        observed: o,
    })
}

/// The first hour of `app` not yet due for deletion at `now_ns`, when its
/// rule deletes at all: every earlier hour is gone once a pass acted on
/// all of them.
pub fn delete_horizon(rules: &Rules, app: &str, now_ns: i64) -> Option<i64> {
    let after = rules.for_app(app).delete_after_ns?;
    Some(
        now_ns
            .saturating_sub(after)
            .div_euclid(sluice_core::time::NS_PER_HOUR),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::time::NS_PER_HOUR;

    const DAY: i64 = 24 * NS_PER_HOUR;
    /// 2026-12-01T00:00Z.
    const NOW: i64 = 1_796_083_200 * 1_000_000_000;

    fn rules() -> Rules {
        let config = sluice_core::config::Config::parse(
            r#"
[expiry]
min_write_age_hours = 24
default = { delete_after_days = 30 }
[[expiry.rules]]
app = "shop"
cold_after_days = 7
delete_after_days = 365
[[expiry.rules]]
app = "keep-*"
[cold_store]
url = "/tmp/cold"
"#,
        )
        .unwrap();
        Rules::new(&config.expiry).unwrap()
    }

    /// A partition of `app` whose hour ended `days_ago` days before NOW,
    /// with one blob written `written_days_ago` days before NOW.
    fn observed(app: &str, days_ago: i64, written_days_ago: i64) -> Observed {
        let hour = (NOW - days_ago * DAY) / NS_PER_HOUR - 1;
        let mut hot = Side::default();
        hot.push("part-1.ndjson.gz", 100, NOW - written_days_ago * DAY);
        hot.push("part-1.ndjson.gz.idx", 10, NOW - written_days_ago * DAY);
        Observed {
            partition: Partition {
                app: app.into(),
                hour,
            },
            hot,
            cold: Side::default(),
        }
    }

    fn kind(d: &Decision) -> Option<Kind> {
        match d {
            Decision::Act(a) => Some(a.kind),
            _ => None,
        }
    }

    #[test]
    fn ages_decide_by_app() {
        let r = rules();
        let cases = [
            ("shop", 6, None),
            ("shop", 7, Some(Kind::Move)),
            ("shop", 364, Some(Kind::Move)),
            ("shop", 365, Some(Kind::Delete)),
            ("billing", 29, None),
            ("billing", 30, Some(Kind::Delete)),
            ("keep-audit", 5000, None),
        ];
        for (app, days, want) in cases {
            let d = decide(observed(app, days, days), &r, NOW);
            assert_eq!(kind(&d), want, "{app} at {days} days: {d:?}");
        }
    }

    #[test]
    fn a_recent_write_holds_a_due_partition() {
        let r = rules();
        // Filed just now with a timestamp 400 days old.
        let d = decide(observed("billing", 400, 0), &r, NOW);
        assert_eq!(d, Decision::Held { written_ns: NOW });
        // A day later it goes.
        let d = decide(observed("billing", 400, 0), &r, NOW + DAY);
        assert_eq!(kind(&d), Some(Kind::Delete));
        // Just under the write age it stays.
        let d = decide(observed("billing", 400, 0), &r, NOW + DAY - 1);
        assert!(matches!(d, Decision::Held { .. }));
    }

    #[test]
    fn delete_covers_both_stores_and_move_only_the_hot_one() {
        let r = rules();
        let mut o = observed("shop", 400, 300);
        o.cold.push("part-0.ndjson.gz", 50, NOW - 300 * DAY);
        o.cold.push(MOVED_MARKER, 0, NOW);
        let Decision::Act(a) = decide(o.clone(), &r, NOW) else {
            panic!()
        };
        assert_eq!(
            (a.kind, a.objects(), a.bytes(), a.from()),
            (Kind::Delete, 3, 160, "hot+cold")
        );
        o.hot = Side::default();
        let Decision::Act(a) = decide(o.clone(), &r, NOW) else {
            panic!()
        };
        assert_eq!((a.objects(), a.from()), (1, "cold"));
        // Only cold copies, not yet due: kept.
        let mut young = observed("shop", 10, 10);
        young.cold = young.hot.clone();
        young.hot = Side::default();
        assert_eq!(decide(young, &r, NOW), Decision::Keep);
        let Decision::Act(a) = decide(observed("shop", 10, 10), &r, NOW) else {
            panic!()
        };
        assert_eq!((a.kind, a.objects(), a.from()), (Kind::Move, 2, "hot"));
    }

    #[test]
    fn interrupted_actions_are_finished_whatever_the_rules() {
        let r = rules();
        // A delete marker on a partition the rules keep now.
        let mut o = observed("keep-x", 1, 1);
        o.hot.push(EXPIRING_MARKER, 0, NOW);
        let Decision::Act(a) = decide(o, &r, NOW) else {
            panic!()
        };
        assert_eq!(
            (a.kind, a.rule.as_str(), a.resumes()),
            (Kind::Delete, "resume", true)
        );
        // Only the marker left: still finished (the marker goes).
        let mut o = observed("keep-x", 1, 1);
        o.hot = Side::default();
        o.cold.push(EXPIRING_MARKER, 0, NOW);
        assert_eq!(kind(&decide(o, &r, NOW)), Some(Kind::Delete));
        // A move marker with the blobs still hot.
        let mut o = observed("shop", 2, 2);
        o.hot.push(MOVING_MARKER, 0, NOW);
        let Decision::Act(a) = decide(o, &r, NOW) else {
            panic!()
        };
        assert_eq!((a.kind, a.rule.as_str()), (Kind::Move, "resume"));
        // Every blob gone, the move marker left.
        let mut o = observed("shop", 8, 8);
        o.hot.objects.clear();
        o.hot.push(MOVING_MARKER, 0, NOW);
        let Decision::Act(a) = decide(o, &r, NOW) else {
            panic!()
        };
        assert_eq!(
            (a.kind, a.objects(), a.rule.as_str()),
            (Kind::Move, 0, "app \"shop\"")
        );
        // Nothing there at all: nothing to do.
        let mut o = observed("billing", 100, 100);
        o.hot = Side::default();
        assert_eq!(decide(o, &r, NOW), Decision::Keep);
    }

    #[test]
    fn markers_are_not_objects() {
        let mut side = Side::default();
        side.push(MOVED_MARKER, 5, NOW);
        side.push("x.ndjson.gz", 5, NOW - 1);
        assert_eq!(
            (side.objects.len(), side.markers.len(), side.bytes()),
            (1, 1, 5)
        );
        assert_eq!(side.written_ns(), Some(NOW - 1));
    }

    #[test]
    fn the_horizon_is_the_first_hour_not_due() {
        let r = rules();
        let h = delete_horizon(&r, "billing", NOW).unwrap();
        let just_due = Partition {
            app: "billing".into(),
            hour: h - 1,
        };
        let not_due = Partition {
            app: "billing".into(),
            hour: h,
        };
        assert_eq!(
            kind(&decide(
                Observed {
                    partition: just_due,
                    ..observed("billing", 0, 99)
                },
                &r,
                NOW
            )),
            Some(Kind::Delete)
        );
        assert_eq!(
            decide(
                Observed {
                    partition: not_due,
                    ..observed("billing", 0, 99)
                },
                &r,
                NOW
            ),
            Decision::Keep
        );
        assert_eq!(delete_horizon(&r, "keep-a", NOW), None);
    }

    #[test]
    fn a_plan_lists_actions_and_holds() {
        let r = rules();
        let p = plan(
            vec![
                observed("shop", 8, 8),
                observed("billing", 31, 0),
                observed("billing", 1, 1),
            ],
            &r,
            NOW,
        );
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.held.len(), 1);
    }
}
