//! Processes the tests start: finding binaries, signals, stopping, and what
//! `/proc` says about their cost.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The path of binary `bin` of workspace package `package`, as the last
/// cargo build of the workspace left it in the tests' profile directory.
///
/// For the tests of a crate that does not own the binary: cargo gives
/// `CARGO_BIN_EXE_<name>` only to the owner's own tests. The test command
/// (`dev/test`) runs `cargo build --workspace --bins` first. Building from
/// here instead would resolve features differently from the test build
/// (dev-dependencies unify features under `cargo test`), so every test
/// process would rebuild the workspace and overwrite the binary under the
/// others. A missing binary, or one older than a source file it was built
/// from (as cargo's dep-info file `<bin>.d` beside it lists them), fails the
/// test with the command that fixes it.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // A test executable lives in <target>/<profile>/deps/.
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", exe.display()));
    let path = profile_dir.join(bin);
    let hint = "run `cargo build --workspace --bins` (./dev/test does) before the tests";
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{bin} of {package} is not built at {}: {e}; {hint}",
                path.display()
            )
        });
    let dep_info = profile_dir.join(format!("{bin}.d"));
    let listed = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {hint}", dep_info.display()));
    let newer = dep_info_sources(&listed).into_iter().find(|source| {
        std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built)
    });
    if let Some(newer) = newer {
        panic!(
            "{} is older than {}; {hint}",
            path.display(),
            newer.display()
        );
    }
    path
}

/// The source files a cargo dep-info file lists for its first target
/// (`target: a.rs b.rs …`, spaces inside a path escaped as `\ `).
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let Some(line) = text.lines().next() else {
        return Vec::new();
    };
    // The target is an absolute path, so the first ": " ends it.
    let Some((_, deps)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    sources.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}

/// Every file under `dir` (recursively) whose name ends with `suffix`;
/// none when `dir` does not exist.
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
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
    stop_child(&mut child);
}

fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
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

/// A child process stopped like [`terminate`] when this is dropped, so a
/// failing test or benchmark leaves no process behind.
pub struct StopOnDrop(pub Child);

/// Starts `program args… --config config` as a benchmark runs a role: no
/// stdin or stdout, warnings and errors to this process's stderr.
pub fn spawn_bench_role(program: &Path, args: &[&str], config: &Path) -> StopOnDrop {
    StopOnDrop(
        Command::new(program)
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
    )
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_every_source_with_escaped_spaces() {
        let text = "/t/debug/bin: /w/a.rs /w/my\\ dir/b.rs  /w/Cargo.toml\n\n/w/a.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            ["/w/a.rs", "/w/my dir/b.rs", "/w/Cargo.toml"].map(PathBuf::from)
        );
        assert!(dep_info_sources("").is_empty());
    }
}
