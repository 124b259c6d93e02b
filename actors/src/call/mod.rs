//! `Call`: one phone call over Twilio Media Streams, bridged to an OpenAI Realtime session.
//!
//! The `Call` *is* the Twilio socket's actor (`actix-web-actors` `WebsocketContext`), so it
//! lives exactly as long as the socket. What the call does — barge-in, hold audio, tools and
//! effects, failed responses, reconnects, the transcript — is decided by the pure
//! [`VoiceCall`] state machine (`domain::voice`); this actor feeds it frames, model events,
//! tool results and timer ticks, and carries out the [`VoiceAction`]s it returns. It owns
//! three children: `Realtime` (the model socket, supervised), `ToolExecutor`, and in
//! `pcm24k` mode a `Transcoder`.
//!
//! Socket glue (`ws::WebsocketContext`, close codes) stays in `handlers.rs` and `socket.rs`
//! so a later move from the deprecated `actix-web-actors` to `actix-ws` is mechanical.
//!
//! A call in relay mode (ConversationRelay, SPEC §5.2) is the [`relay::RelayCall`]: same
//! registry entry, record and dashboard view, but text both ways and a chat model.

mod handlers;
mod listen;
pub mod messages;
pub mod relay;
mod socket;
mod supervise;

use socket::TwilioSocket as _;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use base64::Engine as _;
use tracing::Instrument as _;

use crate::census::Kind;
pub(crate) use crate::clock::wall_clock_ms;
use crate::config::AudioMode;
use crate::domain::effects;
use crate::domain::identity;
use crate::domain::memory;
use crate::domain::outreach;
use crate::domain::records::{mask_phone, AudioMode as RecordedAudio, CallRecord};
use crate::domain::voice::{
    FinishedCall, Now, Observation, Resumption, VoiceAction, VoiceCall, VoiceSettings, HOLD_TICK,
    RESUMED_AFTER_DROP_NOTE,
};
use crate::engine::Shared;
use crate::metrics::Hop;
use crate::realtime::link::{ModelLink, ModelReader};
use crate::realtime::messages::{RotateSession, Shutdown};
use crate::realtime::Realtime;
use crate::registry::messages::{CallEnded, CallHandle, CallInfo, RegisterCall};
use crate::registry::Registry;
use crate::tools::messages::RunTool;
use crate::tools::ToolExecutor;
use crate::transcoder::messages::CallerAudio;
use crate::transcoder::Transcoder;

pub(crate) const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// Without a `start` frame this soon after the upgrade, the socket is not Twilio.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the call is with, known once Twilio's `start` frame arrives.
struct Identity {
    call_sid: String,
    stream_sid: String,
    registration: u64,
    /// The caller's number, or an identity of this call alone (`domain::identity`).
    customer: String,
}

/// The model's children of a live call.
struct Children {
    model: Addr<Realtime>,
    /// The model socket's write half: the call writes its audio, client events and
    /// `session.update` from its own task (`realtime::link`).
    link: ModelLink,
    tools: Addr<ToolExecutor>,
    transcoder: Option<Addr<Transcoder>>,
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
    /// The call's logic; exists once Twilio's `start` names the stream.
    voice: Option<VoiceCall>,
    hold_ticker: Option<SpawnHandle>,
    /// A failed response's reason is logged once per call.
    failure_logged: bool,
    /// Writes `/twilio/voice/next` will read, not yet done: the socket closes after them.
    marks_in_flight: u32,
    hang_up_waiting: bool,
    /// The stream ended in order (Twilio's `stop` or close frame, or we closed it); else
    /// it broke, and the call is to be resumed.
    ended_cleanly: bool,
    /// Consecutive unusable frames from Twilio (SPEC §12: 100 in a row closes with 1008).
    bad_frames: socket::BadFrames,
    /// Reused base64 decode buffer for caller audio.
    scratch: Vec<u8>,
    /// Reused buffer of the actions the voice logic returns.
    actions: Vec<VoiceAction>,
    /// The call's span and its children in progress (model turns, tools).
    trace: crate::trace::Trace,
    /// A one-way stream of a call people talk on (`voice.mode = "human"`): listened to
    /// and transcribed, never answered.
    listening: Option<listen::Listening>,
}

impl Call {
    pub fn new(shared: Arc<Shared>, registry: Addr<Registry>) -> Self {
        Call {
            audio_mode: shared.config.voice.audio_mode,
            bad_frames: socket::BadFrames::new(shared.config.limits.max_bad_frames_in_row),
            shared,
            registry,
            clock: Instant::now(),
            started_at_ms: wall_clock_ms(),
            identity: None,
            children: None,
            voice: None,
            hold_ticker: None,
            failure_logged: false,
            marks_in_flight: 0,
            hang_up_waiting: false,
            ended_cleanly: false,
            scratch: Vec::with_capacity(512),
            actions: Vec::new(),
            trace: crate::trace::Trace::default(),
            listening: None,
        }
    }

    fn now(&self) -> Now {
        Now {
            ms: u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            wall_ms: wall_clock_ms(),
        }
    }

    fn model(&self) -> Option<&Addr<Realtime>> {
        self.children.as_ref().map(|c| &c.model)
    }

    /// Runs one input through the voice logic and carries out what it asks.
    fn drive(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        input: impl FnOnce(&mut VoiceCall, &Shared, Now, &mut Vec<VoiceAction>),
    ) {
        let now = self.now();
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        let mut actions = std::mem::take(&mut self.actions);
        input(voice, &self.shared, now, &mut actions);
        for action in actions.drain(..) {
            self.perform(action, now, ctx);
        }
        self.actions = actions;
    }

    fn perform(&mut self, action: VoiceAction, now: Now, ctx: &mut ws::WebsocketContext<Self>) {
        match action {
            VoiceAction::Twilio(frame) => ctx.text(frame),
            // Nothing is written to a socket that is not ready: the voice logic configures
            // every new session and replays the transcript into it once it is `Ready`.
            VoiceAction::Model(event) => {
                if let Some(children) = &self.children {
                    let _ = children.link.send(event);
                }
            }
            VoiceAction::Configure(update) => {
                if let Some(children) = &self.children {
                    let _ = children.link.configure(update);
                }
            }
            VoiceAction::ForwardHeld(frames) => {
                let received = Instant::now();
                for payload in frames {
                    if B64
                        .decode_vec(payload.as_bytes(), &mut self.scratch)
                        .is_ok()
                    {
                        self.forward_caller_audio(&payload, received);
                    }
                    self.scratch.clear();
                }
            }
            VoiceAction::RunTool {
                call_id,
                name,
                arguments,
            } => {
                self.trace.tool_started(&call_id, &name);
                if let Some(children) = &self.children {
                    children.tools.do_send(RunTool {
                        call_id,
                        name,
                        arguments,
                        agent: self.voice.as_ref().map(|v| v.agent().to_owned()),
                    });
                }
            }
            VoiceAction::CheckIdleAfter(after) => {
                ctx.run_later(after, |act, ctx| {
                    act.drive(ctx, |voice, _, now, out| voice.idle_due(now, out));
                });
            }
            VoiceAction::CheckHoldAfter(after) => {
                ctx.run_later(after, |act, ctx| {
                    act.drive(ctx, |voice, _, now, out| voice.hold_due(now, out));
                });
            }
            VoiceAction::HoldTicks(true) => {
                if self.hold_ticker.is_none() {
                    let ticker = ctx.run_interval(HOLD_TICK, |act, ctx| {
                        act.drive(ctx, |voice, shared, now, out| {
                            voice.hold_tick(shared.prompts.hold.ulaw(), now, out)
                        });
                    });
                    self.hold_ticker = Some(ticker);
                }
            }
            VoiceAction::HoldTicks(false) => {
                if let Some(ticker) = self.hold_ticker.take() {
                    ctx.cancel_future(ticker);
                }
            }
            VoiceAction::RetryResponseAfter(after) => {
                ctx.run_later(after, |act, ctx| {
                    act.drive(ctx, |voice, _, _, out| voice.retry_response(out));
                });
            }
            VoiceAction::CheckRotationAfter(after) => {
                ctx.run_later(after, |act, ctx| {
                    act.drive(ctx, |voice, _, _, out| voice.rotation_due(out));
                });
            }
            VoiceAction::RotateModel => {
                tracing::info!(call_sid = %self.call_sid(), "rotating the model session");
                if let Some(model) = self.model() {
                    model.do_send(RotateSession);
                }
            }
            VoiceAction::Escalated { reason } => {
                tracing::warn!(call_sid = %self.call_sid(), %reason, "call handed to a person");
                crate::metrics::escalation("voice");
                // Written before the stream closes: Twilio asks `/twilio/voice/next` after.
                let store = self.shared.store.clone();
                let call_sid = self.call_sid().to_owned();
                self.marks_in_flight += 1;
                let commit = crate::trace::store_commit(self.trace.span(), "escalation");
                ctx.spawn(
                    async move { store.set_escalated(&call_sid).await }
                        .instrument(commit)
                        .into_actor(self)
                        .map(|written, act, ctx| {
                            if let Err(err) = written {
                                crate::metrics::store_error("write");
                                tracing::error!(error = %err, "could not record the escalation");
                            }
                            act.marks_in_flight -= 1;
                            if act.marks_in_flight == 0 && act.hang_up_waiting {
                                act.hang_up(ctx);
                            }
                        }),
                );
            }
            VoiceAction::HandedOff { from, to } => {
                tracing::info!(call_sid = %self.call_sid(), %from, %to, "handoff");
            }
            VoiceAction::PlayFallback => {
                let shared = self.shared.clone();
                let prompt = &shared.prompts.fallback;
                if let Some(voice) = self.voice.as_mut() {
                    let mut more = Vec::new();
                    voice.play_fallback(prompt.ulaw(), prompt.duration_ms(), now, &mut more);
                    for action in more {
                        self.perform(action, now, ctx);
                    }
                }
            }
            VoiceAction::HangUp => self.hang_up(ctx),
            VoiceAction::HangUpWithin(grace) => {
                ctx.run_later(grace, |act, ctx| act.hang_up(ctx));
            }
            VoiceAction::Snapshot => self.snapshot(now),
            VoiceAction::Observed(observation) => self.observe(observation),
        }
    }

    fn observe(&mut self, observation: Observation) {
        match observation {
            Observation::TurnLatency(latency) => crate::metrics::turn_latency(latency),
            Observation::BargeIn => crate::metrics::barge_in(),
            Observation::ModelReconnect => crate::metrics::model_reconnect(),
            Observation::ResponseFailed { reason, fatal } => {
                crate::metrics::model_failure(fatal);
                if fatal {
                    self.shared.health.model_failing(&reason);
                }
                if !std::mem::replace(&mut self.failure_logged, true) {
                    tracing::warn!(call_sid = %self.call_sid(), %reason, fatal, "a model response failed");
                }
            }
            Observation::ResponseCompleted => self.shared.health.model_working(),
            Observation::FellBack { reason } => {
                tracing::warn!(call_sid = %self.call_sid(), %reason, "model unavailable: falling back");
            }
        }
    }

    /// Sends caller audio (base64 μ-law, decoded into `scratch`) on its way to the model.
    fn forward_caller_audio(&self, payload: &str, received: Instant) {
        let Some(children) = &self.children else {
            return;
        };
        match &children.transcoder {
            Some(transcoder) => transcoder.do_send(CallerAudio {
                ulaw: self.scratch.clone(),
                received,
            }),
            // Audio for a session that is not configured yet would be read in the wrong
            // format: it is not written.
            None => {
                if children.link.append_audio(payload).is_ok() {
                    crate::metrics::hop_latency(Hop::Inbound, received);
                }
            }
        }
    }

    /// Closes the Twilio socket; Twilio then requests the `<Connect action>` URL — so a mark
    /// that URL reads (the escalation) is written first.
    fn hang_up(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.marks_in_flight > 0 {
            self.hang_up_waiting = true;
            return;
        }
        self.ended_cleanly = true;
        ctx.close(Some(ws::CloseCode::Normal.into()));
        ctx.stop();
    }

    /// The call's record as it stands: `finished` the voice logic's account of it.
    fn record(&self, finished: FinishedCall) -> Option<CallRecord> {
        let id = self.identity.as_ref()?;
        let mode = match self.audio_mode {
            AudioMode::Pcmu => RecordedAudio::Pcmu,
            AudioMode::Pcm24k => RecordedAudio::Pcm24k,
        };
        let remembered = identity::is_lasting(&id.customer).then(|| id.customer.clone());
        let mut record = CallRecord::new(
            id.call_sid.clone(),
            id.stream_sid.clone(),
            remembered,
            finished.agent,
            mode,
            self.started_at_ms,
        );
        record.transcript = finished.transcript;
        record.tools_used = finished.tools_used;
        record.model_reconnects = finished.reconnects;
        record.node = Some(self.shared.node_id.clone());
        Some(record)
    }

    /// A snapshot of the live call, so another node can resume it (SPEC §4).
    fn snapshot(&self, now: Now) {
        let Some(record) = self
            .voice
            .as_ref()
            .and_then(|voice| self.record(voice.snapshot(now)))
        else {
            return;
        };
        let store = self.shared.store.clone();
        actix::spawn(async move {
            if let Err(err) = store.put_call(&record).await {
                crate::metrics::store_error("write");
                tracing::warn!(error = %err, call_sid = %record.call_sid, "call snapshot not written");
            }
        });
    }

    /// Writes the call record and the customer's memory (SPEC §5.1, §7).
    fn write_record(&mut self) {
        let now = self.now();
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        if !self.ended_cleanly {
            voice.dropped();
        }
        let finished = voice.finish(now);
        let outcome = finished.outcome;
        let Some(mut record) = self.record(finished) else {
            return;
        };
        let remembered = record.customer.clone();
        record.finish(outcome, now.wall_ms);
        crate::metrics::call_finished(outcome.as_str());
        self.trace.finish(outcome.as_str());
        let commit = crate::trace::store_commit(self.trace.span(), "call_record");
        crate::metrics::call_outcome_by_agent(&record.agent, outcome.as_str());
        let store = self.shared.store.clone();
        actix::spawn(async move {
            if let Err(err) = store.put_call(&record).await {
                crate::metrics::store_error("write");
                tracing::error!(error = %err, call_sid = %record.call_sid, "call record not written");
            }
            if let Some(customer) = &remembered {
                if let Err(err) = store
                    .record_call_for_customer(customer, record.summary())
                    .await
                {
                    crate::metrics::store_error("write");
                    tracing::error!(error = %err, customer = %mask_phone(customer), "customer memory not updated");
                }
            }
        }.instrument(commit));
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
        listen::finish(self);
        if let Some(id) = &self.identity {
            self.registry.do_send(CallEnded {
                call_sid: id.call_sid.clone(),
                registration: id.registration,
            });
            tracing::info!(call_sid = %id.call_sid, "call ended");
        }
    }
}

/// Starts the children and registers the call once Twilio's `start` names it; the call's
/// agent is told what earlier contact taught us about the caller (SPEC §7, §14).
/// Why a stream continues an earlier part of its call (its `<Parameter>`s say).
pub(crate) enum Resume {
    /// A transfer to a person that did not go through (Twilio's `DialCallStatus`).
    AfterDial(String),
    /// The previous stream broke (a node died, the network failed).
    AfterDrop,
}

/// A call the engine placed: who takes it, and why it was placed.
pub(crate) struct Placed {
    pub agent: String,
    pub reason: String,
}

pub(crate) fn register(
    call: &mut Call,
    info: CallInfo,
    from: Option<&str>,
    resumed: Option<Resume>,
    placed: Option<Placed>,
    ctx: &mut ws::WebsocketContext<Call>,
) {
    let registration = crate::registry::next_registration();
    let customer = identity::caller_key(from, &info.call_sid, call.shared.config.country());
    call.trace =
        crate::trace::Trace::new(crate::trace::call_span(&info.call_sid, &customer, "media"));
    call.identity = Some(Identity {
        call_sid: info.call_sid.clone(),
        stream_sid: info.stream_sid.clone(),
        registration,
        customer: customer.clone(),
    });
    crate::metrics::call_started();
    call.registry.do_send(RegisterCall {
        handle: CallHandle::new(&ctx.address()),
        info: info.clone(),
        registration,
    });
    // The model socket opens while what we know of the caller is read. The `Realtime` runs
    // on this arbiter, so the two share its socket's write half.
    let link = ModelLink::new();
    let model = {
        let shared = call.shared.clone();
        let notices = ctx.address().recipient();
        let link = link.clone();
        Supervisor::start(move |_| Realtime::new(shared, notices, link))
    };
    let tools = ToolExecutor::new(
        call.shared.clone(),
        Some(customer.clone()),
        ctx.address().recipient(),
    )
    .start();
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
    // The model socket's events are read in this call's own task.
    ctx.spawn(ModelReader::new(link.clone()));
    call.children = Some(Children {
        model,
        link,
        tools,
        transcoder,
    });
    // Until the call's logic exists, the socket's frames and the model's notices wait.
    let shared = call.shared.clone();
    let call_sid = info.call_sid.clone();
    ctx.wait(
        async move {
            let (context, line) = if identity::is_lasting(&customer) {
                caller_context(&shared, &customer).await
            } else {
                (None, None)
            };
            // The first part of this call ended in a transfer nobody took: continue it.
            let earlier = match &resumed {
                Some(_) => match shared.store.get_call(&call_sid).await {
                    Ok(record) => record,
                    Err(err) => {
                        tracing::warn!(error = %err, "the first part of the call is unreadable");
                        None
                    }
                },
                None => None,
            };
            (context, line, resumed, earlier)
        }
        .into_actor(call)
        .map(move |(context, line, resumed, earlier), call, ctx| {
            let (mut voice, first) = VoiceCall::new(
                VoiceSettings::from_config(&call.shared.config),
                &call.shared.agents,
                info.stream_sid,
                context,
            );
            voice.withhold(
                effects::Withheld::for_line(line.as_ref())
                    .without_verification(call.shared.config.verification_available()),
            );
            let now = call.now();
            let mut actions = first;
            if let Some(placed) = placed {
                voice.place_outbound(
                    &placed.agent,
                    outreach::opening_note(&placed.reason),
                    &call.shared.agents,
                );
            }
            if let Some(resumed) = resumed {
                let (note, hold) = match resumed {
                    Resume::AfterDial(status) => (effects::transfer_failed_note(&status), false),
                    Resume::AfterDrop => (RESUMED_AFTER_DROP_NOTE.to_owned(), true),
                };
                let (transcript, tools_used, agent) = earlier
                    .map(|record| (record.transcript, record.tools_used, Some(record.agent)))
                    .unwrap_or_default();
                tracing::info!(call_sid = %call.call_sid(), turns = transcript.len(), "the call continues where it stopped");
                voice.resume(
                    Resumption {
                        transcript,
                        tools_used,
                        agent,
                        note,
                        hold,
                    },
                    &call.shared.agents,
                    now,
                    &mut actions,
                );
            }
            call.voice = Some(voice);
            for action in actions {
                call.perform(action, now, ctx);
            }
        }),
    );
}

/// What the caller's agent should know from earlier calls and their recent texts, and
/// the line the caller is on (Lookup, at their first contact with `lookup.enabled`).
async fn caller_context(
    shared: &Shared,
    customer: &str,
) -> (Option<String>, Option<crate::domain::records::LineInfo>) {
    let record = shared
        .store
        .customer(customer)
        .await
        .map_err(|err| tracing::warn!(error = %err, "customer memory unreadable"))
        .ok()
        .flatten();
    let texts = shared
        .store
        .recent_turns(customer, memory::TEXTS_TOLD * 2)
        .await
        .map_err(|err| tracing::warn!(error = %err, "customer thread unreadable"))
        .unwrap_or_default();
    let line = crate::numbers::line_of(shared, customer, record.as_ref()).await;
    (memory::for_a_call(record.as_ref(), &texts), line)
}
