//! NATS connection and `LOGS` stream helpers.
//!
//! Every process connects through [`connect`], which never fails because the
//! server is down: the client keeps reconnecting in the background (so an
//! agent can start and spool while NATS is away) and only bad settings — an
//! unreadable creds file, a malformed URL — are errors.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, StorageType};
use futures::StreamExt;

use crate::codec::SUBJECT_PREFIX;
use crate::config::NatsConfig;

/// Why a connection or stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The settings are wrong (bad URL, unreadable creds file); retrying does
    /// not help.
    #[error("invalid nats settings: {0}")]
    Settings(String),
    /// The server refused or could not be reached; worth retrying.
    #[error("nats request failed: {0}")]
    Request(String),
}

/// Connects with the URLs and credentials of `cfg`. `name` identifies the
/// connection in the server's monitoring.
pub async fn connect(cfg: &NatsConfig, name: &str) -> Result<async_nats::Client, NatsError> {
    install_crypto_provider();
    let urls: Vec<String> = cfg
        .url_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    if urls.is_empty() {
        return Err(NatsError::Settings("[nats] url lists no server".into()));
    }
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        // Publishes are flow-controlled by the callers' in-flight windows;
        // a large client buffer only hides back-pressure.
        .client_capacity(4096);
    if let Some(creds) = &cfg.creds_file {
        opts = opts
            .credentials_file(creds)
            .await
            .map_err(|e| NatsError::Settings(format!("creds file {}: {e}", creds.display())))?;
    }
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &cfg.token {
        opts = opts.token(token.clone());
    }
    if cfg.tls_required {
        opts = opts.require_tls(true);
    }
    if let Some(ca) = &cfg.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    opts.connect(urls.as_slice())
        .await
        .map_err(|e| NatsError::Settings(e.to_string()))
}

/// Selects rustls's process-wide crypto provider (ring). Both ring and
/// aws-lc-rs are compiled in (async-nats and object_store each bring one), and
/// rustls refuses to guess between them. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The configuration the `LOGS` stream must have.
pub fn stream_config(cfg: &NatsConfig) -> StreamConfig {
    StreamConfig {
        name: cfg.stream.clone(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        max_age: Duration::from_secs(cfg.max_age_secs),
        max_bytes: cfg.max_bytes,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        // When the stream is full, refuse new data rather than silently
        // dropping the oldest: agents keep it in their spools and retry.
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

/// Creates the stream, or updates it to the configured settings.
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<jetstream::stream::Info, NatsError> {
    js.create_or_update_stream(stream_config(cfg))
        .await
        .map_err(|e| NatsError::Request(e.to_string()))
}

/// What every consumer of `LOGS` sets up first: the `LOGS` stream, created
/// or updated to the configured settings, and the dead-letter stream it
/// sets refused messages aside on. Returns the `LOGS` stream.
pub async fn ensure_consumer_streams(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<jetstream::stream::Stream, NatsError> {
    js.create_or_update_stream(stream_config(cfg))
        .await
        .map_err(|e| NatsError::Request(format!("stream {}: {e}", cfg.stream)))?;
    crate::deadletter::ensure(js, cfg).await?;
    js.get_stream(&cfg.stream)
        .await
        .map_err(|e| NatsError::Request(format!("stream {}: {e}", cfg.stream)))
}

/// A durable pull consumer `name` of `stream` with explicit acks, created
/// when missing: any number of instances pulling from it share its
/// messages, and a message not acked within `ack_wait` is delivered again.
pub async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
    filter_subject: String,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> Result<jetstream::consumer::PullConsumer, NatsError> {
    stream
        .get_or_create_consumer(
            name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending,
                filter_subject,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| NatsError::Request(format!("consumer {name}: {e}")))
}

/// An ordered consumer over the whole of `stream` from `start_ns` (a
/// record time, ns since the epoch), or right after sequence `after` when
/// it is not 0 (to go on where a reader that broke off stopped): for roles
/// in which every instance reads every message (the alerter, the query
/// service's recent window).
pub async fn ordered_reader(
    js: &jetstream::Context,
    stream: &str,
    start_ns: i64,
    after: u64,
) -> Result<jetstream::consumer::pull::Ordered, String> {
    use jetstream::consumer::{DeliverPolicy, pull};
    let stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let deliver_policy = if after > 0 {
        DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        }
    } else {
        DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_ns))
                .map_err(|e| e.to_string())?,
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Opens a KV bucket, creating its stream when missing, and sets an
/// existing bucket's `max_age` (0: unlimited) to `max_age` when it differs,
/// so a changed setting applies to a bucket made before. A bucket whose max
/// age cannot be changed (no permission) is used as it is, with a warning.
///
/// The stream is created directly with the KV layout (`KV_<bucket>`,
/// subjects `$KV.<bucket>.>`, one message per subject per history entry,
/// rollups allowed, deletes denied, direct gets) instead of through the
/// client's bucket API, which first queries account limits in a form older
/// servers (such as Debian's 2.9) do not answer.
pub async fn ensure_kv(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, NatsError> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        let current = &kv.stream.cached_info().config;
        if current.max_age == max_age {
            return Ok(kv);
        }
        let mut config = current.clone();
        config.max_age = max_age;
        config.duplicate_window = kv_duplicate_window(max_age);
        return match js.update_stream(config).await {
            Ok(_) => {
                tracing::info!(
                    bucket,
                    max_age_secs = max_age.as_secs(),
                    "bucket max age updated"
                );
                js.get_key_value(bucket)
                    .await
                    .map_err(|e| NatsError::Request(format!("bucket {bucket}: {e}")))
            }
            Err(err) => {
                tracing::warn!(bucket, max_age_secs = max_age.as_secs(), error = %err, "cannot update the bucket's max age; keeping the one it has");
                Ok(kv)
            }
        };
    }
    let config = StreamConfig {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: replicas.max(1),
        discard: DiscardPolicy::New,
        duplicate_window: kv_duplicate_window(max_age),
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|e| NatsError::Request(format!("bucket {bucket}: {e}")))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| NatsError::Request(format!("bucket {bucket}: {e}")))
}

/// A KV bucket's duplicate window: 2 minutes, but no longer than its max
/// age (the server refuses a longer one).
fn kv_duplicate_window(max_age: Duration) -> Duration {
    let window = Duration::from_secs(120);
    if max_age.is_zero() {
        window
    } else {
        window.min(max_age)
    }
}

/// The newest value of every key of KV bucket `bucket` that matches
/// `pattern` (a key with `*` and `>` wildcards), at most `max` of them,
/// read once through an ordered consumer that stops when it has caught up.
/// A bucket that does not exist yet has no keys; a deleted key is left out.
pub async fn kv_newest(
    js: &jetstream::Context,
    bucket: &str,
    pattern: &str,
    max: usize,
) -> Result<Vec<(String, bytes::Bytes)>, String> {
    use jetstream::consumer::{DeliverPolicy, pull};
    let stream = match js.get_stream(format!("KV_{bucket}")).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(err) => return Err(err.to_string()),
    };
    let prefix = format!("$KV.{bucket}.");
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: format!("{prefix}{pattern}"),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    read_caught_up(consumer, max, &format!("KV {bucket}"), |message| {
        let deleted = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() != "PUT");
        let key = message.subject.as_str().strip_prefix(&prefix)?;
        (!deleted).then(|| (key.to_string(), message.payload.clone()))
    })
    .await
}

/// Reads an ordered consumer until it has caught up with its stream (or
/// `max` values are kept), turning each message into a value with `keep`
/// (`None`: skipped). `what` names the stream in errors; a read that
/// stalls for 10 s is an error.
pub async fn read_caught_up<T>(
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::OrderedConfig>,
    max: usize,
    what: &str,
    mut keep: impl FnMut(&jetstream::Message) -> Option<T>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while out.len() < max {
        let message = match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(err))) => return Err(err.to_string()),
            Ok(None) => break,
            Err(_) => return Err(format!("reading {what} took over 10 s")),
        };
        let pending = message.info().map(|i| i.pending).unwrap_or(0);
        out.extend(keep(&message));
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_covers_all_log_subjects() {
        let c = stream_config(&NatsConfig::default());
        assert_eq!(c.name, "LOGS");
        assert_eq!(c.subjects, vec!["logs.>".to_string()]);
        assert!(c.duplicate_window >= Duration::from_secs(120));
    }
}
