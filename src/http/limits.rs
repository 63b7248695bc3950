//! Abuse limits on the API (`/v1/*`), with `governor`'s token buckets:
//! requests per client IP, requests per API key, and failed authentications
//! per IP (so keys cannot be guessed at line rate). Over a limit the answer
//! is `429` with `Retry-After`. Redirects and pixels are not limited: mail
//! scanners legitimately burst, and a forged token already costs no I/O.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Per-second and per-minute allowances; `None` disables a limit.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    pub per_ip_per_sec: Option<NonZeroU32>,
    pub per_key_per_sec: Option<NonZeroU32>,
    pub auth_failures_per_ip_per_min: Option<NonZeroU32>,
}

/// Keyed buckets beyond this many are pruned of idle ones (memory stays bounded).
const PRUNE_ABOVE: usize = 100_000;

#[derive(Debug)]
pub struct ApiLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

/// Over a limit: how long until the next request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
    pub what: &'static str,
}

impl ApiLimits {
    pub fn new(cfg: LimitConfig) -> ApiLimits {
        ApiLimits {
            per_ip: cfg.per_ip_per_sec.map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_second(n))),
            per_key: cfg.per_key_per_sec.map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_second(n))),
            auth_failures: cfg.auth_failures_per_ip_per_min.map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// One API request from `ip`, authenticated as `key` (its digest) or not.
    pub fn check(&self, ip: IpAddr, key: Option<&[u8; 32]>) -> Result<(), Limited> {
        if let Some(l) = &self.per_ip {
            self.take(l, &ip, "requests from this address")?;
        }
        match (key, &self.per_key, &self.auth_failures) {
            (Some(k), Some(l), _) => self.take(l, k, "requests with this API key"),
            (None, _, Some(l)) => self.take(l, &ip, "failed authentications from this address"),
            _ => Ok(()),
        }
    }

    fn take<K: std::hash::Hash + Eq + Clone>(&self, l: &DefaultKeyedRateLimiter<K>, key: &K, what: &'static str) -> Result<(), Limited> {
        if l.len() > PRUNE_ABOVE {
            l.retain_recent();
        }
        l.check_key(key).map_err(|not_until| Limited { retry_after: not_until.wait_time_from(self.clock.now()), what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(v)
    }

    #[test]
    fn each_bucket_limits_its_own_key() {
        let limits = ApiLimits::new(LimitConfig { per_ip_per_sec: n(3), per_key_per_sec: n(100), auth_failures_per_ip_per_min: n(2) });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let key = [7u8; 32];
        for _ in 0..3 {
            assert!(limits.check(a, Some(&key)).is_ok());
        }
        let over = limits.check(a, Some(&key)).unwrap_err();
        assert_eq!(over.what, "requests from this address");
        assert!(over.retry_after > Duration::ZERO && over.retry_after <= Duration::from_secs(1), "{over:?}");
        assert!(limits.check(b, None).is_ok(), "another address has its own bucket");
        assert!(limits.check(b, None).is_ok());
        assert_eq!(limits.check(b, None).unwrap_err().what, "failed authentications from this address");
        let off = ApiLimits::new(LimitConfig { per_ip_per_sec: None, per_key_per_sec: None, auth_failures_per_ip_per_min: None });
        assert!((0..1000).all(|_| off.check(a, None).is_ok()), "no limit when disabled");
    }
}
