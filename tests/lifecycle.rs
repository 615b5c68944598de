//! Every role runs on the shared role runtime: started while NATS is
//! unreachable it serves its admin endpoint (and says whether it is ready),
//! SIGTERM stops it within 5 s, and a role that cannot bind its admin port
//! exits at once with code 1, naming the address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_testing::{free_port, signal, try_http_get, wait_until, workspace_binary};

/// A role as its users start it: the program and its arguments.
struct RoleCmd {
    name: &'static str,
    program: PathBuf,
    args: Vec<&'static str>,
    /// Whether `/ready` answers 200 without NATS (the agent spools meanwhile).
    ready_without_nats: bool,
}

fn roles() -> Vec<RoleCmd> {
    let sluice = sluice_tests::sluice_binary();
    let tier = |name: &'static str| RoleCmd {
        name,
        program: sluice.clone(),
        args: vec![name],
        ready_without_nats: false,
    };
    vec![
        RoleCmd {
            name: "agent",
            program: workspace_binary("sluice-agent", "sluice-agent"),
            args: vec![],
            ready_without_nats: true,
        },
        tier("filterer"),
        tier("aggregator"),
        tier("alerter"),
        tier("expiry"),
        RoleCmd {
            // Searches the store while its recent window waits for NATS.
            ready_without_nats: true,
            ..tier("query")
        },
    ]
}

/// A configuration whose NATS is a closed port; every admin endpoint on
/// `admin` (each process reads only its own).
fn config(dir: &Path, admin: u16) -> PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "[nats]\nurl = \"nats://127.0.0.1:{nats}\"\n\
             [store]\nurl = \"file://{blobs}\"\n\
             [agent]\nid = \"lifecycle\"\ndata_dir = \"{data}\"\n\
             [agent.admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [agent.limits]\nnice = 0\n\
             [filterer.admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [aggregator]\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\
             [alerter]\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\
             [expiry]\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\
             [query]\nlisten = \"127.0.0.1:{admin}\"\n",
            nats = free_port(),
            blobs = dir.join("blobs").display(),
            data = dir.join("agent").display(),
        ),
    )
    .unwrap();
    path
}

fn spawn(role: &RoleCmd, config: &Path, log: &Path) -> Child {
    Command::new(&role.program)
        .args(&role.args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, at most `limit`; its exit code and how long
/// it took. Kills it and fails the test when it does not exit.
fn wait_exit(
    child: &mut Child,
    limit: Duration,
    what: &str,
    log: &Path,
) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not exit within {limit:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_role_stops_within_5s_of_sigterm_while_nats_is_unreachable() {
    for role in roles() {
        let tmp = tempfile::tempdir().unwrap();
        let admin = free_port();
        let config = config(tmp.path(), admin);
        let log = tmp.path().join(format!("{}.log", role.name));
        let mut child = spawn(&role, &config, &log);
        wait_until(Duration::from_secs(20), "the admin endpoint", || {
            try_http_get(admin, "/health").is_ok()
        });
        let (health, _) = try_http_get(admin, "/health").unwrap();
        assert_eq!(health, 200, "{}: /health", role.name);
        if role.ready_without_nats {
            wait_until(Duration::from_secs(20), "readiness without NATS", || {
                try_http_get(admin, "/ready").is_ok_and(|(s, _)| s == 200)
            });
        } else {
            let (ready, body) = try_http_get(admin, "/ready").unwrap();
            assert_eq!(
                (ready, body.trim()),
                (503, "starting: setting up"),
                "{}: /ready without NATS",
                role.name
            );
        }
        // Set-up keeps retrying against the closed port meanwhile.
        std::thread::sleep(Duration::from_millis(1500));
        signal(child.id(), "TERM");
        let (code, took) = wait_exit(&mut child, Duration::from_secs(10), role.name, &log);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(code, Some(0), "{}: exit code\n{text}", role.name);
        assert!(
            took < Duration::from_secs(5),
            "{} took {took:?} to stop\n{text}",
            role.name
        );
        assert!(text.contains(&format!("{} stopped", role.name)), "{text}");
    }
}

#[test]
fn a_role_that_cannot_bind_its_admin_port_exits_with_code_1() {
    for role in roles() {
        let tmp = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = taken.local_addr().unwrap().port();
        let config = config(tmp.path(), admin);
        let log = tmp.path().join(format!("{}.log", role.name));
        let mut child = spawn(&role, &config, &log);
        let (code, _) = wait_exit(&mut child, Duration::from_secs(10), role.name, &log);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(code, Some(1), "{}: exit code\n{text}", role.name);
        assert!(
            text.contains(&format!("cannot listen on 127.0.0.1:{admin}")),
            "{}: {text}",
            role.name
        );
        drop(taken);
    }
}
