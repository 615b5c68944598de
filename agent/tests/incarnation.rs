//! Message ids are never reused: a new spool under an old agent id (a
//! re-imaged host, a container without its volume, two hosts with one name)
//! ships everything, and a spool written before incarnations keeps the ids
//! of its pending entries, so what was sent already is not stored twice.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{AgentProcess, Collector, append, assert_exactly_once, line, write_config};
use sluice_agent::pipeline::entry::{Entry, LevelBatch};
use sluice_agent::pipeline::spool::{Spool, SpoolOptions};
use sluice_core::codec::{encode_batch, msg_id, subject};
use sluice_core::record::now_nanos;
use sluice_core::{Level, Record};
use sluice_testing::{NatsServer, test_record, wait_until};

const LINES: usize = 10_000;

fn files_section(logs: &Path) -> String {
    format!(
        "[[agent.files]]\ninclude = [\"{}/*.log\"]\napp = \"shop\"\n",
        logs.display()
    )
}

/// Writes `LINES` lines to `file` and returns them.
fn write_lines(logs: &Path, file: &str) -> Vec<String> {
    let lines: Vec<String> = (0..LINES).map(|n| line(file, n)).collect();
    let mut text = lines.join("\n");
    text.push('\n');
    append(&logs.join(file), text.as_bytes());
    lines
}

/// An agent config whose heartbeat runs every second.
fn config_with_heartbeat(dir: &Path, nats: &NatsServer, logs: &Path) -> (std::path::PathBuf, u16) {
    let (path, port) = write_config(dir, &nats.url(), &files_section(logs));
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "id = \"test-agent\"\n",
        "id = \"test-agent\"\nheartbeat_secs = 1\n",
    );
    std::fs::write(&path, text).unwrap();
    (path, port)
}

/// `<agent id>:<16 hex digits>:<seq>:<level>`.
fn has_incarnation(id: &str) -> bool {
    let parts: Vec<&str> = id.split(':').collect();
    parts.len() == 4
        && parts[0] == "test-agent"
        && parts[1].len() == 16
        && parts[1].bytes().all(|b| b.is_ascii_hexdigit())
        && parts[2].parse::<u64>().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_spool_under_the_same_agent_id_ships_everything() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (config, port) = write_config(tmp.path(), &nats.url(), &files_section(&logs));
    let mut collector = Collector::new(&nats.url()).await;

    let mut expected = write_lines(&logs, "first.log");
    let mut agent = AgentProcess::new(config.clone(), port);
    agent.start();
    assert!(
        collector
            .until(Duration::from_secs(60), |r| r.len() >= LINES)
            .await,
        "first run shipped {} of {LINES}",
        collector.records.len()
    );
    assert_eq!(agent.terminate(), Some(0));

    // Re-imaged: the data directory is gone, the old file too; the same
    // agent id starts from seq 1 again, well within the duplicate window.
    std::fs::remove_dir_all(tmp.path().join("data")).unwrap();
    std::fs::remove_file(logs.join("first.log")).unwrap();
    expected.extend(write_lines(&logs, "second.log"));
    let mut agent = AgentProcess::new(config, port);
    agent.start();
    let arrived = collector
        .until(Duration::from_secs(60), |r| r.len() >= 2 * LINES)
        .await;
    assert!(
        arrived,
        "{} of {} records in LOGS; duplicates dropped by the second run: {}",
        collector.records.len(),
        2 * LINES,
        agent.metric("sluice_agent_batches_duplicate_total")
    );
    assert_exactly_once(&collector.records, &expected);
    assert_eq!(agent.metric("sluice_agent_batches_duplicate_total"), 0.0);
    assert!(
        collector.msg_ids.iter().all(|id| has_incarnation(id)),
        "{:?}",
        &collector.msg_ids[..4]
    );
    // Two spools, two incarnations, both starting at seq 1.
    let incarnations: std::collections::HashSet<&str> = collector
        .msg_ids
        .iter()
        .filter_map(|id| id.split(':').nth(1))
        .collect();
    assert_eq!(incarnations.len(), 2, "{incarnations:?}");
    assert_eq!(agent.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_with_one_id_both_arrive_and_are_warned_about() {
    let nats = NatsServer::start();
    let mut collector = Collector::new(&nats.url()).await;
    let mut expected = Vec::new();
    let mut agents = Vec::new();
    let tmps: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (k, tmp) in tmps.iter().enumerate() {
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        expected.extend(write_lines(&logs, &format!("host{k}.log")));
        let (config, port) = config_with_heartbeat(tmp.path(), &nats, &logs);
        let mut agent = AgentProcess::new(config, port);
        agent.start();
        agents.push(agent);
    }
    assert!(
        collector
            .until(Duration::from_secs(60), |r| r.len() >= 2 * LINES)
            .await,
        "{} of {} records in LOGS",
        collector.records.len(),
        2 * LINES
    );
    assert_exactly_once(&collector.records, &expected);
    wait_until(Duration::from_secs(30), "the shared-id warning", || {
        agents
            .iter()
            .any(|a| a.metric("sluice_agent_id_conflicts_total") > 0.0)
    });
    let warned: Vec<&AgentProcess> = agents
        .iter()
        .filter(|a| a.metric("sluice_agent_id_conflicts_total") > 0.0)
        .collect();
    for a in &warned {
        let log = a.log_text();
        assert!(
            log.contains("another agent is running with this agent id"),
            "{log}"
        );
    }
    for a in &mut agents {
        assert_eq!(a.terminate(), Some(0));
    }
}

/// What the agent before incarnations left: a spool with pending entries
/// (the incarnation file is all that is new on disk), some of which it had
/// published without the acknowledgement reaching the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_from_before_incarnations_delivers_its_pending_entries_once() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let spool_dir = tmp.path().join("data").join("spool");

    // Ten entries of 100 records in two levels.
    let mut entries: Vec<(Vec<Record>, Vec<Record>)> = Vec::new();
    {
        let (spool, _) = Spool::open(SpoolOptions {
            dir: spool_dir.clone(),
            max_bytes: 64 << 20,
            segment_bytes: 1 << 20,
        })
        .unwrap();
        for e in 0..10 {
            let make = |level, k| {
                (0..50)
                    .map(|i| {
                        test_record(
                            "shop",
                            "legacy",
                            level,
                            "test-host",
                            &format!("legacy entry {e} {k} {i}"),
                        )
                    })
                    .collect::<Vec<Record>>()
            };
            let (info, error) = (make(Level::Info, "i"), make(Level::Error, "e"));
            let entry = Entry {
                created_ns: now_nanos(),
                app: "shop".into(),
                positions: Vec::new(),
                batches: vec![
                    LevelBatch {
                        level: Level::Info,
                        records: 50,
                        payload: encode_batch(&info),
                    },
                    LevelBatch {
                        level: Level::Error,
                        records: 50,
                        payload: encode_batch(&error),
                    },
                ],
            };
            let seq = spool.append(&[&entry.encode()]).unwrap();
            assert_eq!(seq, e + 1);
            entries.push((info, error));
        }
    }
    std::fs::remove_file(spool_dir.join("incarnation")).unwrap();

    // The old agent had published the first four entries, with its ids.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    sluice_core::nats::ensure_stream(&js, &nats.config())
        .await
        .unwrap();
    for (e, (info, error)) in entries.iter().enumerate().take(4) {
        for (level, records) in [(Level::Info, info), (Level::Error, error)] {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                msg_id("test-agent", None, e as u64 + 1, level).as_str(),
            );
            js.publish_with_headers(
                subject("shop", level),
                headers,
                encode_batch(records).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    }

    let (config, port) = write_config(tmp.path(), &nats.url(), &files_section(&logs));
    let mut agent = AgentProcess::new(config, port);
    agent.start();
    let mut collector = Collector::new(&nats.url()).await;
    let mut expected: Vec<String> = entries
        .iter()
        .flat_map(|(i, e)| i.iter().chain(e))
        .map(|r| r.msg.clone())
        .collect();
    assert!(
        collector
            .until(Duration::from_secs(30), |r| r.len() >= 1_000)
            .await,
        "{} of 1000 pending records in LOGS",
        collector.records.len()
    );
    wait_until(Duration::from_secs(30), "every pending entry acked", || {
        agent.metric("sluice_agent_batches_published_total") >= 20.0
    });
    // The four sent before were dropped as duplicates: same ids.
    assert_eq!(agent.metric("sluice_agent_batches_duplicate_total"), 8.0);
    for (k, id) in collector.msg_ids.iter().enumerate() {
        let parts: Vec<&str> = id.split(':').collect();
        assert_eq!(parts.len(), 3, "pending entry {k} kept its old id: {id}");
    }

    // What is spooled from now on carries the incarnation.
    let new_line = line("new.log", 0);
    append(&logs.join("new.log"), format!("{new_line}\n").as_bytes());
    expected.push(new_line);
    assert!(
        collector
            .until(Duration::from_secs(30), |r| r.len() >= 1_001)
            .await,
        "the new line did not arrive"
    );
    assert_exactly_once(&collector.records, &expected);
    let last = collector.msg_ids.last().unwrap();
    assert!(has_incarnation(last), "{last}");
    // The upgrade is recorded: restarting keeps the same incarnation.
    let inc = last.split(':').nth(1).unwrap().to_string();
    assert_eq!(agent.terminate(), Some(0));
    agent.start();
    let newer = line("new.log", 1);
    append(&logs.join("new.log"), format!("{newer}\n").as_bytes());
    expected.push(newer);
    assert!(
        collector
            .until(Duration::from_secs(30), |r| r.len() >= 1_002)
            .await
    );
    assert_exactly_once(&collector.records, &expected);
    assert_eq!(
        collector.msg_ids.last().unwrap().split(':').nth(1),
        Some(inc.as_str())
    );
    assert_eq!(agent.terminate(), Some(0));
}
