//! `[store]`: object storage for the filed logs.

use serde::Deserialize;

/// `[store]`: where filed logs live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///var/lib/sluice/blobs` or `s3://bucket/prefix`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// S3 endpoint for non-AWS servers (MinIO, Ceph, R2 …),
    /// e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region; falls back to `AWS_REGION`, then `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// S3 access key; falls back to `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// S3 secret key; falls back to `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP endpoints (local servers).
    #[serde(default)]
    pub allow_http: bool,
}

/// The embedded default store.
pub const DEFAULT_STORE_URL: &str = "file:///var/lib/sluice/blobs";

fn default_store_url() -> String {
    DEFAULT_STORE_URL.into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        }
    }
}

impl StoreConfig {
    pub(super) fn apply_env(&mut self) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if self.access_key_id.is_none() {
            self.access_key_id = env("AWS_ACCESS_KEY_ID");
        }
        if self.secret_access_key.is_none() {
            self.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
        }
        if self.region.is_none() {
            self.region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        }
    }
}
