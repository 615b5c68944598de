//! The alerter: evaluates `[[alerter.rules]]` over the `LOGS` stream and
//! delivers notifications to Slack, webhooks or the log through a JetStream
//! outbox. The aggregator uses the same notification model and outbox.
//!
//! ```text
//!  LOGS ─ ordered consumer ─> rules::Engine ── due ──> group state in KV (compare-and-set)
//!   (every instance reads        (matches, groups,          │ the winner publishes
//!    every record)                timers)                   v
//!                                           SLUICE_OUTBOX ─> outbox::deliver_loop ─> Deliverer ─> receivers
//! ```
//!
//! * Every instance reads the whole stream (an ordered consumer, not a
//!   shared durable one): a threshold can only be counted by someone who
//!   sees every match. What must survive a restart is in KV: each alert
//!   group's last notification ([`rules::GroupState`], bucket
//!   [`GROUPS_BUCKET`]) and how far the alerters have read (key
//!   `checkpoint`, from which a restart re-reads the stream).
//! * A due notification is published with an id made of the group's key
//!   and the KV revision it was decided on, then the group's state is
//!   written with compare-and-set on that revision. Instances that decide
//!   the same thing at the same time publish the same id (stored once by
//!   the outbox's duplicate window) and only one write succeeds; the others
//!   adopt the stored state. So each group is notified once per decision,
//!   whatever the number of instances.
//! * The subject names the app: a message whose records claim another app
//!   or level than its subject, or whose subject or payload is invalid, is
//!   matched by no rule; it is set aside on the dead-letter stream as
//!   `sluice.deadletter.alerter` and counted by reason
//!   (`sluice_core::subject`).
//! * Silences (config and `sluice alerts silence`) hold back matching
//!   notifications; system alerts (consumer lag, records about to expire
//!   unprocessed, ingest spikes) are rules of their own addressed to
//!   `system_receiver`.

pub mod metrics;
pub mod rules;
pub mod silence;
pub mod system;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, kv};
use futures::StreamExt;
use prometheus_client::registry::Registry;
use sluice_core::config::Config;
use sluice_core::deadletter;
use sluice_core::kv::{self as cas, CasError};
use sluice_core::record::now_nanos;
use sluice_core::role::{Role, RoleError, RoleSpec};
use sluice_core::subject::{Misfiled, decode_views_checked};
use sluice_core::time::{NS_PER_SEC as NS, ns_to_secs_f64, secs_to_ns};
use sluice_notify::{Deliverer, Notification, outbox};

use crate::metrics::AlerterMetrics;
use crate::rules::{Due, Engine, GroupState, Rule};
use crate::silence::Silence;

/// This role's name on the dead-letter stream.
pub const ROLE: &str = "alerter";
/// KV bucket of alert group states.
pub const GROUPS_BUCKET: &str = "sluice_alerts";
/// Key (in [`GROUPS_BUCKET`]) of how far the alerters have read.
pub const CHECKPOINT_KEY: &str = "checkpoint";
/// How long an alert group's state is kept after its last change.
const GROUP_STATE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A notification another instance published but whose state nobody
/// stored is completed by this instance after this long.
const ORPHAN_AFTER_NS: i64 = 30 * NS;
/// Messages with matches remembered for the checkpoint, at most.
const MAX_MATCH_TIMES: usize = 1_000_000;

/// Why the alerter could not start.
pub type AlerterError = RoleError;

/// The KV key of an alert group (rule names and values may hold characters
/// keys cannot).
pub fn group_key(rule: &str, values: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in std::iter::once(rule).chain(values.iter().map(String::as_str)) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("g.{}", hex::encode(&h.finalize()[..16]))
}

/// The rules the engine runs: the configured ones, plus the system alerts
/// when a system receiver is set.
pub fn engine_rules(config: &Config) -> Vec<Rule> {
    let a = &config.alerter;
    let mut rules: Vec<Rule> = a.rules.iter().map(Rule::from_config).collect();
    if let Some(receiver) = &a.system_receiver {
        rules.push(Rule::condition(
            system::LAG_RULE,
            &["consumer"],
            receiver,
            a.max_lag_secs,
        ));
        // Its window is the age at which it fires.
        let expiry_after_secs =
            (a.unprocessed_expiry_warn_fraction * config.nats.max_age_secs as f64) as u64;
        rules.push(Rule::condition(
            system::EXPIRY_RULE,
            &["consumer"],
            receiver,
            expiry_after_secs,
        ));
        rules.push(Rule::condition(system::SPIKE_RULE, &["app"], receiver, 60));
    }
    rules
}

/// Opens the buckets the alerter and `sluice alerts` use: group states,
/// outbox claims, silences.
pub async fn open_buckets(
    js: &jetstream::Context,
    config: &Config,
) -> Result<(kv::Store, kv::Store, kv::Store), String> {
    let replicas = config.nats.replicas;
    let groups = sluice_core::nats::ensure_kv(js, GROUPS_BUCKET, GROUP_STATE_MAX_AGE, replicas)
        .await
        .map_err(|e| e.to_string())?;
    let claims = outbox::ensure(js, &config.nats).await?;
    let silences = sluice_core::nats::ensure_kv(js, silence::BUCKET, Duration::ZERO, replicas)
        .await
        .map_err(|e| e.to_string())?;
    Ok((groups, claims, silences))
}

/// The role's configuration check: its receivers can be built.
pub use sluice_notify::validate;

/// Runs the alerter until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AlerterError> {
    let acfg = config.alerter.clone();
    let deliverer = Deliverer::from_config(&config).map_err(RoleError::Config)?;
    let mut registry = Registry::default();
    let metrics = AlerterMetrics::register(&mut registry);
    let spec = RoleSpec::tier(ROLE, acfg.id.as_deref(), acfg.admin.listen);
    let role = Role::start(spec, registry, shutdown).await?;
    let js = role.jetstream(&config.nats).await?;
    let ready = role
        .until_ready("the streams and buckets", || async {
            sluice_core::nats::ensure_consumer_streams(&js, &config.nats)
                .await
                .map_err(|e| e.to_string())?;
            open_buckets(&js, &config).await
        })
        .await;
    let Some((groups_kv, claims, silences_kv)) = ready else {
        role.finish().await;
        return Ok(());
    };
    outbox::spawn_delivery(&role, &js, claims, deliverer, &metrics.delivery);
    let heartbeat = role.heartbeat("rule evaluation", acfg.admin.stall_secs);
    let instance = role.instance().to_string();

    let now = now_nanos();
    let mut engine = Engine::new(engine_rules(&config), acfg.max_groups, &instance, now);
    restore(&groups_kv, &mut engine, now).await;
    let file_silences: Vec<Silence> = acfg
        .silences
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Silence::from_config(s, i))
        .collect();
    metrics.silences_loaded.set(file_silences.len() as i64);
    let mut state = Loop {
        js: js.clone(),
        groups_kv,
        silences_kv,
        metrics: metrics.clone(),
        query_url: acfg.query_url.clone(),
        silences: file_silences.clone(),
        file_silences,
        spike: system::SpikeDetector::default(),
        minute_counts: HashMap::new(),
        minute: now / (60 * NS),
        ack_floors: HashMap::new(),
        read_until: 0,
        checkpointed: 0,
        match_times: std::collections::VecDeque::new(),
        unconfirmed: HashMap::new(),
        orphans: HashMap::new(),
        spike_factor: acfg.ingest_spike_factor,
        max_lag_ns: secs_to_ns(acfg.max_lag_secs),
        expiry_warn_fraction: acfg.unprocessed_expiry_warn_fraction,
        stream: config.nats.stream.clone(),
    };
    let start = state.start_time(&engine, acfg.max_replay_secs, now).await;
    tracing::info!(
        rules = engine.rules().len(),
        replay_from = %sluice_core::record::format_ts(start),
        "replaying the stream"
    );
    role.set_ready();
    let shutdown = role.stopping();
    tokio::pin!(shutdown);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seconds: u64 = 0;
    // After the first message, a reopened reader continues after the last
    // sequence read.
    let mut last_seq = 0u64;
    // Nothing is decided before the replay has caught up with the stream:
    // a restored alert would look resolved, an absence would look silent.
    let mut caught_up = false;
    let mut last_read = std::time::Instant::now();
    'run: loop {
        let messages = tokio::select! {
            m = sluice_core::nats::ordered_reader(&js, &config.nats.stream, start, last_seq) => m,
            _ = &mut shutdown => break 'run,
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the stream yet, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'run,
                    _ = &mut shutdown => break 'run,
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'run,
                _ = tick.tick() => {
                    seconds += 1;
                    let now = now_nanos();
                    heartbeat.beat();
                    if seconds.is_multiple_of(5) {
                        state.refresh_silences(now).await;
                        state.checkpoint(&engine).await;
                    }
                    if seconds.is_multiple_of(15) {
                        state.sample_consumers(&mut engine, now).await;
                    }
                    state.judge_minute(&mut engine, now);
                    if !caught_up && last_read.elapsed() > Duration::from_secs(2) {
                        // Nothing more to read: the stream is quiet.
                        caught_up = true;
                    }
                    if caught_up {
                        state.evaluate(&mut engine, now).await;
                    }
                    metrics.groups.set(engine.group_count() as i64);
                }
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        let (seq, misfiled) = state.observe(&mut engine, &msg);
                        if let Some(misfiled) = misfiled {
                            let counts = &metrics.dead_letters;
                            // Read by an ordered consumer, so never redelivered:
                            // the filterer's durable consumer keeps its copy.
                            let _ = deadletter::set_aside(&js, ROLE, &msg, &misfiled, counts).await;
                        }
                        last_seq = last_seq.max(seq);
                        last_read = std::time::Instant::now();
                        if msg.info().is_ok_and(|i| i.pending == 0) {
                            caught_up = true;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "stream read interrupted, reopening");
                        continue 'run;
                    }
                    None => continue 'run,
                },
            }
        }
    }
    state.checkpoint(&engine).await;
    role.finish().await;
    Ok(())
}

/// The alert groups firing now, by rule and values (what `sluice alerts`
/// and the query service show).
pub async fn firing(groups: &kv::Store) -> Result<Vec<GroupState>, String> {
    let mut keys = groups.keys().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        if !key.starts_with("g.") {
            continue;
        }
        if let Some(value) = groups.get(&key).await.map_err(|e| e.to_string())?
            && let Ok(state) = serde_json::from_slice::<GroupState>(&value)
            && state.firing
        {
            out.push(state);
        }
    }
    out.sort_by(|a, b| (&a.rule, &a.values).cmp(&(&b.rule, &b.values)));
    Ok(out)
}

/// Loads the firing alerts from KV, so one that clears while this instance
/// was away is still resolved.
async fn restore(groups: &kv::Store, engine: &mut Engine, now: i64) {
    let Ok(mut keys) = groups.keys().await else {
        return;
    };
    let mut restored = 0;
    while let Some(Ok(key)) = keys.next().await {
        if !key.starts_with("g.") {
            continue;
        }
        let Ok(Some(value)) = groups.get(&key).await else {
            continue;
        };
        if let Ok(state) = serde_json::from_slice::<GroupState>(&value)
            && state.firing
        {
            engine.apply(&state, now);
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(alerts = restored, "firing alerts restored");
    }
}

/// The main loop's state besides the engine.
struct Loop {
    js: jetstream::Context,
    groups_kv: kv::Store,
    silences_kv: kv::Store,
    metrics: AlerterMetrics,
    query_url: Option<String>,
    file_silences: Vec<Silence>,
    silences: Vec<Silence>,
    spike: system::SpikeDetector,
    minute_counts: HashMap<String, u64>,
    minute: i64,
    /// Per durable consumer: its ack floor and when it was first seen there.
    ack_floors: HashMap<String, (u64, i64)>,
    /// Publish time (ns) of the latest message read.
    read_until: i64,
    checkpointed: i64,
    /// (sequence, publish time) of messages that matched a rule, back to
    /// the oldest match not yet reported: a restart re-reads from there.
    match_times: std::collections::VecDeque<(u64, i64)>,
    /// Notifications this instance published whose state is not stored
    /// yet, by id, with the state they were published with.
    unconfirmed: HashMap<String, GroupState>,
    /// Ids another instance published without storing the state yet, with
    /// when this instance first saw that.
    orphans: HashMap<String, i64>,
    spike_factor: f64,
    max_lag_ns: i64,
    expiry_warn_fraction: f64,
    stream: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    /// Publish time of the latest message read, ns.
    read_until: i64,
}

impl Loop {
    /// Where reading starts: the alerters' checkpoint, or one rule window
    /// back, whichever is earlier, but no more than `max_replay_secs` ago.
    async fn start_time(&mut self, engine: &Engine, max_replay_secs: u64, now: i64) -> i64 {
        let window = engine
            .rules()
            .iter()
            .map(|r| r.window_ns)
            .max()
            .unwrap_or(0)
            .max(60 * NS);
        let checkpoint = match self.groups_kv.get(CHECKPOINT_KEY).await {
            Ok(Some(v)) => serde_json::from_slice::<Checkpoint>(&v)
                .ok()
                .map(|c| c.read_until),
            _ => None,
        };
        let floor = now - secs_to_ns(max_replay_secs);
        let from = checkpoint.map_or(now - window, |c| c.min(now - window));
        from.max(floor)
    }

    /// Checks one stream message's records; returns its stream sequence,
    /// and why it was not used when it was not.
    fn observe(
        &mut self,
        engine: &mut Engine,
        msg: &jetstream::Message,
    ) -> (u64, Option<Misfiled>) {
        let Ok(info) = msg.info() else {
            return (0, None);
        };
        let seq = info.stream_sequence;
        let published =
            (info.published.unix_timestamp_nanos()).clamp(0, i128::from(i64::MAX)) as i64;
        self.read_until = self.read_until.max(published);
        self.metrics.messages_in.inc();
        let now = now_nanos();
        self.metrics
            .processing_delay_seconds
            .set(ns_to_secs_f64((now - published).max(0)));
        let records = match decode_views_checked(&msg.subject, &msg.payload) {
            Ok(r) => r,
            Err(misfiled) => return (seq, Some(misfiled)),
        };
        let before = engine.stats;
        for r in &records {
            engine.observe(r, seq, now);
        }
        if let Some(first) = records.first()
            && (self.minute_counts.len() < system::MAX_APPS
                || self.minute_counts.contains_key(first.app))
        {
            // One app per message (the wire format batches by app).
            match self.minute_counts.get_mut(first.app) {
                Some(n) => *n += records.len() as u64,
                None => {
                    self.minute_counts
                        .insert(first.app.to_string(), records.len() as u64);
                }
            }
        }
        let after = engine.stats;
        if after.matches > before.matches && self.match_times.len() < MAX_MATCH_TIMES {
            self.match_times.push_back((seq, published));
        }
        self.metrics
            .records_in
            .inc_by(after.records - before.records);
        self.metrics.matches.inc_by(after.matches - before.matches);
        self.metrics
            .groups_refused
            .inc_by(after.groups_refused - before.groups_refused);
        (seq, None)
    }

    fn judge_minute(&mut self, engine: &mut Engine, now: i64) {
        let minute = now / (60 * NS);
        if minute == self.minute {
            return;
        }
        self.minute = minute;
        let counts = std::mem::take(&mut self.minute_counts);
        let Some(rule) = engine.rule_index(system::SPIKE_RULE) else {
            return;
        };
        for v in self.spike.minute(&counts, self.spike_factor) {
            let detail = format!(
                "{} records/min from app {}, usually {:.0}",
                v.count, v.app, v.baseline
            );
            engine.set_condition(rule, &[&v.app], v.spiking, v.count, &detail, now);
        }
    }

    /// Samples each durable consumer of the stream once, and judges from
    /// that sample both the lag alert and the logs-expiring alert.
    async fn sample_consumers(&mut self, engine: &mut Engine, now: i64) {
        let lag_rule = engine.rule_index(system::LAG_RULE);
        let expiry_rule = engine.rule_index(system::EXPIRY_RULE);
        if lag_rule.is_none() && expiry_rule.is_none() {
            return;
        }
        let Ok(stream) = self.js.get_stream(&self.stream).await else {
            return;
        };
        // From the info just read: what the stream really does, whoever set
        // it up.
        let max_age_secs = stream.cached_info().config.max_age.as_secs();
        let first_seq = stream.cached_info().state.first_sequence;
        let mut names = stream.consumer_names();
        let mut seen = Vec::new();
        while let Some(Ok(name)) = names.next().await {
            seen.push(name);
        }
        let mut alive = Vec::new();
        for name in seen {
            let Ok(mut consumer) = stream.get_consumer::<pull::Config>(&name).await else {
                continue;
            };
            let Ok(info) = consumer.info().await else {
                continue;
            };
            if info.config.durable_name.is_none() {
                continue;
            }
            let floor = info.ack_floor.stream_sequence;
            let since = match self.ack_floors.get(&name) {
                Some(&(f, t)) if f == floor => t,
                _ => {
                    let t = info
                        .ack_floor
                        .last_active
                        .map(|t| t.unix_timestamp_nanos().clamp(0, i128::from(now)) as i64)
                        .filter(|_| !self.ack_floors.contains_key(&name))
                        .unwrap_or(now);
                    self.ack_floors.insert(name.clone(), (floor, t));
                    t
                }
            };
            let reads_all = matches!(info.config.filter_subject.as_str(), "" | "logs.>");
            let oldest = if reads_all {
                // Messages below the stream's first have expired already:
                // the oldest the consumer still owes is the first left.
                match stream.get_raw_message((floor + 1).max(first_seq)).await {
                    Ok(m) => Some(ns_to_secs_f64(
                        now - (m.time.unix_timestamp_nanos().clamp(0, i128::from(now)) as i64),
                    )),
                    Err(_) => None,
                }
            } else {
                None
            };
            let sample = system::ConsumerSample {
                outstanding: info.num_pending + info.num_ack_pending as u64,
                secs_since_ack_moved: ns_to_secs_f64(now - since),
                oldest_unacked_secs: oldest,
            };
            if let Some(rule) = lag_rule {
                let delay = system::processing_delay(&sample);
                let detail = format!(
                    "consumer {name} is {delay:.0}s behind ({} messages outstanding)",
                    sample.outstanding
                );
                engine.set_condition(
                    rule,
                    &[&name],
                    delay > ns_to_secs_f64(self.max_lag_ns),
                    delay as u64,
                    &detail,
                    now,
                );
            }
            if let Some(rule) = expiry_rule {
                let firing = system::expiring(&sample, max_age_secs, self.expiry_warn_fraction);
                let detail = system::expiring_detail(&name, &self.stream, &sample, max_age_secs);
                let oldest = sample.oldest_unacked_secs.unwrap_or(0.0).max(0.0) as u64;
                engine.set_condition(rule, &[&name], firing, oldest, &detail, now);
            }
            alive.push(name);
        }
        // A consumer that was deleted is no longer behind.
        for rule in [lag_rule, expiry_rule].into_iter().flatten() {
            for values in engine.condition_groups(rule) {
                if let Some(name) = values.first()
                    && !alive.contains(name)
                {
                    self.ack_floors.remove(name);
                    engine.set_condition(rule, &[name], false, 0, "consumer removed", now);
                }
            }
        }
    }

    async fn refresh_silences(&mut self, now: i64) {
        match silence::list(&self.silences_kv, now).await {
            Ok(stored) => {
                self.silences = self.file_silences.clone();
                self.silences.extend(stored);
                self.metrics.silences_loaded.set(self.silences.len() as i64);
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot read silences; keeping the last ones")
            }
        }
    }

    /// Stores where a restart must read from: the message of the oldest
    /// match not yet reported, else the latest message read.
    async fn checkpoint(&mut self, engine: &Engine) {
        match engine.oldest_pending_seq() {
            Some(oldest) => {
                while self.match_times.front().is_some_and(|(s, _)| *s < oldest) {
                    self.match_times.pop_front();
                }
            }
            None => self.match_times.clear(),
        }
        let from = self
            .match_times
            .front()
            .map_or(self.read_until, |(_, t)| (*t).min(self.read_until));
        if from == self.checkpointed || from == 0 {
            return;
        }
        if let Ok(value) = serde_json::to_vec(&Checkpoint { read_until: from })
            && self
                .groups_kv
                .put(CHECKPOINT_KEY, value.into())
                .await
                .is_ok()
        {
            self.checkpointed = from;
        }
    }

    fn silenced(&self, rule: &str, app: &str, labels: &BTreeMap<String, String>, now: i64) -> bool {
        self.silences
            .iter()
            .any(|s| s.matches(rule, app, labels, now))
    }

    /// Sends what is due: for each due group, checks silences and the
    /// stored state, publishes, then stores the new state by
    /// compare-and-set.
    async fn evaluate(&mut self, engine: &mut Engine, now: i64) {
        for due in engine.due(now) {
            let key = group_key(&due.state.rule, &due.state.values);
            // The id is set once the stored state's revision is known.
            let n = engine.notification(&due, String::new(), self.query_url.as_deref(), now);
            if self.silenced(&due.state.rule, &n.app, &n.labels, now) {
                self.metrics.silenced.inc();
                engine.skip(&due, now);
                continue;
            }
            if let Err(err) = self.send(engine, &due, n, &key, now).await {
                tracing::warn!(rule = %due.state.rule, error = %err, "cannot send a due notification yet");
            }
        }
    }

    async fn send(
        &mut self,
        engine: &mut Engine,
        due: &Due,
        mut n: Notification,
        key: &str,
        now: i64,
    ) -> Result<(), String> {
        let current = cas::read(&self.groups_kv, key)
            .await
            .map_err(|e| e.to_string())?;
        let revision = current.revision();
        let stored = current
            .value()
            .and_then(|v| serde_json::from_slice::<GroupState>(v).ok());
        if let Some(s) = &stored
            && engine
                .last_notified(&due.key)
                .is_none_or(|l| l < s.last_notified)
        {
            // Another instance got there first: take its state, decide again.
            engine.apply(s, now);
            self.metrics.claimed_elsewhere.inc();
            return Ok(());
        }
        let id = format!("{key}-{revision}");
        n.id = id.clone();
        let duplicate = outbox::publish(&self.js, &n).await?;
        let state = if duplicate {
            match self.unconfirmed.get(&id) {
                // Published by this instance before its state could be
                // stored: store the state it was published with.
                Some(state) => state.clone(),
                // Published by another instance deciding the same thing:
                // its write stores the state; take it once it is there.
                // If nobody stores one (the publisher died in between),
                // this instance completes the decision rather than leave
                // the group stuck.
                None => {
                    let first = *self.orphans.entry(id.clone()).or_insert(now);
                    if now.saturating_sub(first) < ORPHAN_AFTER_NS {
                        self.metrics.claimed_elsewhere.inc();
                        return Ok(());
                    }
                    due.state.clone()
                }
            }
        } else {
            if self.unconfirmed.len() >= 10_000 {
                self.unconfirmed.clear();
            }
            if self.orphans.len() >= 10_000 {
                self.orphans.clear();
            }
            self.unconfirmed.insert(id.clone(), due.state.clone());
            due.state.clone()
        };
        let value: bytes::Bytes = serde_json::to_vec(&state)
            .map_err(|e| e.to_string())?
            .into();
        match cas::write(&self.groups_kv, key, revision, value).await {
            Ok(_) => {
                self.unconfirmed.remove(&id);
                self.orphans.remove(&id);
                self.metrics.delivery.published(n.kind.as_str());
                tracing::info!(rule = %state.rule, kind = %n.kind, count = n.count, id = %n.id, "notification queued");
                engine.apply(&state, now);
            }
            Err(CasError::Conflict { .. }) => {
                // Changed since read: another instance stored its state.
                // Take what is stored, if it moved on.
                self.metrics.claimed_elsewhere.inc();
                if let Ok(stored) = cas::read(&self.groups_kv, key).await
                    && stored.revision() != revision
                {
                    self.unconfirmed.remove(&id);
                    self.orphans.remove(&id);
                    if let Some(s) = stored
                        .value()
                        .and_then(|v| serde_json::from_slice::<GroupState>(v).ok())
                    {
                        engine.apply(&s, now);
                    }
                }
            }
            // Published but not stored: the group stays due, and the next
            // attempt finds the notification in the outbox (same id) and
            // stores the state it was published with.
            Err(err) => return Err(err.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_valid_kv_keys() {
        let k = group_key("checkout errors/β", &["a b".into(), "".into()]);
        assert!(k.starts_with("g.") && k.len() == 34, "{k}");
        assert_ne!(k, group_key("checkout errors/β", &["a b".into()]));
        assert_ne!(
            group_key("r", &["a".into(), "b".into()]),
            group_key("r", &["a\0b".into()])
        );
    }
}
