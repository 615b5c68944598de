//! The expiry role (`sluice expiry`): each app's filed logs are kept, moved
//! to a cold store, and deleted on its own schedule (`[expiry]` rules), and
//! nothing is lost by accident.
//!
//! ```text
//!  every interval_secs:  list apps ─> per app: list days ─> days with a due hour
//!        │                                         │ claim the due hours (the compaction claim)
//!        │                                         │ list the day (hot, and cold where it deletes)
//!        │                       plan (pure: rules, ages, recent writes, markers) ─> actions
//!        v                                         │
//!  move: copy + verify + delete hot     delete: mark expiring + bulk delete     ─> audit stream, log, metrics
//! ```
//!
//! Invariants:
//! * **Decisions are pure.** [`plan::plan`] sees only listings, rules and
//!   the time; everything else is IO at the edge ([`walk`], [`act`]), so
//!   `sluice expiry plan` shows exactly what a run would do.
//! * **One actor per partition.** A partition is acted on only under its
//!   claim ([`sluice_core::claims`]), the one compaction takes, and listed
//!   only after it is claimed: expiry never races a compaction or another
//!   expiry instance, and a blob written after the listing is left alone.
//! * **Whole or not at all.** Markers order every action (see [`act`]); a
//!   crash at any moment leaves a partition readable wholly from where it
//!   was or wholly from where it is going, and the next pass finishes it.
//! * **Backfill is kept.** A partition with a blob written less than
//!   `min_write_age_hours` ago is never touched.
//! * **Bounded listing.** No pass lists the whole bucket: one list for the
//!   apps, one per app, one per day acted on (and, in the cold store, one
//!   per day due for deletion, from the app's expired-before marker on).
//! * **Audited.** Every action is in the `SLUICE_AUDIT` stream (once, by
//!   the id its marker keeps), the structured log and `/metrics`.

pub mod act;
pub mod lifecycle;
pub mod metrics;
pub mod plan;
pub mod rules;
pub mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::kv::Store as Kv;
use futures::{FutureExt, StreamExt};
use object_store::ObjectStoreExt;
use prometheus_client::registry::Registry;
use sluice_core::audit::Event;
use sluice_core::config::Config;
use sluice_core::layout::{Partition, expired_marker};
use sluice_core::role::{Role, RoleError, RoleSpec};
use sluice_core::store::Store;

use metrics::ExpiryMetrics;
use plan::{Action, Kind, Observed, Side};
use rules::Rules;

/// The role's name.
pub const ROLE: &str = "expiry";

/// Partitions moved at once.
const MOVE_CONCURRENCY: usize = 4;
/// Claims taken or released at once.
const CLAIM_CONCURRENCY: usize = 24;
/// Apps worked on at once.
const APP_CONCURRENCY: usize = 4;

/// The cold store and the storage class of its copies.
#[derive(Debug, Clone)]
pub struct ColdTier {
    pub store: Store,
    pub storage_class: Option<String>,
}

/// What acting needs of NATS: the audit stream and the claims.
#[derive(Clone)]
pub struct Nats {
    pub js: jetstream::Context,
    pub claims: Kv,
    /// Who holds the claims: `expiry.<instance>:<start>`.
    pub claimant: String,
}

/// Everything a pass needs.
pub struct Expiry {
    pub hot: Store,
    pub cold: Option<ColdTier>,
    pub rules: Rules,
    pub metrics: ExpiryMetrics,
    pub instance: String,
}

/// What one pass did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// Actions decided (a dry run) or carried out (a run), with their
    /// audit events when carried out.
    pub actions: Vec<(Action, Option<Event>)>,
    /// Due partitions held back by a recent write, with its time.
    pub held: Vec<(Partition, i64)>,
    /// Due partitions another instance (or a compaction) had claimed.
    pub busy: Vec<Partition>,
    /// Partitions whose action failed, left as they were, and why.
    pub failed: Vec<(Partition, String)>,
    /// Apps whose listing failed, and why.
    pub apps_failed: Vec<(String, String)>,
}

impl Report {
    fn add(&mut self, more: Report) {
        self.actions.extend(more.actions);
        self.held.extend(more.held);
        self.busy.extend(more.busy);
        self.failed.extend(more.failed);
        self.apps_failed.extend(more.apps_failed);
    }

    /// The first few errors, for `/health` and the log.
    pub fn errors(&self) -> Vec<String> {
        self.apps_failed
            .iter()
            .map(|(app, e)| format!("app {app}: {e}"))
            .chain(
                self.failed
                    .iter()
                    .map(|(p, e)| format!("{}: {e}", p.prefix())),
            )
            .collect()
    }
}

/// The role's configuration check: the rules compile and both stores can
/// be opened.
pub fn validate(config: &Config) -> Result<(), RoleError> {
    Rules::new(&config.expiry).map_err(RoleError::Config)?;
    sluice_core::store::check(&config.store).map_err(|e| RoleError::Store(e.to_string()))?;
    if let Some(cold) = &config.cold_store {
        sluice_core::store::check(&cold.store())
            .map_err(|e| RoleError::Store(format!("[cold_store]: {e}")))?;
    }
    Ok(())
}

impl Expiry {
    /// Opens the stores the configuration names.
    pub fn open(
        config: &Config,
        instance: &str,
        metrics: ExpiryMetrics,
    ) -> Result<Expiry, RoleError> {
        let hot =
            sluice_core::store::open(&config.store).map_err(|e| RoleError::Store(e.to_string()))?;
        let cold = match &config.cold_store {
            Some(c) => Some(ColdTier {
                store: sluice_core::store::open(&c.store())
                    .map_err(|e| RoleError::Store(format!("[cold_store]: {e}")))?,
                storage_class: c.storage_class.clone(),
            }),
            None => None,
        };
        Ok(Expiry {
            hot,
            cold,
            rules: Rules::new(&config.expiry).map_err(RoleError::Config)?,
            metrics,
            instance: instance.to_string(),
        })
    }

    /// One pass at `now_ns`. With `nats`, actions are claimed, carried
    /// out and audited; without, it is a dry run that changes nothing.
    pub async fn pass(&self, nats: Option<&Nats>, now_ns: i64) -> Result<Report, String> {
        self.metrics.requests("list", 1);
        let apps = sluice_core::store::apps(&self.hot)
            .await
            .map_err(|e| format!("listing the apps of {}: {e}", self.hot.url))?;
        let mut report = Report::default();
        let parts: Vec<Report> = futures::stream::iter(apps)
            .map(|app| {
                async move {
                    let mut r = Report::default();
                    if let Err(err) = self.app(nats, &app, now_ns, &mut r).await {
                        r.apps_failed.push((app, err));
                    }
                    r
                }
                .boxed()
            })
            .buffer_unordered(APP_CONCURRENCY)
            .collect()
            .await;
        for part in parts {
            report.add(part);
        }
        for (p, e) in &report.failed {
            self.metrics.failed(&p.app);
            tracing::warn!(partition = %p.prefix(), error = %e, "expiry action failed; the partition is left for the next pass");
        }
        for (app, e) in &report.apps_failed {
            self.metrics.failed(app);
            tracing::warn!(app = %app, error = %e, "cannot list an app; it is left for the next pass");
        }
        Ok(report)
    }

    /// One app's part of a pass.
    async fn app(
        &self,
        nats: Option<&Nats>,
        app: &str,
        now: i64,
        report: &mut Report,
    ) -> Result<(), String> {
        let rule = self.rules.for_app(app);
        let Some(first_action) = rule.first_action_ns() else {
            return Ok(());
        };
        self.metrics.requests("list", 1);
        let hot = walk::app(&self.hot, app)
            .await
            .map_err(|e| format!("listing: {e}"))?;
        let due = |hour: i64, after: i64| {
            Partition {
                app: app.to_string(),
                hour,
            }
            .end_ns()
            .saturating_add(after)
                <= now
        };
        // Days with a due hour: (hot, cold) listed.
        let mut days: BTreeMap<i64, (bool, bool)> = BTreeMap::new();
        for &day in &hot.days {
            if due(day, first_action) {
                days.entry(day).or_default().0 = true;
            }
        }
        let horizon = plan::delete_horizon(&self.rules, app, now);
        if let (Some(cold), Some(_), Some(delete_after), Some(horizon)) = (
            &self.cold,
            rule.cold_after_ns,
            rule.delete_after_ns,
            horizon,
        ) {
            let cold_days: Vec<i64> = match hot.expired_before() {
                // From the cursor to the day now due.
                Some(from) => {
                    let (first, last) = (walk::day_start(from), walk::day_start(horizon - 1));
                    (0..)
                        .map(|i| first + 24 * i)
                        .take_while(|d| *d <= last)
                        .collect()
                }
                None => {
                    self.metrics.requests("list", 1);
                    walk::app(&cold.store, app)
                        .await
                        .map_err(|e| format!("listing the cold store: {e}"))?
                        .days
                }
            };
            for day in cold_days {
                if due(day, delete_after) {
                    days.entry(day).or_default().1 = true;
                }
            }
        }
        let mut left_due: Option<i64> = None;
        for (first, (hot, cold)) in days {
            let work = Day {
                app,
                first,
                hot,
                cold,
            };
            let left = self.day(nats, &work, now, report).await?;
            left_due = left_due.min(left).or(left);
        }
        // The cursor: every hour before it is gone.
        if let (Some(_), Some(horizon)) = (nats, horizon) {
            let before = left_due.map_or(horizon, |l| l.min(horizon));
            if hot.expired_before().is_none_or(|old| before > old) {
                self.move_cursor(app, before, &hot.expired).await;
            }
        }
        Ok(())
    }

    /// Writes the expired-before marker `hour` and removes older ones.
    async fn move_cursor(&self, app: &str, hour: i64, old: &[(i64, String)]) {
        let key = self.hot.key(&format!("app={app}/{}", expired_marker(hour)));
        self.metrics.requests("put", 1);
        if let Err(err) = self.hot.inner.put(&key, Vec::<u8>::new().into()).await {
            tracing::warn!(app, error = %err, "cannot store the expired-before marker");
            return;
        }
        let stale = old
            .iter()
            .filter(|(h, _)| *h != hour)
            .map(|(_, name)| self.hot.key(&format!("app={app}/{name}")))
            .collect();
        if let Err(err) = self.delete_all(&self.hot, stale).await {
            tracing::debug!(app, error = %err, "cannot remove an old expired-before marker");
        }
    }

    /// One day of one app: claim its due hours, list it, decide, act.
    /// Returns the earliest due-for-deletion hour left as it was.
    async fn day(
        &self,
        nats: Option<&Nats>,
        work: &Day<'_>,
        now: i64,
        report: &mut Report,
    ) -> Result<Option<i64>, String> {
        let Day {
            app, first: day, ..
        } = *work;
        let rule = self.rules.for_app(app);
        let first_action = rule.first_action_ns().unwrap_or(i64::MAX);
        let hours: Vec<Partition> = (day..day + 24)
            .map(|hour| Partition {
                app: app.to_string(),
                hour,
            })
            .filter(|p| p.end_ns().saturating_add(first_action) <= now)
            .collect();
        let deletes_due = |p: &Partition| {
            rule.delete_after_ns
                .is_some_and(|d| p.end_ns().saturating_add(d) <= now)
        };
        // Claim first, list after: what is listed is what is acted on.
        let claimed: Vec<Partition> = match nats {
            Some(nats) => {
                let results: Vec<(Partition, bool)> = futures::stream::iter(hours)
                    .map(|p| {
                        async move {
                            let ok = sluice_core::claims::claim(
                                &nats.claims,
                                &p.kv_key(),
                                &nats.claimant,
                            )
                            .await;
                            (p, ok)
                        }
                        .boxed()
                    })
                    .buffered(CLAIM_CONCURRENCY)
                    .collect()
                    .await;
                let mut claimed = Vec::new();
                for (p, ok) in results {
                    if ok {
                        claimed.push(p);
                    } else {
                        self.metrics.held(app, "claimed");
                        report.busy.push(p);
                    }
                }
                claimed
            }
            None => hours,
        };
        let outcome = self.day_claimed(nats, work, &claimed, now, report).await;
        if let Some(nats) = nats {
            futures::stream::iter(claimed.clone())
                .map(|p| {
                    async move { sluice_core::claims::release(&nats.claims, &p.kv_key()).await }
                        .boxed()
                })
                .buffer_unordered(CLAIM_CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
        }
        outcome?;
        let left = report
            .held
            .iter()
            .map(|(p, _)| p)
            .chain(report.failed.iter().map(|(p, _)| p))
            .chain(report.busy.iter())
            .filter(|p| p.app == app && deletes_due(p) && walk::day_start(p.hour) == day)
            .map(|p| p.hour)
            .min();
        Ok(left)
    }

    async fn day_claimed(
        &self,
        nats: Option<&Nats>,
        work: &Day<'_>,
        claimed: &[Partition],
        now: i64,
        report: &mut Report,
    ) -> Result<(), String> {
        let Day {
            app,
            first: day,
            hot: in_hot,
            cold: in_cold,
        } = *work;
        if claimed.is_empty() {
            return Ok(());
        }
        let mut hot = BTreeMap::new();
        if in_hot {
            self.metrics.requests("list", 1);
            hot = walk::day(&self.hot, app, day)
                .await
                .map_err(|e| format!("listing a day: {e}"))?;
        }
        let mut cold = BTreeMap::new();
        if let (true, Some(c)) = (in_cold, &self.cold) {
            self.metrics.requests("list", 1);
            cold = walk::day(&c.store, app, day)
                .await
                .map_err(|e| format!("listing a day of the cold store: {e}"))?;
        }
        let wanted: BTreeSet<i64> = claimed.iter().map(|p| p.hour).collect();
        let observed: Vec<Observed> = wanted
            .iter()
            .filter_map(|hour| {
                let hot: Side = hot.remove(hour).unwrap_or_default();
                let cold: Side = cold.remove(hour).unwrap_or_default();
                (!hot.is_empty() || !cold.is_empty()).then(|| Observed {
                    partition: Partition {
                        app: app.to_string(),
                        hour: *hour,
                    },
                    hot,
                    cold,
                })
            })
            .collect();
        let decided = plan::plan(observed, &self.rules, now);
        for (p, _) in &decided.held {
            self.metrics.held(&p.app, "recent_write");
        }
        report.held.extend(decided.held);
        let Some(nats) = nats else {
            report
                .actions
                .extend(decided.actions.into_iter().map(|a| (a, None)));
            return Ok(());
        };
        let (deletes, moves): (Vec<Action>, Vec<Action>) = decided
            .actions
            .into_iter()
            .partition(|a| a.kind == Kind::Delete);
        let (done, failed) = self.delete(nats, deletes).await;
        report
            .actions
            .extend(done.into_iter().map(|(a, e)| (a, Some(e))));
        report.failed.extend(failed);
        let moved: Vec<_> = futures::stream::iter(moves)
            .map(|a| self.move_one(nats, a).boxed())
            .buffer_unordered(MOVE_CONCURRENCY)
            .collect()
            .await;
        for result in moved {
            match result {
                Ok((a, e)) => report.actions.push((a, Some(e))),
                Err(f) => report.failed.push(f),
            }
        }
        Ok(())
    }
}

/// One app's day a pass works on: its first hour, and which stores to list.
#[derive(Clone, Copy)]
struct Day<'a> {
    app: &'a str,
    first: i64,
    hot: bool,
    cold: bool,
}

/// Sets up what acting needs: the audit stream and the claims bucket.
pub async fn connect_nats(
    js: jetstream::Context,
    config: &Config,
    claimant: String,
) -> Result<Nats, String> {
    sluice_core::audit::ensure(&js, &config.nats, config.expiry.audit_max_age_days).await?;
    let claims = sluice_core::nats::ensure_kv(
        &js,
        sluice_core::claims::BUCKET,
        sluice_core::claims::MAX_AGE,
        config.nats.replicas,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Nats {
        js,
        claims,
        claimant,
    })
}

/// The claimant of an expiry instance: its role claimant, marked as
/// expiry's (see [`sluice_core::claims`]).
pub fn claimant(role: &Role) -> String {
    format!("{ROLE}.{}", role.claimant())
}

/// Runs the role: a pass every `interval_secs` until `shutdown`.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    validate(&config)?;
    let ecfg = config.expiry.clone();
    let mut registry = Registry::default();
    let metrics = ExpiryMetrics::register(&mut registry);
    let spec = RoleSpec::tier(ROLE, ecfg.id.as_deref(), ecfg.admin.listen);
    let role = Role::start(spec, registry, shutdown).await?;
    let expiry = Arc::new(Expiry::open(&config, role.instance(), metrics.clone())?);
    let js = role.jetstream(&config.nats).await?;
    let claimant = claimant(&role);
    let Some(nats) = role
        .until_ready("the audit stream and the claims", || {
            connect_nats(js.clone(), &config, claimant.clone())
        })
        .await
    else {
        role.finish().await;
        return Ok(());
    };
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let errors = errors.clone();
        role.health(Arc::new(move || {
            let errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
            match errors.first() {
                None => Ok(()),
                Some(first) => Err(format!(
                    "expiry: {} failures in the last pass, first {first}",
                    errors.len()
                )),
            }
        }));
    }
    // A pass may take long; the heartbeat is beaten between partitions'
    // days by the pass itself finishing, so it is judged per interval.
    let beat = role.heartbeat(
        "the expiry pass",
        ecfg.interval_secs
            .saturating_mul(3)
            .max(ecfg.admin.stall_secs),
    );
    role.set_ready();
    let interval = Duration::from_secs(ecfg.interval_secs);
    let stop = role.token();
    role.spawn(async move {
        loop {
            beat.beat();
            let started = Instant::now();
            let now = sluice_core::record::now_nanos();
            let outcome = tokio::select! {
                r = expiry.pass(Some(&nats), now) => r,
                _ = stop.cancelled() => break,
            };
            let failures = match outcome {
                Ok(report) => {
                    tracing::info!(
                        actions = report.actions.len(),
                        held = report.held.len(),
                        busy = report.busy.len(),
                        failed = report.failed.len() + report.apps_failed.len(),
                        "expiry pass done"
                    );
                    report.errors()
                }
                Err(err) => {
                    tracing::warn!(error = %err, "expiry pass failed");
                    vec![err]
                }
            };
            expiry.metrics.last_pass_errors.set(failures.len() as i64);
            *errors.lock().unwrap_or_else(PoisonError::into_inner) = failures;
            expiry.metrics.passes.inc();
            expiry
                .metrics
                .pass_seconds
                .observe(started.elapsed().as_secs_f64());
            beat.beat();
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => break,
            }
        }
    });
    role.stopping().await;
    role.finish().await;
    Ok(())
}
