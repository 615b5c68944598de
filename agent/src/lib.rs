//! The Sluice agent: tails log files into a crash-safe disk spool and
//! publishes the spool to NATS JetStream.
//!
//! ```text
//!  files ─> tailer thread ──┐
//!  syslog ─> listener tasks ├(bounded channel)─> writer thread ─> spool ─> publisher task ─> JetStream
//!  HTTP ─> request handlers ┘  positions ride inside spool entries    acks free spool space <─┘
//! ```
//!
//! The network sources ([`sources::syslog`], [`sources::http`]) are tasks on
//! the same small runtime; they wait on the channel like the tailer does,
//! and an HTTP request is answered only after the writer's fsync
//! ([`sources::Durable`]).
//!
//! The code follows the picture: [`sources`] holds the three sources and the
//! channel they share, [`pipeline`] the writer, the spool and the publisher.
//!
//! The invariants (docs/architecture.md, "Where the guarantees are kept") and where they are kept:
//! 1. A file's durable read position is never ahead of the spool: positions
//!    are only stored inside spool entries and the checkpoint
//!    ([`pipeline::entry`], `pipeline::writer`).
//! 2. A record leaves the spool only after JetStream acked it
//!    (`pipeline::publisher`, [`pipeline::spool`]).
//! 3. After `kill -9`, a restart resumes from the recovered positions and
//!    re-sends unacknowledged entries with the same `Nats-Msg-Id`s, which the
//!    stream's duplicate window drops.
//! 4. A full spool blocks the writer, and the bounded channel blocks the
//!    tailer: files simply wait.
//! 5. Torn or corrupt spool data is cut back or skipped with a count
//!    ([`pipeline::spool`]).
//! 6. Bounded threads (one tailer, one writer, a small runtime), a read rate
//!    limit, lower CPU/IO priority ([`priority`]), bounded channels and
//!    in-flight windows.

pub mod metrics;
pub mod pipeline;
pub mod presence;
pub mod priority;
pub mod sources;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_core::config::{Config, host_name};
use sluice_core::record::now_nanos;
use sluice_core::role::{Role, RoleError, RoleSpec, retry_until};
use tokio::sync::{Notify, watch};

use crate::metrics::AgentMetrics;
use crate::pipeline::entry::{Entry, Positions};
use crate::pipeline::publisher::{self, Progress, PublisherOptions};
use crate::pipeline::spool::{Spool, SpoolOptions};
use crate::pipeline::writer::{self, WriterOptions};
use crate::sources::file::{Source, Tailer, TailerOptions};
use crate::sources::{http, syslog};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// What every role can fail with: a setting, a port, NATS settings, a
    /// thread.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// The spool could not be opened.
    #[error("cannot open the spool: {0}")]
    Spool(#[from] pipeline::spool::SpoolError),
}

impl AgentError {
    /// An unusable setting.
    pub(crate) fn config(message: impl Into<String>) -> AgentError {
        AgentError::Role(RoleError::Config(message.into()))
    }

    /// A port that cannot be listened on.
    pub(crate) fn listen(addr: std::net::SocketAddr, source: std::io::Error) -> AgentError {
        AgentError::Role(RoleError::Listen { addr, source })
    }

    fn thread(source: std::io::Error) -> AgentError {
        AgentError::Role(RoleError::Thread(source))
    }
}

/// This role's name.
pub const ROLE: &str = "agent";

/// Checks what parsing the configuration cannot: the file sources' globs
/// compile. (Every value check, with its line, is made while the file is
/// parsed; see `sluice_core::config`.)
pub fn validate(config: &Config) -> Result<(), AgentError> {
    for (i, f) in config.agent.files.iter().enumerate() {
        Source::new(f)
            .map_err(|e| AgentError::config(format!("[[agent.files]] #{}: {e}", i + 1)))?;
    }
    Ok(())
}

/// The agent id in use: configured, else the host name. It is part of
/// every message id, so unlike a tier role's instance id it is kept as
/// configured (the configuration refuses spaces and `:`).
pub fn agent_id(config: &Config) -> String {
    config
        .agent
        .id
        .clone()
        .unwrap_or_else(|| host_name().replace([':', ' '], "-"))
}

/// Runs the agent until `shutdown` completes: stops reading, writes what was
/// read into the spool, gives in-flight publishes a moment, and returns.
///
/// On the role runtime: the admin endpoint is bound first; `/ready` answers
/// once the spool is recovered and every source is open (the agent does
/// not wait for NATS: it spools meanwhile).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    validate(&config)?;
    let agent = config.agent.clone();
    let id = agent_id(&config);
    let host: Arc<str> = Arc::from(agent.host.clone().unwrap_or_else(host_name));

    let mut registry = Registry::default();
    let metrics = AgentMetrics::register(&mut registry);
    let progress = Progress::new();
    let spec = RoleSpec {
        name: ROLE,
        instance: id.clone(),
        admin: agent.admin.listen,
        routes: axum::Router::new(),
    };
    let role = Role::start(spec, registry, shutdown).await?;
    let started = start(&config, &role, &metrics, &progress, host).await;
    let running = match started {
        Ok(r) => r,
        Err(err) => {
            role.finish().await;
            return Err(err);
        }
    };
    role.set_ready();
    role.stopping().await;
    running.stop(&role).await;
    role.finish().await;
    Ok(())
}

/// What [`run`] stops, in order.
struct Running {
    spool: Arc<Spool>,
    net_stop: watch::Sender<bool>,
    net_tasks: Vec<tokio::task::JoinHandle<()>>,
    stop_reading: Arc<AtomicBool>,
    stop_writer: Arc<AtomicBool>,
    tailer_thread: std::thread::JoinHandle<()>,
    writer_thread: std::thread::JoinHandle<Positions>,
    stop_publishing: watch::Sender<bool>,
    publisher: tokio::task::JoinHandle<()>,
}

/// Recovers the spool, starts the threads, the publisher and the sources.
async fn start(
    config: &Config,
    role: &Role,
    metrics: &AgentMetrics,
    progress: &Arc<Progress>,
    host: Arc<str>,
) -> Result<Running, AgentError> {
    let agent = &config.agent;
    let id = role.instance().to_string();
    let metrics = metrics.clone();

    // Spool and recovery.
    let spool_dir: PathBuf = agent.data_dir.join("spool");
    let first_start = !spool_dir.exists();
    std::fs::create_dir_all(&agent.data_dir).map_err(|e| {
        AgentError::config(format!(
            "cannot create data_dir {}: {e}",
            agent.data_dir.display()
        ))
    })?;
    let (spool, recovered) = Spool::open(SpoolOptions {
        dir: spool_dir,
        max_bytes: agent.spool.max_bytes,
        segment_bytes: agent.spool.segment_bytes,
    })?;
    metrics
        .spool_corrupt_frames
        .inc_by(recovered.corrupt_frames);
    metrics.spool_corrupt_bytes.inc_by(recovered.corrupt_bytes);
    metrics.spool_torn_bytes.inc_by(recovered.torn_bytes);
    let mut positions = match recovered.checkpoint.as_deref().map(Positions::decode) {
        Some(Ok(p)) => p,
        Some(Err(err)) => {
            tracing::warn!(error = %err, "spool checkpoint unreadable, relying on spool entries");
            Positions::default()
        }
        None => Positions::default(),
    };
    spool.scan_all(|_, bytes| {
        if let Ok(entry) = Entry::decode(bytes) {
            positions.apply(&entry.positions);
        }
    })?;
    let incarnation = format!("{:016x}", spool.incarnation().id);
    tracing::info!(
        agent_id = %id,
        incarnation = %incarnation,
        entries = recovered.entries,
        files = positions.len(),
        torn_bytes = recovered.torn_bytes,
        corrupt_frames = recovered.corrupt_frames,
        "spool opened"
    );

    // Threads: tailer -> writer.
    let sources = agent
        .files
        .iter()
        .map(Source::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::config(e.to_string()))?;
    let mut topts = TailerOptions::new(sources);
    topts.first_start = first_start;
    topts.max_open_files = agent.limits.max_open_files;
    topts.idle_close = Duration::from_secs(agent.limits.idle_close_secs);
    topts.read_bytes_per_sec = agent.limits.read_bytes_per_sec;
    let wopts = WriterOptions {
        fsync_interval: Duration::from_millis(agent.spool.fsync_interval_ms.max(1)),
        max_batch_bytes: agent.publish.max_batch_bytes,
        max_batch_records: agent.publish.max_batch_records,
        spool_max_bytes: agent.spool.max_bytes,
        host,
    };
    let stop_reading = Arc::new(AtomicBool::new(false));
    let stop_writer = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let (tx, rx) = crate::sources::channel();
    let net_tx = tx.clone();
    let tailer = Tailer::new(topts, positions.clone(), tx, metrics.clone());
    let tailer_stop = stop_reading.clone();
    let tailer_thread = std::thread::Builder::new()
        .name("sluice-tail".into())
        .spawn(move || tailer.run(tailer_stop))
        .map_err(AgentError::thread)?;
    let writer_thread = {
        let spool = spool.clone();
        let metrics = metrics.clone();
        let wake = wake.clone();
        let stop = stop_writer.clone();
        std::thread::Builder::new()
            .name("sluice-spool".into())
            .spawn(move || writer::run(spool, rx, positions, wopts, metrics, wake, stop))
            .map_err(AgentError::thread)?
    };

    // NATS: connecting never blocks start-up; the stream is ensured in the
    // background and publishes retry until it exists.
    let (stop_publishing, stop_rx) = watch::channel(false);
    let client = role.connect(&config.nats).await?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(config.nats.ack_timeout_ms.max(100)))
        .build(client.clone());
    {
        let (js, nats, stop) = (js.clone(), config.nats.clone(), role.token());
        role.spawn(async move {
            let ready = retry_until(&stop, ROLE, "the stream", || async {
                sluice_core::nats::ensure_stream(&js, &nats)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            if ready.is_some() {
                tracing::info!(stream = %nats.stream, "stream ready");
            }
        });
    }
    let presence = presence::run(
        js.clone(),
        config.nats.replicas,
        id.clone(),
        presence::Heartbeat {
            incarnation,
            host: host_name(),
            pid: std::process::id(),
            at: String::new(),
        },
        Duration::from_secs(agent.heartbeat_secs.max(1)),
        metrics.clone(),
    );
    role.spawn(role.token().run_until_cancelled_owned(presence));
    let publisher = role.spawn(publisher::run(
        spool.clone(),
        js,
        PublisherOptions {
            agent_id: id.clone(),
            max_in_flight: agent.publish.max_in_flight,
            max_backoff: Duration::from_millis(agent.publish.max_backoff_ms.max(100)),
        },
        metrics.clone(),
        progress.clone(),
        wake.clone(),
        stop_rx.clone(),
    ));

    // Network sources. They stop first at shutdown, while the writer still
    // runs, so every request answered was spooled.
    let (net_stop, net_stop_rx) = watch::channel(false);
    let mut net_tasks = Vec::new();
    if let Some(syslog) = &agent.syslog {
        net_tasks.extend(
            syslog::start(
                syslog,
                net_tx.clone(),
                spool.clone(),
                metrics.clone(),
                net_stop_rx.clone(),
            )
            .await?,
        );
    }
    if let Some(http) = &agent.http {
        net_tasks.push(
            http::start(
                http,
                net_tx.clone(),
                spool.clone(),
                metrics.clone(),
                net_stop_rx.clone(),
            )
            .await?,
        );
    }
    drop(net_tx);

    // Health: stalled when nothing was acked this long while data waits.
    let stall = agent.admin.stall_secs as f64;
    {
        let progress = progress.clone();
        let spool = spool.clone();
        role.health(Arc::new(move || {
            let stalled = progress.stalled_secs(now_nanos());
            if stalled >= stall && spool.unacked() > 0 {
                let state = client.connection_state();
                return Err(format!(
                    "stalled: {} spool entries unacknowledged for {stalled:.0}s (nats {state:?})",
                    spool.unacked()
                ));
            }
            Ok(())
        }));
    }

    // Gauges that are cheaper to sample than to update on every change.
    {
        let spool = spool.clone();
        let metrics = metrics.clone();
        let mut stop = stop_rx.clone();
        role.spawn(async move {
            loop {
                metrics.spool_bytes.set(spool.used_bytes() as i64);
                metrics.spool_unacked_entries.set(spool.unacked() as i64);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
    tracing::info!(nats = %config.nats.url_or_default(), "shipping to NATS");
    Ok(Running {
        spool,
        net_stop,
        net_tasks,
        stop_reading,
        stop_writer,
        tailer_thread,
        writer_thread,
        stop_publishing,
        publisher,
    })
}

impl Running {
    /// Stops reading, writes what was read into the spool, gives in-flight
    /// publishes a moment, and records the final acks.
    async fn stop(self, role: &Role) {
        tracing::info!("shutting down: no more reading, finishing spool writes");
        let _ = self.net_stop.send(true);
        for task in self.net_tasks {
            let _ = task.await;
        }
        self.stop_reading.store(true, Ordering::Relaxed);
        // The writer drains what the tailer sent, then exits when the
        // tailer's side of the channel closes. If the spool is full it would
        // wait forever.
        let (tailer_thread, writer_thread, stop_writer) =
            (self.tailer_thread, self.writer_thread, self.stop_writer);
        let joined = tokio::task::spawn_blocking(move || {
            let _ = tailer_thread.join();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !writer_thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop_writer.store(true, Ordering::Relaxed);
            writer_thread.join().ok()
        });
        let final_positions = joined.await.ok().flatten();
        let _ = self.stop_publishing.send(true);
        let _ = self.publisher.await;
        debug_assert!(role.is_stopping());
        // Record the final acks so a restart does not resend them.
        if let Some(positions) = final_positions
            && let Err(err) = self.spool.release(&positions.encode())
        {
            tracing::warn!(error = %err, "final spool release failed");
        }
    }
}
