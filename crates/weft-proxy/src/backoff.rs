//! Exponential backoff with full jitter, for everything in the proxy that tries again:
//! reconnecting the xDS stream, renewing the certificate, retrying a request.
//!
//! The wait before attempt `n` (counting from 0) is drawn from zero up to
//! `initial × 2ⁿ`, capped at `max`: spread out so that proxies that failed together do
//! not come back together, and growing so that a long outage is not hammered.

use std::time::Duration;

/// The backoff of one thing that retries: the wait grows with each failure until
/// [`Backoff::reset`].
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits up to `initial` before the first retry, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The next wait, drawn uniformly from `[0, min(max, initial × 2^attempt)]`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = full_jitter(ceiling(self.initial, self.max, self.attempt));
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The longest wait before attempt `attempt` (from 0): `initial × 2^attempt`, at most
/// `max`.
pub fn ceiling(initial: Duration, max: Duration, attempt: u32) -> Duration {
    initial.saturating_mul(1 << attempt.min(20)).min(max)
}

/// A wait drawn uniformly from zero to `up_to`.
pub fn full_jitter(up_to: Duration) -> Duration {
    let nanos = u64::try_from(up_to.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_exponentially_up_to_max_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        for attempt in 0..10 {
            let delay = backoff.next_delay();
            let cap = Duration::from_millis(200 << attempt.min(3)).min(Duration::from_secs(1));
            assert!(delay <= cap, "attempt {attempt}: {delay:?} > {cap:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(200));
    }

    #[test]
    fn the_ceiling_doubles_and_stops_at_max() {
        let (initial, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let ceilings: Vec<u128> = (0..6)
            .map(|n| ceiling(initial, max, n).as_millis())
            .collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 100, 100]);
        assert_eq!(
            ceiling(initial, Duration::MAX, u32::MAX),
            initial * (1 << 20)
        );
    }
}
