//! Messages that try to write past their subject, and what the
//! dead-letter stream holds of them.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use sluice_core::Record;

use crate::stream::test_record;

/// A message a sender allowed only `logs.shop.>` might publish to reach
/// another app, and what every consumer of `LOGS` must make of it.
#[derive(Debug, Clone)]
pub struct Misfiling {
    /// The subject it was published on.
    pub subject: String,
    /// The reason label every consumer sets it aside with.
    pub reason: &'static str,
    /// Text the reason must hold (the claimed app or level).
    pub names: &'static str,
}

/// Publishes, over a raw connection, the messages a sender could use to
/// write into the app `billing` or past its subject, each with records that
/// also match a `billing` rule or error group if anyone trusted them:
///
/// 1. `logs.shop.error` whose records all say `app = "billing"`;
/// 2. `logs.shop.error` with one `shop` record and one `"../billing"`;
/// 3. `logs.shop.info` holding an `ERROR` record;
/// 4. `logs.Billing.error` (an invalid app in the subject);
/// 5. `logs.billing` (not `logs.<app>.<level>`).
pub async fn publish_misfiled(js: &jetstream::Context) -> Vec<Misfiling> {
    use sluice_core::Level;
    let billing = |app: &str, level: Level| {
        test_record(
            app,
            "ledger",
            level,
            "web-1",
            "billing ledger mismatch for invoice 4411",
        )
    };
    let cases: Vec<(Misfiling, Vec<Record>)> = vec![
        (
            Misfiling {
                subject: "logs.shop.error".into(),
                reason: "other_app",
                names: "\"billing\"",
            },
            (0..3).map(|_| billing("billing", Level::Error)).collect(),
        ),
        (
            Misfiling {
                subject: "logs.shop.error".into(),
                reason: "other_app",
                names: "\"../billing\"",
            },
            vec![
                billing("shop", Level::Error),
                billing("../billing", Level::Error),
            ],
        ),
        (
            Misfiling {
                subject: "logs.shop.info".into(),
                reason: "other_level",
                names: "ERROR",
            },
            vec![billing("shop", Level::Error)],
        ),
        (
            Misfiling {
                subject: "logs.Billing.error".into(),
                reason: "invalid_app",
                names: "logs.Billing.error",
            },
            vec![billing("Billing", Level::Error)],
        ),
        (
            Misfiling {
                subject: "logs.billing".into(),
                reason: "invalid_subject",
                names: "logs.billing",
            },
            vec![billing("billing", Level::Error)],
        ),
    ];
    let mut out = Vec::new();
    for (case, records) in cases {
        let payload = sluice_core::codec::encode_batch(&records);
        js.publish(case.subject.clone(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        out.push(case);
    }
    out
}

/// One message on the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetterSeen {
    /// The `Sluice-Subject` header: the subject it came on.
    pub subject: String,
    /// The `Sluice-Reason` header.
    pub reason: String,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// What `role` has set aside on the dead-letter stream so far (empty when
/// the stream does not exist yet).
pub async fn dead_letters(js: &jetstream::Context, role: &str) -> Vec<DeadLetterSeen> {
    let subject = sluice_core::deadletter::subject(role);
    let Ok(mut stream) = js.get_stream(sluice_core::deadletter::STREAM).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    for seq in first.max(1)..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        if msg.subject.as_str() != subject {
            continue;
        }
        let header = |name: &str| {
            msg.headers
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        out.push(DeadLetterSeen {
            subject: header("Sluice-Subject"),
            reason: header("Sluice-Reason"),
            payload: msg.payload.clone(),
        });
    }
    out
}

/// Waits until `role` has set every one of `sent` aside, each once, with
/// its reason; panics with what it found otherwise.
pub async fn wait_dead_lettered(js: &jetstream::Context, role: &str, sent: &[Misfiling]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = dead_letters(js, role).await;
        let matched = |m: &Misfiling| {
            seen.iter()
                .filter(|d| {
                    d.subject == m.subject
                        && d.reason.starts_with(m.reason)
                        && d.reason.contains(m.names)
                })
                .count()
        };
        if seen.len() == sent.len() && sent.iter().all(|m| matched(m) == 1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{role} set aside {seen:#?}, expected one each of {sent:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
