//! Webhooks (DESIGN.md section 13): what a delivery looks like on the wire and the rules around it,
//! pure: the signature and its check ([`signature`]), which URLs and addresses may be called
//! ([`address`]), the retry schedule ([`backoff`]). The HTTP client that sends is [`sender`]; the
//! SQL is `store::webhooks`, the loop `services::dispatch`.

pub mod address;
pub mod sender;
pub mod signature;

use std::time::Duration;

/// The header carrying the signature (`t=<unix seconds>,v1=<hex hmac>[,v1=<hex hmac>]`).
pub const SIGNATURE_HEADER: &str = "Ledger-Signature";
pub const EVENT_ID_HEADER: &str = "Ledger-Event-Id";
pub const EVENT_TYPE_HEADER: &str = "Ledger-Event-Type";
pub const USER_AGENT: &str = "ledger-webhooks/1";

/// The event-type filter that receives every type.
pub const ALL_TYPES: &str = "*";

/// The delay before the next attempt after the `attempts`-th failed one (1 for the first):
/// exponential (`base`, 2 x `base`, 4 x `base`, ... capped at `max`) with "equal jitter": half the
/// step is fixed, the other half is `jitter` (a fraction in [0, 1)) of it. So until the cap delays
/// never shrink from one attempt to the next (the n-th is at most its step, the (n+1)-th at least
/// that step); at the cap they stay between `max / 2` and `max`. Receivers that failed together do
/// not all retry in the same second.
pub fn backoff(attempts: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(40);
    let step = base
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(max)
        .min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    step / 2 + step.div_f64(2.0).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_bounds() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(3600));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(3, base, max, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_secs(40));
        // Capped: never above max, never below half of it.
        for n in [10, 20, 31, 32, 100, u32::MAX] {
            let low = backoff(n, base, max, 0.0);
            let high = backoff(n, base, max, 0.999);
            assert_eq!(low, max / 2, "{n}");
            assert!(high <= max, "{n}");
        }
        // Until the cap (10 s x 2^8 = 2560 s < 3600 s), never shrinks from one attempt to the next,
        // whatever the jitter.
        for n in 1..9 {
            assert!(
                backoff(n, base, max, 0.999) <= backoff(n + 1, base, max, 0.0),
                "{n}"
            );
        }
        assert_eq!(backoff(0, base, max, f64::NAN), Duration::from_secs(5));
    }
}
