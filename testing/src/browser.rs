//! Headless Chromium driven over WebDriver: Debian's `chromium` and
//! `chromium-driver`, started on a free loopback port with a fresh
//! profile, with no network beyond what the page under test asks for.
//!
//! `chromedriver` runs in its own process group, and the group (it and the
//! browsers it started) is stopped by its id when the [`Browser`] is
//! dropped, so a failing test leaves no browser behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

use crate::net::free_port;
use crate::process::find_binary;

/// The window every page is drawn in: a laptop screen.
pub const WINDOW: (u32, u32) = (1400, 900);

const INSTALL: &str = "apt-get install -y chromium chromium-driver (or ./dev/setup --test)";

/// A browser session; dropped, it stops the driver and the browser.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| panic!("{name} is not installed: {INSTALL}"))
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    pub async fn start() -> Browser {
        Browser::start_sized(WINDOW).await
    }

    /// As [`Browser::start`], with the window `size` (width, height).
    pub async fn start_sized(size: (u32, u32)) -> Browser {
        let chromium = binary("chromium");
        let driver_bin = binary("chromedriver");
        let port = free_port();
        let profile = tempfile::tempdir().expect("a profile directory");
        let log = profile.path().join("chromedriver.log");
        let mut command = Command::new(&driver_bin);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        // It listens once it can take a session.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = capabilities(&chromium, profile.path(), size);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let browser = Browser {
            client: match client {
                Ok(c) => c,
                Err(e) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                    stop_group(driver.id());
                    panic!("chromium did not start through chromedriver: {e}\n{tail}");
                }
            },
            driver,
            _profile: profile,
        };
        browser
            .client
            .set_window_size(size.0, size.1)
            .await
            .expect("the window can be sized");
        browser
    }

    /// Ends the session, then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn capabilities(
    chromium: &Path,
    profile: &Path,
    size: (u32, u32),
) -> serde_json::Map<String, serde_json::Value> {
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-extensions".into(),
        "--disable-dev-shm-usage".into(),
        "--hide-scrollbars".into(),
        format!("--window-size={},{}", size.0, size.1),
        format!("--user-data-dir={}", profile.join("chrome").display()),
    ];
    let value = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Stops a process group by its leader's id: TERM, then KILL.
fn stop_group(pid: u32) {
    let group = format!("-{pid}");
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(self.driver.id());
        let _ = self.driver.wait();
    }
}
