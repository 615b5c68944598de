//! The role runtime: the one way every long-running Sluice process starts,
//! runs its tasks, serves its admin endpoint and stops.
//!
//! ```text
//!  Role::start(spec, registry, shutdown)   binds the admin endpoint first (or fails: RoleError::Listen)
//!    │                                     and serves /metrics, /health, /ready
//!    ├─ role.connect(&config.nats)         a NATS client named "sluice-<role> <instance>"
//!    ├─ role.until_ready("…", setup)       retries set-up with backoff until it works or the role stops
//!    ├─ role.spawn(task)                   tracked tasks; each watches role.stopping()
//!    ├─ role.heartbeat(…), role.health(…)  what /health judges
//!    ├─ role.set_ready()                   /ready answers 200
//!    └─ role.finish()                      waits for the tasks, then stops the admin endpoint
//! ```
//!
//! Invariants:
//!
//! * **One stop signal.** A role stops when the `shutdown` future given to
//!   [`Role::start`] completes (SIGTERM or Ctrl-C in the binaries, a channel
//!   in tests) or when any part calls [`Role::stop`]. Both cancel one
//!   [`CancellationToken`]; every wait of the runtime (set-up retries,
//!   backoff sleeps) watches it, so a role waiting for an unreachable NATS
//!   stops within a second.
//! * **Ports first.** The admin endpoint is bound before anything else, so a
//!   role that cannot listen fails at once, with the address, and a caller
//!   that sees the endpoint answer knows the role is up.
//! * **Admin last.** `/metrics` and `/health` keep answering while the tasks
//!   drain and stop only after [`Role::finish`] has waited for them (at most
//!   [`FINISH_GRACE`]).
//! * **One identity rule.** A tier role's instance id is its section's `id`,
//!   else the host name, made a valid name ([`instance_id`]): it appears in
//!   logs, metrics, blob names and the NATS connection name. Claims (KV
//!   compare-and-set ownership of a job) use [`Role::claimant`], the
//!   instance id plus a random suffix made at start, so two processes with
//!   one id never mistake each other's claims for their own.
//! * `/ready` answers 503 until [`Role::set_ready`] (set-up done), 200 after,
//!   and 503 again once the role is stopping; `/health` answers 503 naming
//!   the first failing check (a stalled heartbeat, a store that refuses).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin};
use crate::backoff::Backoff;
use crate::config::{NatsConfig, host_name};
use crate::record::now_nanos;
use crate::time::{NS_PER_SEC, secs_to_ns};

/// How long [`Role::finish`] waits for the role's tasks.
pub const FINISH_GRACE: Duration = Duration::from_secs(30);

/// Why a role could not start or run: what every role shares. Each is
/// permanent (retrying with the same settings cannot help); what can be
/// retried is retried inside the role instead.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The admin endpoint (or another of the role's ports) could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// NATS cannot be used with these settings.
    #[error("nats: {0}")]
    Nats(String),
    /// The object store cannot be opened with these settings.
    #[error("store: {0}")]
    Store(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// A tier role's instance id: `configured`, else the host name, made a
/// valid name (see [`crate::names::normalize`]).
pub fn instance_id(configured: Option<&str>) -> String {
    let id = configured.map_or_else(host_name, str::to_string);
    crate::names::normalize(&id).into_owned()
}

/// [`Role::until_ready`] for a task that does not hold the role: runs
/// `attempt` until it succeeds or `stop` is cancelled (`None`), with
/// backoff from 0.5 s to 10 s between tries.
pub async fn retry_until<T, Fut>(
    stop: &CancellationToken,
    role: &str,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: Future<Output = Result<T, String>>,
{
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    for n in 0u32.. {
        let outcome = tokio::select! {
            r = attempt() => r,
            _ = stop.cancelled() => return None,
        };
        match outcome {
            Ok(v) => return Some(v),
            Err(err) => tracing::warn!(role, error = %err, "cannot set up {what} yet, retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.delay(n)) => {}
            _ = stop.cancelled() => return None,
        }
    }
    None
}

/// The `main` of every role binary: runs `run` to completion on the runtime
/// `runtime` builds and turns its outcome into the exit code, 0 when the
/// role stopped cleanly, 1 when it failed (the error on stderr and in the
/// log).
pub fn main<E: std::fmt::Display>(
    mut runtime: tokio::runtime::Builder,
    run: impl Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "stopped with an error");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What a role is, for [`Role::start`].
#[derive(Debug, Clone)]
pub struct RoleSpec {
    /// The role's name: `agent`, `filterer`, `aggregator`, `alerter` …
    pub name: &'static str,
    /// The instance id (see [`instance_id`]; the agent passes its agent id).
    pub instance: String,
    /// Where the admin endpoint listens.
    pub admin: SocketAddr,
    /// What else the endpoint serves besides `/metrics`, `/health` and
    /// `/ready`: a role's own API (the query service's `/api/v1`).
    pub routes: axum::Router,
}

impl RoleSpec {
    /// The same, also serving `routes` on the admin endpoint.
    pub fn with_routes(mut self, routes: axum::Router) -> RoleSpec {
        self.routes = routes;
        self
    }

    /// A tier role: its instance id is its section's `id`, else the host
    /// name, made a valid name ([`instance_id`]).
    pub fn tier(name: &'static str, configured_id: Option<&str>, admin: SocketAddr) -> RoleSpec {
        RoleSpec {
            name,
            instance: instance_id(configured_id),
            admin,
            routes: axum::Router::new(),
        }
    }
}

/// A role's progress, as one heartbeat: `/health` fails when it has not
/// beaten for the stall time given to [`Role::heartbeat`].
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    /// Records that the work is progressing.
    pub fn beat(&self) {
        self.0.store(now_nanos(), Ordering::Relaxed);
    }
}

/// Reports whether part of the process is healthy: `Err(reason)` when not.
pub type HealthCheck = admin::HealthCheck;

#[derive(Default)]
struct Checks {
    checks: Mutex<Vec<HealthCheck>>,
    ready: AtomicBool,
}

/// A running role; see the module docs.
pub struct Role {
    name: &'static str,
    instance: String,
    claimant: String,
    stop: CancellationToken,
    tracker: TaskTracker,
    checks: Arc<Checks>,
    admin_stop: CancellationToken,
    admin: JoinHandle<()>,
    admin_addr: SocketAddr,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("name", &self.name)
            .field("instance", &self.instance)
            .field("admin", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Role {
    /// Binds the admin endpoint and starts serving `registry` on it; the
    /// role stops when `shutdown` completes.
    pub async fn start(
        spec: RoleSpec,
        registry: Registry,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Role, RoleError> {
        let listener = tokio::net::TcpListener::bind(spec.admin)
            .await
            .map_err(|source| RoleError::Listen {
                addr: spec.admin,
                source,
            })?;
        let admin_addr = listener.local_addr().unwrap_or(spec.admin);
        let stop = CancellationToken::new();
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown => stop.cancel(),
                    _ = stop.cancelled() => {}
                }
            });
        }
        let checks = Arc::new(Checks::default());
        let admin_stop = CancellationToken::new();
        let admin = {
            let (health, ready) = (checks.clone(), checks.clone());
            let stopping = stop.clone();
            let served = Admin {
                registry: Arc::new(registry),
                health: Arc::new(move || {
                    let checks = health.checks.lock().unwrap_or_else(PoisonError::into_inner);
                    checks.iter().try_for_each(|check| check())
                }),
                ready: Arc::new(move || {
                    if stopping.is_cancelled() {
                        Err("stopping".to_string())
                    } else if ready.ready.load(Ordering::Relaxed) {
                        Ok(())
                    } else {
                        Err("starting: setting up".to_string())
                    }
                }),
            };
            let until = admin_stop.clone().cancelled_owned();
            let name = spec.name;
            let routes = spec.routes;
            tokio::spawn(async move {
                if let Err(err) = admin::serve(listener, served, routes, until).await {
                    tracing::error!(role = name, error = %err, "the admin endpoint stopped");
                }
            })
        };
        let claimant = format!("{}:{}", spec.instance, ulid::Ulid::new());
        tracing::info!(instance = %spec.instance, admin = %admin_addr, "{} starting", spec.name);
        Ok(Role {
            name: spec.name,
            instance: spec.instance,
            claimant,
            stop,
            tracker: TaskTracker::new(),
            checks,
            admin_stop,
            admin,
            admin_addr,
        })
    }

    /// The role's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Who this process is in claims: the instance id and a random suffix.
    pub fn claimant(&self) -> &str {
        &self.claimant
    }

    /// Where the admin endpoint listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Completes once the role is stopping; for the role's tasks.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stop.clone().cancelled_owned()
    }

    /// The stop token, for tasks that check it without waiting.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Whether the role is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops the role (for a part that cannot go on).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Connects to NATS as `sluice-<role> <instance>`. Never fails because
    /// the server is down (the client keeps reconnecting); only bad
    /// settings are errors.
    pub async fn connect(&self, nats: &NatsConfig) -> Result<async_nats::Client, RoleError> {
        let name = format!("sluice-{} {}", self.name, self.instance);
        crate::nats::connect(nats, &name)
            .await
            .map_err(|e| RoleError::Nats(e.to_string()))
    }

    /// A JetStream context on [`Role::connect`]'s client.
    pub async fn jetstream(
        &self,
        nats: &NatsConfig,
    ) -> Result<async_nats::jetstream::Context, RoleError> {
        Ok(async_nats::jetstream::new(self.connect(nats).await?))
    }

    /// Runs `attempt` until it succeeds, logging each failure and waiting
    /// with backoff (0.5 s doubling to 10 s) between tries; `None` when the
    /// role stops first. For the set-up a role needs before it can work
    /// (streams, consumers, buckets), so a role started before NATS waits
    /// for it, and stops when told even then.
    pub async fn until_ready<T, Fut>(&self, what: &str, attempt: impl FnMut() -> Fut) -> Option<T>
    where
        Fut: Future<Output = Result<T, String>>,
    {
        retry_until(&self.stop, self.name, what, attempt).await
    }

    /// Spawns one of the role's tasks; [`Role::finish`] waits for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Adds a check `/health` runs.
    pub fn health(&self, check: HealthCheck) {
        self.checks
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(check);
    }

    /// A heartbeat `/health` judges: it fails, naming `work`, once the
    /// heartbeat has not beaten for `stall_secs`.
    pub fn heartbeat(&self, work: &'static str, stall_secs: u64) -> Heartbeat {
        let beat = Heartbeat(Arc::new(AtomicI64::new(now_nanos())));
        let stall_ns = secs_to_ns(stall_secs);
        let last = beat.0.clone();
        self.health(Arc::new(move || {
            let idle = now_nanos().saturating_sub(last.load(Ordering::Relaxed));
            if idle > stall_ns {
                Err(format!("{work} stalled for {}s", idle / NS_PER_SEC))
            } else {
                Ok(())
            }
        }));
        beat
    }

    /// Marks set-up done: `/ready` answers 200 from now on.
    pub fn set_ready(&self) {
        self.checks.ready.store(true, Ordering::Relaxed);
        tracing::info!(instance = %self.instance, admin = %self.admin_addr, "{} running", self.name);
    }

    /// Stops the role (if it is not stopping already), waits for its tasks
    /// (at most [`FINISH_GRACE`]), then stops the admin endpoint.
    pub async fn finish(self) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(FINISH_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                role = self.name,
                tasks = self.tracker.len(),
                "tasks still running after the grace period; stopping anyway"
            );
        }
        self.admin_stop.cancel();
        let _ = self.admin.await;
        tracing::info!("{} stopped", self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_valid_names() {
        assert_eq!(instance_id(Some("Filterer.1")), "filterer-1");
        assert_eq!(instance_id(Some("f1")), "f1");
        assert!(crate::names::is_valid(&instance_id(None)));
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    fn spec() -> RoleSpec {
        RoleSpec {
            name: "test",
            instance: "t1".into(),
            admin: "127.0.0.1:0".parse().unwrap(),
            routes: axum::Router::new(),
        }
    }

    #[tokio::test]
    async fn ready_health_and_stop() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let role = Role::start(spec(), Registry::default(), async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let addr = role.admin_addr();
        assert_eq!(get(addr, "/ready").await.0, 503);
        assert_eq!(get(addr, "/health").await.0, 200);
        role.set_ready();
        assert_eq!(get(addr, "/ready").await.0, 200);
        let beat = role.heartbeat("work", 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, body) = get(addr, "/health").await;
        assert_eq!((status, body.trim()), (503, "work stalled for 1s"));
        beat.beat();
        let stopping = role.stopping();
        let task = role.spawn(async move {
            stopping.await;
            7
        });
        assert!(!role.is_stopping());
        tx.send(()).unwrap();
        assert_eq!(task.await.unwrap(), 7);
        assert!(role.is_stopping());
        assert_eq!(get(addr, "/ready").await.0, 503);
        role.finish().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn set_up_retries_until_stopped() {
        let role = Role::start(spec(), Registry::default(), std::future::pending())
            .await
            .unwrap();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let got = role
            .until_ready("a thing", || async {
                let n = tries.fetch_add(1, Ordering::Relaxed);
                if n < 2 { Err("not yet".into()) } else { Ok(n) }
            })
            .await;
        assert_eq!(got, Some(2));
        let stopper = role.token();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stopper.cancel();
        });
        let started = std::time::Instant::now();
        let never: Option<()> = role
            .until_ready("NATS", || async { Err("unreachable".into()) })
            .await;
        assert!(never.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        role.finish().await;
    }

    #[tokio::test]
    async fn a_taken_port_is_a_listen_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = spec();
        s.admin = taken.local_addr().unwrap();
        let err = Role::start(s, Registry::default(), std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(err, RoleError::Listen { .. }), "{err}");
        assert!(err.to_string().starts_with("cannot listen on 127.0.0.1:"));
    }
}
