//! Reconnect backoff: how long to wait before retry number *n*, and when to give up.
//!
//! Used when the model socket or a model request fails (SPEC §5.1: restart with
//! exponential backoff, then fallback after the retry budget) and for provider
//! `429`s, whose `retry-after` is honoured (SPEC §8). Randomness is injected as a
//! plain `u64` so the schedule is deterministic under test.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retry settings as written in configuration (`[openai.retry]` or similar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base_ms: u64,
    /// No single delay is longer than this (except a provider's `retry-after`).
    pub max_ms: u64,
    /// Retries allowed before giving up and falling back.
    pub max_attempts: u32,
    /// Spread delays over `[d/2, d]` so many calls failing together do not
    /// reconnect in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 250,
            max_ms: 8_000,
            max_attempts: 5,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_ms: self.base_ms,
            max_ms: self.max_ms,
            budget: self.max_attempts,
            jitter: self.jitter,
        }
    }
}

/// Capped exponential backoff with a retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
    /// Maximum number of retries.
    pub budget: u32,
    pub jitter: bool,
}

impl Backoff {
    /// The delay before retry number `attempt`, counted from 1 (= failures so
    /// far; 0 is read as 1), without jitter: `min(base · 2^(attempt-1), max)`.
    /// `None` once the budget is spent (`attempt > budget`).
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        let attempt = attempt.max(1);
        if attempt > self.budget {
            return None;
        }
        let factor = 1u64.checked_shl(attempt - 1).unwrap_or(u64::MAX);
        let ms = self.base_ms.saturating_mul(factor).min(self.max_ms);
        Some(Duration::from_millis(ms))
    }

    /// The delay before retry `attempt`, jittered with `entropy` (any random
    /// `u64`) into `[d/2, d]` when jitter is on, and never shorter than the
    /// provider's `retry_after`. `None` once the budget is spent.
    pub fn delay_with(
        &self,
        attempt: u32,
        entropy: u64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let ceiling = self.delay(attempt)?;
        let delay = if self.jitter {
            let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
            let half = ms / 2;
            let spread = ms - half;
            let offset = entropy.checked_rem(spread.saturating_add(1)).unwrap_or(0);
            Duration::from_millis(half.saturating_add(offset))
        } else {
            ceiling
        };
        Some(retry_after.map_or(delay, |after| delay.max(after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: bool) -> Backoff {
        Backoff {
            base_ms: 100,
            max_ms: 1_000,
            budget: 6,
            jitter,
        }
    }

    #[test]
    fn exponential_then_capped_then_spent() {
        let b = backoff(false);
        let delays: Vec<Option<u64>> = (1..8)
            .map(|n| b.delay(n).map(|d| d.as_millis() as u64))
            .collect();
        assert_eq!(
            delays,
            vec![
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1_000),
                Some(1_000),
                None
            ]
        );
    }

    #[test]
    fn huge_attempts_and_values_do_not_overflow() {
        let b = Backoff {
            base_ms: u64::MAX,
            max_ms: u64::MAX,
            budget: u32::MAX,
            jitter: true,
        };
        assert_eq!(b.delay(200), Some(Duration::from_millis(u64::MAX)));
        assert!(b.delay_with(64, u64::MAX, None).is_some());
        assert!(b.delay(u32::MAX).is_some());
        assert_eq!(Backoff { budget: 3, ..b }.delay(u32::MAX), None);
    }

    #[test]
    fn jitter_is_deterministic_and_within_half_to_full() {
        let b = backoff(true);
        for entropy in [0, 1, 7, 1_000_003, u64::MAX] {
            let d = b.delay_with(3, entropy, None).map(|d| d.as_millis());
            assert!(matches!(d, Some(200..=400)), "{d:?}");
            assert_eq!(d, b.delay_with(3, entropy, None).map(|d| d.as_millis()));
        }
        assert_eq!(b.delay_with(3, 0, None), Some(Duration::from_millis(200)));
        assert_eq!(b.delay_with(3, 200, None), Some(Duration::from_millis(400)));
    }

    #[test]
    fn provider_retry_after_wins_when_longer() {
        let b = backoff(false);
        let after = Some(Duration::from_secs(30));
        assert_eq!(b.delay_with(1, 0, after), after);
        assert_eq!(
            b.delay_with(1, 0, Some(Duration::from_millis(10))),
            Some(Duration::from_millis(100))
        );
        assert_eq!(b.delay_with(7, 0, after), None);
    }

    #[test]
    fn zero_budget_never_retries() {
        let b = Backoff {
            budget: 0,
            ..backoff(false)
        };
        assert_eq!(b.delay(0), None);
        assert_eq!(b.delay(1), None);
    }

    #[test]
    fn attempt_zero_reads_as_the_first_retry() {
        let b = backoff(false);
        assert_eq!(b.delay(0), b.delay(1));
    }

    #[test]
    fn policy_deserializes_with_defaults() {
        let p: RetryPolicy = serde_json::from_str(r#"{"max_attempts": 3}"#).unwrap();
        assert_eq!(
            p,
            RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            }
        );
        assert_eq!(p.backoff().budget, 3);
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"retries": 3}"#).is_err());
    }
}
