//! The filterer: files each app's logs from the `LOGS` stream into object
//! storage as gzip NDJSON blobs with sidecar indexes, and compacts them.
//!
//! ```text
//!  JetStream consumer "filterer" ─> router thread ─> flush tasks ─> object store
//!        │  (messages held,           (decode, route,     (gzip off the runtime,
//!        │   unacked)                  NDJSON + stats)      blob, then sidecar)
//!        └──────────── ack tracker <── "stored" ───────────────┘
//! ```
//!
//! * A message is acknowledged only when every buffer holding any of its
//!   records has been stored (blob and sidecar confirmed by the store).
//!   Until then it stays pending in JetStream; if this process dies it is
//!   redelivered, and any records it stored twice are removed by compaction
//!   (readers de-duplicate by `id` meanwhile).
//! * Several filterers can share the durable consumer: JetStream hands each
//!   message to one of them, and blob names never collide.
//! * The subject names the app: a message whose subject is not
//!   `logs.<valid app>.<level>`, whose payload does not decode, or whose
//!   records claim another app or level than its subject
//!   (`sluice_core::subject`) is filed nowhere. It is published whole to
//!   `sluice.deadletter.filterer` (stream `SLUICE_DEADLETTER`, see
//!   `sluice_core::deadletter`) with the reason in the `Sluice-Reason`
//!   header, counted by reason, then acknowledged: it never blocks the
//!   stream.
//! * Compaction ([`compact`]) runs in every instance, coordinated through
//!   JetStream KV claims.

pub mod blobs;
pub mod compact;
pub mod metrics;
pub mod router;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull, kv};
use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use sluice_core::backoff::Backoff;
use sluice_core::config::Config;
use sluice_core::deadletter;
use sluice_core::layout::{BlobKind, Partition};
use sluice_core::record::now_nanos;
use sluice_core::role::{Role, RoleError, RoleSpec};
use sluice_core::store::Store;
use sluice_core::subject::{Misfiled, decode_checked};
use sluice_core::time;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::blobs::{StoreHealth, write_blob};
use crate::compact::CompactOptions;
use crate::metrics::FiltererMetrics;
use crate::router::{Buffer, Router, RouterConfig};

/// How long shutdown waits for buffered records to be stored.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Name of the durable consumer every filterer shares.
pub const CONSUMER: &str = "filterer";
/// Stream holding the messages the filterer would not file.
pub const DEADLETTER_STREAM: &str = deadletter::STREAM;
/// This role's name on the dead-letter stream.
pub const ROLE: &str = "filterer";
/// Subject the messages the filterer would not file are published on.
pub const DEADLETTER_SUBJECT: &str = "sluice.deadletter.filterer";
/// KV bucket of partitions written since their last compaction.
pub const DIRTY_BUCKET: &str = "sluice_partitions";
/// KV bucket of compaction claims.
pub const CLAIMS_BUCKET: &str = sluice_core::claims::BUCKET;

/// Why the filterer could not start.
pub type FiltererError = RoleError;

/// What the ack tracker hears about.
enum Event {
    /// A message arrived (registered before its payload is routed).
    Received(u64, Box<jetstream::Message>),
    /// The message's records went into this many buffers.
    Routed(u64, u32),
    /// These messages each had records in a buffer that is now stored.
    Stored(Vec<u64>),
    /// The message is not filed.
    DeadLetter(u64, Misfiled),
}

/// Checks what parsing the configuration cannot: the store URL and its
/// settings (without touching the store). Every value check, with its
/// line, is made while the file is parsed.
pub fn validate(config: &Config) -> Result<(), RoleError> {
    sluice_core::store::check(&config.store).map_err(|e| RoleError::Store(e.to_string()))
}

/// Runs the filterer until `shutdown` completes, then stops pulling,
/// stores what it holds and acknowledges it.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), FiltererError> {
    validate(&config)?;
    let fcfg = config.filterer.clone();
    let store =
        sluice_core::store::open(&config.store).map_err(|e| RoleError::Store(e.to_string()))?;
    let mut registry = Registry::default();
    let metrics = FiltererMetrics::register(&mut registry);
    let health = Arc::new(StoreHealth::default());
    health.last_ok_ns.store(now_nanos(), Ordering::Relaxed);
    let spec = RoleSpec::tier(ROLE, fcfg.id.as_deref(), fcfg.admin.listen);
    let role = Role::start(spec, registry, shutdown).await?;
    {
        let health = health.clone();
        role.health(Arc::new(move || health.check()));
    }
    let id = role.instance().to_string();
    let js = role.jetstream(&config.nats).await?;
    let flush_interval = Duration::from_secs(fcfg.flush_interval_secs);
    let ready = role
        .until_ready("the stream, consumer and buckets", || {
            setup(&js, &config, flush_interval)
        })
        .await;
    let Some((consumer, dirty, claims)) = ready else {
        role.finish().await;
        return Ok(());
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (events_tx, events_rx) = unbounded_channel::<Event>();
    let (route_tx, route_rx) = std::sync::mpsc::sync_channel::<Routable>(256);
    let (flush_tx, flush_rx) = unbounded_channel::<Buffer>();

    // Router thread.
    let router_cfg = RouterConfig {
        max_blob_bytes: fcfg.max_blob_bytes,
        flush_interval_ns: time::duration_to_ns(flush_interval),
        max_buffer_bytes: fcfg.max_buffer_bytes,
        future_tolerance_ns: time::secs_to_ns(fcfg.future_tolerance_secs),
    };
    let buffered = Arc::new(AtomicI64::new(0));
    let router_thread = {
        let events = events_tx.clone();
        let metrics = metrics.clone();
        let buffered = buffered.clone();
        std::thread::Builder::new()
            .name("sluice-router".into())
            .spawn(move || {
                route_loop(
                    Router::new(router_cfg),
                    route_rx,
                    events,
                    flush_tx,
                    metrics,
                    buffered,
                )
            })
            .map_err(RoleError::Thread)?
    };

    // Flushers: compression in parallel across partitions, bounded.
    let flusher = role.spawn(flush_loop(
        flush_rx,
        store.clone(),
        id.clone(),
        fcfg.gzip_level,
        dirty.clone(),
        events_tx.clone(),
        health.clone(),
        metrics.clone(),
        stop.clone(),
    ));

    // Ack tracker.
    let tracker = role.spawn(track(
        events_rx,
        js.clone(),
        metrics.clone(),
        ack_wait(flush_interval) / 3,
    ));

    // Compaction.
    let compactor = fcfg.compaction.then(|| {
        role.spawn(compact::run(
            store.clone(),
            dirty.clone(),
            claims,
            CompactOptions {
                writer: id.clone(),
                claimant: role.claimant().to_string(),
                max_blob_bytes: fcfg.max_blob_bytes,
                grace_ns: time::secs_to_ns(fcfg.compaction_grace_secs),
                gzip_level: fcfg.gzip_level,
            },
            Duration::from_secs(fcfg.compaction_interval_secs.max(1)),
            health.clone(),
            metrics.clone(),
            stop.clone(),
        ))
    });

    tracing::info!(store = %store.url, "filing the stream");

    // Pull until shutdown.
    let sampler = {
        let consumer = consumer.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        let buffered = buffered.clone();
        role.spawn(async move {
            let mut consumer = consumer;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(info) = consumer.info().await {
                    metrics.consumer_pending.set(info.num_pending as i64);
                    metrics
                        .consumer_ack_pending
                        .set(info.num_ack_pending as i64);
                }
                metrics.buffered_bytes.set(buffered.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    role.set_ready();
    pull_loop(consumer, route_tx, events_tx, &metrics, role.stopping()).await;

    tracing::info!("shutting down: storing what is buffered");
    // Stored within the grace period, or left unacknowledged for the next
    // run (JetStream redelivers it): a store that refuses writes is not
    // waited for at all.
    let grace = {
        let stop = stop.clone();
        let health = health.clone();
        role.spawn(async move {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= deadline || health.check().is_err() {
                    tracing::warn!(
                        "giving up on unstored buffers; their messages will be redelivered"
                    );
                    stop.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The router drains its buffers when its input closes (route_tx dropped
    // in pull_loop), the flusher then stores them, the tracker acks.
    let _ = tokio::task::spawn_blocking(move || router_thread.join()).await;
    let _ = flusher.await;
    let _ = tracker.await;
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = compactor {
        let _ = c.await;
    }
    let _ = sampler.await;
    let _ = grace.await;
    role.finish().await;
    Ok(())
}

async fn setup(
    js: &jetstream::Context,
    config: &Config,
    flush_interval: Duration,
) -> Result<
    (
        jetstream::consumer::Consumer<pull::Config>,
        kv::Store,
        kv::Store,
    ),
    String,
> {
    let stream = sluice_core::nats::ensure_consumer_streams(js, &config.nats)
        .await
        .map_err(|e| e.to_string())?;
    // Messages are held unacked until their buffer is stored. The ack wait
    // stays short, so the messages a crashed filterer held are redelivered
    // soon; live holders extend it with progress acks (see `track`).
    let filter = format!("{}.>", sluice_core::codec::SUBJECT_PREFIX);
    let consumer = sluice_core::nats::durable_consumer(
        &stream,
        CONSUMER,
        filter,
        ack_wait(flush_interval),
        100_000,
    )
    .await
    .map_err(|e| e.to_string())?;
    // A partition not written for `[nats] partitions_max_age_days` has
    // long been compacted: its key is dropped rather than kept forever.
    let dirty = sluice_core::nats::ensure_kv(
        js,
        DIRTY_BUCKET,
        config.nats.partitions_max_age(),
        config.nats.replicas,
    )
    .await
    .map_err(|e| e.to_string())?;
    // A claim of a compactor that died expires.
    let claims = sluice_core::nats::ensure_kv(
        js,
        CLAIMS_BUCKET,
        Duration::from_secs(600),
        config.nats.replicas,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((consumer, dirty, claims))
}

/// The consumer's ack wait for a flush interval.
fn ack_wait(flush_interval: Duration) -> Duration {
    flush_interval + Duration::from_secs(30)
}

/// A message on its way to the router: stream sequence, subject, payload.
type Routable = (u64, async_nats::Subject, Bytes);

async fn pull_loop(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    route_tx: SyncSender<Routable>,
    events: UnboundedSender<Event>,
    metrics: &FiltererMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = Box::pin(shutdown);
    let mut messages = loop {
        match consumer.messages().await {
            Ok(m) => break m,
            Err(err) => {
                tracing::warn!(error = %err, "cannot pull from the stream yet, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut shutdown => return,
                }
            }
        }
    };
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            _ = &mut shutdown => return,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(err)) => {
                tracing::debug!(error = %err, "pull interrupted, continuing");
                continue;
            }
            None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(seq) = msg.info().map(|i| i.stream_sequence) else {
            continue;
        };
        metrics.messages_in.inc();
        let payload = msg.payload.clone();
        let subject = msg.subject.clone();
        if events.send(Event::Received(seq, Box::new(msg))).is_err() {
            return;
        }
        // Wait for the router when it is behind: back-pressure to the stream.
        let mut item = (seq, subject, payload);
        loop {
            match route_tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

fn route_loop(
    mut router: Router,
    rx: Receiver<Routable>,
    events: UnboundedSender<Event>,
    flush: UnboundedSender<Buffer>,
    metrics: FiltererMetrics,
    buffered: Arc<AtomicI64>,
) {
    let mut ready = Vec::new();
    let mut last_due = Instant::now();
    loop {
        let item = rx.recv_timeout(Duration::from_millis(200));
        let now = now_nanos();
        match item {
            Ok((seq, subject, payload)) => match decode_checked(&subject, &payload) {
                Ok((target, records)) => {
                    metrics.records_in.inc_by(records.len() as u64);
                    let routed = router.push(seq, target.app, records, now, &mut ready);
                    metrics.future_records.inc_by(routed.future);
                    let _ = events.send(Event::Routed(seq, routed.buffers));
                }
                Err(misfiled) => {
                    let _ = events.send(Event::DeadLetter(seq, misfiled));
                }
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_due.elapsed() >= Duration::from_millis(200) {
            ready.extend(router.due(now));
            last_due = Instant::now();
        }
        for buffer in ready.drain(..) {
            let _ = flush.send(buffer);
        }
        buffered.store(router.buffered_bytes() as i64, Ordering::Relaxed);
    }
    for buffer in router.drain() {
        let _ = flush.send(buffer);
    }
    buffered.store(0, Ordering::Relaxed);
}

#[allow(clippy::too_many_arguments)]
async fn flush_loop(
    mut rx: UnboundedReceiver<Buffer>,
    store: Store,
    writer: String,
    level: u32,
    dirty: kv::Store,
    events: UnboundedSender<Event>,
    health: Arc<StoreHealth>,
    metrics: FiltererMetrics,
    stop: Arc<AtomicBool>,
) {
    let parallel = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let slots = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(buffer) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (store, writer, dirty, events, health, metrics, stop) = (
            store.clone(),
            writer.clone(),
            dirty.clone(),
            events.clone(),
            health.clone(),
            metrics.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let Buffer {
                partition,
                ndjson,
                index,
                seqs,
                ..
            } = buffer;
            let written = write_blob(
                &store, &partition, BlobKind::Part, &writer, ndjson, index, false, level, &health,
                &metrics, &stop,
            )
            .await;
            let Some(written) = written else { return };
            metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
            metrics.blob("part", written.raw_bytes, written.compressed_bytes);
            tracing::debug!(object_key = %written.key, records = written.records, bytes = written.compressed_bytes, "blob stored");
            mark_dirty(&dirty, &partition).await;
            let _ = events.send(Event::Stored(seqs));
        });
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn mark_dirty(dirty: &kv::Store, partition: &Partition) {
    let value = Bytes::from(now_nanos().to_string());
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    for attempt in 0..5u32 {
        match dirty.put(partition.kv_key(), value.clone()).await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(partition = %partition.prefix(), error = %err, attempt, "cannot mark partition for compaction, retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
    }
    tracing::error!(
        partition = %partition.prefix(),
        "gave up marking the partition for compaction; it is compacted when it is next written to"
    );
}

struct Held {
    msg: jetstream::Message,
    remaining: i64,
    routed: bool,
}

async fn track(
    mut rx: UnboundedReceiver<Event>,
    js: jetstream::Context,
    metrics: FiltererMetrics,
    progress_every: Duration,
) {
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut progress = tokio::time::interval(progress_every.max(Duration::from_secs(1)));
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = progress.tick() => {
                // Still working on these: keep JetStream from redelivering
                // them to another filterer while they wait for the store.
                for h in held.values() {
                    let _ = h.msg.ack_with(AckKind::Progress).await;
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        match event {
            Event::Received(seq, msg) => {
                // A redelivery while the first copy is held keeps the newer
                // handle; the counts of both copies add up.
                let msg = *msg;
                match held.get_mut(&seq) {
                    Some(entry) => entry.msg = msg,
                    None => {
                        held.insert(
                            seq,
                            Held {
                                msg,
                                remaining: 0,
                                routed: false,
                            },
                        );
                    }
                }
            }
            Event::Routed(seq, buffers) => {
                if let Some(h) = held.get_mut(&seq) {
                    h.remaining += i64::from(buffers);
                    h.routed = true;
                }
                finish_if_done(&mut held, seq, &metrics).await;
            }
            Event::Stored(seqs) => {
                for seq in seqs {
                    if let Some(h) = held.get_mut(&seq) {
                        h.remaining -= 1;
                    }
                    finish_if_done(&mut held, seq, &metrics).await;
                }
            }
            Event::DeadLetter(seq, misfiled) => {
                if let Some(h) = held.remove(&seq)
                    && deadletter::set_aside(&js, ROLE, &h.msg, &misfiled, &metrics.dead_letters)
                        .await
                    && let Err(err) = h.msg.ack().await
                {
                    tracing::warn!(error = %err, seq, "cannot acknowledge a dead-lettered message");
                }
            }
        }
    }
}

async fn finish_if_done(held: &mut HashMap<u64, Held>, seq: u64, metrics: &FiltererMetrics) {
    let done = held.get(&seq).is_some_and(|h| h.routed && h.remaining <= 0);
    if !done {
        return;
    }
    if let Some(h) = held.remove(&seq) {
        match h.msg.ack_with(AckKind::Ack).await {
            Ok(()) => {
                metrics.messages_acked.inc();
            }
            // Redelivered later: its records are stored twice, and
            // compaction removes the copy.
            Err(err) => tracing::warn!(error = %err, seq, "cannot acknowledge a stored message"),
        }
    }
}
