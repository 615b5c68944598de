//! The one retry backoff: capped exponential with "equal jitter".
//!
//! The delay after failed attempt number `attempt` (0 for the first) is
//! `cap = min(initial * 2^attempt, max)`, then `cap/2 + cap/2 * jitter` with
//! `jitter` in `0..=1`: half of it fixed, so retries never come in a burst,
//! the other half random, so many clients retrying after one outage spread
//! out. Every computation saturates: any `attempt` and any [`Backoff`] are
//! fine.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt (before jitter).
    pub initial: Duration,
    /// Upper bound of any delay (before jitter).
    pub max: Duration,
}

impl Backoff {
    /// Backoff from `initial` doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The delay after failed attempt number `attempt` (0-based), with the
    /// caller's `jitter`, clamped to `0..=1` (NaN counts as 0). Pure, for
    /// tests and for callers that draw their own randomness.
    pub fn delay_with(&self, attempt: u32, jitter: f64) -> Duration {
        let cap = 2u32
            .checked_pow(attempt)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |d| d.min(self.max));
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let fixed = cap / 2;
        let variable = cap - fixed;
        let scaled = Duration::try_from_secs_f64(variable.as_secs_f64() * jitter)
            .unwrap_or(variable)
            .min(variable);
        fixed.saturating_add(scaled)
    }

    /// The delay after failed attempt number `attempt`, with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::rng().random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

    #[test]
    fn doubles_up_to_the_cap_with_half_fixed() {
        assert_eq!(B.delay_with(0, 0.0), Duration::from_millis(500));
        assert_eq!(B.delay_with(0, 1.0), Duration::from_secs(1));
        assert_eq!(B.delay_with(3, 1.0), Duration::from_secs(8));
        assert_eq!(B.delay_with(3, 0.5), Duration::from_secs(6));
        assert_eq!(B.delay_with(20, 1.0), Duration::from_secs(300));
        assert_eq!(B.delay_with(u32::MAX, 1.0), Duration::from_secs(300));
        assert_eq!(B.delay_with(2, f64::NAN), Duration::from_secs(2));
        assert_eq!(B.delay_with(2, 7.0), Duration::from_secs(4));
    }

    #[test]
    fn edge_cases() {
        let s = Duration::from_secs;
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(huge.delay_with(0, 1.0) <= Duration::MAX);
        assert!(huge.delay_with(u32::MAX, 0.5) >= Duration::MAX / 2);
        let zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.delay_with(7, 1.0), Duration::ZERO);
        assert_eq!(zero.delay(5), Duration::ZERO);
        let inverted = Backoff::new(s(10), s(2));
        assert_eq!(inverted.delay_with(0, 1.0), s(2));
        assert_eq!(B.delay_with(0, f64::NAN), Duration::from_millis(500));
        assert_eq!(B.delay_with(0, -3.0), Duration::from_millis(500));
        assert_eq!(B.delay_with(0, f64::INFINITY), s(1));
        // Grows monotonically until the cap.
        let delays: Vec<_> = (0..12).map(|a| B.delay_with(a, 1.0)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays[8], s(256));
        assert_eq!(delays[9], s(300));
    }

    proptest! {
        #[test]
        fn random_delays_stay_within_half_and_whole_cap(attempt in 0u32..64) {
            let d = B.delay(attempt);
            let cap = B.delay_with(attempt, 1.0);
            prop_assert!(d <= cap && d >= cap / 2);
        }
    }
}
