//! Inbound message rate limiting: a token bucket per connection.

use std::time::Instant;

/// Allows `per_second` messages a second on average, with bursts of up to
/// twice that: a client that subscribes to a few topics at once on connect
/// must not be cut off, one that floods must.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32, now: Instant) -> RateLimiter {
        let per_second = f64::from(per_second.max(1));
        RateLimiter {
            per_second,
            capacity: per_second * 2.0,
            tokens: per_second * 2.0,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_passes_and_the_next_does_not() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, start);
        assert!((0..20).all(|_| limiter.allow(start)));
        assert!(!limiter.allow(start));
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, start);
        for _ in 0..20 {
            limiter.allow(start);
        }
        let later = start + Duration::from_millis(300);
        assert!((0..3).all(|_| limiter.allow(later)));
        assert!(!limiter.allow(later));
    }
}
