//! The admin endpoint every long-running process serves (through the
//! [`role`](crate::role) runtime):
//!
//! * `/metrics`: the Prometheus (OpenMetrics) text of the process's registry;
//! * `/health`: 200 `ok`, or 503 with the reason when the process is
//!   stalled, not only when it is dead (a heartbeat that stopped, a store
//!   that refuses writes);
//! * `/ready`: 200 `ready` once the role has set up what it needs (streams,
//!   consumers, buckets), 503 with the reason before that and while it
//!   stops.
//!
//! Every response of the endpoint, and of the routes served beside it,
//! carries `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! no-referrer`, `X-Frame-Options: DENY` and, unless the route set its own,
//! a `Content-Security-Policy` that allows nothing (a JSON answer opened in
//! a browser runs no script and loads nothing).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Reports whether the process is healthy (or ready): `Err(reason)` when not.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Admin {
    /// Everything `/metrics` shows.
    pub registry: Arc<Registry>,
    /// What `/health` answers.
    pub health: HealthCheck,
    /// What `/ready` answers.
    pub ready: HealthCheck,
}

/// Serves the endpoint, and `routes` beside it, on `listener` until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    admin: Admin,
    routes: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(admin)
        .merge(routes)
        .layer(axum::middleware::map_response(secure));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The headers every response carries (see the module doc).
async fn secure(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    response
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {err}\n"),
        ),
    }
}

fn answer(check: &HealthCheck, ok: &str) -> (StatusCode, String) {
    match check() {
        Ok(()) => (StatusCode::OK, format!("{ok}\n")),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn health(State(admin): State<Admin>) -> impl IntoResponse {
    answer(&admin.health, "ok")
}

async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    answer(&admin.ready, "ready")
}
