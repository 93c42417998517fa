//! When and how long to wait before sending a request again.

use std::time::Duration;

/// How failed requests are retried.
///
/// Retries never spend credits twice. The status call (`GET`) is retried after
/// transport errors, timeouts, 429 and 5xx answers. The generate calls (`POST`) are
/// retried only when the request certainly started no work: the connection could not
/// be established (so nothing was sent), or the server answered 429 or 503 (before any
/// event). A generation is never resent after a byte of its stream arrived.
///
/// Delays grow exponentially from `base_delay` up to `max_delay`, with full jitter (a
/// random delay between zero and that bound). A `Retry-After` from the server is
/// honoured instead; when it asks for longer than `max_retry_after`, the error is
/// returned at once (with [`Error::retry_after`](crate::Error::retry_after)) so that
/// the caller can decide.
///
/// ```
/// use std::time::Duration;
/// let policy = laracopilot::RetryPolicy::default()
///     .max_attempts(5)
///     .base_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10));
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .retry_policy(policy)
///     .build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts in all, delays from 500 ms up to 30 s, `Retry-After` honoured up to
    /// 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is attempted once.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The bound of the first delay; each retry doubles it.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The largest bound a delay can reach.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest `Retry-After` honoured; a longer one ends the retries.
    pub fn max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// The delay before attempt `attempt + 1`, after `attempt` failed ones (from 1), or
    /// `None` when no retry is due.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            return (asked <= self.max_retry_after).then_some(asked);
        }
        let exponent = attempt.saturating_sub(1).min(31);
        let bound = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        // `mul_f64` panics on a product it cannot represent (near `Duration::MAX`).
        Some(
            Duration::try_from_secs_f64(bound.as_secs_f64() * crate::random::fraction())
                .unwrap_or(bound),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_exponential_bound_and_the_cap() {
        let policy = RetryPolicy::default()
            .max_attempts(10)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(1000));
        for attempt in 1..10 {
            let bound =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_millis(1000));
            for _ in 0..50 {
                let delay = policy.delay(attempt, None).unwrap();
                assert!(delay <= bound, "attempt {attempt}: {delay:?} > {bound:?}");
            }
        }
        assert_eq!(policy.delay(10, None), None);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let policy = RetryPolicy::default();
        let delays: std::collections::HashSet<_> =
            (0..20).map(|_| policy.delay(1, None).unwrap()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let policy = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(6))), None);
        assert_eq!(RetryPolicy::none().delay(1, Some(Duration::ZERO)), None);
    }
}
