//! The Realtime protocol state of one emulated socket: session, input buffer and VAD,
//! conversation items and the response being streamed.
//!
//! Sans-I/O and clock-free: the socket actor hands it client text and wake-ups, and gets back a
//! [`Step`] (server events to send, and when to wake it next). Pacing and latency are the
//! actor's job; deciding what happens is this module's. Events are the engine's own wire types
//! ([`actors::protocol::openai::realtime`]); only `session.update` is also checked as raw JSON,
//! because the server's validation errors are about the JSON the client sent.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use actors::protocol::openai::realtime::{
    ApiError, ClientEvent, ContentKind, Extra, Item, ItemKind, ResponseObject, Role, ServerEvent,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::items::{audio_part, classify_client_item, message_item, realtime_item, Kind};
use super::rejection::Rejection;
use super::script::{self, ReplyContext, Script, ScriptedCall, ScriptedFailure, Turn};
use super::session::{self, EffectiveSession};
use super::vad::{Vad, VadConfig, VadEvent};
use super::voice::{Codec, Voice};
use super::{SharedStats, TruncateRecord};
use crate::sim::onwire::Tag;

/// Audio carried by one `response.output_audio.delta`.
const DELTA_MS: u64 = 100;
/// Slowest pacing honoured: one delta per this much wall time.
const MAX_DELTA_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest buffer `input_audio_buffer.commit` accepts, as on the real server.
const MIN_COMMIT_MS: u64 = 100;
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
    /// Speed of reply audio relative to real time; 0 or less sends it all at once.
    pub pace: f64,
    pub script: Option<Arc<Script>>,
    pub stats: SharedStats,
    /// The on-wire clock ([`crate::sim::onwire::now_us`]; a fixed one in tests): stamps the
    /// audio deltas written and times the tagged caller frames read.
    pub clock: fn() -> u64,
}

/// What the socket has to do after an input: send the text frames in `events` in order, then
/// (if set) call [`Connection::on_wake`] with the ticket after the delay.
#[derive(Debug, Default)]
pub(super) struct Step {
    pub events: Vec<String>,
    pub wake: Option<Wake>,
}

impl Step {
    fn push(&mut self, event: ServerEvent) {
        self.events.push(event.to_json());
    }
}

/// Which of the two events an item gets on the wire: `*.added` when it appears, `*.done`
/// when it is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Added,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    pub after: Duration,
    pub ticket: u64,
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
    Fail(ScriptedFailure),
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
    /// A scripted failure (the body says which).
    Failed,
}

/// One emulated Realtime session.
pub(super) struct Connection {
    settings: Settings,
    ids: Ids,
    conversation_id: String,
    session: EffectiveSession,
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
    /// Wall time between audio deltas; `None` sends a whole reply at once.
    delta_interval: Option<Duration>,
    /// When the client frame being handled was read ([`Settings::clock`]).
    read_at_us: u64,
    /// Audio deltas sent, numbering their on-wire tags.
    deltas_sent: u64,
    /// Reused buffers of the per-frame append: its decoded bytes and samples.
    append_bytes: Vec<u8>,
    append_samples: Vec<i16>,
}

/// `input_audio_buffer.append`, borrowed from the frame: the per-frame client event, read
/// without building a `Value` (base64 needs no escapes, so `audio` is a slice of the frame).
/// Whatever this does not read goes through the full path, which words the rejection.
#[derive(serde::Deserialize)]
struct Append<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    audio: Cow<'a, str>,
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
}

const APPEND: &str = "input_audio_buffer.append";

impl Connection {
    /// Opens the session with `session.created`.
    pub fn open(settings: Settings) -> (Connection, Step) {
        let mut ids = Ids {
            connection: settings.number,
            next: 0,
        };
        let session = EffectiveSession::new(ids.make("sess"), &settings.model, settings.expires_at);
        let vad_config = session
            .behaviour()
            .turn_detection
            .map_or_else(VadConfig::default, |detection| detection.vad);
        let conversation_id = ids.make("conv");
        let delta_interval = delta_interval(settings.pace);
        let mut connection = Connection {
            settings,
            ids,
            conversation_id,
            session,
            vad: Vad::new(vad_config),
            received_us: 0,
            buffered_us: 0,
            utterance: None,
            entries: Vec::new(),
            active: None,
            responses: 0,
            tickets: 0,
            assistant_audio_sent: false,
            delta_interval,
            read_at_us: 0,
            deltas_sent: 0,
            append_bytes: Vec::new(),
            append_samples: Vec::new(),
        };
        let session = connection.session.json().clone();
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
        self.read_at_us = (self.settings.clock)();
        let mut step = Step::default();
        if text.contains(APPEND) {
            if let Ok(append) = serde_json::from_str::<Append<'_>>(text) {
                if append.kind == APPEND {
                    if let Err(rejection) = self.on_append(&append.audio, &mut step) {
                        let event_id = append.event_id.map(Cow::into_owned);
                        self.reject(&mut step, event_id, rejection);
                    }
                    return step;
                }
            }
        }
        let Ok(raw @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
            let rejection = Rejection::new(
                "invalid_json",
                "The client event must be a JSON object.",
                None,
            );
            self.reject(&mut step, None, rejection);
            return step;
        };
        let event_id = raw
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
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
        if self
            .active
            .as_ref()
            .is_some_and(|active| active.ticket == ticket)
        {
            self.advance(&mut step);
        }
        step
    }

    fn dispatch(&mut self, raw: Value, step: &mut Step) -> Result<(), Rejection> {
        let kind = match raw.get("type") {
            None | Some(Value::Null) => {
                return Err(Rejection::new(
                    "invalid_event",
                    "The 'type' field is missing.",
                    None,
                ))
            }
            Some(kind) => kind
                .as_str()
                .ok_or_else(|| Rejection::invalid_type("type", "a string", kind))?,
        };
        if !CLIENT_EVENTS.contains(&kind) {
            let supported: Vec<String> = CLIENT_EVENTS
                .iter()
                .map(|name| format!("'{name}'"))
                .collect();
            return Err(Rejection::invalid_value(
                "type",
                format!(
                    "Invalid value: '{kind}'. Supported values are: {}.",
                    supported.join(", ")
                ),
            ));
        }
        // `session.update` is validated and merged as the JSON the client sent.
        let patch = if kind == "session.update" {
            session::validate_patch(raw.get("session"))?;
            raw.get("session").cloned().unwrap_or_default()
        } else {
            Value::Null
        };
        let kind = kind.to_owned();
        let event: ClientEvent = serde_json::from_value(raw).map_err(|error| {
            Rejection::new(
                "invalid_event",
                format!("Invalid '{kind}' event: {error}."),
                None,
            )
        })?;
        match event {
            ClientEvent::SessionUpdate { .. } => self.on_session_update(&patch, step),
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
            ClientEvent::ConversationItemDelete { item_id, .. } => {
                self.on_item_delete(&item_id, step)
            }
            ClientEvent::ResponseCreate { .. } => self.on_response_create(step),
            ClientEvent::ResponseCancel { response_id, .. } => {
                self.on_response_cancel(response_id.as_deref(), step)
            }
            ClientEvent::ConversationItemRetrieve { .. }
            | ClientEvent::OutputAudioBufferClear { .. } => Err(Rejection::new(
                "unsupported_event",
                format!("The emulator does not implement '{kind}'."),
                Some("type"),
            )),
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
        self.session.update(patch, self.assistant_audio_sent)?;
        match self.session.behaviour().turn_detection {
            Some(detection) => self.vad.set_config(detection.vad),
            None => {
                self.vad.reset();
                self.utterance = None;
            }
        }
        let session = self.session.json().clone();
        self.settings.stats.update(|stats| {
            stats.session_updates += 1;
            stats.last_session = Some(session.clone());
        });
        let event_id = self.event_id();
        step.push(ServerEvent::SessionUpdated { event_id, session });
        Ok(())
    }

    fn on_append(&mut self, audio: &str, step: &mut Step) -> Result<(), Rejection> {
        let mut bytes = std::mem::take(&mut self.append_bytes);
        bytes.clear();
        if let Err(error) = BASE64.decode_vec(audio, &mut bytes) {
            self.append_bytes = bytes;
            self.settings.stats.update(|stats| stats.appends += 1);
            return Err(Rejection::invalid_value(
                "audio",
                format!("Invalid 'audio': not valid base64 ({error})."),
            ));
        }
        let codec = self.session.behaviour().input;
        // A tag survives only μ-law passed through untouched.
        if codec == Codec::Pcmu {
            if let Some(tag) = Tag::read(&bytes) {
                let latency = tag.latency(self.read_at_us);
                self.settings.stats.caller_audio_on_wire(latency);
            }
        }
        let mut samples = std::mem::take(&mut self.append_samples);
        samples.clear();
        codec.decode_into(&bytes, &mut samples);
        self.append_bytes = bytes;
        let result = self.take_samples(&samples, step);
        self.append_samples = samples;
        result
    }

    /// The decoded samples of one append: counted, then fed to the VAD.
    fn take_samples(&mut self, samples: &[i16], step: &mut Step) -> Result<(), Rejection> {
        let codec = self.session.behaviour().input;
        let added_us = u64::try_from(samples.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(1_000_000)
            / u64::from(codec.sample_rate());
        let before_ms = self.received_us / 1000;
        self.received_us = self.received_us.saturating_add(added_us);
        self.buffered_us = self.buffered_us.saturating_add(added_us);
        let added_ms = self.received_us / 1000 - before_ms;
        // One lock of the shared stats per frame.
        self.settings.stats.update(|stats| {
            stats.appends += 1;
            stats.audio_ms_received += added_ms;
        });
        let Some(detection) = self.session.behaviour().turn_detection else {
            return Ok(());
        };
        let mut vad_events = Vec::new();
        self.vad.push(samples, codec.sample_rate(), &mut vad_events);
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
        // With input transcription configured the real server transcribes the turn; the
        // emulator cannot, so it says what it heard, in the same event.
        let transcribing = self.session.json()["audio"]["input"]["transcription"].is_object();
        if transcribing {
            let event_id = self.event_id();
            step.push(
                ServerEvent::ConversationItemInputAudioTranscriptionCompleted {
                    event_id,
                    item_id,
                    content_index: 0,
                    transcript: format!(
                        "[{}.{} seconds of caller audio]",
                        audio_ms / 1000,
                        audio_ms % 1000 / 100
                    ),
                    usage: None,
                },
            );
        }
    }

    /// `conversation.item.added` then `conversation.item.done` for a finished item.
    fn announce_item(&mut self, step: &mut Step, previous_item_id: Option<String>, item: Item) {
        self.item_event(step, Stage::Added, previous_item_id.clone(), item.clone());
        self.item_event(step, Stage::Done, previous_item_id, item);
    }

    /// `conversation.item.added` or `conversation.item.done`, as `stage` says.
    fn item_event(
        &mut self,
        step: &mut Step,
        stage: Stage,
        previous_item_id: Option<String>,
        item: Item,
    ) {
        let event_id = self.event_id();
        step.push(match stage {
            Stage::Added => ServerEvent::ConversationItemAdded {
                event_id,
                previous_item_id,
                item,
            },
            Stage::Done => ServerEvent::ConversationItemDone {
                event_id,
                previous_item_id,
                item,
            },
        });
    }

    /// `response.output_item.added` or `.done`, then the matching `conversation.item.*`:
    /// the server tells both the response and the conversation about an output item.
    fn output_item_events(
        &mut self,
        step: &mut Step,
        stage: Stage,
        response_id: &str,
        previous_item_id: Option<String>,
        item: Item,
    ) {
        let event_id = self.event_id();
        let response_id = response_id.to_owned();
        step.push(match stage {
            Stage::Added => ServerEvent::ResponseOutputItemAdded {
                event_id,
                response_id,
                output_index: 0,
                item: item.clone(),
            },
            Stage::Done => ServerEvent::ResponseOutputItemDone {
                event_id,
                response_id,
                output_index: 0,
                item: item.clone(),
            },
        });
        self.item_event(step, stage, previous_item_id, item);
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
        if self
            .active
            .as_ref()
            .is_some_and(|active| active.speaks(item_id))
        {
            // Audio still being generated cannot be cut; stop generating it first.
            self.cancel(step, "client_cancelled");
        }
        let kind = self
            .position(item_id)
            .and_then(|i| self.entries.get(i))
            .map(|entry| &entry.kind);
        let item_audio_ms = match kind {
            Some(Kind::AssistantAudio { audio_ms }) => *audio_ms,
            _ => 0,
        };
        let verdict = check_truncation(kind, item_id, content_index, audio_end_ms);
        let record = TruncateRecord {
            item_id: item_id.to_owned(),
            audio_end_ms,
            item_audio_ms,
            accepted: verdict.is_ok(),
        };
        self.settings
            .stats
            .update(|stats| stats.truncations.push(record));
        verdict?;
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
        if self
            .active
            .as_ref()
            .is_some_and(|active| active.speaks(item_id))
        {
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

    fn on_response_cancel(
        &mut self,
        wanted: Option<&str>,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        let matches = self
            .active
            .as_ref()
            .is_some_and(|active| wanted.is_none_or(|id| id == active.id));
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
            heard_ms: self
                .entries
                .iter()
                .rev()
                .find_map(|entry| match entry.kind {
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
                voice: Voice::new(&text, self.session.behaviour().output),
                text,
                sent_chars: 0,
            }),
            Turn::Call(call) => Body::Call {
                item_id: self.ids.make("item"),
                call_id: self.ids.make("call"),
                call,
            },
            Turn::Fail(failure) => Body::Fail(failure),
        };
        let ticket = self.tickets;
        self.active = Some(Active {
            id: self.ids.make("resp"),
            ticket,
            started: false,
            body,
        });
        self.settings
            .stats
            .update(|stats| stats.responses_started += 1);
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
    /// its audio.
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
                Body::Speech(speech) => self.open_speech(step, &active.id, &speech.item_id),
                Body::Fail(_) => {
                    self.finish(step, active, Outcome::Failed);
                    return;
                }
            }
        }
        self.speak(step, active);
    }

    /// The assistant message and its audio content part.
    fn open_speech(&mut self, step: &mut Step, response_id: &str, item_id: &str) {
        let item = message_item(item_id, Role::Assistant, "in_progress", Vec::new());
        self.add_output_item(
            step,
            response_id,
            item,
            Kind::AssistantAudio { audio_ms: 0 },
        );
        let part = json!({"type": "audio", "transcript": ""});
        self.content_part_event(
            step,
            "response.content_part.added",
            response_id,
            item_id,
            part,
        );
    }

    /// Sends one audio delta and the transcript it covers, then waits for the next wake-up
    /// (or, unpaced, goes on); the response completes with its audio.
    fn speak(&mut self, step: &mut Step, mut active: Active) {
        let Body::Speech(speech) = &mut active.body else {
            return;
        };
        loop {
            let mut chunk = speech.voice.next_chunk(DELTA_MS);
            if !chunk.is_empty() {
                self.assistant_audio_sent = true;
                self.deltas_sent += 1;
                if speech.voice.codec() == Codec::Pcmu {
                    let sent_us = (self.settings.clock)();
                    let tag = Tag::new(self.settings.number, self.deltas_sent, sent_us);
                    if tag.write(&mut chunk) {
                        self.settings.stats.update(|stats| stats.deltas_tagged += 1);
                    }
                }
                let event_id = self.event_id();
                step.push(ServerEvent::ResponseOutputAudioDelta {
                    event_id,
                    response_id: active.id.clone(),
                    item_id: speech.item_id.clone(),
                    output_index: 0,
                    content_index: 0,
                    delta: BASE64.encode(&chunk),
                });
                let audio_ms = speech.voice.spoken_ms();
                if let Some(entry) = self
                    .position(&speech.item_id)
                    .and_then(|i| self.entries.get_mut(i))
                {
                    entry.kind = Kind::AssistantAudio { audio_ms };
                }
            }
            let said = speech.voice.transcript_chars();
            if said > speech.sent_chars {
                let delta: String = speech
                    .text
                    .chars()
                    .skip(speech.sent_chars)
                    .take(said - speech.sent_chars)
                    .collect();
                speech.sent_chars = said;
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
            if let Some(after) = self.delta_interval {
                step.wake = Some(Wake {
                    after,
                    ticket: active.ticket,
                });
                self.active = Some(active);
                return;
            }
        }
    }

    fn response_created(&mut self, step: &mut Step, response_id: &str) {
        let response =
            self.response_object(response_id, "in_progress", None, Vec::new(), Value::Null);
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
        self.output_item_events(step, Stage::Added, response_id, previous_item_id, item);
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
        self.output_item_events(step, Stage::Done, response_id, previous_item_id, item);
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
        // The engine ignores these events, so its wire types do not model them.
        let event = json!({
            "type": kind,
            "event_id": event_id,
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": part,
        });
        step.events.push(event.to_string());
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
        self.add_output_item(
            step,
            response_id,
            item("in_progress", ""),
            Kind::FunctionCall,
        );
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
        let usage = token_usage(0, arguments.chars().count());
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
        let (status, details) = match (outcome, &active.body) {
            (Outcome::Completed, _) => ("completed", None),
            (Outcome::Cancelled(reason), _) => (
                "cancelled",
                Some(json!({"type": "cancelled", "reason": reason})),
            ),
            (Outcome::Failed, Body::Fail(failure)) => (
                "failed",
                Some(json!({"type": "failed", "error": {
                    "type": failure.kind,
                    "code": failure.code,
                    "message": failure.message,
                }})),
            ),
            (Outcome::Failed, _) => ("failed", Some(json!({"type": "failed", "error": null}))),
        };
        if !active.started {
            // Cancelled during the added latency: the response still opens before it closes.
            self.response_created(step, &active.id);
        }
        let mut output = Vec::new();
        let mut usage = token_usage(0, 0);
        if let (true, Body::Speech(speech)) = (active.started, &active.body) {
            let transcript: String = speech.text.chars().take(speech.sent_chars).collect();
            usage = token_usage(speech.voice.spoken_ms(), speech.sent_chars);
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
            self.content_part_event(
                step,
                "response.content_part.done",
                &response_id,
                &item_id,
                part,
            );
            let status = match outcome {
                Outcome::Completed => "completed",
                Outcome::Cancelled(_) | Outcome::Failed => "incomplete",
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
        let response = self.response_object(&active.id, status, details, output, usage);
        let event_id = self.event_id();
        step.push(ServerEvent::ResponseDone { event_id, response });
        self.settings.stats.update(|stats| match outcome {
            Outcome::Completed => stats.responses_completed += 1,
            Outcome::Cancelled(_) => stats.responses_cancelled += 1,
            Outcome::Failed => stats.responses_failed += 1,
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
        let mut extra = Extra::new();
        extra.insert("object".to_owned(), json!("realtime.response"));
        extra.insert("conversation_id".to_owned(), json!(self.conversation_id));
        extra.insert("output_modalities".to_owned(), json!(["audio"]));
        extra.insert(
            "max_output_tokens".to_owned(),
            self.session.max_output_tokens(),
        );
        extra.insert("audio".to_owned(), self.session.output_audio());
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

/// Wall time between audio deltas at `pace` times real time; `None` (unpaced) for a pace that
/// is not a positive number.
fn delta_interval(pace: f64) -> Option<Duration> {
    if !(pace.is_finite() && pace > 0.0) {
        return None;
    }
    let seconds = DELTA_MS as f64 / 1000.0 / pace;
    Some(
        Duration::try_from_secs_f64(seconds)
            .map_or(MAX_DELTA_INTERVAL, |d| d.min(MAX_DELTA_INTERVAL)),
    )
}

/// Whether an item can be truncated at `audio_end_ms`, with the real server's refusals.
fn check_truncation(
    kind: Option<&Kind>,
    item_id: &str,
    content_index: u32,
    audio_end_ms: u64,
) -> Result<(), Rejection> {
    let audio_ms = match kind {
        None => {
            return Err(Rejection::invalid_value(
                "item_id",
                format!("Item with id '{item_id}' not found."),
            ))
        }
        Some(Kind::AssistantAudio { audio_ms }) if *audio_ms > 0 => *audio_ms,
        Some(_) => {
            return Err(Rejection::new(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                Some("item_id"),
            ))
        }
    };
    if content_index != 0 {
        return Err(Rejection::invalid_value(
            "content_index",
            format!("Invalid 'content_index': {content_index}. The item has one content part."),
        ));
    }
    if audio_end_ms > audio_ms {
        return Err(Rejection::invalid_value(
            "audio_end_ms",
            format!("Audio content of {audio_ms}ms is already shorter than {audio_end_ms}ms"),
        ));
    }
    Ok(())
}

/// Plausible token usage for a response of `audio_ms` audio and `text_chars` of text.
fn token_usage(audio_ms: u64, text_chars: usize) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(latency_ms: u64, pace: f64) -> (Connection, SharedStats) {
        let stats = SharedStats::default();
        let (connection, step) = Connection::open(Settings {
            number: 7,
            model: "gpt-realtime".into(),
            expires_at: 0,
            latency: Duration::from_millis(latency_ms),
            pace,
            script: None,
            stats: stats.clone(),
            clock: || CLOCK_US,
        });
        assert_eq!(types(&events(&step)), ["session.created"]);
        (connection, stats)
    }

    /// The tests' on-wire clock: it stands still.
    const CLOCK_US: u64 = 5_000_000;

    fn audio_tags(events: &[Value]) -> Vec<Option<Tag>> {
        events
            .iter()
            .filter(|e| e["type"] == "response.output_audio.delta")
            .map(|e| Tag::read(&BASE64.decode(e["delta"].as_str().unwrap()).unwrap()))
            .collect()
    }

    #[test]
    fn pcmu_deltas_carry_tags_and_tagged_caller_frames_are_timed() {
        let (mut connection, stats) = open(0, 0.0);
        send(&mut connection, pcmu(Value::Null));
        let mut caller = vec![0xFF; 160];
        assert!(Tag::new(3, 1, CLOCK_US - 1500).write(&mut caller));
        let append = |audio: &[u8]| json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(audio)});
        send(&mut connection, append(&caller));
        send(&mut connection, frame(false));
        let (events, _) = send(&mut connection, json!({"type": "response.create"}));
        let tags = audio_tags(&events);
        assert!(tags.len() > 1);
        for (n, tag) in tags.iter().enumerate() {
            assert_eq!(*tag, Some(Tag::new(7, n as u64 + 1, CLOCK_US)));
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.deltas_tagged, tags.len() as u64);
        let heard = &snapshot.caller_audio_on_wire;
        assert_eq!(heard.count(), 1, "the tagged caller frame alone");
        let max = heard.max().unwrap();
        assert!(max >= Duration::from_micros(1500) && max < Duration::from_micros(1600));
        // The histogram travels with the rest of the stats.
        let json = serde_json::to_string(&snapshot).unwrap();
        let back: crate::sim::mock_openai::MockStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn pcm_audio_is_neither_tagged_nor_read_for_tags() {
        let (mut connection, stats) = open(0, 0.0);
        let mut caller = vec![0xFF; 320];
        Tag::new(3, 1, CLOCK_US - 1500).write(&mut caller);
        send(
            &mut connection,
            json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(&caller)}),
        );
        let (events, _) = send(&mut connection, json!({"type": "response.create"}));
        let tags = audio_tags(&events);
        assert!(!tags.is_empty() && tags.iter().all(Option::is_none));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.deltas_tagged, 0);
        assert_eq!(snapshot.caller_audio_on_wire.count(), 0);
    }

    fn events(step: &Step) -> Vec<Value> {
        step.events
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    fn send(connection: &mut Connection, event: Value) -> (Vec<Value>, Option<Wake>) {
        let step = connection.on_text(&event.to_string());
        (events(&step), step.wake)
    }

    /// One μ-law frame of 20 ms: a loud square wave or silence.
    fn frame(loud: bool) -> Value {
        let bytes: Vec<u8> = (0..160)
            .map(|i| {
                let sample = if !loud {
                    0
                } else if i % 20 < 10 {
                    8000
                } else {
                    -8000
                };
                actors::audio::g711::encode(sample)
            })
            .collect();
        json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(bytes)})
    }

    fn pcmu(turn_detection: Value) -> Value {
        json!({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}, "turn_detection": turn_detection},
            "output": {"format": {"type": "audio/pcmu"}}}}})
    }

    #[test]
    fn unpaced_responses_go_out_in_one_step() {
        let (mut connection, stats) = open(0, 0.0);
        let (events, wake) = send(&mut connection, json!({"type": "response.create"}));
        assert_eq!(wake, None);
        assert_eq!(
            types(&events)[..6],
            [
                "response.created",
                "rate_limits.updated",
                "response.output_item.added",
                "conversation.item.added",
                "response.content_part.added",
                "response.output_audio.delta",
            ]
        );
        assert_eq!(
            types(&events)[events.len() - 6..],
            [
                "response.output_audio.done",
                "response.output_audio_transcript.done",
                "response.content_part.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
            ]
        );
        assert_eq!(stats.snapshot().responses_completed, 1);
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase");
    }

    #[test]
    fn paced_responses_wake_once_per_delta() {
        let (mut connection, _) = open(0, 4.0);
        let (mut events, mut wake) = send(&mut connection, json!({"type": "response.create"}));
        let mut wakes = 0;
        while let Some(next) = wake {
            assert_eq!(
                next.after,
                Duration::from_millis(25),
                "100 ms of audio at pace 4"
            );
            let step = connection.on_wake(next.ticket);
            events.extend(self::events(&step));
            wake = step.wake;
            wakes += 1;
        }
        let deltas = types(&events)
            .iter()
            .filter(|t| **t == "response.output_audio.delta")
            .count();
        assert_eq!(wakes + 1, deltas);
        assert_eq!(types(&events).last(), Some(&"response.done"));
    }

    #[test]
    fn latency_defers_the_response_and_a_cancel_during_it_still_opens_it() {
        let (mut connection, stats) = open(300, 4.0);
        let (events, wake) = send(&mut connection, json!({"type": "response.create"}));
        assert!(events.is_empty());
        let wake = wake.expect("woken after the latency");
        assert_eq!(wake.after, Duration::from_millis(300));
        let (events, _) = send(&mut connection, json!({"type": "response.cancel"}));
        assert_eq!(
            types(&events),
            ["response.created", "rate_limits.updated", "response.done"]
        );
        assert_eq!(events[2]["response"]["status"], "cancelled");
        assert_eq!(
            events[2]["response"]["status_details"]["reason"],
            "client_cancelled"
        );
        assert!(
            connection.on_wake(wake.ticket).events.is_empty(),
            "stale timer"
        );
        let (events, _) = send(&mut connection, json!({"type": "response.cancel"}));
        assert_eq!(events[0]["error"]["code"], "response_cancel_not_active");
        assert_eq!(stats.snapshot().responses_cancelled, 1);
    }

    #[test]
    fn vad_flags_control_responses_and_interruptions() {
        let (mut connection, stats) = open(0, 4.0);
        let quiet =
            json!({"type": "server_vad", "create_response": false, "interrupt_response": false});
        send(&mut connection, pcmu(quiet));
        let (_, wake) = send(&mut connection, json!({"type": "response.create"}));
        assert!(wake.is_some(), "a response is streaming");
        let mut seen = Vec::new();
        for loud in std::iter::repeat_n(true, 20).chain(std::iter::repeat_n(false, 30)) {
            seen.extend(send(&mut connection, frame(loud)).0);
        }
        assert_eq!(
            types(&seen),
            [
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.added",
                "conversation.item.done",
            ],
            "no cancellation and no new response"
        );
        assert_eq!(stats.snapshot().responses_started, 1);
    }

    #[test]
    fn speech_with_default_flags_interrupts_then_answers() {
        let (mut connection, stats) = open(0, 4.0);
        send(&mut connection, pcmu(json!({"type": "server_vad"})));
        send(&mut connection, json!({"type": "response.create"}));
        let mut seen = Vec::new();
        for loud in std::iter::repeat_n(true, 20).chain(std::iter::repeat_n(false, 30)) {
            seen.extend(send(&mut connection, frame(loud)).0);
        }
        let kinds = types(&seen);
        assert_eq!(kinds[0], "input_audio_buffer.speech_started");
        let done = seen.iter().find(|e| e["type"] == "response.done").unwrap();
        assert_eq!(
            done["response"]["status_details"]["reason"],
            "turn_detected"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "response.created").count(),
            1
        );
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.responses_started, snapshot.responses_cancelled),
            (2, 1)
        );
        assert_eq!(snapshot.audio_ms_received, 1000);
    }

    #[test]
    fn truncating_the_item_being_spoken_stops_it_first() {
        let (mut connection, stats) = open(0, 4.0);
        let (events, _) = send(&mut connection, json!({"type": "response.create"}));
        let item_id = events[2]["item"]["id"].clone();
        let truncate = json!({"type": "conversation.item.truncate", "item_id": item_id,
            "content_index": 0, "audio_end_ms": 50});
        let (events, _) = send(&mut connection, truncate);
        let kinds = types(&events);
        assert_eq!(kinds.last(), Some(&"conversation.item.truncated"));
        assert!(kinds.contains(&"response.done"));
        let record = &stats.snapshot().truncations[0];
        assert_eq!((record.item_audio_ms, record.accepted), (100, true));
    }

    #[test]
    fn only_assistant_audio_can_be_truncated() {
        let (mut connection, _) = open(0, 0.0);
        let create = json!({"type": "conversation.item.create", "item": {"type": "message",
            "role": "user", "content": [{"type": "input_text", "text": "hi"}]}});
        let (events, _) = send(&mut connection, create);
        let item_id = events[0]["item"]["id"].clone();
        let truncate = json!({"type": "conversation.item.truncate", "item_id": item_id,
            "content_index": 0, "audio_end_ms": 0});
        let (events, _) = send(&mut connection, truncate);
        assert_eq!(events[0]["error"]["code"], "unsupported_content_type");
        assert_eq!(
            events[0]["error"]["message"],
            "Only model output audio messages can be truncated"
        );
    }

    #[test]
    fn items_can_be_placed_at_the_root_and_deleted() {
        let (mut connection, stats) = open(0, 0.0);
        let text = |text: &str, previous: Option<&str>| {
            let mut event = json!({"type": "conversation.item.create", "item": {"type": "message",
                "role": "user", "content": [{"type": "input_text", "text": text}]}});
            if let Some(previous) = previous {
                event["previous_item_id"] = json!(previous);
            }
            event
        };
        let (first, _) = send(&mut connection, text("one", None));
        let first_id = first[0]["item"]["id"].as_str().unwrap().to_owned();
        let (root, _) = send(&mut connection, text("zero", Some("root")));
        assert_eq!(root[0]["previous_item_id"], Value::Null);
        let (after, _) = send(&mut connection, text("two", Some(&first_id)));
        assert_eq!(after[0]["previous_item_id"], first_id.as_str());
        let (missing, _) = send(&mut connection, text("x", Some("item_nope")));
        assert_eq!(missing[0]["error"]["param"], "previous_item_id");

        let delete = json!({"type": "conversation.item.delete", "item_id": first_id});
        assert_eq!(
            types(&send(&mut connection, delete.clone()).0),
            ["conversation.item.deleted"]
        );
        assert_eq!(types(&send(&mut connection, delete).0), ["error"]);
        assert_eq!(stats.snapshot().client_items_created, 3);
    }

    #[test]
    fn malformed_events_get_errors_that_name_them() {
        let (mut connection, stats) = open(0, 0.0);
        let step = connection.on_text("not json");
        assert_eq!(events(&step)[0]["error"]["code"], "invalid_json");
        let (events, _) = send(&mut connection, json!({"event_id": "evt_1"}));
        assert_eq!(
            events[0]["error"]["message"],
            "The 'type' field is missing."
        );
        assert_eq!(events[0]["error"]["event_id"], "evt_1");
        let (events, _) = send(
            &mut connection,
            json!({"type": "conversation.item.truncate"}),
        );
        assert_eq!(events[0]["error"]["code"], "invalid_event");
        let (events, _) = send(
            &mut connection,
            json!({"type": "conversation.item.retrieve", "item_id": "x"}),
        );
        assert_eq!(events[0]["error"]["code"], "unsupported_event");
        assert_eq!(self::events(&connection.on_binary())[0]["type"], "error");
        assert_eq!(stats.snapshot().errors_sent, 5);
    }
}
