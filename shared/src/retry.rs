//! How long a message waits before its next delivery when it failed for a reason outside it (a
//! database outage): exponential backoff, so that a short outage spends few of the queue's
//! receives and dead-letters nothing. Pure.

use std::time::Duration;

/// `RETRY_BACKOFF_BASE_SECONDS` (default 60) and `RETRY_BACKOFF_MAX_SECONDS` (default 900).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            max: Duration::from_secs(900),
        }
    }
}

/// SQS's limit on a message's visibility timeout.
const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

impl Backoff {
    /// The delay after the `receive_count`-th failed delivery (1 for the first): base, 2 x base,
    /// 4 x base, ... capped at `max` (and at SQS's 12 hours).
    pub fn delay(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
            .min(SQS_MAX_VISIBILITY)
    }

    /// The longest outage that dead-letters nothing: SQS delivers a message at most
    /// `max_receive_count` times (the next receive moves it to the dead-letter queue), waiting
    /// `delay(n)` after the n-th failure, so its last delivery comes `delay(1) + ... +
    /// delay(max_receive_count - 1)` after its first. An outage that ends before then loses nothing.
    pub fn outage_bound(&self, max_receive_count: u32) -> Duration {
        (1..max_receive_count).map(|n| self.delay(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 900, 900]);
        assert_eq!(b.delay(0), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn with_the_template_defaults_an_outage_of_half_an_hour_dead_letters_nothing() {
        // MaxReceiveCount 6 in template.yaml: deliveries at 0, 60, 180, 420, 900 and 1800 s.
        assert_eq!(
            Backoff::default().outage_bound(6),
            Duration::from_secs(1800)
        );
        assert!(Backoff::default().outage_bound(6) >= Duration::from_secs(15 * 60));
        // One delivery: no retry at all.
        assert_eq!(Backoff::default().outage_bound(1), Duration::ZERO);
        let huge = Backoff {
            base: Duration::from_secs(u64::MAX / 4),
            max: Duration::from_secs(u64::MAX / 2),
        };
        assert_eq!(huge.delay(3), SQS_MAX_VISIBILITY);
    }
}
