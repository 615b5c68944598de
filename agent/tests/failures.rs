//! The agent under failure, against a real `nats-server`: an outage, a full
//! spool, a damaged spool, and bad configuration.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    AgentProcess, Collector, append, assert_exactly_once, check_config, line, wait_for_records,
    write_config,
};
use sluice_agent::pipeline::entry::Entry;
use sluice_agent::pipeline::spool::{Spool, SpoolOptions};
use sluice_testing::{NatsServer, wait_until};

fn one_file(logs: &Path) -> String {
    format!(
        "[[agent.files]]\ninclude = [\"{}/*.log\"]\napp = \"shop\"\n",
        logs.display()
    )
}

fn write_lines(path: &Path, file: &str, from: usize, to: usize, expected: &mut Vec<String>) {
    let mut text = String::new();
    for n in from..to {
        let l = line(file, n);
        text.push_str(&l);
        text.push('\n');
        expected.push(l);
    }
    append(path, text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outage_loses_nothing_and_health_reports_the_stall() {
    let mut nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (config, port) = write_config(tmp.path(), &nats.url(), &one_file(&logs));
    let mut agent = AgentProcess::new(config, port);
    agent.start();
    let mut collector = Collector::new(&nats.url()).await;
    let file = logs.join("app.log");
    let mut expected = Vec::new();
    let mut n = 0;
    let mut write_for = |dur: Duration, expected: &mut Vec<String>| {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            write_lines(&file, "app.log", n, n + 200, expected);
            n += 200;
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write_for(Duration::from_secs(2), &mut expected);
    let shipped = expected.len();
    assert!(
        collector
            .until(Duration::from_secs(30), |r| r.len() >= shipped)
            .await
    );
    assert_eq!(agent.get("/health").0, 200);

    nats.stop();
    let outage = Instant::now();
    let mut saw_unhealthy = None;
    while outage.elapsed() < Duration::from_secs(30) {
        write_for(Duration::from_millis(500), &mut expected);
        let (status, body) = agent.get("/health");
        if status == 503 && saw_unhealthy.is_none() {
            assert!(body.contains("stalled"), "{body}");
            saw_unhealthy = Some(outage.elapsed());
        }
    }
    assert!(
        saw_unhealthy.is_some(),
        "/health never failed during a 30 s outage"
    );
    nats.start_again();
    write_for(Duration::from_secs(1), &mut expected);

    let want = expected.len();
    wait_for_records(&mut collector, want, Duration::from_secs(90), &agent).await;
    wait_until(Duration::from_secs(30), "/health to recover", || {
        agent.get("/health").0 == 200
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector.poll().await;
    assert_exactly_once(&collector.records, &expected);
    assert!(agent.metric("sluice_agent_publish_retries_total") > 0.0);
    assert_eq!(agent.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_pauses_tailing_and_loses_nothing() {
    let mut nats = NatsServer::start();
    nats.stop();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let extra = format!(
        "{}\n[agent.spool]\nmax_bytes = 4194304\nsegment_bytes = 262144\n",
        one_file(&logs)
    );
    let (config, port) = write_config(tmp.path(), &nats.url(), &extra);
    let mut expected = Vec::new();
    write_lines(&logs.join("big.log"), "big.log", 0, 100_000, &mut expected);
    let mut agent = AgentProcess::new(config, port);
    // NATS is down at start: the agent starts anyway and spools.
    agent.start();
    wait_until(Duration::from_secs(30), "spool to fill", || {
        agent.metric("sluice_agent_spool_full_waits_total") >= 1.0
    });
    let read_then = agent.metric("sluice_agent_lines_read_total");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read_now = agent.metric("sluice_agent_lines_read_total");
    let spooled = agent.metric("sluice_agent_records_spooled_total");
    assert!(spooled < 100_000.0, "everything fit in a 4 MiB spool?");
    assert!(
        read_now < 100_000.0 && read_now - read_then < 5_000.0,
        "tailing did not pause: {read_then} -> {read_now}"
    );
    assert!(agent.metric("sluice_agent_spool_bytes") <= 4_194_304.0);
    wait_until(
        Duration::from_secs(20),
        "/health to report the stall",
        || agent.get("/health").0 == 503,
    );
    assert!(agent.log_text().contains("cannot set up the stream yet"));

    nats.start_again();
    let mut collector = Collector::new(&nats.url()).await;
    let want = expected.len();
    wait_for_records(&mut collector, want, Duration::from_secs(120), &agent).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector.poll().await;
    assert_exactly_once(&collector.records, &expected);
    assert_eq!(agent.terminate(), Some(0));
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .collect();
    segs.sort();
    segs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_spool_ships_every_intact_record() {
    let mut nats = NatsServer::start();
    nats.stop();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Small entries, so damage in one costs few records.
    let extra = format!(
        "{}\n[agent.spool]\nsegment_bytes = 262144\n",
        one_file(&logs)
    );
    let (config, port) = write_config(tmp.path(), &nats.url(), &extra);
    let mut all = Vec::new();
    write_lines(&logs.join("app.log"), "app.log", 0, 20_000, &mut all);
    let mut agent = AgentProcess::new(config.clone(), port);
    agent.start();
    wait_until(Duration::from_secs(30), "lines to be spooled", || {
        agent.metric("sluice_agent_records_spooled_total") >= 20_000.0
    });
    assert_eq!(agent.terminate(), Some(0));

    // Damage: garbage in the middle of an early segment, and a torn frame at
    // the end of the last one.
    let spool_dir = tmp.path().join("data/spool");
    let segs = segments(&spool_dir);
    assert!(segs.len() >= 3, "expected several segments, got {segs:?}");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&segs[1])
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.write_all_at(&[0xA5; 300], len / 2).unwrap();
        let last = segs.last().unwrap();
        let head = std::fs::read(last).unwrap();
        let torn = &head[..head.len().min(60)];
        append(last, torn);
    }
    // What is intact, as the spool's own recovery sees it (on a copy).
    let copy = tmp.path().join("spool-copy");
    copy_dir(&spool_dir, &copy);
    let (spool, recovered) = Spool::open(SpoolOptions {
        dir: copy,
        max_bytes: 1 << 30,
        segment_bytes: 262_144,
    })
    .unwrap();
    assert!(recovered.corrupt_frames >= 1, "{recovered:?}");
    assert!(recovered.torn_bytes > 0, "{recovered:?}");
    let mut intact = Vec::new();
    spool
        .scan_all(|_, bytes| {
            let entry = Entry::decode(bytes).unwrap();
            for batch in entry.batches {
                for r in sluice_core::codec::decode_batch(&batch.payload).unwrap() {
                    intact.push(r.msg);
                }
            }
        })
        .unwrap();
    drop(spool);
    assert!(
        intact.len() < 20_000 && intact.len() > 15_000,
        "{}",
        intact.len()
    );

    nats.start_again();
    agent.start();
    let mut collector = Collector::new(&nats.url()).await;
    let want = intact.len();
    wait_for_records(&mut collector, want, Duration::from_secs(60), &agent).await;
    assert!(agent.metric("sluice_agent_spool_corrupt_frames_total") >= 1.0);
    assert!(agent.metric("sluice_agent_spool_torn_bytes_total") > 0.0);
    // And it keeps running: new lines still arrive.
    let mut more = Vec::new();
    write_lines(&logs.join("app.log"), "app.log", 20_000, 20_100, &mut more);
    intact.extend(more);
    let want = intact.len();
    let done = collector
        .until(Duration::from_secs(60), |r| r.len() >= want)
        .await;
    assert!(done, "{} of {want} arrived", collector.records.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector.poll().await;
    assert_exactly_once(&collector.records, &intact);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn config_errors_exit_2_naming_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "[agent]\nid = \"x\"\nspool_size = 5\n").unwrap();
    for args in [vec!["check", "--config"], vec!["--config"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice-agent"))
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("spool_size"), "{err}");
    }
    std::fs::write(
        &path,
        "[[agent.files]]\ninclude = [\"/x\"]\napp = \"Bad App\"\n",
    )
    .unwrap();
    let (code, err) = check_config(&path);
    assert_eq!(code, Some(2));
    assert!(err.contains("line 3"));
    std::fs::write(
        &path,
        "[[agent.files]]\ninclude = [\"/x/*.log\"]\napp = \"shop\"\n",
    )
    .unwrap();
    let (code, err) = check_config(&path);
    assert_eq!(code, Some(0), "{err}");
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_file_is_counted_and_retried_and_priority_is_lowered() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Priority: nice 10 and the idle IO class, as in production.
    let extra = one_file(&logs) + "[agent.limits]\nnice = 10\nio_idle = true\n";
    let (config, port) = write_config(tmp.path(), &nats.url(), &extra);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[agent.limits]\nnice = 0\n", "");
    std::fs::write(&config, text).unwrap();
    let mut locked = Vec::new();
    write_lines(&logs.join("locked.log"), "locked.log", 0, 100, &mut locked);
    let mut open = Vec::new();
    write_lines(&logs.join("open.log"), "open.log", 0, 100, &mut open);
    chmod(&logs.join("locked.log"), 0o000);
    let mut agent = AgentProcess::new(config, port);
    if running_as_root() {
        // Root reads any file: run the agent as nobody so mode 000 bites.
        for dir in [tmp.path(), logs.as_path()] {
            chmod(dir, 0o777);
        }
        chmod(&tmp.path().join("agent.toml"), 0o644);
        agent.wrapper = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .map(String::from)
        .to_vec();
    }
    agent.start();
    let pid = agent.pid().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let nice: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(nice, 10, "agent did not lower its cpu priority");

    let mut collector = Collector::new(&nats.url()).await;
    let want = open.len();
    assert!(
        collector
            .until(Duration::from_secs(30), |r| r.len() >= want)
            .await
    );
    agent.wait_metric(
        "sluice_agent_file_errors_total",
        1.0,
        Duration::from_secs(10),
        "the file error to be counted",
    );
    assert!(
        agent.log_text().contains("cannot read file"),
        "{}",
        agent.log_text()
    );

    // Readable again: picked up at the next rescan, nothing lost.
    chmod(&logs.join("locked.log"), 0o644);
    let mut all = open.clone();
    all.extend(locked);
    let want = all.len();
    wait_for_records(&mut collector, want, Duration::from_secs(30), &agent).await;
    assert_exactly_once(&collector.records, &all);
    assert_eq!(agent.terminate(), Some(0));
}
