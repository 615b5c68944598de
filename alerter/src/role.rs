//! What the aggregator and the alerter both run beside their own work: the
//! outbox delivery loop (either role delivers what either produced) and the
//! admin endpoint, whose `/health` fails when the role's heartbeat stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_nats::jetstream::{self, kv};
use prometheus_client::registry::Registry;
use sluice_core::record::now_nanos;
use tokio::task::JoinHandle;

use crate::deliver::Deliverer;
use crate::metrics::DeliveryMetrics;
use crate::outbox;

const NS: i64 = 1_000_000_000;

/// Why the aggregator or the alerter could not start.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// NATS could not be reached with these settings.
    #[error("nats: {0}")]
    Nats(String),
    /// The admin endpoint could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// What a role opens before its own set-up.
pub struct Opened {
    /// Delivery to the configured receivers.
    pub deliverer: Deliverer,
    /// The admin endpoint's listener.
    pub listener: tokio::net::TcpListener,
    /// JetStream (the client reconnects on its own).
    pub js: jetstream::Context,
}

/// Builds the deliverer (both roles deliver from the one outbox, so both
/// retry as `[alerter] retry_max_secs` says), binds the admin endpoint at
/// `admin` and connects to NATS as `name`.
pub async fn open(
    config: &sluice_core::config::Config,
    admin: std::net::SocketAddr,
    name: &str,
) -> Result<Opened, RoleError> {
    let backoff = crate::policy::Backoff {
        initial: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(config.alerter.retry_max_secs.max(1)),
    };
    let deliverer = Deliverer::new(&config.receivers, backoff).map_err(RoleError::Config)?;
    let listener = tokio::net::TcpListener::bind(admin)
        .await
        .map_err(|source| RoleError::Listen {
            addr: admin,
            source,
        })?;
    let client = sluice_core::nats::connect(&config.nats, name)
        .await
        .map_err(|e| RoleError::Nats(e.to_string()))?;
    Ok(Opened {
        deliverer,
        listener,
        js: jetstream::new(client),
    })
}

/// The background tasks of a role, stopped together.
pub struct Background {
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    heartbeat: Arc<AtomicI64>,
}

/// What [`Background::start`] needs.
pub struct BackgroundParts {
    /// JetStream, for the outbox.
    pub js: jetstream::Context,
    /// The outbox claims bucket.
    pub claims: kv::Store,
    /// Delivery to the configured receivers.
    pub deliverer: Deliverer,
    /// This instance's name.
    pub instance: String,
    /// Delivery metrics (registered in `registry`).
    pub metrics: DeliveryMetrics,
    /// The admin endpoint's listener.
    pub listener: tokio::net::TcpListener,
    /// Everything `/metrics` shows.
    pub registry: Registry,
    /// `/health` fails after this long without a heartbeat.
    pub stall_secs: u64,
    /// What the health failure names (`"rule evaluation"`, `"writing"`).
    pub work: &'static str,
}

impl Background {
    /// Starts delivery and the admin endpoint.
    pub fn start(p: BackgroundParts) -> Background {
        let (stop_tx, _) = tokio::sync::watch::channel(false);
        let heartbeat = Arc::new(AtomicI64::new(now_nanos()));
        let mut bg = Background {
            stop_tx,
            tasks: Vec::new(),
            heartbeat: heartbeat.clone(),
        };
        bg.tasks.push(tokio::spawn(outbox::deliver_loop(
            p.js,
            p.claims,
            p.deliverer,
            p.instance,
            p.metrics,
            bg.stopped(),
        )));
        let stall_ns = i64::try_from(p.stall_secs)
            .unwrap_or(i64::MAX / NS)
            .saturating_mul(NS);
        let work = p.work;
        let check: sluice_core::admin::HealthCheck = Arc::new(move || {
            let idle = now_nanos().saturating_sub(heartbeat.load(Ordering::Relaxed));
            if idle > stall_ns {
                Err(format!("{work} stalled for {}s", idle / NS))
            } else {
                Ok(())
            }
        });
        let admin =
            sluice_core::admin::serve(p.listener, Arc::new(p.registry), check, bg.stopped());
        bg.tasks.push(tokio::spawn(async move {
            if let Err(err) = admin.await {
                tracing::error!(error = %err, "the admin endpoint stopped");
            }
        }));
        bg
    }

    /// Completes once [`Background::stop`] was called: the signal for the
    /// role's own tasks.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop_tx.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Records that the role's work is progressing.
    pub fn beat(&self) {
        self.heartbeat.store(now_nanos(), Ordering::Relaxed);
    }

    /// The heartbeat, for tasks that beat on their own.
    pub fn heartbeat(&self) -> Arc<AtomicI64> {
        self.heartbeat.clone()
    }

    /// Completes [`Background::stopped`] for every waiter, without waiting.
    pub fn signal(&self) {
        let _ = self.stop_tx.send(true);
    }

    /// Signals every task to stop and waits for them (delivery finishes
    /// the attempts under way).
    pub async fn stop(self) {
        self.signal();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
