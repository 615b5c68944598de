//! Object storage for the filed logs: one [`open`] for every backend Sluice
//! supports, and [`is_permanent`] to tell failures worth retrying from those
//! that are not.
//!
//! Two URL forms are accepted (`[store] url`):
//!
//! - `file:///absolute/path` or a bare `/absolute/path`: a directory on the
//!   local disk. It is created if missing; empty directories left behind by
//!   deletes are removed, so emptied partitions vanish as they do in S3.
//!   Writes are fsynced, matching the durability a remote store gives once a
//!   put returns.
//! - `s3://bucket` or `s3://bucket/some/prefix`: any S3-compatible service.
//!   With an `endpoint`, requests are path-style (`endpoint/bucket/key`), as
//!   MinIO and similar servers expect.
//!
//! Every key Sluice uses is relative to the URL's prefix; [`Store::key`] and
//! [`Store::relative`] convert between the two.
//!
//! `PutMode::Create` (create-if-absent) works on both backends: the local
//! filesystem links atomically, and S3 sends `If-None-Match: *`, which AWS,
//! MinIO, R2 and s3s-fs honour.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, RetryConfig};

use crate::config::StoreConfig;

/// The accepted URL forms, for error messages.
const ACCEPTED: &str = "expected file:///absolute/path, /absolute/path or s3://bucket[/prefix]";

/// The region used when neither the configuration nor the environment names
/// one; S3-compatible servers generally ignore it but signing needs a value.
const DEFAULT_REGION: &str = "us-east-1";

/// An opened store: the backend plus the key prefix everything lives under.
#[derive(Clone, Debug)]
pub struct Store {
    /// The backend. Keys passed to it are full keys ([`Store::key`]).
    pub inner: Arc<dyn ObjectStore>,
    /// The prefix every Sluice key lives under (empty for `file://`).
    pub prefix: Path,
    /// The URL the store was opened from, for logs and messages.
    pub url: String,
}

/// A store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one of the accepted forms.
    #[error("invalid store url {url:?}: {reason} ({ACCEPTED})")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local directory could not be created.
    #[error("cannot create store directory {path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The backend rejected its configuration.
    #[error("cannot open store {url:?}: {source}")]
    Build {
        /// The URL as configured.
        url: String,
        /// The backend's error.
        source: object_store::Error,
    },
}

/// Where a store URL points, parsed and checked without any IO.
enum Location {
    S3 { bucket: String, prefix: Path },
    Local(std::path::PathBuf),
}

fn locate(cfg: &StoreConfig) -> Result<Location, StoreError> {
    let url = cfg.url.trim();
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket name"));
        }
        if bucket.contains(['@', '?', '#', ':']) {
            return Err(invalid("the bucket name has invalid characters"));
        }
        let prefix = Path::parse(prefix).map_err(|e| invalid(&format!("bad prefix: {e}")))?;
        return Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix,
        });
    }
    if url.starts_with("file:") {
        // `file:x` would parse as `/x`; only the unambiguous form is taken.
        if !url.starts_with("file://") {
            return Err(invalid("a file url starts with file://"));
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a file url takes no query or fragment"));
        }
        return parsed
            .to_file_path()
            .map(Location::Local)
            .map_err(|()| invalid("not an absolute local path"));
    }
    if url.starts_with('/') {
        return Ok(Location::Local(std::path::PathBuf::from(url)));
    }
    Err(invalid("unknown scheme or relative path"))
}

/// Checks a store configuration as [`open`] would, without touching the
/// store or the file system: for `sluice check`.
pub fn check(cfg: &StoreConfig) -> Result<(), StoreError> {
    if let Location::S3 { bucket, .. } = locate(cfg)? {
        open_s3(cfg, &bucket).map_err(|source| StoreError::Build {
            url: cfg.url.trim().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// Opens the store `cfg` describes. Nothing is contacted: a wrong endpoint,
/// bucket or key shows up on the first request.
pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
    let url = cfg.url.trim();
    let dir = match locate(cfg)? {
        Location::S3 { bucket, prefix } => {
            let inner = open_s3(cfg, &bucket).map_err(|source| StoreError::Build {
                url: url.to_string(),
                source,
            })?;
            return Ok(Store {
                inner,
                prefix,
                url: url.to_string(),
            });
        }
        Location::Local(dir) => dir,
    };
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        path: dir.clone(),
        source,
    })?;
    let local = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|source| StoreError::Build {
            url: url.to_string(),
            source,
        })?
        .with_automatic_cleanup(true)
        .with_fsync(true);
    Ok(Store {
        inner: Arc::new(local),
        prefix: Path::default(),
        url: url.to_string(),
    })
}

fn open_s3(cfg: &StoreConfig, bucket: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    // With explicit keys everything comes from the configuration; without
    // them the environment may still provide ambient credentials (a session
    // token, web identity, container credentials), which `from_env` picks up.
    let mut builder = match (&cfg.access_key_id, &cfg.secret_access_key) {
        (Some(id), Some(secret)) => AmazonS3Builder::new()
            .with_access_key_id(id)
            .with_secret_access_key(secret),
        _ => AmazonS3Builder::from_env(),
    };
    builder = builder
        .with_bucket_name(bucket)
        .with_region(cfg.region.as_deref().unwrap_or(DEFAULT_REGION))
        .with_allow_http(cfg.allow_http)
        // ETag matching is what makes `PutMode::Create` send `If-None-Match:
        // *`; it is the default, set here so a future default cannot silently
        // turn create-if-absent into `NotImplemented`.
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        // A few quick retries inside object_store smooth over blips; outages
        // surface within seconds so the caller's own backoff loop, which
        // knows what it is waiting for, stays in charge.
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(endpoint) = &cfg.endpoint {
        // Non-AWS servers rarely have per-bucket DNS names.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    Ok(Arc::new(builder.build()?))
}

impl Store {
    /// Full key for a path relative to the prefix
    /// (`app=shop/dt=2026-11-22/x.ndjson.gz`). Empty segments are dropped;
    /// characters object_store reserves are percent-encoded.
    pub fn key(&self, rel: &str) -> Path {
        let mut key = self.prefix.clone();
        key.extend(rel.split(object_store::path::DELIMITER));
        key
    }

    /// The relative part of a full key (the prefix stripped), `None` if the
    /// key is not under the prefix or is the prefix itself.
    pub fn relative(&self, key: &Path) -> Option<String> {
        let parts: Vec<_> = key.prefix_match(&self.prefix)?.collect();
        if parts.is_empty() {
            return None;
        }
        let parts: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
        Some(parts.join(object_store::path::DELIMITER))
    }
}

/// The apps with filed logs: the valid `app=<name>/` prefixes under the
/// store's prefix (one delimited list), sorted.
pub async fn apps(store: &Store) -> object_store::Result<Vec<String>> {
    let listed = store.inner.list_with_delimiter(Some(&store.prefix)).await?;
    let mut apps: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.strip_prefix("app=").map(String::from))
        .filter(|a| crate::names::is_valid(a))
        .collect();
    apps.sort();
    Ok(apps)
}

/// Reads a whole object.
pub async fn get_bytes(store: &dyn ObjectStore, key: &Path) -> object_store::Result<bytes::Bytes> {
    object_store::ObjectStoreExt::get(store, key)
        .await?
        .bytes()
        .await
}

/// Whether reading an object failed because its storage class needs a
/// restore first (S3 `InvalidObjectState`: `GLACIER`, `DEEP_ARCHIVE`).
pub fn needs_restore(err: &object_store::Error) -> bool {
    chain_text(err).contains("InvalidObjectState")
}

/// S3 error codes that no amount of retrying fixes: bad credentials, a
/// missing or misnamed bucket, a wrong region.
const PERMANENT_S3_CODES: &[&str] = &[
    "<Code>AccessDenied</Code>",
    "<Code>AllAccessDisabled</Code>",
    "<Code>AuthorizationHeaderMalformed</Code>",
    "<Code>InvalidAccessKeyId</Code>",
    "<Code>InvalidBucketName</Code>",
    "<Code>NoSuchBucket</Code>",
    "<Code>SignatureDoesNotMatch</Code>",
];

/// Whether an error is permanent: retrying the same request will not help,
/// so the caller should stop and report instead of backing off forever.
///
/// The rule:
///
/// - Permanent: authentication and authorisation failures (HTTP 401/403,
///   `Unauthenticated`, `PermissionDenied`, and the S3 codes for bad keys or
///   signatures), a missing or invalid bucket (`NoSuchBucket`,
///   `InvalidBucketName`), a wrong region, invalid paths or configuration,
///   and operations the backend does not implement. A local directory that
///   cannot be written for lack of permission, or is read-only, is permanent
///   too.
/// - Answers, not failures — `AlreadyExists`, `Precondition`, `NotModified`
///   — are also permanent (asking again gives the same answer); callers using
///   conditional requests handle them before asking.
/// - `NotFound` is permanent only when it is the bucket that is missing (the
///   S3 body says `NoSuchBucket`). A missing object is not a store failure,
///   and a `HEAD` carries no body, so a missing bucket seen through `HEAD`
///   counts as transient.
/// - Everything else is transient: connection errors, timeouts, 5xx, 429,
///   throttling, interrupted bodies, and errors this rule does not recognise
///   (a needless retry is cheaper than dropping data on a blip).
pub fn is_permanent(err: &object_store::Error) -> bool {
    use object_store::Error as E;
    match err {
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::UnknownConfigurationKey { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. } => true,
        E::NotFound { .. } => chain_text(err).contains("<Code>NoSuchBucket</Code>"),
        E::Generic { .. } => generic_is_permanent(err),
        _ => false,
    }
}

/// Classifies an `Error::Generic`, which wraps list and multipart failures
/// whose status object_store does not lift into a variant of its own.
fn generic_is_permanent(err: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            // Transport failures: connect, timeout, reset, decode.
            return false;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            );
        }
        source = e.source();
    }
    // object_store keeps the HTTP status and body of its request errors
    // private; both are part of the message, so read them from there.
    let text = chain_text(err);
    if PERMANENT_S3_CODES.iter().any(|code| text.contains(code)) {
        return true;
    }
    matches!(http_status(&text), Some(401 | 403))
}

/// The messages of an error and all its sources, joined.
fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = Some(err);
    while let Some(e) = source {
        text.push_str(&e.to_string());
        text.push('\n');
        source = e.source();
    }
    text
}

/// The status code in object_store's "non-2xx status code: 403 Forbidden"
/// message, if present.
fn http_status(text: &str) -> Option<u16> {
    const MARKER: &str = "status code: ";
    let start = text.find(MARKER)? + MARKER.len();
    text.get(start..start + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.to_string(),
            ..StoreConfig::default()
        }
    }

    fn s3_cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.to_string(),
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("ak".into()),
            secret_access_key: Some("sk".into()),
            allow_http: true,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn an_archived_object_needs_a_restore() {
        let archived = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 403 Forbidden: <Error><Code>InvalidObjectState</Code></Error>".into(),
        };
        assert!(needs_restore(&archived));
        let gone = object_store::Error::NotFound {
            path: "x".into(),
            source: "no such key".into(),
        };
        assert!(!needs_restore(&gone));
    }

    #[test]
    fn file_url_creates_the_directory_and_has_no_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let store = open(&cfg(&format!("file://{}", dir.display()))).unwrap();
        assert!(dir.is_dir());
        assert_eq!(store.prefix, Path::default());
        assert_eq!(store.url, format!("file://{}", dir.display()));
    }

    #[test]
    fn bare_absolute_path_is_a_file_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("blobs");
        let store = open(&cfg(dir.to_str().unwrap())).unwrap();
        assert!(dir.is_dir());
        assert_eq!(store.prefix, Path::default());
    }

    #[test]
    fn s3_url_with_prefix() {
        let store = open(&s3_cfg("s3://bucket/some/prefix/")).unwrap();
        assert_eq!(store.prefix.as_ref(), "some/prefix");
        assert_eq!(
            store.key("app=shop/x.ndjson.gz").as_ref(),
            "some/prefix/app=shop/x.ndjson.gz"
        );
    }

    #[test]
    fn s3_url_without_prefix() {
        for url in ["s3://bucket", "s3://bucket/"] {
            let store = open(&s3_cfg(url)).unwrap();
            assert_eq!(store.prefix, Path::default(), "{url}");
        }
    }

    #[test]
    fn s3_without_keys_or_endpoint_opens() {
        assert!(open(&cfg("s3://bucket/p")).is_ok());
    }

    #[test]
    fn bad_urls_are_rejected_with_the_accepted_forms() {
        for url in [
            "gs://bucket/x",
            "http://example.com/x",
            "relative/path",
            "",
            "s3://",
            "s3:///prefix",
            "s3://user@bucket/x",
            "s3://bucket/a/../b",
            "file:relative",
            "file:/abs",
            "file://host/x",
            "file:///tmp/x?y=1",
        ] {
            let err = open(&cfg(url)).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("s3://bucket[/prefix]"), "{msg}");
            assert!(msg.contains(&format!("{url:?}")), "{msg}");
        }
    }

    #[test]
    fn key_and_relative_round_trip() {
        let store = open(&s3_cfg("s3://bucket/logs")).unwrap();
        let rel = "app=shop/dt=2026-11-22/hour=07/f-01.ndjson.gz";
        let key = store.key(rel);
        assert_eq!(key.as_ref(), format!("logs/{rel}"));
        assert_eq!(store.relative(&key).as_deref(), Some(rel));
        assert_eq!(store.relative(&Path::from("other/x")), None);
        assert_eq!(store.relative(&Path::from("logsx/x")), None);
        assert_eq!(store.relative(&Path::from("logs")), None);
        // Empty segments collapse.
        assert_eq!(store.key("/a//b/").as_ref(), "logs/a/b");
    }

    #[test]
    fn key_and_relative_without_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&cfg(tmp.path().to_str().unwrap())).unwrap();
        assert_eq!(store.key("app=x/y").as_ref(), "app=x/y");
        assert_eq!(
            store.relative(&Path::from("app=x/y")).as_deref(),
            Some("app=x/y")
        );
        assert_eq!(store.relative(&Path::default()), None);
    }

    fn boxed(s: &str) -> Box<dyn std::error::Error + Send + Sync> {
        s.into()
    }

    #[test]
    fn classification() {
        use object_store::Error as E;
        let path = || "p".to_string();
        assert!(is_permanent(&E::PermissionDenied {
            path: path(),
            source: boxed("x")
        }));
        assert!(is_permanent(&E::Unauthenticated {
            path: path(),
            source: boxed("x")
        }));
        assert!(is_permanent(&E::NotImplemented {
            operation: "x".into(),
            implementer: "y".into()
        }));
        assert!(!is_permanent(&E::NotFound {
            path: path(),
            source: boxed("<Code>NoSuchKey</Code>")
        }));
        assert!(is_permanent(&E::NotFound {
            path: path(),
            source: boxed("<Error><Code>NoSuchBucket</Code></Error>")
        }));
        let generic = |source| E::Generic {
            store: "S3",
            source,
        };
        assert!(is_permanent(&generic(boxed(
            "Server returned non-2xx status code: 403 Forbidden: "
        ))));
        assert!(!is_permanent(&generic(boxed(
            "Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>"
        ))));
        assert!(is_permanent(&generic(boxed(
            "Server returned error response: <Code>InvalidAccessKeyId</Code>"
        ))));
        let connect = object_store::client::HttpError::new(
            object_store::client::HttpErrorKind::Connect,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert!(!is_permanent(&generic(Box::new(connect))));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(is_permanent(&generic(Box::new(denied))));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(!is_permanent(&generic(Box::new(full))));
        assert!(!is_permanent(&generic(boxed("something odd"))));
    }
}
