//! Waiting by polling, never by fixed sleeps: a condition checked until it
//! holds, or a panic naming what did not happen.

use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it returns true; panics with `what` after
/// `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 100 ms from async code until it returns true;
/// panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
