//! The generic webhook: what Sluice sends to a webhook receiver, and the
//! signature that lets the receiver check a request came from Sluice.
//!
//! Sluice sends `POST <url>` with `Content-Type: application/json` and these
//! headers:
//!
//! | header               | value                                                           |
//! |----------------------|-----------------------------------------------------------------|
//! | `X-Sluice-Id`        | the notification id (same as `id` in the body)                  |
//! | `X-Sluice-Timestamp` | when this attempt was signed, in whole seconds since the Unix epoch, decimal |
//! | `X-Sluice-Signature` | `v1=<hex>`, or several comma-separated `v1=<hex>` while secrets are being rotated |
//!
//! Any 2xx answer counts as delivered. 429 (honouring `Retry-After`), 408,
//! 425, 5xx and network errors are retried with exponential backoff; other
//! 4xx and all 3xx answers (redirects are not followed) drop the notification.
//! A notification can therefore arrive more than once: de-duplicate on `id`,
//! which stays the same on every redelivery. The timestamp and signature
//! change from one attempt to the next.
//!
//! # Body
//!
//! One JSON object, keys always present and always in this order; absent
//! optional values are `null`. Timestamps are RFC 3339 UTC strings with nine
//! fractional digits.
//!
//! ```json
//! {
//!   "version": 1,
//!   "id": "01JDQ3N7Z5K3W8M2X4R6T9V0BC",
//!   "kind": "firing",
//!   "title": "checkout-errors: 37 errors in 60s",
//!   "source": "alerter",
//!   "rule": "checkout-errors",
//!   "app": "shop",
//!   "service": "checkout",
//!   "level": "ERROR",
//!   "count": 37,
//!   "window_secs": 60,
//!   "labels": {"host": "web-1"},
//!   "fingerprint": null,
//!   "template": null,
//!   "samples": [
//!     {"id": "01JDQ3N7Z5K3W8M2X4R6T9V0BD", "ts": "2026-11-22T10:00:00.123456789Z",
//!      "host": "web-1", "msg": "payment declined for order 8812", "request_id": "req-123"}
//!   ],
//!   "first_seen": "2026-11-22T10:00:00.123456789Z",
//!   "last_seen": "2026-11-22T10:00:59.000000000Z",
//!   "link": "https://sluice.example.com/query?q=app%3Dshop",
//!   "created": "2026-11-22T10:01:00.000000000Z"
//! }
//! ```
//!
//! (Sent without whitespace; shown indented here.)
//!
//! | key           | type            | meaning |
//! |---------------|-----------------|---------|
//! | `version`     | integer         | body format version, `1`; new keys may be added within a version, so ignore unknown keys |
//! | `id`          | string          | unique notification id, stable across redeliveries |
//! | `kind`        | string          | `firing`, `resolved`, `new_group`, `regressed` or `spike` |
//! | `title`       | string          | one-line summary |
//! | `source`      | string          | `alerter` (alert rules) or `aggregator` (message groups) |
//! | `rule`        | string or null  | alert rule name |
//! | `app`         | string          | application |
//! | `service`     | string or null  | service, when the rule or group names one |
//! | `level`       | string or null  | `TRACE` `DEBUG` `INFO` `WARN` `ERROR` or `FATAL` |
//! | `count`       | integer         | matching records in the window (or in the group) |
//! | `window_secs` | integer or null | counting window in seconds |
//! | `labels`      | object          | the rule's `group_by` values, string to string, sorted by key |
//! | `fingerprint` | string or null  | message group fingerprint |
//! | `template`    | string or null  | message group template |
//! | `samples`     | array           | example records: `id`, `ts` (RFC 3339), `host`, `msg`, `request_id` (string or null); messages may be cut short, ending in `…` |
//! | `first_seen`  | string          | earliest matching record (RFC 3339) |
//! | `last_seen`   | string          | latest matching record (RFC 3339) |
//! | `link`        | string or null  | URL of the matching records in the query UI |
//! | `created`     | string          | when the notification was created (RFC 3339) |
//!
//! # Verifying the signature
//!
//! With the secret configured for the receiver:
//!
//! 1. Take the raw request body bytes exactly as received, before any JSON
//!    parsing or re-encoding.
//! 2. Read `X-Sluice-Timestamp` (decimal seconds) and reject the request if it
//!    is more than 5 minutes away from your clock (replay protection).
//! 3. Build the signed payload: the timestamp header's text, a `.` (full
//!    stop), then the body bytes.
//! 4. Compute HMAC-SHA256 of that payload, keyed with the secret's UTF-8
//!    bytes, and hex-encode it in lowercase.
//! 5. Split `X-Sluice-Signature` on `,`, trim spaces, keep the entries that
//!    start with `v1=` and ignore any other scheme. Accept the request if the
//!    hex after `v1=` of any entry equals yours, comparing in constant time
//!    (`hmac.compare_digest` in Python, `crypto.timingSafeEqual` in Node.js,
//!    `hmac.Equal` in Go).
//!
//! ## Worked example
//!
//! Secret `my-webhook-secret`, timestamp `1795341600`, and the (stand-in) body
//! `{"version":1,"id":"n-1"}`. The signed payload is
//! `1795341600.{"version":1,"id":"n-1"}` and the header is
//!
//! ```text
//! X-Sluice-Signature: v1=bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696
//! ```
//!
//! Check it with OpenSSL:
//!
//! ```sh
//! printf '%s' '1795341600.{"version":1,"id":"n-1"}' | openssl dgst -sha256 -hmac 'my-webhook-secret'
//! SHA2-256(stdin)= bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696
//! ```
//!
//! or in Python:
//!
//! ```python
//! import hmac, hashlib, time
//! def verify(secret: bytes, ts: str, sig_header: str, body: bytes) -> bool:
//!     if abs(time.time() - int(ts)) > 300:
//!         return False
//!     mine = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return any(hmac.compare_digest(mine, s.strip()[3:])
//!                for s in sig_header.split(",") if s.strip().startswith("v1="))
//! ```

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sluice_core::Level;
use sluice_core::record::format_ts;

use crate::notification::{Kind, Notification};

/// Header carrying the signature(s): `v1=<hex>[,v1=<hex>…]`.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";
/// Header carrying the signing time in decimal seconds since the epoch.
pub const TIMESTAMP_HEADER: &str = "X-Sluice-Timestamp";
/// Header carrying the notification id, for de-duplication.
pub const ID_HEADER: &str = "X-Sluice-Id";
/// Version of the webhook body, its `"version"` key.
pub const WEBHOOK_VERSION: u32 = 1;
/// Clock difference receivers should tolerate, in seconds (5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Serialize)]
struct WireBody<'a> {
    version: u32,
    id: &'a str,
    kind: Kind,
    title: &'a str,
    source: &'a str,
    rule: Option<&'a str>,
    app: &'a str,
    service: Option<&'a str>,
    level: Option<Level>,
    count: u64,
    window_secs: Option<u64>,
    labels: &'a BTreeMap<String, String>,
    fingerprint: Option<&'a str>,
    template: Option<&'a str>,
    samples: Vec<WireSample<'a>>,
    first_seen: String,
    last_seen: String,
    link: Option<&'a str>,
    created: String,
}

#[derive(Serialize)]
struct WireSample<'a> {
    id: &'a str,
    ts: String,
    host: &'a str,
    msg: &'a str,
    request_id: Option<&'a str>,
}

/// The generic webhook body for `n` (compact JSON, documented in the module
/// documentation). It carries everything it is given: bound the size first
/// with [`Notification::truncated`].
pub fn webhook_body(n: &Notification) -> Vec<u8> {
    let body = WireBody {
        version: WEBHOOK_VERSION,
        id: &n.id,
        kind: n.kind,
        title: &n.title,
        source: &n.source,
        rule: n.rule.as_deref(),
        app: &n.app,
        service: n.service.as_deref(),
        level: n.level,
        count: n.count,
        window_secs: n.window_secs,
        labels: &n.labels,
        fingerprint: n.fingerprint.as_deref(),
        template: n.template.as_deref(),
        samples: n
            .samples
            .iter()
            .map(|s| WireSample {
                id: &s.id,
                ts: format_ts(s.ts),
                host: &s.host,
                msg: &s.msg,
                request_id: s.request_id.as_deref(),
            })
            .collect(),
        first_seen: format_ts(n.first_seen),
        last_seen: format_ts(n.last_seen),
        link: n.link.as_deref(),
        created: format_ts(n.created),
    };
    // Serialising strings, integers and string maps into JSON cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Sluice-Signature` value for `body` signed at `timestamp_secs`:
/// `v1=` followed by the lowercase hex HMAC-SHA256, keyed with `secret`, of
/// `"<timestamp_secs>." + body`. Send `timestamp_secs` in
/// [`TIMESTAMP_HEADER`].
pub fn sign(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp_secs.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// The signature header for several secrets at once (key rotation): each
/// [`sign`] result, joined with `,`. Receivers accept the request when any
/// of them matches.
pub fn sign_all<S: AsRef<[u8]>>(secrets: &[S], timestamp_secs: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s.as_ref(), timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a decimal integer.
    #[error("timestamp header {0:?} is not a whole number of seconds")]
    BadTimestamp(String),
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now_secs})")]
    Stale {
        /// The request's timestamp, seconds since the epoch.
        timestamp: i64,
        /// The receiver's clock, seconds since the epoch.
        now_secs: i64,
        /// The tolerance that was exceeded, in seconds.
        tolerance_secs: i64,
    },
    /// The signature header has no `v1=` entry.
    #[error("signature header carries no v1= signature")]
    NoSignature,
    /// No `v1=` entry matches the body, timestamp and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a signed request as a receiver would: the timestamp must be within
/// `tolerance_secs` of `now_secs` (either way), and any `v1=` entry of the
/// comma-separated `signature_header` must equal the signature of
/// `timestamp_header` and `body` under `secret`, compared in constant time.
/// Entries of other schemes are ignored, so new schemes can be added later.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp_text = timestamp_header.trim();
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp_header.to_string()))?;
    if timestamp.abs_diff(now_secs) > tolerance_secs.max(0).unsigned_abs() {
        return Err(VerifyError::Stale {
            timestamp,
            now_secs,
            tolerance_secs,
        });
    }
    // The header's own text is signed, as the documented recipe says; `sign`
    // writes it in canonical decimal form.
    let expected = mac(secret, timestamp_text, body);
    let mut found = false;
    let mut matched = false;
    for entry in signature_header.split(',') {
        let Some(hex_sig) = entry.trim().strip_prefix("v1=") else {
            continue;
        };
        found = true;
        if let Ok(candidate) = hex::decode(hex_sig.trim()) {
            // `verify_slice` compares in constant time.
            matched |= expected.clone().verify_slice(&candidate).is_ok();
        }
    }
    match (found, matched) {
        (_, true) => Ok(()),
        (false, false) => Err(VerifyError::NoSignature),
        (true, false) => Err(VerifyError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::{arb_notification, sample_notification};
    use proptest::prelude::*;
    use serde_json::Value;

    const GOLDEN: &str = concat!(
        r#"{"version":1,"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BC","kind":"firing","#,
        r#""title":"checkout-errors: 37 errors in 60s","source":"alerter","#,
        r#""rule":"checkout-errors","app":"shop","service":"checkout","level":"ERROR","#,
        r#""count":37,"window_secs":60,"labels":{"host":"web-1"},"fingerprint":null,"#,
        r#""template":null,"samples":[{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BD","#,
        r#""ts":"2026-11-22T10:00:00.123456789Z","host":"web-1","#,
        r#""msg":"payment declined for order 8812","request_id":"req-123"},"#,
        r#"{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BE","ts":"2026-11-22T10:00:01.000000000Z","#,
        r#""host":"web-1","msg":"payment declined for order <8813> & retried","#,
        r#""request_id":null}],"first_seen":"2026-11-22T10:00:00.123456789Z","#,
        r#""last_seen":"2026-11-22T10:00:59.000000000Z","#,
        r#""link":"https://sluice.example.com/query?q=app%3Dshop","#,
        r#""created":"2026-11-22T10:01:00.000000000Z"}"#,
    );

    #[test]
    fn webhook_body_golden() {
        let body = webhook_body(&sample_notification());
        assert_eq!(std::str::from_utf8(&body).unwrap(), GOLDEN);
    }

    #[test]
    fn webhook_body_nulls() {
        let mut n = sample_notification();
        n.rule = None;
        n.service = None;
        n.level = None;
        n.window_secs = None;
        n.link = None;
        n.kind = Kind::Regressed;
        n.fingerprint = Some("9f1c".into());
        n.template = Some("payment declined for order <*>".into());
        let v: Value = serde_json::from_slice(&webhook_body(&n)).unwrap();
        for key in ["rule", "service", "level", "window_secs", "link"] {
            assert!(v[key].is_null(), "{key}: {v}");
        }
        assert_eq!(v["kind"], "regressed");
        assert_eq!(v["fingerprint"], "9f1c");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 19);
        assert!(v.get("receiver").is_none());
    }

    const SECRET: &[u8] = b"my-webhook-secret";
    const EXAMPLE_BODY: &[u8] = br#"{"version":1,"id":"n-1"}"#;
    const EXAMPLE_SIG: &str = "v1=bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696";

    #[test]
    fn documented_worked_example() {
        assert_eq!(sign(SECRET, 1_795_341_600, EXAMPLE_BODY), EXAMPLE_SIG);
        verify(
            SECRET,
            "1795341600",
            EXAMPLE_SIG,
            EXAMPLE_BODY,
            1_795_341_600,
            300,
        )
        .unwrap();
    }

    #[test]
    fn sign_verify_round_trip() {
        let body = webhook_body(&sample_notification());
        let now = 1_795_341_660;
        let sig = sign(SECRET, now, &body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_eq!(sig, sig.to_lowercase());
        verify(SECRET, &now.to_string(), &sig, &body, now, 300).unwrap();
        verify(SECRET, &now.to_string(), &sig, &body, now + 300, 300).unwrap();
        verify(SECRET, &now.to_string(), &sig, &body, now - 300, 300).unwrap();
        // Upper-case hex and surrounding spaces are accepted.
        let upper = format!(" v1={} ", sig[3..].to_uppercase());
        verify(SECRET, &format!(" {now} "), &upper, &body, now, 300).unwrap();
    }

    #[test]
    fn verify_rejects() {
        let now = 1_795_341_660;
        let ts = now.to_string();
        let sig = sign(SECRET, now, EXAMPLE_BODY);
        let v = |secret: &[u8], ts: &str, sig: &str, body: &[u8], at: i64| {
            verify(secret, ts, sig, body, at, DEFAULT_TOLERANCE_SECS)
        };
        // Tampered body.
        assert_eq!(
            v(SECRET, &ts, &sig, br#"{"version":1,"id":"n-2"}"#, now),
            Err(VerifyError::Mismatch)
        );
        // Wrong secret.
        assert_eq!(
            v(b"other", &ts, &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Timestamp changed (signature was for another time).
        let later = (now + 1).to_string();
        assert_eq!(
            v(SECRET, &later, &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Non-canonical timestamp text.
        assert_eq!(
            v(SECRET, &format!("+{now}"), &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Stale and future timestamps.
        assert!(matches!(
            v(SECRET, &ts, &sig, EXAMPLE_BODY, now + 301),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            v(SECRET, &ts, &sig, EXAMPLE_BODY, now - 301),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &ts, &sig, EXAMPLE_BODY, i64::MIN, i64::MAX),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &ts, &sig, EXAMPLE_BODY, now, -5),
            Ok(())
        ));
        // Malformed headers.
        for bad in ["", "abc", "12.5", "99999999999999999999"] {
            assert!(matches!(
                v(SECRET, bad, &sig, EXAMPLE_BODY, now),
                Err(VerifyError::BadTimestamp(_))
            ));
        }
        for bad in ["", "v0=abcd", &sig[3..], "sha256=00"] {
            assert_eq!(
                v(SECRET, &ts, bad, EXAMPLE_BODY, now),
                Err(VerifyError::NoSignature)
            );
        }
        for bad in ["v1=", "v1=zz", "v1=abcd", &format!("{sig}00")] {
            assert_eq!(
                v(SECRET, &ts, bad, EXAMPLE_BODY, now),
                Err(VerifyError::Mismatch)
            );
        }
    }

    #[test]
    fn multiple_signatures() {
        let now = 1_795_341_660;
        let ts = now.to_string();
        let header = sign_all(&[b"new-secret".as_slice(), SECRET], now, EXAMPLE_BODY);
        assert_eq!(header.matches("v1=").count(), 2);
        verify(SECRET, &ts, &header, EXAMPLE_BODY, now, 300).unwrap();
        verify(b"new-secret", &ts, &header, EXAMPLE_BODY, now, 300).unwrap();
        assert_eq!(
            verify(b"third", &ts, &header, EXAMPLE_BODY, now, 300),
            Err(VerifyError::Mismatch)
        );
        // Unknown schemes and junk entries are skipped.
        let mixed = format!("v2=ffff, v1=nothex, {}", sign(SECRET, now, EXAMPLE_BODY));
        verify(SECRET, &ts, &mixed, EXAMPLE_BODY, now, 300).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn webhook_body_round_trips(n in arb_notification()) {
            let v: Value = serde_json::from_slice(&webhook_body(&n)).unwrap();
            prop_assert_eq!(v["id"].as_str(), Some(n.id.as_str()));
            prop_assert_eq!(v["samples"].as_array().unwrap().len(), n.samples.len());
            prop_assert_eq!(v["count"].as_u64(), Some(n.count));
        }
    }
}
