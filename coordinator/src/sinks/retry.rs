//! When to try a delivery again: capped exponential backoff with full
//! jitter, bounded in attempts and in total time. Pure: the caller passes
//! the random draw and the elapsed time, so the policy is tested with
//! tables and a sink's timing with `tokio::time::pause()`.

use std::time::Duration;

/// How a sink retries one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's delay.
    pub initial: Duration,
    /// The largest ceiling any delay may have.
    pub max_delay: Duration,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts later than this after the first one.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 0.5 s doubling to 60 s, up to 12 attempts within an hour: a receiver
    /// restarting or deploying is retried through, a dead one is given up
    /// on the same hour.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_attempts: 12,
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop: attempts or time are used up.
    GiveUp,
}

impl RetryPolicy {
    /// After attempt number `attempt` (1 for the first) failed, `elapsed`
    /// after the first attempt started: retry after a delay drawn uniformly
    /// from `[0, min(max_delay, initial × 2^(attempt-1))]` by `unit` (a
    /// random number in `[0, 1)`), or give up. A server's `Retry-After`
    /// (`hint`) raises the delay, within `max_delay`.
    pub fn next(&self, attempt: u32, elapsed: Duration, unit: f64, hint: Option<Duration>) -> Next {
        if attempt >= self.max_attempts.max(1) {
            return Next::GiveUp;
        }
        let ceiling = self.initial.saturating_mul(1u32 << (attempt - 1).min(20)).min(self.max_delay);
        let drawn = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        let delay = hint.map_or(drawn, |h| drawn.max(h.min(self.max_delay)));
        if elapsed.saturating_add(delay) > self.give_up_after {
            return Next::GiveUp;
        }
        Next::RetryAfter(delay)
    }
}

/// A uniform draw in `[0, 1)` for the jitter (from the system's CSPRNG,
/// which is already in the tree; 0.5 if it ever fails).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_to_the_cap_and_stop_at_the_limits() {
        let policy = RetryPolicy {
            initial: ms(100),
            max_delay: ms(1_000),
            max_attempts: 6,
            give_up_after: ms(10_000),
        };
        let cases: &[(u32, u64, f64, Option<u64>, Next)] = &[
            (1, 0, 0.999_999, None, Next::RetryAfter(ms(100))),
            (2, 0, 0.5, None, Next::RetryAfter(ms(100))),
            (3, 0, 0.999_999, None, Next::RetryAfter(ms(400))),
            (5, 0, 0.999_999, None, Next::RetryAfter(ms(1_000))),
            (1, 0, 0.0, None, Next::RetryAfter(ms(0))),
            (1, 0, 0.0, Some(750), Next::RetryAfter(ms(750))),
            (1, 0, 0.0, Some(60_000), Next::RetryAfter(ms(1_000))),
            (6, 0, 0.5, None, Next::GiveUp),
            (2, 9_990, 0.5, None, Next::GiveUp),
        ];
        for &(attempt, elapsed, unit, hint, want) in cases {
            let got = policy.next(attempt, ms(elapsed), unit, hint.map(ms));
            match (got, want) {
                // The draw is scaled in floating point: equal to the microsecond.
                (Next::RetryAfter(a), Next::RetryAfter(b)) => {
                    assert!(a.abs_diff(b) < Duration::from_micros(2), "attempt {attempt}: {a:?} vs {b:?}")
                }
                _ => assert_eq!(got, want, "attempt {attempt}, elapsed {elapsed}"),
            }
        }
    }

    #[test]
    fn the_default_gives_up_within_the_hour() {
        let policy = RetryPolicy::default();
        let (mut attempt, mut elapsed) = (1, Duration::ZERO);
        while let Next::RetryAfter(delay) = policy.next(attempt, elapsed, 0.999, None) {
            elapsed += delay;
            attempt += 1;
        }
        assert_eq!(attempt, 12);
        assert!(elapsed <= Duration::from_secs(3600), "{elapsed:?}");
    }
}
