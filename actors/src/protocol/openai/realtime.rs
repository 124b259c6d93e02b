//! OpenAI Realtime events, GA interface only (`session.type`, `response.output_audio.*`,
//! format objects such as `{"type":"audio/pcmu"}`); the beta shape is refused by the
//! server, so beta-only event names parse as [`ServerEvent::Unknown`].
//!
//! Both directions serialize and deserialize: the `Realtime` actor sends [`ClientEvent`]s
//! and reads [`ServerEvent`]s, and the mock OpenAI server does the reverse with the same
//! types. Unknown event types become `Unknown`; nested objects keep fields this module does
//! not model in an `extra` map, so what is read can be written back unchanged.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields of a nested object that this module does not model, kept verbatim.
pub type Extra = Map<String, Value>;

/// An event the client sends on the Realtime socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// Updates only the fields present; the server answers `session.updated`.
    #[serde(rename = "session.update")]
    SessionUpdate {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Session,
    },
    /// Base64 audio in the session's input format. The per-frame path uses
    /// [`append_audio_json`] instead of building this.
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        audio: String,
    },
    /// Only needed without server VAD.
    #[serde(rename = "input_audio_buffer.commit")]
    InputAudioBufferCommit {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    #[serde(rename = "input_audio_buffer.clear")]
    InputAudioBufferClear {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// Appends when absent; `root` inserts at the beginning.
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_item_id: Option<String>,
        item: Item,
    },
    /// Cuts an assistant item's audio at what the caller actually heard (barge-in).
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
    },
    #[serde(rename = "conversation.item.delete")]
    ConversationItemDelete {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
    },
    #[serde(rename = "conversation.item.retrieve")]
    ConversationItemRetrieve {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
    },
    /// Needed after every tool output; only one response may be active at a time.
    #[serde(rename = "response.create")]
    ResponseCreate {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<ResponseConfig>,
    },
    /// Cancels the in-progress response when `response_id` is absent.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        response_id: Option<String>,
    },
    /// WebRTC/SIP only; over WebSocket the client (Twilio) owns the playback buffer.
    #[serde(rename = "output_audio_buffer.clear")]
    OutputAudioBufferClear {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
}

impl ClientEvent {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        to_json_text(self)
    }
}

/// `serde_json` only fails on non-string map keys or a failing custom `Serialize`; these
/// types have neither, so the empty fallback is unreachable.
fn to_json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `{"type":"input_audio_buffer.append","audio":…}` without building a [`ClientEvent`] or
/// copying the audio: this runs for every 20 ms of caller audio.
pub fn append_audio_json(audio_b64: &str) -> String {
    #[derive(Serialize)]
    struct Append<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        audio: &'a str,
    }
    to_json_text(&Append {
        kind: "input_audio_buffer.append",
        audio: audio_b64,
    })
}

/// [`append_audio_json`] appended to `out`, without serde for the usual case: base64 needs no
/// JSON escaping, so the audio is copied as it is (anything else is escaped by serde). The
/// `Call` writes each frame's event into one reused buffer.
pub fn write_append_audio_json(out: &mut impl bytes::BufMut, audio_b64: &str) {
    const HEAD: &[u8] = br#"{"type":"input_audio_buffer.append","audio":"#;
    out.put_slice(HEAD);
    // Every byte is checked, without an early exit, so the check runs as vector code.
    if audio_b64.bytes().fold(true, |ok, b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/') | (b == b'='))
    }) {
        out.put_u8(b'"');
        out.put_slice(audio_b64.as_bytes());
        out.put_u8(b'"');
    } else {
        // Serializing a `&str` into a growable buffer cannot fail.
        let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), audio_b64);
    }
    out.put_u8(b'}');
}

/// Parses a client event (for the mock server).
pub fn parse_client_event(text: &str) -> Result<ClientEvent, serde_json::Error> {
    serde_json::from_str(text)
}

/// The session configuration sent in `session.update`. Absent fields are left unchanged by
/// the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Required by the GA interface.
    #[serde(rename = "type", default)]
    pub kind: SessionKind,
    /// Must equal the model of the socket URL; it cannot change mid-session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `["audio"]` or `["text"]`; not both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// An empty list clears the tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","name":…}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    #[default]
    Realtime,
    Transcription,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
}

/// The three `Value` fields are nullable on the wire, and `null` means "turn it off" (no
/// VAD, no transcription…): `None` leaves the setting alone, `Some(Value::Null)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// `{"type":"server_vad",…}` or `{"type":"semantic_vad",…}`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub turn_detection: Option<Value>,
    /// `{"model":…,"language":…,"prompt":…}`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub transcription: Option<Value>,
    /// `{"type":"near_field"|"far_field"}`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub noise_reduction: Option<Value>,
}

/// A field that is present, `null` included (`Option<Value>` alone reads `null` as absent).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Can only change before the session's first audio output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// 0.25–1.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// Audio encodings. `Pcmu` (G.711 μ-law 8 kHz) lets Twilio payloads pass through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AudioFormat {
    #[serde(rename = "audio/pcmu")]
    Pcmu,
    #[serde(rename = "audio/pcma")]
    Pcma,
    /// 16-bit little-endian PCM; the API only supports 24 kHz.
    #[serde(rename = "audio/pcm")]
    Pcm {
        #[serde(default = "default_pcm_rate")]
        rate: u32,
    },
}

fn default_pcm_rate() -> u32 {
    24_000
}

/// A function the model may call (`"type":"function"` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "function")]
pub struct Tool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// A conversation item: a message, a function call, or a function call's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: ItemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentPart>>,
    /// Links a `function_call` to its `function_call_output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The function's name (`function_call`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON-encoded arguments (`function_call`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Free text, usually JSON (`function_call_output`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `completed`, `incomplete` or `in_progress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Message,
    FunctionCall,
    FunctionCallOutput,
    /// `mcp_call`, `item_reference`, …: kept verbatim.
    #[serde(untagged)]
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    #[serde(untagged)]
    Other(String),
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: ContentKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Base64 audio; absent from `*.done` events, which omit audio bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    /// What the audio says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Content part types. The GA docs themselves mix `output_text`/`output_audio` with the
/// beta spellings `text`/`audio`, so both are accepted and kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    InputText,
    InputAudio,
    InputImage,
    OutputText,
    OutputAudio,
    Text,
    Audio,
    #[serde(untagged)]
    Other(String),
}

impl ContentKind {
    pub fn is_audio(&self) -> bool {
        matches!(self, Self::InputAudio | Self::OutputAudio | Self::Audio)
    }

    pub fn is_text(&self) -> bool {
        matches!(self, Self::InputText | Self::OutputText | Self::Text)
    }
}

impl ContentPart {
    fn text(kind: ContentKind, text: &str) -> Self {
        Self {
            kind,
            text: Some(text.to_owned()),
            audio: None,
            transcript: None,
            extra: Extra::new(),
        }
    }
}

impl Item {
    fn message(role: Role, part: ContentPart) -> Self {
        Self {
            id: None,
            kind: ItemKind::Message,
            role: Some(role),
            content: Some(vec![part]),
            call_id: None,
            name: None,
            arguments: None,
            output: None,
            status: None,
            extra: Extra::new(),
        }
    }

    /// A user text message (`input_text`).
    pub fn user_text(text: &str) -> Self {
        Self::message(Role::User, ContentPart::text(ContentKind::InputText, text))
    }

    /// An assistant text message (`output_text`): how a transcript is replayed after a
    /// reconnect, since assistant audio cannot be re-created.
    pub fn assistant_text(text: &str) -> Self {
        Self::message(
            Role::Assistant,
            ContentPart::text(ContentKind::OutputText, text),
        )
    }

    /// A system message (`input_text`).
    pub fn system_text(text: &str) -> Self {
        Self::message(
            Role::System,
            ContentPart::text(ContentKind::InputText, text),
        )
    }

    /// A tool's result for the function call `call_id`.
    pub fn function_call_output(call_id: &str, output: &str) -> Self {
        Self {
            id: None,
            kind: ItemKind::FunctionCallOutput,
            role: None,
            content: None,
            call_id: Some(call_id.to_owned()),
            name: None,
            arguments: None,
            output: Some(output.to_owned()),
            status: None,
            extra: Extra::new(),
        }
    }

    /// `(call_id, name, arguments)` of a finished function call: the cue to run a tool.
    /// `None` for other items and for calls cut short (`status: "incomplete"`, e.g. a
    /// cancelled response), whose arguments may be partial.
    pub fn function_call(self) -> Option<(String, String, String)> {
        let finished = matches!(self.status.as_deref(), None | Some("completed"));
        if self.kind != ItemKind::FunctionCall || !finished {
            return None;
        }
        Some((
            self.call_id?,
            self.name?,
            self.arguments.unwrap_or_default(),
        ))
    }

    /// The first text or transcript in the content: what was said, whichever the modality.
    pub fn text(&self) -> Option<&str> {
        self.content
            .iter()
            .flatten()
            .find_map(|part| part.text.as_deref().or(part.transcript.as_deref()))
    }
}

/// Per-response overrides for `response.create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `conversation`, `metadata`, `input`, …
    #[serde(flatten)]
    pub extra: Extra,
}

/// An event the server sends on the Realtime socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    /// Most errors leave the session open and usable.
    #[serde(rename = "error")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        error: ApiError,
    },
    /// The first event on a socket: the session is ready for `session.update`.
    #[serde(rename = "session.created")]
    SessionCreated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Value,
    },
    /// The full effective configuration after a `session.update`.
    #[serde(rename = "session.updated")]
    SessionUpdated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Value,
    },
    /// The caller started speaking: the barge-in trigger. `audio_start_ms` is on the input
    /// timeline, not a playback position.
    #[serde(rename = "input_audio_buffer.speech_started")]
    InputAudioBufferSpeechStarted {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        audio_start_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    InputAudioBufferSpeechStopped {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        audio_end_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.committed")]
    InputAudioBufferCommitted {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        previous_item_id: Option<String>,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.cleared")]
    InputAudioBufferCleared {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
    /// Server VAD's `idle_timeout_ms` elapsed with the caller silent.
    #[serde(rename = "input_audio_buffer.timeout_triggered")]
    InputAudioBufferTimeoutTriggered {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        audio_start_ms: u64,
        audio_end_ms: u64,
        item_id: String,
    },
    /// An item entered the conversation (for model output: when generation starts).
    #[serde(rename = "conversation.item.added")]
    ConversationItemAdded {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        previous_item_id: Option<String>,
        item: Item,
    },
    #[serde(rename = "conversation.item.created")]
    ConversationItemCreated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        previous_item_id: Option<String>,
        item: Item,
    },
    /// The item is final (content without audio bytes).
    #[serde(rename = "conversation.item.done")]
    ConversationItemDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        previous_item_id: Option<String>,
        item: Item,
    },
    #[serde(rename = "conversation.item.truncated")]
    ConversationItemTruncated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
    },
    #[serde(rename = "conversation.item.deleted")]
    ConversationItemDeleted {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
    },
    /// What the caller said; asynchronous, so it may arrive before or after the response.
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    ConversationItemInputAudioTranscriptionCompleted {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
        content_index: u32,
        transcript: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Value>,
    },
    #[serde(rename = "response.created")]
    ResponseCreated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response: ResponseObject,
    },
    /// Also sent for cancelled, failed and incomplete responses (see `status`).
    #[serde(rename = "response.done")]
    ResponseDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response: ResponseObject,
    },
    #[serde(rename = "response.output_item.added")]
    ResponseOutputItemAdded {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        output_index: u32,
        item: Item,
    },
    /// A completed `function_call` item here is the cue to run the tool.
    #[serde(rename = "response.output_item.done")]
    ResponseOutputItemDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        output_index: u32,
        item: Item,
    },
    /// Base64 audio in the session's output format: forwarded to Twilio as is in `pcmu` mode.
    #[serde(rename = "response.output_audio.delta")]
    ResponseOutputAudioDelta {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
    },
    #[serde(rename = "response.output_audio.done")]
    ResponseOutputAudioDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
    },
    #[serde(rename = "response.output_audio_transcript.delta")]
    ResponseOutputAudioTranscriptDelta {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
    },
    #[serde(rename = "response.output_audio_transcript.done")]
    ResponseOutputAudioTranscriptDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
        transcript: String,
    },
    /// Text output (sessions with `output_modalities: ["text"]`).
    #[serde(rename = "response.output_text.delta")]
    ResponseOutputTextDelta {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
    },
    #[serde(rename = "response.output_text.done")]
    ResponseOutputTextDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ResponseFunctionCallArgumentsDelta {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        call_id: String,
        delta: String,
    },
    /// The complete arguments. `name` is GA-only; otherwise take it from the item.
    #[serde(rename = "response.function_call_arguments.done")]
    ResponseFunctionCallArgumentsDone {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response_id: String,
        item_id: String,
        output_index: u32,
        call_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        arguments: String,
    },
    /// Sent at the start of each response: `[{name, limit, remaining, reset_seconds}]`.
    #[serde(rename = "rate_limits.updated")]
    RateLimitsUpdated {
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        rate_limits: Vec<Value>,
    },
    /// An event type this module does not model (including beta-only names); ignored.
    #[serde(other)]
    Unknown,
}

impl ServerEvent {
    /// The wire `type`, for logs and metrics (`"unknown"` for [`ServerEvent::Unknown`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Error { .. } => "error",
            Self::SessionCreated { .. } => "session.created",
            Self::SessionUpdated { .. } => "session.updated",
            Self::InputAudioBufferSpeechStarted { .. } => "input_audio_buffer.speech_started",
            Self::InputAudioBufferSpeechStopped { .. } => "input_audio_buffer.speech_stopped",
            Self::InputAudioBufferCommitted { .. } => "input_audio_buffer.committed",
            Self::InputAudioBufferCleared { .. } => "input_audio_buffer.cleared",
            Self::InputAudioBufferTimeoutTriggered { .. } => "input_audio_buffer.timeout_triggered",
            Self::ConversationItemAdded { .. } => "conversation.item.added",
            Self::ConversationItemCreated { .. } => "conversation.item.created",
            Self::ConversationItemDone { .. } => "conversation.item.done",
            Self::ConversationItemTruncated { .. } => "conversation.item.truncated",
            Self::ConversationItemDeleted { .. } => "conversation.item.deleted",
            Self::ConversationItemInputAudioTranscriptionCompleted { .. } => {
                "conversation.item.input_audio_transcription.completed"
            }
            Self::ResponseCreated { .. } => "response.created",
            Self::ResponseDone { .. } => "response.done",
            Self::ResponseOutputItemAdded { .. } => "response.output_item.added",
            Self::ResponseOutputItemDone { .. } => "response.output_item.done",
            Self::ResponseOutputAudioDelta { .. } => "response.output_audio.delta",
            Self::ResponseOutputAudioDone { .. } => "response.output_audio.done",
            Self::ResponseOutputAudioTranscriptDelta { .. } => {
                "response.output_audio_transcript.delta"
            }
            Self::ResponseOutputAudioTranscriptDone { .. } => {
                "response.output_audio_transcript.done"
            }
            Self::ResponseOutputTextDelta { .. } => "response.output_text.delta",
            Self::ResponseOutputTextDone { .. } => "response.output_text.done",
            Self::ResponseFunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            Self::ResponseFunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            Self::RateLimitsUpdated { .. } => "rate_limits.updated",
            Self::Unknown => "unknown",
        }
    }

    /// The JSON text frame (for the mock server).
    pub fn to_json(&self) -> String {
        to_json_text(self)
    }
}

/// The `error` of an `error` event. All five fields are always written (`null` when
/// unknown), as the server does. Read leniently, as Chat errors are: a compatible server's
/// numeric `code` or null `type` must not turn the event into an unreadable frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// e.g. `invalid_request_error`.
    #[serde(rename = "type", default, deserialize_with = "super::lenient_string")]
    pub kind: String,
    /// e.g. `session_expired`, `conversation_already_has_active_response`.
    #[serde(default, deserialize_with = "super::lenient_text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_string")]
    pub message: String,
    #[serde(default, deserialize_with = "super::lenient_text")]
    pub param: Option<String>,
    /// The client `event_id` that caused the error, if any.
    #[serde(default, deserialize_with = "super::lenient_text")]
    pub event_id: Option<String>,
}

/// The `response` of `response.created` / `response.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed`, `cancelled`, `failed` or `incomplete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `{type, reason: turn_detected|client_cancelled|…, error?}`; written as `null` when absent.
    pub status_details: Option<Value>,
    /// The items produced, without audio bytes.
    #[serde(default)]
    pub output: Vec<Item>,
    /// `usage`, `conversation_id`, `audio`, …
    #[serde(flatten)]
    pub extra: Extra,
}

/// Parses one text frame from the server. Unknown event types are `Ok(ServerEvent::Unknown)`.
pub fn parse_server_event(text: &str) -> Result<ServerEvent, serde_json::Error> {
    serde_json::from_str(text)
}

/// `response.output_audio.delta`, borrowed from the frame: the per-frame event of the
/// outbound path, read without allocating (base64 needs no JSON escapes, so both strings are
/// slices of the frame; an escaped one is unescaped into its own `String`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDelta<'a> {
    pub item_id: Cow<'a, str>,
    pub delta: Cow<'a, str>,
}

/// A server event: an audio delta read by the borrowing fast path, or any other event.
/// Returned by value and consumed at once, never stored: not boxing `Other` keeps the rare
/// events free of an allocation too.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ServerFrame<'a> {
    AudioDelta(AudioDelta<'a>),
    Other(ServerEvent),
}

/// Parses one text frame from the server as [`parse_server_event`] does, with audio deltas
/// read by a borrowing pass: the fields [`ServerEvent::ResponseOutputAudioDelta`] requires
/// are required here too (other fields are skipped). Any other event is parsed again in full.
pub fn parse_server_frame(text: &str) -> Result<ServerFrame<'_>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        item_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        delta: Option<Cow<'a, str>>,
        #[serde(borrow)]
        response_id: Option<Cow<'a, str>>,
        output_index: Option<u32>,
        content_index: Option<u32>,
    }
    const DELTA: &str = "response.output_audio.delta";
    // Only frames that can be a delta take the fast pass (a cheap test on the raw text).
    if text.contains(DELTA) {
        if let Ok(Delta {
            kind,
            item_id: Some(item_id),
            delta: Some(delta),
            response_id: Some(_),
            output_index: Some(_),
            content_index: Some(_),
        }) = serde_json::from_str::<Delta<'_>>(text)
        {
            if kind == DELTA {
                return Ok(ServerFrame::AudioDelta(AudioDelta { item_id, delta }));
            }
        }
    }
    parse_server_event(text).map(ServerFrame::Other)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/openai_realtime_samples.jsonl"
    );

    /// The server event types this module models.
    const MODELLED: [&str; 27] = [
        "error",
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "rate_limits.updated",
    ];

    struct Sample {
        line: usize,
        direction: String,
        interface: String,
        kind: String,
        /// The event without the fixture's `_` annotations.
        event: Value,
    }

    fn samples() -> Vec<Sample> {
        let text = std::fs::read_to_string(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let mut event: Value = serde_json::from_str(line).unwrap();
                let object = event.as_object_mut().unwrap();
                let tag = |key: &str| object[key].as_str().unwrap().to_owned();
                let (direction, interface, kind) =
                    (tag("_direction"), tag("_interface"), tag("type"));
                object.retain(|key, _| !key.starts_with('_'));
                Sample {
                    line: i + 1,
                    direction,
                    interface,
                    kind,
                    event,
                }
            })
            .collect()
    }

    #[test]
    fn every_modelled_ga_server_sample_round_trips() {
        let mut modelled = 0;
        for sample in samples()
            .iter()
            .filter(|s| s.interface == "ga" && s.direction == "server")
        {
            let text = sample.event.to_string();
            let event =
                parse_server_event(&text).unwrap_or_else(|e| panic!("line {}: {e}", sample.line));
            if MODELLED.contains(&sample.kind.as_str()) {
                modelled += 1;
                assert_eq!(event.kind(), sample.kind, "line {}", sample.line);
                let written: Value = serde_json::from_str(&event.to_json()).unwrap();
                assert_eq!(
                    written, sample.event,
                    "line {} does not round-trip",
                    sample.line
                );
            } else {
                assert_eq!(event, ServerEvent::Unknown, "line {}", sample.line);
            }
        }
        assert!(modelled >= 28, "only {modelled} modelled samples found");
    }

    #[test]
    fn every_ga_client_sample_round_trips() {
        let mut count = 0;
        for sample in samples()
            .iter()
            .filter(|s| s.interface == "ga" && s.direction == "client")
        {
            count += 1;
            let text = sample.event.to_string();
            let event =
                parse_client_event(&text).unwrap_or_else(|e| panic!("line {}: {e}", sample.line));
            let written: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(
                written, sample.event,
                "line {} does not round-trip",
                sample.line
            );
        }
        assert!(count >= 17, "only {count} client samples found");
    }

    #[test]
    fn beta_only_names_are_not_parsed_as_ga_events() {
        let samples = samples();
        let ga_names: Vec<&str> = samples
            .iter()
            .filter(|s| s.interface == "ga")
            .map(|s| s.kind.as_str())
            .collect();
        let mut beta_only = 0;
        for sample in samples
            .iter()
            .filter(|s| s.interface == "beta" && s.direction == "server")
        {
            if !ga_names.contains(&sample.kind.as_str()) {
                beta_only += 1;
                let event = parse_server_event(&sample.event.to_string()).unwrap();
                assert_eq!(
                    event,
                    ServerEvent::Unknown,
                    "line {} ({})",
                    sample.line,
                    sample.kind
                );
            }
        }
        assert!(beta_only >= 6, "only {beta_only} beta-only samples found");
    }

    #[test]
    fn audio_delta_parses_to_its_fields() {
        let event = parse_server_event(
            r#"{"event_id":"e","type":"response.output_audio.delta","response_id":"r","item_id":"i",
                "output_index":0,"content_index":0,"delta":"AAA=","future_field":1}"#,
        )
        .unwrap();
        assert_eq!(
            event,
            ServerEvent::ResponseOutputAudioDelta {
                event_id: Some("e".into()),
                response_id: "r".into(),
                item_id: "i".into(),
                output_index: 0,
                content_index: 0,
                delta: "AAA=".into(),
            }
        );
    }

    /// The borrowing pass agrees with the full parse on every sample and on malformed deltas.
    #[test]
    fn the_frame_fast_path_agrees_with_the_full_parse() {
        let mut deltas = 0;
        let mut texts: Vec<String> = samples()
            .into_iter()
            .filter(|s| s.direction == "server")
            .map(|s| s.event.to_string())
            .collect();
        texts.extend(
            [
                r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i\u0041","output_index":0,"content_index":1,"delta":"AA\/A="}"#,
                r#"{"type":"response.output_audio.delta","item_id":"i","output_index":0,"content_index":0,"delta":"AAA="}"#,
                r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","output_index":-1,"content_index":0,"delta":"AAA="}"#,
                r#"{"type":"response.output_audio_transcript.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"response.output_audio.delta"}"#,
                r#"{"type":"response.output_audio.delta""#,
            ]
            .map(String::from),
        );
        for text in &texts {
            let full = parse_server_event(text);
            match parse_server_frame(text) {
                Ok(ServerFrame::AudioDelta(delta)) => {
                    deltas += 1;
                    match full {
                        Ok(ServerEvent::ResponseOutputAudioDelta {
                            item_id, delta: d, ..
                        }) => {
                            assert_eq!(delta.item_id, item_id, "{text}");
                            assert_eq!(delta.delta, d, "{text}");
                        }
                        other => panic!("fast path took {text}; full parse: {other:?}"),
                    }
                }
                Ok(ServerFrame::Other(event)) => {
                    assert_eq!(Some(&event), full.as_ref().ok(), "{text}");
                    assert!(
                        !matches!(event, ServerEvent::ResponseOutputAudioDelta { .. }),
                        "{text}"
                    );
                }
                Err(_) => assert!(full.is_err(), "{text}"),
            }
        }
        assert!(deltas >= 2, "only {deltas} deltas took the fast path");
    }

    #[test]
    fn content_parts_accept_both_spellings() {
        let item: Item = serde_json::from_value(json!({
            "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "hi"}, {"type": "output_audio", "transcript": "there"},
                        {"type": "audio", "transcript": "x"}, {"type": "output_text", "text": "y"},
                        {"type": "hologram", "depth": 3}]
        }))
        .unwrap();
        let content = item.content.as_deref().unwrap();
        assert!(content[0].kind.is_text() && content[3].kind.is_text());
        assert!(content[1].kind.is_audio() && content[2].kind.is_audio());
        assert_eq!(content[4].kind, ContentKind::Other("hologram".into()));
        assert_eq!(content[4].extra["depth"], 3);
        assert_eq!(item.text(), Some("hi"));
        let audio_only = Item {
            content: Some(content[1..2].to_vec()),
            ..item.clone()
        };
        assert_eq!(audio_only.text(), Some("there"));
    }

    #[test]
    fn item_constructors_build_ga_items() {
        let cases = [
            (
                Item::user_text("hi"),
                json!({"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}),
            ),
            (
                Item::assistant_text("hello"),
                json!({"type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]}),
            ),
            (
                Item::system_text("be brief"),
                json!({"type":"message","role":"system","content":[{"type":"input_text","text":"be brief"}]}),
            ),
            (
                Item::function_call_output("call_abc", r#"{"ok":true}"#),
                json!({"type":"function_call_output","call_id":"call_abc","output":"{\"ok\":true}"}),
            ),
        ];
        for (item, expected) in cases {
            assert_eq!(serde_json::to_value(&item).unwrap(), expected);
            assert_eq!(serde_json::from_value::<Item>(expected).unwrap(), item);
        }
    }

    #[test]
    fn twilio_session_update_matches_the_official_sample() {
        let session = Session {
            model: Some("gpt-realtime".into()),
            output_modalities: Some(vec!["audio".into()]),
            instructions: Some("Be nice.".into()),
            audio: Some(AudioConfig {
                input: Some(AudioInput {
                    format: Some(AudioFormat::Pcmu),
                    turn_detection: Some(json!({"type": "server_vad"})),
                    ..AudioInput::default()
                }),
                output: Some(AudioOutput {
                    format: Some(AudioFormat::Pcmu),
                    voice: Some("alloy".into()),
                    speed: None,
                }),
            }),
            ..Session::default()
        };
        let event = ClientEvent::SessionUpdate {
            event_id: None,
            session,
        };
        let written: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            written,
            json!({"type":"session.update","session":{"type":"realtime","model":"gpt-realtime",
                "output_modalities":["audio"],"instructions":"Be nice.",
                "audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad"}},
                         "output":{"format":{"type":"audio/pcmu"},"voice":"alloy"}}}})
        );
    }

    #[test]
    fn audio_formats_on_the_wire() {
        let cases = [
            (AudioFormat::Pcmu, json!({"type":"audio/pcmu"})),
            (AudioFormat::Pcma, json!({"type":"audio/pcma"})),
            (
                AudioFormat::Pcm { rate: 24000 },
                json!({"type":"audio/pcm","rate":24000}),
            ),
        ];
        for (format, wire) in cases {
            assert_eq!(serde_json::to_value(format).unwrap(), wire);
            assert_eq!(serde_json::from_value::<AudioFormat>(wire).unwrap(), format);
        }
        assert_eq!(
            serde_json::from_value::<AudioFormat>(json!({"type":"audio/pcm"})).unwrap(),
            AudioFormat::Pcm { rate: 24000 }
        );
        assert!(serde_json::from_value::<AudioFormat>(json!("g711_ulaw")).is_err());
    }

    #[test]
    fn a_null_turn_detection_is_kept_apart_from_an_absent_one() {
        let off: AudioInput = serde_json::from_value(json!({"turn_detection": null})).unwrap();
        assert_eq!(off.turn_detection, Some(Value::Null));
        assert_eq!(
            serde_json::to_value(&off).unwrap(),
            json!({"turn_detection": null})
        );
        let unchanged: AudioInput = serde_json::from_value(json!({})).unwrap();
        assert_eq!(unchanged.turn_detection, None);
        assert_eq!(serde_json::to_value(&unchanged).unwrap(), json!({}));
    }

    #[test]
    fn append_audio_fast_path_matches_the_event() {
        let json = append_audio_json("AAEC/w==");
        assert_eq!(
            json,
            r#"{"type":"input_audio_buffer.append","audio":"AAEC/w=="}"#
        );
        assert_eq!(
            parse_client_event(&json).unwrap(),
            ClientEvent::InputAudioBufferAppend {
                event_id: None,
                audio: "AAEC/w==".into()
            }
        );
        assert_eq!(
            json,
            ClientEvent::InputAudioBufferAppend {
                event_id: None,
                audio: "AAEC/w==".into()
            }
            .to_json()
        );
    }

    #[test]
    fn truncate_and_tool_output_events() {
        let truncate = ClientEvent::ConversationItemTruncate {
            event_id: None,
            item_id: "item_1".into(),
            content_index: 0,
            audio_end_ms: 1234,
        };
        assert_eq!(
            serde_json::from_str::<Value>(&truncate.to_json()).unwrap(),
            json!({"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":1234})
        );
        let output = ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: Item::function_call_output("call_abc", "{\"assistant\": \"Billing Agent\"}"),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&output.to_json()).unwrap(),
            json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_abc",
                   "output":"{\"assistant\": \"Billing Agent\"}"}})
        );
        assert_eq!(
            ClientEvent::ResponseCreate {
                event_id: None,
                response: None
            }
            .to_json(),
            r#"{"type":"response.create"}"#
        );
    }

    #[test]
    fn an_error_event_with_a_numeric_code_or_null_type_is_read() {
        let event = parse_server_event(
            r#"{"type":"error","event_id":"e1","error":{"type":null,"code":429,"message":"quota","param":["x"]}}"#,
        )
        .unwrap();
        let ServerEvent::Error { error, .. } = event else {
            panic!("not an error event: {event:?}");
        };
        assert_eq!(error.kind, "");
        assert_eq!(error.code.as_deref(), Some("429"));
        assert_eq!(error.param.as_deref(), Some(r#"["x"]"#));
        assert_eq!((error.message.as_str(), error.event_id), ("quota", None));
    }

    #[test]
    fn function_call_done_without_name_and_item_kinds() {
        let event = parse_server_event(
            r#"{"type":"response.function_call_arguments.done","response_id":"r","item_id":"fc","output_index":0,
                "call_id":"call_1","arguments":"{}"}"#,
        )
        .unwrap();
        assert!(matches!(
            event,
            ServerEvent::ResponseFunctionCallArgumentsDone { name: None, .. }
        ));

        let event = parse_server_event(
            r#"{"type":"response.output_item.done","response_id":"r","output_index":0,
                "item":{"id":"fc","type":"function_call","status":"completed","name":"lookup_order",
                        "call_id":"call_1","arguments":"{\"order_id\":\"42\"}"}}"#,
        )
        .unwrap();
        let ServerEvent::ResponseOutputItemDone { item, .. } = event else {
            panic!("not output_item.done")
        };
        assert_eq!(item.kind, ItemKind::FunctionCall);
        assert_eq!(
            item.clone().function_call(),
            Some((
                "call_1".into(),
                "lookup_order".into(),
                "{\"order_id\":\"42\"}".into()
            ))
        );
        let cut_short = Item {
            status: Some("incomplete".into()),
            ..item.clone()
        };
        assert_eq!(cut_short.function_call(), None);
        let nameless = Item { name: None, ..item };
        assert_eq!(nameless.function_call(), None);
        assert_eq!(Item::user_text("hi").function_call(), None);
    }

    #[test]
    fn unknown_and_malformed_events() {
        assert_eq!(
            parse_server_event(r#"{"type":"brand.new","x":1}"#).unwrap(),
            ServerEvent::Unknown
        );
        assert_eq!(ServerEvent::Unknown.kind(), "unknown");
        assert!(parse_server_event(r#"{"type":"response.output_audio.delta"}"#).is_err());
        assert!(parse_server_event(r#"{"no_type":1}"#).is_err());
        assert!(parse_server_event("not json").is_err());
        assert!(parse_client_event(r#"{"type":"brand.new"}"#).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            let _ = parse_server_event(&text);
            let _ = parse_client_event(&text);
        }

        #[test]
        fn arbitrary_json_shaped_text_never_panics(
            kind in prop::sample::select(MODELLED.to_vec()),
            body in r#"[{}\[\]":,0-9a-z_ ]{0,60}"#,
        ) {
            let _ = parse_server_event(&format!(r#"{{"type":"{kind}",{body}}}"#));
        }

        #[test]
        fn append_audio_json_is_always_valid(audio in ".*") {
            let event = parse_client_event(&append_audio_json(&audio)).unwrap();
            prop_assert_eq!(event, ClientEvent::InputAudioBufferAppend { event_id: None, audio });
        }

        #[test]
        fn the_buffered_append_is_the_serde_one(audio in "[A-Za-z0-9+/=]{0,300}|.*") {
            let mut out = b"earlier".to_vec();
            write_append_audio_json(&mut out, &audio);
            let expected = append_audio_json(&audio);
            prop_assert_eq!(&out[7..], expected.as_bytes());
        }
    }
}
