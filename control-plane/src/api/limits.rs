//! Per-tenant rate limits. With Redis they are shared by every replica
//! (one GCRA script, [`crate::bus::shared_limits`]); without it, or while
//! Redis cannot answer, each replica keeps token buckets of its own, so
//! the effective limit is then per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bus::{Bus, RedisLink, shared_limits};
use crate::metrics::Metrics;

/// Most tenants tracked at once; idle, full buckets are dropped first.
const MAX_TENANTS: usize = 100_000;

pub(crate) struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    shared: Option<Shared>,
}

/// The limit's twin in Redis.
struct Shared {
    link: RedisLink,
    /// Names the limit in Redis's keys.
    name: &'static str,
    metrics: Metrics,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `per_minute` sustained, bursts of up to `burst`.
    pub(crate) fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            capacity: burst.max(1) as f64,
            per_second: per_minute as f64 / 60.0,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// The same limit, shared through the bus's Redis when it has one.
    pub(crate) fn shared(mut self, name: &'static str, bus: &Bus, metrics: &Metrics) -> Self {
        if let Some(link) = bus.link()
            && self.per_second > 0.0
        {
            self.shared = Some(Shared {
                link: link.clone(),
                name,
                metrics: metrics.clone(),
            });
        }
        self
    }

    /// Takes one request for `key` from the shared limit, or from this
    /// replica's own bucket while Redis cannot answer.
    pub(crate) async fn take_shared(&self, key: &str) -> Result<(), Duration> {
        if let Some(s) = &self.shared {
            match shared_limits::take(&s.link, s.name, key, self.per_second, self.capacity as u32)
                .await
            {
                Ok(answer) => return answer,
                Err(()) => s
                    .metrics
                    .redis_fallbacks
                    .with_label_values(&["rate_limit"])
                    .inc(),
            }
        }
        self.take(key, Instant::now())
    }

    /// Takes one token for `key`, or says how long until one is free.
    pub(crate) fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().expect("limiter lock");
        if map.len() >= MAX_TENANTS && !map.contains_key(key) {
            let (capacity, rate) = (self.capacity, self.per_second);
            map.retain(|_, b| {
                b.tokens + now.duration_since(b.last).as_secs_f64() * rate < capacity
            });
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: self.capacity,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.per_second)
            .min(self.capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        } else {
            Err(Duration::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_tenant() {
        let l = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.take("a", t0).unwrap();
        }
        let wait = l.take("a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        l.take("b", t0).expect("another tenant has its own bucket");
        l.take("a", t0 + Duration::from_secs(1))
            .expect("one token back after a second");
        assert!(l.take("a", t0 + Duration::from_secs(1)).is_err());
        for _ in 0..3 {
            l.take("a", t0 + Duration::from_secs(100))
                .expect("refilled, but only to the burst");
        }
        assert!(l.take("a", t0 + Duration::from_secs(100)).is_err());
    }
}
