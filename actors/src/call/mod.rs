//! `Call`: one phone call over Twilio Media Streams, bridged to an OpenAI Realtime session.
//!
//! The `Call` *is* the Twilio socket's actor (`actix-web-actors` `WebsocketContext`), so it
//! lives exactly as long as the socket. It owns the call's state — playback ledger,
//! transcript, active agent, tool and response bookkeeping — and three children:
//! `Realtime` (the model socket, supervised), `ToolExecutor`, and in `pcm24k` mode a
//! `Transcoder`. All decisions about barge-in and truncation are made by the pure
//! `domain::ledger`; this actor only moves frames and timers.
//!
//! Socket glue (`ws::WebsocketContext`, close codes) stays in `handlers.rs` so a later move
//! from the deprecated `actix-web-actors` to `actix-ws` is mechanical.
//!
//! A call in relay mode (ConversationRelay, SPEC §5.2) is the [`relay::RelayCall`]: same
//! registry entry, record and dashboard view, but text both ways and a chat model.

mod handlers;
pub mod messages;
pub mod relay;
mod session;
mod socket;

use socket::TwilioSocket as _;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use base64::Engine as _;

use crate::census::Kind;
pub(crate) use crate::clock::wall_clock_ms;
use crate::config::AudioMode;
use crate::domain::ledger::PlaybackLedger;
use crate::domain::records::{AudioMode as RecordedAudio, CallOutcome, CallRecord};
use crate::domain::transcript::{Role, Transcript, Turn};
use crate::engine::Shared;
use crate::protocol::twilio::media;
use crate::realtime::messages::{SendToModel, Shutdown};
use crate::realtime::Realtime;
use crate::registry::messages::{CallEnded, CallHandle, CallInfo, RegisterCall};
use crate::registry::Registry;
use crate::tools::ToolExecutor;
use crate::transcoder::Transcoder;

pub(crate) const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// Hold audio is queued at Twilio in chunks this long, topped up when less than
/// `HOLD_LOW_WATER_MS` is left, so it stops within a chunk when the model speaks again.
const HOLD_CHUNK_MS: u64 = 200;
const HOLD_LOW_WATER_MS: u64 = 100;
const HOLD_TICK: Duration = Duration::from_millis(50);
/// Without a `start` frame this soon after the upgrade, the socket is not Twilio.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A call being handed to a human closes at the latest this long after the decision,
/// even if the model's goodbye never finishes playing.
const ESCALATION_GRACE: Duration = Duration::from_secs(8);

/// Who the call is with, known once Twilio's `start` frame arrives.
struct Identity {
    call_sid: String,
    stream_sid: String,
    registration: u64,
    customer: Option<String>,
}

/// The model's children of a live call.
struct Children {
    model: Addr<Realtime>,
    tools: Addr<ToolExecutor>,
    transcoder: Option<Addr<Transcoder>>,
}

/// Why hold audio is playing; it stops when no reason is left.
#[derive(Default)]
struct Hold {
    slow_tool: bool,
    reconnecting: bool,
    /// Position in the hold prompt (it loops).
    position: usize,
    /// Call-clock time until which hold audio is already queued at Twilio.
    queued_until_ms: u64,
    ticker: Option<SpawnHandle>,
}

impl Hold {
    fn wanted(&self) -> bool {
        self.slow_tool || self.reconnecting
    }
}

/// The assistant item whose audio is being forwarded, with its transcript so far.
#[derive(Default)]
struct Speaking {
    item_id: String,
    text: String,
    audio_ms: u64,
    /// Whether its transcript already went into the call transcript.
    recorded: bool,
}

pub struct Call {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    /// Origin of the call's monotonic millisecond clock.
    clock: Instant,
    started_at_ms: u64,
    audio_mode: AudioMode,
    identity: Option<Identity>,
    children: Option<Children>,
    model_ready: bool,
    agent: String,
    voice: String,
    ledger: PlaybackLedger,
    transcript: Transcript,
    /// Twilio's Real-Time Transcription of the line, for the record.
    transcriptions: Vec<Turn>,
    speaking: Option<Speaking>,
    /// Items the current model session produced (truncating others would be refused).
    session_items: std::collections::HashSet<String>,
    response_active: bool,
    tools_pending: usize,
    /// A `response.create` is owed once the current response is done.
    response_owed: bool,
    hold: Hold,
    tools_used: Vec<String>,
    model_reconnects: u32,
    outcome: CallOutcome,
    /// The call closes once the assistant's last words have played (escalation, the
    /// fallback apology), or after a grace period.
    ending: bool,
    /// Consecutive unusable frames from Twilio (SPEC §12: 100 in a row closes with 1008).
    bad_frames: socket::BadFrames,
    /// Reused base64 decode buffer for caller audio.
    scratch: Vec<u8>,
    /// When the caller last stopped speaking, until the answer's first audio is played.
    awaiting_answer_since_ms: Option<u64>,
    last_turn_latency_ms: Option<u64>,
}

impl Call {
    pub fn new(shared: Arc<Shared>, registry: Addr<Registry>) -> Self {
        let agent = shared.agents.default_agent.clone();
        let voice = shared
            .agents
            .agent(&agent)
            .map(|a| a.voice.clone())
            .unwrap_or_default();
        Call {
            audio_mode: shared.config.voice.audio_mode,
            bad_frames: socket::BadFrames::new(shared.config.limits.max_bad_frames_in_row),
            shared,
            registry,
            clock: Instant::now(),
            started_at_ms: wall_clock_ms(),
            identity: None,
            children: None,
            model_ready: false,
            agent,
            voice,
            ledger: PlaybackLedger::new(),
            transcript: Transcript::default(),
            transcriptions: Vec::new(),
            speaking: None,
            session_items: Default::default(),
            response_active: false,
            tools_pending: 0,
            response_owed: false,
            hold: Hold::default(),
            tools_used: Vec::new(),
            model_reconnects: 0,
            outcome: CallOutcome::Completed,
            ending: false,
            scratch: Vec::with_capacity(512),
            awaiting_answer_since_ms: None,
            last_turn_latency_ms: None,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn model(&self) -> Option<&Addr<Realtime>> {
        self.children.as_ref().map(|c| &c.model)
    }

    fn send_to_model(&self, json: String) {
        if let Some(model) = self.model() {
            model.do_send(SendToModel(json));
        }
    }

    /// Forwards μ-law audio of assistant item `item_id` to Twilio, followed by its mark.
    fn play_assistant_audio(
        &mut self,
        item_id: &str,
        payload_b64: &str,
        audio_ms: u64,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(stream_sid) = self.identity.as_ref().map(|id| id.stream_sid.clone()) else {
            return;
        };
        self.end_hold(ctx);
        let now = self.now_ms();
        ctx.text(media::media_message(&stream_sid, payload_b64));
        let mark = self.ledger.on_audio_sent(item_id, audio_ms, now);
        ctx.text(media::mark_message(&stream_sid, &mark));
        self.session_items.insert(item_id.to_string());
        match &mut self.speaking {
            Some(speaking) if speaking.item_id == item_id => speaking.audio_ms += audio_ms,
            _ => {
                self.speaking = Some(Speaking {
                    item_id: item_id.to_string(),
                    audio_ms,
                    ..Speaking::default()
                })
            }
        }
    }

    /// Starts hold audio for a reason (a slow tool, a reconnecting model).
    fn begin_hold(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.hold.ticker.is_none() && self.hold.wanted() {
            let handle = ctx.run_interval(HOLD_TICK, |act, ctx| act.hold_tick(ctx));
            self.hold.ticker = Some(handle);
        }
    }

    /// Queues the next chunk of hold audio once the assistant's own audio has played.
    fn hold_tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.hold.wanted() {
            self.end_hold(ctx);
            return;
        }
        let now = self.now_ms();
        if self.ledger.has_unplayed() || self.hold.queued_until_ms > now + HOLD_LOW_WATER_MS {
            return;
        }
        let Some(stream_sid) = self.identity.as_ref().map(|id| id.stream_sid.clone()) else {
            return;
        };
        let prompt = self.shared.prompts.hold.ulaw();
        if prompt.is_empty() {
            return;
        }
        let want = (HOLD_CHUNK_MS * 8) as usize;
        let mut chunk = Vec::with_capacity(want);
        while chunk.len() < want {
            let start = self.hold.position % prompt.len();
            let end = (start + want - chunk.len()).min(prompt.len());
            chunk.extend_from_slice(prompt.get(start..end).unwrap_or_default());
            self.hold.position = end % prompt.len();
        }
        ctx.text(media::media_message(&stream_sid, &B64.encode(&chunk)));
        self.hold.queued_until_ms = self.hold.queued_until_ms.max(now) + HOLD_CHUNK_MS;
    }

    /// Stops hold audio; what is still queued at Twilio is cleared so the model's voice
    /// follows at once.
    fn end_hold(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(handle) = self.hold.ticker.take() {
            ctx.cancel_future(handle);
        }
        if self.hold.queued_until_ms > self.now_ms() {
            if let Some(id) = &self.identity {
                // Hold audio is only queued once all assistant marks were echoed, so this
                // clear flushes hold audio alone.
                ctx.text(media::clear_message(&id.stream_sid));
            }
        }
        self.hold.queued_until_ms = 0;
    }

    fn set_hold_reason(
        &mut self,
        slow_tool: Option<bool>,
        reconnecting: Option<bool>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if let Some(v) = slow_tool {
            self.hold.slow_tool = v;
        }
        if let Some(v) = reconnecting {
            self.hold.reconnecting = v;
        }
        if self.hold.wanted() {
            self.begin_hold(ctx);
        } else {
            self.end_hold(ctx);
        }
    }

    /// The assistant's turn ended (completed or cut short): record what the caller heard.
    fn record_speaking(&mut self, heard_ms: Option<u64>) {
        let Some(speaking) = self.speaking.as_mut() else {
            return;
        };
        if speaking.text.is_empty() {
            return;
        }
        if !speaking.recorded {
            speaking.recorded = true;
            self.transcript
                .push(Role::Assistant, speaking.text.clone(), wall_clock_ms());
        }
        if let Some(heard) = heard_ms {
            self.transcript
                .truncate_last_assistant(heard, speaking.audio_ms.max(heard));
        }
    }

    /// Closes the Twilio socket; Twilio then requests the `<Connect action>` URL.
    fn hang_up(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(ws::CloseCode::Normal.into()));
        ctx.stop();
    }

    /// Close after the assistant's last words are heard, or after a grace period.
    fn hang_up_after_playback(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.ending = true;
        if !self.ledger.has_unplayed() && !self.response_active {
            self.hang_up(ctx);
            return;
        }
        ctx.run_later(ESCALATION_GRACE, |act, ctx| act.hang_up(ctx));
    }

    /// The model is gone for good: a human if one is configured, else an apology.
    fn fall_back(&mut self, reason: &str, ctx: &mut ws::WebsocketContext<Self>) {
        tracing::warn!(call_sid = %self.call_sid(), %reason, "model unavailable: falling back");
        self.hold.slow_tool = false;
        self.hold.reconnecting = false;
        self.end_hold(ctx);
        self.response_active = false;
        if self.shared.config.twilio.human_number.is_some() {
            self.escalate(ctx);
            self.hang_up(ctx);
            return;
        }
        self.outcome = CallOutcome::Fallback;
        let Some(stream_sid) = self.identity.as_ref().map(|id| id.stream_sid.clone()) else {
            self.hang_up(ctx);
            return;
        };
        let prompt = &self.shared.prompts.fallback;
        ctx.text(media::media_message(
            &stream_sid,
            &B64.encode(prompt.ulaw()),
        ));
        let now = self.now_ms();
        let mark = self
            .ledger
            .on_audio_sent("fallback", prompt.duration_ms(), now);
        ctx.text(media::mark_message(&stream_sid, &mark));
        self.hang_up_after_playback(ctx);
    }

    /// Marks the call for a human: `/twilio/voice/next` answers `<Dial>` once the socket closes.
    fn escalate(&mut self, _ctx: &mut ws::WebsocketContext<Self>) {
        self.outcome = CallOutcome::Escalated;
        if let Err(err) = self.shared.store.set_escalated(self.call_sid()) {
            tracing::error!(error = %err, "could not record the escalation");
        }
    }

    /// Writes the call record and the customer's memory (SPEC §5.1, §7).
    fn write_record(&mut self) {
        self.record_speaking(None);
        let Some(id) = &self.identity else {
            return;
        };
        let mode = match self.audio_mode {
            AudioMode::Pcmu => RecordedAudio::Pcmu,
            AudioMode::Pcm24k => RecordedAudio::Pcm24k,
        };
        let mut record = CallRecord::new(
            id.call_sid.clone(),
            id.stream_sid.clone(),
            id.customer.clone(),
            self.agent.clone(),
            mode,
            self.started_at_ms,
        );
        record.transcript = std::mem::take(&mut self.transcript);
        record.tools_used = std::mem::take(&mut self.tools_used);
        record.transcriptions = std::mem::take(&mut self.transcriptions);
        record.model_reconnects = self.model_reconnects;
        record.finish(self.outcome, wall_clock_ms());
        crate::metrics::call_finished(self.outcome.as_str());
        if let Err(err) = self.shared.store.put_call(&record) {
            tracing::error!(error = %err, call_sid = %id.call_sid, "call record not written");
        }
        if let Some(customer) = &id.customer {
            let summary = record.summary();
            if let Err(err) = self
                .shared
                .store
                .record_call_for_customer(customer, summary)
            {
                tracing::error!(error = %err, "customer memory not updated");
            }
        }
    }
}

impl Actor for Call {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.census.started(Kind::Call);
        ctx.run_later(START_TIMEOUT, |act, ctx| {
            if act.identity.is_none() {
                tracing::warn!("media socket sent no start frame; closing");
                ctx.close(Some(ws::CloseCode::Policy.into()));
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.census.stopped(Kind::Call);
        if let Some(children) = self.children.take() {
            children.model.do_send(Shutdown);
        }
        self.write_record();
        if let Some(id) = &self.identity {
            self.registry.do_send(CallEnded {
                call_sid: id.call_sid.clone(),
                registration: id.registration,
            });
            tracing::info!(call_sid = %id.call_sid, "call ended");
        }
    }
}

/// Starts the children and registers the call once Twilio's `start` names it.
pub(crate) fn register(
    call: &mut Call,
    info: CallInfo,
    customer: Option<String>,
    ctx: &mut ws::WebsocketContext<Call>,
) {
    let registration = crate::registry::next_registration();
    call.identity = Some(Identity {
        call_sid: info.call_sid.clone(),
        stream_sid: info.stream_sid.clone(),
        registration,
        customer: customer.clone(),
    });
    crate::metrics::call_started();
    call.registry.do_send(RegisterCall {
        handle: CallHandle::new(&ctx.address()),
        info,
        registration,
    });
    let model = {
        let shared = call.shared.clone();
        let notices = ctx.address().recipient();
        Supervisor::start(move |_| Realtime::new(shared, notices))
    };
    let tools = ToolExecutor::new(call.shared.clone(), customer, ctx.address().recipient()).start();
    let transcoder = match call.audio_mode {
        AudioMode::Pcmu => None,
        AudioMode::Pcm24k => match Transcoder::new(
            model.clone(),
            ctx.address().recipient(),
            call.shared.clone(),
        ) {
            Ok(t) => Some(t.start()),
            Err(err) => {
                tracing::error!(error = %err, "transcoder unavailable; using pcmu");
                call.audio_mode = AudioMode::Pcmu;
                None
            }
        },
    };
    call.children = Some(Children {
        model,
        tools,
        transcoder,
    });
    let cap = Duration::from_secs(call.shared.config.voice.session_cap_secs.max(1));
    ctx.run_later(cap, session::rotate_when_idle);
}
