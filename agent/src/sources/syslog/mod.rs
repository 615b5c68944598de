//! The syslog endpoint: UDP, TCP, TLS (RFC 5425) and a unix datagram
//! socket, all feeding the spool writer like the file tailer does.
//!
//! - RFC 3164 and RFC 5424 are told apart per message ([`parse`]); TCP and
//!   TLS accept octet-counted and newline-framed messages on one connection
//!   ([`framing`], RFC 6587).
//! - Mapping: severity → `level`, HOSTNAME → `host` (else the sender's IP
//!   address), APP-NAME or TAG → `service` (normalised; the raw value is
//!   kept in `attrs["syslog.appname"]` when it changed), facility, PROCID,
//!   MSGID and structured data → `attrs`. `app` is the listener's `app`,
//!   or `app_map[APP-NAME]`.
//! - Nothing is dropped silently: malformed, oversized, cut-off and
//!   non-UTF-8 messages are kept, flagged in `attrs` and counted.
//! - Streams wait when the spool writer is behind (TCP back-pressure).
//!   Datagrams cannot wait: while the spool is nearly full they are dropped
//!   and counted, and the kernel's own drops on the UDP socket are exported.
//! - Limits: message size, connections per listener, idle timeout.

pub mod framing;
pub mod parse;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sluice_core::config::{Name, SyslogConfig};
use sluice_core::names;
use sluice_core::record::{ATTR_LOSSY, ATTR_TRUNCATED, now_nanos};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;

use crate::AgentError;
use crate::metrics::AgentMetrics;
use crate::pipeline::spool::Spool;
use crate::sources::net::{ConnLimit, SourceStats, send_all, stopped};
use crate::sources::{Chunk, ChunkSender, LineRecord};
use framing::{Frame, Framer};
use parse::{ParseOptions, Zone};

/// Attribute holding the raw APP-NAME when it had to be normalised.
pub const ATTR_APPNAME: &str = "syslog.appname";
/// Attribute set when a stream frame was cut off by the connection closing.
pub const ATTR_INCOMPLETE: &str = "syslog.incomplete";
pub use parse::ATTR_MALFORMED;

/// The rejection reason of a datagram dropped because the spool is nearly full.
const SPOOL_FULL: &str = "spool_full";

/// Largest datagram read.
const MAX_DATAGRAM: usize = 64 * 1024;
/// Messages gathered from a datagram socket before they are handed on.
const DATAGRAM_BATCH: usize = 2_048;
/// Datagrams are dropped while the spool has less room than this (or an
/// eighth of the spool, when that is smaller), so they never wait behind a
/// full spool while their socket buffer overflows.
const DATAGRAM_SPOOL_RESERVE: u64 = 4 << 20;
/// Bytes read from a stream per call.
const READ_BYTES: usize = 64 * 1024;
/// Time allowed for a TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Settings shared by every syslog listener.
struct Ctx {
    app: Arc<str>,
    app_map: BTreeMap<String, Arc<str>>,
    service: Arc<str>,
    zone: Zone,
    max_message_bytes: usize,
    idle_timeout: Duration,
    metrics: AgentMetrics,
}

/// Binds every configured listener and starts serving; the tasks end once
/// `stop` turns true.
pub async fn start(
    config: &SyslogConfig,
    tx: ChunkSender,
    spool: Arc<Spool>,
    metrics: AgentMetrics,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, AgentError> {
    let zone = config
        .timezone
        .parse::<Zone>()
        .map_err(AgentError::config)?;
    let ctx = Arc::new(Ctx {
        app: Arc::from(config.app.as_str()),
        app_map: config
            .app_map
            .iter()
            .map(|(k, v): (&String, &Name)| (k.clone(), Arc::from(v.as_str())))
            .collect(),
        service: Arc::from(config.service.as_str()),
        zone,
        max_message_bytes: config.max_message_bytes,
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        metrics: metrics.clone(),
    });
    let mut tasks = Vec::new();
    if let Some(addr) = config.udp {
        let socket = bind_udp(addr, config.udp_recv_buffer_bytes)?;
        tracing::info!(%addr, "syslog listening on UDP");
        let dgram = Datagrams::Udp(socket);
        watch_kernel_drops(&dgram, &metrics, stop.clone());
        tasks.push(tokio::spawn(serve_datagrams(
            dgram,
            ctx.clone(),
            tx.clone(),
            spool.clone(),
            stop.clone(),
        )));
    }
    if let Some(path) = &config.unix {
        let socket = bind_unix(path)?;
        tracing::info!(path = %path.display(), "syslog listening on a unix socket");
        let path = path.clone();
        let task = serve_datagrams(
            Datagrams::Unix(socket),
            ctx.clone(),
            tx.clone(),
            spool.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            task.await;
            let _ = std::fs::remove_file(&path);
        }));
    }
    if let Some(addr) = config.tcp {
        let listener = bind_tcp(addr).await?;
        tracing::info!(%addr, "syslog listening on TCP");
        let stats = SourceStats::new(&metrics, "syslog_tcp");
        let limit = ConnLimit::new(config.max_connections, stats.clone());
        tasks.push(tokio::spawn(accept_loop(
            listener,
            None,
            limit,
            stats,
            ctx.clone(),
            tx.clone(),
            stop.clone(),
        )));
    }
    if let Some(addr) = config.tls {
        let acceptor = tls_acceptor(config)?;
        let listener = bind_tcp(addr).await?;
        tracing::info!(%addr, "syslog listening on TLS");
        let stats = SourceStats::new(&metrics, "syslog_tls");
        let limit = ConnLimit::new(config.max_connections, stats.clone());
        tasks.push(tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            limit,
            stats,
            ctx.clone(),
            tx.clone(),
            stop.clone(),
        )));
    }
    Ok(tasks)
}

fn listen_error(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::listen(addr, source)
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr).await.map_err(listen_error(addr))
}

/// A UDP socket with the receive buffer asked for (the kernel caps it at
/// `net.core.rmem_max`; the size obtained is logged).
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> Result<UdpSocket, AgentError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = listen_error(addr);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(listen_error(addr))?;
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
        tracing::warn!(error = %e, "cannot set the UDP receive buffer size");
    }
    let got = socket.recv_buffer_size().unwrap_or(0);
    if got < recv_buffer {
        tracing::warn!(
            requested = recv_buffer,
            obtained = got,
            "UDP receive buffer capped by the kernel; raise net.core.rmem_max to absorb bursts"
        );
    }
    socket.set_nonblocking(true).map_err(listen_error(addr))?;
    socket.bind(&addr.into()).map_err(listen_error(addr))?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

/// A unix datagram socket at `path`, replacing a stale one, writable by
/// every local user like `/dev/log`.
fn bind_unix(path: &Path) -> Result<UnixDatagram, AgentError> {
    let fail = |e: std::io::Error| {
        AgentError::config(format!(
            "[agent.syslog] cannot listen on {}: {e}",
            path.display()
        ))
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(fail(std::io::Error::other(
                    "the path exists and is not a socket",
                )));
            }
            std::fs::remove_file(path).map_err(fail)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let socket = UnixDatagram::bind(path).map_err(fail)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
    Ok(socket)
}

fn tls_acceptor(config: &SyslogConfig) -> Result<tokio_rustls::TlsAcceptor, AgentError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    sluice_core::nats::install_crypto_provider();
    let fail = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        AgentError::config(format!("[agent.syslog] {what} {}: {e}", path.display()))
    };
    let (Some(cert_file), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(AgentError::config(
            "[agent.syslog] tls needs tls_cert_file and tls_key_file",
        ));
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail("cannot read certificates from", cert_file, &e))?;
    if certs.is_empty() {
        return Err(fail("no certificate in", cert_file, &"empty"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| fail("cannot read the private key from", key_file, &e))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.tls_client_ca_file {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| fail("cannot read CA certificates from", ca_file, &e))?;
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| fail("invalid CA certificate in", ca_file, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| fail("unusable client CA in", ca_file, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail("certificate and key do not fit:", cert_file, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Gathers one read's messages into chunks per (app, service, host).
struct Batcher {
    ctx: Arc<Ctx>,
    stats: SourceStats,
    source: Arc<str>,
    /// The sender's address, the `host` of messages without HOSTNAME.
    peer: Option<Arc<str>>,
    peer_ip: Option<IpAddr>,
    groups: Vec<Chunk>,
    records: u64,
    bytes: u64,
    truncated: u64,
    incomplete: u64,
    malformed: u64,
    lossy: u64,
    normalized: u64,
}

impl Batcher {
    fn new(ctx: Arc<Ctx>, stats: SourceStats, peer: Option<IpAddr>) -> Batcher {
        let source = Arc::from(format!(
            "syslog:{}",
            stats.source.trim_start_matches("syslog_")
        ));
        Batcher {
            ctx,
            stats,
            source,
            peer: peer.map(|ip| Arc::from(ip.to_string())),
            peer_ip: peer,
            groups: Vec::new(),
            records: 0,
            bytes: 0,
            truncated: 0,
            incomplete: 0,
            malformed: 0,
            lossy: 0,
            normalized: 0,
        }
    }

    /// The sender of the next messages; the address text is only built
    /// again when the sender changes.
    fn set_peer(&mut self, peer: Option<IpAddr>) {
        if peer != self.peer_ip {
            self.peer_ip = peer;
            self.peer = peer.map(|ip| Arc::from(ip.to_string()));
        }
    }

    fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Parses one message and files it under its group. `truncated` holds
    /// the original length when the message was cut (`0`: unknown).
    fn push(
        &mut self,
        data: &[u8],
        truncated: Option<usize>,
        incomplete: bool,
        opts: &ParseOptions,
    ) {
        let parsed = parse::parse(data, opts);
        let mut attrs = parsed.attrs;
        self.records += 1;
        self.bytes += data.len() as u64;
        if let Some(len) = truncated {
            let value = if len > 0 {
                len.to_string()
            } else {
                "true".into()
            };
            attrs.insert(ATTR_TRUNCATED.into(), value);
            self.truncated += 1;
        }
        if incomplete {
            attrs
                .entry(ATTR_TRUNCATED.into())
                .or_insert_with(|| "true".into());
            attrs.insert(ATTR_INCOMPLETE.into(), "true".into());
            self.incomplete += 1;
        }
        if attrs.contains_key(ATTR_MALFORMED) {
            self.malformed += 1;
        }
        if attrs.contains_key(ATTR_LOSSY) {
            self.lossy += 1;
        }
        let app = parsed
            .app_name
            .as_deref()
            .and_then(|name| self.ctx.app_map.get(name))
            .unwrap_or(&self.ctx.app)
            .clone();
        let service = match parsed.app_name {
            Some(raw) => match names::normalize(&raw) {
                std::borrow::Cow::Borrowed(_) => raw,
                std::borrow::Cow::Owned(fixed) => {
                    self.normalized += 1;
                    attrs.insert(ATTR_APPNAME.into(), raw);
                    fixed
                }
            },
            None => self.ctx.service.to_string(),
        };
        let record = LineRecord {
            ts: parsed.ts,
            level: parsed.level,
            msg: parsed.msg,
            attrs,
        };
        // HOSTNAME, else the sender's address.
        let host = parsed.host.as_deref().or(self.peer.as_deref());
        let group = self
            .groups
            .iter_mut()
            .find(|g| *g.app == *app && *g.service == *service && g.host.as_deref() == host);
        match group {
            Some(g) => g.records.push(record),
            None => self.groups.push(Chunk {
                app,
                service: Arc::from(service),
                host: host.map(Arc::from),
                source: self.source.clone(),
                pos: None,
                records: vec![record],
                ids: Vec::new(),
                durable: None,
            }),
        }
    }

    fn push_frame(&mut self, frame: &Frame, opts: &ParseOptions) {
        self.push(
            &frame.data,
            frame.truncated.then_some(0),
            frame.incomplete,
            opts,
        );
    }

    /// Counts the batch and hands it to the writer. False when the writer
    /// has stopped.
    async fn flush(&mut self, tx: &ChunkSender) -> bool {
        if self.groups.is_empty() {
            return true;
        }
        self.count();
        send_all(tx, self.groups.drain(..)).await
    }

    /// Counts the batch as dropped instead (datagrams, spool full).
    fn drop_batch(&mut self, reason: &str) {
        self.stats.rejected(reason, self.records);
        self.groups.clear();
        self.reset();
    }

    fn count(&mut self) {
        self.stats.records.inc_by(self.records);
        self.stats.bytes.inc_by(self.bytes);
        self.stats.flagged("truncated", self.truncated);
        self.stats.flagged("incomplete", self.incomplete);
        self.stats.flagged("malformed", self.malformed);
        self.stats.flagged("lossy", self.lossy);
        self.ctx.metrics.names_normalized.inc_by(self.normalized);
        self.reset();
    }

    fn reset(&mut self) {
        self.records = 0;
        self.bytes = 0;
        self.truncated = 0;
        self.incomplete = 0;
        self.malformed = 0;
        self.lossy = 0;
        self.normalized = 0;
    }
}

fn parse_options(ctx: &Ctx) -> ParseOptions {
    ParseOptions {
        zone: ctx.zone,
        now_ns: now_nanos(),
    }
}

/// A datagram socket of either family.
enum Datagrams {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Datagrams {
    fn source(&self) -> &'static str {
        match self {
            Datagrams::Udp(_) => "syslog_udp",
            Datagrams::Unix(_) => "syslog_unix",
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Option<IpAddr>)> {
        match self {
            Datagrams::Udp(s) => s.recv_from(buf).await.map(|(n, a)| (n, Some(a.ip()))),
            Datagrams::Unix(s) => s.recv(buf).await.map(|n| (n, None)),
        }
    }

    fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Option<IpAddr>)> {
        match self {
            Datagrams::Udp(s) => s.try_recv_from(buf).map(|(n, a)| (n, Some(a.ip()))),
            Datagrams::Unix(s) => s.try_recv(buf).map(|n| (n, None)),
        }
    }
}

/// Receives datagrams, one message each, in batches of what is queued.
async fn serve_datagrams(
    socket: Datagrams,
    ctx: Arc<Ctx>,
    tx: ChunkSender,
    spool: Arc<Spool>,
    mut stop: watch::Receiver<bool>,
) {
    let stats = SourceStats::new(&ctx.metrics, socket.source());
    // The one way this listener drops datagrams, shown from the start (at
    // 0) so a dashboard and the benchmark can read it before any drop.
    stats.rejected(SPOOL_FULL, 0);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Datagrams of different senders batch together; each keeps its own
    // sender's address as the fallback host.
    let mut batch = Batcher::new(ctx.clone(), stats.clone(), None);
    loop {
        let first = tokio::select! {
            r = socket.recv(&mut buf) => r,
            _ = stopped(&mut stop) => break,
        };
        let opts = parse_options(&ctx);
        let mut next = first;
        let mut taken = 0;
        loop {
            match next {
                Ok((n, peer)) => {
                    let cut = n.min(ctx.max_message_bytes);
                    batch.set_peer(peer);
                    batch.push(&buf[..cut], (n > cut).then_some(n), false, &opts);
                    taken += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "syslog datagram receive failed");
                    break;
                }
            }
            if taken >= DATAGRAM_BATCH {
                break;
            }
            next = socket.try_recv(&mut buf);
        }
        if batch.is_empty() {
            continue;
        }
        if spool.free_bytes() < DATAGRAM_SPOOL_RESERVE.min(spool.capacity() / 8) {
            batch.drop_batch(SPOOL_FULL);
            continue;
        }
        if !batch.flush(&tx).await {
            break;
        }
    }
}

/// Exports the kernel's drop count of a UDP socket, read from
/// `/proc/net/udp[6]` by the socket's inode.
fn watch_kernel_drops(socket: &Datagrams, metrics: &AgentMetrics, mut stop: watch::Receiver<bool>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let Datagrams::Udp(udp) = socket else {
        return;
    };
    let Ok(meta) = std::fs::metadata(format!("/proc/self/fd/{}", udp.as_raw_fd())) else {
        return;
    };
    let inode = meta.ino();
    let gauge = metrics.udp_kernel_drops.clone();
    tokio::spawn(async move {
        loop {
            if let Some(drops) = udp_drops(inode) {
                gauge.set(drops as i64);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    });
}

/// The `drops` column of the `/proc/net/udp` line with this inode.
fn udp_drops(inode: u64) -> Option<u64> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 13 && cols[9].parse::<u64>().ok() == Some(inode) {
                return cols[12].parse().ok();
            }
        }
    }
    None
}

/// Accepts TCP (or TLS) connections within the limit.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limit: ConnLimit,
    stats: SourceStats,
    ctx: Arc<Ctx>,
    tx: ChunkSender,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let Some(guard) = limit.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let tx = tx.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match tls {
                None => serve_stream(stream, peer, ctx, stats, tx, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_stream(stream, peer, ctx, stats, tx, stop).await,
                        Ok(Err(e)) => {
                            stats.closed("tls");
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => stats.closed("tls"),
                    }
                }
            }
        });
    }
}

/// Reads one connection to its end: frames, parses, batches per read.
async fn serve_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    stats: SourceStats,
    tx: ChunkSender,
    mut stop: watch::Receiver<bool>,
) {
    let mut framer = Framer::new(ctx.max_message_bytes);
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let mut batch = Batcher::new(ctx.clone(), stats.clone(), Some(peer.ip()));
    loop {
        buf.reserve(READ_BYTES);
        let read = tokio::select! {
            r = tokio::time::timeout(ctx.idle_timeout, stream.read_buf(&mut buf)) => r,
            _ = stopped(&mut stop) => break,
        };
        let opts = parse_options(&ctx);
        let eof = match read {
            Ok(Ok(0)) => true,
            Ok(Ok(_)) => false,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "syslog connection read failed");
                true
            }
            Err(_) => {
                stats.closed("idle");
                tracing::debug!(%peer, "idle syslog connection closed");
                true
            }
        };
        loop {
            let frame = if eof {
                framer.decode_eof(&mut buf)
            } else {
                framer.decode(&mut buf)
            };
            match frame {
                Ok(Some(frame)) => batch.push_frame(&frame, &opts),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.flush(&tx).await || eof {
            break;
        }
    }
}
