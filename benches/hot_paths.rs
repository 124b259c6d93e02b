//! Criterion benches of the per-frame hot paths (SPEC §13): what the bridge does for every
//! 20 ms caller frame and every model audio delta, plus signature checks and call-record
//! writes. Whole calls under load are measured by `switchboard loadtest` (BENCHMARKS.md).
//!
//! Kept short (`cargo bench` in about a minute on two cores): one second of warm-up and two of
//! measurement per bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use actors::audio::g711;
use actors::audio::resample::{Pcm24kToUlaw, UlawToPcm24k};
use actors::domain::ledger::PlaybackLedger;
use actors::domain::records::{AudioMode, CallOutcome, CallRecord};
use actors::domain::transcript::Role;
use actors::metrics::{hop_latency, Hop};
use actors::protocol::openai::realtime::{append_audio_json, parse_server_event};
use actors::protocol::twilio::media::{self, parse_inbound, Inbound};
use actors::protocol::twilio::signature;
use actors::store::{CallStore, SledStore};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;
const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

/// 20 ms of speech-like μ-law: a 440 Hz tone.
fn ulaw_frame() -> Vec<u8> {
    (0..160)
        .map(|n| {
            let phase = n as f64 * std::f64::consts::TAU * 440.0 / 8000.0;
            g711::encode((phase.sin() * 12_000.0) as i16)
        })
        .collect()
}

/// A Twilio `media` frame as it arrives on the socket.
fn media_frame() -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"42","media":{{"track":"inbound","chunk":"41","timestamp":"800","payload":"{}"}},"streamSid":"{STREAM_SID}"}}"#,
        B64.encode(ulaw_frame())
    )
}

/// A model audio delta of 100 ms in `pcmu` (the emulator's and a typical real chunk size).
fn delta_event(audio: &[u8]) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_4950","response_id":"resp_001","item_id":"item_008","output_index":0,"content_index":0,"delta":"{}"}}"#,
        B64.encode(audio)
    )
}

fn inbound(c: &mut Criterion) {
    let frame = media_frame();
    let mut group = c.benchmark_group("inbound");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse media frame", |b| {
        b.iter(|| parse_inbound(black_box(&frame)))
    });
    // What the Call does per caller frame in pcmu: parse, check the base64, build the append.
    let mut scratch = Vec::with_capacity(512);
    group.bench_function("forward pcmu (parse + append json)", |b| {
        b.iter(|| {
            let Ok(Inbound::Media(m)) = parse_inbound(black_box(&frame)) else {
                panic!("a media frame");
            };
            scratch.clear();
            B64.decode_vec(m.media.payload.as_bytes(), &mut scratch)
                .expect("valid base64");
            append_audio_json(&m.media.payload)
        })
    });
    group.finish();
}

fn outbound(c: &mut Criterion) {
    let ulaw: Vec<u8> = ulaw_frame().repeat(5);
    let event = delta_event(&ulaw);
    let mut group = c.benchmark_group("outbound");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse audio delta (100 ms)", |b| {
        b.iter(|| parse_server_event(black_box(&event)))
    });
    // What Realtime + Call do per delta in pcmu: parse, media frame, ledger, mark frame.
    let mut ledger = PlaybackLedger::new();
    let mut now_ms = 0;
    group.bench_function("forward pcmu (parse + media + mark)", |b| {
        b.iter(|| {
            let Ok(actors::protocol::openai::realtime::ServerEvent::ResponseOutputAudioDelta {
                item_id,
                delta,
                ..
            }) = parse_server_event(black_box(&event))
            else {
                panic!("an audio delta");
            };
            let media = media::media_message(STREAM_SID, &delta);
            now_ms += 100;
            let mark = ledger.on_audio_sent(&item_id, 100, now_ms);
            // Echo at once so the ledger stays small, as played audio does.
            ledger.on_mark(&mark, now_ms);
            (media, media::mark_message(STREAM_SID, &mark))
        })
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    let ulaw = ulaw_frame();
    let mut pcm = Vec::with_capacity(160);
    g711::decode_into(&ulaw, &mut pcm);
    let mut group = c.benchmark_group("g711 (20 ms frame)");
    group.throughput(Throughput::Elements(160));
    let mut decoded = Vec::with_capacity(160);
    group.bench_function("decode μ-law → PCM", |b| {
        b.iter(|| {
            decoded.clear();
            g711::decode_into(black_box(&ulaw), &mut decoded);
        })
    });
    let mut encoded = Vec::with_capacity(160);
    group.bench_function("encode PCM → μ-law", |b| {
        b.iter(|| {
            encoded.clear();
            g711::encode_into(black_box(&pcm), &mut encoded);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("resample (20 ms frame)");
    group.throughput(Throughput::Elements(1));
    let mut up = UlawToPcm24k::new().expect("resampler");
    group.bench_function("μ-law 8 kHz → PCM16 24 kHz", |b| {
        b.iter(|| up.process(black_box(&ulaw)).expect("converts"))
    });
    let pcm24k = up.process(&ulaw.repeat(2)).expect("converts");
    let mut down = Pcm24kToUlaw::new().expect("resampler");
    let chunk = pcm24k.get(..960).expect("20 ms of 24 kHz PCM16");
    group.bench_function("PCM16 24 kHz → μ-law 8 kHz", |b| {
        b.iter(|| down.process(black_box(chunk)).expect("converts"))
    });
    group.finish();
}

fn ledger(c: &mut Criterion) {
    let mut group = c.benchmark_group("mark ledger");
    group.throughput(Throughput::Elements(1));
    // Ten deltas in flight, as at 4× real time with a 100 ms chunk: send one, echo the oldest.
    group.bench_function("on_audio_sent + on_mark (10 in flight)", |b| {
        let mut ledger = PlaybackLedger::new();
        let mut marks = std::collections::VecDeque::new();
        let mut now_ms = 0;
        for _ in 0..10 {
            marks.push_back(ledger.on_audio_sent("item_1", 100, now_ms));
        }
        b.iter(|| {
            now_ms += 20;
            marks.push_back(ledger.on_audio_sent(black_box("item_1"), 100, now_ms));
            if let Some(oldest) = marks.pop_front() {
                ledger.on_mark(black_box(&oldest), now_ms);
            }
        })
    });
    group.finish();
}

fn webhooks(c: &mut Criterion) {
    let token = "12345";
    let url = "https://switchboard.example.com/twilio/voice";
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA00000000000000000000000000000001"),
        ("CallStatus", "ringing"),
        ("Called", "+18005550100"),
        ("Caller", "+14155550101"),
        ("Direction", "inbound"),
        ("From", "+14155550101"),
        ("To", "+18005550100"),
    ]
    .iter()
    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let valid = signature::compute(token, url, &params);
    let mut group = c.benchmark_group("webhooks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate signature (voice webhook)", |b| {
        b.iter(|| {
            assert!(signature::validate(
                token,
                black_box(url),
                &params,
                None,
                &valid
            ))
        })
    });
    group.finish();
}

/// A finished five-minute call: twenty turns of transcript, two tools.
fn call_record(n: u64) -> CallRecord {
    let mut record = CallRecord::new(
        format!("CA{n:032x}"),
        STREAM_SID,
        Some("+14155550101".to_owned()),
        "support",
        AudioMode::Pcmu,
        1_700_000_000_000,
    );
    for turn in 0..20u64 {
        let (role, text) = if turn % 2 == 0 {
            (
                Role::User,
                "Hi, I'd like to know where my order 1001 is, please.",
            )
        } else {
            (
                Role::Assistant,
                "Of course. Order 1001 shipped yesterday and should arrive on Thursday.",
            )
        };
        record
            .transcript
            .push(role, text, 1_700_000_000_000 + turn * 15_000);
    }
    record.tools_used = vec!["lookup_order".to_owned(), "lookup_order".to_owned()];
    record.finish(CallOutcome::Completed, 1_700_000_300_000);
    record
}

fn store(c: &mut Criterion) {
    let store = SledStore::temporary().expect("temporary sled");
    // The sled backend does its work when first polled: a current-thread runtime adds
    // nothing but the poll.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("put_call (20-turn record)", |b| {
        b.iter_batched(
            || {
                n += 1;
                call_record(n)
            },
            |record| runtime.block_on(store.put_call(&record)).expect("written"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn instrumentation(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    // The per-frame cost of the hop-latency instrumentation: one clock read and two records.
    group.bench_function("hop_latency observe", |b| {
        b.iter(|| hop_latency(Hop::Inbound, black_box(Instant::now())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = inbound, outbound, codecs, ledger, webhooks, store, instrumentation
}
criterion_main!(benches);
