//! Filed logs written straight into a store, in the filterer's layout and
//! format (gzip NDJSON blob plus sidecar), and read back: for tests and
//! benchmarks of the read side and of retention.

use std::collections::BTreeMap;
use std::io::Write;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use sluice_core::index::{IndexBuilder, sidecar_key};
use sluice_core::layout::{BlobKind, Partition, blob_name};
use sluice_core::store::Store;
use sluice_core::{Level, Record};

/// `n` records of `partition`, spread over its hour, with ids unique to it.
pub fn records(partition: &Partition, n: usize) -> Vec<Record> {
    let step = (partition.end_ns() - partition.start_ns()) / (n as i64 + 1);
    (0..n)
        .map(|i| Record {
            id: format!("{}-{i}", partition.kv_key()),
            ts: partition.start_ns() + step * (i as i64 + 1),
            app: partition.app.clone(),
            service: "api".into(),
            host: "web-1".into(),
            level: if i % 5 == 0 {
                Level::Error
            } else {
                Level::Info
            },
            msg: format!("request {i} of {}", partition.kv_key()),
            attrs: Default::default(),
            source: "file:/var/log/app.log".into(),
        })
        .collect()
}

/// `records` as a blob of `app` (gzip NDJSON, one record per line) and the
/// index of its sidecar, not yet finished.
pub fn encode(app: &str, records: &[Record]) -> (Vec<u8>, IndexBuilder) {
    let mut ndjson = Vec::new();
    let mut index = IndexBuilder::new(app);
    for r in records {
        let line = r.to_json();
        index.push(r, line.len());
        ndjson.extend_from_slice(line.as_bytes());
        ndjson.push(b'\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    gz.write_all(&ndjson).expect("gzip in memory");
    (gz.finish().expect("gzip in memory"), index)
}

/// Writes `records` as one blob of `partition` with its sidecar (the
/// sidecar first, as the filterer does not, so the pair is complete once
/// the blob shows). Returns the blob's key.
pub async fn put_blob(store: &Store, partition: &Partition, records: &[Record]) -> String {
    let (blob, index) = encode(&partition.app, records);
    let key = store.key(&format!(
        "{}/{}",
        partition.prefix(),
        blob_name(BlobKind::Part, "test")
    ));
    let idx = index.finish(blob.len() as u64, false).to_bytes();
    let side = object_store::path::Path::from(sidecar_key(key.as_ref()));
    store
        .inner
        .put(&side, idx.into())
        .await
        .expect("put a sidecar");
    store
        .inner
        .put(&key, blob.into())
        .await
        .expect("put a blob");
    key.to_string()
}

/// Every object of `store` under its prefix: relative key → size. (A test
/// may list everything; the services never do.)
pub async fn listing(store: &Store) -> BTreeMap<String, u64> {
    let prefix = store.key("");
    let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
    let metas: Vec<object_store::ObjectMeta> = store
        .inner
        .list(prefix.as_ref())
        .try_collect()
        .await
        .expect("list the store");
    metas
        .into_iter()
        .filter_map(|m| Some((store.relative(&m.location)?, m.size)))
        .collect()
}

/// The bytes of a relative key.
pub async fn read(store: &Store, rel: &str) -> bytes::Bytes {
    sluice_core::store::get_bytes(store.inner.as_ref(), &store.key(rel))
        .await
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}
