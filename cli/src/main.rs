//! `sluice`: the aggregation tier's command.
//!
//! ```text
//! sluice up [--config F] [--data-dir D]   everything on this machine
//! sluice filterer --config F              the stream into per-app blobs
//! sluice aggregator --config F            error groups, owners, hourly counts
//! sluice alerter --config F               alert rules and notification delivery
//! sluice query --config F                 the search API (/api/v1)
//! sluice expiry --config F                retention: move aged partitions cold, delete expired ones
//! sluice expiry plan|run --once|lifecycle|audit --config F
//! sluice search 'query' [--app A] [--since 1h]   records from the query service
//! sluice tail 'query' [--app A]           new matching records as they arrive
//! sluice request <id>                     one request across apps and services
//! sluice alerts list|silence|expire       silences and firing alerts
//! sluice check --config F                 validate a configuration file
//! ```
//!
//! `sluice up` is the first-run experience: when `[nats] url` is not set it
//! starts a local `nats-server` with JetStream under the data directory, then
//! runs the agent (with `/var/log/*.log` and `/var/log/syslog` when the file
//! configures no sources, and its syslog and HTTP endpoints on loopback
//! unless the file sets them) and every tier role in this process, and
//! prints where to look. Ctrl-C or SIGTERM stops everything cleanly.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sluice_core::config::{
    Config, FileSourceConfig, HttpConfig, Name, ReceiverConfig, ReceiverKind, SyslogConfig,
};

mod alerts;
mod expiry;
mod read;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a distributed logging system"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run everything on this machine: NATS (when not configured), the agent
    /// and the tier roles.
    Up {
        /// Configuration file (optional; defaults suit a first run).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where NATS data and the agent's spool live.
        #[arg(long, default_value = "./sluice-data")]
        data_dir: PathBuf,
        /// Port of the local nats-server started when `[nats] url` is unset
        /// (not 4222, so a system nats-server can keep that one).
        #[arg(long, default_value_t = 4322)]
        nats_port: u16,
    },
    /// Run the filterer: the stream into per-app blobs in object storage,
    /// and compaction.
    Filterer {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the error aggregator: error groups by fingerprint, owner
    /// notifications, per-hour counts.
    Aggregator {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the alerter: alert rules, system alerts, notification delivery.
    Alerter {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the query service: the search API over every app's filed logs.
    Query {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the expiry role (retention and the cold tier), or one of its
    /// commands.
    Expiry {
        /// Configuration file.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<expiry::ExpiryCmd>,
    },
    /// Search every app's logs through the query service.
    Search {
        /// The query (see the README's query language); empty for every
        /// record.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        filters: read::Filters,
        /// From how long ago (`1h`, `30m`) or since when (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Up to when (RFC 3339, or how long ago).
        #[arg(long)]
        until: Option<String>,
        /// Records shown, at most.
        #[arg(long, short = 'n', default_value_t = 100)]
        limit: usize,
        /// Oldest first (default: newest first).
        #[arg(long)]
        oldest_first: bool,
        /// Configuration file (for `[query] listen`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        endpoint: read::Endpoint,
    },
    /// Follow new records matching a query as they arrive.
    Tail {
        /// The query; empty for every record.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        filters: read::Filters,
        /// Configuration file (for `[query] listen`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        endpoint: read::Endpoint,
    },
    /// Show one request (by `request_id` or `trace_id`) across every app
    /// and service: its spans, then its records in time order.
    Request {
        /// The request or trace id.
        id: String,
        #[command(flatten)]
        filters: read::Filters,
        /// From how long ago (`1h`) or since when (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Configuration file (for `[query] listen`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        endpoint: read::Endpoint,
    },
    /// Look at and silence alerts.
    Alerts {
        /// Configuration file (for `[nats]`; defaults when absent).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: alerts::AlertsCmd,
    },
    /// Validate a configuration file and exit (exit code 2 when invalid).
    Check {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Check { config } => check(&config),
        Cmd::Filterer { config } => serve(&config, |c| {
            sluice_filterer::run(c, sluice_core::shutdown::signal())
        }),
        Cmd::Aggregator { config } => serve(&config, |c| {
            sluice_aggregator::run(c, sluice_core::shutdown::signal())
        }),
        Cmd::Alerter { config } => serve(&config, |c| {
            sluice_alerter::run(c, sluice_core::shutdown::signal())
        }),
        Cmd::Query { config } => serve(&config, |c| {
            sluice_query::run(c, sluice_core::shutdown::signal())
        }),
        Cmd::Expiry { config, command } => {
            let Some(path) = config else {
                eprintln!("error: sluice expiry needs --config FILE");
                return ExitCode::from(2);
            };
            match command {
                None | Some(expiry::ExpiryCmd::Run { once: false }) => serve(&path, |c| {
                    sluice_expiry::run(c, sluice_core::shutdown::signal())
                }),
                Some(command) => {
                    let config = match load(&path) {
                        Ok(c) => c,
                        Err(code) => return code,
                    };
                    sluice_core::telemetry::init();
                    run_role(expiry::run(config, command))
                }
            }
        }
        Cmd::Search {
            query,
            filters,
            since,
            until,
            limit,
            oldest_first,
            config,
            endpoint,
        } => client(config.as_deref(), |listen| {
            read::search(
                endpoint,
                listen,
                query,
                filters,
                since,
                until,
                limit,
                oldest_first,
            )
        }),
        Cmd::Tail {
            query,
            filters,
            config,
            endpoint,
        } => client(config.as_deref(), |listen| {
            read::tail(endpoint, listen, query, filters)
        }),
        Cmd::Request {
            id,
            filters,
            since,
            config,
            endpoint,
        } => client(config.as_deref(), |listen| {
            read::request(endpoint, listen, id, filters, since)
        }),
        Cmd::Alerts { config, command } => {
            let config = match config {
                Some(path) => match load(&path) {
                    Ok(c) => c,
                    Err(code) => return code,
                },
                None => Config::default(),
            };
            run_role(alerts::run(config, command))
        }
        Cmd::Up {
            config,
            data_dir,
            nats_port,
        } => {
            sluice_agent::priority::tune_allocator();
            sluice_core::telemetry::init();
            match up(config.as_deref(), &data_dir, nats_port) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Loads and checks a configuration file; exit code 2 when it is wrong.
fn load(path: &Path) -> Result<Config, ExitCode> {
    let config = Config::load(path).map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(2)
    })?;
    if let Err(err) = validate(&config) {
        eprintln!("error: {}: {err}", path.display());
        return Err(ExitCode::from(2));
    }
    Ok(config)
}

/// Every role's own checks (what parsing cannot check: globs compile, the
/// store URL, receivers), whichever role the file is for.
fn validate(config: &Config) -> anyhow::Result<()> {
    sluice_agent::validate(config)?;
    sluice_filterer::validate(config)?;
    sluice_aggregator::validate(config)?;
    sluice_alerter::validate(config)?;
    sluice_query::validate(config)?;
    sluice_expiry::validate(config)?;
    Ok(())
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Runs one role on a multi-threaded runtime.
fn run_role<E: std::fmt::Display>(role: impl Future<Output = Result<(), E>>) -> ExitCode {
    sluice_core::role::main(tokio::runtime::Builder::new_multi_thread(), role)
}

/// Runs a client command against the query service, which listens where
/// the configuration file (if given) says.
fn client<Fut>(
    config: Option<&Path>,
    run: impl FnOnce(Option<std::net::SocketAddr>) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let listen = match config {
        Some(path) => match load(path) {
            Ok(c) => Some(c.query.listen),
            Err(code) => return code,
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the file and runs the role `run` makes of it.
fn serve<Fut, E>(path: &Path, run: impl FnOnce(Config) -> Fut) -> ExitCode
where
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    sluice_core::telemetry::init();
    run_role(run(config))
}

/// A `nats-server` child, stopped by PID when dropped.
struct LocalNats {
    child: Child,
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn start_nats(data_dir: &Path, port: u16) -> anyhow::Result<LocalNats> {
    let binary = find_nats_server().context(
        "nats-server not found: install it with `apt-get install -y nats-server`, or set [nats] url",
    )?;
    if TcpStream::connect(("127.0.0.1", port)).is_ok() {
        bail!("port {port} is taken: set [nats] url to use that server, or pass --nats-port");
    }
    let dir = data_dir.join("nats");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join("nats-server.log");
    let child = Command::new(&binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let nats = LocalNats { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nats-server did not start; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(nats)
}

/// The agent's sources for a first run: the host's own logs, where readable.
fn default_sources() -> Vec<FileSourceConfig> {
    let Ok(app) = Name::new("host") else {
        return Vec::new();
    };
    vec![FileSourceConfig {
        include: vec!["/var/log/*.log".into(), "/var/log/syslog".into()],
        exclude: vec!["*.gz".into()],
        app,
        service: None,
        attrs: Default::default(),
        read_from: sluice_core::config::ReadFrom::End,
        max_line_bytes: 256 * 1024,
        multiline: None,
    }]
}

fn up(config_path: Option<&Path>, data_dir: &Path, nats_port: u16) -> anyhow::Result<()> {
    let mut config = match config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let _nats = match config.nats.url {
        Some(_) => None,
        None => {
            let nats = start_nats(&data_dir, nats_port)?;
            config.nats.url = Some(format!("nats://127.0.0.1:{nats_port}"));
            Some(nats)
        }
    };
    if config_path.is_none() {
        config.agent.data_dir = data_dir.join("agent");
    }
    // A first run keeps its blobs under the data directory unless the file
    // names another store.
    if config.store.url == sluice_core::config::DEFAULT_STORE_URL {
        config.store.url = format!("file://{}", data_dir.join("blobs").display());
    }
    if config.agent.files.is_empty() {
        config.agent.files = default_sources();
    }
    if config.agent.syslog.is_none() {
        config.agent.syslog = Some(SyslogConfig::default());
    }
    if config.agent.http.is_none() {
        config.agent.http = Some(HttpConfig::default());
    }
    // Without receivers, notifications go to this process's log.
    if config.receivers.is_empty() {
        config.receivers.push(ReceiverConfig {
            name: "log".into(),
            kind: ReceiverKind::Log,
            url: None,
            secret: None,
            rate_per_minute: 600,
            timeout_secs: 10,
        });
        config.aggregator.default_receiver = Some("log".into());
        config.alerter.system_receiver = Some("log".into());
    }
    validate(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // One signal stops every role; a role that fails stops the others.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let roles = vec![
            spawn_role("agent", sluice_agent::run(config.clone(), stopped())),
            spawn_role("filterer", sluice_filterer::run(config.clone(), stopped())),
            spawn_role(
                "aggregator",
                sluice_aggregator::run(config.clone(), stopped()),
            ),
            spawn_role("alerter", sluice_alerter::run(config.clone(), stopped())),
            spawn_role("query", sluice_query::run(config.clone(), stopped())),
            spawn_role("expiry", sluice_expiry::run(config.clone(), stopped())),
        ];
        let (names, mut handles): (Vec<&str>, Vec<_>) = roles.into_iter().unzip();
        // The banner once every role has bound its ports; the signal, or
        // any role ending on its own, stops them all.
        let first = {
            let any_ended = futures::future::select_all(handles.iter_mut());
            tokio::pin!(any_ended);
            let bound = tokio::select! {
                b = ports_bound(&config) => Some(b),
                _ = sluice_core::shutdown::signal() => None,
                (r, i, _) = &mut any_ended => {
                    return stop_all(stop_tx, names, handles, Some((i, flatten(r)))).await;
                }
            };
            match bound {
                Some(Ok(())) => {
                    banner(&config);
                    tokio::select! {
                        _ = sluice_core::shutdown::signal() => None,
                        (r, i, _) = any_ended => Some((i, flatten(r))),
                    }
                }
                Some(Err(port)) => {
                    let err = anyhow::anyhow!("{port} is not listening after 30s");
                    Some((usize::MAX, Err(err)))
                }
                None => None,
            }
        };
        stop_all(stop_tx, names, handles, first).await
    })?;
    Ok(())
}

/// Runs one role of `sluice up` as a task, named for its errors.
fn spawn_role<E>(
    name: &'static str,
    run: impl Future<Output = Result<(), E>> + Send + 'static,
) -> (&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)
where
    E: Into<anyhow::Error>,
{
    (
        name,
        tokio::spawn(async move { run.await.map_err(Into::into) }),
    )
}

/// Stops every role and waits for them; the first error wins. `first` is
/// the role that ended on its own (its index and result), if any.
async fn stop_all(
    stop: tokio::sync::watch::Sender<bool>,
    names: Vec<&str>,
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    first: Option<(usize, anyhow::Result<()>)>,
) -> anyhow::Result<()> {
    let _ = stop.send(true);
    let mut result = anyhow::Ok(());
    if let Some((i, Err(err))) = &first {
        let who = names.get(*i).copied().unwrap_or("sluice up");
        result = Err(anyhow::anyhow!("{who} stopped: {err:#}"));
    }
    for (i, h) in handles.into_iter().enumerate() {
        if first.as_ref().is_some_and(|(f, _)| *f == i) {
            continue;
        }
        if let Err(err) = flatten(h.await)
            && result.is_ok()
        {
            result = Err(anyhow::anyhow!("{} stopped: {err:#}", names[i]));
        }
    }
    result
}

/// Waits until every TCP port the roles listen on accepts connections (and
/// the syslog unix socket exists): `Err` names the first that does not
/// within 30 s.
async fn ports_bound(config: &Config) -> Result<(), String> {
    let mut tcp = vec![
        ("the agent's admin endpoint", config.agent.admin.listen),
        (
            "the filterer's admin endpoint",
            config.filterer.admin.listen,
        ),
        (
            "the aggregator's admin endpoint",
            config.aggregator.admin.listen,
        ),
        ("the alerter's admin endpoint", config.alerter.admin.listen),
        ("expiry's admin endpoint", config.expiry.admin.listen),
        ("the query API", config.query.listen),
    ];
    if let Some(h) = &config.agent.http {
        tcp.push(("HTTP ingestion", h.listen));
    }
    if let Some(s) = &config.agent.syslog {
        tcp.extend(s.tcp.map(|a| ("syslog TCP", a)));
        tcp.extend(s.tls.map(|a| ("syslog TLS", a)));
    }
    let unix = config.agent.syslog.as_ref().and_then(|s| s.unix.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (what, addr) in tcp {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{what} ({addr})"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if let Some(path) = unix {
        while !path.exists() {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("syslog unix socket {}", path.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Where to look, printed once everything listens.
fn banner(config: &Config) {
    let admin = config.agent.admin.listen;
    let nats_url = config.nats.url_or_default().to_string();
    println!("sluice is up");
    println!(
        "  nats:          {nats_url} (stream {})",
        config.nats.stream
    );
    println!("  agent metrics: http://{admin}/metrics");
    println!("  agent health:  http://{admin}/health");
    println!(
        "  agent spool:   {}",
        config.agent.data_dir.join("spool").display()
    );
    println!("  blobs:         {}", config.store.url);
    println!(
        "  filterer:      http://{}/metrics",
        config.filterer.admin.listen
    );
    println!(
        "  aggregator:    http://{}/metrics",
        config.aggregator.admin.listen
    );
    println!(
        "  alerter:       http://{}/metrics ({} rules)",
        config.alerter.admin.listen,
        config.alerter.rules.len()
    );
    let e = &config.expiry;
    let retention = if e.rules.is_empty()
        && e.default.cold_after_days.is_none()
        && e.default.delete_after_days.is_none()
    {
        "keeps everything".to_string()
    } else {
        format!("{} rules", e.rules.len())
    };
    println!(
        "  expiry:        http://{}/metrics ({retention})",
        e.admin.listen
    );
    println!(
        "  search:        http://{}/api/v1/logs/search?query=error",
        config.query.listen
    );
    for r in &config.receivers {
        let target = r.url.as_deref().unwrap_or("the process log");
        println!("  receiver:      {} ({:?}) -> {target}", r.name, r.kind);
    }
    if let Some(s) = &config.agent.syslog {
        for (kind, addr) in [("udp", s.udp), ("tcp", s.tcp), ("tls", s.tls)] {
            if let Some(addr) = addr {
                println!("  syslog:        {kind}://{addr} (app {})", s.app);
            }
        }
        if let Some(path) = &s.unix {
            println!("  syslog:        unix:{} (app {})", path.display(), s.app);
        }
    }
    if let Some(h) = &config.agent.http {
        println!("  http ingest:   POST http://{}/api/v1/logs", h.listen);
    }
    for f in &config.agent.files {
        println!("  tailing:       {} (app {})", f.include.join(", "), f.app);
    }
    println!("press ctrl-c to stop");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

fn flatten(joined: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    joined.map_err(anyhow::Error::from)?
}
