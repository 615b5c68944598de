//! Processes the tests start: finding binaries, signals, stopping, and what
//! `/proc` says about their cost.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The path of binary `bin` of workspace package `package`, built (or
/// found up to date) with the profile the tests were built with.
///
/// For the tests of a crate that does not own the binary: cargo gives
/// `CARGO_BIN_EXE_<name>` only to the owner's own tests. Built once per
/// test process; an up-to-date binary costs a cargo no-op. A failed build
/// fails the test with cargo's message.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(name, _)| name == bin) {
        return path.clone();
    }
    // No `--target`: the binary lands where `cargo build` puts it (and where
    // dev/test built it already), not in a second, per-triple target tree.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let run = escargot::CargoBuild::new()
        .manifest_path(manifest)
        .package(package)
        .bin(bin)
        .current_release()
        .run()
        .unwrap_or_else(|e| panic!("cannot build {bin} of {package}: {e}"));
    let path = run.path().to_path_buf();
    built.push((bin.to_string(), path.clone()));
    path
}

/// Finds a binary on `PATH` (and in the usual sbin directories, where Debian
/// installs `nats-server`).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Stops a child process: SIGTERM, then SIGKILL after 10 s; waits for it.
pub fn terminate(mut child: Child) {
    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// CPU seconds (user + system) a process has used, from `/proc`. Panics
/// when the process is gone or its stat line cannot be read, rather than
/// reporting a cost of 0.
pub fn process_cpu_secs(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (has the process exited?)"));
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("{path} has no command field: {stat:?}"));
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = match fields.get(11..13) {
        Some([user, system]) => [user, system]
            .iter()
            .map(|v| {
                v.parse::<f64>()
                    .unwrap_or_else(|e| panic!("{path}: cpu time {v:?}: {e}"))
            })
            .sum(),
        _ => panic!("{path} has no utime/stime fields: {stat:?}"),
    };
    let per_sec = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks / per_sec
}

/// A process's peak resident set size in MiB, from `/proc`. Panics when it
/// cannot be read, rather than reporting 0.
pub fn process_peak_rss_mib(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (has the process exited?)"));
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{path} has no VmHWM line"));
    kib / 1024.0
}

/// Sends a signal to a process by PID using the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}
