//! Realtime *transcription* sessions (`GET /v1/realtime?intent=transcription`,
//! protocols-more.md §12): speech-to-text only, no responses. The client configures the
//! session with `session.update` (`session.type = "transcription"`), appends audio, and gets
//! `input_audio_buffer.speech_started/stopped/committed` from the energy VAD (or commits
//! itself when `turn_detection` is null), then
//! `conversation.item.input_audio_transcription.delta` and `.completed` per committed turn.
//! The emulator cannot recognise words, so a transcript says how much audio it heard.
//!
//! [`TranscriptionSession`] is the pure protocol; [`TranscriptionSocket`] the socket actor.

use actix::{Actor, ActorContext, StreamHandler};
use actix_web::web;
use actix_web_actors::ws;
use base64::Engine as _;
use serde_json::{json, Value};

use super::vad::{Vad, VadConfig, VadEvent};
use super::Shared;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;
/// Largest client frame accepted (as for conversation sessions).
pub(super) const MAX_FRAME_BYTES: usize = 1 << 20;
/// The per-event cap on `input_audio_buffer.append` (§12.3).
const MAX_APPEND_BYTES: usize = 15 * 1024 * 1024;

/// The input audio format of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// G.711 μ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz: accepted; its energy is read as μ-law's (close enough for the
    /// VAD, which is all the emulator does with it).
    Pcma,
    /// PCM16 little-endian, 24 kHz.
    Pcm24k,
}

impl Format {
    fn json(self) -> Value {
        match self {
            Format::Pcmu => json!({"type": "audio/pcmu"}),
            Format::Pcma => json!({"type": "audio/pcma"}),
            Format::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        }
    }

    fn rate(self) -> u32 {
        match self {
            Format::Pcmu | Format::Pcma => 8000,
            Format::Pcm24k => 24000,
        }
    }
}

/// One transcription session's protocol state.
pub(super) struct TranscriptionSession {
    id: String,
    expires_at: u64,
    events: u64,
    items: u64,
    format: Format,
    transcription: Value,
    /// `None`: turn detection off, the client commits.
    vad: Option<(Vad, Value)>,
    /// The item of the utterance being heard (server VAD) or buffered (manual commit).
    current_item: Option<String>,
    previous_item: Option<String>,
    /// Audio appended since the last commit, ms.
    buffered_ms: u64,
    samples: Vec<i16>,
}

impl TranscriptionSession {
    /// A new session and its `session.created`.
    pub(super) fn open(number: u64, expires_at: u64) -> (Self, Vec<String>) {
        let mut session = TranscriptionSession {
            id: format!("sess_transcription_{number}"),
            expires_at,
            events: 0,
            items: 0,
            format: Format::Pcm24k,
            transcription: Value::Null,
            vad: Some((
                Vad::new(VadConfig::default()),
                json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}),
            )),
            current_item: None,
            previous_item: None,
            buffered_ms: 0,
            samples: Vec::new(),
        };
        let created = session.event("session.created", json!({"session": session.json()}));
        (session, vec![created])
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "realtime.transcription_session",
            "type": "transcription",
            "expires_at": self.expires_at,
            "include": [],
            "audio": {"input": {
                "format": self.format.json(),
                "transcription": self.transcription,
                "turn_detection": self.vad.as_ref().map_or(Value::Null, |(_, json)| json.clone()),
                "noise_reduction": null,
            }},
        })
    }

    fn event(&mut self, kind: &str, fields: Value) -> String {
        self.events += 1;
        let mut event = json!({"type": kind, "event_id": format!("event_t{}", self.events)});
        if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
            event.extend(fields);
        }
        event.to_string()
    }

    fn error(&mut self, code: &str, message: &str, param: Option<&str>) -> String {
        self.event(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": code, "message": message,
                             "param": param, "event_id": null}}),
        )
    }

    /// A client frame; the server events it causes.
    pub(super) fn on_text(&mut self, text: &str) -> Vec<String> {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            return vec![self.error("invalid_json", "The event is not valid JSON.", None)];
        };
        match event["type"].as_str() {
            Some("session.update") => self.update(&event["session"]),
            Some("input_audio_buffer.append") => self.append(&event["audio"]),
            Some("input_audio_buffer.commit") => self.commit(),
            Some("input_audio_buffer.clear") => {
                self.buffered_ms = 0;
                self.current_item = None;
                if let Some((vad, _)) = &mut self.vad {
                    vad.reset();
                }
                vec![self.event("input_audio_buffer.cleared", json!({}))]
            }
            Some(other) => {
                let message =
                    format!("Invalid value: '{other}'. Not supported in a transcription session.");
                vec![self.error("invalid_value", &message, Some("type"))]
            }
            None => vec![self.error("invalid_event", "The 'type' field is missing.", None)],
        }
    }

    fn update(&mut self, session: &Value) -> Vec<String> {
        if session["type"] != "transcription" {
            return vec![self.error(
                "invalid_value",
                "A transcription session takes session.type 'transcription'.",
                Some("session.type"),
            )];
        }
        let input = &session["audio"]["input"];
        let format = match (
            input["format"]["type"].as_str(),
            input["format"]["rate"].as_u64(),
        ) {
            (None, _) => self.format,
            (Some("audio/pcmu"), _) => Format::Pcmu,
            (Some("audio/pcma"), _) => Format::Pcma,
            (Some("audio/pcm"), None | Some(24000)) => Format::Pcm24k,
            (Some("audio/pcm"), Some(_)) => {
                return vec![self.error(
                    "invalid_value",
                    "Invalid 'session.audio.input.format.rate': Expected a value >= 24000.",
                    Some("session.audio.input.format.rate"),
                )]
            }
            (Some(_), _) => {
                return vec![self.error(
                    "invalid_value",
                    "Invalid 'session.audio.input.format.type'.",
                    Some("session.audio.input.format.type"),
                )]
            }
        };
        self.format = format;
        if input.get("transcription").is_some() {
            self.transcription = input["transcription"].clone();
        }
        match input.get("turn_detection") {
            None => {}
            Some(Value::Null) => self.vad = None,
            Some(detection) => {
                let config = VadConfig {
                    threshold: detection["threshold"].as_f64().unwrap_or(0.5),
                    prefix_padding_ms: detection["prefix_padding_ms"].as_u64().unwrap_or(300),
                    silence_duration_ms: detection["silence_duration_ms"].as_u64().unwrap_or(500),
                };
                let mut shown = detection.clone();
                if let Value::Object(fields) = &mut shown {
                    fields.insert("threshold".into(), json!(config.threshold));
                    fields.insert("prefix_padding_ms".into(), json!(config.prefix_padding_ms));
                    fields.insert(
                        "silence_duration_ms".into(),
                        json!(config.silence_duration_ms),
                    );
                }
                match &mut self.vad {
                    Some((vad, json)) => {
                        vad.set_config(config);
                        *json = shown;
                    }
                    None => self.vad = Some((Vad::new(config), shown)),
                }
            }
        }
        let session = self.json();
        vec![self.event("session.updated", json!({"session": session}))]
    }

    fn append(&mut self, audio: &Value) -> Vec<String> {
        let Some(audio) = audio.as_str() else {
            return vec![self.error(
                "missing_required_parameter",
                "Missing required parameter: 'audio'.",
                Some("audio"),
            )];
        };
        if audio.len() > MAX_APPEND_BYTES {
            return vec![self.error("invalid_value", "The audio is too large.", Some("audio"))];
        }
        let Ok(bytes) = B64.decode(audio) else {
            return vec![self.error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio.",
                Some("audio"),
            )];
        };
        self.samples.clear();
        match self.format {
            Format::Pcmu | Format::Pcma => {
                actors::audio::g711::decode_into(&bytes, &mut self.samples)
            }
            Format::Pcm24k => self.samples.extend(
                bytes
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
            ),
        }
        let rate = self.format.rate();
        self.buffered_ms += self.samples.len() as u64 * 1000 / u64::from(rate);
        let mut out = Vec::new();
        let mut found = Vec::new();
        let samples = std::mem::take(&mut self.samples);
        if let Some((vad, _)) = &mut self.vad {
            vad.push(&samples, rate, &mut found);
        }
        self.samples = samples;
        for change in found {
            match change {
                VadEvent::SpeechStarted { audio_start_ms } => {
                    let item = self.next_item();
                    self.buffered_ms = 0;
                    out.push(self.event(
                        "input_audio_buffer.speech_started",
                        json!({"audio_start_ms": audio_start_ms, "item_id": item}),
                    ));
                }
                VadEvent::SpeechStopped { audio_end_ms } => {
                    let Some(item) = self.current_item.clone() else {
                        continue;
                    };
                    out.push(self.event(
                        "input_audio_buffer.speech_stopped",
                        json!({"audio_end_ms": audio_end_ms, "item_id": item}),
                    ));
                    out.extend(self.committed(item));
                }
            }
        }
        out
    }

    fn next_item(&mut self) -> String {
        self.items += 1;
        let item = format!("item_t{}", self.items);
        self.current_item = Some(item.clone());
        item
    }

    fn commit(&mut self) -> Vec<String> {
        if self.buffered_ms == 0 {
            return vec![self.error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small.",
                None,
            )];
        }
        let item = match self.current_item.clone() {
            Some(item) => item,
            None => self.next_item(),
        };
        if let Some((vad, _)) = &mut self.vad {
            vad.reset();
        }
        self.committed(item)
    }

    /// `committed`, then the turn's transcript (one delta, then completed).
    fn committed(&mut self, item: String) -> Vec<String> {
        let heard_ms = std::mem::take(&mut self.buffered_ms);
        self.current_item = None;
        let previous = self.previous_item.replace(item.clone());
        let transcript = format!(
            "[{}.{} seconds of audio]",
            heard_ms / 1000,
            heard_ms % 1000 / 100
        );
        vec![
            self.event(
                "input_audio_buffer.committed",
                json!({"item_id": item, "previous_item_id": previous}),
            ),
            self.event(
                "conversation.item.input_audio_transcription.delta",
                json!({"item_id": item, "content_index": 0, "delta": transcript}),
            ),
            self.event(
                "conversation.item.input_audio_transcription.completed",
                json!({"item_id": item, "content_index": 0, "transcript": transcript,
                       "usage": {"type": "duration", "seconds": heard_ms as f64 / 1000.0}}),
            ),
        ]
    }
}

/// One emulated transcription socket.
pub(super) struct TranscriptionSocket {
    pub(super) shared: web::Data<Shared>,
    pub(super) expires_at: u64,
    pub(super) session: Option<TranscriptionSession>,
}

impl Actor for TranscriptionSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let mut number = 0;
        self.shared.stats.update(|stats| {
            stats.connections += 1;
            stats.transcription_sessions += 1;
            number = stats.connections;
        });
        let (session, events) = TranscriptionSession::open(number, self.expires_at);
        for event in events {
            ctx.text(event);
        }
        self.session = Some(session);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for TranscriptionSocket {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let Some(session) = &mut self.session else {
            return;
        };
        match message {
            Ok(ws::Message::Text(text)) => {
                for event in session.on_text(&text) {
                    ctx.text(event);
                }
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(events: &[String]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    fn append(session: &mut TranscriptionSession, ulaw: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for frame in ulaw.chunks(160) {
            let event = json!({"type": "input_audio_buffer.append", "audio": B64.encode(frame)});
            out.extend(session.on_text(&event.to_string()));
        }
        out
    }

    #[test]
    fn a_configured_session_transcribes_each_utterance_the_vad_commits() {
        let (mut session, created) = TranscriptionSession::open(1, 99);
        let created: Value = serde_json::from_str(&created[0]).unwrap();
        assert_eq!(created["type"], "session.created");
        assert_eq!(created["session"]["type"], "transcription");
        assert_eq!(
            created["session"]["object"],
            "realtime.transcription_session"
        );
        let updated = session.on_text(
            &json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-live-transcribe", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}})
            .to_string(),
        );
        let updated: Value = serde_json::from_str(&updated[0]).unwrap();
        assert_eq!(updated["type"], "session.updated");
        assert_eq!(
            updated["session"]["audio"]["input"]["format"]["type"],
            "audio/pcmu"
        );
        assert_eq!(
            updated["session"]["audio"]["input"]["transcription"]["model"],
            "gpt-live-transcribe"
        );
        let speech = crate::sim::twilio::sine_ulaw(320.0, 1000, 0.6);
        let silence = crate::sim::twilio::silence_ulaw(1000);
        let mut events = append(&mut session, &speech);
        events.extend(append(&mut session, &silence));
        assert_eq!(
            types(&events),
            [
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.completed",
            ]
        );
        let completed: Value = serde_json::from_str(&events[4]).unwrap();
        assert!(completed["transcript"]
            .as_str()
            .unwrap()
            .contains("seconds of audio"));
        let committed: Value = serde_json::from_str(&events[2]).unwrap();
        assert_eq!(completed["item_id"], committed["item_id"]);
    }

    #[test]
    fn manual_commits_wrong_session_types_and_bad_audio_are_errors_or_turns() {
        let (mut session, _) = TranscriptionSession::open(1, 99);
        let error = session.on_text(
            &json!({"type": "session.update", "session": {"type": "realtime"}}).to_string(),
        );
        assert_eq!(types(&error), ["error"]);
        let error = session.on_text(
            &json!({"type": "session.update", "session": {"type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}}}})
            .to_string(),
        );
        assert!(error[0].contains("24000"), "{error:?}");
        session.on_text(
            &json!({"type": "session.update", "session": {"type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": null}}}})
            .to_string(),
        );
        let empty = session.on_text(r#"{"type":"input_audio_buffer.commit"}"#);
        assert!(empty[0].contains("input_audio_buffer_commit_empty"));
        append(
            &mut session,
            &crate::sim::twilio::sine_ulaw(320.0, 400, 0.6),
        );
        let turn = session.on_text(r#"{"type":"input_audio_buffer.commit"}"#);
        assert_eq!(types(&turn)[0], "input_audio_buffer.committed");
        assert!(turn[2].contains("0.4 seconds of audio"), "{turn:?}");
        let bad = session.on_text(r#"{"type":"input_audio_buffer.append","audio":"%%%"}"#);
        assert_eq!(types(&bad), ["error"]);
        let response = session.on_text(r#"{"type":"response.create"}"#);
        assert_eq!(types(&response), ["error"]);
    }
}
