//! The error aggregator: groups error messages by fingerprint, tells each
//! app's owner about new, regressed and spiking groups, and keeps per-hour
//! counts of every record.
//!
//! ```text
//!  LOGS ─ durable "aggregator-error" (logs.*.error) ─┐
//!       ─ durable "aggregator-fatal" (logs.*.fatal) ─┴─> Grouper ─ every second ─> KV sluice_error_groups
//!                                                   (fingerprint, deltas)        (compare-and-set merge)
//!                                                                                   │ new / regressed / spike
//!                                                                                   v
//!                                                                    SLUICE_OUTBOX ─> owner's receiver
//!  LOGS ─ durable "aggregator-counts" (logs.>) ─> Tally ─ every 2 s ─> KV sluice_counts (<app>.<YYYYMMDDHH>)
//! ```
//!
//! * Messages are acknowledged only after what they contributed is written
//!   to KV: a crash loses nothing (JetStream redelivers). The price is that
//!   a crash between the write and the acknowledgement counts that second's
//!   occurrences twice; groups and counts are statistics, and the records
//!   themselves are never duplicated.
//! * Several aggregators can share the durable consumers: every write is a
//!   compare-and-set merge, and a notification is published with an id
//!   made of the group key and the revision it was decided on, so two
//!   instances deciding the same thing store one notification.
//! * The subject names the app: a message whose records claim another app
//!   or level than its subject, or whose subject or payload is invalid, is
//!   neither grouped nor counted; the counts consumer (which reads every
//!   subject) sets it aside on the dead-letter stream as
//!   `sluice.deadletter.aggregator` and counts it by reason
//!   (`sluice_core::subject`).
//! * Memory is bounded: deltas are written once [`AggregatorConfig::max_groups`]
//!   groups are pending, and the cache of known groups evicts the least
//!   recently used beyond the same cap (counted in `groups_evicted`).
//!
//! Two consumers for errors rather than one with two filters: servers older
//! than 2.10 allow one filter subject per consumer.
//!
//! [`AggregatorConfig::max_groups`]: sluice_core::config::AggregatorConfig::max_groups

pub mod counts;
pub mod fingerprint;
pub mod groups;
pub mod metrics;
pub mod read;

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, kv};
use futures::StreamExt;
use lru::LruCache;
use prometheus_client::registry::Registry;
use sluice_core::config::{AggregatorConfig, Config};
use sluice_core::deadletter;
use sluice_core::kv::{self as cas, CasError, Current, Decision};
use sluice_core::record::now_nanos;
use sluice_core::role::{Heartbeat, Role, RoleError, RoleSpec};
use sluice_core::subject::decode_views_checked;
use sluice_core::time::NS_PER_HOUR;
use sluice_notify::notification::{Kind, Notification, search_link, truncate_bytes};
use sluice_notify::{Deliverer, outbox};

use crate::counts::{Tally, empty_hour, hour_key};
use crate::groups::{Delta, ErrorGroup, Grouper, MergeOptions, merge};
use crate::metrics::AggregatorMetrics;

pub use crate::read::Reader;

/// This role's name on the dead-letter stream.
pub const ROLE: &str = "aggregator";
pub use sluice_core::aggregates::{COUNTS_BUCKET, GROUPS_BUCKET};
/// Durable consumers: errors, fatals, everything (counts).
pub const CONSUMERS: [(&str, &str); 3] = [
    ("aggregator-error", "logs.*.error"),
    ("aggregator-fatal", "logs.*.fatal"),
    ("aggregator-counts", "logs.>"),
];
const GROUP_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
const COUNTS_MAX_AGE: Duration = Duration::from_secs(400 * 24 * 3600);
const ACK_WAIT: Duration = Duration::from_secs(60);
/// Messages held unacknowledged at most before a write is forced (besides
/// the write every second).
pub const MAX_HELD: usize = 5_000;

/// Why the aggregator could not start.
pub type AggregatorError = RoleError;

type Consumer = jetstream::consumer::Consumer<pull::Config>;

async fn setup(
    js: &jetstream::Context,
    config: &Config,
) -> Result<(Vec<Consumer>, kv::Store, kv::Store, kv::Store), String> {
    let stream = sluice_core::nats::ensure_consumer_streams(js, &config.nats)
        .await
        .map_err(|e| e.to_string())?;
    let claims = outbox::ensure(js, &config.nats).await?;
    let replicas = config.nats.replicas;
    let groups = sluice_core::nats::ensure_kv(js, GROUPS_BUCKET, GROUP_MAX_AGE, replicas)
        .await
        .map_err(|e| e.to_string())?;
    let counts = sluice_core::nats::ensure_kv(js, COUNTS_BUCKET, COUNTS_MAX_AGE, replicas)
        .await
        .map_err(|e| e.to_string())?;
    let mut consumers = Vec::new();
    for (name, filter) in CONSUMERS {
        let consumer =
            sluice_core::nats::durable_consumer(&stream, name, filter.into(), ACK_WAIT, 20_000)
                .await
                .map_err(|e| e.to_string())?;
        consumers.push(consumer);
    }
    Ok((consumers, groups, counts, claims))
}

/// The role's configuration check: its receivers can be built.
pub use sluice_notify::validate;

/// Runs the aggregator until `shutdown` completes, then writes what it
/// holds and acknowledges it.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AggregatorError> {
    let acfg = config.aggregator.clone();
    let deliverer = Deliverer::from_config(&config).map_err(RoleError::Config)?;
    let mut registry = Registry::default();
    let metrics = AggregatorMetrics::register(&mut registry);
    let spec = RoleSpec::tier(ROLE, acfg.id.as_deref(), acfg.admin.listen);
    let role = Role::start(spec, registry, shutdown).await?;
    let js = role.jetstream(&config.nats).await?;
    let ready = role
        .until_ready("the streams, consumers and buckets", || setup(&js, &config))
        .await;
    let Some((consumers, groups_kv, counts_kv, claims)) = ready else {
        role.finish().await;
        return Ok(());
    };
    outbox::spawn_delivery(&role, &js, claims, deliverer, &metrics.delivery);
    let mut consumers = consumers.into_iter();
    let (Some(error_c), Some(fatal_c), Some(counts_c)) =
        (consumers.next(), consumers.next(), consumers.next())
    else {
        role.finish().await;
        return Err(RoleError::Nats("consumers missing".into()));
    };
    let errors = ErrorWriter {
        js: js.clone(),
        kv: groups_kv,
        metrics: metrics.clone(),
        config: acfg.clone(),
        cache: Cache::new(acfg.max_groups),
        heartbeat: role.heartbeat("writing error groups", acfg.admin.stall_secs),
    };
    role.spawn(errors.run(vec![error_c, fatal_c], role.stopping()));
    let counts = CountWriter {
        js: js.clone(),
        kv: counts_kv,
        metrics: metrics.clone(),
    };
    role.spawn(counts.run(counts_c, role.stopping()));
    role.set_ready();
    role.stopping().await;
    role.finish().await;
    Ok(())
}

/// Messages from several consumers as one stream, reopened on errors.
async fn pull_batch(
    streams: &mut [Option<pull::Stream>],
    consumers: &[Consumer],
    wait: Duration,
    max: usize,
) -> Vec<jetstream::Message> {
    let mut out = Vec::new();
    for (slot, consumer) in streams.iter_mut().zip(consumers) {
        if slot.is_none() {
            *slot = consumer.messages().await.ok();
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    'outer: while out.len() < max {
        let mut any = false;
        for slot in streams.iter_mut() {
            let Some(stream) = slot else { continue };
            // Take what is ready without waiting.
            loop {
                match futures::FutureExt::now_or_never(stream.next()) {
                    Some(Some(Ok(m))) => {
                        out.push(m);
                        any = true;
                        if out.len() >= max {
                            break 'outer;
                        }
                    }
                    Some(Some(Err(err))) => {
                        tracing::debug!(error = %err, "pull interrupted, reopening");
                        *slot = None;
                        break;
                    }
                    Some(None) => {
                        *slot = None;
                        break;
                    }
                    None => break,
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        if !any {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// Known groups as this instance last wrote them, least recently used
/// evicted.
struct Cache(LruCache<String, Current>);

impl Cache {
    fn new(cap: usize) -> Cache {
        Cache(LruCache::new(
            NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
        ))
    }

    fn take(&mut self, key: &str) -> Option<Current> {
        self.0.pop(key)
    }

    /// Inserts, evicting the least recently used group when full; returns
    /// how many were evicted (0 or 1).
    fn insert(&mut self, key: String, group: Current) -> usize {
        match self.0.push(key, group) {
            // `push` also hands back the value it replaced under the same key.
            Some((old, _)) if !self.0.contains(&old) => 1,
            _ => 0,
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

struct ErrorWriter {
    js: jetstream::Context,
    kv: kv::Store,
    metrics: AggregatorMetrics,
    config: AggregatorConfig,
    cache: Cache,
    heartbeat: Heartbeat,
}

impl ErrorWriter {
    async fn run(
        mut self,
        consumers: Vec<Consumer>,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        let mut stop = Stop::new(stop);
        let mut streams: Vec<Option<pull::Stream>> = consumers.iter().map(|_| None).collect();
        let mut grouper = Grouper::new(self.config.samples);
        let mut held = Held::default();
        let mut last_write = Instant::now();
        loop {
            let stopping = stop.stopping();
            if !stopping {
                let batch =
                    pull_batch(&mut streams, &consumers, Duration::from_millis(200), 1_000).await;
                for msg in batch {
                    match decode_views_checked(&msg.subject, &msg.payload) {
                        Ok(records) => {
                            self.metrics.errors_in.inc_by(records.len() as u64);
                            for r in &records {
                                grouper.add(r);
                            }
                        }
                        Err(misfiled) => {
                            // Not grouped. The counts consumer reads every
                            // subject, so it sets the message aside and
                            // counts it, once per aggregator.
                            tracing::debug!(subject = %msg.subject, reason = %misfiled, "message not grouped");
                        }
                    }
                    held.push(msg);
                }
            }
            let due = last_write.elapsed() >= Duration::from_secs(1)
                || grouper.len() >= self.config.max_groups
                || held.len() >= MAX_HELD
                || stopping;
            if !due {
                continue;
            }
            last_write = Instant::now();
            if grouper.is_empty() {
                self.heartbeat.beat();
                held.ack_all().await;
            } else {
                let started = Instant::now();
                let failed = self.write(grouper.take()).await;
                self.metrics
                    .flush_seconds
                    .observe(started.elapsed().as_secs_f64());
                if failed.is_empty() {
                    self.heartbeat.beat();
                    held.ack_all().await;
                } else {
                    // Kept for the next write; their messages stay held.
                    grouper.put_back(failed);
                    held.progress().await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            if stopping && (grouper.is_empty() || stop.gave_up()) {
                break;
            }
        }
    }

    /// Writes the deltas, a few at a time; returns the ones that failed.
    async fn write(&mut self, deltas: Vec<Delta>) -> Vec<Delta> {
        let now = now_nanos();
        let opts = MergeOptions {
            quiet_period_ns: sluice_core::time::secs_to_ns(self.config.quiet_period_secs),
            spike_factor: self.config.spike_factor,
            spike_min_count: self.config.spike_min_count,
            samples: self.config.samples,
            version: fingerprint::NORMALIZATION_VERSION,
        };
        let mut inputs = Vec::with_capacity(deltas.len());
        for d in deltas {
            let cached = self.cache.take(&d.key());
            let receiver = self.receiver_of(&d.app);
            inputs.push((d, cached, receiver));
        }
        let (js, bucket, metrics) = (&self.js, &self.kv, &self.metrics);
        let query_url = self.config.query_url.as_deref();
        let jobs: Vec<_> = inputs
            .into_iter()
            .map(|(d, cached, receiver)| {
                write_group(
                    js, bucket, metrics, query_url, d, cached, receiver, opts, now,
                )
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(32)
            .collect()
            .await;
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok((key, group)) => {
                    let evicted = self.cache.insert(key, group);
                    self.metrics.groups_evicted.inc_by(evicted as u64);
                }
                Err((d, err)) => {
                    tracing::warn!(group = %d.key(), error = %err, "cannot write an error group yet");
                    failed.push(d);
                }
            }
        }
        self.metrics.groups_cached.set(self.cache.len() as i64);
        failed
    }

    fn receiver_of(&self, app: &str) -> Option<String> {
        self.config
            .owners
            .iter()
            .find(|o| o.app.as_str() == app)
            .map(|o| o.receiver.clone())
            .or_else(|| self.config.default_receiver.clone())
    }
}

/// The acknowledgement handles of messages whose contribution is not
/// written yet (the payloads are dropped once decoded).
#[derive(Default)]
struct Held(Vec<jetstream::message::Acker>);

impl Held {
    fn push(&mut self, msg: jetstream::Message) {
        self.0.push(msg.split().1);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Acknowledges them all: their contribution is written.
    async fn ack_all(&mut self) {
        let acks = self.0.drain(..).map(|a| async move {
            if let Err(err) = a.ack().await {
                tracing::debug!(error = %err, "ack failed; the message will be redelivered");
            }
        });
        futures::future::join_all(acks).await;
    }

    /// Keeps them from being redelivered while a write is retried.
    async fn progress(&self) {
        let progress = self
            .0
            .iter()
            .map(|a| a.ack_with(jetstream::AckKind::Progress));
        futures::future::join_all(progress).await;
    }
}

/// A shutdown signal polled between batches: stays set once seen, and
/// gives up on unwritten data 30 s after it.
struct Stop<F> {
    signal: std::pin::Pin<Box<F>>,
    since: Option<Instant>,
}

impl<F: std::future::Future<Output = ()>> Stop<F> {
    fn new(signal: F) -> Stop<F> {
        Stop {
            signal: Box::pin(signal),
            since: None,
        }
    }

    fn stopping(&mut self) -> bool {
        if self.since.is_none() && futures::FutureExt::now_or_never(self.signal.as_mut()).is_some()
        {
            self.since = Some(Instant::now());
        }
        self.since.is_some()
    }

    /// Whether the grace period for writing what is held is over (the
    /// messages stay unacknowledged and are redelivered to the next run).
    fn gave_up(&self) -> bool {
        self.since
            .is_some_and(|t| t.elapsed() > Duration::from_secs(30))
    }
}

/// The notification telling an owner about a group.
pub fn group_notification(
    g: &ErrorGroup,
    kind: Kind,
    id: String,
    receiver: String,
    query_url: Option<&str>,
    now: i64,
) -> Notification {
    let short = truncate_bytes(&g.template, 120);
    let title = match kind {
        Kind::Regressed => format!("error is back in {}/{}: {short}", g.app, g.service),
        Kind::Spike => format!(
            "error spiking in {}/{}: {}/min, usually {:.0}: {short}",
            g.app, g.service, g.minute_count, g.baseline_per_minute
        ),
        _ => format!("new error in {}/{}: {short}", g.app, g.service),
    };
    let link = query_url.map(|base| {
        search_link(
            base,
            &g.app,
            Some(&g.service),
            g.level,
            g.first_seen.min(now - NS_PER_HOUR),
            now,
        )
    });
    Notification {
        id,
        receiver,
        kind,
        title,
        source: "aggregator".into(),
        rule: None,
        app: g.app.clone(),
        service: Some(g.service.clone()),
        level: Some(g.level),
        count: if kind == Kind::Spike {
            g.minute_count
        } else {
            g.count
        },
        window_secs: (kind == Kind::Spike).then_some(60),
        labels: Default::default(),
        fingerprint: Some(g.fingerprint.clone()),
        template: Some(g.template.clone()),
        samples: g.samples.clone(),
        first_seen: g.first_seen,
        last_seen: g.last_seen,
        link,
        created: now,
    }
}

/// Merges one delta into its group by compare-and-set, publishing the
/// owner's notification first when the merge calls for one.
/// Merges `d` into its stored group by compare-and-set, deciding and
/// publishing a notification on the state it merges into, at most 10
/// attempts. `cached` is the group as this instance last wrote it; a
/// notification is never decided on it (another instance may have moved
/// the group on since), only on what is read.
#[allow(clippy::too_many_arguments)]
async fn write_group(
    js: &jetstream::Context,
    bucket: &kv::Store,
    metrics: &AggregatorMetrics,
    query_url: Option<&str>,
    d: Delta,
    cached: Option<Current>,
    receiver: Option<String>,
    opts: MergeOptions,
    now: i64,
) -> Result<(String, Current), (Delta, String)> {
    let key = d.key();
    let mut from_cache = cached.is_some();
    let (delta, owner, group_key, opts) = (&d, &receiver, &key, &opts);
    let decide = move |current: Current| {
        let from_cache = std::mem::take(&mut from_cache);
        async move {
            let stored = current
                .value()
                .and_then(|v| serde_json::from_slice::<ErrorGroup>(v).ok());
            let (group, kind) = merge(stored.as_ref(), delta, opts, now);
            if kind.is_some() && from_cache {
                return Decision::Reread;
            }
            if let Some(kind) = kind {
                match owner {
                    Some(receiver) => {
                        let n = group_notification(
                            &group,
                            kind,
                            format!("{group_key}-{}", current.revision()),
                            receiver.clone(),
                            query_url,
                            now,
                        );
                        if let Err(err) = outbox::publish(js, &n).await {
                            return Decision::Done(Err(err));
                        }
                    }
                    None => {
                        metrics.unowned.inc();
                    }
                }
            }
            match serde_json::to_vec(&group) {
                Ok(v) => {
                    let value = bytes::Bytes::from(v);
                    Decision::Write {
                        value: value.clone(),
                        outcome: Ok((kind, value)),
                    }
                }
                Err(err) => Decision::Done(Err(err.to_string())),
            }
        }
    };
    let updated = match cas::update_async(bucket, &key, 10, cached, decide).await {
        Ok(updated) => updated,
        Err(err) => {
            if let CasError::Conflict { times } = err {
                // Changed by another instance (or the cache was stale).
                metrics.write_conflicts.inc_by(u64::from(times));
            }
            return Err((d, err.to_string()));
        }
    };
    metrics.write_conflicts.inc_by(u64::from(updated.conflicts));
    let (kind, value) = match updated.outcome {
        Ok(written) => written,
        Err(err) => return Err((d, err)),
    };
    let Some(revision) = updated.revision else {
        return Err((d, "the group was not written".into()));
    };
    metrics.group_writes.inc();
    if let Some(kind) = kind {
        metrics.notifications.inc();
        if receiver.is_some() {
            metrics.delivery.published(kind.as_str());
        }
        if kind == Kind::NewGroup {
            metrics.groups_new.inc();
        }
    }
    Ok((key, Current::Value { revision, value }))
}

struct CountWriter {
    js: jetstream::Context,
    kv: kv::Store,
    metrics: AggregatorMetrics,
}

impl CountWriter {
    async fn run(self, consumer: Consumer, stop: impl std::future::Future<Output = ()> + Send) {
        let mut stop = Stop::new(stop);
        let consumers = [consumer];
        let mut streams = vec![None];
        let mut tally = Tally::default();
        let mut held = Held::default();
        let mut last_write = Instant::now();
        loop {
            let stopping = stop.stopping();
            if !stopping {
                for msg in
                    pull_batch(&mut streams, &consumers, Duration::from_millis(200), 2_000).await
                {
                    match decode_views_checked(&msg.subject, &msg.payload) {
                        Ok(records) => {
                            for r in &records {
                                tally.add(r.app, r.service, r.level, r.ts);
                            }
                        }
                        Err(misfiled) => {
                            let counts = &self.metrics.dead_letters;
                            if !deadletter::set_aside(&self.js, ROLE, &msg, &misfiled, counts).await
                            {
                                continue;
                            }
                        }
                    }
                    held.push(msg);
                }
            }
            let due = last_write.elapsed() >= Duration::from_secs(2)
                || tally.cells() >= 10_000
                || held.len() >= MAX_HELD
                || stopping;
            if !due {
                continue;
            }
            last_write = Instant::now();
            let records = tally.records();
            let cells = tally.take();
            let mut failed = Vec::new();
            let writes: Vec<_> = cells
                .into_iter()
                .map(|cell| async {
                    let r = add_counts(&self.kv, &cell.0.0, cell.0.1, &cell.1).await;
                    (cell, r)
                })
                .collect();
            let results: Vec<_> = futures::stream::iter(writes)
                .buffer_unordered(16)
                .collect()
                .await;
            for (cell, r) in results {
                if let Err(err) = r {
                    tracing::warn!(app = %cell.0.0, error = %err, "cannot write hourly counts yet");
                    failed.push(cell);
                }
            }
            if failed.is_empty() {
                self.metrics.records_counted.inc_by(records);
                held.ack_all().await;
            } else {
                held.progress().await;
                for ((app, hour), services) in failed {
                    for (service, levels) in services {
                        for (level, n) in levels {
                            tally.add_n(&app, &service, level, hour * NS_PER_HOUR, n);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if stopping && (tally.cells() == 0 || stop.gave_up()) {
                break;
            }
        }
    }
}

/// Adds `add` to `app`'s stored counts of `hour` by compare-and-set, at
/// most 20 attempts.
async fn add_counts(
    bucket: &kv::Store,
    app: &str,
    hour: i64,
    add: &counts::ServiceCounts,
) -> Result<(), String> {
    let key = hour_key(app, hour);
    let updated = cas::update(bucket, &key, 20, |current| {
        match added_counts(current, app, hour, add) {
            Ok(value) => Decision::Write {
                value,
                outcome: Ok(()),
            },
            Err(err) => Decision::Done(Err(err)),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    updated.outcome
}

/// The stored counts of `app`'s `hour` (a value that does not parse counts
/// as none) plus `add`, as they are stored.
fn added_counts(
    current: &Current,
    app: &str,
    hour: i64,
    add: &counts::ServiceCounts,
) -> Result<bytes::Bytes, String> {
    let mut stored: counts::HourCounts = current
        .value()
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or_else(|| empty_hour(app, hour));
    stored.add(add);
    serde_json::to_vec(&stored)
        .map(bytes::Bytes::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Level;

    fn counts(service: &str, level: Level, n: u64) -> counts::ServiceCounts {
        [(service.to_string(), [(level, n)].into())].into()
    }

    fn stored(value: &[u8]) -> counts::HourCounts {
        serde_json::from_slice(value).unwrap()
    }

    #[test]
    fn counts_add_to_what_is_stored() {
        let first = added_counts(&Current::Absent, "shop", 7, &counts("web", Level::Error, 2));
        let first = first.unwrap();
        let mut want = empty_hour("shop", 7);
        want.add(&counts("web", Level::Error, 2));
        assert_eq!(stored(&first), want);

        let current = Current::Value {
            revision: 3,
            value: first,
        };
        let second = added_counts(&current, "shop", 7, &counts("web", Level::Error, 5)).unwrap();
        assert_eq!(stored(&second).counts["web"][&Level::Error], 7);
    }

    #[test]
    fn deleted_or_unreadable_counts_start_again() {
        let add = counts("web", Level::Warn, 1);
        let mut want = empty_hour("shop", 7);
        want.add(&add);
        for current in [
            Current::Deleted { revision: 4 },
            Current::Value {
                revision: 4,
                value: bytes::Bytes::from_static(b"not json"),
            },
        ] {
            let value = added_counts(&current, "shop", 7, &add).unwrap();
            assert_eq!(stored(&value), want, "{current:?}");
        }
    }

    #[test]
    fn the_cache_evicts_the_least_recently_written_group() {
        let group = |revision| Current::Deleted { revision };
        let mut cache = Cache::new(2);
        assert_eq!(cache.insert("a".into(), group(1)), 0);
        assert_eq!(cache.insert("b".into(), group(2)), 0);
        // Written again (taken, then put back): now the most recent.
        let a = cache.take("a").unwrap();
        assert_eq!(cache.insert("a".into(), a), 0);
        assert_eq!(cache.insert("c".into(), group(3)), 1);
        assert_eq!(cache.len(), 2);
        assert!(cache.take("b").is_none(), "b was the least recent");
        assert!(matches!(
            cache.take("a"),
            Some(Current::Deleted { revision: 1 })
        ));
        // Replacing a group under its key evicts nothing.
        assert_eq!(cache.insert("c".into(), group(4)), 0);
        assert!(matches!(
            cache.take("c"),
            Some(Current::Deleted { revision: 4 })
        ));
        assert_eq!(cache.len(), 0);
        // A cap of zero holds one group.
        let mut cache = Cache::new(0);
        assert_eq!(cache.insert("a".into(), group(1)), 0);
        assert_eq!(cache.insert("b".into(), group(2)), 1);
    }
}
