//! A real webhook receiver that records what it is sent.

use std::time::{Duration, Instant};

use crate::net::free_port;

/// One request a [`Hooks`] receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The request path.
    pub path: String,
    /// The `X-Sluice-Id` header (empty when absent).
    pub id: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// The body's size in bytes.
    pub bytes: usize,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Clone, Default)]
struct HookState {
    got: std::sync::Arc<std::sync::Mutex<Vec<Hook>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A webhook receiver on a fixed loopback port that records every POST and
/// answers with a settable status; it can be stopped (the port refuses
/// connections) and started again on the same port.
pub struct Hooks {
    port: u16,
    state: HookState,
    server: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl Hooks {
    /// A receiver on a free port, not yet listening.
    pub fn new() -> Hooks {
        let state = HookState::default();
        state
            .status
            .store(200, std::sync::atomic::Ordering::Relaxed);
        Hooks {
            port: free_port(),
            state,
            server: None,
        }
    }

    /// A receiver listening on a free port.
    pub async fn start() -> Hooks {
        let mut h = Hooks::new();
        h.listen().await;
        h
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts listening (again).
    pub async fn listen(&mut self) {
        use axum::routing::post;
        if self.server.is_some() {
            return;
        }
        async fn record(
            axum::extract::State(state): axum::extract::State<HookState>,
            uri: axum::http::Uri,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::http::StatusCode {
            let id = headers
                .get("x-sluice-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let status = state.status.load(std::sync::atomic::Ordering::Relaxed);
            state
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if status == 200 {
                state.got.lock().unwrap().push(Hook {
                    path: uri.path().to_string(),
                    id,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                    bytes: body.len(),
                    at: Instant::now(),
                });
            }
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }
        let app = axum::Router::new()
            .route("/{*path}", post(record))
            .with_state(self.state.clone());
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .into_future()
                .await;
        });
        self.server = Some((task, tx));
    }

    /// Stops listening: connections are refused until [`Hooks::listen`].
    pub async fn stop(&mut self) {
        if let Some((task, tx)) = self.server.take() {
            let _ = tx.send(());
            task.abort();
            let _ = task.await;
        }
    }

    /// Answers every request with `status` from now on (only 200s are
    /// recorded).
    pub fn answer(&self, status: u16) {
        self.state
            .status
            .store(status, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests received so far, whatever the answer.
    pub fn requests(&self) -> usize {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Everything accepted so far.
    pub fn got(&self) -> Vec<Hook> {
        self.state.got.lock().unwrap().clone()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks::new()
    }
}
