//! `sluice alerter` as a process, and `sluice alerts silence|list|expire`
//! against it: a silence made on the command line holds notifications back
//! in the running alerter, and ending it lets new ones through.

use std::process::{Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use sluice_core::Level;
use sluice_testing::{
    Hooks, NatsServer, StopOnDrop, free_port, http_get, metric_value, publish_records, test_record,
    wait_for,
};

fn sluice(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(sluice_tests::sluice_binary())
        .args(["alerts", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn errors(js: &jetstream::Context, n: usize) {
    let records: Vec<_> = (0..n)
        .map(|i| {
            test_record(
                "shop",
                "checkout",
                Level::Error,
                "web-1",
                &format!("payment {i} declined"),
            )
        })
        .collect();
    publish_records(js, &records, 100).await;
}

/// Waits until the alerter on `admin` has read the silences and holds `n`.
async fn wait_silences_loaded(admin: u16, n: f64) {
    wait_for(Duration::from_secs(20), "the silences read", async || {
        metric_value(
            &http_get(admin, "/metrics").1,
            "sluice_alerter_silences_loaded",
        ) == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_from_the_command_line_hold_notifications_back() {
    let nats = NatsServer::start();
    let hooks = Hooks::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let admin = free_port();
    let config = tmp.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[nats]
url = "{url}"
[[receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"
[alerter]
admin = {{ listen = "127.0.0.1:{admin}" }}
[[alerter.rules]]
name = "checkout-errors"
app = "shop"
kind = "every"
receiver = "hook"
group_wait_secs = 0
group_interval_secs = 1
"#,
            url = nats.url(),
            hook = hooks.url("/hook"),
        ),
    )
    .unwrap();
    let child = Command::new(sluice_tests::sluice_binary())
        .args(["alerter", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("alerter.err")).unwrap())
        .spawn()
        .unwrap();
    let _child = StopOnDrop(child);
    wait_for(
        Duration::from_secs(30),
        "the alerter's health",
        async || std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok(),
    )
    .await;
    assert_eq!(http_get(admin, "/health").0, 200);

    let (ok, out) = sluice(
        &config,
        &[
            "silence",
            "--rule",
            "checkout-errors",
            "--for",
            "1h",
            "--comment",
            "deploy",
        ],
    );
    assert!(ok, "{out}");
    let id = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (ok, listed) = sluice(&config, &["list"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("deploy"),
        "{listed}"
    );
    // The alerter reads silences every 5 s: wait until it holds this one.
    wait_silences_loaded(admin, 1.0).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    errors(&js, 50).await;
    wait_for(Duration::from_secs(20), "the silenced metric", async || {
        metric_value(
            &http_get(admin, "/metrics").1,
            "sluice_alerter_silenced_total",
        ) >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hooks.got().is_empty(), "a silenced notification was sent");

    let (ok, out) = sluice(&config, &["expire", &id]);
    assert!(ok, "{out}");
    let (ok, out) = sluice(&config, &["expire", &id]);
    assert!(!ok && out.contains("no silence"), "{out}");
    wait_silences_loaded(admin, 0.0).await;
    errors(&js, 7).await;
    wait_for(
        Duration::from_secs(20),
        "the notification after the silence",
        async || !hooks.got().is_empty(),
    )
    .await;
    let got = hooks.got();
    assert_eq!(got[0].body["rule"], "checkout-errors");
    assert_eq!(
        got[0].body["count"], 7,
        "matches during the silence are not sent later"
    );
    let (ok, out) = sluice(&config, &["silence", "--for", "soon"]);
    assert!(!ok && out.contains("duration"), "{out}");
}
