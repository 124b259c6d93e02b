//! Rate limits shared by every node of a cluster (`REDIS_URL`): the same GCRA as the local
//! `governor` limiters, run by Redis as one Lua script (EVALSHA), so a sender's messages and a
//! source address's requests are counted once however the load balancer spreads them.
//!
//! The script keeps one key per sender or address (named by a digest of it): its theoretical
//! arrival time (TAT), in microseconds of the Redis server's clock (`TIME`), so the nodes' own
//! clocks never matter.
//! A request is allowed when `now ≥ TAT + T − burst·T` (T the emission interval); the key
//! then holds `max(TAT, now) + T` and expires when it would be back to a full allowance.
//!
//! Redis is a help, never a gate: a check that errs or takes longer than the timeout is
//! answered by the node's own limiter (the caller counts it), the loss is logged once, and
//! Redis is not asked again for [`RETRY_AFTER`], so a dead Redis costs a webhook nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::clock::wall_clock_ms;

/// After a failed check, Redis is left alone this long before it is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bounds a (re)connection attempt made in the background.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1]: the limited key. ARGV[1]: emission interval T (µs), ARGV[2]: burst.
/// Returns 0 when allowed, else the microseconds until one more would be.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local next_tat = tat + interval
local allow_at = next_tat - interval * burst
if now < allow_at then
  return math.max(1, math.ceil(allow_at - now))
end
local ttl_ms = math.max(1, math.ceil((next_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', ttl_ms))
return 0
";

/// One limit as the GCRA sees it: one more request every `interval`, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    pub interval: Duration,
    pub burst: u32,
}

impl Gcra {
    /// `n` per `period`, in bursts of up to `n` (`governor`'s `Quota::per_minute(n)` and
    /// `Quota::per_second(n)`).
    pub fn per(period: Duration, n: std::num::NonZeroU32) -> Gcra {
        Gcra {
            interval: period / n.get(),
            burst: n.get(),
        }
    }
}

/// The cluster's limiter: a Redis connection (multiplexed, reconnecting by itself) and the
/// script.
pub struct SharedLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    /// Wall-clock ms before which Redis is not asked (after a failure).
    resting_until: AtomicU64,
    /// Whether the last check failed (the loss is logged once, the return once).
    down: AtomicBool,
}

impl SharedLimiter {
    /// A limiter on the Redis at `url`, its keys under `prefix`. Connects lazily, on the
    /// first check (must be called inside a tokio runtime). `timeout` bounds each check.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<SharedLimiter, String> {
        let client = redis::Client::open(url).map_err(|err| format!("REDIS_URL: {err}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(timeout.max(Duration::from_millis(1))))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_AFTER);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| format!("REDIS_URL: {err}"))?;
        Ok(SharedLimiter {
            connection,
            script: redis::Script::new(GCRA),
            prefix: prefix.trim_end_matches(':').to_owned(),
            timeout,
            resting_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
        })
    }

    /// The Redis key of `key` in `scope` (`sender`, `ip`): a digest, so no phone number or
    /// address is written to Redis.
    pub fn key(&self, scope: &str, key: &str) -> String {
        use sha2::Digest as _;
        use std::fmt::Write as _;
        let digest = sha2::Sha256::digest(key.as_bytes());
        let mut hex = String::with_capacity(32);
        for byte in digest.iter().take(16) {
            let _ = write!(hex, "{byte:02x}");
        }
        format!("{}:{scope}:{hex}", self.prefix)
    }

    /// `Some(Ok)` allowed, `Some(Err(wait))` refused, `None` when Redis could not say (down,
    /// slow, or resting after a failure): the caller decides alone then.
    pub async fn check(&self, scope: &str, key: &str, gcra: Gcra) -> Option<Result<(), Duration>> {
        if wall_clock_ms() < self.resting_until.load(Ordering::Relaxed) {
            return None;
        }
        let interval_us = u64::try_from(gcra.interval.as_micros()).unwrap_or(u64::MAX);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.key(scope, key));
        invocation.arg(interval_us).arg(gcra.burst);
        let answer = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(wait_us)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis is back: rate limits are shared by the cluster again");
                }
                Some(match u64::try_from(wait_us) {
                    Ok(0) | Err(_) => Ok(()),
                    Ok(wait_us) => Err(Duration::from_micros(wait_us)),
                })
            }
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    /// Whether Redis answers now (`PING`), within the check timeout: start-up's report.
    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
        }
    }

    fn failed(&self, why: &str) {
        let retry = u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
        self.resting_until
            .store(wall_clock_ms().saturating_add(retry), Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %why,
                "Redis unreachable: each node applies the rate limits alone until it is back"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the real Redis (`TEST_REDIS_URL`, default this machine kind's
    //! `127.0.0.1:6379`); skipped with the reason when it is down, except under `CI=true`.

    use std::net::IpAddr;
    use std::num::NonZeroU32;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::config::{LimitsConfig, Secret};
    use crate::limits::Limits;
    use crate::metrics::RATE_LIMIT_FALLBACKS;

    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    /// A key prefix of this test's own, and whether Redis answers (else the reason, printed).
    async fn redis_or_skip(test: &str) -> Option<String> {
        let prefix = format!(
            "switchboard-test:{test}:{}:{:x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let probe =
            SharedLimiter::new(&redis_url(), &prefix, Duration::from_secs(2)).expect("a Redis URL");
        match probe.ping().await {
            Ok(()) => Some(prefix),
            Err(err) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but Redis is unreachable: {err}"
                );
                eprintln!("skipped: Redis not reachable ({err}); set TEST_REDIS_URL");
                None
            }
        }
    }

    /// Deletes every key under `prefix`.
    async fn clean(prefix: &str) {
        let client = redis::Client::open(redis_url()).expect("URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .expect("DEL");
        }
    }

    fn config(url: &str, prefix: &str, per_minute: u32) -> LimitsConfig {
        LimitsConfig {
            per_sender_per_minute: per_minute,
            per_ip_per_second: 2,
            redis_url: Some(Secret::new(url.to_owned())),
            redis_key_prefix: prefix.to_owned(),
            ..LimitsConfig::default()
        }
    }

    fn fallbacks() -> u64 {
        RATE_LIMIT_FALLBACKS.with_label_values(&["sender"]).get()
    }

    #[tokio::test]
    async fn two_nodes_share_one_allowance_with_the_local_quotas() {
        let Some(prefix) = redis_or_skip("share").await else {
            return;
        };
        let node = || Limits::with_redis(&config(&redis_url(), &prefix, 3)).expect("limits");
        let (a, b) = (node(), node());
        let before = fallbacks();
        // Three a minute, whichever node the messages reach.
        assert!(a.allow_sender("+14155550101").await);
        assert!(b.allow_sender("+14155550101").await);
        assert!(a.allow_sender("+14155550101").await);
        assert!(!b.allow_sender("+14155550101").await);
        assert!(!a.allow_sender("+14155550101").await);
        assert!(b.allow_sender("+14155550102").await, "another sender");
        // Two a second per address, told when to come back.
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        assert!(a.allow_ip(ip).await.is_ok());
        assert!(b.allow_ip(ip).await.is_ok());
        let wait = a.allow_ip(ip).await.expect_err("over the address limit");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert_eq!(fallbacks(), before, "Redis answered every check");
        // The key holds the theoretical arrival time and expires with the allowance.
        let shared = a.shared().expect("shared");
        let gcra = Gcra::per(Duration::from_secs(60), NonZeroU32::MIN.saturating_add(2));
        assert_eq!(gcra.interval, Duration::from_secs(20));
        assert!(shared.check("sender", "+14155550101", gcra).await.is_some());
        let client = redis::Client::open(redis_url()).expect("URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let key = shared.key("sender", "+14155550101");
        assert!(key.starts_with(&format!("{prefix}:sender:")));
        assert!(
            !key.contains("4155550101"),
            "no phone number in Redis: {key}"
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(shared.key("sender", "+14155550101"))
            .query_async(&mut connection)
            .await
            .expect("PTTL");
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        clean(&prefix).await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_leaves_the_node_to_limit_alone() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let limits = Limits::with_redis(&config(
            &format!("redis://127.0.0.1:{port}"),
            "switchboard-test:down",
            2,
        ))
        .expect("limits");
        let before = fallbacks();
        assert!(limits.allow_sender("+14155550101").await);
        assert!(limits.allow_sender("+14155550101").await);
        assert!(
            !limits.allow_sender("+14155550101").await,
            "the local quota"
        );
        assert!(fallbacks() >= before + 3, "each check counted");
    }

    /// A TCP relay to Redis that can be cut and restored, as a network would.
    struct Relay {
        port: u16,
        tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    }

    impl Relay {
        async fn start(port: u16, upstream: String) -> Relay {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("relay binds");
            let port = listener.local_addr().expect("address").port();
            let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
            let spawned = tasks.clone();
            let accept = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    spawned.lock().expect("lock").push(relay.abort_handle());
                }
            });
            tasks.lock().expect("lock").push(accept.abort_handle());
            Relay { port, tasks }
        }

        /// Closes the listener and every relayed connection.
        fn cut(&self) {
            for task in self.tasks.lock().expect("lock").drain(..) {
                task.abort();
            }
        }
    }

    #[tokio::test]
    async fn redis_lost_mid_run_falls_back_then_comes_back() {
        let Some(prefix) = redis_or_skip("lost").await else {
            return;
        };
        let upstream = url::Url::parse(&redis_url()).expect("URL");
        let upstream = format!(
            "{}:{}",
            upstream.host_str().unwrap_or("127.0.0.1"),
            upstream.port().unwrap_or(6379)
        );
        let relay = Relay::start(0, upstream.clone()).await;
        let through_relay = Limits::with_redis(&config(
            &format!("redis://127.0.0.1:{}", relay.port),
            &prefix,
            4,
        ))
        .expect("limits");
        let direct = Limits::with_redis(&config(&redis_url(), &prefix, 4)).expect("limits");
        let sender = "+14155550101";
        for _ in 0..2 {
            assert!(through_relay.allow_sender(sender).await);
            assert!(direct.allow_sender(sender).await);
        }
        assert!(!through_relay.allow_sender(sender).await, "shared: 4 used");

        // Redis gone: the node decides alone, with its own limiter (untouched so far).
        relay.cut();
        let before = fallbacks();
        assert!(through_relay.allow_sender(sender).await);
        assert!(through_relay.allow_sender(sender).await);
        assert!(fallbacks() >= before + 2, "counted");

        // Redis reachable again: after the rest the checks are shared once more.
        let relay = Relay::start(relay.port, upstream).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let gcra = Gcra::per(Duration::from_secs(60), NonZeroU32::MIN.saturating_add(3));
        let shared = through_relay.shared().expect("shared");
        while shared.check("sender", "+14155550199", gcra).await.is_none() {
            assert!(Instant::now() < deadline, "Redis never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let next = "+14155550103";
        for _ in 0..2 {
            assert!(through_relay.allow_sender(next).await);
            assert!(direct.allow_sender(next).await);
        }
        assert!(
            !through_relay.allow_sender(next).await,
            "the cluster's count again"
        );
        relay.cut();
        clean(&prefix).await;
    }
}
