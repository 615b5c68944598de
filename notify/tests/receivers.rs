//! Deliveries to real HTTP receivers started by the test: what Slack and a
//! webhook receive, that the signature verifies with the documented
//! recipe, and how answers are judged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hmac::Mac;
use sluice_core::Level;
use sluice_core::backoff::Backoff;
use sluice_core::config::{ReceiverConfig, ReceiverKind};
use sluice_notify::deliver::Deliverer;
use sluice_notify::notification::{Kind, Notification, Sample};
use sluice_notify::policy::Outcome;
use sluice_testing::slack::validate as validate_slack;

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
    /// Status to answer with, and an optional Retry-After.
    answer: Arc<Mutex<(u16, Option<String>)>>,
}

async fn record(
    State(seen): State<Seen>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    seen.requests
        .lock()
        .unwrap()
        .push((uri.path().to_string(), headers, body));
    let (status, retry_after) = seen.answer.lock().unwrap().clone();
    let mut h = HeaderMap::new();
    if let Some(r) = retry_after {
        h.insert("retry-after", r.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), h, "ok")
}

async fn receiver_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    *seen.answer.lock().unwrap() = (200, None);
    let app = Router::new()
        .route("/slack", post(record))
        .route("/hook", post(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn receivers(addr: SocketAddr) -> Vec<ReceiverConfig> {
    let base = |name: &str, kind, path: &str, secret: Option<&str>| ReceiverConfig {
        name: name.into(),
        kind,
        url: Some(format!("http://{addr}{path}")),
        secret: secret.map(str::to_string),
        rate_per_minute: 6_000,
        timeout_secs: 5,
    };
    vec![
        base("chat", ReceiverKind::Slack, "/slack", None),
        base("hook", ReceiverKind::Webhook, "/hook", Some("s3cret-key")),
    ]
}

fn notification(receiver: &str, msg: &str) -> Notification {
    Notification {
        id: "alerter:checkout-errors:1".into(),
        receiver: receiver.into(),
        kind: Kind::Firing,
        title: "checkout-errors: 37 errors in 60s".into(),
        source: "alerter".into(),
        rule: Some("checkout-errors".into()),
        app: "shop".into(),
        service: Some("checkout".into()),
        level: Some(Level::Error),
        count: 37,
        window_secs: Some(60),
        labels: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
        fingerprint: None,
        template: None,
        samples: vec![Sample {
            id: "01JDQ3N7Z5K3W8M2X4R6T9V0BC".into(),
            ts: 1_795_428_000_000_000_000,
            host: "web-1".into(),
            msg: msg.into(),
            request_id: Some("req-123".into()),
        }],
        first_seen: 1_795_428_000_000_000_000,
        last_seen: 1_795_428_060_000_000_000,
        link: Some("http://127.0.0.1:9885/?app=shop".into()),
        created: 1_795_428_060_000_000_000,
    }
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn slack_gets_a_block_kit_message() {
    let (addr, seen) = receiver_server().await;
    let d = Deliverer::new(&receivers(addr), backoff()).unwrap();
    let huge = format!("payment <declined> & {}", "x".repeat(1 << 20));
    let outcome = d.attempt(&notification("chat", &huge), 0).await;
    assert!(matches!(outcome, Outcome::Delivered), "{outcome:?}");
    let requests = seen.requests.lock().unwrap();
    let (path, headers, body) = &requests[0];
    assert_eq!(path, "/slack");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        body.len() < 20_000,
        "a 1 MiB message is cut: {} bytes",
        body.len()
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    validate_slack(&v).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("checkout-errors") && text.contains("37"),
        "{text}"
    );
    assert!(
        text.contains("&lt;declined&gt; &amp;"),
        "mrkdwn escaped: {text}"
    );
}

#[tokio::test]
async fn webhook_signature_verifies_with_the_documented_recipe() {
    let (addr, seen) = receiver_server().await;
    let d = Deliverer::new(&receivers(addr), backoff()).unwrap();
    let outcome = d
        .attempt(&notification("hook", "payment declined"), 0)
        .await;
    assert!(matches!(outcome, Outcome::Delivered), "{outcome:?}");
    let requests = seen.requests.lock().unwrap();
    let (_, headers, body) = &requests[0];
    assert_eq!(headers["x-sluice-id"], "alerter:checkout-errors:1");
    // The recipe: HMAC-SHA256 with the secret over "<timestamp>." + body,
    // hex, prefixed "v1=".
    let ts = headers["x-sluice-timestamp"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-key").unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-sluice-signature"].to_str().unwrap(), expected);
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["id"], "alerter:checkout-errors:1");
    assert_eq!(v["count"], 37);
    assert_eq!(v["samples"][0]["request_id"], "req-123");
}

#[tokio::test]
async fn answers_are_judged_retry_or_reject() {
    let (addr, seen) = receiver_server().await;
    let d = Deliverer::new(&receivers(addr), backoff()).unwrap();
    let n = notification("hook", "m");
    *seen.answer.lock().unwrap() = (429, Some("7".into()));
    match d.attempt(&n, 0).await {
        Outcome::Retry { after } => assert_eq!(after, Duration::from_secs(7)),
        other => panic!("429 must be retried after Retry-After: {other:?}"),
    }
    *seen.answer.lock().unwrap() = (503, None);
    assert!(matches!(d.attempt(&n, 3).await, Outcome::Retry { .. }));
    *seen.answer.lock().unwrap() = (404, None);
    assert!(matches!(d.attempt(&n, 0).await, Outcome::Rejected { .. }));
    // Nobody listening: retried.
    let gone = Deliverer::new(&receivers("127.0.0.1:1".parse().unwrap()), backoff()).unwrap();
    assert!(matches!(gone.attempt(&n, 0).await, Outcome::Retry { .. }));
}
