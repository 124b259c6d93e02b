//! Process-wide Prometheus series (SPEC §10), registered once and updated from anywhere.
//!
//! Counters are atomics behind the `prometheus` crate, so updating one from an actor is a
//! few nanoseconds and never blocks; `/metrics` renders them with [`render`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The registry `/metrics` renders.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable_series(name));
    let _ = REGISTRY.register(Box::new(counter.clone()));
    counter
}

fn counter(name: &str, help: &str) -> IntCounter {
    let counter =
        IntCounter::with_opts(Opts::new(name, help)).unwrap_or_else(|_| unreachable_series(name));
    let _ = REGISTRY.register(Box::new(counter.clone()));
    counter
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let gauge =
        IntGauge::with_opts(Opts::new(name, help)).unwrap_or_else(|_| unreachable_series(name));
    let _ = REGISTRY.register(Box::new(gauge.clone()));
    gauge
}

/// Latency buckets from 50 µs to 5 s: bridge hops live at the bottom, turns at the top.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.0, 5.0,
];

/// Series names and options are constants of this file: they cannot be invalid.
fn unreachable_series(name: &str) -> ! {
    panic!("metric series {name} is malformed")
}

pub static CALLS_ACTIVE: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("switchboard_calls_active", "Phone calls in progress."));
pub static CALLS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_calls_total",
        "Finished calls by outcome.",
        &["outcome"],
    )
});
pub static BAD_FRAMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_bad_frames_total",
        "Unusable WebSocket frames dropped, by reason.",
        &["reason"],
    )
});
pub static MODEL_RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_model_reconnects_total",
        "Model sockets lost mid-call and reopened.",
    )
});
pub static BARGE_INS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_barge_ins_total",
        "Caller interruptions that flushed assistant audio.",
    )
});
pub static TOOL_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_tool_calls_total",
        "Tool runs by tool and outcome.",
        &["tool", "outcome"],
    )
});
pub static TURN_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "switchboard_turn_latency_seconds",
        "Caller speech end to the first assistant audio acknowledged as played.",
    )
    .buckets(LATENCY_BUCKETS.to_vec());
    let histogram = Histogram::with_opts(opts)
        .unwrap_or_else(|_| unreachable_series("switchboard_turn_latency_seconds"));
    let _ = REGISTRY.register(Box::new(histogram.clone()));
    histogram
});
pub static HOP_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "switchboard_hop_latency_seconds",
        "Time a frame spends inside the bridge, by direction.",
    )
    .buckets(LATENCY_BUCKETS.to_vec());
    let histogram = HistogramVec::new(opts, &["direction"])
        .unwrap_or_else(|_| unreachable_series("switchboard_hop_latency_seconds"));
    let _ = REGISTRY.register(Box::new(histogram.clone()));
    histogram
});
/// Which way a frame crosses the bridge (SPEC §10, §13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// A Twilio `media` frame received by the `Call` → its `input_audio_buffer.append`
    /// handed to the model socket.
    Inbound,
    /// A model audio delta received by `Realtime` → the Twilio `media` handed to the
    /// Twilio socket.
    Outbound,
}

impl Hop {
    fn label(self) -> &'static str {
        match self {
            Hop::Inbound => "inbound",
            Hop::Outbound => "outbound",
        }
    }
}

/// The per-direction series, resolved once: `with_label_values` hashes on every call.
static HOP_SERIES: LazyLock<[Histogram; 2]> = LazyLock::new(|| {
    [Hop::Inbound, Hop::Outbound].map(|hop| HOP_LATENCY.with_label_values(&[hop.label()]))
});

/// Fine-grained twins of [`HOP_LATENCY`], read in-process by `switchboard loadtest`: the
/// Prometheus buckets (50, 100, 250, 500 µs, …) are too coarse for a p50 or p99 at load.
static HOP_FINE: [LatencyRecorder; 2] = [LatencyRecorder::new(), LatencyRecorder::new()];

/// A frame received at `received` has just been handed to the other side's socket.
/// Costs two clock reads' worth: one `elapsed`, two relaxed atomic adds and a bucket search.
pub fn hop_latency(hop: Hop, received: Instant) {
    let elapsed = received.elapsed();
    HOP_SERIES[hop as usize].observe(elapsed.as_secs_f64());
    HOP_FINE[hop as usize].record(elapsed);
}

/// Every hop of direction `hop` recorded since the process started.
pub fn hop_latency_snapshot(hop: Hop) -> LatencySnapshot {
    HOP_FINE[hop as usize].snapshot()
}

/// Sub-buckets per power of two: a recorded value is kept within 1/32 (3 %) of itself.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two above the exact range, up to 2^41 ns (36 minutes); longer is clamped.
const OCTAVES: usize = 36;
const BUCKETS: usize = SUB + OCTAVES * SUB;

/// A lock-free log-linear histogram of durations (nanoseconds below 32 ns are exact, then
/// 32 buckets per power of two), cheap enough to update on every audio frame.
pub struct LatencyRecorder {
    counts: [AtomicU64; BUCKETS],
}

impl LatencyRecorder {
    pub const fn new() -> Self {
        LatencyRecorder {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get(bucket_of(nanos)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket holding `nanos`.
fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB as u64 {
        return nanos as usize;
    }
    // `nanos >= 32`, so the highest set bit is at least SUB_BITS.
    let shift = 63 - nanos.leading_zeros() - SUB_BITS;
    let sub = (nanos >> shift) as usize & (SUB - 1);
    (((shift as usize) + 1) << SUB_BITS | sub).min(BUCKETS - 1)
}

/// The largest value bucket `index` holds.
fn bucket_ceiling(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) - 1;
    let sub = (index & (SUB - 1)) as u64;
    ((SUB as u64 + sub + 1) << shift) - 1
}

/// The counts of a [`LatencyRecorder`] at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    counts: Vec<u64>,
}

impl LatencySnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was recorded between `earlier` and this snapshot.
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(now, before)| now.saturating_sub(*before))
                .collect(),
        }
    }

    /// The value at or below which a share `q` (0..=1) of the observations lie, rounded up
    /// to its bucket's ceiling (so never under-reported); `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        // `as` saturates; the rank is at least 1 so q = 0 gives the minimum.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        self.counts.iter().enumerate().find_map(|(index, &count)| {
            seen = seen.saturating_add(count);
            (total > 0 && seen >= rank).then(|| Duration::from_nanos(bucket_ceiling(index)))
        })
    }

    /// The largest observation, to its bucket's ceiling.
    pub fn max(&self) -> Option<Duration> {
        self.counts
            .iter()
            .rposition(|&count| count > 0)
            .map(|index| Duration::from_nanos(bucket_ceiling(index)))
    }
}

pub static MODEL_AUTH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_model_auth_failures_total",
        "Model sockets refused because of the API key.",
    )
});

pub fn bad_frame(reason: &'static str) {
    BAD_FRAMES.with_label_values(&[reason]).inc();
}

pub fn model_reconnect() {
    MODEL_RECONNECTS.inc();
}

pub fn barge_in() {
    BARGE_INS.inc();
}

pub fn tool_call(tool: &str, ok: bool) {
    TOOL_CALLS
        .with_label_values(&[tool, if ok { "ok" } else { "error" }])
        .inc();
}

pub fn turn_latency(latency: Duration) {
    TURN_LATENCY.observe(latency.as_secs_f64());
}

pub fn model_auth_failed() {
    MODEL_AUTH_FAILURES.inc();
}

pub fn call_started() {
    CALLS_ACTIVE.inc();
}

pub fn call_finished(outcome: &str) {
    CALLS_ACTIVE.dec();
    CALLS_TOTAL.with_label_values(&[outcome]).inc();
}

/// The text exposition of every series.
pub fn render() -> String {
    let mut buffer = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&REGISTRY.gather(), &mut buffer) {
        tracing::error!(error = %err, "metrics encoding failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_rate_limited_total",
        "Requests refused by a limit, by scope.",
        &["scope"],
    )
});

pub fn rate_limited(scope: &str) {
    RATE_LIMITED.with_label_values(&[scope]).inc();
}

pub static CONVERSATIONS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "switchboard_conversations_active",
        "Customer text threads with a live actor.",
    )
});
pub static ESCALATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_escalations_total",
        "Hand-offs to a person, by channel kind.",
        &["channel"],
    )
});
pub static TEXT_TURN_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "switchboard_text_turn_latency_seconds",
        "Customer message received to answer ready, by channel.",
    )
    .buckets(LATENCY_BUCKETS.to_vec());
    let histogram = HistogramVec::new(opts, &["channel"])
        .unwrap_or_else(|_| unreachable_series("switchboard_text_turn_latency_seconds"));
    let _ = REGISTRY.register(Box::new(histogram.clone()));
    histogram
});

pub fn escalation(channel: &str) {
    ESCALATIONS.with_label_values(&[channel]).inc();
}

pub fn text_turn(channel: &str, latency: Duration) {
    TEXT_TURN_LATENCY
        .with_label_values(&[channel])
        .observe(latency.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_every_value_within_three_percent() {
        let mut v = 0u64;
        while v < 1 << 40 {
            let index = bucket_of(v);
            let ceiling = bucket_ceiling(index);
            assert!(ceiling >= v, "{v} → bucket {index} ≤ {ceiling}");
            assert!(ceiling - v <= v / 32, "{v} → {ceiling}");
            if index > 0 {
                assert!(bucket_ceiling(index - 1) < v, "{v} belongs below {index}");
            }
            v = v * 21 / 20 + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_max_come_from_the_recorded_distribution() {
        let recorder = LatencyRecorder::new();
        assert_eq!(recorder.snapshot().quantile(0.5), None);
        assert_eq!(recorder.snapshot().max(), None);
        // 1..=100 µs, one each.
        for us in 1..=100 {
            recorder.record(Duration::from_micros(us));
        }
        let snap = recorder.snapshot();
        assert_eq!(snap.count(), 100);
        let within = |got: Option<Duration>, us: u64| {
            let got = got.expect("recorded").as_nanos() as u64;
            let want = us * 1000;
            assert!(got >= want && got - want <= want / 32, "{got} vs {want}");
        };
        within(snap.quantile(0.5), 50);
        within(snap.quantile(0.99), 99);
        within(snap.quantile(0.0), 1);
        within(snap.max(), 100);
    }

    #[test]
    fn since_keeps_only_what_came_later() {
        let recorder = LatencyRecorder::new();
        recorder.record(Duration::from_millis(10));
        let before = recorder.snapshot();
        recorder.record(Duration::from_micros(3));
        let diff = recorder.snapshot().since(&before);
        assert_eq!(diff.count(), 1);
        assert!(diff.max().is_some_and(|d| d < Duration::from_micros(4)));
    }
}

pub static FLUSHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_store_flushes_total",
        "Group commits: store flushes that made a batch of writes durable.",
    )
});
