//! The built-in system alerts, as pure decisions over samples the alerter
//! takes: a consumer falling behind the stream, and ingest far above its
//! usual rate.
//!
//! - **Consumer lag**: for each durable consumer of the `LOGS` stream, the
//!   processing delay is how long it has had work without its acknowledged
//!   position moving, and, for consumers that read every subject, the age
//!   of the oldest message it has not acknowledged. The alert fires while
//!   the delay is over `max_lag_secs`.
//! - **Ingest spike**: records per minute per app, against an exponentially
//!   weighted baseline of earlier minutes. It fires when a minute exceeds
//!   `ingest_spike_factor` × baseline (and [`SPIKE_MIN_PER_MINUTE`]), once
//!   [`WARMUP_MINUTES`] minutes of baseline exist; spiking minutes are not
//!   folded into the baseline at full weight, so a long flood does not
//!   become "normal" within minutes.

use std::collections::HashMap;

/// Rule name of the consumer-lag alert.
pub const LAG_RULE: &str = "sluice-consumer-lag";
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
