//! The emulator over real sockets on 127.0.0.1:0, driven by an awc client as the engine does.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::rt::time::timeout;
use actors::audio::g711;
use awc::error::{WsClientError, WsProtocolError};
use awc::ws::{CloseCode, Frame, Message};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

use super::voice::speech_duration_ms;
use super::*;

/// The client half of a WebSocket as awc returns it (its `Framed` type is not re-exported).
trait Socket:
    futures_util::Stream<Item = Result<Frame, WsProtocolError>>
    + futures_util::Sink<Message, Error = WsProtocolError>
    + Unpin
{
}

impl<T> Socket for T where
    T: futures_util::Stream<Item = Result<Frame, WsProtocolError>>
        + futures_util::Sink<Message, Error = WsProtocolError>
        + Unpin
{
}

/// 20 ms frames of a loud 300 Hz tone (about -12 dBFS) as samples at `rate`.
fn tone_frames(count: usize, rate: u32) -> Vec<Vec<i16>> {
    let per_frame = rate as usize / 50;
    (0..count)
        .map(|frame| {
            (0..per_frame)
                .map(|i| {
                    let n = (frame * per_frame + i) as f64;
                    (8000.0 * (std::f64::consts::TAU * 300.0 * n / f64::from(rate)).sin()) as i16
                })
                .collect()
        })
        .collect()
}

fn silence_frames(count: usize, rate: u32) -> Vec<Vec<i16>> {
    vec![vec![0; rate as usize / 50]; count]
}

fn ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| g711::encode(s)).collect()
}

fn pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn pcmu_session() -> Value {
    json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": "Be brief.",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad"}},
                "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
            },
        },
    })
}

async fn start(options: MockOptions) -> MockServer {
    MockServer::start("127.0.0.1:0", options).unwrap()
}

fn fast() -> MockOptions {
    MockOptions {
        pace: 50.0,
        ..MockOptions::default()
    }
}

/// Audio paced like the real server, so a test can act while a response still streams.
fn real_time() -> MockOptions {
    MockOptions {
        pace: 1.0,
        ..MockOptions::default()
    }
}

struct Client {
    socket: Box<dyn Socket>,
}

impl Client {
    fn url(server: &MockServer) -> String {
        format!("ws://{}/v1/realtime?model=gpt-realtime", server.addr)
    }

    /// Connects and consumes `session.created`.
    async fn connect(server: &MockServer) -> (Client, Value) {
        let (_, socket) = awc::Client::new()
            .ws(Client::url(server))
            .bearer_auth("sk-test")
            .connect()
            .await
            .unwrap();
        let mut client = Client {
            socket: Box::new(socket),
        };
        let created = client.next().await;
        assert_eq!(created["type"], "session.created");
        (client, created)
    }

    /// Connects and switches the session to μ-law in and out.
    async fn connect_pcmu(server: &MockServer) -> Client {
        let (mut client, _) = Client::connect(server).await;
        client.send(pcmu_session()).await;
        assert_eq!(client.next().await["type"], "session.updated");
        client
    }

    async fn send(&mut self, event: Value) {
        self.socket
            .send(Message::Text(event.to_string().into()))
            .await
            .unwrap();
    }

    /// Asks for a response with the session's defaults.
    async fn create_response(&mut self) {
        self.send(json!({"type": "response.create"})).await;
    }

    async fn append(&mut self, audio: &[u8]) {
        self.send(json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(audio)}))
            .await;
    }

    async fn frame(&mut self) -> Option<Frame> {
        timeout(Duration::from_secs(10), self.socket.next())
            .await
            .expect("no frame within 10 s")
            .map(|frame| frame.unwrap())
    }

    /// The next server event.
    async fn next(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some(Frame::Text(text)) => return serde_json::from_slice(&text).unwrap(),
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Events up to and including the first of type `kind`.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"] == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn audio_bytes(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| BASE64.decode(e["delta"].as_str().unwrap()).unwrap().len())
        .sum()
}

fn transcript(events: &[Value]) -> String {
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_audio_transcript.done")
        .unwrap();
    done["transcript"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn session_created_is_a_realistic_ga_session() {
    let server = start(fast()).await;
    let (_client, created) = Client::connect(&server).await;
    let session = &created["session"];
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["object"], "realtime.session");
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(
        session["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(
        session["audio"]["input"]["turn_detection"]["type"],
        "server_vad"
    );
    assert_eq!(session["audio"]["output"]["voice"], "marin");
    assert!(created["event_id"].as_str().unwrap().starts_with("event_"));
    assert_eq!(server.stats().connections, 1);
    server.stop().await;
}

#[actix_web::test]
async fn session_update_merges_and_is_reported_in_stats() {
    let server = start(fast()).await;
    let (mut client, _) = Client::connect(&server).await;
    client.send(pcmu_session()).await;
    let updated = client.next().await;
    assert_eq!(updated["type"], "session.updated");
    let session = &updated["session"];
    assert_eq!(session["instructions"], "Be brief.");
    assert_eq!(
        session["audio"]["input"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(session["audio"]["output"]["voice"], "alloy");
    // Defaults are filled in and untouched fields kept.
    assert_eq!(
        session["audio"]["input"]["turn_detection"]["silence_duration_ms"],
        500
    );
    assert_eq!(session["tool_choice"], "auto");
    let stats = server.stats();
    assert_eq!(stats.session_updates, 1);
    assert_eq!(stats.last_session.as_ref(), Some(session));
    server.stop().await;
}

#[actix_web::test]
async fn session_update_is_validated_like_the_ga_server() {
    let server = start(fast()).await;
    let (mut client, _) = Client::connect(&server).await;

    client
        .send(json!({"type": "session.update", "event_id": "evt_1", "session": {"voice": "ash"}}))
        .await;
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "unknown_parameter");
    assert_eq!(
        error["error"]["message"],
        "Unknown parameter: 'session.voice'."
    );

    client
        .send(json!({"type": "session.update", "event_id": "evt_2", "session": {"instructions": "x"}}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "missing_required_parameter");
    assert_eq!(
        error["error"]["message"],
        "Missing required parameter: 'session.type'."
    );
    assert_eq!(error["error"]["param"], "session.type");
    assert_eq!(error["error"]["event_id"], "evt_2");

    client
        .send(json!({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"format": "g711_ulaw"}}}}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "invalid_type");
    assert_eq!(
        error["error"]["message"],
        "Invalid type for 'session.audio.input.format': expected an object, but got a string instead."
    );

    // The socket is still usable and nothing changed.
    client.send(pcmu_session()).await;
    assert_eq!(client.next().await["type"], "session.updated");
    assert_eq!(server.stats().errors_sent, 3);
    assert_eq!(server.stats().session_updates, 1);
    server.stop().await;
}

#[actix_web::test]
async fn vad_turn_commits_audio_and_streams_a_full_response() {
    let server = start(fast()).await;
    let mut client = Client::connect_pcmu(&server).await;
    let frames = [
        silence_frames(25, 8000),
        tone_frames(50, 8000),
        silence_frames(50, 8000),
    ]
    .concat();
    for frame in &frames {
        client.append(&ulaw(frame)).await;
    }
    let started = client.next().await;
    assert_eq!(started["type"], "input_audio_buffer.speech_started");
    assert_eq!(
        started["audio_start_ms"], 200,
        "onset 500 ms minus 300 ms padding"
    );
    let item_id = started["item_id"].clone();
    let stopped = client.next().await;
    assert_eq!(stopped["type"], "input_audio_buffer.speech_stopped");
    assert_eq!(
        stopped["audio_end_ms"], 2000,
        "speech end 1500 ms plus 500 ms silence"
    );
    assert_eq!(stopped["item_id"], item_id);
    let committed = client.next().await;
    assert_eq!(committed["type"], "input_audio_buffer.committed");
    assert_eq!(committed["item_id"], item_id);
    let added = client.next().await;
    assert_eq!(added["type"], "conversation.item.added");
    assert_eq!(added["item"]["role"], "user");
    assert_eq!(added["item"]["content"][0]["type"], "input_audio");

    let events = client.until("response.done").await;
    let kinds = types(&events);
    let expected_order = [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ];
    let mut positions = expected_order.iter().map(|kind| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    });
    let mut last = positions.next().unwrap();
    for position in positions {
        assert!(position > last, "out of order: {kinds:?}");
        last = position;
    }
    let text = transcript(&events);
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, text);
    assert_eq!(
        audio_bytes(&events) as u64,
        speech_duration_ms(&text) * 8,
        "8 μ-law bytes per ms"
    );
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["transcript"],
        text.as_str()
    );
    assert_eq!(
        done["response"]["audio"]["output"]["format"]["type"],
        "audio/pcmu"
    );

    let stats = server.stats();
    assert_eq!(stats.appends, 125);
    assert_eq!(stats.audio_ms_received, 2500);
    assert_eq!((stats.responses_started, stats.responses_completed), (1, 1));
    server.stop().await;
}

#[actix_web::test]
async fn later_turns_report_what_was_heard_and_remembered() {
    let server = start(fast()).await;
    let mut client = Client::connect_pcmu(&server).await;
    for text in ["Hi", "I want to check my order"] {
        client
            .send(json!({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]}}))
            .await;
        let added = client.next().await;
        assert_eq!(added["type"], "conversation.item.added");
        assert!(added["item"]["id"].as_str().unwrap().starts_with("item_"));
        assert_eq!(client.next().await["type"], "conversation.item.done");
    }
    client.create_response().await;
    let events = client.until("response.done").await;
    assert_eq!(
        transcript(&events),
        "This is turn 0. I remember 2 earlier messages."
    );

    for frame in [tone_frames(40, 8000), silence_frames(30, 8000)].concat() {
        client.append(&ulaw(&frame)).await;
    }
    let events = client.until("response.done").await;
    // Speech from 0 (the padding cannot reach before the start) to 800 ms + 500 ms of silence.
    assert_eq!(
        transcript(&events),
        "This is turn 1. I heard 1.3 seconds of audio from you. I remember 2 earlier messages."
    );
    assert_eq!(server.stats().client_items_created, 2);
    server.stop().await;
}

#[actix_web::test]
async fn barge_in_cancels_the_streaming_response() {
    let server = start(real_time()).await;
    let mut client = Client::connect_pcmu(&server).await;
    client.create_response().await;
    client.until("response.output_audio.delta").await;
    for frame in tone_frames(5, 8000) {
        client.append(&ulaw(&frame)).await;
    }
    let events = client.until("response.done").await;
    let kinds = types(&events);
    let started = kinds
        .iter()
        .position(|k| *k == "input_audio_buffer.speech_started")
        .expect("speech_started");
    assert!(started < kinds.len() - 1);
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    let item = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item["item"]["status"], "incomplete");

    // No more audio for the cancelled response.
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    let after = client.next().await;
    assert_eq!(after["type"], "input_audio_buffer.cleared", "got {after}");
    let stats = server.stats();
    assert_eq!((stats.responses_started, stats.responses_cancelled), (1, 1));
    assert_eq!(stats.responses_completed, 0);
    server.stop().await;
}

#[actix_web::test]
async fn truncation_beyond_the_item_audio_is_refused_with_the_exact_message() {
    let server = start(real_time()).await;
    let mut client = Client::connect_pcmu(&server).await;
    client.create_response().await;
    let mut events = client.until("response.output_audio.delta").await;
    events.extend(client.until("response.output_audio.delta").await);
    client.send(json!({"type": "response.cancel"})).await;
    events.extend(client.until("response.done").await);
    assert_eq!(
        events.last().unwrap()["response"]["status_details"]["reason"],
        "client_cancelled"
    );
    let item_id = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap()["item"]["id"]
        .clone();
    let audio_ms = audio_bytes(&events) as u64 / 8;
    assert!(audio_ms >= 200, "{audio_ms}");

    client
        .send(
            json!({"type": "conversation.item.truncate", "event_id": "evt_t",
            "item_id": item_id, "content_index": 0, "audio_end_ms": 57_340}),
        )
        .await;
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["error"]["message"],
        format!("Audio content of {audio_ms}ms is already shorter than 57340ms")
    );
    assert_eq!(error["error"]["event_id"], "evt_t");

    client
        .send(json!({"type": "conversation.item.truncate",
            "item_id": item_id, "content_index": 0, "audio_end_ms": 150}))
        .await;
    let truncated = client.next().await;
    assert_eq!(truncated["type"], "conversation.item.truncated");
    assert_eq!(truncated["audio_end_ms"], 150);

    client
        .send(json!({"type": "conversation.item.truncate",
            "item_id": "item_missing", "content_index": 0, "audio_end_ms": 0}))
        .await;
    assert_eq!(client.next().await["type"], "error");

    let item_id = item_id.as_str().unwrap().to_owned();
    assert_eq!(
        server.stats().truncations,
        [
            TruncateRecord {
                item_id: item_id.clone(),
                audio_end_ms: 57_340,
                item_audio_ms: audio_ms,
                accepted: false
            },
            TruncateRecord {
                item_id,
                audio_end_ms: 150,
                item_audio_ms: audio_ms,
                accepted: true
            },
            TruncateRecord {
                item_id: "item_missing".into(),
                audio_end_ms: 0,
                item_audio_ms: 0,
                accepted: false
            },
        ]
    );
    server.stop().await;
}

#[actix_web::test]
async fn scripted_function_call_round_trip() {
    let script = Script::parse(
        r#"[{"say": "Welcome to Acme."},
            {"call": {"name": "lookup_order", "arguments": {"order_id": "1001"}}}]"#,
    )
    .unwrap();
    let server = start(MockOptions {
        script: Some(script),
        ..fast()
    })
    .await;
    let mut client = Client::connect_pcmu(&server).await;
    client.create_response().await;
    assert_eq!(
        transcript(&client.until("response.done").await),
        "Welcome to Acme."
    );

    client.create_response().await;
    let events = client.until("response.done").await;
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["name"], "lookup_order");
    let call_id = added["item"]["call_id"].as_str().unwrap().to_owned();
    let arguments: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"order_id":"1001"}"#);
    let args_done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(args_done["name"], "lookup_order");
    assert_eq!(args_done["arguments"], arguments.as_str());
    assert_eq!(args_done["call_id"], call_id.as_str());
    let item_done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item_done["item"]["status"], "completed");
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["type"],
        "function_call"
    );
    assert!(!types(&events).contains(&"response.output_audio.delta"));

    client
        .send(json!({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call_id,
            "output": "{\"status\":\"shipped\"}"}}))
        .await;
    assert_eq!(client.next().await["type"], "conversation.item.added");
    assert_eq!(client.next().await["type"], "conversation.item.done");
    client.create_response().await;
    let events = client.until("response.done").await;
    assert_eq!(
        transcript(&events),
        r#"Here is what I found: {"status":"shipped"}"#
    );

    let stats = server.stats();
    assert_eq!((stats.function_calls, stats.function_outputs), (1, 1));
    assert_eq!(stats.responses_completed, 3);
    server.stop().await;
}

#[actix_web::test]
async fn pcm24k_input_and_output_work() {
    let server = start(fast()).await;
    let (mut client, _) = Client::connect(&server).await;
    // The session starts in audio/pcm 24 kHz; only shorten the silence needed.
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}}),
        )
        .await;
    let updated = client.next().await;
    assert_eq!(
        updated["session"]["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    for frame in [tone_frames(30, 24_000), silence_frames(20, 24_000)].concat() {
        client.append(&pcm16(&frame)).await;
    }
    let started = client.next().await;
    assert_eq!(started["type"], "input_audio_buffer.speech_started");
    assert_eq!(started["audio_start_ms"], 0);
    let stopped = client.next().await;
    assert_eq!(stopped["audio_end_ms"], 900);
    let events = client.until("response.done").await;
    let text = transcript(&events);
    assert_eq!(
        audio_bytes(&events) as u64,
        speech_duration_ms(&text) * 48,
        "PCM16 at 24 kHz"
    );
    assert_eq!(server.stats().audio_ms_received, 1000);
    server.stop().await;
}

#[actix_web::test]
async fn manual_turns_without_vad() {
    let server = start(fast()).await;
    let (mut client, _) = Client::connect(&server).await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}, "turn_detection": null}}}}),
        )
        .await;
    let updated = client.next().await;
    assert_eq!(
        updated["session"]["audio"]["input"]["turn_detection"],
        Value::Null
    );

    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "input_audio_buffer_commit_empty");

    for frame in [tone_frames(50, 8000), silence_frames(50, 8000)].concat() {
        client.append(&ulaw(&frame)).await;
    }
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let committed = client.next().await;
    assert_eq!(
        committed["type"], "input_audio_buffer.committed",
        "no VAD events before"
    );
    client.until("conversation.item.done").await;
    client.create_response().await;
    let events = client.until("response.done").await;
    assert!(transcript(&events).starts_with("Hello!"));
    server.stop().await;
}

#[actix_web::test]
async fn protocol_errors_keep_the_socket_open() {
    let server = start(real_time()).await;
    let mut client = Client::connect_pcmu(&server).await;

    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "%%%not base64"}))
        .await;
    assert_eq!(client.next().await["error"]["param"], "audio");

    client
        .send(json!({"type": "session.frobnicate", "event_id": "evt_x"}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["event_id"], "evt_x");

    client.create_response().await;
    let created = client.until("response.created").await;
    let response_id = created.last().unwrap()["response"]["id"].clone();
    client.create_response().await;
    let error = client.until("error").await;
    let error = &error.last().unwrap()["error"];
    assert_eq!(error["code"], "conversation_already_has_active_response");
    assert_eq!(
        error["message"],
        format!(
            "Conversation already has an active response in progress: {}. Wait until the \
             response is finished before creating a new one.",
            response_id.as_str().unwrap()
        )
    );

    client
        .send(json!({"type": "conversation.item.create", "item": {
            "type": "message", "role": "assistant",
            "content": [{"type": "output_audio", "transcript": "hello"}]}}))
        .await;
    let error = client.until("error").await;
    assert_eq!(
        error.last().unwrap()["error"]["message"],
        "Missing required parameter: 'item.content[0].text'."
    );
    assert_eq!(server.stats().errors_sent, 4);
    server.stop().await;
}

#[actix_web::test]
async fn latency_delays_the_first_event_of_each_response() {
    let server = start(MockOptions {
        latency_ms: 300,
        ..fast()
    })
    .await;
    let mut client = Client::connect_pcmu(&server).await;
    let sent = Instant::now();
    client.create_response().await;
    assert_eq!(client.next().await["type"], "response.created");
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "{:?}",
        sent.elapsed()
    );
    server.stop().await;
}

#[actix_web::test]
async fn audio_is_paced_faster_than_real_time() {
    let server = start(MockOptions::default()).await;
    let mut client = Client::connect_pcmu(&server).await;
    let sent = Instant::now();
    client.create_response().await;
    let events = client.until("response.done").await;
    let elapsed = sent.elapsed();
    let audio = Duration::from_millis(speech_duration_ms(&transcript(&events)));
    // Pace 4: a quarter of the audio's length, give or take the last (unpaced) delta.
    assert!(
        elapsed >= audio / 4 - Duration::from_millis(100),
        "{elapsed:?} for {audio:?}"
    );
    assert!(elapsed < audio, "{elapsed:?} for {audio:?}");
    server.stop().await;
}

#[actix_web::test]
async fn drop_after_ms_closes_the_first_sockets_with_1011() {
    let server = start(MockOptions {
        drop_after_ms: Some(200),
        drop_limit: Some(1),
        ..fast()
    })
    .await;
    let (mut client, _) = Client::connect(&server).await;
    let opened = Instant::now();
    loop {
        match client.frame().await {
            Some(Frame::Close(reason)) => {
                assert_eq!(reason.map(|r| r.code), Some(CloseCode::Error));
                break;
            }
            Some(Frame::Text(_) | Frame::Ping(_) | Frame::Pong(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    assert!(opened.elapsed() >= Duration::from_millis(150));

    // Past the limit, sockets stay up.
    let (mut client, _) = Client::connect(&server).await;
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    client.send(pcmu_session()).await;
    assert_eq!(client.next().await["type"], "session.updated");
    server.stop().await;
}

#[actix_web::test]
async fn missing_or_invalid_bearer_is_refused_with_401() {
    let server = start(fast()).await;
    let url = Client::url(&server);
    let no_key = awc::Client::new().ws(&url).connect().await;
    assert!(
        matches!(
            no_key,
            Err(WsClientError::InvalidResponseStatus(
                StatusCode::UNAUTHORIZED
            ))
        ),
        "{:?}",
        no_key.err()
    );
    let bad_key = awc::Client::new()
        .ws(&url)
        .bearer_auth("sk-invalid")
        .connect()
        .await;
    assert!(matches!(
        bad_key,
        Err(WsClientError::InvalidResponseStatus(
            StatusCode::UNAUTHORIZED
        ))
    ));
    assert_eq!(server.stats().connections, 0);
    server.stop().await;
}

#[actix_web::test]
async fn beta_header_is_refused_with_close_4000() {
    let server = start(fast()).await;
    let (_, socket) = awc::Client::new()
        .ws(Client::url(&server))
        .bearer_auth("sk-test")
        .header("OpenAI-Beta", "realtime=v1")
        .connect()
        .await
        .unwrap();
    let mut client = Client {
        socket: Box::new(socket),
    };
    assert_eq!(
        client.next().await["error"]["code"],
        "beta_api_shape_disabled"
    );
    match client.frame().await {
        Some(Frame::Close(reason)) => {
            assert_eq!(reason.map(|r| r.code), Some(CloseCode::Other(4000)));
        }
        other => panic!("expected close, got {other:?}"),
    }
    server.stop().await;
}

#[actix_web::test]
async fn stats_are_served_as_json() {
    let server = start(fast()).await;
    let _client = Client::connect_pcmu(&server).await;
    let mut response = awc::Client::new()
        .get(format!("http://{}/mock/stats", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let stats: MockStats = response.json().await.unwrap();
    assert_eq!(stats, server.stats());
    assert_eq!(stats.connections, 1);
    assert_eq!(server.base_url(), format!("http://{}/v1", server.addr));
    server.stop().await;
}
