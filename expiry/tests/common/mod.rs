//! What the expiry tests share: a real nats-server and s3s-fs, a hot and a
//! cold store in one bucket, data filed into many partitions, and what the
//! query service sees of them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sluice_core::config::Config;
use sluice_core::layout::Partition;
use sluice_core::store::Store;
use sluice_core::time::NS_PER_HOUR;
use sluice_expiry::metrics::ExpiryMetrics;
use sluice_expiry::{Expiry, Nats};
use sluice_query::lang::parse;
use sluice_query::search::{By, Order, Request, SidecarCache, Tiers, hits};
use sluice_testing::{NatsServer, S3Server};

pub const DAY: i64 = 24 * NS_PER_HOUR;

pub struct Setup {
    pub nats: NatsServer,
    pub s3: S3Server,
    pub config: Config,
    pub text: String,
    pub hot: Store,
    pub cold: Store,
}

/// The configuration: both stores on `s3` (`hot/` and `cold/` of one
/// bucket), NATS, and `rules` (more `[expiry]` text).
pub fn config_text(nats: &NatsServer, s3: &S3Server, rules: &str) -> String {
    format!(
        "[nats]\nurl = \"{}\"\n{}{}\n{rules}",
        nats.url(),
        s3.store_section("hot"),
        s3.store_section("cold").replace("[store]", "[cold_store]"),
    )
}

impl Setup {
    pub fn start(rules: &str) -> Setup {
        let nats = NatsServer::start();
        let s3 = S3Server::start();
        let text = config_text(&nats, &s3, rules);
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let hot = sluice_core::store::open(&config.store).unwrap();
        let cold = sluice_core::store::open(&config.cold_store.as_ref().unwrap().store()).unwrap();
        Setup {
            nats,
            s3,
            config,
            text,
            hot,
            cold,
        }
    }

    /// An expiry instance named `id`, with what acting needs.
    pub async fn expiry(&self, id: &str) -> (Expiry, Nats, Registry) {
        let mut registry = Registry::default();
        let metrics = ExpiryMetrics::register(&mut registry);
        let expiry = Expiry::open(&self.config, id, metrics).unwrap();
        let client = async_nats::connect(self.nats.url()).await.unwrap();
        let nats = sluice_expiry::connect_nats(
            async_nats::jetstream::new(client),
            &self.config,
            format!("expiry.{id}:{}", ulid::Ulid::new()),
        )
        .await
        .unwrap();
        (expiry, nats, registry)
    }

    pub fn tiers(&self) -> Tiers {
        Tiers {
            hot: self.hot.clone(),
            cold: Some(self.cold.clone()),
        }
    }
}

/// The hour partitions `hours_back` hours before now's hour, newest first,
/// of each app.
pub fn partitions(apps: &[&str], now: i64, hours_back: i64) -> Vec<Partition> {
    let current = now.div_euclid(NS_PER_HOUR);
    apps.iter()
        .flat_map(|app| {
            (1..=hours_back).map(move |k| Partition {
                app: app.to_string(),
                hour: current - k,
            })
        })
        .collect()
}

/// Files `per_blob` records × `blobs` blobs into each partition of the hot
/// store (`hot/` of `s3`'s bucket, written as files the server serves);
/// returns the records per partition.
pub async fn file_hot(
    s3: &S3Server,
    partitions: &[Partition],
    blobs: usize,
    per_blob: usize,
) -> BTreeMap<Partition, u64> {
    file(&s3.direct_store("hot"), partitions, blobs, per_blob).await
}

/// Files `per_blob` records × `blobs` blobs into each partition; returns
/// the records per partition.
pub async fn file(
    store: &Store,
    partitions: &[Partition],
    blobs: usize,
    per_blob: usize,
) -> BTreeMap<Partition, u64> {
    use futures::StreamExt;
    let written: Vec<(Partition, u64)> = futures::stream::iter(partitions.iter().cloned())
        .map(|p| async move {
            let records = sluice_testing::filed::records(&p, blobs * per_blob);
            for chunk in records.chunks(per_blob) {
                sluice_testing::filed::put_blob(store, &p, chunk).await;
            }
            (p, records.len() as u64)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    written.into_iter().collect()
}

/// What a search sees: records per partition of `apps` over the last
/// `hours_back` hours, counted by the query service's own code.
pub async fn visible(
    tiers: &Tiers,
    apps: &[&str],
    now: i64,
    hours_back: i64,
) -> BTreeMap<Partition, u64> {
    let current = now.div_euclid(NS_PER_HOUR);
    let mut out = BTreeMap::new();
    for app in apps {
        let request = request(
            &[app],
            (current - hours_back) * NS_PER_HOUR,
            current * NS_PER_HOUR,
        );
        let cache = SidecarCache::new(10_000);
        let counted = hits(tiers, &cache, &request, None, NS_PER_HOUR, By::Total)
            .await
            .expect("the stores can be searched");
        assert!(!counted.stats.partial, "{:?}", counted.stats.errors);
        for series in &counted.series {
            for (t, v) in counted.timestamps.iter().zip(&series.values) {
                if *v > 0 {
                    let hour = t * 1_000_000_000 / NS_PER_HOUR;
                    *out.entry(Partition {
                        app: app.to_string(),
                        hour,
                    })
                    .or_default() += v;
                }
            }
        }
    }
    out
}

pub fn request(apps: &[&str], from_ns: i64, to_ns: i64) -> Request {
    Request {
        query: parse("").unwrap(),
        level: None,
        service: None,
        apps: apps.iter().map(|a| a.to_string()).collect(),
        from_ns,
        to_ns,
        limit: 100,
        offset: 0,
        order: Order::Newest,
        after: None,
        exact_count: true,
        deadline: Instant::now() + Duration::from_secs(60),
    }
}

/// What a partition should be after a pass, computed here from the rules'
/// numbers, independently of the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Hot,
    Cold,
    Gone,
}

/// `cold`/`delete` in days; age from the end of the hour.
pub fn expected(p: &Partition, now: i64, cold: Option<i64>, delete: Option<i64>) -> Where {
    let age = now - (p.hour + 1) * NS_PER_HOUR;
    if delete.is_some_and(|d| age >= d * DAY) {
        Where::Gone
    } else if cold.is_some_and(|c| age >= c * DAY) {
        Where::Cold
    } else {
        Where::Hot
    }
}
