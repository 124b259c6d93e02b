//! Rate limits (SPEC §8): messages per sender per minute, requests per source IP per
//! second, and web-chat messages per session and per IP per minute, on `governor`'s
//! lock-free keyed GCRA limiters. Shared by every worker through `Shared`; the `Registry`
//! enforces the concurrency limits (calls, conversations) itself. A limit of 0 turns that
//! limit off.
//!
//! With `limits.redis_url` (`REDIS_URL`) the per-sender and per-IP limits are the cluster's:
//! the same quotas, counted once in Redis for every node ([`shared`]). Whenever Redis cannot
//! answer, this node's own limiter decides (counted in
//! `switchboard_rate_limit_fallbacks_total`). Web-chat limits stay per node: a visitor's
//! socket lives on one node.

pub mod shared;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use shared::{Gcra, SharedLimiter};

/// A web-chat IP address may send this many times a session's allowance: visitors behind
/// one office, household or carrier NAT share an address.
pub const WEB_IP_SHARE: u32 = 4;

pub struct Limits {
    per_sender: Option<DefaultKeyedRateLimiter<String>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    web_session: Option<DefaultKeyedRateLimiter<String>>,
    web_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// The cluster's limits in Redis, and the two quotas as the script takes them.
    shared: Option<SharedLimiter>,
    sender_quota: Option<Gcra>,
    ip_quota: Option<Gcra>,
}

/// Which web-chat limit refused a message, and how long until one more is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebRefusal {
    pub scope: WebScope,
    pub wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebScope {
    /// One visitor (their browser's id), however many sockets they open.
    Session,
    /// Every visitor from one client address.
    Ip,
}

impl WebScope {
    /// The `scope` label of `switchboard_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            WebScope::Session => "web_session",
            WebScope::Ip => "web_ip",
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

impl Limits {
    /// Limits of this node alone, whatever `redis_url` says.
    pub fn new(config: &LimitsConfig) -> Self {
        fn per_minute<K: Clone + Eq + std::hash::Hash>(
            n: u32,
        ) -> Option<DefaultKeyedRateLimiter<K>> {
            NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
        }
        Limits {
            per_sender: per_minute(config.per_sender_per_minute),
            per_ip: NonZeroU32::new(config.per_ip_per_second)
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
            web_session: per_minute(config.web_messages_per_minute),
            web_ip: per_minute(config.web_messages_per_minute.saturating_mul(WEB_IP_SHARE)),
            clock: DefaultClock::default(),
            shared: None,
            sender_quota: NonZeroU32::new(config.per_sender_per_minute)
                .map(|n| Gcra::per(MINUTE, n)),
            ip_quota: NonZeroU32::new(config.per_ip_per_second).map(|n| Gcra::per(SECOND, n)),
        }
    }

    /// The limits of `config`, shared through Redis when `redis_url` is set (inside a tokio
    /// runtime: the connection is made on first use). Err: the URL is not a Redis URL.
    pub fn with_redis(config: &LimitsConfig) -> Result<Self, String> {
        let mut limits = Limits::new(config);
        if let Some(url) = &config.redis_url {
            limits.shared = Some(SharedLimiter::new(
                url.expose(),
                &config.redis_key_prefix,
                Duration::from_millis(config.redis_timeout_ms),
            )?);
        }
        Ok(limits)
    }

    /// The cluster's limiter, when the limits are shared.
    pub fn shared(&self) -> Option<&SharedLimiter> {
        self.shared.as_ref()
    }

    /// Whether `sender` (a customer id) may send one more message now: the cluster's count
    /// with Redis, else (or when Redis cannot answer) this node's.
    pub async fn allow_sender(&self, sender: &str) -> bool {
        if let (Some(shared), Some(quota)) = (&self.shared, self.sender_quota) {
            match shared.check("sender", sender, quota).await {
                Some(verdict) => return verdict.is_ok(),
                None => crate::metrics::rate_limit_fallback("sender"),
            }
        }
        self.allow_sender_here(sender)
    }

    /// This node's own count of `sender`'s messages.
    fn allow_sender_here(&self, sender: &str) -> bool {
        self.per_sender
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&sender.to_string()).is_ok())
    }

    /// `Ok`, or how long `ip` must wait before its next request: the cluster's count with
    /// Redis, else (or when Redis cannot answer) this node's.
    pub async fn allow_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        if let (Some(shared), Some(quota)) = (&self.shared, self.ip_quota) {
            match shared.check("ip", &ip.to_string(), quota).await {
                Some(verdict) => return verdict,
                None => crate::metrics::rate_limit_fallback("ip"),
            }
        }
        self.allow_ip_here(ip)
    }

    /// This node's own count of `ip`'s requests.
    fn allow_ip_here(&self, ip: IpAddr) -> Result<(), Duration> {
        match &self.per_ip {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(&ip)
                .map_err(|until| until.wait_time_from(self.clock.now())),
        }
    }

    /// Whether web-chat visitor `session`, connected from `ip`, may send one more message
    /// now. The session's allowance is checked first, so a visitor over their own limit
    /// does not use up their address's.
    pub fn allow_web_message(&self, session: &str, ip: Option<IpAddr>) -> Result<(), WebRefusal> {
        let refused = |scope| {
            move |until: governor::NotUntil<_>| WebRefusal {
                scope,
                wait: until.wait_time_from(self.clock.now()),
            }
        };
        if let Some(limiter) = &self.web_session {
            limiter
                .check_key(&session.to_string())
                .map_err(refused(WebScope::Session))?;
        }
        if let (Some(limiter), Some(ip)) = (&self.web_ip, ip) {
            limiter.check_key(&ip).map_err(refused(WebScope::Ip))?;
        }
        Ok(())
    }

    /// Forgets keys that are back to a full allowance, so memory follows the active set.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_sender {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.web_session {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.web_ip {
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
            web_messages_per_minute: 0,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn a_sender_over_its_allowance_is_refused_and_others_are_not() {
        let limits = limits(2, 0);
        assert!(limits.allow_sender_here("+14155550101"));
        assert!(limits.allow_sender_here("+14155550101"));
        assert!(!limits.allow_sender_here("+14155550101"));
        assert!(limits.allow_sender_here("+14155550102"));
    }

    #[test]
    fn an_ip_over_its_allowance_is_told_when_to_retry() {
        let limits = limits(0, 3);
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        for _ in 0..3 {
            assert!(limits.allow_ip_here(ip).is_ok());
        }
        let wait = limits.allow_ip_here(ip).expect_err("limited");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limits
            .allow_ip_here("203.0.113.8".parse().expect("ip"))
            .is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = limits(0, 0);
        for _ in 0..1000 {
            assert!(limits.allow_sender_here("x"));
            assert!(limits.allow_ip_here(IpAddr::from([127, 0, 0, 1])).is_ok());
            assert!(limits
                .allow_web_message("web:x", Some(IpAddr::from([127, 0, 0, 1])))
                .is_ok());
        }
        limits.forget_idle();
    }

    #[test]
    fn web_chat_is_limited_per_session_then_per_address() {
        let limits = Limits::new(&LimitsConfig {
            web_messages_per_minute: 2,
            ..LimitsConfig::default()
        });
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        // One visitor: their own allowance, however fast they send.
        assert!(limits.allow_web_message("web:a", Some(ip)).is_ok());
        assert!(limits.allow_web_message("web:a", Some(ip)).is_ok());
        for _ in 0..5 {
            let refused = limits
                .allow_web_message("web:a", Some(ip))
                .expect_err("over the session limit");
            assert_eq!(refused.scope, WebScope::Session);
            assert!(
                refused.wait > Duration::ZERO && refused.wait <= Duration::from_secs(30),
                "{refused:?}"
            );
        }
        // Refusals by the session limit did not use up the address: three more visitors
        // bring it to WEB_IP_SHARE × 2, then the address itself is over.
        for visitor in ["web:b", "web:c", "web:d"] {
            for _ in 0..2 {
                assert!(
                    limits.allow_web_message(visitor, Some(ip)).is_ok(),
                    "{visitor}"
                );
            }
        }
        let refused = limits
            .allow_web_message("web:e", Some(ip))
            .expect_err("over the address limit");
        assert_eq!(refused.scope, WebScope::Ip);
        assert_eq!(refused.scope.label(), "web_ip");
        // Another address, and a visitor whose address is unknown, are unaffected.
        assert!(limits
            .allow_web_message("web:e", Some("198.51.100.1".parse().expect("ip")))
            .is_ok());
        assert!(limits.allow_web_message("web:f", None).is_ok());
    }
}
