//! The built-in system alerts, as pure decisions over samples the alerter
//! takes: a consumer falling behind the stream, a consumer so far behind
//! that the stream would expire records it has not processed, and ingest
//! far above its usual rate.
//!
//! - **Consumer lag**: for each durable consumer of the `LOGS` stream, the
//!   processing delay is how long it has had work without its acknowledged
//!   position moving, and, for consumers that read every subject, the age
//!   of the oldest message it has not acknowledged. The alert fires while
//!   the delay is over `max_lag_secs`.
//! - **Logs expiring**: for a durable consumer that reads every subject,
//!   the age of its oldest unacknowledged message against the stream's
//!   `max_age`. `LOGS` drops a record once it is `max_age` old, processed
//!   or not, so the alert fires while that age is over
//!   `unprocessed_expiry_warn_fraction` × `max_age`: before the records
//!   the consumer still owes (for the filterer, records not yet filed) are
//!   lost. A stream without a `max_age` (0) never expires records, and the
//!   alert never fires. It is judged from the same sample as the lag.
//! - **Ingest spike**: records per minute per app, against an exponentially
//!   weighted baseline of earlier minutes. It fires when a minute exceeds
//!   `ingest_spike_factor` × baseline (and [`SPIKE_MIN_PER_MINUTE`]), once
//!   [`WARMUP_MINUTES`] minutes of baseline exist; spiking minutes are not
//!   folded into the baseline at full weight, so a long flood does not
//!   become "normal" within minutes.

use std::collections::HashMap;

/// Rule name of the consumer-lag alert.
pub const LAG_RULE: &str = "sluice-consumer-lag";
/// Rule name of the alert for records about to expire unprocessed.
pub const EXPIRY_RULE: &str = "sluice-logs-expiring";
/// Rule name of the ingest-spike alert.
pub const SPIKE_RULE: &str = "sluice-ingest-spike";
/// Minutes of history before an app's rate can be judged.
pub const WARMUP_MINUTES: u32 = 10;
/// A minute with fewer records is never a spike.
pub const SPIKE_MIN_PER_MINUTE: u64 = 1_000;
/// Apps whose rate is tracked, at most.
pub const MAX_APPS: usize = 1_000;
const ALPHA: f64 = 0.1;

/// What the alerter sampled of one durable consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSample {
    /// Messages delivered but unacknowledged, plus not yet delivered.
    pub outstanding: u64,
    /// Seconds since its acknowledged position last moved.
    pub secs_since_ack_moved: f64,
    /// Age in seconds of the oldest unacknowledged message, when known.
    pub oldest_unacked_secs: Option<f64>,
}

/// The processing delay of a consumer, seconds (0 when it has no work).
pub fn processing_delay(s: &ConsumerSample) -> f64 {
    if s.outstanding == 0 {
        return 0.0;
    }
    s.secs_since_ack_moved
        .max(s.oldest_unacked_secs.unwrap_or(0.0))
        .max(0.0)
}

/// Whether the stream would soon expire records a consumer has not
/// processed: its oldest unacknowledged message is older than `fraction` of
/// the stream's `max_age_secs`. Never with no work, an unknown oldest
/// message, or an unlimited stream (`max_age_secs` = 0).
pub fn expiring(s: &ConsumerSample, max_age_secs: u64, fraction: f64) -> bool {
    debug_assert!(fraction > 0.0 && fraction < 1.0, "fraction {fraction}");
    if max_age_secs == 0 || s.outstanding == 0 {
        return false;
    }
    let Some(oldest) = s.oldest_unacked_secs else {
        return false;
    };
    oldest > fraction * max_age_secs as f64
}

/// The text of the logs-expiring alert for consumer `name` of `stream`.
pub fn expiring_detail(name: &str, stream: &str, s: &ConsumerSample, max_age_secs: u64) -> String {
    let oldest = s.oldest_unacked_secs.unwrap_or(0.0).max(0.0);
    format!(
        "consumer {name} has an unprocessed message {oldest:.0}s old; \
         stream {stream} deletes messages after {max_age_secs}s ({} messages outstanding)",
        s.outstanding
    )
}

#[derive(Debug, Clone, Default)]
struct Baseline {
    mean: f64,
    minutes: u32,
}

/// Judges per-app ingest rates minute by minute.
#[derive(Debug, Default)]
pub struct SpikeDetector {
    apps: HashMap<String, Baseline>,
}

/// One app's verdict for a minute.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeVerdict {
    /// The app.
    pub app: String,
    /// Whether the minute is a spike.
    pub spiking: bool,
    /// Records in the minute.
    pub count: u64,
    /// The baseline it was judged against, records per minute.
    pub baseline: f64,
}

impl SpikeDetector {
    /// Judges one finished minute (`counts` per app) with `factor`, then
    /// folds it into the baselines. Apps absent from `counts` had 0.
    pub fn minute(&mut self, counts: &HashMap<String, u64>, factor: f64) -> Vec<SpikeVerdict> {
        for app in counts.keys() {
            if self.apps.len() < MAX_APPS && !self.apps.contains_key(app) {
                self.apps.insert(app.clone(), Baseline::default());
            }
        }
        let mut out = Vec::new();
        for (app, b) in self.apps.iter_mut() {
            let count = counts.get(app).copied().unwrap_or(0);
            let judged = b.minutes >= WARMUP_MINUTES;
            let spiking = judged
                && count >= SPIKE_MIN_PER_MINUTE
                && (count as f64) > factor * b.mean.max(1.0);
            out.push(SpikeVerdict {
                app: app.clone(),
                spiking,
                count,
                baseline: b.mean,
            });
            let weight = if spiking { ALPHA / 10.0 } else { ALPHA };
            b.mean = if b.minutes == 0 {
                count as f64
            } else {
                b.mean + weight * (count as f64 - b.mean)
            };
            b.minutes = b.minutes.saturating_add(1);
        }
        out.sort_by(|a, b| a.app.cmp(&b.app));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_zero_without_work_and_the_worst_signal_otherwise() {
        let idle = ConsumerSample {
            outstanding: 0,
            secs_since_ack_moved: 900.0,
            oldest_unacked_secs: Some(900.0),
        };
        assert_eq!(processing_delay(&idle), 0.0);
        let stuck = ConsumerSample {
            outstanding: 5,
            secs_since_ack_moved: 400.0,
            oldest_unacked_secs: None,
        };
        assert_eq!(processing_delay(&stuck), 400.0);
        let behind = ConsumerSample {
            outstanding: 5,
            secs_since_ack_moved: 1.0,
            oldest_unacked_secs: Some(700.0),
        };
        assert_eq!(processing_delay(&behind), 700.0);
    }

    fn behind(outstanding: u64, oldest: Option<f64>) -> ConsumerSample {
        ConsumerSample {
            outstanding,
            secs_since_ack_moved: 1.0,
            oldest_unacked_secs: oldest,
        }
    }

    #[test]
    fn expiring_fires_past_the_fraction_of_max_age() {
        let day = 24 * 3600;
        // Half of a 3-day stream is 36 h.
        assert!(!expiring(&behind(10, Some(35.0 * 3600.0)), 3 * day, 0.5));
        assert!(!expiring(&behind(10, Some(36.0 * 3600.0)), 3 * day, 0.5));
        assert!(expiring(&behind(10, Some(37.0 * 3600.0)), 3 * day, 0.5));
        // A smaller fraction warns earlier.
        assert!(expiring(&behind(10, Some(8.0 * 3600.0)), 3 * day, 0.1));
        // Once records have expired, the oldest left is still old: firing.
        assert!(expiring(&behind(10, Some(3.0 * day as f64)), 3 * day, 0.5));
    }

    #[test]
    fn expiring_never_fires_without_work_age_or_limit() {
        // Nothing outstanding: nothing to lose, whatever the age says.
        assert!(!expiring(&behind(0, Some(1e9)), 3600, 0.5));
        // The oldest message is not known (a consumer of some subjects).
        assert!(!expiring(&behind(10, None), 3600, 0.5));
        // An unlimited stream expires nothing.
        assert!(!expiring(&behind(10, Some(1e9)), 0, 0.5));
    }

    #[test]
    fn expiring_detail_names_the_consumer_the_age_and_the_max_age() {
        let text = expiring_detail("filterer", "LOGS", &behind(42, Some(7200.4)), 10_800);
        assert!(text.contains("consumer filterer"), "{text}");
        assert!(text.contains("7200s"), "{text}");
        assert!(text.contains("stream LOGS"), "{text}");
        assert!(text.contains("10800s"), "{text}");
        assert!(text.contains("42 messages"), "{text}");
    }

    fn counts(app: &str, n: u64) -> HashMap<String, u64> {
        HashMap::from([(app.to_string(), n)])
    }

    #[test]
    fn a_spike_needs_warmup_volume_and_factor() {
        let mut d = SpikeDetector::default();
        // A flood in the first minutes is not judged: no baseline yet.
        assert!(!d.minute(&counts("shop", 50_000), 5.0)[0].spiking);
        let mut d = SpikeDetector::default();
        for _ in 0..WARMUP_MINUTES {
            assert!(!d.minute(&counts("shop", 2_000), 5.0)[0].spiking);
        }
        assert!(!d.minute(&counts("shop", 9_000), 5.0)[0].spiking, "4.5×");
        let v = d.minute(&counts("shop", 20_000), 5.0);
        assert!(v[0].spiking, "{v:?}");
        // A long flood stays a spike for a while rather than becoming normal.
        for _ in 0..5 {
            assert!(d.minute(&counts("shop", 20_000), 5.0)[0].spiking);
        }
        // Back to normal.
        assert!(!d.minute(&counts("shop", 2_000), 5.0)[0].spiking);
        // Low volume is never a spike, whatever the factor.
        let mut d = SpikeDetector::default();
        for _ in 0..WARMUP_MINUTES {
            d.minute(&counts("tiny", 1), 5.0);
        }
        assert!(!d.minute(&counts("tiny", 900), 5.0)[0].spiking);
    }
}
