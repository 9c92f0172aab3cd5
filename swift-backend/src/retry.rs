//! Retry policy: exponential backoff with equal jitter, honouring `Retry-After`.
//!
//! Equal jitter (sleep `cap/2` plus a uniform random time in `[0, cap/2]`, where
//! `cap = min(max, base * 2^attempt)`) spreads the retries of many workers hit by the same
//! outage instead of having them return in lock-step ("Exponential Backoff And Jitter", AWS
//! architecture blog), while guaranteeing that the retries together wait at least half
//! of the summed caps: with full jitter they could all be drawn near zero, and a request
//! gave up in well under the 2–3 s a Swift proxy restart takes. A server that says
//! `Retry-After: N` (Swift's ratelimit middleware, a 503 from a proxy) knows better than
//! our guess, so its value wins, capped at `retry_max` so a misconfigured server cannot
//! park a worker for an hour.
//!
//! What is retried is decided in one place, [`crate::SwiftError::is_retryable`]; whether a
//! request *can* be repeated depends on its body (see [`crate::client`]).

use std::time::Duration;

use rand::Rng;

/// Backoff parameters, copied from [`crate::SwiftConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Number of retries after the first attempt.
    pub retries: u32,
    /// Upper bound of the first retry's sleep.
    pub base: Duration,
    /// Upper bound of any sleep.
    pub max: Duration,
}

impl Backoff {
    /// Sleep before retry number `retry` (0 for the first retry). `retry_after` is the
    /// server's `Retry-After` in seconds, if it sent one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max);
        }
        let cap = self
            .base
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        if cap.is_zero() {
            return cap;
        }
        let half = cap / 2;
        let nanos = rand::thread_rng().gen_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(nanos)
    }

    /// The shortest total time the retries of one request wait before it gives up.
    pub fn min_total(&self) -> Duration {
        (0..self.retries)
            .map(|r| {
                self.base
                    .checked_mul(1u32.checked_shl(r.min(31)).unwrap_or(u32::MAX))
                    .unwrap_or(self.max)
                    .min(self.max)
                    / 2
            })
            .sum()
    }
}

/// Parses a `Retry-After` value given in seconds. The HTTP-date form is not used by Swift
/// and is ignored (we fall back to our own backoff).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs.min(86_400.0)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_bounded_and_grows() {
        let b = Backoff {
            retries: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        for retry in 0..40 {
            let d = b.delay(retry, None);
            let cap = Duration::from_millis(100 * (1u64 << retry.min(20))).min(b.max);
            assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
            assert!(d >= cap / 2, "retry {retry}: {d:?} < half of {cap:?}");
        }
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(600))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn default_retries_outlast_a_proxy_restart() {
        // The defaults (8 retries, 100 ms doubling to 5 s) wait at least 8 s in total.
        let b = Backoff {
            retries: 8,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        assert_eq!(b.min_total(), Duration::from_millis(8150));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
