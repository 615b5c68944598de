//! What the query tests share: deterministic records, and filing them
//! as blobs with sidecars the way the filterer lays them out.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;

use object_store::ObjectStoreExt;
use sluice_core::index::{Replaces, sidecar_key};
use sluice_core::layout::{BlobKind, Partition, blob_name};
use sluice_core::store::Store;
use sluice_core::time::NS_PER_HOUR;
use sluice_core::{Level, Record};

/// 2026-11-22T10:00:00Z.
pub const BASE: i64 = 1_795_341_600_000_000_000;
pub const HOURS: i64 = 3;

const WORDS: &[&str] = &[
    "order created",
    "payment declined for order",
    "Card Expired",
    "timeout talking to warehouse",
    "timed out waiting for lock",
    "refund issued",
    "user logged in",
    "cache miss for key",
];

/// Deterministic records: two apps, three hours, five services, a rare
/// needle word in two records.
pub fn records() -> Vec<Record> {
    let mut rng = sluice_testing::Lcg(42);
    let mut next = move |n: u64| rng.next(n);
    let services = ["checkout", "billing", "api", "web", "worker"];
    (0..3000u64)
        .map(|i| {
            let app = if next(3) == 0 { "billing" } else { "shop" };
            let mut msg = WORDS[next(WORDS.len() as u64) as usize].to_string();
            if i == 777 || i == 2222 {
                msg.push_str(" zebra");
            }
            let mut attrs = BTreeMap::new();
            attrs.insert("request_id".to_string(), format!("req-{}", next(500)));
            Record {
                id: format!("01JTEST{i:019}"),
                ts: BASE + (next((HOURS * NS_PER_HOUR / 1_000_000) as u64) * 1_000_000) as i64,
                app: app.into(),
                service: services[next(5) as usize].into(),
                host: format!("web-{}", next(3)),
                level: Level::ALL[next(6) as usize],
                msg,
                attrs,
                source: "file:/var/log/app.log".into(),
            }
        })
        .collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub enum Sidecar {
    Good,
    Missing,
    Corrupt,
}

/// Writes `records` as one blob of their partition, with its sidecar as
/// asked. Returns the blob's key.
pub async fn put_blob(
    store: &Store,
    partition: &Partition,
    records: &[Record],
    sidecar: Sidecar,
) -> String {
    write_blob(store, partition, records, sidecar, None).await
}

/// Writes `records` as a compaction output standing for what `replaces`
/// names, with a good sidecar. Returns the blob's key.
pub async fn put_compacted(
    store: &Store,
    partition: &Partition,
    records: &[Record],
    replaces: Replaces,
) -> String {
    write_blob(store, partition, records, Sidecar::Good, Some(replaces)).await
}

async fn write_blob(
    store: &Store,
    partition: &Partition,
    records: &[Record],
    sidecar: Sidecar,
    replaces: Option<Replaces>,
) -> String {
    let kind = if replaces.is_some() {
        BlobKind::Compact
    } else {
        BlobKind::Part
    };
    let (blob, mut index) = sluice_testing::filed::encode(&partition.app, records);
    let key = store.key(&format!(
        "{}/{}",
        partition.prefix(),
        blob_name(kind, "test")
    ));
    if let Some(replaces) = replaces {
        index.set_replaces(replaces);
    }
    let idx = index.finish(blob.len() as u64, false).to_bytes();
    store.inner.put(&key, blob.into()).await.unwrap();
    let side = object_store::path::Path::from(sidecar_key(key.as_ref()));
    match sidecar {
        Sidecar::Good => {
            store.inner.put(&side, idx.into()).await.unwrap();
        }
        Sidecar::Corrupt => {
            store
                .inner
                .put(&side, b"{\"version\":1,".to_vec().into())
                .await
                .unwrap();
        }
        Sidecar::Missing => {}
    }
    key.to_string()
}

/// Files `records` as three blobs per partition, the first of each
/// partition of `shop` written a second time (as a compaction race leaves
/// it), one sidecar corrupt and one missing.
pub async fn file(store: &Store, records: &[Record]) -> usize {
    let mut by_partition: BTreeMap<Partition, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_partition
            .entry(Partition::of(&r.app, r.ts))
            .or_default()
            .push(r.clone());
    }
    let mut blobs = 0;
    for (n, (partition, recs)) in by_partition.iter().enumerate() {
        let third = recs.len().div_ceil(3);
        for (i, chunk) in recs.chunks(third).enumerate() {
            let sidecar = match (n, i) {
                (0, 1) => Sidecar::Corrupt,
                (1, 2) => Sidecar::Missing,
                _ => Sidecar::Good,
            };
            put_blob(store, partition, chunk, sidecar).await;
            blobs += 1;
            if i == 0 && partition.app == "shop" {
                put_blob(store, partition, chunk, Sidecar::Good).await;
                blobs += 1;
            }
        }
    }
    blobs
}

/// A `[store]` section for `s3`'s bucket under `logs/`.
pub fn store_section(s3: &sluice_testing::S3Server) -> String {
    s3.store_section("logs")
}

/// The query role in this process, configured by `text`, once its `/ready`
/// on `port` answers 200. Sending on (or dropping) the sender stops it.
pub async fn start_query(
    text: &str,
    port: u16,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), sluice_core::role::RoleError>>,
) {
    let config = sluice_core::config::Config::parse(text).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let role = tokio::spawn(sluice_query::run(config, async move {
        let _ = rx.await;
    }));
    tokio::task::spawn_blocking(move || {
        sluice_testing::wait_until(std::time::Duration::from_secs(20), "the query API", || {
            sluice_testing::try_http_get_as(port, "/ready", None).is_ok_and(|(s, _)| s == 200)
        })
    })
    .await
    .unwrap();
    (tx, role)
}

/// GET `path` with `token`: the status and the JSON answer.
pub async fn get(port: u16, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let (path, token) = (path.to_string(), token.map(String::from));
    tokio::task::spawn_blocking(move || {
        let (status, body) = sluice_testing::try_http_get_as(port, &path, token.as_deref())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let json =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
        (status, json)
    })
    .await
    .unwrap()
}

/// Tokens of the endpoint tests: one per app, and one for every app.
pub const TOKENS: &str = "[[query.tokens]]\nname = \"shop\"\ntoken = \"shop-secret\"\napps = [\"shop\"]\n\
     [[query.tokens]]\nname = \"billing\"\ntoken = \"billing-secret\"\napps = [\"billing\"]\n\
     [[query.tokens]]\nname = \"all\"\ntoken = \"all-secret\"\napps = [\"*\"]\n";

/// A nats-server, an s3s-fs, the query role (and, when asked, the
/// aggregator) in this process.
pub struct Harness {
    pub nats: sluice_testing::NatsServer,
    pub s3: sluice_testing::S3Server,
    pub store: Store,
    pub js: async_nats::jetstream::Context,
    pub port: u16,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    query: Option<tokio::task::JoinHandle<Result<(), sluice_core::role::RoleError>>>,
    aggregator: Option<tokio::task::JoinHandle<Result<(), sluice_aggregator::AggregatorError>>>,
}

impl Harness {
    /// Starts everything; `extra` is added to the configuration.
    pub async fn start(with_aggregator: bool, extra: &str) -> Harness {
        let nats = sluice_testing::NatsServer::start();
        let s3 = sluice_testing::S3Server::start();
        let store = sluice_core::store::open(&s3.store_config("logs")).unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        sluice_core::nats::ensure_consumer_streams(&js, &nats.config())
            .await
            .unwrap();
        let port = sluice_testing::free_port();
        let admin = sluice_testing::free_port();
        let text = format!(
            "[nats]\nurl = \"{}\"\n{}[query]\nlisten = \"127.0.0.1:{port}\"\n{TOKENS}\
             [aggregator]\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\nquiet_period_secs = 3600\n{extra}",
            nats.url(),
            store_section(&s3),
        );
        let mut stops = Vec::new();
        let aggregator = with_aggregator.then(|| {
            let config = sluice_core::config::Config::parse(&text).unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(tx);
            tokio::spawn(sluice_aggregator::run(config, async move {
                let _ = rx.await;
            }))
        });
        let (stop, query) = start_query(&text, port).await;
        stops.push(stop);
        Harness {
            nats,
            s3,
            store,
            js,
            port,
            stops,
            query: Some(query),
            aggregator,
        }
    }

    /// GET `path` with the token named `who` ("shop", "billing", "all"), or
    /// none.
    pub async fn get(&self, path: &str, who: Option<&str>) -> (u16, serde_json::Value) {
        let token = who.map(|w| format!("{w}-secret"));
        get(self.port, path, token.as_deref()).await
    }

    /// A value of the query role's `/metrics`; fails when it is missing.
    pub fn metric(&self, name: &str) -> f64 {
        let body = sluice_testing::try_http_get_as(self.port, "/metrics", None)
            .unwrap()
            .1;
        sluice_testing::metric_value(&body, name)
    }

    /// Stops the roles and checks they stopped cleanly.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        if let Some(query) = self.query.take() {
            tokio::time::timeout(std::time::Duration::from_secs(40), query)
                .await
                .expect("the query role did not stop")
                .unwrap()
                .unwrap();
        }
        if let Some(aggregator) = self.aggregator.take() {
            aggregator.await.unwrap().unwrap();
        }
    }
}

/// Files `records` with good sidecars only: one blob per partition and
/// app.
pub async fn file_clean(store: &Store, records: &[Record]) -> usize {
    let mut by_partition: BTreeMap<Partition, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_partition
            .entry(Partition::of(&r.app, r.ts))
            .or_default()
            .push(r.clone());
    }
    for (partition, recs) in &by_partition {
        put_blob(store, partition, recs, Sidecar::Good).await;
    }
    by_partition.len()
}

/// Opens a streaming GET (server-sent events, NDJSON) as `who`, with more
/// headers.
pub async fn open_stream(
    port: u16,
    path: &str,
    who: Option<&str>,
    headers: &[(&str, &str)],
) -> sluice_testing::Streaming {
    let auth = who.map(|w| format!("Bearer {w}-secret"));
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(auth) = auth {
        all.push(("Authorization".into(), auth));
    }
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sluice_testing::Streaming::open(port, &path, &refs)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    })
    .await
    .unwrap()
}

/// The ids of the records in a JSON array.
pub fn ids_of(logs: &serde_json::Value) -> Vec<String> {
    logs.as_array()
        .unwrap_or_else(|| panic!("not an array: {logs}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}
