//! `sluice search`, `sluice tail` and `sluice request` against a running
//! `sluice query`: records printed for people with hostile log text shown
//! escaped, or as NDJSON; a request's spans; and clear errors for a bad
//! query, a missing token and a service that is not there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_core::time::now_nanos;
use sluice_core::{Level, Record};
use sluice_testing::{
    NatsServer, S3Server, StopOnDrop, free_port, publish_records, try_http_get_as,
    try_metric_value, wait_until,
};

const TOKEN: &str = "cli-secret";

fn record(i: usize, app: &str, service: &str, msg: &str) -> Record {
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("request_id".to_string(), "req-cli-1".to_string());
    Record {
        id: format!("01JCLI{app}{i:014}"),
        ts: now_nanos() + i as i64,
        app: app.into(),
        service: service.into(),
        host: "web-1".into(),
        level: Level::Error,
        msg: msg.into(),
        attrs,
        source: "http".into(),
    }
}

fn sluice(port: u16, args: &[&str]) -> Output {
    Command::new(sluice_tests::sluice_binary())
        .args(args)
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .env("SLUICE_TOKEN", TOKEN)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_tail_and_request_print_records_safely() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    sluice_core::nats::ensure_consumer_streams(&js, &nats.config())
        .await
        .unwrap();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("query.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n{}[query]\nlisten = \"127.0.0.1:{port}\"\n\
             [[query.tokens]]\nname = \"cli\"\ntoken = \"{TOKEN}\"\napps = [\"*\"]\n",
            nats.url(),
            s3.store_section("logs"),
        ),
    )
    .unwrap();
    let _query = StopOnDrop(
        Command::new(sluice_tests::sluice_binary())
            .args(["query", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(30), "sluice query to be ready", || {
        try_http_get_as(port, "/ready", None).is_ok_and(|(s, _)| s == 200)
    });
    let hostile = "boom \x1b[2J\x1b]0;owned\x07 done\u{202e}";
    let records = [
        record(0, "shop", "web", hostile),
        record(1, "shop", "checkout", "boom in checkout"),
        record(2, "billing", "pay", "boom in billing"),
    ];
    publish_records(&js, &records, 10).await;
    wait_until(Duration::from_secs(10), "the records in the window", || {
        try_http_get_as(port, "/api/v1/logs/search?query=boom", Some(TOKEN))
            .is_ok_and(|(_, body)| body.contains("\"total\":3"))
    });

    // For people: one line per record, terminal controls shown escaped.
    let out = sluice(port, &["search", "boom", "--app", "shop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.contains("boom \\x1b[2J\\x1b]0;owned\\x07 done\\u{202e} request_id=req-cli-1"),
        "{stdout}"
    );
    assert!(
        !out.stdout.contains(&0x1b),
        "no raw escape reaches the terminal"
    );
    assert!(
        text(&out.stderr).contains("2 shown of 2"),
        "{}",
        text(&out.stderr)
    );

    // As NDJSON: the records themselves.
    let out = sluice(port, &["search", "boom", "--json", "--oldest-first"]);
    let ids: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, want);
    let back: Record = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(back.msg, hostile, "JSON keeps the text exactly");

    // One request across apps: its spans, then its records.
    let out = sluice(port, &["request", "req-cli-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for span in ["shop/web", "shop/checkout", "billing/pay"] {
        assert!(stdout.contains(span), "{span} in\n{stdout}");
    }
    assert_eq!(stdout.matches("req-cli-1").count(), 3, "{stdout}");

    // Tail: a record published after the tail opened is printed.
    let mut tail = StopOnDrop(
        Command::new(sluice_tests::sluice_binary())
            .args([
                "tail",
                "papaya",
                "--json",
                "--url",
                &format!("http://127.0.0.1:{port}"),
            ])
            .env("SLUICE_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(10), "the tail to connect", || {
        try_http_get_as(port, "/metrics", None).is_ok_and(|(_, m)| {
            try_metric_value(&m, "sluice_query_tails_open").is_some_and(|v| v >= 1.0)
        })
    });
    let papaya = record(3, "shop", "web", "papaya arrived");
    let sent = Instant::now();
    publish_records(&js, std::slice::from_ref(&papaya), 1).await;
    let stdout = tail.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .expect("the tail printed nothing")
        .unwrap();
    let got: Record = serde_json::from_str(&line).unwrap();
    assert_eq!(got.id, papaya.id);
    println!(
        "sluice tail printed a record {:?} after it was published",
        sent.elapsed()
    );
    drop(tail);

    // Clear errors, exit 1.
    let out = sluice(port, &["search", "(boom"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("400") && text(&out.stderr).contains("query: at"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(sluice_tests::sluice_binary())
        .args([
            "search",
            "boom",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env_remove("SLUICE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let out = sluice(free_port(), &["search", "boom"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the query service"),
        "{}",
        text(&out.stderr)
    );
}
