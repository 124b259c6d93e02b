//! A phone call over Twilio Media Streams bridged to an OpenAI Realtime session, as a pure
//! state machine: the `Call` actor feeds it Twilio frames, model events, tool results and
//! timer ticks, and carries out the [`VoiceAction`]s it returns — frames to write, timers to
//! set, tools to run. No I/O, no clock of its own (every input carries [`Now`]), so the whole
//! call — barge-in, hold audio, handoffs, escalation, failed responses, reconnects — is tested
//! here without a runtime, and the benches run the real per-frame code.
//!
//! What it owns:
//! * the session: `session.update` for the active agent (instructions plus what is known of
//!   the caller from earlier contact, `domain::memory`), replayed history after a reconnect,
//!   and the caller's audio held while no session is configured (their first words are not
//!   lost while the model socket opens);
//! * playback: assistant audio with a `mark` per chunk, barge-in through the
//!   [`PlaybackLedger`], and hold audio while a tool is slow or the model is reconnecting —
//!   stopped at once when the caller talks;
//! * tools: effect tools decided by [`effects`] (the same rules as every other channel),
//!   others run by the `ToolExecutor`; the caller's key presses as input that is answered;
//! * failures: a failed response is fatal (`insufficient_quota`, a refused key: fall back
//!   at once) or transient (retried with backoff, then fall back); a lost model means hold
//!   audio, and after the retry budget the fallback (escalation if a person is available,
//!   else the apology);
//! * the transcript, in conversation order even though the caller's words are transcribed
//!   after the answer to them has started.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::agents::AgentsConfig;
use super::backoff::Backoff;
use super::effects::{self, Effect, EffectScope, Medium, Withheld};
use super::ledger::{MarkOutcome, PlaybackLedger};
use super::records::CallOutcome;
use super::transcript::{Role, Transcript};
use crate::config::{AudioMode, EngineConfig};
use crate::protocol::openai::realtime::{ClientEvent, Item, ResponseObject, ServerEvent, Session};
use crate::protocol::twilio::media;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// Hold audio is queued at Twilio in chunks this long, topped up when less than
/// `HOLD_LOW_WATER_MS` is left, so it stops within a chunk when the model speaks again.
pub const HOLD_CHUNK_MS: u64 = 200;
const HOLD_LOW_WATER_MS: u64 = 100;
/// How often the hold audio is topped up.
pub const HOLD_TICK: Duration = Duration::from_millis(50);
/// A call being handed to a person closes at the latest this long after the decision, even
/// if the model's goodbye never finishes playing.
pub const ENDING_GRACE: Duration = Duration::from_secs(8);
/// How many earlier turns a new session is given back after a reconnect.
const REPLAY_TURNS: usize = 40;
/// How often an overdue rotation checks whether the call is quiet.
const ROTATION_RETRY: Duration = Duration::from_secs(1);
/// Caller audio held while no session is configured: the most recent 5 s of 20 ms frames.
const HELD_FRAMES: usize = 250;
/// μ-law is 8 bytes per millisecond.
const ULAW_BYTES_PER_MS: u64 = 8;

/// The moment an input happened: the call's monotonic milliseconds (for playback and
/// latency), and the wall clock (for the transcript).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    pub wall_ms: u64,
}

/// What the call needs from the configuration, copied once when the call starts.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    pub audio_mode: AudioMode,
    pub greet: bool,
    pub hold_after: Duration,
    pub session_cap: Duration,
    /// A person can take the call (`twilio.human_number`).
    pub human_available: bool,
    /// Retries of a response that failed for a transient reason.
    pub response_retry: Backoff,
    pub model: String,
    pub transcription_model: String,
    pub turn_detection: Value,
    /// Silence from both sides this long: the agent asks whether the caller is still there.
    pub idle_prompt: Option<Duration>,
    /// No word from the caller this long after that question: goodbye and hang up.
    pub idle_hangup: Option<Duration>,
}

impl VoiceSettings {
    pub fn from_config(config: &EngineConfig) -> Self {
        VoiceSettings {
            audio_mode: config.voice.audio_mode,
            greet: config.voice.greet,
            hold_after: Duration::from_millis(config.voice.hold_after_ms),
            session_cap: Duration::from_secs(config.voice.session_cap_secs.max(1)),
            human_available: config.twilio.human_number.is_some(),
            response_retry: config.voice.reconnect.backoff(),
            model: config.openai.realtime_model.clone(),
            transcription_model: config.openai.transcription_model.clone(),
            turn_detection: config.voice.turn_detection.clone(),
            idle_prompt: (config.voice.idle_prompt_secs > 0)
                .then(|| Duration::from_secs(config.voice.idle_prompt_secs)),
            idle_hangup: (config.voice.idle_hangup_secs > 0)
                .then(|| Duration::from_secs(config.voice.idle_hangup_secs)),
        }
    }
}

/// What the `Call` actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceAction {
    /// Write a frame (`media`, `mark`, `clear`) to Twilio.
    Twilio(String),
    /// Write a client event to the model.
    Model(String),
    /// Write `session.update` to the model: the session takes caller audio after it.
    Configure(String),
    /// Forward caller audio held while no session was configured (base64 μ-law frames, in
    /// order), as live audio is forwarded.
    ForwardHeld(Vec<String>),
    /// Run a tool and report with [`VoiceCall::tool_finished`].
    RunTool {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// Call [`VoiceCall::hold_due`] after this long (a tool may be slow).
    CheckHoldAfter(Duration),
    /// Call [`VoiceCall::hold_tick`] every [`HOLD_TICK`] (`true`), or stop (`false`).
    HoldTicks(bool),
    /// Call [`VoiceCall::retry_response`] after this long.
    RetryResponseAfter(Duration),
    /// Call [`VoiceCall::rotation_due`] after this long.
    CheckRotationAfter(Duration),
    /// Call `idle_due` after this long (silence on the line).
    CheckIdleAfter(Duration),
    /// Close the model session and open a fresh one.
    RotateModel,
    /// The call is to be handed to a person once the stream ends: remember it.
    Escalated {
        reason: String,
    },
    HandedOff {
        from: String,
        to: String,
    },
    /// Play the fallback prompt: call [`VoiceCall::play_fallback`] with it.
    PlayFallback,
    /// Close the Twilio socket now.
    HangUp,
    /// Close the Twilio socket after this long unless it closed before (the last words
    /// are playing).
    HangUpWithin(Duration),
    /// Write a snapshot of the live call (its record, without an outcome) to the store.
    Snapshot,
    /// Something to count or log.
    Observed(Observation),
}

/// Events worth a metric, a log line or a health signal; none changes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// From the end of the caller's speech to the first answer audio played.
    TurnLatency(Duration),
    BargeIn,
    ModelReconnect,
    /// A response failed; `fatal` ones end the call's use of the model.
    ResponseFailed {
        reason: String,
        fatal: bool,
    },
    /// A response completed: the model works (clears a failure health signal).
    ResponseCompleted,
    /// The model is gone for good for this call.
    FellBack {
        reason: String,
    },
}

/// What became of a frame of caller audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerAudio {
    /// Send it to the model now.
    Forward,
    /// No session is configured: it is held and forwarded with [`VoiceAction::ForwardHeld`].
    Held,
}

/// The model connection as the call sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// The first socket is opening.
    Connecting,
    /// A session is configured and takes audio.
    Live,
    /// The socket was lost (or is being rotated); a new one is coming.
    Reconnecting,
    /// The model is gone for good.
    Gone,
}

/// Why hold audio is playing; it stops when no reason is left.
#[derive(Debug, Default)]
struct Hold {
    slow_tool: bool,
    reconnecting: bool,
    /// The caller talked over hold audio while tools ran: no more of it for those tools.
    hushed: bool,
    ticking: bool,
    /// Position in the hold prompt (it loops).
    position: usize,
    /// Call time until which hold audio is queued at Twilio.
    queued_until_ms: u64,
}

impl Hold {
    fn wanted(&self) -> bool {
        self.slow_tool || self.reconnecting
    }
}

/// The assistant item whose audio is being forwarded, with its transcript so far.
#[derive(Debug, Default)]
struct Speaking {
    item_id: String,
    text: String,
    audio_ms: u64,
    /// Whether its transcript already went into the call transcript.
    recorded: bool,
}

/// One live call. Created when Twilio's `start` names the stream.
#[derive(Debug)]
pub struct VoiceCall {
    settings: VoiceSettings,
    stream_sid: String,
    agent: String,
    /// The voice the call started with: a handoff keeps it (the model refuses a change).
    voice: String,
    /// What is known of the caller from earlier contact, appended to the instructions.
    context: Option<String>,
    /// The call continues an earlier part of itself (a transfer that did not go through):
    /// the first session is given that conversation back, and speaks first.
    resumed: bool,
    /// The engine placed this call: the agent speaks first, greeting or not.
    speak_first: bool,
    /// Silence on the line (`idle`).
    idle: idle::Idle,
    link: Link,
    reconnects: u32,
    ledger: PlaybackLedger,
    transcript: Transcript,
    speaking: Option<Speaking>,
    /// Items of the current model session (truncating others would be refused).
    session_items: HashSet<String>,
    response_active: bool,
    /// A `response.create` is owed once the current response is done.
    response_owed: bool,
    /// Responses failed in a row for transient reasons.
    response_failures: u32,
    tools_pending: usize,
    tools_used: Vec<String>,
    hold: Hold,
    held_audio: VecDeque<String>,
    outcome: CallOutcome,
    /// The call closes once the assistant's last words have played.
    ending: bool,
    /// The server is draining and the goodbye prompt plays: the model is not listened to.
    farewell: bool,
    /// When the caller last stopped speaking, until the answer's first audio is played.
    awaiting_answer_since_ms: Option<u64>,
    last_turn_latency_ms: Option<u64>,
    /// Tools not offered for this caller (e.g. `send_sms` to a landline).
    withheld: Withheld,
}

impl VoiceCall {
    /// A call on `stream_sid` with `agent` active, told `context` about the caller. Returns
    /// the call and its first actions (the session rotation timer).
    pub fn new(
        settings: VoiceSettings,
        agents: &AgentsConfig,
        stream_sid: String,
        context: Option<String>,
    ) -> (Self, Vec<VoiceAction>) {
        let agent = agents.default_agent.clone();
        let voice = agents
            .agent(&agent)
            .map(|a| a.voice.clone())
            .unwrap_or_default();
        let cap = settings.session_cap;
        let call = VoiceCall {
            settings,
            stream_sid,
            agent,
            voice,
            context,
            resumed: false,
            speak_first: false,
            idle: idle::Idle::default(),
            link: Link::Connecting,
            reconnects: 0,
            ledger: PlaybackLedger::new(),
            transcript: Transcript::new(),
            speaking: None,
            session_items: HashSet::new(),
            response_active: false,
            response_owed: false,
            response_failures: 0,
            tools_pending: 0,
            tools_used: Vec::new(),
            hold: Hold::default(),
            held_audio: VecDeque::new(),
            outcome: CallOutcome::Completed,
            ending: false,
            farewell: false,
            awaiting_answer_since_ms: None,
            last_turn_latency_ms: None,
            withheld: Withheld::default(),
        };
        let mut first = vec![VoiceAction::CheckRotationAfter(cap)];
        first.extend(call.idle_first_check());
        (call, first)
    }

    /// Tools not offered for this caller, before the first session is configured: the
    /// agents are told why (in their instructions) and never see the tools.
    pub fn withhold(&mut self, withheld: Withheld) {
        if let Some(note) = withheld.note() {
            self.context = Some(match self.context.take() {
                Some(context) => format!("{context}\n\n{note}"),
                None => note.to_owned(),
            });
        }
        self.withheld = withheld;
    }

    /// The call continues an earlier part of itself — back from a transfer that did not go
    /// through, or on another node after its stream broke: the first session is given that
    /// conversation, the agent is told what happened, and speaks first. After a broken
    /// stream the caller hears the hold prompt until the agent speaks again.
    pub fn resume(
        &mut self,
        earlier: Resumption,
        agents: &AgentsConfig,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        self.transcript = earlier.transcript.settled();
        self.tools_used = earlier.tools_used;
        if let Some(agent) = earlier.agent.filter(|a| agents.agent(a).is_some()) {
            // The voice stays the one the call started with, as after any handoff.
            self.agent = agent;
        }
        let note = earlier.note;
        self.context = Some(match self.context.take() {
            Some(context) => format!("{context}\n\n{note}"),
            None => note,
        });
        self.resumed = true;
        if earlier.hold {
            self.set_hold(None, Some(true), now, out);
        }
    }

    /// The engine placed this call (`POST /calls`, a scheduled call back): `agent` takes it,
    /// with its voice, is told `note` (why it calls, `outreach::opening_note`), and speaks
    /// as soon as the model is ready.
    pub fn place_outbound(&mut self, agent: &str, note: String, agents: &AgentsConfig) {
        if let Some(config) = agents.agent(agent) {
            self.agent = agent.to_owned();
            self.voice = config.voice.clone();
        }
        self.context = Some(match self.context.take() {
            Some(context) => format!("{context}\n\n{note}"),
            None => note,
        });
        self.speak_first = true;
    }

    /// What a snapshot of the live call keeps, for a resumption elsewhere.
    pub fn snapshot(&self, now: Now) -> FinishedCall {
        FinishedCall {
            agent: self.agent.clone(),
            outcome: self.outcome,
            transcript: self.transcript_now(now),
            tools_used: self.tools_used.clone(),
            reconnects: self.reconnects,
        }
    }

    /// The stream broke while the call went on: unless the call was already ending (an
    /// escalation, the fallback, a replacement), it is to be resumed.
    pub fn dropped(&mut self) {
        if !self.ending && self.outcome == CallOutcome::Completed {
            self.outcome = CallOutcome::Dropped;
        }
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    pub fn is_live(&self) -> bool {
        self.link == Link::Live
    }

    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    pub fn tools_pending(&self) -> usize {
        self.tools_pending
    }

    pub fn last_turn_latency_ms(&self) -> Option<u64> {
        self.last_turn_latency_ms
    }

    /// `connecting`, `live`, `reconnecting`, `on-hold` or `ending`, for the dashboard.
    pub fn state(&self) -> &'static str {
        if self.ending {
            "ending"
        } else if self.link != Link::Live {
            if self.reconnects > 0 || self.hold.reconnecting {
                "reconnecting"
            } else {
                "connecting"
            }
        } else if self.hold.wanted() {
            "on-hold"
        } else {
            "live"
        }
    }

    // ----- caller side ------------------------------------------------------------------

    /// A frame of caller audio (base64 μ-law, already checked): forwarded when a session
    /// takes it, else held (the most recent [`HELD_FRAMES`]).
    pub fn caller_audio(&mut self, payload_b64: &str) -> CallerAudio {
        if self.link == Link::Live {
            return CallerAudio::Forward;
        }
        if self.link != Link::Gone {
            if self.held_audio.len() >= HELD_FRAMES {
                self.held_audio.pop_front();
            }
            self.held_audio.push_back(payload_b64.to_owned());
        }
        CallerAudio::Held
    }

    /// Twilio echoed a mark: that much assistant audio has played.
    pub fn mark(&mut self, name: &str, now: Now, out: &mut Vec<VoiceAction>) {
        self.idle.heard(now);
        if let MarkOutcome::Played { .. } = self.ledger.on_mark(name, now.ms) {
            if let Some(since) = self.awaiting_answer_since_ms.take() {
                let latency = now.ms.saturating_sub(since);
                self.last_turn_latency_ms = Some(latency);
                out.push(VoiceAction::Observed(Observation::TurnLatency(
                    Duration::from_millis(latency),
                )));
            }
        }
        self.hang_up_if_done(out);
    }

    /// The caller pressed a key: their input, which the model answers (SPEC §14).
    pub fn dtmf(&mut self, digit: &str, now: Now, out: &mut Vec<VoiceAction>) {
        self.idle.caller_spoke(now);
        let digit: String = digit
            .chars()
            .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
            .take(4)
            .collect();
        if digit.is_empty() || self.ending {
            return;
        }
        let text = format!("[The caller pressed the key {digit}]");
        self.transcript.push(Role::User, text.clone(), now.wall_ms);
        if self.link == Link::Live {
            out.push(VoiceAction::Model(
                ClientEvent::ConversationItemCreate {
                    event_id: None,
                    previous_item_id: None,
                    item: Item::user_text(&text),
                }
                .to_json(),
            ));
            self.request_response(out);
        }
        // Otherwise the new session gets it with the replayed transcript, and answers it.
    }

    // ----- model side -------------------------------------------------------------------

    /// A model socket reached `session.created`: configure it; after a reconnect give it the
    /// conversation back so the caller need not repeat themselves; then forward the audio
    /// held meanwhile, and greet or answer.
    pub fn model_ready(
        &mut self,
        reconnect: bool,
        agents: &AgentsConfig,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        if self.link == Link::Gone {
            return;
        }
        self.link = Link::Live;
        self.session_items.clear();
        self.response_active = false;
        out.push(VoiceAction::Configure(self.session_update(agents)));
        let resuming = std::mem::take(&mut self.resumed);
        let speak_first = std::mem::take(&mut self.speak_first);
        let mut answer = (!reconnect && self.settings.greet) || resuming || speak_first;
        if reconnect || resuming {
            // A call resumed on another node keeps its hold prompt until the agent's first
            // words (or the end of that response), so the caller never hears dead air.
            if !resuming {
                self.set_hold(None, Some(false), now, out);
            }
            let turns = self.transcript.replay(REPLAY_TURNS);
            for (role, text) in &turns {
                let item = match role {
                    Role::User => Item::user_text(text),
                    Role::Assistant => Item::assistant_text(text),
                    Role::Tool | Role::System => Item::system_text(text),
                };
                out.push(VoiceAction::Model(
                    ClientEvent::ConversationItemCreate {
                        event_id: None,
                        previous_item_id: None,
                        item,
                    }
                    .to_json(),
                ));
            }
            // The caller spoke last and got no answer before the socket died: answer now.
            answer |= matches!(turns.last(), Some((Role::User, _))) || self.response_owed;
        }
        if !self.held_audio.is_empty() {
            out.push(VoiceAction::ForwardHeld(
                self.held_audio.drain(..).collect(),
            ));
        }
        self.response_owed = false;
        if answer {
            self.request_response(out);
        }
    }

    /// Whether audio deltas of `item_id` are still wanted (not of an interrupted item).
    pub fn wants_audio(&self, item_id: &str) -> bool {
        !self.farewell && !self.ledger.is_interrupted(item_id)
    }

    /// μ-law audio of assistant item `item_id` (base64, `audio_ms` long) goes to Twilio,
    /// followed by its mark.
    pub fn assistant_audio(
        &mut self,
        item_id: &str,
        payload_b64: &str,
        audio_ms: u64,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        if self.farewell || self.ledger.is_interrupted(item_id) {
            return;
        }
        self.idle.heard(now);
        // Audio can only come from a live session: no reconnection hold is left to play.
        self.hold.reconnecting = false;
        self.stop_hold(now, out);
        out.push(VoiceAction::Twilio(media::media_message(
            &self.stream_sid,
            payload_b64,
        )));
        let mark = self.ledger.on_audio_sent(item_id, audio_ms, now.ms);
        out.push(VoiceAction::Twilio(media::mark_message(
            &self.stream_sid,
            &mark,
        )));
        if !self.session_items.contains(item_id) {
            self.session_items.insert(item_id.to_owned());
        }
        match &mut self.speaking {
            Some(speaking) if speaking.item_id == item_id => speaking.audio_ms += audio_ms,
            _ => {
                self.speaking = Some(Speaking {
                    item_id: item_id.to_owned(),
                    audio_ms,
                    ..Speaking::default()
                })
            }
        }
    }

    /// A server event other than audio deltas (see [`Self::assistant_audio`]).
    pub fn model_event(
        &mut self,
        event: ServerEvent,
        agents: &AgentsConfig,
        now: Now,
        entropy: u64,
        out: &mut Vec<VoiceAction>,
    ) {
        if self.farewell {
            return;
        }
        match event {
            ServerEvent::InputAudioBufferSpeechStarted { .. } => self.speech_started(now, out),
            ServerEvent::InputAudioBufferSpeechStopped { .. } => {
                self.idle.caller_spoke(now);
                self.awaiting_answer_since_ms = Some(now.ms);
            }
            ServerEvent::InputAudioBufferCommitted { item_id, .. } => {
                self.transcript.reserve(&item_id, Role::User, now.wall_ms);
            }
            ServerEvent::ConversationItemInputAudioTranscriptionCompleted {
                item_id,
                transcript,
                ..
            } => self
                .transcript
                .fill(&item_id, Role::User, transcript, now.wall_ms),
            ServerEvent::ResponseCreated { .. } => self.response_active = true,
            ServerEvent::ResponseOutputAudioTranscriptDelta { item_id, delta, .. } => {
                if self.ledger.is_interrupted(&item_id) {
                    return;
                }
                match &mut self.speaking {
                    Some(s) if s.item_id == item_id => s.text.push_str(&delta),
                    _ => {
                        self.speaking = Some(Speaking {
                            item_id,
                            text: delta,
                            ..Speaking::default()
                        })
                    }
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => {
                if self.ledger.is_interrupted(&item_id) {
                    return;
                }
                match &mut self.speaking {
                    Some(s) if s.item_id == item_id => s.text = transcript,
                    _ => {
                        self.speaking = Some(Speaking {
                            item_id,
                            text: transcript,
                            ..Speaking::default()
                        })
                    }
                }
                self.record_speaking(None, now);
            }
            ServerEvent::ResponseOutputItemDone { item, .. } => {
                if let Some((call_id, name, arguments)) = item.function_call() {
                    self.function_call(call_id, name, arguments, agents, now, out);
                }
            }
            ServerEvent::ResponseDone { response, .. } => {
                // A resumed call's first response ended without audio: its hold ends too.
                if self.hold.reconnecting && self.link == Link::Live {
                    self.set_hold(None, Some(false), now, out);
                }
                self.response_done(&response, now, entropy, out)
            }
            // Our `response.create` crossed one the server started itself: ask again after it.
            ServerEvent::Error { error, .. }
                if error.code.as_deref() == Some("conversation_already_has_active_response") =>
            {
                self.response_active = true;
                self.response_owed = true;
            }
            _ => {}
        }
    }

    /// The model socket is gone; the `Realtime` child reconnects with backoff.
    pub fn model_lost(&mut self, now: Now, out: &mut Vec<VoiceAction>) {
        if self.link == Link::Gone {
            return;
        }
        if self.link == Link::Live {
            self.reconnects += 1;
            out.push(VoiceAction::Observed(Observation::ModelReconnect));
        }
        // What the lost session was saying is all the caller will hear of it.
        self.record_speaking(None, now);
        self.link = Link::Reconnecting;
        self.response_active = false;
        self.set_hold(None, Some(true), now, out);
    }

    /// The model is gone for good (retry budget spent, or the key refused).
    pub fn model_gave_up(&mut self, reason: &str, now: Now, out: &mut Vec<VoiceAction>) {
        self.fall_back(reason, now, out);
    }

    /// A tool run by the `ToolExecutor` finished with `output` (JSON text).
    pub fn tool_finished(
        &mut self,
        call_id: &str,
        name: &str,
        output: &str,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        self.tools_pending = self.tools_pending.saturating_sub(1);
        if self.tools_pending == 0 {
            self.hold.hushed = false;
            self.set_hold(Some(false), None, now, out);
        }
        if self.link != Link::Live {
            // The session that asked is gone; the new one gets the transcript instead.
            self.transcript
                .push(Role::Tool, format!("{name} → {output}"), now.wall_ms);
            self.response_owed = true;
            return;
        }
        self.deliver_tool_output(call_id, name, output, now, out);
    }

    /// The hold timer of a tool call expired: if tools are still running, play hold audio.
    pub fn hold_due(&mut self, now: Now, out: &mut Vec<VoiceAction>) {
        if self.tools_pending > 0 && !self.hold.hushed {
            self.set_hold(Some(true), None, now, out);
        }
    }

    /// Tops up hold audio (`prompt`: the hold prompt, μ-law) once the assistant's own audio
    /// has played.
    pub fn hold_tick(&mut self, prompt: &[u8], now: Now, out: &mut Vec<VoiceAction>) {
        if !self.hold.wanted() {
            self.stop_hold(now, out);
            return;
        }
        if prompt.is_empty()
            || self.ledger.has_unplayed()
            || self.hold.queued_until_ms > now.ms + HOLD_LOW_WATER_MS
        {
            return;
        }
        let want = usize::try_from(HOLD_CHUNK_MS * ULAW_BYTES_PER_MS).unwrap_or(1600);
        let mut chunk = Vec::with_capacity(want);
        while chunk.len() < want {
            let start = self.hold.position % prompt.len();
            let end = (start + want - chunk.len()).min(prompt.len());
            chunk.extend_from_slice(prompt.get(start..end).unwrap_or_default());
            self.hold.position = end % prompt.len();
        }
        out.push(VoiceAction::Twilio(media::media_message(
            &self.stream_sid,
            &B64.encode(&chunk),
        )));
        self.hold.queued_until_ms = self.hold.queued_until_ms.max(now.ms) + HOLD_CHUNK_MS;
    }

    /// The retry delay of a failed response is over.
    pub fn retry_response(&mut self, out: &mut Vec<VoiceAction>) {
        if self.link == Link::Live && !self.ending {
            self.request_response(out);
        }
    }

    /// Time to rotate the model session before the provider's cap: at a quiet moment.
    pub fn rotation_due(&mut self, out: &mut Vec<VoiceAction>) {
        let quiet = self.link == Link::Live
            && !self.response_active
            && self.tools_pending == 0
            && !self.ledger.has_unplayed();
        if !quiet {
            if self.link != Link::Gone {
                out.push(VoiceAction::CheckRotationAfter(ROTATION_RETRY));
            }
            return;
        }
        self.link = Link::Reconnecting;
        out.push(VoiceAction::RotateModel);
        out.push(VoiceAction::CheckRotationAfter(self.settings.session_cap));
    }

    /// Another socket took over this call.
    pub fn replaced(&mut self, out: &mut Vec<VoiceAction>) {
        self.outcome = CallOutcome::Replaced;
        out.push(VoiceAction::HangUp);
    }

    /// The call is over: what its record keeps.
    pub fn finish(&mut self, now: Now) -> FinishedCall {
        self.record_speaking(None, now);
        FinishedCall {
            agent: self.agent.clone(),
            outcome: self.outcome,
            transcript: std::mem::take(&mut self.transcript).settled(),
            tools_used: std::mem::take(&mut self.tools_used),
            reconnects: self.reconnects,
        }
    }

    /// The transcript so far, with what the assistant is saying now.
    pub fn transcript_now(&self, now: Now) -> Transcript {
        let mut transcript = self.transcript.clone().settled();
        if let Some(speaking) = self
            .speaking
            .as_ref()
            .filter(|s| !s.recorded && !s.text.is_empty())
        {
            transcript.push(Role::Assistant, format!("{} …", speaking.text), now.wall_ms);
        }
        transcript
    }

    // ----- inside -----------------------------------------------------------------------

    /// `session.update` for the active agent. The voice and audio formats are those the call
    /// started with: a handoff changes instructions and tools only (SPEC §5.1).
    fn session_update(&self, agents: &AgentsConfig) -> String {
        let mut instructions = agents
            .agent(&self.agent)
            .map(|a| a.instructions.clone())
            .unwrap_or_default();
        if let Some(context) = &self.context {
            instructions.push_str("\n\n");
            instructions.push_str(context);
        }
        let tools: Vec<Value> = agents
            .voice_tools(&self.agent)
            .into_iter()
            .filter(|tool| !self.withheld.contains(&tool.name))
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                })
            })
            .collect();
        let format = match self.settings.audio_mode {
            AudioMode::Pcmu => json!({"type": "audio/pcmu"}),
            AudioMode::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        };
        let mut input = json!({
            "format": format,
            "turn_detection": self.settings.turn_detection,
        });
        if !self.settings.transcription_model.is_empty() {
            input["transcription"] = json!({ "model": self.settings.transcription_model });
        }
        let session = json!({
            "type": "realtime",
            "model": self.settings.model,
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {
                "input": input,
                "output": { "format": format, "voice": self.voice },
            },
            "tools": tools,
            "tool_choice": "auto",
        });
        match serde_json::from_value::<Session>(session) {
            Ok(session) => ClientEvent::SessionUpdate {
                event_id: None,
                session,
            }
            .to_json(),
            // Our own JSON above always fits the wire type.
            Err(_) => String::new(),
        }
    }

    /// Sends `response.create` now, or once the current response is done.
    fn request_response(&mut self, out: &mut Vec<VoiceAction>) {
        if self.response_active {
            self.response_owed = true;
            return;
        }
        self.response_active = true;
        self.response_owed = false;
        out.push(VoiceAction::Model(
            ClientEvent::ResponseCreate {
                event_id: None,
                response: None,
            }
            .to_json(),
        ));
    }

    /// The caller started talking. If assistant audio is still queued at Twilio, flush it and
    /// tell the model how much was actually heard (SPEC §5.1 barge-in); hold audio stops too.
    fn speech_started(&mut self, now: Now, out: &mut Vec<VoiceAction>) {
        self.idle.caller_spoke(now);
        if self.hold.queued_until_ms > now.ms || self.hold.ticking {
            // The caller talks over hold music: it stops, and stays off for these tools.
            if self.tools_pending > 0 {
                self.hold.hushed = true;
                self.hold.slow_tool = false;
            }
            if !self.hold.wanted() {
                self.stop_hold(now, out);
            }
        }
        let barge_in = self.ledger.barge_in(now.ms);
        if barge_in.clear {
            out.push(VoiceAction::Twilio(media::clear_message(&self.stream_sid)));
            out.push(VoiceAction::Observed(Observation::BargeIn));
        }
        if let Some(truncation) = barge_in.truncate {
            if self.session_items.contains(&truncation.item_id) {
                out.push(VoiceAction::Model(
                    ClientEvent::ConversationItemTruncate {
                        event_id: None,
                        item_id: truncation.item_id.clone(),
                        content_index: truncation.content_index,
                        audio_end_ms: truncation.audio_end_ms,
                    }
                    .to_json(),
                ));
            }
            if self
                .speaking
                .as_ref()
                .is_some_and(|s| s.item_id == truncation.item_id)
            {
                self.record_speaking(Some(truncation.audio_end_ms), now);
            }
        }
        if self
            .speaking
            .as_ref()
            .is_some_and(|s| barge_in.unheard.contains(&s.item_id))
        {
            self.record_speaking(Some(0), now);
        }
        // Audio the model thinks was heard but that never played: forget it entirely.
        for item_id in barge_in.unheard {
            if self.session_items.contains(&item_id) {
                out.push(VoiceAction::Model(
                    ClientEvent::ConversationItemDelete {
                        event_id: None,
                        item_id,
                    }
                    .to_json(),
                ));
            }
        }
        if barge_in.clear {
            self.speaking = None;
        }
    }

    fn function_call(
        &mut self,
        call_id: String,
        name: String,
        arguments: String,
        agents: &AgentsConfig,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        self.tools_used.push(name.clone());
        let scope = EffectScope {
            agents,
            agent: &self.agent,
            human_available: self.settings.human_available,
            medium: Medium::Voice,
            withheld: &self.withheld,
        };
        let Some(decision) = effects::decide(&name, &arguments, &scope) else {
            self.tools_pending += 1;
            out.push(VoiceAction::RunTool {
                call_id,
                name,
                arguments,
            });
            out.push(VoiceAction::CheckHoldAfter(self.settings.hold_after));
            return;
        };
        match decision.effect {
            Some(Effect::Handoff { from, to }) => {
                self.agent.clone_from(&to);
                out.push(VoiceAction::Configure(self.session_update(agents)));
                out.push(VoiceAction::HandedOff { from, to });
            }
            Some(Effect::Escalate { reason }) => {
                self.outcome = CallOutcome::Escalated;
                out.push(VoiceAction::Escalated { reason });
                self.end_after_playback(out);
            }
            Some(Effect::Voicemail) => {
                // The final record's outcome tells `/twilio/voice/next` to `<Record>`.
                self.outcome = CallOutcome::Voicemail;
                self.end_after_playback(out);
            }
            None => {}
        }
        self.deliver_tool_output(&call_id, &name, &decision.output.to_string(), now, out);
    }

    /// Gives the model a tool's output and asks it to go on once nothing else is pending.
    fn deliver_tool_output(
        &mut self,
        call_id: &str,
        name: &str,
        output: &str,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        self.transcript
            .push(Role::Tool, format!("{name} → {output}"), now.wall_ms);
        out.push(VoiceAction::Model(
            ClientEvent::ConversationItemCreate {
                event_id: None,
                previous_item_id: None,
                item: Item::function_call_output(call_id, output),
            }
            .to_json(),
        ));
        if self.tools_pending == 0 {
            self.request_response(out);
        }
    }

    fn response_done(
        &mut self,
        response: &ResponseObject,
        now: Now,
        entropy: u64,
        out: &mut Vec<VoiceAction>,
    ) {
        self.response_active = false;
        match response.status.as_deref() {
            Some("failed") => {
                let failure = Failure::of(response);
                out.push(VoiceAction::Observed(Observation::ResponseFailed {
                    reason: failure.reason.clone(),
                    fatal: failure.fatal,
                }));
                if failure.fatal {
                    return self.fall_back(&failure.reason, now, out);
                }
                self.response_failures += 1;
                match self
                    .settings
                    .response_retry
                    .delay_with(self.response_failures, entropy, None)
                {
                    Some(delay) => {
                        // The caller hears hold audio rather than silence meanwhile.
                        self.response_owed = false;
                        out.push(VoiceAction::RetryResponseAfter(delay));
                    }
                    None => self.fall_back(&failure.reason, now, out),
                }
                return;
            }
            Some("completed") => {
                out.push(VoiceAction::Observed(Observation::ResponseCompleted));
                self.response_failures = 0;
                // A turn ended: the call's state is worth keeping (SPEC §4 snapshots).
                out.push(VoiceAction::Snapshot);
            }
            _ => {}
        }
        if self.response_owed && self.tools_pending == 0 {
            self.request_response(out);
        }
        self.hang_up_if_done(out);
    }

    /// The model is gone for good: a person if one is available, else the apology.
    fn fall_back(&mut self, reason: &str, now: Now, out: &mut Vec<VoiceAction>) {
        if self.link == Link::Gone {
            return;
        }
        self.link = Link::Gone;
        self.held_audio.clear();
        out.push(VoiceAction::Observed(Observation::FellBack {
            reason: reason.to_owned(),
        }));
        self.hold.slow_tool = false;
        self.hold.reconnecting = false;
        self.stop_hold(now, out);
        self.response_active = false;
        self.response_owed = false;
        if self.settings.human_available {
            self.outcome = CallOutcome::Escalated;
            out.push(VoiceAction::Escalated {
                reason: format!("the assistant is unavailable ({reason})"),
            });
            out.push(VoiceAction::HangUp);
            return;
        }
        self.outcome = CallOutcome::Fallback;
        self.ending = true;
        out.push(VoiceAction::PlayFallback);
        out.push(VoiceAction::HangUpWithin(ENDING_GRACE));
    }

    /// Plays the fallback prompt (μ-law, `duration_ms` long) asked for by
    /// [`VoiceAction::PlayFallback`]; the call hangs up once it has played.
    pub fn play_fallback(
        &mut self,
        ulaw: &[u8],
        duration_ms: u64,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        if !ulaw.is_empty() {
            out.push(VoiceAction::Twilio(media::media_message(
                &self.stream_sid,
                &B64.encode(ulaw),
            )));
            let mark = self.ledger.on_audio_sent("fallback", duration_ms, now.ms);
            out.push(VoiceAction::Twilio(media::mark_message(
                &self.stream_sid,
                &mark,
            )));
        }
        self.hang_up_if_done(out);
    }

    /// The server is draining and this call must end: whatever plays is cut short (as a
    /// barge-in would), the caller hears the goodbye prompt (μ-law, `duration_ms` long), and
    /// the call hangs up once it has played. The model is no longer listened to. A call
    /// already saying its last words (escalation, fallback) is left to finish them.
    pub fn say_goodbye(
        &mut self,
        ulaw: &[u8],
        duration_ms: u64,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        if self.ending {
            return;
        }
        self.ending = true;
        self.farewell = true;
        self.link = Link::Gone;
        self.held_audio.clear();
        self.hold.slow_tool = false;
        self.hold.reconnecting = false;
        self.stop_hold(now, out);
        let cut = self.ledger.barge_in(now.ms);
        if cut.clear {
            out.push(VoiceAction::Twilio(media::clear_message(&self.stream_sid)));
        }
        // What the caller heard of the answer being spoken: all of it, unless it was cut.
        let speaking = self.speaking.as_ref().map(|s| s.item_id.clone());
        let heard = speaking.and_then(|item| match &cut.truncate {
            Some(t) if t.item_id == item => Some(t.audio_end_ms),
            _ if cut.unheard.contains(&item) => Some(0),
            _ => None,
        });
        self.record_speaking(heard, now);
        self.response_active = false;
        self.response_owed = false;
        self.awaiting_answer_since_ms = None;
        self.play_fallback(ulaw, duration_ms, now, out);
    }

    /// Close once the assistant's last words are heard, or after a grace period.
    fn end_after_playback(&mut self, out: &mut Vec<VoiceAction>) {
        self.ending = true;
        if !self.ledger.has_unplayed() && !self.response_active && !self.response_owed {
            out.push(VoiceAction::HangUp);
            return;
        }
        out.push(VoiceAction::HangUpWithin(ENDING_GRACE));
    }

    fn hang_up_if_done(&mut self, out: &mut Vec<VoiceAction>) {
        if self.ending
            && !self.ledger.has_unplayed()
            && !self.response_active
            && !self.response_owed
        {
            out.push(VoiceAction::HangUp);
        }
    }

    fn set_hold(
        &mut self,
        slow_tool: Option<bool>,
        reconnecting: Option<bool>,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) {
        if let Some(v) = slow_tool {
            self.hold.slow_tool = v;
        }
        if let Some(v) = reconnecting {
            self.hold.reconnecting = v;
        }
        if !self.hold.wanted() {
            self.stop_hold(now, out);
        } else if !self.hold.ticking {
            self.hold.ticking = true;
            out.push(VoiceAction::HoldTicks(true));
        }
    }

    /// Stops hold audio; what is still queued at Twilio is cleared so the model's voice
    /// follows at once. Hold audio is only queued once all assistant marks were echoed, so
    /// the clear flushes hold audio alone.
    fn stop_hold(&mut self, now: Now, out: &mut Vec<VoiceAction>) {
        if self.hold.ticking {
            self.hold.ticking = false;
            out.push(VoiceAction::HoldTicks(false));
        }
        if self.hold.queued_until_ms > now.ms {
            out.push(VoiceAction::Twilio(media::clear_message(&self.stream_sid)));
        }
        self.hold.queued_until_ms = 0;
    }

    /// The assistant's turn ended (completed or cut short): record what the caller heard.
    fn record_speaking(&mut self, heard_ms: Option<u64>, now: Now) {
        let Some(speaking) = self.speaking.as_mut() else {
            return;
        };
        if speaking.text.is_empty() {
            return;
        }
        if !speaking.recorded {
            speaking.recorded = true;
            self.transcript
                .push(Role::Assistant, speaking.text.clone(), now.wall_ms);
        }
        if let Some(heard) = heard_ms {
            self.transcript
                .truncate_last_assistant(heard, speaking.audio_ms.max(heard));
        }
    }
}

/// An earlier part of the call that this one continues.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumption {
    pub transcript: Transcript,
    pub tools_used: Vec<String>,
    /// The agent active when it stopped (a snapshot's), if it is still configured.
    pub agent: Option<String>,
    /// What the agent is told happened.
    pub note: String,
    /// Play the hold prompt until the model is ready (the caller was cut off).
    pub hold: bool,
}

/// What the agent is told when its call resumes after the stream broke.
pub const RESUMED_AFTER_DROP_NOTE: &str = "# The call was interrupted\nThe line dropped for a moment because of a technical problem on our side and the caller is back. Apologise in one short sentence and continue exactly where the conversation left off.";

/// What a call leaves for its record.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedCall {
    pub agent: String,
    pub outcome: CallOutcome,
    pub transcript: Transcript,
    pub tools_used: Vec<String>,
    pub reconnects: u32,
}

/// Why a response failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub fatal: bool,
}

/// Error types and codes no retry can fix: the account or key, not the moment.
const FATAL: [&str; 8] = [
    "insufficient_quota",
    "invalid_api_key",
    "authentication_error",
    "permission_error",
    "inference_not_authorized_error",
    "billing_hard_limit_reached",
    "account_deactivated",
    "model_not_found",
];

impl Failure {
    /// Classifies `response.done` with `status: "failed"` by its
    /// `status_details.error.{type,code}` (protocols-more.md §12.5): fatal for quota and
    /// credentials, transient for anything else (`server_error`, rate limits, unknown).
    pub fn of(response: &ResponseObject) -> Failure {
        let error = response
            .status_details
            .as_ref()
            .and_then(|d| d.get("error"));
        let field = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let kind = field("type");
        let code = field("code");
        let fatal = [kind, code]
            .into_iter()
            .flatten()
            .any(|k| FATAL.contains(&k));
        let mut reason = code.or(kind).unwrap_or("unknown").to_owned();
        if let Some(message) = field("message") {
            reason.push_str(": ");
            reason.extend(message.chars().take(200));
        }
        Failure { reason, fatal }
    }
}

mod idle;
mod supervisor;
pub use supervisor::Delivery;

#[cfg(test)]
mod tests;
