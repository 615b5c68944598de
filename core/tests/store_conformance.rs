//! The same behaviour from every store backend: one suite run against a
//! `file://` directory and a real S3-compatible server (s3s-fs), both opened
//! through `store::open` exactly as the processes open them. Plus
//! `is_permanent` on real failures: bad credentials, a missing bucket, a
//! stopped server.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sluice_core::config::StoreConfig;
use sluice_core::store::{self, Store, is_permanent};
use sluice_testing::{S3_BUCKET, S3Server};

/// Keys shaped like the real layout: hive partitions (`=`), dashes, dots.
const SHOP_22: &str = "app=shop/dt=2026-11-22/hour=07/filterer-a-01JD5Z.ndjson.gz";
const SHOP_22B: &str = "app=shop/dt=2026-11-22/hour=08/filterer-b-01JD60.ndjson.gz";
const SHOP_23: &str = "app=shop/dt=2026-11-23/hour=00/filterer-a-01JD7K.ndjson.gz";
const SHOP_MANIFEST: &str = "app=shop/_manifest.json";
const WEB_22: &str = "app=web/dt=2026-11-22/hour=07/filterer-a-01JD5Z.ndjson.gz";
/// Shares `app=shop` as a string prefix but is a different partition.
const SHOPPING: &str = "app=shopping/dt=2026-11-22/hour=07/x.ndjson.gz";

/// Deterministic bytes that do not compress or repeat in step with part
/// sizes, so a misplaced part shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn put(store: &Store, rel: &str, data: &[u8]) {
    store
        .inner
        .put(&store.key(rel), PutPayload::from(data.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("put {rel}: {e}"));
}

async fn get(store: &Store, rel: &str) -> Result<Bytes, object_store::Error> {
    store.inner.get(&store.key(rel)).await?.bytes().await
}

/// Relative keys of everything listed under `rel` (recursively).
async fn list(store: &Store, rel: &str) -> BTreeSet<String> {
    let prefix = store.key(rel);
    store
        .inner
        .list(Some(&prefix))
        .map_ok(|meta| {
            store
                .relative(&meta.location)
                .expect("listed key under the prefix")
        })
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("list {rel}: {e}"))
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// The behaviour Sluice relies on, identical for every backend.
async fn suite(store: &Store) {
    let label = store.url.clone();

    // Round trip, head, and keys with `=`, `-` and `.ndjson.gz`.
    let first = pattern(10_000, 1);
    put(store, SHOP_22, &first).await;
    assert_eq!(get(store, SHOP_22).await.unwrap(), first, "{label}: get");
    let meta = store.inner.head(&store.key(SHOP_22)).await.unwrap();
    assert_eq!(meta.size, first.len() as u64, "{label}: head size");
    assert_eq!(store.relative(&meta.location).as_deref(), Some(SHOP_22));

    // Ranged read.
    let range = store
        .inner
        .get_range(&store.key(SHOP_22), 1_000..1_100)
        .await
        .unwrap();
    assert_eq!(range, first[1_000..1_100], "{label}: get_range");

    // Overwrite replaces the whole object.
    let second = pattern(777, 2);
    put(store, SHOP_22, &second).await;
    assert_eq!(
        get(store, SHOP_22).await.unwrap(),
        second,
        "{label}: overwrite"
    );

    // Recursive listing under a partition returns exactly what is there, and
    // a prefix is a directory, not a string prefix (`app=shopping` is not in
    // `app=shop`).
    for rel in [SHOP_22B, SHOP_23, SHOP_MANIFEST, WEB_22, SHOPPING] {
        put(store, rel, rel.as_bytes()).await;
    }
    assert_eq!(
        list(store, "app=shop").await,
        set(&[SHOP_22, SHOP_22B, SHOP_23, SHOP_MANIFEST]),
        "{label}: list app=shop"
    );
    assert_eq!(
        list(store, "app=shop/dt=2026-11-22").await,
        set(&[SHOP_22, SHOP_22B]),
        "{label}: list one day"
    );
    assert_eq!(
        list(store, "").await,
        set(&[SHOP_22, SHOP_22B, SHOP_23, SHOP_MANIFEST, WEB_22, SHOPPING]),
        "{label}: list everything"
    );
    assert!(
        list(store, "app=none").await.is_empty(),
        "{label}: list empty"
    );

    // Delimiter listing gives the hive "directories" one level down, and the
    // objects at that level.
    let level = store
        .inner
        .list_with_delimiter(Some(&store.key("app=shop")))
        .await
        .unwrap();
    let dirs: Vec<_> = level
        .common_prefixes
        .iter()
        .map(|p| store.relative(p).unwrap())
        .collect();
    assert_eq!(
        dirs,
        ["app=shop/dt=2026-11-22", "app=shop/dt=2026-11-23"],
        "{label}: days"
    );
    let files: Vec<_> = level
        .objects
        .iter()
        .map(|m| store.relative(&m.location).unwrap())
        .collect();
    assert_eq!(files, [SHOP_MANIFEST], "{label}: objects beside the days");
    let top = store
        .inner
        .list_with_delimiter(Some(&store.key("")))
        .await
        .unwrap();
    let apps: BTreeSet<_> = top
        .common_prefixes
        .iter()
        .map(|p| store.relative(p).unwrap())
        .collect();
    assert_eq!(
        apps,
        set(&["app=shop", "app=shopping", "app=web"]),
        "{label}: apps"
    );
    assert!(top.objects.is_empty(), "{label}: no top-level objects");

    // Delete, then the object is gone: NotFound, which is not permanent.
    store.inner.delete(&store.key(SHOP_23)).await.unwrap();
    let err = get(store, SHOP_23).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{label}: get after delete: {err:?}"
    );
    assert!(
        !is_permanent(&err),
        "{label}: a missing object is transient"
    );
    let err = store.inner.head(&store.key(SHOP_23)).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{label}: head after delete: {err:?}"
    );
    let days = store
        .inner
        .list_with_delimiter(Some(&store.key("app=shop")))
        .await
        .unwrap()
        .common_prefixes;
    assert_eq!(days.len(), 1, "{label}: emptied day no longer listed");

    // Multipart upload of ~12 MiB (three parts) reads back intact.
    let big = pattern(12 * 1024 * 1024 + 12_345, 3);
    let big_key = store.key("app=big/dt=2026-11-22/hour=00/big-01.ndjson.gz");
    let upload = store.inner.put_multipart(&big_key).await.unwrap();
    let mut writer = WriteMultipart::new(upload);
    for chunk in big.chunks(1024 * 1024) {
        writer.write(chunk);
    }
    writer.finish().await.unwrap();
    assert_eq!(
        store.inner.head(&big_key).await.unwrap().size,
        big.len() as u64,
        "{label}: multipart size"
    );
    let back = store
        .inner
        .get(&big_key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(back == big, "{label}: multipart content differs");

    // Create-if-absent: the first wins, the second is told it exists and
    // the object keeps the first content.
    let create = || PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let once = store.key("app=shop/dt=2026-11-24/once.ndjson.gz");
    store
        .inner
        .put_opts(&once, PutPayload::from_static(b"first"), create())
        .await
        .unwrap_or_else(|e| panic!("{label}: create: {e}"));
    let err = store
        .inner
        .put_opts(&once, PutPayload::from_static(b"second"), create())
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{label}: second create: {err:?}"
    );
    let kept = store.inner.get(&once).await.unwrap().bytes().await.unwrap();
    assert_eq!(kept, &b"first"[..], "{label}: create kept the first");
}

#[tokio::test]
async fn file_store_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("blobs");
    let store = store::open(&StoreConfig {
        url: format!("file://{}", dir.display()),
        ..StoreConfig::default()
    })
    .unwrap();
    suite(&store).await;

    // Objects are plain files at their key.
    assert!(dir.join(SHOP_22).is_file());
    // Deleting the last object of a partition removes its empty directories.
    assert!(!dir.join("app=shop/dt=2026-11-23").exists());
    assert!(dir.join("app=shop/dt=2026-11-22").is_dir());
}

#[tokio::test]
async fn s3_store_conforms() {
    let server = S3Server::start();
    let store = store::open(&server.store_config("conformance")).unwrap();
    suite(&store).await;

    // s3s-fs keeps a bucket as a directory and an object as a file at its key.
    let bucket = server.root().join(S3_BUCKET);
    assert!(bucket.join("conformance").join(SHOP_22).is_file());

    // The prefix isolates: a store on another prefix of the same bucket sees
    // nothing of this one.
    let other = store::open(&server.store_config("other")).unwrap();
    assert!(list(&other, "").await.is_empty());
}

#[tokio::test]
async fn s3_wrong_secret_is_permanent() {
    let server = S3Server::start();
    let good = store::open(&server.store_config("p")).unwrap();
    put(&good, "x.ndjson.gz", b"x").await;

    let cfg = StoreConfig {
        secret_access_key: Some("not-the-secret".into()),
        ..server.store_config("p")
    };
    let bad = store::open(&cfg).unwrap();
    let err = get(&bad, "x.ndjson.gz").await.unwrap_err();
    assert!(is_permanent(&err), "get: {err:?}");
    let err = bad
        .inner
        .put(&bad.key("y.ndjson.gz"), PutPayload::from_static(b"y"))
        .await
        .unwrap_err();
    assert!(is_permanent(&err), "put: {err:?}");
    // Listing errors arrive as `Generic`; the status still classifies them.
    let err = bad
        .inner
        .list(Some(&bad.key("")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(is_permanent(&err), "list: {err:?}");
}

#[tokio::test]
async fn s3_missing_bucket_is_permanent() {
    let server = S3Server::start();
    let cfg = StoreConfig {
        url: "s3://no-such-bucket/p".into(),
        ..server.store_config("")
    };
    let store = store::open(&cfg).unwrap();
    // Listing is how s3s-fs reports the missing bucket (`NoSuchBucket`), and
    // it comes back as `Generic`. Unlike AWS, s3s-fs answers a GET with
    // `NoSuchKey` and creates the bucket on PUT, so only the listing is
    // checked here; `NotFound` with `NoSuchBucket` is covered by the unit
    // tests in `store.rs`.
    let err = store
        .inner
        .list(Some(&store.key("")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(is_permanent(&err), "list: {err:?}");
    let err = store
        .inner
        .list_with_delimiter(Some(&store.key("")))
        .await
        .unwrap_err();
    assert!(is_permanent(&err), "list_with_delimiter: {err:?}");
}

#[tokio::test]
async fn s3_stopped_server_is_transient() {
    let mut server = S3Server::start();
    let store = store::open(&server.store_config("p")).unwrap();
    put(&store, "kept.ndjson.gz", b"kept").await;

    server.stop();
    let err = get(&store, "kept.ndjson.gz").await.unwrap_err();
    assert!(!is_permanent(&err), "get: {err:?}");
    let err = store
        .inner
        .put(&store.key("y.ndjson.gz"), PutPayload::from_static(b"y"))
        .await
        .unwrap_err();
    assert!(!is_permanent(&err), "put: {err:?}");

    // Back on the same port with the same data; the same store recovers.
    server.start_again();
    assert_eq!(get(&store, "kept.ndjson.gz").await.unwrap(), &b"kept"[..]);
}
