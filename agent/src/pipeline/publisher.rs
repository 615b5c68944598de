//! The publisher: ships spool entries to JetStream and acknowledges them in
//! the spool once JetStream has stored them.
//!
//! * Entries are read in spool order; each entry's per-level batches are
//!   published on `logs.<app>.<level>` with `Nats-Msg-Id`
//!   `<agent>:<incarnation>:<seq>:<level>` (`sluice_core::codec::msg_id`), so
//!   a batch sent again after a lost ack or a crash is dropped by the
//!   stream's duplicate window, and a new spool never repeats an old one's
//!   ids.
//! * Up to `max_in_flight` batches await their acks at once; the window
//!   keeps the link busy without unbounded memory.
//! * A failed or timed-out publish is retried forever, with capped,
//!   jittered exponential backoff; other batches keep flowing meanwhile.
//! * An entry is acknowledged in the spool only when every one of its
//!   batches is acknowledged by JetStream; the spool frees space behind the
//!   lowest unacknowledged entry.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sluice_core::backoff::Backoff;
use sluice_core::codec::{msg_id, subject};
use sluice_core::names;
use sluice_core::record::now_nanos;
use tokio::sync::{Notify, watch};

use crate::metrics::{AgentMetrics, label};
use crate::pipeline::entry::Entry;
use crate::pipeline::spool::Spool;

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// The agent's identity, the first part of every `Nats-Msg-Id`.
    pub agent_id: String,
    /// Batches awaiting acks, at most.
    pub max_in_flight: usize,
    /// Cap of the retry backoff.
    pub max_backoff: Duration,
}

/// Progress the health check reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// When JetStream last acknowledged a batch (ns since the epoch).
    pub last_ack_ns: AtomicI64,
    /// Creation time of the oldest unacknowledged entry (0 when none).
    pub oldest_unacked_ns: AtomicI64,
}

impl Progress {
    /// Progress starting now.
    pub fn new() -> Arc<Progress> {
        let p = Progress::default();
        p.last_ack_ns.store(now_nanos(), Ordering::Relaxed);
        Arc::new(p)
    }

    /// Seconds the spool has been stalled: time since the later of the last
    /// ack and the oldest unacked entry's creation; 0 when nothing waits.
    pub fn stalled_secs(&self, now: i64) -> f64 {
        let oldest = self.oldest_unacked_ns.load(Ordering::Relaxed);
        if oldest == 0 {
            return 0.0;
        }
        let since = self.last_ack_ns.load(Ordering::Relaxed).max(oldest);
        sluice_core::time::ns_to_secs_f64((now - since).max(0))
    }
}

struct Pending {
    remaining: usize,
    created_ns: i64,
    records: u64,
}

struct Job {
    seq: u64,
    subject: String,
    msg_id: String,
    payload: Bytes,
    attempt: u32,
}

type Outcome = (Job, Result<bool, String>);
type JobFuture = Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>;

/// Retries of one batch: from 100 ms doubling up to `[agent.publish]
/// max_backoff_ms`, jittered so agents retrying after an outage spread out.
fn backoff(max: Duration) -> Backoff {
    Backoff::new(Duration::from_millis(100), max)
}

fn publish(js: jetstream::Context, job: Job, delay: Duration) -> JobFuture {
    Box::pin(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.msg_id.as_str());
        let result = match js
            .publish_with_headers(job.subject.clone(), headers, job.payload.clone())
            .await
        {
            Ok(ack) => match ack.await {
                Ok(ack) => Ok(ack.duplicate),
                Err(err) => Err(err.to_string()),
            },
            Err(err) => Err(err.to_string()),
        };
        (job, result)
    })
}

/// Ships the spool until `shutdown` turns true, then waits (briefly) for the
/// batches in flight.
pub async fn run(
    spool: Arc<Spool>,
    js: jetstream::Context,
    opts: PublisherOptions,
    metrics: AgentMetrics,
    progress: Arc<Progress>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor = spool.ack_floor();
    let incarnation = spool.incarnation();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut in_flight: FuturesUnordered<JobFuture> = FuturesUnordered::new();
    let window = opts.max_in_flight.max(1);
    let mut logged_failure = false;
    loop {
        let stopping = *shutdown.borrow();
        // Fill the window, reading several entries per trip to the
        // blocking pool.
        let mut batch: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
        while !stopping && in_flight.len() < window {
            if batch.is_empty() {
                let spool2 = spool.clone();
                let from = cursor;
                let want = (window - in_flight.len()).clamp(1, 16);
                let read = tokio::task::spawn_blocking(move || read_entries(&spool2, from, want));
                match read.await {
                    Ok(Ok(entries)) if entries.is_empty() => break,
                    Ok(Ok(entries)) => batch.extend(entries),
                    Ok(Err(err)) => {
                        tracing::error!(error = %err, seq = from, "cannot read spool entry, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "spool reader task failed");
                        break;
                    }
                }
            }
            let Some((seq, bytes)) = batch.pop_front() else {
                break;
            };
            cursor = seq + 1;
            let entry = match Entry::decode(&bytes) {
                Ok(e) => e,
                Err(err) => {
                    // The frame's checksum held, so this is a bug or a foreign
                    // writer: skip it loudly rather than block the spool.
                    tracing::error!(error = %err, seq, "undecodable spool entry skipped");
                    metrics
                        .records_dropped
                        .get_or_create(&label("reason", "undecodable_entry"))
                        .inc();
                    spool.ack(seq);
                    continue;
                }
            };
            // The writer only spools valid apps (from the config or a
            // checked name). Should an entry hold another, its records
            // would claim an app the subject does not name, and every
            // consumer sets the batch aside on the dead-letter stream:
            // kept, never filed under another app.
            let app = names::normalize(&entry.app).into_owned();
            if entry.batches.is_empty() {
                spool.ack(seq);
                continue;
            }
            let records: u64 = entry.batches.iter().map(|b| u64::from(b.records)).sum();
            pending.insert(
                seq,
                Pending {
                    remaining: entry.batches.len(),
                    created_ns: entry.created_ns,
                    records,
                },
            );
            for batch in entry.batches {
                let job = Job {
                    seq,
                    subject: subject(&app, batch.level),
                    msg_id: msg_id(&opts.agent_id, incarnation.for_seq(seq), seq, batch.level),
                    payload: Bytes::from(batch.payload),
                    attempt: 0,
                };
                in_flight.push(publish(js.clone(), job, Duration::ZERO));
            }
        }
        update_oldest(&pending, &progress, &metrics);
        if stopping && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some((mut job, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(duplicate) => {
                        if job.attempt > 0 || logged_failure {
                            if logged_failure {
                                tracing::info!("publishing to jetstream again");
                            }
                            logged_failure = false;
                        }
                        progress.last_ack_ns.store(now_nanos(), Ordering::Relaxed);
                        metrics.batches_published.inc();
                        if duplicate {
                            metrics.batches_duplicate.inc();
                        }
                        let done = match pending.get_mut(&job.seq) {
                            Some(p) => {
                                p.remaining -= 1;
                                p.remaining == 0
                            }
                            None => false,
                        };
                        if done && let Some(p) = pending.remove(&job.seq) {
                            metrics.records_published.inc_by(p.records);
                            spool.ack(job.seq);
                            metrics.spool_unacked_entries.set(spool.unacked() as i64);
                        }
                    }
                    Err(err) => {
                        metrics.publish_errors.inc();
                        if !logged_failure {
                            tracing::warn!(error = %err, subject = %job.subject, "publish failed, retrying with backoff");
                            logged_failure = true;
                        } else {
                            tracing::debug!(error = %err, subject = %job.subject, "publish failed again");
                        }
                        if *shutdown.borrow() {
                            // Left in the spool; sent again after restart.
                            pending.remove(&job.seq);
                            continue;
                        }
                        metrics.publish_retries.inc();
                        let delay = backoff(opts.max_backoff).delay(job.attempt);
                        job.attempt = job.attempt.saturating_add(1);
                        in_flight.push(publish(js.clone(), job, delay));
                    }
                }
            }
            _ = wake.notified(), if in_flight.len() < window && !stopping => {}
            _ = tokio::time::sleep(Duration::from_millis(250)), if !stopping => {}
            _ = shutdown.changed(), if !stopping => {}
            _ = tokio::time::sleep(Duration::from_secs(5)), if stopping => {
                tracing::warn!(in_flight = in_flight.len(), "stopping with batches unacknowledged; they stay in the spool");
                break;
            }
        }
    }
    tracing::info!("publisher stopped");
}

/// Up to `max` durable entries from `from` on.
fn read_entries(
    spool: &Spool,
    from: u64,
    max: usize,
) -> Result<Vec<(u64, Vec<u8>)>, crate::pipeline::spool::SpoolError> {
    let mut out = Vec::new();
    let mut next = from;
    while out.len() < max {
        match spool.read_next(next)? {
            Some((seq, bytes)) => {
                next = seq + 1;
                out.push((seq, bytes));
            }
            None => break,
        }
    }
    Ok(out)
}

fn update_oldest(pending: &HashMap<u64, Pending>, progress: &Progress, metrics: &AgentMetrics) {
    let oldest = pending.values().map(|p| p.created_ns).min().unwrap_or(0);
    progress.oldest_unacked_ns.store(oldest, Ordering::Relaxed);
    let age = if oldest == 0 {
        0
    } else {
        (now_nanos() - oldest).max(0) / sluice_core::time::NS_PER_SEC
    };
    metrics.oldest_unacked_age_seconds.set(age);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let max = Duration::from_secs(5);
        for attempt in 0..40 {
            let d = backoff(max).delay(attempt);
            assert!(d <= max, "{d:?}");
            assert!(d >= Duration::from_millis(50), "{d:?}");
        }
        assert!(backoff(max).delay(0) <= Duration::from_millis(100));
    }

    #[test]
    fn stall_counts_from_the_later_of_ack_and_oldest_entry() {
        let p = Progress::default();
        assert_eq!(p.stalled_secs(10_000_000_000), 0.0);
        p.oldest_unacked_ns.store(2_000_000_000, Ordering::Relaxed);
        p.last_ack_ns.store(1_000_000_000, Ordering::Relaxed);
        assert_eq!(p.stalled_secs(5_000_000_000), 3.0);
        p.last_ack_ns.store(4_000_000_000, Ordering::Relaxed);
        assert_eq!(p.stalled_secs(5_000_000_000), 1.0);
    }
}
