//! Retry decisions for one delivery attempt, as a pure function of what the
//! receiver answered.
//!
//! | answer                                  | outcome                                              |
//! |-----------------------------------------|------------------------------------------------------|
//! | 2xx                                     | [`Outcome::Delivered`]                               |
//! | 429                                     | retry after `Retry-After` clamped to 1 s ..= 1 h, or after the backoff when the header is absent or unparsable |
//! | 408, 425, 5xx, no response at all       | retry after the backoff                              |
//! | other 4xx (400, 401, 403, 404, 410 …)   | [`Outcome::Rejected`], not retried                   |
//! | 3xx                                     | [`Outcome::Rejected`]: webhooks must not redirect    |
//! | 1xx or outside 100..=599                | [`Outcome::Rejected`]                                |
//!
//! The backoff after failed attempt number `attempt` (0 for the first
//! attempt) is `min(initial * 2^attempt, max)` with "equal jitter": half of it
//! fixed, the other half scaled by the caller's random `jitter` in `0..=1`.
//! Every computation saturates, so any `attempt` and any [`Backoff`] are fine
//! (the backoff is `sluice_core::backoff`, shared by every retry in Sluice).

use std::time::{Duration, SystemTime};

use sluice_core::backoff::Backoff;

/// Shortest wait honoured from a `Retry-After` header.
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
/// Longest wait honoured from a `Retry-After` header.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// What to do with a notification after one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it; drop it from the outbox.
    Delivered,
    /// Try again after the given delay.
    Retry {
        /// How long to wait before the next attempt.
        after: Duration,
    },
    /// The receiver refused it for good; retrying cannot help.
    Rejected {
        /// Human-readable cause, naming the HTTP status.
        reason: String,
    },
}

/// The backoff of notification delivery unless configured otherwise: 1 s,
/// doubling to at most 5 minutes.
pub const DELIVERY_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// Decides what follows one delivery attempt.
///
/// `status`: None when the request failed before a response (connect error,
/// timeout). `retry_after`: the response's `Retry-After` header, if any
/// (delta-seconds or an HTTP-date, which is compared with `now`). `attempt`:
/// 0-based number of the attempt that just finished. `jitter`: a random
/// number in `0..=1` drawn by the caller (see [`Backoff::delay_with`]).
pub fn classify(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    backoff: &Backoff,
    now: SystemTime,
    jitter: f64,
) -> Outcome {
    let Some(status) = status else {
        return Outcome::Retry {
            after: backoff.delay_with(attempt, jitter),
        };
    };
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry {
            after: retry_after
                .and_then(|value| parse_retry_after(value, now))
                .unwrap_or_else(|| backoff.delay_with(attempt, jitter)),
        },
        408 | 425 | 500..=599 => Outcome::Retry {
            after: backoff.delay_with(attempt, jitter),
        },
        300..=399 => Outcome::Rejected {
            reason: format!(
                "{}: webhooks must not redirect; configure the final URL",
                describe(status)
            ),
        },
        400..=499 => Outcome::Rejected {
            reason: format!(
                "{}: the receiver refused the notification (not retried)",
                describe(status)
            ),
        },
        _ => Outcome::Rejected {
            reason: format!("{}: unexpected status (not retried)", describe(status)),
        },
    }
}

/// Parses a `Retry-After` value (delta-seconds or HTTP-date) into a wait
/// clamped to [`RETRY_AFTER_MIN`]`..=`[`RETRY_AFTER_MAX`]; a date in the past
/// gives the minimum. Returns `None` when the value is neither form.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: too large for u64 still means "very long".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX))
}

/// `HTTP 404 Not Found`, or just `HTTP 499` for codes without a well-known
/// reason phrase.
fn describe(status: u16) -> String {
    let phrase = match status {
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        _ => "",
    };
    if phrase.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {phrase}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn now() -> SystemTime {
        // 2026-11-22T10:00:00Z
        SystemTime::UNIX_EPOCH + S(1_795_341_600)
    }

    fn retry(after: Duration) -> Outcome {
        Outcome::Retry { after }
    }

    /// Status, Retry-After, attempt, jitter, expected outcome.
    type Row = (Option<u16>, Option<&'static str>, u32, f64, Outcome);

    #[test]
    fn classify_table() {
        let b = DELIVERY_BACKOFF;
        // (status, retry-after, attempt, jitter, expected)
        let rows: Vec<Row> = vec![
            (Some(200), None, 0, 0.5, Outcome::Delivered),
            (Some(204), None, 3, 0.5, Outcome::Delivered),
            (Some(299), Some("10"), 0, 0.5, Outcome::Delivered),
            // No response: backoff, equal jitter.
            (None, None, 0, 0.0, retry(Duration::from_millis(500))),
            (None, None, 0, 1.0, retry(S(1))),
            (None, None, 3, 0.0, retry(S(4))),
            (None, None, 3, 0.5, retry(S(6))),
            (Some(500), None, 0, 1.0, retry(S(1))),
            (Some(502), None, 1, 1.0, retry(S(2))),
            (Some(503), Some("120"), 2, 1.0, retry(S(4))),
            (Some(599), None, 4, 1.0, retry(S(16))),
            (Some(408), None, 0, 1.0, retry(S(1))),
            (Some(425), None, 0, 1.0, retry(S(1))),
            // Capped at max = 300 s.
            (Some(500), None, 9, 1.0, retry(S(300))),
            (Some(500), None, 9, 0.0, retry(S(150))),
            (None, None, 1_000, 1.0, retry(S(300))),
            (None, None, u32::MAX, 0.0, retry(S(150))),
            // 429 with Retry-After.
            (Some(429), Some("30"), 0, 0.5, retry(S(30))),
            (Some(429), Some(" 7 "), 5, 0.5, retry(S(7))),
            (Some(429), Some("0"), 0, 0.5, retry(S(1))),
            (Some(429), Some("86400"), 0, 0.5, retry(S(3600))),
            (
                Some(429),
                Some("99999999999999999999999999"),
                0,
                0.5,
                retry(S(3600)),
            ),
            (
                Some(429),
                Some("Sun, 22 Nov 2026 10:02:00 GMT"),
                0,
                0.5,
                retry(S(120)),
            ),
            (
                Some(429),
                Some("Sun, 22 Nov 2026 09:00:00 GMT"),
                0,
                0.5,
                retry(S(1)),
            ),
            (
                Some(429),
                Some("Mon, 23 Nov 2026 10:00:00 GMT"),
                0,
                0.5,
                retry(S(3600)),
            ),
            // 429 without or with garbage Retry-After: backoff.
            (Some(429), None, 2, 1.0, retry(S(4))),
            (Some(429), Some("soon"), 0, 1.0, retry(S(1))),
            (Some(429), Some("-5"), 0, 1.0, retry(S(1))),
            (Some(429), Some(""), 1, 0.0, retry(S(1))),
            (Some(429), Some("1.5"), 2, 0.0, retry(S(2))),
        ];
        for (i, (status, ra, attempt, jitter, expected)) in rows.into_iter().enumerate() {
            let got = classify(status, ra, attempt, &b, now(), jitter);
            assert_eq!(
                got, expected,
                "row {i}: {status:?} {ra:?} attempt {attempt}"
            );
        }
    }

    #[test]
    fn rejections_name_the_status() {
        let b = DELIVERY_BACKOFF;
        for status in [400u16, 401, 403, 404, 410, 413, 418, 422, 499] {
            match classify(Some(status), None, 0, &b, now(), 0.5) {
                Outcome::Rejected { reason } => {
                    assert!(reason.contains(&status.to_string()), "{reason}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [301u16, 302, 307, 308, 399] {
            match classify(Some(status), None, 0, &b, now(), 0.5) {
                Outcome::Rejected { reason } => {
                    assert!(reason.contains(&status.to_string()), "{reason}");
                    assert!(reason.contains("redirect"), "{reason}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [0u16, 100, 101, 600, 999, u16::MAX] {
            assert!(matches!(
                classify(Some(status), None, 0, &b, now(), 0.5),
                Outcome::Rejected { .. }
            ));
        }
        let Outcome::Rejected { reason } = classify(Some(404), None, 0, &b, now(), 0.5) else {
            unreachable!()
        };
        assert!(reason.starts_with("HTTP 404 Not Found"), "{reason}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", now()), Some(S(120)));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 10:00:30 GMT", now()),
            Some(S(30))
        );
        // The obsolete forms RFC 9110 requires recipients to accept.
        assert_eq!(
            parse_retry_after("Sunday, 22-Nov-26 10:00:30 GMT", now()),
            Some(S(30))
        );
        assert_eq!(
            parse_retry_after("Sun Nov 22 10:00:30 2026", now()),
            Some(S(30))
        );
        assert_eq!(parse_retry_after("tomorrow", now()), None);
        assert_eq!(parse_retry_after("+5", now()), None);
    }

    proptest! {
        #[test]
        fn classify_never_panics(
            status in proptest::option::of(any::<u16>()),
            retry_after in proptest::option::of(prop_oneof![
                any::<String>(),
                "[0-9]{0,30}",
                Just("Sun, 22 Nov 2026 10:02:00 GMT".to_string()),
            ]),
            attempt in any::<u32>(),
            initial in any::<(u64, u32)>(),
            max in any::<(u64, u32)>(),
            now_secs in any::<u64>(),
            jitter in any::<f64>(),
        ) {
            let backoff = Backoff {
                initial: Duration::new(initial.0, initial.1 % 1_000_000_000),
                max: Duration::new(max.0, max.1 % 1_000_000_000),
            };
            let now = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(now_secs))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let out = classify(status, retry_after.as_deref(), attempt, &backoff, now, jitter);
            if let Outcome::Retry { after } = out {
                let limit = backoff.max.max(RETRY_AFTER_MAX);
                prop_assert!(after <= limit);
            }
        }
    }
}
