//! The expiry pass's benchmark, against a local nats-server and s3s-fs
//! started for the run.
//!
//! The corpus: 200 apps × 30 days × 24 hourly partitions (144,000), each
//! one small blob and its sidecar, filed straight into the files s3s-fs
//! serves. The rule deletes after 20 days, so 10 whole days of each app are
//! due (48,000 partitions, 96,000 objects). The day the deletion horizon
//! falls in is left empty, so exactly the 10 older days are due whatever
//! the time of day: the 20 kept days are the ones after it, up to today.
//!
//! Prints, in one run:
//! (a) the limit: a second copy of the due objects (96,000, under `raw/`)
//!     deleted with one bulk `delete_stream` through object_store (S3
//!     multi-object deletes of 1,000 keys) against the same s3s-fs;
//! (b) one dry pass (`pass(None, now)`), then one real pass
//!     (`pass(Some(&nats), now)`): partitions/s, objects/s and their ratio
//!     to (a); the LIST requests the pass sent, counted by a wrapper around
//!     the hot store and by the role's own `store_requests{op="list"}`,
//!     against one per app and per day acted on. Objects are the blobs and
//!     sidecars; the pass also writes and removes an `_sluice_expiring`
//!     marker per partition, and takes and releases its claim.
//!
//! The wrapper also prints how long requests of each kind were in flight
//! (concurrent ones counted once), to show where the pass's time goes.
//! Note that s3s-fs answers a LIST without a delimiter (a day's listing)
//! by walking the whole bucket, so on it the time of each such LIST grows
//! with the bucket; S3 itself lists by prefix.
//!
//! `cargo bench -p sluice-expiry --bench pass` (`BENCH_APPS` sets the
//! number of apps; default 200).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use prometheus_client::registry::Registry;
use sluice_core::config::Config;
use sluice_core::layout::Partition;
use sluice_core::store::Store;
use sluice_core::time::NS_PER_DAY;
use sluice_expiry::metrics::ExpiryMetrics;
use sluice_expiry::plan::Kind;
use sluice_expiry::{Expiry, walk};
use sluice_testing::{NatsServer, S3Server, bench_runtime, bench_size, metric_value};

/// Days filed per app, and of those, days past the rule's 20.
const DAYS: i64 = 30;
const DUE_DAYS: i64 = 10;
const DELETE_AFTER_DAYS: i64 = 20;
/// Records per blob.
const RECORDS: usize = 3;
/// Partitions filed at once.
const FILE_CONCURRENCY: usize = 64;

/// Calls of one kind of request, and the wall time with at least one of
/// them in flight (so concurrent calls count once).
#[derive(Debug, Default)]
struct Busy {
    calls: AtomicU64,
    /// In flight, since when, and the busy time before that.
    state: Mutex<(u32, Option<Instant>, Duration)>,
}

impl Busy {
    fn enter(&self) {
        let mut s = self.state.lock().unwrap();
        if s.0 == 0 {
            s.1 = Some(Instant::now());
        }
        s.0 += 1;
    }

    fn leave(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 -= 1;
        if s.0 == 0
            && let Some(since) = s.1.take()
        {
            s.2 += since.elapsed();
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn secs(&self) -> f64 {
        self.state.lock().unwrap().2.as_secs_f64()
    }
}

/// What the wrapper counts, by kind of request, and for any request.
#[derive(Debug, Default)]
struct Counts {
    list: Busy,
    put: Busy,
    delete: Busy,
    any: Busy,
}

/// One call of the kind `pick` chooses, in flight from its creation to its
/// drop: moved into a stream, it lasts until the stream is dropped.
struct InFlight {
    counts: Arc<Counts>,
    pick: fn(&Counts) -> &Busy,
}

impl InFlight {
    fn start(counts: &Arc<Counts>, pick: fn(&Counts) -> &Busy) -> InFlight {
        pick(counts).calls.fetch_add(1, Ordering::Relaxed);
        pick(counts).enter();
        counts.any.enter();
        InFlight {
            counts: counts.clone(),
            pick,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        (self.pick)(&self.counts).leave();
        self.counts.any.leave();
    }
}

/// An object store that forwards everything to `inner`, counting list
/// calls (and timing lists, puts and bulk deletes).
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<Counts>,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl Counting {
    /// `stream`, in flight as a call of the kind `pick` chooses until it
    /// is dropped.
    fn timed<T: Send + 'static>(
        &self,
        stream: BoxStream<'static, T>,
        pick: fn(&Counts) -> &Busy,
    ) -> BoxStream<'static, T> {
        let call = InFlight::start(&self.counts, pick);
        stream
            .map(move |item| {
                // The closure owns the call; it ends when the stream goes.
                let _call = &call;
                item
            })
            .boxed()
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let _call = InFlight::start(&self.counts, |c| &c.put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.timed(self.inner.delete_stream(locations), |c| &c.delete)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.timed(self.inner.list(prefix), |c| &c.list)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.timed(self.inner.list_with_offset(prefix, offset), |c| &c.list)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let _call = InFlight::start(&self.counts, |c| &c.list);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

impl Counts {
    /// Calls and busy time by kind, for the log.
    fn summary(&self) -> String {
        format!(
            "store requests in flight {:.1} s: {} LISTs {:.1} s, {} PUTs {:.1} s, {} bulk deletes {:.1} s",
            self.any.secs(),
            self.list.calls(),
            self.list.secs(),
            self.put.calls(),
            self.put.secs(),
            self.delete.calls(),
            self.delete.secs(),
        )
    }
}

/// `store` behind a fresh [`Counting`] wrapper, and its counts.
fn counted(store: &Store) -> (Store, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let wrapped = Store {
        inner: Arc::new(Counting {
            inner: store.inner.clone(),
            counts: counts.clone(),
        }),
        prefix: store.prefix.clone(),
        url: store.url.clone(),
    };
    (wrapped, counts)
}

/// Files one blob of [`RECORDS`] records and its sidecar into each
/// partition, `FILE_CONCURRENCY` at once; returns every key written.
async fn file(store: &Store, partitions: &[Partition]) -> Vec<Path> {
    let keys: Vec<[String; 2]> = futures::stream::iter(partitions)
        .map(|p| async move {
            let records = sluice_testing::filed::records(p, RECORDS);
            let blob = sluice_testing::filed::put_blob(store, p, &records).await;
            let sidecar = sluice_core::index::sidecar_key(&blob);
            [blob, sidecar]
        })
        .buffer_unordered(FILE_CONCURRENCY)
        .collect()
        .await;
    keys.into_iter().flatten().map(Path::from).collect()
}

/// Every hour of `days` (first hours) of each app.
fn hours_of(apps: &[String], days: &[i64]) -> Vec<Partition> {
    apps.iter()
        .flat_map(|app| {
            days.iter().flat_map(move |&day| {
                (day..day + 24).map(move |hour| Partition {
                    app: app.clone(),
                    hour,
                })
            })
        })
        .collect()
}

/// The registry's text.
fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode the metrics");
    text
}

fn row(what: &str, figure: String, target: &str, ok: Option<bool>) {
    let verdict = match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    println!("{what:<44} {figure:>30}   {target:<34} {verdict}");
}

/// The first hour of the day the deletion horizon falls in at `now`.
fn horizon_day(now: i64) -> i64 {
    let horizon = Partition::of("x", now - DELETE_AFTER_DAYS * NS_PER_DAY);
    walk::day_start(horizon.hour)
}

fn main() {
    let apps_n = bench_size("BENCH_APPS", 200);
    let runtime = bench_runtime();
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let text = format!(
        "[nats]\nurl = \"{}\"\n{}\n[expiry]\nmin_write_age_hours = 0\n\
         default = {{ delete_after_days = {DELETE_AFTER_DAYS} }}\n",
        nats.url(),
        s3.store_section("hot"),
    );
    let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // The corpus: 10 due days, the horizon's day left empty, 20 kept days.
    let apps: Vec<String> = (0..apps_n).map(|a| format!("app{a:03}")).collect();
    let gap = horizon_day(sluice_core::record::now_nanos());
    let due_days: Vec<i64> = (1..=DUE_DAYS).map(|k| gap - 24 * k).collect();
    let kept_days: Vec<i64> = (1..=DAYS - DUE_DAYS).map(|k| gap + 24 * k).collect();
    let due = hours_of(&apps, &due_days);
    let kept = hours_of(&apps, &kept_days);
    let partitions = due.len() + kept.len();
    let started = Instant::now();
    let hot_files = s3.direct_store("hot");
    runtime.block_on(async {
        file(&hot_files, &due).await;
        file(&hot_files, &kept).await;
    });
    println!(
        "filed {partitions} partitions ({} objects) of {apps_n} apps × {DAYS} days in {:.1} s",
        2 * partitions,
        started.elapsed().as_secs_f64()
    );

    // (b) the passes, at the time after filing.
    let now = sluice_core::record::now_nanos();
    assert_eq!(
        horizon_day(now),
        gap,
        "the run crossed midnight UTC while filing; run it again"
    );
    let mut registry = Registry::default();
    let metrics = ExpiryMetrics::register(&mut registry);
    let Expiry {
        hot,
        cold,
        rules,
        metrics,
        instance,
    } = Expiry::open(&config, "bench", metrics).expect("open the stores");
    assert!(cold.is_none());
    let (counted_hot, dry_counts) = counted(&hot);
    let mut expiry = Expiry {
        hot: counted_hot,
        cold,
        rules,
        metrics,
        instance,
    };
    let list_metric = r#"sluice_expiry_store_requests_total{op="list"}"#;
    let (dry_secs, dry) = runtime.block_on(async {
        let started = Instant::now();
        let report = expiry.pass(None, now).await.expect("a dry pass");
        (started.elapsed().as_secs_f64(), report)
    });
    assert!(dry.failed.is_empty() && dry.apps_failed.is_empty());
    assert_eq!(
        dry.actions.len(),
        due.len(),
        "the dry pass plans every due partition"
    );
    println!(
        "dry pass: {} partitions planned in {dry_secs:.2} s; {}",
        dry.actions.len(),
        dry_counts.summary()
    );
    let lists_before = metric_value(&metrics_text(&registry), list_metric);
    let (counted_hot, counts) = counted(&hot);
    expiry.hot = counted_hot;
    let (pass_secs, report) = runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let acting = sluice_expiry::connect_nats(
            async_nats::jetstream::new(client),
            &config,
            format!("expiry.bench:{}", ulid::Ulid::new()),
        )
        .await
        .expect("the audit stream and the claims");
        let started = Instant::now();
        let report = expiry.pass(Some(&acting), now).await.expect("a pass");
        (started.elapsed().as_secs_f64(), report)
    });
    let text = metrics_text(&registry);
    let lists_metric = metric_value(&text, list_metric) - lists_before;
    let lists_counted = counts.list.calls();
    println!(
        "pass: {} actions in {pass_secs:.2} s; {}",
        report.actions.len(),
        counts.summary()
    );
    assert!(
        report.failed.is_empty() && report.apps_failed.is_empty(),
        "{:?}",
        report.errors()
    );
    assert!(report.busy.is_empty() && report.held.is_empty());
    let deleted = report
        .actions
        .iter()
        .filter(|(a, e)| a.kind == Kind::Delete && e.is_some())
        .count();
    assert_eq!(deleted, report.actions.len(), "only deletes");
    assert_eq!(
        deleted,
        due.len(),
        "the pass deletes exactly the due partitions"
    );
    let objects = metric_value(&text, r#"sluice_expiry_objects_total{action="deleted"}"#) as usize;
    assert_eq!(objects, 2 * due.len(), "a blob and a sidecar each");
    let left = runtime.block_on(sluice_testing::filed::listing(&hot_files));
    let left_data = left.keys().filter(|k| k.contains("/hour=")).count();
    assert_eq!(
        left_data,
        2 * kept.len(),
        "the kept partitions are all there"
    );

    // (a) the limit: the same objects, deleted in one bulk delete.
    let raw_files = s3.direct_store("raw");
    let started = Instant::now();
    let keys = runtime.block_on(file(&raw_files, &due));
    println!(
        "filed the raw copy: {} objects in {:.1} s",
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    let raw = sluice_core::store::open(&s3.store_config("raw")).expect("open the raw store");
    let raw_objects = keys.len();
    let (raw_secs, raw_deleted) = runtime.block_on(async {
        let started = Instant::now();
        let input = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        let results: Vec<_> = raw.inner.delete_stream(input).collect().await;
        let secs = started.elapsed().as_secs_f64();
        let deleted: Vec<Path> = results
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("the raw bulk delete");
        (secs, deleted.len())
    });
    assert_eq!(raw_deleted, raw_objects);
    assert!(
        runtime
            .block_on(sluice_testing::filed::listing(&raw_files))
            .is_empty(),
        "the raw copy is gone"
    );

    let pass_ps = deleted as f64 / pass_secs;
    let pass_os = objects as f64 / pass_secs;
    let raw_os = raw_objects as f64 / raw_secs;
    let ratio = pass_os / raw_os;
    // One per app and day acted on, one per app, and the one list of the
    // apps themselves.
    let target_lists = apps_n * DUE_DAYS as usize + apps_n;
    let lists_ok =
        lists_counted as usize <= target_lists + 1 && lists_metric as u64 == lists_counted;
    println!();
    row(
        "partitions (due)",
        format!("{partitions} ({})", due.len()),
        "",
        None,
    );
    row(
        "objects (due)",
        format!("{} ({objects})", 2 * partitions),
        "",
        None,
    );
    row("dry pass", format!("{dry_secs:.2} s"), "", None);
    row("pass", format!("{pass_secs:.2} s"), "", None);
    row(
        "pass: partitions deleted/s",
        format!("{pass_ps:.0}/s"),
        "",
        None,
    );
    row(
        "pass: objects deleted/s",
        format!("{pass_os:.0}/s"),
        "",
        None,
    );
    row(
        "(a) raw bulk delete, same objects",
        format!("{raw_os:.0}/s ({raw_secs:.2} s)"),
        "",
        None,
    );
    row(
        "pass objects/s vs (a)",
        format!("{:.0} %", 100.0 * ratio),
        ">= 50 %",
        Some(ratio >= 0.5),
    );
    row(
        "LISTs (wrapper / role metric)",
        format!("{lists_counted} / {lists_metric:.0}"),
        &format!("<= {target_lists} + 1 (× {DUE_DAYS} days + per app + the apps)"),
        Some(lists_ok),
    );
}
