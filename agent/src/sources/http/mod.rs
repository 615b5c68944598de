//! HTTP ingestion: `POST /api/v1/logs`.
//!
//! The body is one JSON object, an array of them, or NDJSON, optionally
//! gzip-encoded ([`body`] documents the fields). The answer comes only once
//! every record is fsynced into the spool:
//!
//! | Status | When |
//! | --- | --- |
//! | 200 | `{"status":"success","log_id":"…"}` for a single object, `{"status":"success","log_ids":[…]}` for an array or NDJSON, ids in posted order |
//! | 400 | invalid JSON, gzip or field: `{"status":"error","error":"…","item":N,"field":"…"}` |
//! | 401 | a token is configured and the request lacks `Authorization: Bearer <token>` |
//! | 408 | the body did not arrive within `timeout_secs` |
//! | 413 | the body, before or after gzip decoding, is over `max_body_bytes` |
//! | 415 | a `Content-Encoding` other than gzip or identity |
//! | 429 | more than `max_in_flight_bytes` of bodies are being handled (`Retry-After`) |
//! | 503 | the spool is full, or the agent is stopping (`Retry-After`) |
//!
//! A 503 given after the records were handed to the spool writer (the
//! writer stopped, or did not confirm in time) means they may or may not be
//! kept; a client that retries may then store them twice, under new ids.
//!
//! Connections are capped (`max_connections`), and a client that is slow
//! to send its headers or body is cut off after `timeout_secs`, so neither
//! slow clients nor floods of idle connections keep others from being
//! served.

pub mod body;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sluice_core::config::HttpConfig;
use sluice_core::record::{ATTR_TRUNCATED, now_nanos};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::AgentError;
use crate::metrics::{AgentMetrics, label};
use crate::pipeline::spool::Spool;
use crate::sources::net::{ConnLimit, SourceStats, send_all, stopped};
use crate::sources::{Chunk, ChunkSender, Durable, LineRecord};
use body::{BodyError, GunzipError, Limits, Posted};

/// Bodies larger than this are decoded off the async workers.
const INLINE_DECODE_BYTES: usize = 256 * 1024;
/// `Retry-After` while too much is in flight, seconds.
const RETRY_BUSY_SECS: u32 = 1;
/// `Retry-After` while the spool is full, seconds.
const RETRY_FULL_SECS: u32 = 5;
/// Time allowed to finish in-flight requests when stopping.
const DRAIN: Duration = Duration::from_secs(10);

struct Ctx {
    app: Arc<str>,
    service: Arc<str>,
    token: Option<String>,
    limits: Limits,
    max_body_bytes: usize,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    in_flight_max: usize,
    spool: Arc<Spool>,
    tx: ChunkSender,
    stats: SourceStats,
}

/// Binds the listener and starts serving until `stop` turns true; in-flight
/// requests are then given a moment to finish.
pub async fn start(
    config: &HttpConfig,
    tx: ChunkSender,
    spool: Arc<Spool>,
    metrics: AgentMetrics,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, AgentError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AgentError::listen(config.listen, source))?;
    tracing::info!(addr = %config.listen, "HTTP ingestion listening");
    let stats = SourceStats::new(&metrics, "http");
    let in_flight_max = config.max_in_flight_bytes.min(u32::MAX as usize);
    let ctx = Arc::new(Ctx {
        app: Arc::from(config.app.as_str()),
        service: Arc::from(config.service.as_str()),
        token: config.token.clone(),
        limits: Limits {
            max_message_bytes: config.max_message_bytes,
            max_attrs_bytes: config.max_metadata_bytes,
            max_items: config.max_records,
        },
        max_body_bytes: config.max_body_bytes,
        timeout: Duration::from_secs(config.timeout_secs.max(1)),
        in_flight: Arc::new(Semaphore::new(in_flight_max)),
        in_flight_max,
        spool,
        tx,
        stats: stats.clone(),
    });
    let router = Router::new()
        .route("/api/v1/logs", post(ingest))
        .with_state(ctx.clone());
    let limit = ConnLimit::new(config.max_connections, stats.clone());
    Ok(tokio::spawn(accept_loop(
        listener, router, limit, ctx, stop,
    )))
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limit: ConnLimit,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        // Reap finished connections so the set stays small.
        while conns.try_join_next().is_some() {}
        let Some(guard) = limit.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let timeout = ctx.timeout;
        let stats = ctx.stats.clone();
        let mut stop = stop.clone();
        conns.spawn(async move {
            let _guard = guard;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    stats.closed("idle");
                }
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("HTTP connections still open after the drain period, closing them");
        conns.abort_all();
    }
}

/// An error answer with a JSON body.
fn error(status: StatusCode, message: &str) -> Response {
    let refusal = Refusal::new(status, message);
    json(refusal.status, refusal.body)
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn retry_after(mut response: Response, secs: u32) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Equal without an early exit, so the comparison time tells nothing about
/// the token.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(ctx: &Ctx, headers: &HeaderMap) -> bool {
    let Some(token) = &ctx.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes()))
}

async fn ingest(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Body) -> Response {
    let response = handle(&ctx, &headers, body).await;
    ctx.stats
        .metrics()
        .http_responses
        .get_or_create(&label("status", response.status().as_str()))
        .inc();
    response
}

async fn handle(ctx: &Ctx, headers: &HeaderMap, body: Body) -> Response {
    let reject = |reason: &str| ctx.stats.rejected(reason, 1);
    if !authorized(ctx, headers) {
        reject("unauthorized");
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sluice\""),
        );
        return r;
    }
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => {
            reject("unsupported_encoding");
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported Content-Encoding {other:?}: use gzip or none"),
            );
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > ctx.max_body_bytes as u64) {
        reject("too_large");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body over {} bytes", ctx.max_body_bytes),
        );
    }
    // Reserve what the body may take in memory (the whole limit when its
    // length is not declared, or when it will grow by decompression).
    let reserve = match declared {
        Some(n) if !gzip => (n as usize).max(1),
        _ => ctx.max_body_bytes,
    }
    .min(ctx.in_flight_max) as u32;
    let Ok(_permit) = ctx.in_flight.clone().try_acquire_many_owned(reserve) else {
        reject("busy");
        return retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests in flight, retry later",
            ),
            RETRY_BUSY_SECS,
        );
    };
    if ctx.spool.free_bytes() < 2 * u64::from(reserve) + (1 << 20) {
        reject("spool_full");
        return spool_full();
    }
    let raw =
        match tokio::time::timeout(ctx.timeout, axum::body::to_bytes(body, ctx.max_body_bytes))
            .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    reject("too_large");
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("body over {} bytes", ctx.max_body_bytes),
                    );
                }
                reject("body_read");
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                );
            }
            Err(_) => {
                reject("timeout");
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the body did not arrive within {:?}", ctx.timeout),
                );
            }
        };
    ctx.stats.bytes.inc_by(raw.len() as u64);
    let decoded = if raw.len() > INLINE_DECODE_BYTES || gzip {
        let limits = ctx.limits;
        let max = ctx.max_body_bytes;
        match tokio::task::spawn_blocking(move || decode(&raw, gzip, max, &limits)).await {
            Ok(r) => r,
            Err(_) => Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decoding the body failed",
            )),
        }
    } else {
        decode(&raw, false, ctx.max_body_bytes, &ctx.limits)
    };
    let (posted, single) = match decoded {
        Ok(x) => x,
        Err(refusal) => {
            let reason = match refusal.status {
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                StatusCode::BAD_REQUEST => "invalid",
                _ => "internal",
            };
            reject(reason);
            return json(refusal.status, refusal.body);
        }
    };
    let (chunks, ids, waits) = self::chunks(ctx, posted);
    let records = ids.len() as u64;
    let spooled = tokio::time::timeout(ctx.timeout, async {
        if !send_all(&ctx.tx, chunks).await {
            return false;
        }
        for wait in waits {
            if wait.await.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    if spooled != Ok(true) {
        reject("not_durable");
        return spool_full();
    }
    ctx.stats.records.inc_by(records);
    let mut text = [0u8; ulid::ULID_LEN];
    let body = if single {
        serde_json::json!({"status": "success", "log_id": ids[0].array_to_str(&mut text)})
    } else {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        serde_json::json!({"status": "success", "log_ids": ids})
    };
    json(StatusCode::OK, body.to_string())
}

fn spool_full() -> Response {
    retry_after(
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent cannot take records now (spool full or stopping), retry later",
        ),
        RETRY_FULL_SECS,
    )
}

/// A refused body: the status and the JSON error to answer with.
struct Refusal {
    status: StatusCode,
    body: String,
}

impl Refusal {
    fn new(status: StatusCode, message: &str) -> Refusal {
        Refusal {
            status,
            body: serde_json::json!({"status": "error", "error": message}).to_string(),
        }
    }
}

/// Gunzips if asked and decodes. The flag tells whether the body was a
/// single object (answered with `log_id`).
fn decode(
    raw: &[u8],
    gzip: bool,
    max_body_bytes: usize,
    limits: &Limits,
) -> Result<(Vec<Posted>, bool), Refusal> {
    let plain;
    let bytes = if gzip {
        plain = body::gunzip(raw, max_body_bytes).map_err(|e| match e {
            GunzipError::TooLarge { .. } => Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("decompressed body over {max_body_bytes} bytes"),
            ),
            other => Refusal::new(StatusCode::BAD_REQUEST, &other.to_string()),
        })?;
        &plain[..]
    } else {
        raw
    };
    let posted = body::decode(bytes, limits).map_err(|e: BodyError| Refusal {
        status: StatusCode::BAD_REQUEST,
        body: e.to_json(),
    })?;
    let array = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    let single = !array && posted.len() == 1;
    Ok((posted, single))
}

type Chunks = (
    Vec<Chunk>,
    Vec<ulid::Ulid>,
    Vec<crate::sources::DurableWait>,
);

/// Turns posted records into chunks per (app, service, host), with their
/// ids chosen here so the answer can name them.
fn chunks(ctx: &Ctx, posted: Vec<Posted>) -> Chunks {
    let now = now_nanos();
    let mut ids_gen = ulid::Generator::new();
    let mut ids = Vec::with_capacity(posted.len());
    let mut groups: Vec<Chunk> = Vec::new();
    let mut truncated = 0;
    for p in posted {
        let id = ids_gen.generate().unwrap_or_else(|_| ulid::Ulid::new());
        ids.push(id);
        if p.attrs.contains_key(ATTR_TRUNCATED) {
            truncated += 1;
        }
        let record = LineRecord {
            ts: p.ts.unwrap_or(now),
            level: p.level,
            msg: p.msg,
            attrs: p.attrs,
        };
        let app = p.app.as_deref().unwrap_or(&ctx.app);
        let service = p.service.as_deref().unwrap_or(&ctx.service);
        let host = p.host.as_deref();
        match groups
            .iter_mut()
            .find(|c| &*c.app == app && &*c.service == service && c.host.as_deref() == host)
        {
            Some(c) => {
                c.records.push(record);
                c.ids.push(id);
            }
            None => groups.push(Chunk {
                app: Arc::from(app),
                service: Arc::from(service),
                host: host.map(Arc::from),
                source: Arc::from("http"),
                pos: None,
                records: vec![record],
                ids: vec![id],
                durable: None,
            }),
        }
    }
    ctx.stats.flagged("truncated", truncated);
    let mut waits = Vec::with_capacity(groups.len());
    for c in &mut groups {
        let (signal, wait) = Durable::new();
        c.durable = Some(signal);
        waits.push(wait);
    }
    (groups, ids, waits)
}
