//! Process-wide Prometheus series (SPEC §10), registered once and updated from anywhere.
//!
//! Counters are atomics behind the `prometheus` crate, so updating one from an actor is a
//! few nanoseconds and never blocks; `/metrics` renders them with [`render`].

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The registry `/metrics` renders. Every series carries the node's name (`node`), so the
/// series of several nodes can be told apart once scraped.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let labels = NODE
        .get()
        .map(|node| std::collections::HashMap::from([("node".to_owned(), node.clone())]));
    Registry::new_custom(None, labels).unwrap_or_else(|_| Registry::new())
});

/// The `node` label, set once at start-up before any series is touched.
static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this node in every series. Only the first call counts (one engine per process); a
/// series touched before it carries no `node` label.
pub fn set_node(node: &str) {
    let _ = NODE.set(node.to_owned());
}

mod latency;
pub mod summary;
pub use latency::{LatencyRecorder, LatencySnapshot};

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

pub static MODEL_AUTH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_model_auth_failures_total",
        "Model sockets refused because of the API key.",
    )
});

pub static MODEL_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_model_failures_total",
        "Model responses that failed, by kind: fatal (quota, credentials: the call falls back) or transient (retried).",
        &["kind"],
    )
});

/// A Realtime response failed (`response.done` with `status: "failed"`).
pub fn model_failure(fatal: bool) {
    MODEL_FAILURES
        .with_label_values(&[if fatal { "fatal" } else { "transient" }])
        .inc();
}

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

pub static RATE_LIMIT_FALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_rate_limit_fallbacks_total",
        "Limit checks decided by this node alone because Redis (REDIS_URL) could not answer, \
         by scope.",
        &["scope"],
    )
});

/// A shared limit (`sender`, `ip`) was checked by this node's own limiter: Redis is down,
/// slow, or resting after a failure.
pub fn rate_limit_fallback(scope: &str) {
    RATE_LIMIT_FALLBACKS.with_label_values(&[scope]).inc();
}

pub static CLUSTER_SWEPT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_cluster_swept_total",
        "Conversations this node's sweep took up: a dead node's, or its own with a message \
         unanswered for 5 s (its notification lost).",
    )
});
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
/// Numbers and identity: Lookup answers by line type (or `failed`), Verify requests by
/// what came of them.
pub static LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_lookups_total",
        "Twilio Lookup line-type checks, by line type (or failed).",
        &["line_type"],
    )
});
pub static VERIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_verifications_total",
        "Twilio Verify requests (send, check), by outcome.",
        &["step", "outcome"],
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

pub static SUPERVISOR_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_supervisor_actions_total",
        "Supervisor actions carried out from the dashboard or its JSON endpoints, by action.",
        &["action"],
    )
});

/// A supervisor's action was carried out (`end`, `transfer`, `instruct`, `takeover`,
/// `reply`, `release`).
pub fn supervisor_action(action: &str) {
    SUPERVISOR_ACTIONS.with_label_values(&[action]).inc();
}

pub static CALL_OUTCOMES_BY_AGENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_call_outcomes_total",
        "Finished calls by the agent active at the end, and outcome.",
        &["agent", "outcome"],
    )
});

/// A call finished with `outcome` while `agent` was active (the dashboard's chart of
/// outcomes per agent).
pub fn call_outcome_by_agent(agent: &str, outcome: &str) {
    CALL_OUTCOMES_BY_AGENT
        .with_label_values(&[agent, outcome])
        .inc();
}

pub fn escalation(channel: &str) {
    ESCALATIONS.with_label_values(&[channel]).inc();
}

/// A Lookup answer; the label is one of Twilio's documented line types, `invalid` or
/// `failed` (anything else is counted as `unknown`, so labels stay bounded).
pub fn lookup(line_type: &str) {
    const KNOWN: [&str; 14] = [
        "landline",
        "mobile",
        "fixedVoip",
        "nonFixedVoip",
        "personal",
        "tollFree",
        "premium",
        "sharedCost",
        "uan",
        "voicemail",
        "pager",
        "unknown",
        "invalid",
        "failed",
    ];
    let label = if KNOWN.contains(&line_type) {
        line_type
    } else {
        "unknown"
    };
    LOOKUPS.with_label_values(&[label]).inc();
}

/// A Verify request: `step` is `send` or `check`; `outcome` e.g. `pending`, `approved`,
/// `failed`.
pub fn verification(step: &'static str, outcome: &'static str) {
    VERIFICATIONS.with_label_values(&[step, outcome]).inc();
}

pub fn text_turn(channel: &str, latency: Duration) {
    TEXT_TURN_LATENCY
        .with_label_values(&[channel])
        .observe(latency.as_secs_f64());
}

pub static FLUSHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "switchboard_store_flushes_total",
        "Group commits: store flushes that made a batch of writes durable.",
    )
});

pub static STORE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_store_errors_total",
        "Store operations that failed, by kind: a write, or the flush that makes writes durable.",
        &["op"],
    )
});

/// A store write or flush failed (the error is logged where it happened).
pub fn store_error(op: &'static str) {
    STORE_ERRORS.with_label_values(&[op]).inc();
}

pub static WEBHOOKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "switchboard_webhooks_total",
        "Twilio webhooks and socket handshakes answered, by route and HTTP status.",
        &["route", "status"],
    )
});

pub fn webhook(route: &str, status: u16) {
    let mut buffer = itoa::Buffer::new();
    WEBHOOKS
        .with_label_values(&[route, buffer.format(status)])
        .inc();
}

/// Registers every series and gives the known label values a zero, so dashboards and
/// alerts see them before the first event (an absent series reads as "no data").
pub fn init<'a>(tools: impl IntoIterator<Item = &'a str>) {
    LazyLock::force(&CALLS_ACTIVE);
    LazyLock::force(&CONVERSATIONS_ACTIVE);
    LazyLock::force(&MODEL_RECONNECTS);
    LazyLock::force(&MODEL_AUTH_FAILURES);
    LazyLock::force(&BARGE_INS);
    LazyLock::force(&TURN_LATENCY);
    LazyLock::force(&FLUSHES);
    for kind in ["fatal", "transient"] {
        MODEL_FAILURES.with_label_values(&[kind]);
    }
    for op in ["write", "flush"] {
        STORE_ERRORS.with_label_values(&[op]);
    }
    for channel in ["voice", "text"] {
        ESCALATIONS.with_label_values(&[channel]);
    }
    LazyLock::force(&LOOKUPS);
    LazyLock::force(&VERIFICATIONS);
    for channel in ["sms", "whatsapp", "conversations", "web"] {
        TEXT_TURN_LATENCY.with_label_values(&[channel]);
    }
    for outcome in [
        "completed",
        "escalated",
        "fallback",
        "failed",
        "replaced",
        "ended",
        "dropped",
    ] {
        CALLS_TOTAL.with_label_values(&[outcome]);
    }
    for action in [
        "end", "transfer", "instruct", "takeover", "reply", "release",
    ] {
        SUPERVISOR_ACTIONS.with_label_values(&[action]);
    }
    LazyLock::force(&CALL_OUTCOMES_BY_AGENT);
    for scope in [
        "sender",
        "ip",
        "concurrent_calls",
        "concurrent_conversations",
        "web_session",
        "web_ip",
        "draining",
    ] {
        RATE_LIMITED.with_label_values(&[scope]);
    }
    for scope in ["sender", "ip"] {
        RATE_LIMIT_FALLBACKS.with_label_values(&[scope]);
    }
    for reason in [
        "not_json",
        "malformed",
        "before_start",
        "wrong_stream",
        "bad_base64",
        "binary",
        "fragmented",
        "oversize",
    ] {
        BAD_FRAMES.with_label_values(&[reason]);
    }
    for direction in ["inbound", "outbound"] {
        HOP_LATENCY.with_label_values(&[direction]);
    }
    for tool in tools {
        for outcome in ["ok", "error"] {
            TOOL_CALLS.with_label_values(&[tool, outcome]);
        }
    }
}
