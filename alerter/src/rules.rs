//! The rules engine: which records match which `[[alerter.rules]]`, and when
//! a group of matches is due a notification. Pure logic: records and `now`
//! go in, decisions come out; the caller does the IO (the KV claim, the
//! outbox).
//!
//! # Groups and timers (as in Alertmanager)
//!
//! A rule's matches are split into groups by the values of its `group_by`
//! fields. A group that becomes active (a first match for `every`, the
//! condition starting to hold for `threshold` and `absence`) is first
//! notified after `group_wait`, which gathers the burst into one message.
//! After a notification, nothing more is sent for the group within
//! `group_interval`; after that a change is sent (new matches, the condition
//! clearing), and an unchanged firing condition is repeated every
//! `repeat_interval`.
//!
//! - `every`: a notification carries the matches since the previous one, so
//!   the counts of a group's notifications add up to its matches. An `every`
//!   group has no condition to clear and sends no resolved notice.
//! - `threshold`: fires while at least `threshold` matches have a `ts`
//!   within the last `window_secs`; resolves when the count drops below.
//! - `absence`: fires when the latest match is older than `window_secs`
//!   (for a rule without `group_by`, counted from the engine's start when
//!   nothing matched yet); resolves when a match arrives. A gap shorter than
//!   the window never fires, and a resolve waits for `group_interval`
//!   after the firing notice, so a service that stutters does not flap.
//! - `condition` (the built-in system alerts): fires and resolves as
//!   [`Engine::set_condition`] says.
//!
//! Windows use the records' own `ts` (clamped to `now` when in the future),
//! so a restart that replays the stream rebuilds the same counts instead of
//! seeing a burst. Matches older than the window do not count towards a
//! threshold (they are too late to say anything about "now").
//!
//! # Several instances
//!
//! Every alerter instance sees every record and runs the same rules. Which
//! of them sends a due notification is settled outside, by compare-and-set
//! on the group's [`GroupState`] in KV; [`Engine::apply`] then brings each
//! engine to the state that was stored, whoever stored it. For `every`,
//! matches are tracked by stream sequence so an instance drops exactly the
//! matches another instance already reported.

use std::collections::{BTreeMap, HashMap, VecDeque};

use regex::RegexSet;
use serde::{Deserialize, Serialize};
use sluice_core::Level;
use sluice_core::codec::RecordView;
use sluice_core::config::{RuleConfig, RuleKind};
use sluice_core::time::{self, NS_PER_SEC as NS};

use sluice_notify::notification::{
    Kind, Notification, Sample, refill_sample, search_link, truncate_bytes,
};

/// Longest sample message kept in memory, bytes.
pub const SAMPLE_BYTES: usize = sluice_notify::notification::MAX_SAMPLE_BYTES;
/// Samples kept per group: the first few since the last notification and
/// the latest.
pub const SAMPLES: usize = sluice_notify::notification::MAX_SAMPLES;
/// Separator of group values inside a group key.
const SEP: char = '\u{1f}';
/// Records with a `ts` this far in the future are placed at `now`.
const FUTURE_TOLERANCE_NS: i64 = 60 * NS;
/// Most entries tracked per `every` group for de-duplication across
/// instances; older ones are merged (their counts stay exact).
const MAX_PENDING_ENTRIES: usize = 4096;

/// How a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// See [`RuleKind::Every`].
    Every,
    /// See [`RuleKind::Threshold`]: fires at this count.
    Threshold(u64),
    /// See [`RuleKind::Absence`].
    Absence,
    /// Set from outside ([`Engine::set_condition`]): the system alerts.
    Condition,
}

/// A rule as the engine runs it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name.
    pub name: String,
    /// The app matched (`None`: the system alerts, which match no records).
    pub app: Option<String>,
    /// The service matched (any when `None`).
    pub service: Option<String>,
    /// The least severe level matched.
    pub min_level: Level,
    /// Attributes that must be equal.
    pub attrs: BTreeMap<String, String>,
    /// How it decides.
    pub mode: Mode,
    /// The window of `threshold` and `absence`, nanoseconds.
    pub window_ns: i64,
    /// Fields whose values split the rule into groups.
    pub group_by: Vec<String>,
    /// The receiver notified.
    pub receiver: String,
    /// See [`RuleConfig::group_wait_secs`], nanoseconds.
    pub group_wait_ns: i64,
    /// See [`RuleConfig::group_interval_secs`], nanoseconds.
    pub group_interval_ns: i64,
    /// See [`RuleConfig::repeat_interval_secs`], nanoseconds.
    pub repeat_interval_ns: i64,
    /// The regex on the message (kept in the app's [`RegexSet`]).
    pattern: Option<String>,
}

impl Rule {
    /// The engine's form of a configured rule.
    pub fn from_config(c: &RuleConfig) -> Rule {
        Rule {
            name: c.name.clone(),
            app: Some(c.app.as_str().to_string()),
            service: c.service.as_ref().map(|s| s.as_str().to_string()),
            min_level: c.min_level,
            attrs: c.attrs.clone(),
            mode: match c.kind {
                RuleKind::Every => Mode::Every,
                RuleKind::Threshold => Mode::Threshold(c.threshold.unwrap_or(1).max(1)),
                RuleKind::Absence => Mode::Absence,
            },
            window_ns: time::secs_to_ns(c.window_secs.max(1)),
            group_by: c.group_by.clone(),
            receiver: c.receiver.clone(),
            group_wait_ns: time::secs_to_ns(c.group_wait_secs),
            group_interval_ns: time::secs_to_ns(c.group_interval_secs.max(1)),
            repeat_interval_ns: time::secs_to_ns(c.repeat_interval_secs.max(1)),
            pattern: c.pattern.as_ref().map(|p| p.0.as_str().to_string()),
        }
    }

    /// A built-in condition rule (a system alert), grouped by `group_by`.
    pub fn condition(name: &str, group_by: &[&str], receiver: &str, window_secs: u64) -> Rule {
        Rule {
            name: name.to_string(),
            app: None,
            service: None,
            min_level: Level::Fatal,
            attrs: BTreeMap::new(),
            mode: Mode::Condition,
            window_ns: time::secs_to_ns(window_secs.max(1)),
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            receiver: receiver.to_string(),
            group_wait_ns: 0,
            group_interval_ns: 300 * NS,
            repeat_interval_ns: 4 * 3600 * NS,
            pattern: None,
        }
    }

    fn matches_fields(&self, r: &RecordView<'_>) -> bool {
        r.level >= self.min_level
            && self.service.as_deref().is_none_or(|s| s == r.service)
            && self
                .attrs
                .iter()
                .all(|(k, v)| r.attrs.get(k) == Some(v.as_str()))
    }

    fn value_of<'a>(&self, field: &str, r: &RecordView<'a>) -> &'a str {
        match field {
            "app" => r.app,
            "service" => r.service,
            "host" => r.host,
            "level" => r.level.as_str(),
            attr => r.attrs.get(attr).unwrap_or(""),
        }
    }
}

/// The rules of one app, with their patterns in one [`RegexSet`] so a
/// record's message is scanned once however many rules look at it.
#[derive(Debug, Default)]
struct AppRules {
    rules: Vec<usize>,
    /// For each rule in `rules`: its index in `set`, when it has a pattern.
    pattern_of: Vec<Option<usize>>,
    set: Option<RegexSet>,
}

/// What is remembered of a group between notifications, shared between
/// instances through KV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The rule.
    pub rule: String,
    /// The group's values, in `group_by` order.
    pub values: Vec<String>,
    /// Whether the last notification said "firing".
    pub firing: bool,
    /// When the last notification was made, nanoseconds since the epoch.
    pub last_notified: i64,
    /// `every`: the highest stream sequence whose matches were reported.
    #[serde(default)]
    pub notified_seq: u64,
    /// The instance that made the last notification.
    #[serde(default)]
    pub by: String,
}

/// Matches of an `every` group not yet reported, by stream sequence.
#[derive(Debug, Default, Clone)]
struct Pending {
    entries: VecDeque<(u64, u64)>,
    total: u64,
}

impl Pending {
    fn add(&mut self, seq: u64) {
        self.total += 1;
        match self.entries.back_mut() {
            Some((s, n)) if *s >= seq => *n += 1,
            _ => {
                if self.entries.len() >= MAX_PENDING_ENTRIES
                    && let Some((_, n)) = self.entries.pop_front()
                    && let Some(front) = self.entries.front_mut()
                {
                    front.1 += n;
                }
                self.entries.push_back((seq, 1));
            }
        }
    }

    /// Drops the matches up to `seq` (reported by someone).
    fn drop_through(&mut self, seq: u64) {
        while let Some(&(s, n)) = self.entries.front() {
            if s > seq {
                break;
            }
            self.entries.pop_front();
            self.total -= n;
        }
    }

    fn last_seq(&self) -> u64 {
        self.entries.back().map_or(0, |e| e.0)
    }
}

/// Match counts by time bucket, for `threshold`.
#[derive(Debug, Default, Clone)]
struct Window {
    /// (bucket index, count), ascending.
    buckets: VecDeque<(i64, u64)>,
}

impl Window {
    fn bucket_ns(window_ns: i64) -> i64 {
        (window_ns / 60).max(NS)
    }

    fn add(&mut self, ts: i64, window_ns: i64, now: i64) {
        if ts <= now - window_ns {
            return;
        }
        let idx = ts.div_euclid(Self::bucket_ns(window_ns));
        match self.buckets.iter().rposition(|(i, _)| *i <= idx) {
            Some(p) if self.buckets[p].0 == idx => self.buckets[p].1 += 1,
            Some(p) => self.buckets.insert(p + 1, (idx, 1)),
            None => self.buckets.push_front((idx, 1)),
        }
    }

    /// Matches with `ts` in `(now - window, now]`, to bucket precision.
    fn count(&mut self, window_ns: i64, now: i64) -> u64 {
        let size = Self::bucket_ns(window_ns);
        let first = (now - window_ns).div_euclid(size) + 1;
        while self.buckets.front().is_some_and(|(i, _)| *i < first) {
            self.buckets.pop_front();
        }
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

/// One group of one rule.
#[derive(Debug, Clone)]
struct Group {
    values: Vec<String>,
    pending: Pending,
    window: Window,
    samples: Vec<Sample>,
    first_seen: i64,
    last_seen: i64,
    /// Processing time of the latest match.
    last_match_at: i64,
    /// When the group became active (first match or condition start)
    /// while it had nothing outstanding; starts `group_wait`.
    active_since: Option<i64>,
    /// `condition`: the state set from outside, with its detail.
    condition: Option<(bool, u64, String)>,
    notified_firing: bool,
    last_notified: Option<i64>,
    notified_seq: u64,
}

impl Group {
    fn new(values: Vec<String>, now: i64) -> Group {
        Group {
            values,
            pending: Pending::default(),
            window: Window::default(),
            samples: Vec::new(),
            first_seen: now,
            last_seen: i64::MIN,
            last_match_at: now,
            active_since: None,
            condition: None,
            notified_firing: false,
            last_notified: None,
            notified_seq: 0,
        }
    }

    fn sample(&mut self, r: &RecordView<'_>) {
        let request_id = r.attrs.get("request_id");
        if self.samples.len() < SAMPLES {
            self.samples.push(Sample {
                id: r.id.to_string(),
                ts: r.ts,
                host: r.host.to_string(),
                msg: truncate_bytes(r.msg, SAMPLE_BYTES),
                request_id: request_id.map(str::to_string),
            });
            return;
        }
        // The last slot follows the latest match, reusing its buffers.
        if let Some(last) = self.samples.last_mut() {
            refill_sample(last, r.id, r.ts, r.host, r.msg, request_id, SAMPLE_BYTES);
        }
    }
}

/// Identifies a group: the rule's index and the group's values joined.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Index of the rule in [`Engine::rules`].
    pub rule: usize,
    /// The group's values joined by U+001F.
    pub values: String,
}

/// A notification the engine wants sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The group.
    pub key: GroupKey,
    /// Firing or resolved.
    pub kind: Kind,
    /// What the notification reports: new matches (`every`), matches in the
    /// window (`threshold`), a measured value (`condition`), 0 (`absence`).
    pub count: u64,
    /// The state to store once it is sent.
    pub state: GroupState,
}

/// Counters the caller exports as metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineStats {
    /// Records checked.
    pub records: u64,
    /// Rule matches (a record can match several rules).
    pub matches: u64,
    /// Matches dropped because the group cap was reached.
    pub groups_refused: u64,
}

/// The rules and their groups.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    by_app: HashMap<String, AppRules>,
    groups: Vec<HashMap<String, Group>>,
    group_count: usize,
    max_groups: usize,
    started: i64,
    instance: String,
    /// Counters since start.
    pub stats: EngineStats,
    key_buf: String,
}

impl Engine {
    /// An engine for `rules`, started at `now`. At most `max_groups` groups
    /// are tracked; matches for more are counted in
    /// [`EngineStats::groups_refused`]. `instance` is written into states.
    pub fn new(rules: Vec<Rule>, max_groups: usize, instance: &str, now: i64) -> Engine {
        let mut by_app: HashMap<String, AppRules> = HashMap::new();
        let mut patterns: HashMap<String, Vec<String>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let Some(app) = &rule.app else { continue };
            let entry = by_app.entry(app.clone()).or_default();
            entry.rules.push(i);
            let list = patterns.entry(app.clone()).or_default();
            entry.pattern_of.push(rule.pattern.as_ref().map(|p| {
                list.push(p.clone());
                list.len() - 1
            }));
        }
        for (app, list) in patterns {
            if list.is_empty() {
                continue;
            }
            // Each pattern compiled alone already (config parsing); a set
            // of them only fails on size limits, and then the rules fall
            // back to matching nothing rather than everything.
            match RegexSet::new(&list) {
                Ok(set) => {
                    if let Some(a) = by_app.get_mut(&app) {
                        a.set = Some(set);
                    }
                }
                Err(err) => {
                    tracing::error!(app = %app, error = %err, "cannot build the pattern set")
                }
            }
        }
        let mut engine = Engine {
            groups: vec![HashMap::new(); rules.len()],
            rules,
            by_app,
            group_count: 0,
            max_groups: max_groups.max(1),
            started: now,
            instance: instance.to_string(),
            stats: EngineStats::default(),
            key_buf: String::new(),
        };
        // An absence rule without group_by watches from the start.
        for i in 0..engine.rules.len() {
            if engine.rules[i].mode == Mode::Absence && engine.rules[i].group_by.is_empty() {
                engine.group_mut(i, "", now);
            }
        }
        engine
    }

    /// The rules, by index.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of the rule named `name`.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }

    /// Groups tracked now.
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    fn group_mut(&mut self, rule: usize, values: &str, now: i64) -> Option<&mut Group> {
        let map = &mut self.groups[rule];
        if !map.contains_key(values) {
            if self.group_count >= self.max_groups {
                return None;
            }
            let split = if values.is_empty() && self.rules[rule].group_by.is_empty() {
                Vec::new()
            } else {
                values.split(SEP).map(str::to_string).collect()
            };
            map.insert(values.to_string(), Group::new(split, now));
            self.group_count += 1;
        }
        map.get_mut(values)
    }

    /// Checks one record (from the message at stream sequence `seq`)
    /// against the rules; returns how many rules it matched.
    pub fn observe(&mut self, r: &RecordView<'_>, seq: u64, now: i64) -> usize {
        self.stats.records += 1;
        let Some(app) = self.by_app.get(r.app) else {
            return 0;
        };
        let mut set_matches: Option<regex::SetMatches> = None;
        // The rules this record matches (few: no allocation per record).
        let mut matched: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::new();
        for (pos, &i) in app.rules.iter().enumerate() {
            if !self.rules[i].matches_fields(r) {
                continue;
            }
            if let Some(p) = app.pattern_of[pos] {
                let Some(set) = &app.set else { continue };
                let m = set_matches.get_or_insert_with(|| set.matches(r.msg));
                if !m.matched(p) {
                    continue;
                }
            }
            matched.push(i);
        }
        let ts = if r.ts > now + FUTURE_TOLERANCE_NS {
            now
        } else {
            r.ts
        };
        let mut counted = 0;
        for &i in &matched {
            let mut key = std::mem::take(&mut self.key_buf);
            key.clear();
            for (n, field) in self.rules[i].group_by.iter().enumerate() {
                if n > 0 {
                    key.push(SEP);
                }
                key.push_str(self.rules[i].value_of(field, r));
            }
            let (mode, window_ns) = (self.rules[i].mode, self.rules[i].window_ns);
            match self.group_mut(i, &key, now) {
                Some(g) => {
                    counted += 1;
                    g.first_seen = if g.last_seen == i64::MIN {
                        ts
                    } else {
                        g.first_seen.min(ts)
                    };
                    g.last_seen = g.last_seen.max(ts);
                    g.last_match_at = now;
                    match mode {
                        Mode::Every => {
                            if seq > g.notified_seq || seq == 0 {
                                if g.pending.total == 0 && g.active_since.is_none() {
                                    g.active_since = Some(now);
                                }
                                g.pending.add(seq);
                                g.sample(r);
                            }
                        }
                        Mode::Threshold(_) => {
                            g.window.add(ts, window_ns, now);
                            g.sample(r);
                        }
                        Mode::Absence => g.sample(r),
                        Mode::Condition => {}
                    }
                }
                None => self.stats.groups_refused += 1,
            }
            self.key_buf = key;
        }
        self.stats.matches += counted;
        matched.len()
    }

    /// Sets a condition rule's group (a system alert) to firing or not,
    /// with the measured value and a line of detail.
    pub fn set_condition(
        &mut self,
        rule: usize,
        values: &[&str],
        firing: bool,
        value: u64,
        detail: &str,
        now: i64,
    ) {
        if self.rules.get(rule).map(|r| r.mode) != Some(Mode::Condition) {
            return;
        }
        let key = values.join(&SEP.to_string());
        if !firing && !self.groups[rule].contains_key(&key) {
            return;
        }
        match self.group_mut(rule, &key, now) {
            Some(g) => {
                g.condition = Some((firing, value, detail.to_string()));
                g.last_seen = now;
                if g.first_seen > now || g.last_seen == i64::MIN {
                    g.first_seen = now;
                }
            }
            None => self.stats.groups_refused += 1,
        }
    }

    /// Whether a group's condition holds at `now`.
    fn holds(rule: &Rule, g: &mut Group, started: i64, now: i64) -> (bool, u64) {
        match rule.mode {
            Mode::Every => (g.pending.total > 0, g.pending.total),
            Mode::Threshold(n) => {
                let c = g.window.count(rule.window_ns, now);
                (c >= n, c)
            }
            Mode::Absence => {
                if g.last_seen == i64::MIN && g.notified_firing {
                    // Restored as firing and nothing matched since: still
                    // silent as far as anyone knows.
                    return (true, 0);
                }
                let latest = if g.last_seen == i64::MIN {
                    started.max(g.first_seen)
                } else {
                    g.last_seen
                };
                (now.saturating_sub(latest) > rule.window_ns, 0)
            }
            // Not sampled yet (after a restart): unchanged.
            Mode::Condition => g
                .condition
                .as_ref()
                .map_or((g.notified_firing, 0), |(f, v, _)| (*f, *v)),
        }
    }

    /// The notifications due at `now`, in a stable order. Also forgets
    /// groups that have nothing left to say.
    pub fn due(&mut self, now: i64) -> Vec<Due> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let mut idle = Vec::new();
            for (values, g) in self.groups[i].iter_mut() {
                let (holds, count) = Self::holds(rule, g, self.started, now);
                if holds {
                    if g.active_since.is_none() {
                        g.active_since = Some(now);
                    }
                } else if !g.notified_firing {
                    g.active_since = None;
                }
                let not_before = match (g.last_notified, g.active_since) {
                    // Never notified, or the last notice closed the group.
                    (last, Some(since)) if !g.notified_firing => {
                        let wait = since.saturating_add(rule.group_wait_ns);
                        last.map_or(wait, |l| wait.max(l.saturating_add(rule.group_interval_ns)))
                    }
                    (Some(last), _) => last.saturating_add(rule.group_interval_ns),
                    (None, _) => i64::MAX,
                };
                let kind = match rule.mode {
                    Mode::Every if holds && now >= not_before => Some(Kind::Firing),
                    Mode::Every => None,
                    _ if holds && !g.notified_firing && now >= not_before => Some(Kind::Firing),
                    _ if holds
                        && g.notified_firing
                        && g.last_notified
                            .is_some_and(|l| now.saturating_sub(l) >= rule.repeat_interval_ns) =>
                    {
                        Some(Kind::Firing)
                    }
                    _ if !holds && g.notified_firing && now >= not_before => Some(Kind::Resolved),
                    _ => None,
                };
                if let Some(kind) = kind {
                    let firing = kind == Kind::Firing && rule.mode != Mode::Every;
                    out.push(Due {
                        key: GroupKey {
                            rule: i,
                            values: values.clone(),
                        },
                        kind,
                        count,
                        state: GroupState {
                            rule: rule.name.clone(),
                            values: g.values.clone(),
                            firing,
                            last_notified: now,
                            notified_seq: g.pending.last_seq().max(g.notified_seq),
                            by: self.instance.clone(),
                        },
                    });
                    continue;
                }
                let since_match = now.saturating_sub(g.last_match_at);
                let forget = match rule.mode {
                    Mode::Every => g.pending.total == 0 && since_match > rule.group_interval_ns,
                    Mode::Threshold(_) => {
                        !holds
                            && !g.notified_firing
                            && since_match > rule.window_ns.max(rule.group_interval_ns)
                    }
                    Mode::Absence => false,
                    Mode::Condition => !holds && !g.notified_firing,
                };
                if forget {
                    idle.push(values.clone());
                }
            }
            for values in idle {
                self.groups[i].remove(&values);
                self.group_count -= 1;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Brings a group to a stored state (stored by this instance after
    /// sending, or found in KV, stored by another). Creates the group when
    /// it is not tracked, so a firing alert is resolved after a restart.
    pub fn apply(&mut self, state: &GroupState, now: i64) {
        let Some(rule) = self.rule_index(&state.rule) else {
            return;
        };
        let key = state.values.join(&SEP.to_string());
        let mode = self.rules[rule].mode;
        let Some(g) = self.group_mut(rule, &key, now) else {
            return;
        };
        if g.last_notified.is_some_and(|l| l > state.last_notified) {
            return;
        }
        g.notified_firing = state.firing;
        g.last_notified = Some(state.last_notified);
        g.notified_seq = g.notified_seq.max(state.notified_seq);
        g.pending.drop_through(state.notified_seq);
        if mode == Mode::Every || !state.firing {
            g.samples.clear();
            g.active_since = None;
        }
        if mode == Mode::Every && g.pending.total > 0 {
            g.active_since = Some(now);
        }
    }

    /// The stream sequence of the oldest match not yet reported by an
    /// `every` rule: a restart must read the stream again from there.
    pub fn oldest_pending_seq(&self) -> Option<u64> {
        self.groups
            .iter()
            .flat_map(|m| m.values())
            .filter_map(|g| g.pending.entries.front().map(|e| e.0))
            .min()
    }

    /// The condition groups of rule `rule` currently tracked, by values.
    pub fn condition_groups(&self, rule: usize) -> Vec<Vec<String>> {
        self.groups
            .get(rule)
            .map(|m| m.values().map(|g| g.values.clone()).collect())
            .unwrap_or_default()
    }

    /// The last notification time this engine knows of for a group.
    pub fn last_notified(&self, key: &GroupKey) -> Option<i64> {
        self.groups
            .get(key.rule)?
            .get(&key.values)
            .and_then(|g| g.last_notified)
    }

    /// Marks a due notification as handled without sending it (silenced):
    /// `every` matches are dropped, a resolve is taken as done.
    pub fn skip(&mut self, due: &Due, now: i64) {
        let mode = self.rules[due.key.rule].mode;
        if let Some(g) = self.groups[due.key.rule].get_mut(&due.key.values) {
            match (mode, due.kind) {
                (Mode::Every, _) => {
                    g.pending.drop_through(due.state.notified_seq);
                    g.samples.clear();
                    g.active_since = None;
                }
                (_, Kind::Resolved) => {
                    g.notified_firing = false;
                    g.samples.clear();
                }
                _ => {
                    // Firing while silenced: looked at again later.
                    g.active_since = Some(now);
                }
            }
        }
    }

    /// The notification for a due group, addressed to the rule's receiver.
    /// `id` is the caller's (stable across instances), `query_url` the base
    /// of links.
    pub fn notification(
        &self,
        due: &Due,
        id: String,
        query_url: Option<&str>,
        now: i64,
    ) -> Notification {
        let rule = &self.rules[due.key.rule];
        let g = self.groups[due.key.rule].get(&due.key.values);
        let labels: BTreeMap<String, String> = rule
            .group_by
            .iter()
            .cloned()
            .zip(due.state.values.iter().cloned())
            .collect();
        let window_secs = (rule.window_ns / NS) as u64;
        let detail = g
            .and_then(|g| g.condition.as_ref())
            .map(|(_, _, d)| d.clone());
        let title = match (rule.mode, due.kind) {
            (_, Kind::Resolved) => format!("{}: resolved", rule.name),
            (Mode::Every, _) => format!("{}: {} matching records", rule.name, due.count),
            (Mode::Threshold(n), _) => format!(
                "{}: {} matching records in {window_secs}s (threshold {n})",
                rule.name, due.count
            ),
            (Mode::Absence, _) => {
                format!("{}: no matching record for {window_secs}s", rule.name)
            }
            (Mode::Condition, _) => format!(
                "{}: {}",
                rule.name,
                detail.unwrap_or_else(|| "condition holds".into())
            ),
        };
        let service = rule
            .service
            .clone()
            .or_else(|| labels.get("service").cloned());
        let first_seen = g.map_or(now, |g| g.first_seen.min(now));
        let last_seen = g.map_or(now, |g| {
            if g.last_seen == i64::MIN {
                now
            } else {
                g.last_seen
            }
        });
        let app = rule
            .app
            .clone()
            .or_else(|| labels.get("app").cloned())
            .unwrap_or_else(|| "sluice".into());
        let link = query_url.map(|base| {
            search_link(
                base,
                &app,
                service.as_deref(),
                rule.min_level,
                now.saturating_sub(rule.window_ns.max(now.saturating_sub(first_seen))),
                now,
            )
        });
        Notification {
            id,
            receiver: rule.receiver.clone(),
            kind: due.kind,
            title,
            source: "alerter".into(),
            rule: Some(rule.name.clone()),
            app,
            service,
            level: rule.app.as_ref().map(|_| rule.min_level),
            count: due.count,
            window_secs: match rule.mode {
                Mode::Every => None,
                _ => Some(window_secs),
            },
            labels,
            fingerprint: None,
            template: None,
            samples: match due.kind {
                Kind::Resolved => Vec::new(),
                _ => g.map(|g| g.samples.clone()).unwrap_or_default(),
            },
            first_seen,
            last_seen,
            link,
            created: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_core::Record;
    use sluice_core::config::Config;

    /// `observe` for an owned record.
    trait See {
        fn see(&mut self, r: &Record, seq: u64, now: i64) -> usize;
    }

    impl See for Engine {
        fn see(&mut self, r: &Record, seq: u64, now: i64) -> usize {
            self.observe(&RecordView::from(r), seq, now)
        }
    }

    const S: i64 = NS;

    fn rules(toml: &str) -> Vec<Rule> {
        let text = format!("[[receivers]]\nname = \"ops\"\nkind = \"log\"\n{toml}");
        Config::parse(&text)
            .unwrap()
            .alerter
            .rules
            .iter()
            .map(Rule::from_config)
            .collect()
    }

    fn rec(service: &str, level: Level, msg: &str, ts: i64) -> Record {
        Record {
            id: format!("id-{ts}"),
            ts,
            app: "shop".into(),
            service: service.into(),
            host: "web-1".into(),
            level,
            msg: msg.into(),
            attrs: BTreeMap::from([("request_id".to_string(), "req-1".to_string())]),
            source: "test".into(),
        }
    }

    /// Sends whatever is due (as the only instance), returning it.
    fn flush(e: &mut Engine, now: i64) -> Vec<Due> {
        let due = e.due(now);
        for d in &due {
            e.apply(&d.state, now);
        }
        due
    }

    const EVERY: &str = r#"
[[alerter.rules]]
name = "errs"
app = "shop"
kind = "every"
group_by = ["service"]
receiver = "ops"
group_wait_secs = 5
group_interval_secs = 60
"#;

    #[test]
    fn matching_checks_level_service_attrs_and_pattern() {
        let mut e = Engine::new(
            rules(
                r#"
[[alerter.rules]]
name = "declined"
app = "shop"
service = "checkout"
pattern = "payment .* declined"
attrs = { region = "eu" }
kind = "every"
receiver = "ops"
[[alerter.rules]]
name = "warns"
app = "shop"
min_level = "WARN"
pattern = "disk"
kind = "every"
receiver = "ops"
"#,
            ),
            100,
            "a",
            0,
        );
        let mut r = rec("checkout", Level::Error, "payment 12 declined", 1);
        assert_eq!(e.see(&r, 1, 1), 0, "attribute missing");
        r.attrs.insert("region".into(), "eu".into());
        assert_eq!(e.see(&r, 1, 1), 1);
        r.service = "cart".into();
        assert_eq!(e.see(&r, 1, 1), 0, "other service");
        r.service = "checkout".into();
        r.level = Level::Warn;
        assert_eq!(e.see(&r, 1, 1), 0, "below min_level");
        let disk = rec("x", Level::Warn, "disk full", 1);
        assert_eq!(e.see(&disk, 1, 1), 1);
        let info = rec("x", Level::Info, "disk full", 1);
        assert_eq!(e.see(&info, 1, 1), 0);
        let mut other = disk.clone();
        other.app = "billing".into();
        assert_eq!(e.see(&other, 1, 1), 0, "other app");
    }

    #[test]
    fn every_waits_then_batches_per_interval_and_counts_add_up() {
        let mut e = Engine::new(rules(EVERY), 100, "a", 0);
        for i in 0..10 {
            e.see(&rec("checkout", Level::Error, "boom", i * S), 1, i * S / 10);
        }
        assert!(flush(&mut e, 4 * S).is_empty(), "group_wait not over");
        let first = flush(&mut e, 5 * S);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].kind, first[0].count), (Kind::Firing, 10));
        assert_eq!(first[0].state.values, vec!["checkout".to_string()]);
        for i in 0..7 {
            e.see(
                &rec("checkout", Level::Error, "boom", 10 * S),
                2 + i,
                10 * S,
            );
        }
        assert!(flush(&mut e, 64 * S).is_empty(), "group_interval not over");
        let second = flush(&mut e, 65 * S);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].count, 7);
        assert!(flush(&mut e, 200 * S).is_empty(), "nothing new");
        // Quiet long enough: the group is forgotten; a new burst waits
        // group_wait again, not group_interval.
        assert_eq!(e.group_count(), 0);
        e.see(&rec("checkout", Level::Error, "boom", 300 * S), 20, 300 * S);
        assert!(flush(&mut e, 304 * S).is_empty());
        assert_eq!(flush(&mut e, 305 * S)[0].count, 1);
    }

    #[test]
    fn another_instances_notification_is_adopted_by_sequence() {
        let mut a = Engine::new(rules(EVERY), 100, "a", 0);
        let mut b = Engine::new(rules(EVERY), 100, "b", 0);
        for seq in 1..=3 {
            a.see(&rec("checkout", Level::Error, "boom", S), seq, S);
        }
        // b has read less far when a notifies.
        for seq in 1..=2 {
            b.see(&rec("checkout", Level::Error, "boom", S), seq, S);
        }
        let sent = flush(&mut a, 6 * S);
        assert_eq!(sent[0].count, 3);
        b.apply(&sent[0].state, 6 * S);
        // b then reads seq 3 (already reported) and 4 (new).
        b.see(&rec("checkout", Level::Error, "boom", S), 3, 7 * S);
        b.see(&rec("checkout", Level::Error, "boom", S), 4, 7 * S);
        assert!(flush(&mut b, 30 * S).is_empty(), "within group_interval");
        let next = flush(&mut b, 66 * S);
        assert_eq!(next[0].count, 1, "only seq 4 is new");
    }

    const THRESHOLD: &str = r#"
[[alerter.rules]]
name = "many"
app = "shop"
kind = "threshold"
threshold = 5
window_secs = 60
receiver = "ops"
group_wait_secs = 0
group_interval_secs = 30
repeat_interval_secs = 600
"#;

    #[test]
    fn threshold_fires_once_repeats_late_and_resolves() {
        let mut e = Engine::new(rules(THRESHOLD), 100, "a", 0);
        for i in 0..4 {
            e.see(&rec("x", Level::Error, "e", 100 * S + i), 1, 100 * S);
        }
        assert!(flush(&mut e, 101 * S).is_empty(), "4 < 5");
        e.see(&rec("x", Level::Error, "e", 101 * S), 2, 101 * S);
        let fired = flush(&mut e, 101 * S);
        assert_eq!((fired[0].kind, fired[0].count), (Kind::Firing, 5));
        for i in 0..20 {
            e.see(&rec("x", Level::Error, "e", 110 * S), 3 + i, 110 * S);
        }
        assert!(
            flush(&mut e, 140 * S).is_empty(),
            "still firing: no repeat yet"
        );
        // The window empties at 170 s; the resolve is sent then.
        assert!(flush(&mut e, 165 * S).is_empty());
        let resolved = flush(&mut e, 171 * S);
        assert_eq!(resolved[0].kind, Kind::Resolved);
        assert!(flush(&mut e, 400 * S).is_empty());
    }

    #[test]
    fn threshold_repeats_after_repeat_interval_and_ignores_late_records() {
        let mut e = Engine::new(rules(THRESHOLD), 100, "a", 0);
        let mut seq = 0;
        let mut feed = |e: &mut Engine, t: i64| {
            for _ in 0..5 {
                seq += 1;
                e.see(&rec("x", Level::Error, "e", t), seq, t);
            }
        };
        feed(&mut e, 1000 * S);
        assert_eq!(flush(&mut e, 1000 * S).len(), 1);
        let mut repeats = 0;
        for t in (1010..=1700).step_by(10) {
            feed(&mut e, t * S);
            repeats += flush(&mut e, t * S).len();
        }
        assert_eq!(repeats, 1, "one repeat after 600 s");
        // Records from long ago do not count.
        let mut late = Engine::new(rules(THRESHOLD), 100, "a", 0);
        for i in 0..10 {
            late.see(&rec("x", Level::Error, "e", 10 * S), i, 500 * S);
        }
        assert!(flush(&mut late, 500 * S).is_empty());
    }

    const ABSENCE: &str = r#"
[[alerter.rules]]
name = "silent"
app = "shop"
service = "billing"
min_level = "INFO"
kind = "absence"
window_secs = 10
receiver = "ops"
group_wait_secs = 0
group_interval_secs = 5
"#;

    #[test]
    fn absence_fires_after_the_window_and_resolves_without_flapping() {
        let mut e = Engine::new(rules(ABSENCE), 100, "a", 0);
        let mut log = Vec::new();
        let mut t = 0;
        let beat = |e: &mut Engine, t: i64| {
            e.see(
                &rec("billing", Level::Info, "ok", t * S),
                t as u64 + 1,
                t * S,
            );
        };
        // Heartbeats every 2 s, then an 8 s gap (shorter than the window).
        while t < 20 {
            beat(&mut e, t);
            log.extend(flush(&mut e, t * S));
            t += 2;
        }
        for s in 20..28 {
            log.extend(flush(&mut e, s * S));
        }
        t = 28;
        while t < 40 {
            beat(&mut e, t);
            log.extend(flush(&mut e, t * S));
            t += 2;
        }
        assert!(log.is_empty(), "a gap shorter than the window: {log:?}");
        // Silent from 38 s: fires once the window has passed.
        for s in 40..49 {
            assert!(flush(&mut e, s * S).is_empty(), "at {s}");
        }
        let fired = flush(&mut e, 49 * S);
        assert_eq!(fired[0].kind, Kind::Firing);
        for s in 50..80 {
            assert!(flush(&mut e, s * S).is_empty(), "no repeat, at {s}");
        }
        beat(&mut e, 80);
        let resolved = flush(&mut e, 80 * S);
        assert_eq!(resolved[0].kind, Kind::Resolved);
        // A second stop just after the resolve does not flap: it needs a
        // whole window again.
        for s in 81..90 {
            assert!(flush(&mut e, s * S).is_empty(), "at {s}");
        }
        assert_eq!(flush(&mut e, 91 * S)[0].kind, Kind::Firing);
    }

    #[test]
    fn absence_counts_from_start_when_nothing_ever_matched() {
        let mut e = Engine::new(rules(ABSENCE), 100, "a", 1000 * S);
        assert!(flush(&mut e, 1009 * S).is_empty());
        assert_eq!(flush(&mut e, 1011 * S)[0].kind, Kind::Firing);
    }

    #[test]
    fn restored_firing_alerts_stay_firing_until_known_otherwise() {
        let restored = |rule: &str| GroupState {
            rule: rule.into(),
            values: Vec::new(),
            firing: true,
            last_notified: 0,
            notified_seq: 0,
            by: "old".into(),
        };
        // An absence alert restored after a restart: nothing matched since.
        let mut e = Engine::new(rules(ABSENCE), 100, "b", 100 * S);
        e.apply(&restored("silent"), 100 * S);
        for t in 100..200 {
            assert!(flush(&mut e, t * S).is_empty(), "at {t}");
        }
        e.see(&rec("billing", Level::Info, "ok", 200 * S), 1, 200 * S);
        assert_eq!(flush(&mut e, 200 * S)[0].kind, Kind::Resolved);
        // A system alert not sampled again yet.
        let mut e = Engine::new(vec![Rule::condition("lag", &[], "ops", 300)], 10, "b", 0);
        e.apply(&restored("lag"), 0);
        assert!(flush(&mut e, 1000 * S).is_empty());
        e.set_condition(0, &[], false, 0, "ok", 1000 * S);
        assert_eq!(flush(&mut e, 1000 * S)[0].kind, Kind::Resolved);
    }

    #[test]
    fn oldest_pending_sequence_tracks_unreported_matches() {
        let mut e = Engine::new(rules(EVERY), 100, "a", 0);
        assert_eq!(e.oldest_pending_seq(), None);
        e.see(&rec("checkout", Level::Error, "x", S), 7, S);
        e.see(&rec("cart", Level::Error, "x", S), 9, S);
        assert_eq!(e.oldest_pending_seq(), Some(7));
        flush(&mut e, 10 * S);
        assert_eq!(e.oldest_pending_seq(), None);
    }

    #[test]
    fn the_group_cap_refuses_and_counts() {
        let mut e = Engine::new(rules(EVERY), 3, "a", 0);
        for i in 0..10 {
            e.see(&rec(&format!("svc{i}"), Level::Error, "x", S), 1, S);
        }
        assert_eq!(e.group_count(), 3);
        assert_eq!(e.stats.groups_refused, 7);
        assert_eq!(e.stats.matches, 3);
    }

    #[test]
    fn conditions_fire_and_resolve_as_set() {
        let mut e = Engine::new(
            vec![Rule::condition("lag", &["consumer"], "ops", 300)],
            10,
            "a",
            0,
        );
        e.set_condition(0, &["filterer"], true, 400, "400s behind", S);
        let fired = flush(&mut e, S);
        assert_eq!((fired[0].kind, fired[0].count), (Kind::Firing, 400));
        let n = e.notification(&fired[0], "id".into(), None, S);
        assert!(n.title.contains("400s behind"), "{}", n.title);
        assert_eq!(n.labels["consumer"], "filterer");
        e.set_condition(0, &["filterer"], false, 0, "ok", 10 * S);
        assert!(flush(&mut e, 10 * S).is_empty(), "group_interval");
        assert_eq!(flush(&mut e, 302 * S)[0].kind, Kind::Resolved);
        assert!(flush(&mut e, 400 * S).is_empty());
        assert_eq!(e.group_count(), 0);
    }

    #[test]
    fn notifications_carry_samples_labels_and_a_link() {
        let mut e = Engine::new(rules(EVERY), 100, "a", 0);
        let big = "x".repeat(1 << 20);
        for i in 0..8 {
            let msg = if i == 7 {
                big.clone()
            } else {
                format!("boom {i}")
            };
            e.see(&rec("checkout", Level::Error, &msg, i * S), 1, S);
        }
        let due = e.due(10 * S);
        let n = e.notification(&due[0], "k-0".into(), Some("http://q:8080/"), 10 * S);
        assert_eq!(n.samples.len(), SAMPLES);
        assert_eq!(n.samples[0].msg, "boom 0");
        assert!(n.samples[SAMPLES - 1].msg.len() <= SAMPLE_BYTES + 3, "cut");
        assert_eq!(n.samples[0].request_id.as_deref(), Some("req-1"));
        assert_eq!(n.labels["service"], "checkout");
        assert_eq!(n.service.as_deref(), Some("checkout"));
        assert_eq!((n.count, n.first_seen, n.last_seen), (8, 0, 7 * S));
        assert!(
            n.link
                .unwrap()
                .starts_with("http://q:8080/?app=shop&level=ERROR")
        );
        assert!(n.title.contains("8 matching"));
    }

    proptest! {
        /// Whatever the arrival pattern, an `every` group's notifications
        /// add up to its matches and are at least group_interval apart.
        #[test]
        fn every_counts_add_up(gaps in proptest::collection::vec(0i64..20, 1..200)) {
            let mut e = Engine::new(rules(EVERY), 100, "a", 0);
            let mut t = 0;
            let mut sent = 0;
            let mut times = Vec::new();
            for (seq, gap) in gaps.iter().enumerate() {
                for s in 0..*gap {
                    for d in flush(&mut e, (t + s) * S) {
                        sent += d.count;
                        times.push(t + s);
                    }
                }
                t += gap;
                e.see(&rec("checkout", Level::Error, "x", t * S), seq as u64 + 1, t * S);
            }
            for s in 0..200 {
                for d in flush(&mut e, (t + s) * S) {
                    sent += d.count;
                    times.push(t + s);
                }
            }
            prop_assert_eq!(sent, gaps.len() as u64);
            for w in times.windows(2) {
                prop_assert!(w[1] - w[0] >= 60, "{:?}", times);
            }
        }
    }
}
