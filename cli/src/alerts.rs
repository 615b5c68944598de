//! `sluice alerts`: list firing alerts and silences, add and end silences.
//! Silences are stored in JetStream KV, where every alerter reads them
//! within seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream;
use clap::Subcommand;
use sluice_alerter::silence::{self, Silence};
use sluice_core::config::Config;
use sluice_core::record::{format_ts, now_nanos, parse_ts};
use sluice_core::time::duration_to_ns;

#[derive(Subcommand)]
pub enum AlertsCmd {
    /// Show firing alerts, silences in force and notifications waiting for
    /// delivery.
    List,
    /// Hold back notifications matching every given field until the
    /// silence ends.
    Silence {
        /// The rule silenced (any when absent).
        #[arg(long)]
        rule: Option<String>,
        /// The app silenced (any when absent).
        #[arg(long)]
        app: Option<String>,
        /// A group label that must match, `name=value` (repeatable).
        #[arg(long = "label", value_name = "NAME=VALUE")]
        labels: Vec<String>,
        /// How long, e.g. `2h`, `30m`, `1d`.
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<String>,
        /// Until when, RFC 3339.
        #[arg(long)]
        until: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// End a silence now.
    Expire {
        /// The silence's id (from `sluice alerts list`).
        id: String,
    },
}

/// Parses the silence's fields into a [`Silence`] starting at `now`.
pub fn build_silence(
    rule: Option<String>,
    app: Option<String>,
    labels: &[String],
    duration: Option<&str>,
    until: Option<&str>,
    comment: String,
    now: i64,
) -> anyhow::Result<Silence> {
    let until = match (duration, until) {
        (Some(d), None) => {
            let d = humantime::parse_duration(d)
                .with_context(|| format!("--for {d:?}: expected a duration such as 2h or 30m"))?;
            if d.is_zero() {
                bail!("--for must be positive");
            }
            now.saturating_add(duration_to_ns(d))
        }
        (None, Some(u)) => {
            parse_ts(u).with_context(|| format!("--until {u:?} is not an RFC 3339 time"))?
        }
        _ => bail!("give --for DURATION or --until TIME"),
    };
    if until <= now {
        bail!("the silence would end in the past");
    }
    let mut map = BTreeMap::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?}: expected NAME=VALUE");
        };
        map.insert(k.to_string(), v.to_string());
    }
    Ok(Silence {
        id: ulid::Ulid::new().to_string(),
        rule,
        app,
        labels: map,
        until,
        comment,
        created_by: std::env::var("USER").unwrap_or_else(|_| "sluice".into()),
    })
}

pub async fn run(config: Config, cmd: AlertsCmd) -> anyhow::Result<()> {
    let client = sluice_core::nats::connect(&config.nats, "sluice alerts").await?;
    let js = jetstream::new(client);
    let (groups, _claims, silences) = tokio::time::timeout(
        Duration::from_secs(10),
        sluice_alerter::open_buckets(&js, &config),
    )
    .await
    .with_context(|| format!("nats at {} did not answer", config.nats.url_or_default()))?
    .map_err(anyhow::Error::msg)?;
    let now = now_nanos();
    match cmd {
        AlertsCmd::Silence {
            rule,
            app,
            labels,
            duration,
            until,
            comment,
        } => {
            if let Some(r) = &rule
                && !config.alerter.rules.is_empty()
                && !config.alerter.rules.iter().any(|c| &c.name == r)
            {
                eprintln!("warning: no rule {r:?} in the configuration");
            }
            let s = build_silence(
                rule,
                app,
                &labels,
                duration.as_deref(),
                until.as_deref(),
                comment,
                now,
            )?;
            silence::add(&silences, &s)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("silence {} until {}", s.id, format_ts(s.until));
        }
        AlertsCmd::Expire { id } => {
            if silence::expire(&silences, &id)
                .await
                .map_err(anyhow::Error::msg)?
            {
                println!("silence {id} ended");
            } else {
                bail!("no silence {id:?}");
            }
        }
        AlertsCmd::List => {
            println!("FIRING");
            let firing = sluice_alerter::firing(&groups)
                .await
                .map_err(anyhow::Error::msg)?;
            if firing.is_empty() {
                println!("  (none)");
            }
            for s in firing {
                println!(
                    "  {}  [{}]  notified {}",
                    s.rule,
                    s.values.join(", "),
                    format_ts(s.last_notified)
                );
            }
            println!("SILENCES");
            let all = silence::in_force(&config.alerter.silences, Some(&silences), now)
                .await
                .map_err(anyhow::Error::msg)?;
            if all.is_empty() {
                println!("  (none)");
            }
            for s in all {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "  {}  until {}  rule={} app={} labels=[{}]  {}",
                    s.id,
                    format_ts(s.until),
                    s.rule.as_deref().unwrap_or("*"),
                    s.app.as_deref().unwrap_or("*"),
                    labels.join(","),
                    s.comment
                );
            }
            let pending = match js.get_stream(sluice_notify::outbox::STREAM).await {
                Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            };
            println!("OUTBOX\n  {pending} notifications waiting for delivery");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_from_arguments() {
        let now = 1_000_000_000_000;
        let s = build_silence(
            Some("r".into()),
            None,
            &["service=checkout".into()],
            Some("2h"),
            None,
            "deploy".into(),
            now,
        )
        .unwrap();
        assert_eq!(s.until, now + 7200 * sluice_core::time::NS_PER_SEC);
        assert_eq!(s.labels["service"], "checkout");
        for (labels, d, u, words) in [
            (vec!["x".to_string()], Some("1h"), None, "NAME=VALUE"),
            (vec![], Some("soon"), None, "duration"),
            (vec![], None, None, "--for"),
            (vec![], None, Some("yesterday"), "RFC 3339"),
            (vec![], None, Some("1970-01-01T00:00:00Z"), "past"),
        ] {
            let err = build_silence(None, None, &labels, d, u, String::new(), now)
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{err}");
        }
    }
}
