//! A real S3-compatible server (`s3s-fs`) on a free loopback port.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_core::config::StoreConfig;

use crate::net::free_port;
use crate::process::{find_binary, terminate};

/// The bucket every [`S3Server`] starts with.
pub const S3_BUCKET: &str = "sluice-test";
/// The access key [`S3Server`] accepts.
pub const S3_ACCESS_KEY: &str = "sluice-test-access";
/// The secret key [`S3Server`] accepts.
pub const S3_SECRET_KEY: &str = "sluice-test-secret";

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else
/// `$HOME/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// A real S3-compatible server (`s3s-fs`) on a free loopback port, serving a
/// fresh directory with the bucket [`S3_BUCKET`] and requiring the keys
/// [`S3_ACCESS_KEY`]/[`S3_SECRET_KEY`].
///
/// s3s-fs keeps each bucket as a directory under its root and each object as
/// a file at its key, so tests can look at [`S3Server::root`] directly.
pub struct S3Server {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    root: PathBuf,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> S3Server {
        let binary = find_binary("s3s-fs")
            .or_else(|| {
                cargo_bin_dir()
                    .map(|d| d.join("s3s-fs"))
                    .filter(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "s3s-fs not found: install it with \
                     `cargo install s3s-fs@0.14.1 --features binary --locked` \
                     (or run ./dev/test, which does)"
                )
            });
        let dir = tempfile::Builder::new()
            .prefix("sluice-s3-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(S3_BUCKET)).expect("cannot create the bucket directory");
        let mut server = S3Server {
            binary,
            port: 0,
            dir,
            root,
            child: None,
        };
        // The free port may be taken between probing and binding; a server
        // that exits at once gets another port.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("s3s-fs would not start:\n{}", server.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    /// Starts the process; false if it exited before accepting connections.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.log_path()).expect("cannot create the s3s-fs log");
        let log_err = log.try_clone().expect("cannot duplicate the log file");
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&self.root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for s3s-fs to accept connections:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `[store]` section for `s3://sluice-test/<prefix>` on this server.
    pub fn store_config(&self, prefix: &str) -> StoreConfig {
        let prefix = prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            format!("s3://{S3_BUCKET}")
        } else {
            format!("s3://{S3_BUCKET}/{prefix}")
        };
        StoreConfig {
            url,
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(S3_ACCESS_KEY.into()),
            secret_access_key: Some(S3_SECRET_KEY.into()),
            allow_http: true,
        }
    }

    /// The same as configuration text: a `[store]` section ending in a
    /// newline.
    pub fn store_section(&self, prefix: &str) -> String {
        let store = self.store_config(prefix);
        format!(
            "[store]\nurl = \"{}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"{S3_ACCESS_KEY}\"\nsecret_access_key = \"{S3_SECRET_KEY}\"\nallow_http = true\n",
            store.url,
            self.endpoint(),
        )
    }

    /// A store over the files this server serves, for filing test data
    /// fast (no HTTP, no fsync): what it writes, the server lists and reads
    /// as objects under `s3://sluice-test/<prefix>`.
    pub fn direct_store(&self, prefix: &str) -> sluice_core::store::Store {
        let bucket = self.root().join(S3_BUCKET);
        std::fs::create_dir_all(&bucket).expect("create the bucket directory");
        let local = object_store::local::LocalFileSystem::new_with_prefix(&bucket)
            .expect("open the bucket directory");
        sluice_core::store::Store {
            inner: std::sync::Arc::new(local),
            prefix: object_store::path::Path::from(prefix.trim_matches('/')),
            url: format!("file://{}", bucket.display()),
        }
    }

    /// The directory s3s-fs serves: objects appear as files under
    /// `root/sluice-test/<key>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it
    /// to exit; the port and data stay for [`S3Server::start_again`].
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// Starts a stopped server again on the same port and root.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "s3s-fs is already running");
        assert!(
            self.spawn(),
            "s3s-fs would not start again on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// The server's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
