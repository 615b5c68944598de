//! `sluice expiry plan|run --once|lifecycle|audit`: one pass of the expiry
//! role by hand, what it would do, the S3 lifecycle equivalent, and the
//! audit trail.

use anyhow::{Context, bail};
use clap::Subcommand;
use prometheus_client::registry::Registry;
use sluice_core::config::Config;
use sluice_core::time::format_ts;
use sluice_expiry::lifecycle::{ColdPlace, lifecycle};
use sluice_expiry::metrics::ExpiryMetrics;
use sluice_expiry::{Expiry, Report};

#[derive(Subcommand)]
pub enum ExpiryCmd {
    /// Show what the next pass would move and delete, changing nothing.
    Plan,
    /// Run passes: with `--once`, one pass, then exit (1 if any action
    /// failed); without, the role.
    Run {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Print the S3 lifecycle configuration closest to the rules (JSON for
    /// `aws s3api put-bucket-lifecycle-configuration`); notes on stderr.
    Lifecycle,
    /// List the audit stream's records.
    Audit {
        /// Records shown, at most.
        #[arg(long, short = 'n', default_value_t = 1000)]
        limit: usize,
    },
}

fn expiry(config: &Config) -> anyhow::Result<Expiry> {
    let instance = sluice_core::role::instance_id(config.expiry.id.as_deref());
    let metrics = ExpiryMetrics::register(&mut Registry::default());
    Ok(Expiry::open(config, &instance, metrics)?)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Prints a pass's report; `done` says whether it was carried out.
fn print(report: &Report, done: bool) {
    let mut actions: Vec<_> = report.actions.iter().collect();
    actions.sort_by(|a, b| a.0.partition().cmp(b.0.partition()));
    let (mut moved, mut deleted) = ((0, 0), (0, 0));
    for (action, _) in &actions {
        let word = match (done, action.kind) {
            (true, k) => k.done().to_string(),
            (false, sluice_expiry::plan::Kind::Move) => "would move".into(),
            (false, sluice_expiry::plan::Kind::Delete) => "would delete".into(),
        };
        let total = match action.kind {
            sluice_expiry::plan::Kind::Move => &mut moved,
            sluice_expiry::plan::Kind::Delete => &mut deleted,
        };
        total.0 += 1;
        total.1 += action.bytes();
        println!(
            "{word:<13} {:<40} {:<9} {:>5} objects {:>10}  rule {}",
            action.partition().prefix(),
            action.from(),
            action.objects(),
            size(action.bytes()),
            action.rule
        );
    }
    for (p, written) in &report.held {
        println!(
            "{:<13} {:<40} written {} (within min_write_age_hours)",
            "held",
            p.prefix(),
            format_ts(*written)
        );
    }
    for p in &report.busy {
        println!(
            "{:<13} {:<40} claimed by a compaction or another expiry instance",
            "busy",
            p.prefix()
        );
    }
    for (p, err) in &report.failed {
        println!("{:<13} {:<40} {err}", "failed", p.prefix());
    }
    for (app, err) in &report.apps_failed {
        println!("{:<13} app {app}: {err}", "failed");
    }
    let verb = |done_word: &str, plan_word: &str| {
        if done {
            done_word.to_string()
        } else {
            plan_word.to_string()
        }
    };
    println!(
        "{} partitions {} ({}), {} {} ({}); {} held, {} busy, {} failed",
        deleted.0,
        verb("deleted", "to delete"),
        size(deleted.1),
        moved.0,
        verb("moved", "to move"),
        size(moved.1),
        report.held.len(),
        report.busy.len(),
        report.failed.len() + report.apps_failed.len()
    );
}

pub async fn run(config: Config, command: ExpiryCmd) -> anyhow::Result<()> {
    let now = sluice_core::record::now_nanos();
    match command {
        ExpiryCmd::Plan => {
            let report = expiry(&config)?
                .pass(None, now)
                .await
                .map_err(anyhow::Error::msg)?;
            print(&report, false);
            Ok(())
        }
        ExpiryCmd::Run { once: false } => {
            Ok(sluice_expiry::run(config, sluice_core::shutdown::signal()).await?)
        }
        ExpiryCmd::Run { once: true } => {
            let expiry = expiry(&config)?;
            let client = sluice_core::nats::connect(
                &config.nats,
                &format!("sluice-expiry {}", expiry.instance),
            )
            .await
            .context("connecting to NATS")?;
            let claimant = format!(
                "{}.{}:{}",
                sluice_expiry::ROLE,
                expiry.instance,
                ulid::Ulid::new()
            );
            let nats =
                sluice_expiry::connect_nats(async_nats::jetstream::new(client), &config, claimant)
                    .await
                    .map_err(anyhow::Error::msg)?;
            let report = expiry
                .pass(Some(&nats), now)
                .await
                .map_err(anyhow::Error::msg)?;
            print(&report, true);
            if !report.failed.is_empty() || !report.apps_failed.is_empty() {
                bail!(
                    "{} actions failed; their partitions are as they were",
                    report.failed.len() + report.apps_failed.len()
                );
            }
            Ok(())
        }
        ExpiryCmd::Lifecycle => {
            let expiry = expiry(&config)?;
            let apps = sluice_core::store::apps(&expiry.hot)
                .await
                .context("listing the apps")?;
            // The bucket can only change the storage class in place.
            let cold = match &config.cold_store {
                None => ColdPlace::None,
                Some(c) => match &c.storage_class {
                    Some(class) => ColdPlace::SameBucket(class.clone()),
                    None => ColdPlace::Elsewhere,
                },
            };
            let (value, notes) = lifecycle(&apps, &expiry.rules, expiry.hot.prefix.as_ref(), &cold);
            println!("{}", serde_json::to_string_pretty(&value)?);
            for note in notes {
                eprintln!("note: {note}");
            }
            Ok(())
        }
        ExpiryCmd::Audit { limit } => {
            let client = sluice_core::nats::connect(&config.nats, "sluice expiry audit")
                .await
                .context("connecting to NATS")?;
            let events = sluice_core::audit::read_all(&async_nats::jetstream::new(client), limit)
                .await
                .map_err(anyhow::Error::msg)?;
            for e in &events {
                println!(
                    "{} {:<8} {:<40} {:<9} {:>5} objects {:>10}  rule {}  by {}  id {}",
                    e.at,
                    e.action,
                    e.partition,
                    e.from,
                    e.objects,
                    size(e.bytes),
                    e.rule,
                    e.instance,
                    e.id
                );
            }
            Ok(())
        }
    }
}
