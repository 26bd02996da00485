//! Per-client rate limits: a token bucket per key, in this process only. N instances allow
//! N times the rate (the README says so); the limit protects each instance from one
//! client, it is not a quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What a 429 says: the limit, and the seconds until a request would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub limit: u32,
    pub retry_after: u64,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute, with a burst of as many.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second()).min(f64::from(self.per_minute));
        bucket.updated = now;
    }

    fn limited(&self, tokens: f64) -> Limited {
        Limited {
            limit: self.per_minute,
            retry_after: ((1.0 - tokens) / self.per_second()).ceil().max(1.0) as u64,
        }
    }

    /// Takes one token for `key`: the tokens left, or how long to wait.
    pub fn take(&self, key: &str) -> Result<u32, Limited> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(self.per_minute); // a poisoned lock never blocks a request
        };
        if buckets.len() > 100_000 {
            let full = f64::from(self.per_minute);
            let rate = self.per_second();
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < full);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: f64::from(self.per_minute),
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(bucket.tokens.floor() as u32)
        } else {
            Err(self.limited(bucket.tokens))
        }
    }

    /// Whether `key` has no token left, without taking one (failed sign-ins are charged
    /// with `take` only when they fail).
    pub fn exhausted(&self, key: &str) -> Option<Limited> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().ok()?;
        let bucket = buckets.get_mut(key)?;
        self.refill(bucket, now);
        (bucket.tokens < 1.0).then(|| self.limited(bucket.tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_then_a_wait() {
        let limiter = RateLimiter::new(3);
        assert_eq!(limiter.take("a"), Ok(2));
        assert_eq!(limiter.take("a"), Ok(1));
        assert_eq!(limiter.take("a"), Ok(0));
        let limited = limiter.take("a").unwrap_err();
        assert_eq!(limited.limit, 3);
        assert!((1..=20).contains(&limited.retry_after), "{limited:?}");
        assert_eq!(limiter.take("b"), Ok(2), "keys are apart");
        assert!(limiter.exhausted("a").is_some());
        assert!(limiter.exhausted("c").is_none());
    }
}
