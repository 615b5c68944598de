//! A real `nats-server` with JetStream on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_core::config::NatsConfig;

use crate::net::free_port;
use crate::process::{find_binary, terminate};
use crate::wait::wait_until;

/// A real `nats-server -js` on a free loopback port with its own store
/// directory.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until it is ready.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (authentication,
    /// TLS) and waits until it is ready.
    pub fn start_with(args: &[&str]) -> NatsServer {
        let binary = find_binary("nats-server").unwrap_or_else(|| {
            panic!(
                "nats-server not found on PATH: install it with `apt-get install -y nats-server` \
                 (or run ./dev/test, which does)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("sluice-nats-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut server = NatsServer {
            binary,
            port: free_port(),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    fn spawn(&mut self) {
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path().join("store"))
            .arg("-l")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let log_for_wait = log.clone();
        wait_until(Duration::from_secs(20), "nats-server to be ready", || {
            std::fs::read_to_string(&log_for_wait).is_ok_and(|l| l.contains("Server is ready"))
        });
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A `[nats]` section pointing at this server.
    pub fn config(&self) -> NatsConfig {
        NatsConfig {
            url: Some(self.url()),
            ..NatsConfig::default()
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped server again on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is already running");
        self.spawn();
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The directory holding the store and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
