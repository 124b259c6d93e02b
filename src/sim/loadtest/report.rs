//! The load report: what the calls saw, what the bridge added, what it cost. Serialized for
//! `--json`, rendered as text by `Display`.
//!
//! Pure: the tallies are built from the simulated calls' reports and the measured counters,
//! and tested without a server.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::sim::onwire::STALL;
use crate::sim::twilio::CallReport;
use actors::metrics::LatencySnapshot;

/// How many distinct failure reasons are listed; the rest are counted under "other".
const MAX_REASONS: usize = 8;
/// A call whose frames fall this far short of its length ended early.
const EARLY_END_SLACK_FRAMES: u64 = 10;

#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// `local`, or the server's origin.
    pub target: String,
    /// The local server's audio mode (a remote server's is its own business).
    pub audio_mode: Option<String>,
    pub calls_requested: usize,
    /// Nice value the generator (and a local emulator) ran at; 0 = the server's priority.
    pub load_nice: u8,
    /// `spread` or `aligned`: how the calls' 20 ms frame clocks were phased.
    pub frame_phases: &'static str,
    pub ramp_seconds: f64,
    pub duration_seconds: f64,
    /// From the first call's start to the last call's end.
    pub wall_seconds: f64,
    pub calls: Calls,
    pub frames: Frames,
    /// The bridge's own added latency per hop (SPEC §10, §13), as the engine measures it.
    pub hops: Option<Hops>,
    /// Each hop as an outside observer measures it: written by one process → read by the
    /// other ([`crate::sim::onwire`]).
    pub on_wire: Option<OnWire>,
    /// Caller speech end → first assistant audio, as the caller heard it.
    pub turn_latency_ms: Option<Quantiles>,
    /// Caller starts talking over assistant audio → Twilio `clear`.
    pub barge_in_latency_ms: Option<Quantiles>,
    pub server: Option<Usage>,
    pub emulator: Option<Emulator>,
    pub generator: Usage,
    /// Local mode: the whole process (server, emulator and generator together).
    pub process: Option<ProcessUsage>,
    pub sms: Option<super::sms::SmsReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Calls {
    pub ok: u64,
    pub failed: u64,
    /// Most calls on the line at once, as the generator counted them.
    pub peak_concurrent: u64,
    /// Sum of every call's time on the line: the denominator of the per-call costs.
    pub call_seconds: f64,
    pub failures: Vec<Failure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub reason: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Frames {
    /// Caller `media` frames the generator sent.
    pub sent: u64,
    /// Of those, sent more than 20 ms after their slot (the generator fell behind).
    pub late: u64,
    /// Caller frames the server wrote to the model as `input_audio_buffer.append` (local).
    pub forwarded: Option<u64>,
    /// Appends the emulator received (local); fewer than forwarded means frames were lost
    /// between the server and the model.
    pub model_received: Option<u64>,
    /// Model audio frames the server wrote to Twilio (local).
    pub media_forwarded: Option<u64>,
    /// Server `media` frames the callers received.
    pub media_received: u64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    pub marks_flushed_by_clear: u64,
    pub clears: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hops {
    /// How precise the figures are.
    pub resolution: String,
    pub inbound: HopStats,
    pub outbound: HopStats,
}

/// Microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HopStats {
    pub count: u64,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p95_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    /// Frames slower than 15 ms (a stall), where the resolution can tell: a frame in a
    /// histogram bucket reaching above 15 ms counts.
    pub over_15ms: Option<u64>,
    /// `over_15ms` as a share of `count` (0.01 = 1 %).
    pub over_15ms_share: Option<f64>,
}

impl HopStats {
    pub(super) fn from_snapshot(snapshot: &LatencySnapshot) -> HopStats {
        let us = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        let count = snapshot.count();
        let over = snapshot.count_over(STALL);
        HopStats {
            count,
            p50_us: us(snapshot.quantile(0.50)),
            p90_us: us(snapshot.quantile(0.90)),
            p95_us: us(snapshot.quantile(0.95)),
            p99_us: us(snapshot.quantile(0.99)),
            max_us: us(snapshot.max()),
            over_15ms: Some(over),
            over_15ms_share: (count > 0).then(|| over as f64 / count as f64),
        }
    }
}

/// Both hops on the wire: caller → model (`inbound`: the generator writes a tagged `media`
/// frame, the emulator reads it in an `input_audio_buffer.append`) and model → caller
/// (`outbound`: the emulator writes a tagged audio delta, the generator reads it in a
/// `media` frame).
#[derive(Clone, Debug, Serialize)]
pub struct OnWire {
    /// How the figures were taken.
    pub method: String,
    pub inbound: WireHop,
    pub outbound: WireHop,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WireHop {
    /// Tagged frames written, when the writer's count is known.
    pub tagged_sent: Option<u64>,
    /// The latency of the tagged frames read; `None` when this hop could not be measured.
    pub latency: Option<HopStats>,
    /// Why it could not be.
    pub unmeasured: Option<String>,
}

impl WireHop {
    pub(super) fn measured(tagged_sent: Option<u64>, latency: &LatencySnapshot) -> WireHop {
        WireHop {
            tagged_sent,
            latency: Some(HopStats::from_snapshot(latency)),
            unmeasured: None,
        }
    }

    pub(super) fn unmeasured(tagged_sent: Option<u64>, why: &str) -> WireHop {
        WireHop {
            tagged_sent,
            latency: None,
            unmeasured: Some(why.to_owned()),
        }
    }
}

/// Milliseconds, nearest rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    pub count: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Quantiles {
    pub(super) fn of(mut values: Vec<u64>) -> Option<Quantiles> {
        values.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least a share q at or below it.
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            values.get(rank - 1).copied()
        };
        Some(Quantiles {
            count: values.len() as u64,
            p50: at(0.50)?,
            p95: at(0.95)?,
            p99: at(0.99)?,
            max: *values.last()?,
        })
    }
}

/// What a part of the system cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub cpu_seconds: Option<f64>,
    /// CPU per second of call: 0.05 means a twentieth of a percent of one core per call.
    pub core_percent_per_call: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Resident memory added per concurrent call.
    pub rss_per_call_kib: Option<f64>,
    /// How the figures were obtained.
    pub source: String,
}

impl Usage {
    pub(super) fn cpu(cpu: Option<Duration>, call_seconds: f64, source: &str) -> Usage {
        let cpu_seconds = cpu.map(|d| d.as_secs_f64());
        Usage {
            cpu_seconds,
            core_percent_per_call: cpu_seconds.and_then(|s| percent_per_call(s, call_seconds)),
            peak_rss_mib: None,
            rss_per_call_kib: None,
            source: source.to_owned(),
        }
    }
}

pub(super) fn percent_per_call(cpu_seconds: f64, call_seconds: f64) -> Option<f64> {
    (call_seconds > 0.0).then(|| cpu_seconds / call_seconds * 100.0)
}

/// Resident memory added per concurrent call.
pub(super) fn rss_per_call_kib(baseline_kib: u64, peak_kib: u64, calls: u64) -> Option<f64> {
    (calls > 0).then(|| peak_kib.saturating_sub(baseline_kib) as f64 / calls as f64)
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Emulator {
    pub usage: Usage,
    pub connections: u64,
    pub appends: u64,
    pub audio_seconds_received: f64,
    pub responses_started: u64,
    pub responses_completed: u64,
    pub responses_cancelled: u64,
    pub truncations_accepted: u64,
    pub truncations_refused: u64,
    pub errors_sent: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessUsage {
    pub cpu_seconds: Option<f64>,
    /// CPU of threads claimed by no part (runtime helpers, threads that already exited).
    pub other_cpu_seconds: Option<f64>,
    pub other_threads: Vec<String>,
    pub baseline_rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Server, emulator and generator together: an upper bound for the server's share.
    pub rss_per_call_kib: Option<f64>,
}

/// How one simulated call went, as the generator thread hands it back.
#[derive(Debug)]
pub(super) struct CallResult {
    pub(super) outcome: Result<CallReport, String>,
    /// Dial to hang-up.
    pub(super) live: Duration,
    /// Frames the call should have sent had it lasted its full length.
    pub(super) expected_frames: u64,
}

/// Why a call counts as failed, if it does.
fn failure(result: &CallResult) -> Option<String> {
    let report = match &result.outcome {
        Err(why) => return Some(why.clone()),
        Ok(report) => report,
    };
    if let Some(error) = &report.error {
        return Some(error.clone());
    }
    if report.frames_sent + EARLY_END_SLACK_FRAMES < result.expected_frames {
        let code = report
            .close_code
            .map_or_else(|| "none".to_owned(), |c| c.to_string());
        return Some(format!("the server ended the call early (close {code})"));
    }
    if report.media_received == 0 {
        return Some("no assistant audio".to_owned());
    }
    None
}

/// What the generator's call reports add up to.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) calls: Calls,
    pub(super) frames: Frames,
    pub(super) turn_latencies_ms: Vec<u64>,
    pub(super) barge_in_latencies_ms: Vec<u64>,
}

pub(super) fn tally(results: &[CallResult]) -> Tally {
    let mut tally = Tally::default();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for result in results {
        tally.calls.call_seconds += result.live.as_secs_f64();
        match failure(result) {
            None => tally.calls.ok += 1,
            Some(reason) => {
                tally.calls.failed += 1;
                let known = reasons.len() < MAX_REASONS || reasons.contains_key(&reason);
                let key = if known { reason } else { "other".to_owned() };
                *reasons.entry(key).or_default() += 1;
            }
        }
        let Ok(report) = &result.outcome else {
            continue;
        };
        let frames = &mut tally.frames;
        frames.sent += report.frames_sent;
        frames.late += report.frames_late;
        frames.media_received += report.media_received;
        frames.marks_received += report.marks_received;
        frames.marks_echoed += report.marks_echoed;
        frames.marks_flushed_by_clear += report.marks_flushed_by_clear;
        frames.clears += report.clears_received;
        tally
            .turn_latencies_ms
            .extend_from_slice(&report.turn_latencies_ms);
        tally
            .barge_in_latencies_ms
            .extend_from_slice(&report.barge_in_latencies_ms);
    }
    tally.calls.failures = reasons
        .into_iter()
        .map(|(reason, count)| Failure { reason, count })
        .collect();
    tally
        .calls
        .failures
        .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    tally
}

/// `Some(x)` as text, `None` as "n/a".
fn opt<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

/// Microseconds as µs below a millisecond, else ms.
fn micros(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(us) if us < 1000.0 => format!("{us:.0} µs"),
        Some(us) => format!("{:.2} ms", us / 1000.0),
    }
}

/// One row of the hop table: `name`, then the figures or why there are none.
fn hop_line(f: &mut fmt::Formatter<'_>, name: &str, hop: Result<&HopStats, &str>) -> fmt::Result {
    let hop = match hop {
        Ok(hop) => hop,
        Err(why) => return writeln!(f, "  {name:<25} unmeasured: {why}"),
    };
    let over = match (hop.over_15ms, hop.over_15ms_share) {
        (Some(n), Some(share)) => format!("{:.3} % ({n})", share * 100.0),
        (Some(n), None) => format!("({n})"),
        _ => "n/a".to_owned(),
    };
    writeln!(
        f,
        "  {name:<25} {:>9} {:>9} {:>9} {:>9} {:>9}  {over}",
        hop.count,
        micros(hop.p50_us),
        micros(hop.p90_us),
        micros(hop.p99_us),
        micros(hop.max_us)
    )
}

fn wire_line(f: &mut fmt::Formatter<'_>, name: &str, hop: Option<&WireHop>) -> fmt::Result {
    match hop {
        None => hop_line(f, name, Err("on-wire measurement not run")),
        Some(WireHop {
            latency: Some(latency),
            ..
        }) => hop_line(f, name, Ok(latency)),
        Some(hop) => hop_line(
            f,
            name,
            Err(hop.unmeasured.as_deref().unwrap_or("no figures")),
        ),
    }
}

fn quantile_line(f: &mut fmt::Formatter<'_>, name: &str, q: Option<&Quantiles>) -> fmt::Result {
    match q {
        Some(q) => writeln!(
            f,
            "{name:<12} n={:<6} p50 {} ms  p95 {} ms  p99 {} ms  max {} ms",
            q.count, q.p50, q.p95, q.p99, q.max
        ),
        None => writeln!(f, "{name:<12} none"),
    }
}

fn usage_line(f: &mut fmt::Formatter<'_>, name: &str, usage: &Usage) -> fmt::Result {
    write!(
        f,
        "{name:<12} CPU {} s = {} % of a core per call",
        opt(usage.cpu_seconds.map(|s| format!("{s:.2}"))),
        opt(usage.core_percent_per_call.map(|p| format!("{p:.4}")))
    )?;
    if let Some(peak) = usage.peak_rss_mib {
        write!(f, "; peak RSS {peak:.1} MiB")?;
    }
    if let Some(per_call) = usage.rss_per_call_kib {
        write!(f, ", {per_call:.1} KiB per call")?;
    }
    writeln!(f, "  [{}]", usage.source)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = self
            .audio_mode
            .as_deref()
            .map_or_else(String::new, |m| format!(" ({m})"));
        let nice = match self.load_nice {
            0 => String::new(),
            n => format!(", load at nice {n}"),
        };
        writeln!(
            f,
            "switchboard loadtest: {} calls of {:.0} s, ramp {:.0} s, frame phases {}, against \
             {}{mode}{nice}; {:.1} s",
            self.calls_requested,
            self.duration_seconds,
            self.ramp_seconds,
            self.frame_phases,
            self.target,
            self.wall_seconds
        )?;
        let calls = &self.calls;
        writeln!(
            f,
            "calls        {} ok, {} failed; peak {} concurrent; {:.0} call-seconds",
            calls.ok, calls.failed, calls.peak_concurrent, calls.call_seconds
        )?;
        for failure in &calls.failures {
            writeln!(f, "  {:>6} × {}", failure.count, failure.reason)?;
        }
        let fr = &self.frames;
        writeln!(
            f,
            "caller audio {} frames sent ({} late); {} forwarded to the model, {} received by it",
            fr.sent,
            fr.late,
            opt(fr.forwarded),
            opt(fr.model_received)
        )?;
        writeln!(
            f,
            "model audio  {} frames forwarded to Twilio, {} received; marks {} sent, {} echoed \
             ({} flushed by {} clears)",
            opt(fr.media_forwarded),
            fr.media_received,
            fr.marks_received,
            fr.marks_echoed,
            fr.marks_flushed_by_clear,
            fr.clears
        )?;
        writeln!(
            f,
            "hop latency  {:<25} {:>9} {:>9} {:>9} {:>9} {:>9}  > 15 ms",
            "", "frames", "p50", "p90", "p99", "max"
        )?;
        let wire = self.on_wire.as_ref();
        let in_process = |pick: fn(&Hops) -> &HopStats| match &self.hops {
            Some(hops) => Ok(pick(hops)),
            None => Err("not reported by the server"),
        };
        wire_line(f, "caller→model on-wire", wire.map(|w| &w.inbound))?;
        hop_line(f, "             in-process", in_process(|h| &h.inbound))?;
        wire_line(f, "model→caller on-wire", wire.map(|w| &w.outbound))?;
        hop_line(f, "             in-process", in_process(|h| &h.outbound))?;
        if let Some(wire) = wire {
            writeln!(f, "  on-wire: {}", wire.method)?;
            for (name, hop) in [
                ("caller→model", &wire.inbound),
                ("model→caller", &wire.outbound),
            ] {
                if let (Some(sent), Some(latency)) = (hop.tagged_sent, &hop.latency) {
                    writeln!(
                        f,
                        "  {name}: {sent} tagged frames written, {} read",
                        latency.count
                    )?;
                }
            }
        }
        if let Some(hops) = &self.hops {
            writeln!(f, "  in-process (bridge-added): {}", hops.resolution)?;
        }
        quantile_line(f, "turns", self.turn_latency_ms.as_ref())?;
        quantile_line(f, "barge-ins", self.barge_in_latency_ms.as_ref())?;
        match &self.server {
            Some(server) => usage_line(f, "server", server)?,
            None => writeln!(f, "server       unmeasured (pass --server-pid)")?,
        }
        if let Some(emulator) = &self.emulator {
            usage_line(f, "emulator", &emulator.usage)?;
            writeln!(
                f,
                "  {} sockets, {} appends ({:.0} s of audio), responses {} started / {} done / \
                 {} cancelled, truncations {} accepted / {} refused, {} errors",
                emulator.connections,
                emulator.appends,
                emulator.audio_seconds_received,
                emulator.responses_started,
                emulator.responses_completed,
                emulator.responses_cancelled,
                emulator.truncations_accepted,
                emulator.truncations_refused,
                emulator.errors_sent
            )?;
        }
        usage_line(f, "generator", &self.generator)?;
        if let Some(sms) = &self.sms {
            writeln!(
                f,
                "sms          {} sent at {}/s from {} senders: {} answered ({:.0}/s), {} empty, \
                 {} failed, {} skipped behind; server {} µs CPU per message",
                sms.sent,
                sms.rate_requested,
                sms.senders,
                sms.answered,
                sms.answered_per_second,
                sms.empty,
                sms.failed,
                sms.behind,
                opt(sms.server_cpu_us_per_message.map(|us| format!("{us:.0}")))
            )?;
            quantile_line(f, "  latency", sms.latency_ms.as_ref())?;
            quantile_line(f, "    first", sms.first_message_latency_ms.as_ref())?;
            quantile_line(f, "    later", sms.later_message_latency_ms.as_ref())?;
        }
        if let Some(process) = &self.process {
            writeln!(
                f,
                "process      CPU {} s ({} s unattributed); RSS {} → {} MiB, {} KiB per call \
                 (all parts together)",
                opt(process.cpu_seconds.map(|s| format!("{s:.2}"))),
                opt(process.other_cpu_seconds.map(|s| format!("{s:.2}"))),
                opt(process.baseline_rss_mib.map(|m| format!("{m:.1}"))),
                opt(process.peak_rss_mib.map(|m| format!("{m:.1}"))),
                opt(process.rss_per_call_kib.map(|k| format!("{k:.1}")))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_call(frames: u64) -> CallResult {
        CallResult {
            outcome: Ok(CallReport {
                frames_sent: frames,
                frames_late: 1,
                media_received: 10,
                marks_received: 10,
                marks_echoed: 9,
                turn_latencies_ms: vec![300, 500],
                barge_in_latencies_ms: vec![90],
                close_code: Some(1000),
                ..CallReport::default()
            }),
            live: Duration::from_secs(2),
            expected_frames: 100,
        }
    }

    #[test]
    fn tally_adds_up_calls_frames_and_latencies() {
        let results = vec![
            ok_call(100),
            ok_call(95),
            CallResult {
                outcome: Err("voice webhook refused".into()),
                live: Duration::from_millis(500),
                expected_frames: 100,
            },
            ok_call(40),
        ];
        let tally = tally(&results);
        assert_eq!(tally.calls.ok, 2);
        assert_eq!(tally.calls.failed, 2);
        assert!((tally.calls.call_seconds - 6.5).abs() < 1e-9);
        assert_eq!(tally.frames.sent, 235);
        assert_eq!(tally.frames.late, 3);
        assert_eq!(tally.frames.marks_echoed, 27);
        assert_eq!(tally.turn_latencies_ms.len(), 6);
        let reasons: Vec<&str> = tally
            .calls
            .failures
            .iter()
            .map(|f| f.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "the server ended the call early (close 1000)",
                "voice webhook refused"
            ]
        );
    }

    #[test]
    fn a_call_without_assistant_audio_failed() {
        let mut silent = ok_call(100);
        if let Ok(report) = &mut silent.outcome {
            report.media_received = 0;
        }
        assert_eq!(failure(&silent).as_deref(), Some("no assistant audio"));
        assert_eq!(failure(&ok_call(100)), None);
    }

    #[test]
    fn failure_reasons_are_capped() {
        let results: Vec<CallResult> = (0..20)
            .map(|i| CallResult {
                outcome: Err(format!("reason {i}")),
                live: Duration::ZERO,
                expected_frames: 0,
            })
            .collect();
        let tally = tally(&results);
        assert_eq!(tally.calls.failures.len(), MAX_REASONS + 1);
        assert_eq!(tally.calls.failures[0].reason, "other");
        assert_eq!(tally.calls.failures[0].count, 20 - MAX_REASONS as u64);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        assert_eq!(Quantiles::of(Vec::new()), None);
        let q = Quantiles::of((1..=100).rev().collect()).expect("values");
        assert_eq!(
            (q.count, q.p50, q.p95, q.p99, q.max),
            (100, 50, 95, 99, 100)
        );
        let one = Quantiles::of(vec![7]).expect("one value");
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
    }

    #[test]
    fn per_call_costs() {
        assert_eq!(percent_per_call(1.0, 0.0), None);
        assert_eq!(percent_per_call(1.0, 2000.0), Some(0.05));
        assert_eq!(rss_per_call_kib(1000, 65_000, 1000), Some(64.0));
        assert_eq!(rss_per_call_kib(1000, 500, 10), Some(0.0));
        assert_eq!(rss_per_call_kib(1000, 2000, 0), None);
    }
}
