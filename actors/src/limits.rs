//! Rate limits (SPEC §8): messages per sender per minute and requests per source IP per
//! second, on `governor`'s lock-free keyed GCRA limiters. Shared by every worker through
//! `Shared`; the `Registry` enforces the concurrency limits (calls, conversations) itself.
//! A limit of 0 turns that limit off.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;

pub struct Limits {
    per_sender: Option<DefaultKeyedRateLimiter<String>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Limits {
            per_sender: NonZeroU32::new(config.per_sender_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            per_ip: NonZeroU32::new(config.per_ip_per_second)
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Whether `sender` (a customer id) may send one more message now.
    pub fn allow_sender(&self, sender: &str) -> bool {
        self.per_sender
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&sender.to_string()).is_ok())
    }

    /// `Ok`, or how long `ip` must wait before its next request.
    pub fn allow_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        match &self.per_ip {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(&ip)
                .map_err(|until| until.wait_time_from(self.clock.now())),
        }
    }

    /// Forgets keys that are back to a full allowance, so memory follows the active set.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_sender {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, per_second: u32) -> Limits {
        Limits::new(&LimitsConfig {
            per_sender_per_minute: per_minute,
            per_ip_per_second: per_second,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn a_sender_over_its_allowance_is_refused_and_others_are_not() {
        let limits = limits(2, 0);
        assert!(limits.allow_sender("+14155550101"));
        assert!(limits.allow_sender("+14155550101"));
        assert!(!limits.allow_sender("+14155550101"));
        assert!(limits.allow_sender("+14155550102"));
    }

    #[test]
    fn an_ip_over_its_allowance_is_told_when_to_retry() {
        let limits = limits(0, 3);
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        for _ in 0..3 {
            assert!(limits.allow_ip(ip).is_ok());
        }
        let wait = limits.allow_ip(ip).expect_err("limited");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limits.allow_ip("203.0.113.8".parse().expect("ip")).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = limits(0, 0);
        for _ in 0..1000 {
            assert!(limits.allow_sender("x"));
            assert!(limits.allow_ip(IpAddr::from([127, 0, 0, 1])).is_ok());
        }
        limits.forget_idle();
    }
}
