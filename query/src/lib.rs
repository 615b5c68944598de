//! The query role (`sluice query`): searching every application's filed
//! logs over an HTTP JSON API.
//!
//! * [`lang`] — the query language: its specification, parser, and the two
//!   questions a parsed query answers: does this record match, and may this
//!   blob (judged by its sidecar alone) hold a match.
//! * [`search`] — answering a query from the filed blobs: listing, sidecar
//!   pruning, reading newest first, stopping early.
//! * [`recent`] — the window of newest records, read live from `LOGS`.
//! * [`api`] — the `/api/v1` endpoints, their parameters, and who may read
//!   which apps.
//! * [`ui`] — the web page at `/`, built only on the API.
//!
//! Invariants: the sidecar test never says "no" for a blob holding a record
//! the record test accepts, so a pruned search returns exactly what a full
//! scan returns; and an answer only ever holds records of apps the caller's
//! token may read.

pub mod api;
pub mod lang;
pub mod metrics;
pub mod recent;
pub mod search;
pub mod ui;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_core::config::Config;
use sluice_core::role::{Role, RoleError, RoleSpec};

use metrics::QueryMetrics;
use recent::Window;
use search::SidecarCache;
use sluice_core::time::secs_to_ns;

/// How much longer than the filterer's flush interval the recent window
/// reaches back.
const WINDOW_MARGIN_SECS: u64 = 120;

/// The role's name.
pub const ROLE: &str = "query";

/// The role's configuration check: the store URL can be used.
pub fn validate(config: &Config) -> Result<(), RoleError> {
    sluice_core::store::check(&config.store).map_err(|e| RoleError::Store(e.to_string()))?;
    if let Some(cold) = &config.cold_store {
        sluice_core::store::check(&cold.store())
            .map_err(|e| RoleError::Store(format!("[cold_store]: {e}")))?;
    }
    Ok(())
}

/// Serves the API until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let qcfg = config.query.clone();
    let hot =
        sluice_core::store::open(&config.store).map_err(|e| RoleError::Store(e.to_string()))?;
    // Partitions expiry moved are searched where they went.
    let cold = match &config.cold_store {
        Some(cold) => Some(
            sluice_core::store::open(&cold.store())
                .map_err(|e| RoleError::Store(format!("[cold_store]: {e}")))?,
        ),
        None => None,
    };
    let store = search::Tiers { hot, cold };
    let mut registry = Registry::default();
    let metrics = QueryMetrics::register(&mut registry);
    // Everything the filterer may not have filed yet: its flush interval
    // and a margin for a slow store.
    let span = secs_to_ns(
        config
            .filterer
            .flush_interval_secs
            .saturating_add(WINDOW_MARGIN_SECS),
    );
    let window = Arc::new(Window::new(qcfg.recent_bytes, span));
    let jetstream = Arc::new(std::sync::OnceLock::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let api = api::Api {
        store,
        sidecars: Arc::new(
            SidecarCache::with_listings(
                qcfg.sidecar_cache_entries,
                std::time::Duration::from_secs(qcfg.listing_cache_secs),
            )
            .with_bodies(qcfg.body_cache_bytes),
        ),
        config: Arc::new(qcfg.clone()),
        alerter: Arc::new(config.alerter.clone()),
        recent: window.clone(),
        metrics: metrics.clone(),
        jetstream: jetstream.clone(),
        stop: stop.clone(),
    };
    let spec = RoleSpec::tier(ROLE, qcfg.id.as_deref(), qcfg.listen)
        .with_routes(api::routes(api).merge(ui::routes()));
    let role = Role::start(spec, registry, shutdown).await?;
    let js = role.jetstream(&config.nats).await?;
    let _ = jetstream.set(js.clone());
    role.spawn(recent::feed(
        js,
        config.nats.stream.clone(),
        window,
        metrics,
        role.token(),
    ));
    // Searches are answered from the store at once; until the window reads
    // the stream they are flagged partial.
    role.set_ready();
    role.stopping().await;
    // Live tails and exports end, so the endpoint can close.
    stop.cancel();
    role.finish().await;
    Ok(())
}
