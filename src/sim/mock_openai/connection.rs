//! The Realtime protocol state of one emulated socket: session, input buffer and VAD,
//! conversation items and the response being streamed.
//!
//! Sans-I/O and clock-free: the socket actor hands it client text and wake-ups, and gets back a
//! [`Step`] (server events to send, and when to wake it next). Pacing and latency are the
//! actor's job; deciding what happens is this module's. Events are the engine's own wire types
//! ([`actors::protocol::openai::realtime`]); only `session.update` is also checked as raw JSON,
//! because the server's validation errors are about the JSON the client sent.

use std::sync::Arc;
use std::time::Duration;

use actors::protocol::openai::realtime::{
    ApiError, AudioFormat, ClientEvent, ContentKind, ContentPart, Extra, Item, ItemKind,
    ResponseObject, Role, ServerEvent, Session,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::script::{self, ReplyContext, Script, ScriptedCall, Turn};
use super::vad::{Vad, VadConfig, VadEvent};
use super::voice::{Codec, Voice};
use super::{SharedStats, TruncateRecord};

/// Audio carried by one `response.output_audio.delta`.
const DELTA_MS: u64 = 100;
/// Shortest buffer `input_audio_buffer.commit` accepts, as on the real server.
const MIN_COMMIT_MS: u64 = 100;
const DEFAULT_INSTRUCTIONS: &str =
    "You are a helpful voice assistant. Answer briefly and stay friendly.";

/// Top-level session fields of the GA interface; anything else is an unknown parameter.
const SESSION_FIELDS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "tracing",
    "prompt",
    "include",
    "reasoning",
    "parallel_tool_calls",
];
const AUDIO_INPUT_FIELDS: &[&str] = &["format", "transcription", "noise_reduction", "turn_detection"];
const AUDIO_OUTPUT_FIELDS: &[&str] = &["format", "voice", "speed"];
/// Client event types of the GA interface (the server names them when refusing another).
const CLIENT_EVENTS: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// Everything a connection needs from its surroundings.
pub(super) struct Settings {
    /// Sequence number of the connection, used to keep ids unique across sockets.
    pub number: u64,
    /// The `model` query parameter.
    pub model: String,
    /// Unix time the session expires at, as shown in `session.created`.
    pub expires_at: u64,
    pub latency: Duration,
    pub pace: f64,
    pub script: Option<Arc<Script>>,
    pub stats: SharedStats,
}

/// What the socket has to do after an input: send `events` in order, then (if set) call
/// [`Connection::on_wake`] with the ticket after the delay.
#[derive(Debug, Default)]
pub(super) struct Step {
    pub events: Vec<Outgoing>,
    pub wake: Option<Wake>,
}

/// A server event to send: one of the engine's typed [`ServerEvent`]s, or raw JSON for the
/// few events the engine ignores and so does not model (`response.content_part.*`).
#[derive(Debug)]
pub(super) enum Outgoing {
    Event(ServerEvent),
    Json(Value),
}

impl Outgoing {
    /// The text frame.
    pub fn to_json(&self) -> String {
        match self {
            Outgoing::Event(event) => event.to_json(),
            Outgoing::Json(value) => value.to_string(),
        }
    }
}

impl Step {
    fn push(&mut self, event: ServerEvent) {
        self.events.push(Outgoing::Event(event));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    pub after: Duration,
    pub ticket: u64,
}

/// Why a client event was refused; becomes an `error` event.
#[derive(Debug)]
struct Rejection {
    code: &'static str,
    message: String,
    param: Option<String>,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        Rejection {
            code,
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    fn missing(param: &str) -> Self {
        Rejection::new(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    fn invalid_type(param: &str, expected: &str, got: &Value) -> Self {
        Rejection::new(
            "invalid_type",
            format!(
                "Invalid type for '{param}': expected {expected}, but got {} instead.",
                json_kind(got)
            ),
            Some(param),
        )
    }

    fn unknown_parameter(param: &str) -> Self {
        Rejection::new(
            "unknown_parameter",
            format!("Unknown parameter: '{param}'."),
            Some(param),
        )
    }

    fn invalid_value(param: &str, message: impl Into<String>) -> Self {
        Rejection::new("invalid_value", message, Some(param))
    }
}

/// How JSON values are named in OpenAI's type errors ("a string", "an object", …).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required_str<'a>(object: &'a Value, name: &str, param: &str) -> Result<&'a str, Rejection> {
    match object.get(name) {
        None | Some(Value::Null) => Err(Rejection::missing(param)),
        Some(value) => value
            .as_str()
            .ok_or_else(|| Rejection::invalid_type(param, "a string", value)),
    }
}

/// Turn detection as the emulator applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TurnDetection {
    vad: VadConfig,
    create_response: bool,
    interrupt_response: bool,
}

impl TurnDetection {
    /// Reads `audio.input.turn_detection`; `null` (or anything but an object) means no VAD.
    fn of(detection: &Value) -> Option<Self> {
        let detection = detection.as_object()?;
        let defaults = VadConfig::default();
        let flag = |name: &str| detection.get(name).and_then(Value::as_bool).unwrap_or(true);
        let ms = |name: &str, default| detection.get(name).and_then(Value::as_u64).unwrap_or(default);
        Some(TurnDetection {
            vad: VadConfig {
                threshold: detection
                    .get("threshold")
                    .and_then(Value::as_f64)
                    .unwrap_or(defaults.threshold),
                prefix_padding_ms: ms("prefix_padding_ms", defaults.prefix_padding_ms),
                silence_duration_ms: ms("silence_duration_ms", defaults.silence_duration_ms),
            },
            create_response: flag("create_response"),
            interrupt_response: flag("interrupt_response"),
        })
    }
}

/// The parts of the effective session that change behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Behaviour {
    input: Codec,
    output: Codec,
    turn_detection: Option<TurnDetection>,
}

impl Behaviour {
    /// Reads an effective session (validated already, so fallbacks are only a safety net).
    fn of(session: &Value) -> Self {
        let session: Session = serde_json::from_value(session.clone()).unwrap_or_default();
        let audio = session.audio.unwrap_or_default();
        let input = audio.input.unwrap_or_default();
        let output = audio.output.unwrap_or_default();
        let codec = |format: Option<AudioFormat>| {
            format.and_then(|format| codec(format).ok()).unwrap_or(Codec::Pcm24k)
        };
        Behaviour {
            input: codec(input.format),
            output: codec(output.format),
            turn_detection: input.turn_detection.as_ref().and_then(TurnDetection::of),
        }
    }
}

/// The codec of a format, if the emulator speaks it.
fn codec(format: AudioFormat) -> Result<Codec, &'static str> {
    match format {
        AudioFormat::Pcmu => Ok(Codec::Pcmu),
        AudioFormat::Pcm { rate: 24_000 } => Ok(Codec::Pcm24k),
        AudioFormat::Pcm { .. } => Err("Invalid value for 'rate'. Supported values are: 24000."),
        AudioFormat::Pcma => {
            Err("The emulator does not support 'audio/pcma'; use 'audio/pcmu' or 'audio/pcm'.")
        }
    }
}

/// Checks one `audio.*.format` of a `session.update`.
fn validate_format(format: &Value, param: &str) -> Result<(), Rejection> {
    if !format.is_object() {
        return Err(Rejection::invalid_type(param, "an object", format));
    }
    let kind = required_str(format, "type", &format!("{param}.type"))?;
    let parsed: AudioFormat = serde_json::from_value(format.clone()).map_err(|_| {
        Rejection::invalid_value(
            &format!("{param}.type"),
            format!(
                "Invalid value: '{kind}'. Supported values are: 'audio/pcm', 'audio/pcmu', and \
                 'audio/pcma'."
            ),
        )
    })?;
    codec(parsed)
        .map(drop)
        .map_err(|message| Rejection::invalid_value(param, message))
}

/// Checks a `session.update` payload the way the GA server does, before anything changes.
fn validate_session_patch(session: Option<&Value>) -> Result<(), Rejection> {
    let session = session.ok_or_else(|| Rejection::missing("session"))?;
    let Value::Object(fields) = session else {
        return Err(Rejection::invalid_type("session", "an object", session));
    };
    if let Some(name) = fields.keys().find(|name| !SESSION_FIELDS.contains(&name.as_str())) {
        return Err(Rejection::unknown_parameter(&format!("session.{name}")));
    }
    let kind = required_str(session, "type", "session.type")?;
    if kind != "realtime" {
        return Err(Rejection::invalid_value(
            "session.type",
            format!("The emulator only supports 'realtime' sessions, not '{kind}'."),
        ));
    }
    if let Some(modalities) = fields.get("output_modalities") {
        if modalities != &json!(["audio"]) {
            return Err(Rejection::invalid_value(
                "session.output_modalities",
                "The emulator only speaks: 'session.output_modalities' must be [\"audio\"].",
            ));
        }
    }
    let Some(audio) = fields.get("audio") else {
        return Ok(());
    };
    let Value::Object(audio) = audio else {
        return Err(Rejection::invalid_type("session.audio", "an object", audio));
    };
    if let Some(name) = audio.keys().find(|name| !["input", "output"].contains(&name.as_str())) {
        return Err(Rejection::unknown_parameter(&format!("session.audio.{name}")));
    }
    for (direction, allowed) in [("input", AUDIO_INPUT_FIELDS), ("output", AUDIO_OUTPUT_FIELDS)] {
        let Some(config) = audio.get(direction) else {
            continue;
        };
        let path = format!("session.audio.{direction}");
        let Value::Object(config) = config else {
            return Err(Rejection::invalid_type(&path, "an object", config));
        };
        if let Some(name) = config.keys().find(|name| !allowed.contains(&name.as_str())) {
            return Err(Rejection::unknown_parameter(&format!("{path}.{name}")));
        }
        if let Some(format) = config.get("format") {
            validate_format(format, &format!("{path}.format"))?;
        }
    }
    match audio.get("input").and_then(|input| input.get("turn_detection")) {
        None | Some(Value::Null) => Ok(()),
        Some(detection) => validate_turn_detection(detection),
    }
}

fn validate_turn_detection(detection: &Value) -> Result<(), Rejection> {
    const PATH: &str = "session.audio.input.turn_detection";
    if !detection.is_object() {
        return Err(Rejection::invalid_type(PATH, "an object", detection));
    }
    let kind = required_str(detection, "type", &format!("{PATH}.type"))?;
    if kind != "server_vad" && kind != "semantic_vad" {
        return Err(Rejection::invalid_value(
            &format!("{PATH}.type"),
            format!(
                "Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'."
            ),
        ));
    }
    let present = |name: &str| detection.get(name).filter(|value| !value.is_null());
    if let Some(threshold) = present("threshold") {
        let param = format!("{PATH}.threshold");
        match threshold.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {}
            Some(_) => {
                return Err(Rejection::invalid_value(
                    &param,
                    "Invalid 'threshold': expected a number between 0 and 1.",
                ))
            }
            None => return Err(Rejection::invalid_type(&param, "a number", threshold)),
        }
    }
    for name in ["prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"] {
        if let Some(value) = present(name).filter(|value| value.as_u64().is_none()) {
            return Err(Rejection::invalid_type(&format!("{PATH}.{name}"), "an integer", value));
        }
    }
    for name in ["create_response", "interrupt_response"] {
        if let Some(value) = present(name).filter(|value| !value.is_boolean()) {
            return Err(Rejection::invalid_type(&format!("{PATH}.{name}"), "a boolean", value));
        }
    }
    Ok(())
}

/// Applies `patch` to `target`: objects merge key by key, anything else (including `null`)
/// replaces, which is how `session.update` treats present fields.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Fills the turn-detection fields the server reports but the client may omit.
fn fill_turn_detection_defaults(detection: &mut Map<String, Value>) {
    let defaults = VadConfig::default();
    let server_vad = detection.get("type").and_then(Value::as_str) == Some("server_vad");
    let mut fill = |name: &str, value: Value| {
        detection.entry(name).or_insert(value);
    };
    if server_vad {
        fill("threshold", json!(defaults.threshold));
        fill("prefix_padding_ms", json!(defaults.prefix_padding_ms));
        fill("silence_duration_ms", json!(defaults.silence_duration_ms));
        fill("idle_timeout_ms", Value::Null);
    } else {
        fill("eagerness", json!("auto"));
    }
    fill("create_response", json!(true));
    fill("interrupt_response", json!(true));
}

/// The session `session.created` announces: the GA server's defaults (with the documented
/// 500 ms `silence_duration_ms`, which is what the emulator's VAD then uses).
fn default_session(id: String, model: &str, expires_at: u64) -> Value {
    json!({
        "type": "realtime",
        "object": "realtime.session",
        "id": id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": null,
        "prompt": null,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": null,
                "noise_reduction": null,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": null,
                    "create_response": true,
                    "interrupt_response": true,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "marin",
                "speed": 1,
            },
        },
        "include": null,
    })
}

/// Ids unique per connection and across connections, in OpenAI's `prefix_…` style.
#[derive(Debug)]
struct Ids {
    connection: u64,
    next: u64,
}

impl Ids {
    fn make(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{:06X}{:08X}", self.connection, self.next)
    }
}

/// What an item is, as far as replies and truncation care.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// A committed slice of the caller's audio.
    UserAudio { audio_ms: u64 },
    /// A text message the client created (history replayed after a reconnect, a system note).
    ClientMessage,
    /// An assistant message the emulator spoke; `audio_ms` is the audio produced for it.
    AssistantAudio { audio_ms: u64 },
    FunctionCall,
    FunctionCallOutput { output: String },
}

#[derive(Clone, Debug)]
struct Entry {
    kind: Kind,
    /// The item as the wire shows it (without audio bytes); its `id` is always set.
    item: Item,
}

impl Entry {
    fn id(&self) -> &str {
        self.item.id.as_deref().unwrap_or_default()
    }
}

/// A reply being spoken.
#[derive(Debug)]
struct Speech {
    item_id: String,
    text: String,
    voice: Voice,
    /// Characters of `text` already sent as transcript deltas.
    sent_chars: usize,
}

#[derive(Debug)]
enum Body {
    Speech(Speech),
    Call {
        item_id: String,
        call_id: String,
        call: ScriptedCall,
    },
}

/// The response in progress (at most one per conversation, as on the real server).
#[derive(Debug)]
struct Active {
    id: String,
    /// Matches wake-ups to this response, so a stale timer of a cancelled one does nothing.
    ticket: u64,
    /// Whether `response.created` has gone out (it waits for the configured latency).
    started: bool,
    body: Body,
}

impl Active {
    fn speaks(&self, item_id: &str) -> bool {
        matches!(&self.body, Body::Speech(speech) if speech.item_id == item_id)
    }
}

/// An utterance the VAD is hearing, not yet committed.
#[derive(Debug)]
struct Utterance {
    item_id: String,
    start_ms: u64,
}

/// How a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    /// Cancelled, with OpenAI's `status_details.reason`.
    Cancelled(&'static str),
}

fn message_item(id: &str, role: Role, status: &str, content: Vec<ContentPart>) -> Item {
    Item {
        id: Some(id.to_owned()),
        kind: ItemKind::Message,
        role: Some(role),
        content: Some(content),
        call_id: None,
        name: None,
        arguments: None,
        output: None,
        status: Some(status.to_owned()),
        extra: realtime_item(),
    }
}

/// The `"object": "realtime.item"` every server-side item carries.
fn realtime_item() -> Extra {
    let mut extra = Extra::new();
    extra.insert("object".to_owned(), json!("realtime.item"));
    extra
}

/// An audio content part carrying only its transcript (events never repeat audio bytes).
fn audio_part(kind: ContentKind, transcript: Option<String>) -> ContentPart {
    let mut extra = Extra::new();
    if transcript.is_none() {
        // Written as `"transcript": null`, as the server does before transcription.
        extra.insert("transcript".to_owned(), Value::Null);
    }
    ContentPart {
        kind,
        text: None,
        audio: None,
        transcript,
        extra,
    }
}

/// One emulated Realtime session.
pub(super) struct Connection {
    settings: Settings,
    ids: Ids,
    conversation_id: String,
    session: Value,
    behaviour: Behaviour,
    vad: Vad,
    /// Caller audio received over the whole session, in µs.
    received_us: u64,
    /// Caller audio in the input buffer (since the last commit or clear), in µs.
    buffered_us: u64,
    utterance: Option<Utterance>,
    entries: Vec<Entry>,
    active: Option<Active>,
    responses: usize,
    tickets: u64,
    assistant_audio_sent: bool,
}

impl Connection {
    /// Opens the session with `session.created`.
    pub fn open(settings: Settings) -> (Connection, Step) {
        let mut ids = Ids {
            connection: settings.number,
            next: 0,
        };
        let session = default_session(ids.make("sess"), &settings.model, settings.expires_at);
        let behaviour = Behaviour::of(&session);
        let vad_config = behaviour
            .turn_detection
            .map_or_else(VadConfig::default, |detection| detection.vad);
        let conversation_id = ids.make("conv");
        let mut connection = Connection {
            settings,
            ids,
            conversation_id,
            session,
            behaviour,
            vad: Vad::new(vad_config),
            received_us: 0,
            buffered_us: 0,
            utterance: None,
            entries: Vec::new(),
            active: None,
            responses: 0,
            tickets: 0,
            assistant_audio_sent: false,
        };
        let session = connection.session.clone();
        connection
            .settings
            .stats
            .update(|stats| stats.last_session = Some(session.clone()));
        let mut step = Step::default();
        let event_id = connection.event_id();
        step.push(ServerEvent::SessionCreated { event_id, session });
        (connection, step)
    }

    /// Handles one text frame from the client.
    pub fn on_text(&mut self, text: &str) -> Step {
        let mut step = Step::default();
        let Ok(raw @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
            let rejection = Rejection::new(
                "invalid_json",
                "The client event must be a JSON object.",
                None,
            );
            self.reject(&mut step, None, rejection);
            return step;
        };
        let event_id = raw.get("event_id").and_then(Value::as_str).map(str::to_owned);
        if let Err(rejection) = self.dispatch(raw, &mut step) {
            self.reject(&mut step, event_id, rejection);
        }
        step
    }

    /// Handles a binary frame: the Realtime API only speaks JSON text.
    pub fn on_binary(&mut self) -> Step {
        let mut step = Step::default();
        let rejection = Rejection::new(
            "invalid_json",
            "Binary frames are not supported; send JSON text events.",
            None,
        );
        self.reject(&mut step, None, rejection);
        step
    }

    /// Continues the response that asked for this wake-up, if it is still the active one.
    pub fn on_wake(&mut self, ticket: u64) -> Step {
        let mut step = Step::default();
        if self.active.as_ref().is_some_and(|active| active.ticket == ticket) {
            self.advance(&mut step);
        }
        step
    }

    fn dispatch(&mut self, raw: Value, step: &mut Step) -> Result<(), Rejection> {
        let kind = match raw.get("type") {
            None | Some(Value::Null) => {
                return Err(Rejection::new("invalid_event", "The 'type' field is missing.", None))
            }
            Some(kind) => kind
                .as_str()
                .ok_or_else(|| Rejection::invalid_type("type", "a string", kind))?,
        };
        if !CLIENT_EVENTS.contains(&kind) {
            let supported: Vec<String> = CLIENT_EVENTS.iter().map(|name| format!("'{name}'")).collect();
            return Err(Rejection::invalid_value(
                "type",
                format!("Invalid value: '{kind}'. Supported values are: {}.", supported.join(", ")),
            ));
        }
        if kind == "session.update" {
            validate_session_patch(raw.get("session"))?;
        }
        let kind = kind.to_owned();
        let event: ClientEvent = serde_json::from_value(raw.clone()).map_err(|error| {
            Rejection::new("invalid_event", format!("Invalid '{kind}' event: {error}."), None)
        })?;
        match event {
            ClientEvent::SessionUpdate { .. } => self.on_session_update(&raw["session"], step),
            ClientEvent::InputAudioBufferAppend { audio, .. } => self.on_append(&audio, step),
            ClientEvent::InputAudioBufferCommit { .. } => self.on_commit(step),
            ClientEvent::InputAudioBufferClear { .. } => {
                self.on_clear(step);
                Ok(())
            }
            ClientEvent::ConversationItemCreate {
                previous_item_id,
                item,
                ..
            } => self.on_item_create(previous_item_id.as_deref(), item, step),
            ClientEvent::ConversationItemTruncate {
                item_id,
                content_index,
                audio_end_ms,
                ..
            } => self.on_truncate(&item_id, content_index, audio_end_ms, step),
            ClientEvent::ConversationItemDelete { item_id, .. } => self.on_item_delete(&item_id, step),
            ClientEvent::ResponseCreate { .. } => self.on_response_create(step),
            ClientEvent::ResponseCancel { response_id, .. } => {
                self.on_response_cancel(response_id.as_deref(), step)
            }
            ClientEvent::ConversationItemRetrieve { .. } | ClientEvent::OutputAudioBufferClear { .. } => {
                Err(Rejection::new(
                    "unsupported_event",
                    format!("The emulator does not implement '{kind}'."),
                    Some("type"),
                ))
            }
        }
    }

    fn event_id(&mut self) -> Option<String> {
        Some(self.ids.make("event"))
    }

    fn reject(&mut self, step: &mut Step, client_event_id: Option<String>, rejection: Rejection) {
        self.settings.stats.update(|stats| stats.errors_sent += 1);
        let event_id = self.event_id();
        step.push(ServerEvent::Error {
            event_id,
            error: ApiError {
                kind: "invalid_request_error".to_owned(),
                code: Some(rejection.code.to_owned()),
                message: rejection.message,
                param: rejection.param,
                event_id: client_event_id,
            },
        });
    }

    fn on_session_update(&mut self, patch: &Value, step: &mut Step) -> Result<(), Rejection> {
        let new_voice = &patch["audio"]["output"]["voice"];
        if !new_voice.is_null()
            && new_voice != &self.session["audio"]["output"]["voice"]
            && self.assistant_audio_sent
        {
            return Err(Rejection::new(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                Some("session.audio.output.voice"),
            ));
        }
        let mut patch = patch.clone();
        if let Some(fields) = patch.as_object_mut() {
            // The model is chosen by the URL; an unchanged copy is tolerated, a change ignored.
            fields.remove("model");
        }
        // Another kind of turn detection replaces the old settings rather than merging.
        let old_kind = self.session["audio"]["input"]["turn_detection"]["type"].clone();
        let new_detection = &patch["audio"]["input"]["turn_detection"];
        if new_detection.is_object() && new_detection["type"] != old_kind {
            self.session["audio"]["input"]["turn_detection"] = Value::Null;
        }
        merge(&mut self.session, &patch);
        if let Some(detection) = self.session["audio"]["input"]["turn_detection"].as_object_mut() {
            fill_turn_detection_defaults(detection);
        }
        self.behaviour = Behaviour::of(&self.session);
        match self.behaviour.turn_detection {
            Some(detection) => self.vad.set_config(detection.vad),
            None => {
                self.vad.reset();
                self.utterance = None;
            }
        }
        let session = self.session.clone();
        self.settings.stats.update(|stats| {
            stats.session_updates += 1;
            stats.last_session = Some(session.clone());
        });
        let event_id = self.event_id();
        step.push(ServerEvent::SessionUpdated { event_id, session });
        Ok(())
    }

    fn on_append(&mut self, audio: &str, step: &mut Step) -> Result<(), Rejection> {
        self.settings.stats.update(|stats| stats.appends += 1);
        let bytes = BASE64.decode(audio).map_err(|error| {
            Rejection::invalid_value("audio", format!("Invalid 'audio': not valid base64 ({error})."))
        })?;
        let codec = self.behaviour.input;
        let mut samples = Vec::with_capacity(bytes.len() / codec.bytes_per_sample());
        codec.decode_into(&bytes, &mut samples);
        let added_us = u64::try_from(samples.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(1_000_000)
            / u64::from(codec.sample_rate());
        let before_ms = self.received_us / 1000;
        self.received_us = self.received_us.saturating_add(added_us);
        self.buffered_us = self.buffered_us.saturating_add(added_us);
        let added_ms = self.received_us / 1000 - before_ms;
        self.settings.stats.update(|stats| stats.audio_ms_received += added_ms);
        let Some(detection) = self.behaviour.turn_detection else {
            return Ok(());
        };
        let mut vad_events = Vec::new();
        self.vad.push(&samples, codec.sample_rate(), &mut vad_events);
        for vad_event in vad_events {
            match vad_event {
                VadEvent::SpeechStarted { audio_start_ms } => {
                    let item_id = self.ids.make("item");
                    let event_id = self.event_id();
                    step.push(ServerEvent::InputAudioBufferSpeechStarted {
                        event_id,
                        audio_start_ms,
                        item_id: item_id.clone(),
                    });
                    self.utterance = Some(Utterance {
                        item_id,
                        start_ms: audio_start_ms,
                    });
                    if detection.interrupt_response {
                        self.cancel(step, "turn_detected");
                    }
                }
                VadEvent::SpeechStopped { audio_end_ms } => {
                    let Some(utterance) = self.utterance.take() else {
                        continue;
                    };
                    let event_id = self.event_id();
                    step.push(ServerEvent::InputAudioBufferSpeechStopped {
                        event_id,
                        audio_end_ms,
                        item_id: utterance.item_id.clone(),
                    });
                    let audio_ms = audio_end_ms.saturating_sub(utterance.start_ms);
                    self.commit(step, utterance.item_id, audio_ms);
                    if detection.create_response && self.active.is_none() {
                        self.start_response(step);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, step: &mut Step) -> Result<(), Rejection> {
        let buffered_ms = self.buffered_us / 1000;
        if buffered_ms < MIN_COMMIT_MS {
            return Err(Rejection::new(
                "input_audio_buffer_commit_empty",
                format!(
                    "Error committing input audio buffer: buffer too small. Expected at least \
                     {MIN_COMMIT_MS}ms of audio, but buffer only has {:.2}ms of audio.",
                    self.buffered_us as f64 / 1000.0
                ),
                None,
            ));
        }
        let item_id = match self.utterance.take() {
            Some(utterance) => utterance.item_id,
            None => self.ids.make("item"),
        };
        self.vad.reset();
        self.commit(step, item_id, buffered_ms);
        Ok(())
    }

    fn on_clear(&mut self, step: &mut Step) {
        self.buffered_us = 0;
        self.utterance = None;
        self.vad.reset();
        let event_id = self.event_id();
        step.push(ServerEvent::InputAudioBufferCleared { event_id });
    }

    /// Turns the input buffer into a user audio item.
    fn commit(&mut self, step: &mut Step, item_id: String, audio_ms: u64) {
        self.buffered_us = 0;
        let previous_item_id = self.last_item_id();
        let event_id = self.event_id();
        step.push(ServerEvent::InputAudioBufferCommitted {
            event_id,
            previous_item_id: previous_item_id.clone(),
            item_id: item_id.clone(),
        });
        let item = message_item(
            &item_id,
            Role::User,
            "completed",
            vec![audio_part(ContentKind::InputAudio, None)],
        );
        self.entries.push(Entry {
            kind: Kind::UserAudio { audio_ms },
            item: item.clone(),
        });
        self.announce_item(step, previous_item_id, item);
    }

    /// `conversation.item.added` then `conversation.item.done` for a finished item.
    fn announce_item(&mut self, step: &mut Step, previous_item_id: Option<String>, item: Item) {
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemAdded {
            event_id,
            previous_item_id: previous_item_id.clone(),
            item: item.clone(),
        });
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemDone {
            event_id,
            previous_item_id,
            item,
        });
    }

    fn on_item_create(
        &mut self,
        previous_item_id: Option<&str>,
        mut item: Item,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        let kind = classify_client_item(&item)?;
        let id = match item.id.take() {
            Some(id) if self.position(&id).is_some() => {
                return Err(Rejection::invalid_value(
                    "item.id",
                    format!("Item with id '{id}' already exists."),
                ))
            }
            Some(id) => id,
            None => self.ids.make("item"),
        };
        let index = match previous_item_id {
            None => self.entries.len(),
            Some("root") => 0,
            Some(previous) => self.position(previous).map(|i| i + 1).ok_or_else(|| {
                Rejection::invalid_value(
                    "previous_item_id",
                    format!("Item with id '{previous}' not found."),
                )
            })?,
        };
        item.id = Some(id);
        item.extra
            .insert("object".to_owned(), json!("realtime.item"));
        item.status.get_or_insert_with(|| "completed".to_owned());
        self.settings.stats.update(|stats| match kind {
            Kind::ClientMessage => stats.client_items_created += 1,
            Kind::FunctionCallOutput { .. } => stats.function_outputs += 1,
            _ => {}
        });
        let previous_item_id = index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|entry| entry.id().to_owned());
        self.entries.insert(
            index,
            Entry {
                kind,
                item: item.clone(),
            },
        );
        self.announce_item(step, previous_item_id, item);
        Ok(())
    }

    fn on_truncate(
        &mut self,
        item_id: &str,
        content_index: u32,
        audio_end_ms: u64,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        if self.active.as_ref().is_some_and(|active| active.speaks(item_id)) {
            // Audio still being generated cannot be cut; stop generating it first.
            self.cancel(step, "client_cancelled");
        }
        let found = self.position(item_id).and_then(|i| self.entries.get(i));
        let checked = match found.map(|entry| &entry.kind) {
            None => Err((
                0,
                Rejection::invalid_value("item_id", format!("Item with id '{item_id}' not found.")),
            )),
            Some(Kind::AssistantAudio { audio_ms }) if *audio_ms > 0 => {
                let audio_ms = *audio_ms;
                if content_index != 0 {
                    Err((
                        audio_ms,
                        Rejection::invalid_value(
                            "content_index",
                            format!(
                                "Invalid 'content_index': {content_index}. The item has one \
                                 content part."
                            ),
                        ),
                    ))
                } else if audio_end_ms > audio_ms {
                    Err((
                        audio_ms,
                        Rejection::invalid_value(
                            "audio_end_ms",
                            format!(
                                "Audio content of {audio_ms}ms is already shorter than \
                                 {audio_end_ms}ms"
                            ),
                        ),
                    ))
                } else {
                    Ok(audio_ms)
                }
            }
            Some(_) => Err((
                0,
                Rejection::new(
                    "unsupported_content_type",
                    "Only model output audio messages can be truncated",
                    Some("item_id"),
                ),
            )),
        };
        let (item_audio_ms, result) = match checked {
            Ok(audio_ms) => (audio_ms, Ok(())),
            Err((audio_ms, rejection)) => (audio_ms, Err(rejection)),
        };
        let record = TruncateRecord {
            item_id: item_id.to_owned(),
            audio_end_ms,
            item_audio_ms,
            accepted: result.is_ok(),
        };
        self.settings.stats.update(|stats| stats.truncations.push(record));
        result?;
        if let Some(entry) = self.position(item_id).and_then(|i| self.entries.get_mut(i)) {
            entry.kind = Kind::AssistantAudio {
                audio_ms: audio_end_ms,
            };
            // As on the real server, truncation drops the server-side transcript.
            entry.item.content = Some(vec![audio_part(ContentKind::OutputAudio, None)]);
        }
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemTruncated {
            event_id,
            item_id: item_id.to_owned(),
            content_index,
            audio_end_ms,
        });
        Ok(())
    }

    fn on_item_delete(&mut self, item_id: &str, step: &mut Step) -> Result<(), Rejection> {
        let index = self.position(item_id).ok_or_else(|| {
            Rejection::invalid_value(
                "item_id",
                format!("Error deleting item: the item with id '{item_id}' does not exist."),
            )
        })?;
        if self.active.as_ref().is_some_and(|active| active.speaks(item_id)) {
            self.cancel(step, "client_cancelled");
        }
        self.entries.remove(index);
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemDeleted {
            event_id,
            item_id: item_id.to_owned(),
        });
        Ok(())
    }

    fn on_response_create(&mut self, step: &mut Step) -> Result<(), Rejection> {
        if let Some(active) = &self.active {
            return Err(Rejection::new(
                "conversation_already_has_active_response",
                format!(
                    "Conversation already has an active response in progress: {}. Wait until \
                     the response is finished before creating a new one.",
                    active.id
                ),
                None,
            ));
        }
        self.start_response(step);
        Ok(())
    }

    fn on_response_cancel(&mut self, wanted: Option<&str>, step: &mut Step) -> Result<(), Rejection> {
        let matches = self
            .active
            .as_ref()
            .is_some_and(|active| wanted.map_or(true, |id| id == active.id));
        if !matches {
            return Err(Rejection::new(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
            ));
        }
        self.cancel(step, "client_cancelled");
        Ok(())
    }

    fn position(&self, item_id: &str) -> Option<usize> {
        self.entries.iter().position(|entry| entry.id() == item_id)
    }

    fn last_item_id(&self) -> Option<String> {
        self.entries.last().map(|entry| entry.id().to_owned())
    }

    fn reply_context(&self) -> ReplyContext<'_> {
        ReplyContext {
            response_index: self.responses,
            heard_ms: self.entries.iter().rev().find_map(|entry| match entry.kind {
                Kind::UserAudio { audio_ms } => Some(audio_ms),
                _ => None,
            }),
            client_messages: self
                .entries
                .iter()
                .filter(|entry| entry.kind == Kind::ClientMessage)
                .count(),
            tool_output: match self.entries.last().map(|entry| &entry.kind) {
                Some(Kind::FunctionCallOutput { output }) => Some(output),
                _ => None,
            },
        }
    }

    fn start_response(&mut self, step: &mut Step) {
        let turn = script::decide(self.settings.script.as_deref(), &self.reply_context());
        self.responses += 1;
        self.tickets += 1;
        let body = match turn {
            Turn::Say(text) => Body::Speech(Speech {
                item_id: self.ids.make("item"),
                voice: Voice::new(&text, self.behaviour.output),
                text,
                sent_chars: 0,
            }),
            Turn::Call(call) => Body::Call {
                item_id: self.ids.make("item"),
                call_id: self.ids.make("call"),
                call,
            },
        };
        let ticket = self.tickets;
        self.active = Some(Active {
            id: self.ids.make("resp"),
            ticket,
            started: false,
            body,
        });
        self.settings.stats.update(|stats| stats.responses_started += 1);
        if self.settings.latency.is_zero() {
            self.advance(step);
        } else {
            step.wake = Some(Wake {
                after: self.settings.latency,
                ticket,
            });
        }
    }

    /// Sends the next part of the active response: its opening events the first time, then
    /// one audio delta per wake-up (all of them at once when unpaced).
    fn advance(&mut self, step: &mut Step) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        if !active.started {
            active.started = true;
            self.response_created(step, &active.id);
            match &active.body {
                Body::Call {
                    item_id,
                    call_id,
                    call,
                } => {
                    self.call_function(step, &active.id, item_id, call_id, call);
                    return;
                }
                Body::Speech(speech) => {
                    let item = message_item(&speech.item_id, Role::Assistant, "in_progress", Vec::new());
                    self.add_output_item(step, &active.id, item, Kind::AssistantAudio { audio_ms: 0 });
                    let part = json!({"type": "audio", "transcript": ""});
                    self.content_part_event(step, "response.content_part.added", &active.id, &speech.item_id, part);
                }
            }
        }
        let Body::Speech(speech) = &mut active.body else {
            return;
        };
        let paced = self.settings.pace.is_finite() && self.settings.pace > 0.0;
        loop {
            let chunk = speech.voice.next_chunk(DELTA_MS);
            if !chunk.is_empty() {
                self.assistant_audio_sent = true;
                let event_id = self.event_id();
                step.push(ServerEvent::ResponseOutputAudioDelta {
                    event_id,
                    response_id: active.id.clone(),
                    item_id: speech.item_id.clone(),
                    output_index: 0,
                    content_index: 0,
                    delta: BASE64.encode(&chunk),
                });
                let spoken_ms = speech.voice.spoken_ms();
                if let Some(entry) = self.position(&speech.item_id).and_then(|i| self.entries.get_mut(i)) {
                    entry.kind = Kind::AssistantAudio { audio_ms: spoken_ms };
                }
            }
            let spoken = speech.voice.spoken_chars();
            if spoken > speech.sent_chars {
                let delta: String = speech
                    .text
                    .chars()
                    .skip(speech.sent_chars)
                    .take(spoken - speech.sent_chars)
                    .collect();
                speech.sent_chars = spoken;
                let event_id = self.event_id();
                step.push(ServerEvent::ResponseOutputAudioTranscriptDelta {
                    event_id,
                    response_id: active.id.clone(),
                    item_id: speech.item_id.clone(),
                    output_index: 0,
                    content_index: 0,
                    delta,
                });
            }
            if speech.voice.is_done() {
                self.finish(step, active, Outcome::Completed);
                return;
            }
            if paced {
                let chunk_ms = self.behaviour.output.duration_ms(chunk.len()).max(1);
                step.wake = Some(Wake {
                    after: Duration::from_secs_f64(chunk_ms as f64 / 1000.0 / self.settings.pace),
                    ticket: active.ticket,
                });
                self.active = Some(active);
                return;
            }
        }
    }

    fn response_created(&mut self, step: &mut Step, response_id: &str) {
        let response = self.response_object(response_id, "in_progress", None, Vec::new(), Value::Null);
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseCreated { event_id, response });
        let rate_limits = vec![
            json!({"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012}),
            json!({"name": "tokens", "limit": 800_000, "remaining": 799_000, "reset_seconds": 0.075}),
        ];
        let event_id = self.event_id();
        step.push(ServerEvent::RateLimitsUpdated {
            event_id,
            rate_limits,
        });
    }

    /// `response.output_item.added` and `conversation.item.added` for a new output item.
    fn add_output_item(&mut self, step: &mut Step, response_id: &str, item: Item, kind: Kind) {
        let previous_item_id = self.last_item_id();
        self.entries.push(Entry {
            kind,
            item: item.clone(),
        });
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseOutputItemAdded {
            event_id,
            response_id: response_id.to_owned(),
            output_index: 0,
            item: item.clone(),
        });
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemAdded {
            event_id,
            previous_item_id,
            item,
        });
    }

    /// `response.output_item.done` and `conversation.item.done` for a finished output item.
    fn complete_output_item(&mut self, step: &mut Step, response_id: &str, item: Item) {
        let index = item.id.as_deref().and_then(|id| self.position(id));
        let previous_item_id = index
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.entries.get(i))
            .map(|entry| entry.id().to_owned());
        if let Some(entry) = index.and_then(|i| self.entries.get_mut(i)) {
            entry.item = item.clone();
        }
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseOutputItemDone {
            event_id,
            response_id: response_id.to_owned(),
            output_index: 0,
            item: item.clone(),
        });
        let event_id = self.event_id();
        step.push(ServerEvent::ConversationItemDone {
            event_id,
            previous_item_id,
            item,
        });
    }

    /// `response.content_part.added`/`.done`, which the engine's types do not model.
    fn content_part_event(
        &mut self,
        step: &mut Step,
        kind: &str,
        response_id: &str,
        item_id: &str,
        part: Value,
    ) {
        let event_id = self.event_id();
        step.events.push(Outgoing::Json(json!({
            "type": kind,
            "event_id": event_id,
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": part,
        })));
    }

    /// A whole function-call response: the arguments are tiny, so they go out in one burst.
    fn call_function(
        &mut self,
        step: &mut Step,
        response_id: &str,
        item_id: &str,
        call_id: &str,
        call: &ScriptedCall,
    ) {
        let arguments = Value::Object(call.arguments.clone()).to_string();
        let item = |status: &str, arguments: &str| Item {
            id: Some(item_id.to_owned()),
            kind: ItemKind::FunctionCall,
            role: None,
            content: None,
            call_id: Some(call_id.to_owned()),
            name: Some(call.name.clone()),
            arguments: Some(arguments.to_owned()),
            output: None,
            status: Some(status.to_owned()),
            extra: realtime_item(),
        };
        self.add_output_item(step, response_id, item("in_progress", ""), Kind::FunctionCall);
        let chars: Vec<char> = arguments.chars().collect();
        for piece in chars.chunks(chars.len().div_ceil(3).max(1)) {
            let event_id = self.event_id();
            step.push(ServerEvent::ResponseFunctionCallArgumentsDelta {
                event_id,
                response_id: response_id.to_owned(),
                item_id: item_id.to_owned(),
                output_index: 0,
                call_id: call_id.to_owned(),
                delta: piece.iter().collect(),
            });
        }
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseFunctionCallArgumentsDone {
            event_id,
            response_id: response_id.to_owned(),
            item_id: item_id.to_owned(),
            output_index: 0,
            call_id: call_id.to_owned(),
            name: Some(call.name.clone()),
            arguments: arguments.clone(),
        });
        let done = item("completed", &arguments);
        self.complete_output_item(step, response_id, done.clone());
        let usage = usage(0, arguments.chars().count());
        let response = self.response_object(response_id, "completed", None, vec![done], usage);
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseDone { event_id, response });
        self.settings.stats.update(|stats| {
            stats.function_calls += 1;
            stats.responses_completed += 1;
        });
    }

    fn cancel(&mut self, step: &mut Step, reason: &'static str) {
        if let Some(active) = self.active.take() {
            self.finish(step, active, Outcome::Cancelled(reason));
        }
    }

    /// Ends a response: closes its spoken item (if it got that far) and sends `response.done`.
    fn finish(&mut self, step: &mut Step, active: Active, outcome: Outcome) {
        let (status, details) = match outcome {
            Outcome::Completed => ("completed", None),
            Outcome::Cancelled(reason) => (
                "cancelled",
                Some(json!({"type": "cancelled", "reason": reason})),
            ),
        };
        if !active.started {
            // Cancelled during the added latency: the response still opens before it closes.
            self.response_created(step, &active.id);
        }
        let mut output = Vec::new();
        let mut spoken = (0, 0);
        if let (true, Body::Speech(speech)) = (active.started, &active.body) {
            let transcript: String = speech.text.chars().take(speech.sent_chars).collect();
            spoken = (speech.voice.spoken_ms(), speech.sent_chars);
            let response_id = active.id.clone();
            let item_id = speech.item_id.clone();
            let event_id = self.event_id();
            step.push(ServerEvent::ResponseOutputAudioDone {
                event_id,
                response_id: response_id.clone(),
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
            });
            let event_id = self.event_id();
            step.push(ServerEvent::ResponseOutputAudioTranscriptDone {
                event_id,
                response_id: response_id.clone(),
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
                transcript: transcript.clone(),
            });
            let part = json!({"type": "audio", "transcript": transcript});
            self.content_part_event(step, "response.content_part.done", &response_id, &item_id, part);
            let status = match outcome {
                Outcome::Completed => "completed",
                Outcome::Cancelled(_) => "incomplete",
            };
            let item = message_item(
                &item_id,
                Role::Assistant,
                status,
                vec![audio_part(ContentKind::OutputAudio, Some(transcript))],
            );
            self.complete_output_item(step, &response_id, item.clone());
            output.push(item);
        }
        let usage = usage(spoken.0, spoken.1);
        let response = self.response_object(&active.id, status, details, output, usage);
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseDone { event_id, response });
        self.settings.stats.update(|stats| match outcome {
            Outcome::Completed => stats.responses_completed += 1,
            Outcome::Cancelled(_) => stats.responses_cancelled += 1,
        });
    }

    fn response_object(
        &self,
        id: &str,
        status: &str,
        status_details: Option<Value>,
        output: Vec<Item>,
        usage: Value,
    ) -> ResponseObject {
        let output_audio = &self.session["audio"]["output"];
        let mut extra = Extra::new();
        extra.insert("object".to_owned(), json!("realtime.response"));
        extra.insert("conversation_id".to_owned(), json!(self.conversation_id));
        extra.insert("output_modalities".to_owned(), json!(["audio"]));
        extra.insert(
            "max_output_tokens".to_owned(),
            self.session["max_output_tokens"].clone(),
        );
        extra.insert(
            "audio".to_owned(),
            json!({"output": {"format": output_audio["format"], "voice": output_audio["voice"]}}),
        );
        extra.insert("usage".to_owned(), usage);
        extra.insert("metadata".to_owned(), Value::Null);
        ResponseObject {
            id: Some(id.to_owned()),
            status: Some(status.to_owned()),
            status_details,
            output,
            extra,
        }
    }
}

/// Plausible token usage for a response of `audio_ms` audio and `text_chars` of text.
fn usage(audio_ms: u64, text_chars: usize) -> Value {
    let text_tokens = u64::try_from(text_chars.div_ceil(4)).unwrap_or(u64::MAX);
    let audio_tokens = audio_ms / 50;
    let output = text_tokens.saturating_add(audio_tokens);
    let input: u64 = 120;
    json!({
        "total_tokens": input.saturating_add(output),
        "input_tokens": input,
        "output_tokens": output,
        "input_token_details": {
            "text_tokens": input,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    })
}

/// Checks an item the client wants to create, as the server does, and says what it is.
fn classify_client_item(item: &Item) -> Result<Kind, Rejection> {
    match &item.kind {
        ItemKind::Message => {
            let role = item.role.as_ref().ok_or_else(|| Rejection::missing("item.role"))?;
            let allowed: &[ContentKind] = match role {
                Role::User => &[ContentKind::InputText, ContentKind::InputAudio, ContentKind::InputImage],
                Role::System => &[ContentKind::InputText],
                Role::Assistant => &[ContentKind::OutputText, ContentKind::OutputAudio],
                Role::Other(other) => {
                    return Err(Rejection::invalid_value(
                        "item.role",
                        format!(
                            "Invalid value: '{other}'. Supported values are: 'user', 'system',                              and 'assistant'."
                        ),
                    ))
                }
            };
            let parts = item.content.as_ref().ok_or_else(|| Rejection::missing("item.content"))?;
            for (index, part) in parts.iter().enumerate() {
                let path = format!("item.content[{index}]");
                if !allowed.contains(&part.kind) {
                    return Err(Rejection::invalid_value(
                        &format!("{path}.type"),
                        format!("Invalid content type {:?} for a {role:?} message.", part.kind),
                    ));
                }
                // Assistant audio cannot be created: even an `output_audio` part needs text.
                let needs_text = part.kind.is_text() || *role == Role::Assistant;
                if needs_text && part.text.is_none() {
                    return Err(Rejection::missing(&format!("{path}.text")));
                }
                if part.kind == ContentKind::InputAudio && part.audio.is_none() {
                    return Err(Rejection::missing(&format!("{path}.audio")));
                }
            }
            Ok(Kind::ClientMessage)
        }
        ItemKind::FunctionCall => {
            item.name.as_ref().ok_or_else(|| Rejection::missing("item.name"))?;
            item.arguments.as_ref().ok_or_else(|| Rejection::missing("item.arguments"))?;
            Ok(Kind::FunctionCall)
        }
        ItemKind::FunctionCallOutput => {
            item.call_id.as_ref().ok_or_else(|| Rejection::missing("item.call_id"))?;
            let output = item.output.as_ref().ok_or_else(|| Rejection::missing("item.output"))?;
            Ok(Kind::FunctionCallOutput {
                output: output.clone(),
            })
        }
        ItemKind::Other(other) => Err(Rejection::invalid_value(
            "item.type",
            format!(
                "Invalid value: '{other}'. Supported values are: 'message', 'function_call', and \
                 'function_call_output'."
            ),
        )),
    }
}
