//! End to end with a real `nats-server`: three files, 300k lines, a
//! rename + create rotation, a copytruncate rotation, a 1 MiB line, an
//! invalid UTF-8 line and a multi-line stack trace → `LOGS` holds every line
//! exactly once. The second test does the same while the agent is killed
//! with SIGKILL at five random moments.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{AgentProcess, Collector, append, assert_exactly_once, line, write_config};
use rand::Rng;
use sluice_core::record::{ATTR_LOSSY, ATTR_TRUNCATED};
use sluice_testing::NatsServer;

const LINES_PER_FILE: usize = 100_000;
const ROUNDS: usize = 100;

fn config_files(logs: &Path) -> String {
    format!(
        r#"
[[agent.files]]
include = ["{logs}/a.log", "{logs}/b.log"]
app = "shop"

[[agent.files]]
include = ["{logs}/c.log"]
app = "billing"
[agent.files.multiline]
start_pattern = '^\d{{4}}-'
timeout_ms = 300
"#,
        logs = logs.display()
    )
}

fn lines_text(file: &str, from: usize, to: usize, expected: &mut Vec<String>) -> String {
    let mut text = String::with_capacity((to - from) * 202);
    for n in from..to {
        let l = line(file, n);
        text.push_str(&l);
        text.push('\n');
        expected.push(l);
    }
    text
}

async fn scenario(kills: usize) {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (config, port) = write_config(tmp.path(), &nats.url(), &config_files(&logs));
    let agent = Arc::new(Mutex::new(AgentProcess::new(config, port)));
    agent.lock().unwrap().start();
    let mut collector = Collector::new(&nats.url()).await;

    // The killer: SIGKILL at random moments while lines are written and
    // shipped, restarting the agent each time.
    let killer = {
        let agent = agent.clone();
        std::thread::spawn(move || {
            let mut rng = rand::rng();
            for _ in 0..kills {
                std::thread::sleep(Duration::from_millis(rng.random_range(200..900)));
                let mut a = agent.lock().unwrap();
                a.kill9();
                std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
                a.start();
            }
        })
    };

    let a = logs.join("a.log");
    let b = logs.join("b.log");
    let c = logs.join("c.log");
    let mut expected: Vec<String> = Vec::new();
    let mut b_expected_count = 0usize;
    let per_round = LINES_PER_FILE / ROUNDS;
    for round in 0..ROUNDS {
        let from = round * per_round;
        let to = from + per_round;
        append(&a, lines_text("a.log", from, to, &mut expected).as_bytes());
        let before = expected.len();
        append(&b, lines_text("b.log", from, to, &mut expected).as_bytes());
        b_expected_count += expected.len() - before;
        append(&c, lines_text("c.log", from, to, &mut expected).as_bytes());

        if round == 30 {
            // Rename + create: the old file is finished through its handle.
            std::fs::rename(&a, logs.join("a.log.1")).unwrap();
            let bad = b"2026-11-22T10:00:00Z WARN a.log invalid \xff\xfe utf-8 line\n";
            append(&a, bad);
            expected.push(String::from_utf8_lossy(&bad[..bad.len() - 1]).into_owned());
        }
        if round == 50 {
            // Copytruncate: wait until everything written to b.log is
            // shipped (lines written after the copy would be lost by any
            // agent), then copy and truncate.
            let want = b_expected_count;
            let ok = collector
                .until(Duration::from_secs(120), |rs| {
                    rs.iter().filter(|r| r.msg.contains(" b.log line ")).count() >= want
                })
                .await;
            assert!(ok, "b.log never caught up before copytruncate");
            std::fs::copy(&b, logs.join("b.log.1")).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&b)
                .unwrap();
        }
        if round == 60 {
            let big = format!(
                "2026-11-22T10:00:00Z INFO c.log big line {}",
                "y".repeat(1 << 20)
            );
            append(&c, format!("{big}\n").as_bytes());
            expected.push(big[..256 * 1024].to_string());
            let trace = "2026-11-22T10:00:01Z ERROR c.log exception in checkout\n\
                         java.lang.IllegalStateException: boom\n\
                         \tat com.shop.Checkout.pay(Checkout.java:42)\n\
                         \tat com.shop.Main.main(Main.java:7)";
            append(&c, format!("{trace}\n").as_bytes());
            expected.push(trace.to_string());
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    killer.join().unwrap();

    let want = expected.len();
    let done = collector
        .until(Duration::from_secs(180), |rs| rs.len() >= want)
        .await;
    // Give late duplicates a chance to show up before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    collector.poll().await;
    let log = agent.lock().unwrap().log_text();
    assert!(
        done,
        "only {} of {want} records arrived\nagent log tail:\n{}",
        collector.records.len(),
        tail(&log)
    );
    assert_eq!(
        log.matches("agent running").count(),
        kills + 1,
        "the agent was not restarted after every kill"
    );
    assert_exactly_once(&collector.records, &expected);

    let big = collector
        .records
        .iter()
        .find(|r| {
            r.msg
                .starts_with("2026-11-22T10:00:00Z INFO c.log big line")
        })
        .unwrap();
    assert_eq!(
        big.attrs.get(ATTR_TRUNCATED).map(String::as_str),
        Some("1048617")
    );
    let lossy = collector
        .records
        .iter()
        .find(|r| r.msg.contains("invalid"))
        .unwrap();
    assert_eq!(
        lossy.attrs.get(ATTR_LOSSY).map(String::as_str),
        Some("true")
    );
    let trace = collector
        .records
        .iter()
        .find(|r| r.msg.contains("IllegalStateException"))
        .unwrap();
    assert_eq!(trace.level, sluice_core::Level::Error);
    assert_eq!(trace.app, "billing");
    assert_eq!(trace.service, "c");
    for r in &collector.records {
        assert_eq!(r.host, "test-host");
        assert!(r.app == "shop" || r.app == "billing");
    }
    let status = agent.lock().unwrap().terminate();
    assert_eq!(status, Some(0), "agent did not exit cleanly on SIGTERM");
    drop(nats);
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_exactly_once_across_rotations() {
    scenario(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_exactly_once_across_kill_9() {
    scenario(5).await;
}
