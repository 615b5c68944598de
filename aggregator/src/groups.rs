//! Error groups: what is kept per (app, service, template), how a batch of
//! new occurrences is merged into the stored group, and when the owner is
//! told. Pure logic; the KV reads and compare-and-set writes are in
//! [`crate::run`].
//!
//! A group's stored form ([`ErrorGroup`], JSON in the KV bucket
//! [`crate::GROUPS_BUCKET`] under [`group_key`]) holds the template, the
//! count, first and last seen, a few samples (the first ones and the
//! latest) with their ids and request ids, the hosts (bounded), and the
//! per-minute rate's baseline used to tell a spike.
//!
//! The owner is told ([`merge`] returns the kind) when:
//! - the group is new;
//! - it regressed: occurrences arrive after `quiet_period_secs` without any;
//! - it spikes: a minute's count is at least `spike_min_count` and over
//!   `spike_factor` × its baseline, once the group has [`SPIKE_WARMUP_MINUTES`]
//!   minutes of history; at most one spike notice per hour per group.

use sluice_core::Level;
use sluice_core::codec::RecordView;
use sluice_core::time::{NS_PER_MIN as MINUTE_NS, NS_PER_SEC as NS};
use sluice_notify::notification::{Kind, Sample, refill_sample, truncate_bytes};

/// Hosts listed per group, at most.
pub const MAX_HOSTS: usize = 16;
/// Longest sample message kept, bytes.
pub const SAMPLE_BYTES: usize = sluice_notify::notification::MAX_SAMPLE_BYTES;
/// Minutes a group must have existed before it can spike.
pub const SPIKE_WARMUP_MINUTES: i64 = 10;
/// Least time between two spike notices of a group.
const SPIKE_NOTICE_GAP_NS: i64 = 3600 * NS;
/// Weight of the newest minute in the baseline.
const ALPHA: f64 = 0.1;
/// Minutes folded into the baseline one by one after a gap, at most (the
/// rest decay it as zeros in one step).
const MAX_FOLD_MINUTES: i64 = 120;

pub use sluice_core::aggregates::{ErrorGroup, group_key};

/// New occurrences of one group gathered between two writes.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The app (a valid name).
    pub app: String,
    /// The service (a valid name).
    pub service: String,
    /// See [`ErrorGroup::fingerprint`].
    pub fingerprint: String,
    /// See [`ErrorGroup::template`].
    pub template: String,
    /// The most severe level among them.
    pub level: Level,
    /// How many.
    pub count: u64,
    /// Earliest `ts`.
    pub first_seen: i64,
    /// Latest `ts`.
    pub last_seen: i64,
    /// The first few and the latest.
    pub samples: Vec<Sample>,
    /// Hosts (at most [`MAX_HOSTS`]).
    pub hosts: Vec<String>,
    /// Hashes of `hosts`, compared instead of the names on the hot path.
    host_keys: Vec<u64>,
    /// Occurrences per hour since the epoch, oldest first (see
    /// [`ErrorGroup::hours`]).
    pub hours: Vec<(i64, u64)>,
}

fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(sluice_core::time::NS_PER_HOUR)
}

fn host_key(host: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(host.as_bytes())
}

fn sample_of(r: &RecordView<'_>) -> Sample {
    Sample {
        id: r.id.to_string(),
        ts: r.ts,
        host: r.host.to_string(),
        msg: truncate_bytes(r.msg, SAMPLE_BYTES),
        request_id: r.attrs.get("request_id").map(str::to_string),
    }
}

/// Keeps the first `max - 1` samples and the latest one.
fn push_sample(samples: &mut Vec<Sample>, s: Sample, max: usize) {
    let max = max.max(1);
    if samples.len() < max {
        samples.push(s);
    } else if let Some(last) = samples.last_mut()
        && s.ts >= last.ts
    {
        *last = s;
    }
}

fn push_host(hosts: &mut Vec<String>, more: &mut bool, host: &str) {
    if hosts.iter().any(|h| h == host) {
        return;
    }
    if hosts.len() < MAX_HOSTS {
        hosts.push(host.to_string());
    } else {
        *more = true;
    }
}

impl Delta {
    /// A delta holding its first occurrence.
    pub fn new(
        app: &str,
        service: &str,
        fingerprint: String,
        template: String,
        r: &RecordView<'_>,
    ) -> Delta {
        Delta {
            app: app.to_string(),
            service: service.to_string(),
            fingerprint,
            template,
            level: r.level,
            count: 1,
            first_seen: r.ts,
            last_seen: r.ts,
            samples: vec![sample_of(r)],
            hosts: vec![r.host.to_string()],
            host_keys: vec![host_key(r.host)],
            hours: vec![(hour_of(r.ts), 1)],
        }
    }

    /// Adds an occurrence, keeping at most `max_samples` samples: the first
    /// ones and the latest (whose buffers are reused).
    pub fn add(&mut self, r: &RecordView<'_>, max_samples: usize) {
        self.count += 1;
        let hour = hour_of(r.ts);
        match self.hours.last_mut() {
            Some((h, n)) if *h == hour => *n += 1,
            _ => sluice_core::aggregates::add_hour(&mut self.hours, hour, 1),
        }
        self.level = self.level.max(r.level);
        self.first_seen = self.first_seen.min(r.ts);
        self.last_seen = self.last_seen.max(r.ts);
        if self.samples.len() < max_samples.max(1) {
            self.samples.push(sample_of(r));
        } else if let Some(last) = self.samples.last_mut()
            && r.ts >= last.ts
        {
            let request_id = r.attrs.get("request_id");
            refill_sample(last, r.id, r.ts, r.host, r.msg, request_id, SAMPLE_BYTES);
        }
        if self.hosts.len() < MAX_HOSTS {
            let key = host_key(r.host);
            if !self.host_keys.contains(&key) {
                self.host_keys.push(key);
                self.hosts.push(r.host.to_string());
            }
        }
    }

    /// Folds in an older delta of the same group (one that could not be
    /// written), keeping this one's latest sample.
    pub fn absorb(&mut self, older: Delta, max_samples: usize) {
        self.count += older.count;
        for (hour, n) in older.hours {
            sluice_core::aggregates::add_hour(&mut self.hours, hour, n);
        }
        self.level = self.level.max(older.level);
        self.first_seen = self.first_seen.min(older.first_seen);
        self.last_seen = self.last_seen.max(older.last_seen);
        let mut samples = older.samples;
        samples.truncate(max_samples.max(1).saturating_sub(1));
        if let Some(latest) = self.samples.pop() {
            samples.push(latest);
        }
        self.samples = samples;
        for (host, key) in older.hosts.into_iter().zip(older.host_keys) {
            if self.hosts.len() < MAX_HOSTS && !self.host_keys.contains(&key) {
                self.host_keys.push(key);
                self.hosts.push(host);
            }
        }
    }

    /// The group's KV key.
    pub fn key(&self) -> String {
        group_key(&self.app, &self.service, &self.fingerprint)
    }
}

/// Settings of [`merge`].
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// See `[aggregator] quiet_period_secs`, ns.
    pub quiet_period_ns: i64,
    /// See `[aggregator] spike_factor`.
    pub spike_factor: f64,
    /// See `[aggregator] spike_min_count`.
    pub spike_min_count: u64,
    /// See `[aggregator] samples`.
    pub samples: usize,
    /// See [`crate::fingerprint::NORMALIZATION_VERSION`].
    pub version: u32,
}

/// Folds minutes up to `minute` into the baseline.
fn roll_minutes(g: &mut ErrorGroup, minute: i64) {
    if minute <= g.minute {
        return;
    }
    let mut m = g.minute;
    let mut count = g.minute_count as f64;
    let mut folded = 0;
    while m < minute && folded < MAX_FOLD_MINUTES {
        g.baseline_per_minute += ALPHA * (count - g.baseline_per_minute);
        count = 0.0;
        m += 1;
        folded += 1;
    }
    if m < minute {
        let rest = i32::try_from(minute - m).unwrap_or(i32::MAX);
        g.baseline_per_minute *= (1.0 - ALPHA).powi(rest);
    }
    g.minute = minute;
    g.minute_count = 0;
}

/// Merges `d` into the stored group (`None`: not stored yet) at `now` and
/// says whether the owner is to be told, and of what.
pub fn merge(
    stored: Option<&ErrorGroup>,
    d: &Delta,
    o: &MergeOptions,
    now: i64,
) -> (ErrorGroup, Option<Kind>) {
    let minute = now.div_euclid(MINUTE_NS);
    let Some(old) = stored else {
        let g = ErrorGroup {
            app: d.app.clone(),
            service: d.service.clone(),
            fingerprint: d.fingerprint.clone(),
            template: d.template.clone(),
            version: o.version,
            level: d.level,
            count: d.count,
            first_seen: d.first_seen,
            last_seen: d.last_seen,
            samples: d.samples.iter().take(o.samples.max(1)).cloned().collect(),
            hosts: d.hosts.clone(),
            more_hosts: false,
            minute,
            minute_count: d.count,
            baseline_per_minute: 0.0,
            last_spike_notice: 0,
            hours: d.hours.clone(),
        };
        return (g, Some(Kind::NewGroup));
    };
    let mut g = old.clone();
    let regressed = d.first_seen.saturating_sub(old.last_seen) > o.quiet_period_ns;
    g.count = g.count.saturating_add(d.count);
    g.level = g.level.max(d.level);
    g.first_seen = g.first_seen.min(d.first_seen);
    g.last_seen = g.last_seen.max(d.last_seen);
    for s in &d.samples {
        push_sample(&mut g.samples, s.clone(), o.samples);
    }
    for h in &d.hosts {
        push_host(&mut g.hosts, &mut g.more_hosts, h);
    }
    for (hour, n) in &d.hours {
        sluice_core::aggregates::add_hour(&mut g.hours, *hour, *n);
    }
    roll_minutes(&mut g, minute);
    g.minute_count = g.minute_count.saturating_add(d.count);
    let old_enough = minute - g.first_seen.div_euclid(MINUTE_NS) >= SPIKE_WARMUP_MINUTES;
    let spiking = old_enough
        && g.minute_count >= o.spike_min_count
        && g.minute_count as f64 > o.spike_factor * g.baseline_per_minute.max(1.0)
        && now - g.last_spike_notice >= SPIKE_NOTICE_GAP_NS;
    let kind = if regressed {
        Some(Kind::Regressed)
    } else if spiking {
        g.last_spike_notice = now;
        Some(Kind::Spike)
    } else {
        None
    };
    (g, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Record;
    use std::collections::BTreeMap;

    fn rec(ts: i64, host: &str, msg: &str) -> Record {
        Record {
            id: format!("id{ts}"),
            ts,
            app: "shop".into(),
            service: "checkout".into(),
            host: host.into(),
            level: Level::Error,
            msg: msg.into(),
            attrs: BTreeMap::from([("request_id".to_string(), format!("req-{ts}"))]),
            source: String::new(),
        }
    }

    fn opts() -> MergeOptions {
        MergeOptions {
            quiet_period_ns: 3600 * NS,
            spike_factor: 10.0,
            spike_min_count: 50,
            samples: 3,
            version: 1,
        }
    }

    fn delta(ts: i64, n: u64) -> Delta {
        let mut d = Delta::new(
            "shop",
            "checkout",
            "00ff".into(),
            "t <num>".into(),
            &(&rec(ts, "h0", "t 1")).into(),
        );
        for i in 1..n {
            let r = rec(ts, &format!("h{}", i % 40), "t 2");
            d.add(&(&r).into(), 3);
        }
        d
    }

    #[test]
    fn occurrences_are_counted_per_hour_of_their_time_for_two_days() {
        let hour = 3600 * NS;
        let (mut g, _) = merge(None, &delta(5 * hour, 3), &opts(), 5 * hour);
        let mut late = delta(7 * hour + 10, 2);
        late.add(&(&rec(4 * hour, "h1", "t 3")).into(), 3);
        (g, _) = merge(Some(&g), &late, &opts(), 7 * hour);
        assert_eq!(g.hours, vec![(4, 1), (5, 3), (7, 2)]);
        for h in 8..100 {
            (g, _) = merge(Some(&g), &delta(h * hour, 1), &opts(), h * hour);
        }
        assert_eq!(g.hours.len(), sluice_core::aggregates::GROUP_HOURS);
        assert_eq!(g.hours.first(), Some(&(52, 1)));
        assert_eq!(g.hours.last(), Some(&(99, 1)));
        assert_eq!(g.count, 3 + 3 + 92);
    }

    #[test]
    fn new_then_counted_then_regressed() {
        let (g, kind) = merge(None, &delta(100 * NS, 5), &opts(), 100 * NS);
        assert_eq!(kind, Some(Kind::NewGroup));
        assert_eq!(
            (g.count, g.first_seen, g.last_seen),
            (5, 100 * NS, 100 * NS)
        );
        assert_eq!(g.samples[0].request_id.as_deref(), Some("req-100000000000"));
        let (g, kind) = merge(Some(&g), &delta(200 * NS, 2), &opts(), 200 * NS);
        assert_eq!((kind, g.count), (None, 7));
        let later = 200 * NS + 3601 * NS;
        let (g, kind) = merge(Some(&g), &delta(later, 1), &opts(), later);
        assert_eq!(
            (kind, g.count, g.last_seen),
            (Some(Kind::Regressed), 8, later)
        );
    }

    #[test]
    fn samples_and_hosts_stay_bounded() {
        let d = delta(NS, 1000);
        assert!(d.samples.len() <= 3);
        assert_eq!(d.hosts.len(), MAX_HOSTS);
        let (mut g, _) = merge(None, &d, &opts(), NS);
        for i in 0..50 {
            let mut more = delta(NS + i, 1);
            more.hosts = vec![format!("other{i}")];
            g = merge(Some(&g), &more, &opts(), NS + i).0;
        }
        assert_eq!(g.hosts.len(), MAX_HOSTS);
        assert!(g.more_hosts);
        assert_eq!(g.samples.len(), 3);
        assert_eq!(g.samples[2].ts, NS + 49, "the last sample is the latest");
    }

    #[test]
    fn a_spike_needs_history_volume_and_factor_and_is_told_once_an_hour() {
        let o = opts();
        let t0 = 1_000 * MINUTE_NS;
        let (mut g, _) = merge(None, &delta(t0, 5), &o, t0);
        // Twenty minutes at 5 a minute.
        for m in 1..20 {
            let t = t0 + m * MINUTE_NS;
            let (next, kind) = merge(Some(&g), &delta(t, 5), &o, t);
            assert_eq!(kind, None, "minute {m}");
            g = next;
        }
        assert!(g.baseline_per_minute > 3.0, "{}", g.baseline_per_minute);
        // 40 in a minute: over 10× the baseline but under spike_min_count.
        let t = t0 + 20 * MINUTE_NS;
        let (g2, kind) = merge(Some(&g), &delta(t, 40), &o, t);
        assert_eq!(kind, None);
        // 30 more in the same minute: 70 ≥ 50 and > 10 × ~5.
        let (g3, kind) = merge(Some(&g2), &delta(t + NS, 30), &o, t + NS);
        assert_eq!(kind, Some(Kind::Spike));
        let (_, kind) = merge(Some(&g3), &delta(t + 2 * NS, 100), &o, t + 2 * NS);
        assert_eq!(kind, None, "one spike notice an hour");
        // A young group cannot spike.
        let (young, _) = merge(None, &delta(t0, 1), &o, t0);
        let (_, kind) = merge(Some(&young), &delta(t0 + NS, 500), &o, t0 + NS);
        assert_eq!(kind, None);
    }

    #[test]
    fn deltas_put_back_merge_with_newer_ones() {
        let mut g = Grouper::new(3);
        for i in 0..4 {
            g.add(&(&rec(i, &format!("h{}", i % 2), "payment 1 declined")).into());
        }
        let failed = g.take();
        for i in 10..12 {
            g.add(&(&rec(i, "h1", "payment 2 declined")).into());
        }
        g.put_back(failed);
        let d = g.take();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].count, d[0].first_seen, d[0].last_seen), (6, 0, 11));
        assert_eq!(d[0].hosts, ["h1", "h0"], "no host twice");
        assert_eq!(d[0].samples.len(), 3);
        assert_eq!(d[0].samples[2].ts, 11, "the latest sample is kept");
    }

    #[test]
    fn a_long_gap_decays_the_baseline() {
        let o = opts();
        let (mut g, _) = merge(None, &delta(0, 100), &o, 0);
        g.baseline_per_minute = 100.0;
        roll_minutes(&mut g, 10_000);
        assert!(g.baseline_per_minute < 1e-3);
        assert_eq!((g.minute, g.minute_count), (10_000, 0));
    }
}

/// Hashes a fingerprint by itself: it is already a well-mixed 64-bit hash.
#[derive(Default)]
struct FingerprintHasher(u64);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByFingerprint =
    std::collections::HashMap<u64, Delta, std::hash::BuildHasherDefault<FingerprintHasher>>;

/// Gathers occurrences into [`Delta`]s by group between two writes: the
/// aggregator's per-record work (template, fingerprint, then count). Groups
/// are told apart by their 64-bit fingerprint, as in storage.
#[derive(Default)]
pub struct Grouper {
    deltas: ByFingerprint,
    template: String,
    max_samples: usize,
}

impl std::fmt::Debug for Grouper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grouper")
            .field("groups", &self.deltas.len())
            .finish()
    }
}

impl Grouper {
    /// A grouper keeping `max_samples` samples per delta.
    pub fn new(max_samples: usize) -> Grouper {
        Grouper {
            max_samples: max_samples.max(1),
            ..Default::default()
        }
    }

    /// Adds one error record. App and service are made valid names first
    /// (they are already, unless a publisher bypassed the agent).
    pub fn add(&mut self, r: &RecordView<'_>) {
        let app = sluice_core::names::normalize(r.app);
        let service = sluice_core::names::normalize(r.service);
        crate::fingerprint::template_into(r.msg, &mut self.template);
        let fp = crate::fingerprint::fingerprint(&app, &service, &self.template);
        match self.deltas.get_mut(&fp) {
            Some(d) => d.add(r, self.max_samples),
            None => {
                let d = Delta::new(
                    &app,
                    &service,
                    format!("{fp:016x}"),
                    self.template.clone(),
                    r,
                );
                self.deltas.insert(fp, d);
            }
        }
    }

    /// Groups with occurrences gathered.
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Takes the deltas, leaving the grouper empty.
    pub fn take(&mut self) -> Vec<Delta> {
        self.deltas.drain().map(|(_, d)| d).collect()
    }

    /// Puts back deltas that could not be written, merged with what
    /// arrived meanwhile.
    pub fn put_back(&mut self, deltas: Vec<Delta>) {
        for d in deltas {
            let Ok(fp) = u64::from_str_radix(&d.fingerprint, 16) else {
                continue;
            };
            match self.deltas.get_mut(&fp) {
                Some(newer) => newer.absorb(d, self.max_samples),
                None => {
                    self.deltas.insert(fp, d);
                }
            }
        }
    }
}
