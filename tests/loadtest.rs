//! `switchboard loadtest` end to end, small: a few short calls against a local server (the
//! emulator and the server in this process) and against a server started apart, checking the
//! report's structure. No timing is asserted: the figures belong to BENCHMARKS.md.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use actors::config::AudioMode;
use support::{spawn_app, AppOptions};
use switchboard::sim::loadtest::{run, FramePhases, LoadOptions, LoadReport, Target, WireHop};

/// The hop recorder is process-wide: the two runs must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml")
}

fn options(target: Target, calls: usize) -> LoadOptions {
    LoadOptions {
        target,
        calls,
        ramp: Duration::from_millis(500),
        duration: Duration::from_secs(3),
        sms_rate: 0.0,
        auth_token: None,
        audio_mode: AudioMode::Pcmu,
        config: config(),
        caller_prompt: Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts/caller.wav"),
        threads: 2,
        emulator_workers: 2,
        server_pid: None,
        barge_in: true,
        nice: 0,
        emulator: None,
        outbound: false,
        frame_phases: FramePhases::Spread,
    }
}

/// What every report must show when all calls went through.
fn assert_calls_went_through(report: &LoadReport, calls: u64) {
    assert_eq!(report.calls.ok, calls, "{report}");
    assert_eq!(report.calls.failed, 0, "{report}");
    assert!(report.calls.failures.is_empty());
    assert!(report.calls.peak_concurrent >= 1 && report.calls.peak_concurrent <= calls);
    // Three seconds of 20 ms frames per call, give or take the last one.
    assert!(report.frames.sent >= calls * 140, "{report}");
    assert!(report.frames.media_received > 0, "the greeting was heard");
    assert_eq!(report.frames.marks_echoed, report.frames.marks_received);
    let generator = &report.generator;
    assert!(generator.cpu_seconds.is_some_and(|s| s > 0.0));
    assert!(generator.core_percent_per_call.is_some());
    // The text report renders every section.
    let text = report.to_string();
    for section in [
        "calls",
        "caller audio",
        "hop latency",
        "on-wire",
        "generator",
    ] {
        assert!(text.contains(section), "{section} missing from:\n{text}");
    }
}

/// A hop measured on the wire: tagged frames were read, no more than were written, and the
/// figures are ordered. Counts only: no latency is asserted.
fn assert_measured_on_the_wire(report: &LoadReport, hop: &WireHop, name: &str) {
    let latency = hop
        .latency
        .as_ref()
        .unwrap_or_else(|| panic!("{name} unmeasured ({:?}):\n{report}", hop.unmeasured));
    assert!(latency.count > 0, "no tagged {name} frame read:\n{report}");
    let sent = hop.tagged_sent.expect("the writer's count is known");
    assert!(
        latency.count <= sent,
        "{name}: read more than written:\n{report}"
    );
    let (p50, p90, p99, max) = (
        latency.p50_us.expect("p50"),
        latency.p90_us.expect("p90"),
        latency.p99_us.expect("p99"),
        latency.max_us.expect("max"),
    );
    assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{latency:?}");
    assert!(latency.over_15ms.is_some_and(|n| n <= latency.count));
}

#[test]
fn outbound_load_places_its_calls_through_post_calls() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut options = options(Target::Local, 3);
    options.outbound = true;
    options.auth_token = Some("loadtest-outbound".into());
    let report = run(&options).expect("the load runs");
    assert_calls_went_through(&report, 3);
    assert!(report.hops.is_some(), "the same report: {report}");
}

#[test]
fn local_load_reports_calls_frames_hops_and_costs() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let options = options(Target::Local, 5);
    let report = run(&options).expect("the load runs");
    assert_calls_went_through(&report, 5);
    assert_eq!(report.target, "local");
    assert_eq!(report.audio_mode.as_deref(), Some("pcmu"));

    let frames = &report.frames;
    let forwarded = frames.forwarded.expect("local runs count forwarded frames");
    assert!(forwarded > 0 && forwarded <= frames.sent, "{report}");
    assert_eq!(
        frames.model_received,
        Some(forwarded),
        "none lost in flight"
    );
    assert!(frames.media_forwarded.is_some_and(|n| n > 0));

    let hops = report.hops.as_ref().expect("local runs measure hops");
    for hop in [&hops.inbound, &hops.outbound] {
        assert!(hop.count > 0);
        let (p50, p95, p99, max) = (
            hop.p50_us.expect("p50"),
            hop.p95_us.expect("p95"),
            hop.p99_us.expect("p99"),
            hop.max_us.expect("max"),
        );
        assert!(
            0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
            "{hop:?}"
        );
    }
    assert_eq!(hops.inbound.count, forwarded);

    let wire = report
        .on_wire
        .as_ref()
        .expect("local runs measure on the wire");
    assert_measured_on_the_wire(&report, &wire.inbound, "caller→model");
    assert_eq!(wire.inbound.tagged_sent, Some(frames.sent));
    assert_measured_on_the_wire(&report, &wire.outbound, "model→caller");

    let server = report.server.as_ref().expect("server usage");
    assert!(server.cpu_seconds.is_some_and(|s| s > 0.0));
    let emulator = report.emulator.as_ref().expect("emulator stats");
    assert_eq!(emulator.connections, 5);
    assert!(emulator.usage.cpu_seconds.is_some_and(|s| s > 0.0));
    let process = report.process.as_ref().expect("process usage");
    assert!(process.peak_rss_mib.is_some() && process.rss_per_call_kib.is_some());

    let json = serde_json::to_value(&report).expect("serializes");
    for key in ["calls", "frames", "hops", "server", "emulator", "generator"] {
        assert!(json.get(key).is_some(), "{key} missing from the JSON");
    }
    assert!(json["hops"]["inbound"]["p99_us"].is_number());
    assert!(json["on_wire"]["inbound"]["latency"]["p99_us"].is_number());
    assert!(json["on_wire"]["outbound"]["latency"]["over_15ms_share"].is_number());
}

#[test]
fn pcm24k_load_says_why_it_cannot_measure_on_the_wire() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut options = options(Target::Local, 2);
    options.audio_mode = AudioMode::Pcm24k;
    let report = run(&options).expect("the load runs");
    assert_calls_went_through(&report, 2);
    let wire = report.on_wire.as_ref().expect("the on-wire section");
    for hop in [&wire.inbound, &wire.outbound] {
        assert!(hop.latency.is_none(), "{report}");
        assert!(hop
            .unmeasured
            .as_deref()
            .is_some_and(|why| why.contains("transcodes")));
    }
    assert!(report.hops.is_some(), "in-process figures still come");
}

#[test]
fn remote_load_reads_the_servers_metrics_and_process() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = spawn_app(AppOptions::default()).await;
            let emulator = format!("http://{}", app.mock.addr);
            tx.send((app.base.clone(), emulator)).expect("test waits");
            while stop_rx.try_recv().is_err() {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
            app.handle.stop(true).await;
        })
    });
    let (base, emulator) = rx.recv().expect("server started");
    let mut options = options(Target::Remote(base.clone()), 3);
    // The emulator's side of the on-wire figures comes from its /mock/stats.
    options.emulator = Some(emulator);
    // The server shares this process: a structure check of the /proc path, not a figure.
    options.server_pid = Some(std::process::id());
    let report = run(&options).expect("the load runs");
    stop_tx.send(()).expect("server thread alive");
    server.join().expect("server thread ends");

    assert_calls_went_through(&report, 3);
    assert_eq!(report.target, base);
    assert_eq!(report.frames.forwarded, None, "unknown from outside");
    let hops = report.hops.as_ref().expect("read from /metrics");
    assert!(hops.inbound.count > 0 && hops.outbound.count > 0);
    assert!(hops.inbound.p99_us.is_some());
    let wire = report.on_wire.as_ref().expect("the on-wire section");
    assert_measured_on_the_wire(&report, &wire.inbound, "caller→model");
    assert_measured_on_the_wire(&report, &wire.outbound, "model→caller");
    let server = report.server.as_ref().expect("--server-pid given");
    assert!(server.cpu_seconds.is_some() && server.peak_rss_mib.is_some());
    assert!(report.emulator.is_none() && report.process.is_none());
}

#[test]
fn sms_load_is_answered_inline_by_the_local_model() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut options = options(Target::Local, 0);
    options.sms_rate = 50.0;
    options.duration = Duration::from_secs(2);
    let report = run(&options).expect("the load runs");
    let sms = report.sms.as_ref().expect("an SMS report");
    assert_eq!(sms.sent, 100, "{report}");
    assert_eq!(
        (sms.answered, sms.empty, sms.failed),
        (100, 0, 0),
        "{report}"
    );
    assert!(sms.latency_ms.as_ref().is_some_and(|q| q.count == 100));
    // 200 senders for 100 messages: each is its sender's first (a new conversation).
    assert!(sms
        .first_message_latency_ms
        .as_ref()
        .is_some_and(|q| q.count == 100));
    assert!(sms.later_message_latency_ms.is_none(), "{report}");
    assert!(sms.server_cpu_us_per_message.is_some_and(|us| us > 0.0));
    assert_eq!(report.calls.ok + report.calls.failed, 0);
    assert!(report.to_string().contains("sms"));
}

#[test]
fn several_targets_share_the_calls_and_messages_in_turn() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    // Call i and message n go to node i % 2 and n % 2: what each node's store holds says
    // where they went.
    let calls = 4;
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let nodes = [
                spawn_app(AppOptions::default()).await,
                spawn_app(AppOptions::default()).await,
            ];
            tx.send(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>())
                .expect("test waits");
            while stop_rx.try_recv().is_err() {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
            // Per node: which calls it recorded and which senders it answered.
            let mut seen = Vec::new();
            for node in &nodes {
                let store = &node.engine.shared().store;
                let mut calls_here = Vec::new();
                for index in 0..calls {
                    let sid = format!("CA{index:032x}");
                    if store.get_call(&sid).await.expect("store").is_some() {
                        calls_here.push(index);
                    }
                }
                let mut senders_here = Vec::new();
                for n in 0..20u64 {
                    let sender = format!("+1666{n:07}");
                    if !store
                        .recent_turns(&sender, 4)
                        .await
                        .expect("store")
                        .is_empty()
                    {
                        senders_here.push(n);
                    }
                }
                seen.push((calls_here, senders_here));
                node.handle.stop(true).await;
            }
            seen
        })
    });
    let bases = rx.recv().expect("servers started");
    let mut options = options(Target::Cluster(bases.clone()), calls);
    options.sms_rate = 10.0;
    options.duration = Duration::from_secs(2);
    let report = run(&options).expect("the load runs");
    stop_tx.send(()).expect("server thread alive");
    let seen = server.join().expect("server thread ends");

    assert_eq!(report.target, bases.join(","));
    assert_eq!(report.calls.ok, calls as u64, "{report}");
    assert_eq!(report.calls.failed, 0, "{report}");
    let sms = report.sms.as_ref().expect("an SMS report");
    assert_eq!(
        (sms.sent, sms.answered, sms.failed),
        (20, 20, 0),
        "{report}"
    );
    assert_eq!(
        seen[0],
        (vec![0, 2], (0..20).step_by(2).collect::<Vec<_>>())
    );
    assert_eq!(
        seen[1],
        (vec![1, 3], (1..20).step_by(2).collect::<Vec<_>>())
    );
}
