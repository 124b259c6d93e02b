//! What a `RelayCall` does with ConversationRelay frames, model notices and tool results.

use actix::prelude::*;
use actix_web_actors::ws;

use super::{Identity, RelayCall};
use crate::call::messages::{CallView, ChildView, CurrentTranscript, Describe, Goodbye, Replaced};
use crate::call::socket::{self, BadFrames, TwilioSocket};
use crate::call::wall_clock_ms;
use crate::chat::messages::ChatNotice;
use crate::conversation::{restore_dialogue, DialogueChildren};
use crate::domain::conversation::ModelReply;
use crate::domain::dialogue::Dialogue;
use crate::domain::effects::{self, Medium};
use crate::domain::identity;
use crate::domain::outreach;
use crate::domain::records::{mask_phone, CallOutcome};
use crate::domain::transcript::Role;
use crate::domain::voice::RESUMED_AFTER_DROP_NOTE;
use crate::protocol::twilio::calls::{OUTBOUND_AGENT, OUTBOUND_REASON};
use crate::protocol::twilio::relay::{self, Inbound, Interrupt, Outbound, Prompt, Setup};
use crate::protocol::twilio::twiml::{RESUMED_AFTER_DIAL, RESUMED_AFTER_DROP};
use crate::registry::messages::{CallHandle, CallInfo, RegisterCall};
use crate::tools::messages::ToolFinished;

/// Longest DTMF `digit` passed on; one key is one character.
const MAX_DIGIT_CHARS: usize = 4;

/// Twilio side: the socket's frames.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for RelayCall {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        socket::handle_frame(self, item, ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl TwilioSocket for RelayCall {
    const KIND: &'static str = "relay";

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.on_twilio_text(text, ctx);
    }

    fn bad_frames(&mut self) -> &mut BadFrames {
        &mut self.bad_frames
    }

    fn call_sid(&self) -> &str {
        self.identity.as_ref().map_or("", |id| id.call_sid.as_str())
    }

    fn ended_in_order(&mut self) {
        self.ended_cleanly = true;
    }
}

impl RelayCall {
    fn on_twilio_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let message = match relay::parse_inbound(text) {
            Ok(message) => message,
            Err(err) => return self.bad_frame(err.reason(), ctx),
        };
        if !matches!(message, Inbound::Setup(_) | Inbound::Unknown) && self.identity.is_none() {
            return self.bad_frame("before_setup", ctx);
        }
        match message {
            Inbound::Setup(setup) => self.on_setup(*setup, ctx),
            Inbound::Prompt(prompt) => self.on_prompt(prompt, ctx),
            Inbound::Interrupt(interrupt) => self.on_interrupt(interrupt),
            Inbound::Dtmf(dtmf) => {
                let digit: String = dtmf.digit.trim().chars().take(MAX_DIGIT_CHARS).collect();
                if digit.is_empty() {
                    return self.bad_frame("malformed", ctx);
                }
                self.bad_frames.reset();
                if !self.ending {
                    self.caller_says(format!("[The caller pressed {digit}]"), ctx);
                }
            }
            Inbound::Error(error) => {
                self.bad_frames.reset();
                tracing::warn!(call_sid = %self.call_sid(), description = %error.description, "ConversationRelay reported an error");
            }
            Inbound::Unknown => self.bad_frames.reset(),
        }
    }

    /// `setup` names the call: register it, restore the caller's thread, start the children.
    fn on_setup(&mut self, setup: Setup, ctx: &mut ws::WebsocketContext<Self>) {
        if self.identity.is_some() {
            return self.bad_frame("duplicate_setup", ctx);
        }
        if setup.call_sid.trim().is_empty() {
            return self.bad_frame("malformed", ctx);
        }
        self.bad_frames.reset();
        let from = setup
            .from
            .as_deref()
            .or_else(|| setup.custom_parameters.get("From").map(String::as_str));
        let customer = identity::caller_key(from, &setup.call_sid, self.shared.config.country());
        self.trace =
            crate::trace::Trace::new(crate::trace::call_span(&setup.call_sid, &customer, "relay"));
        let registration = crate::registry::next_registration();
        let info = CallInfo {
            call_sid: setup.call_sid.clone(),
            stream_sid: setup.session_id.clone().unwrap_or_default(),
            audio_mode: "relay",
            started_at_ms: self.started_at_ms,
        };
        tracing::info!(
            call_sid = %info.call_sid,
            customer = %mask_phone(&customer),
            "relay call started"
        );
        crate::metrics::call_started();
        self.registry.do_send(RegisterCall {
            handle: CallHandle::new(&ctx.address()),
            info,
            registration,
        });
        self.children = Some(DialogueChildren::start(
            &self.shared,
            Some(customer.clone()),
            ctx.address().recipient(),
            ctx.address().recipient(),
        ));
        self.identity = Some(Identity {
            call_sid: setup.call_sid.clone(),
            session_id: setup.session_id.unwrap_or_default(),
            customer: customer.clone(),
            registration,
        });
        // Back from a transfer nobody took, or after the session broke: the note says which.
        let resumed = match (
            setup.custom_parameters.get(RESUMED_AFTER_DIAL),
            setup.custom_parameters.get(RESUMED_AFTER_DROP),
        ) {
            (Some(status), _) => Some(effects::transfer_failed_note(status)),
            (None, Some(_)) => Some(RESUMED_AFTER_DROP_NOTE.to_owned()),
            (None, None) => None,
        };
        // A call the engine placed (`/twilio/voice/outbound`): its agent takes it, told why,
        // and Twilio opened it with the reason (`outreach::relay_opening`).
        let placed = setup.custom_parameters.get(OUTBOUND_REASON).map(|reason| {
            let agent = setup
                .custom_parameters
                .get(OUTBOUND_AGENT)
                .filter(|a| self.shared.agents.agent(a).is_some());
            (agent.cloned(), reason.clone())
        });
        if let Some((Some(agent), _)) = &placed {
            self.dialogue = Dialogue::new(agent.clone(), Vec::new());
        }
        if resumed.is_none() {
            let greeting = match &placed {
                Some((_, reason)) => outreach::relay_opening(reason),
                None => self.shared.config.voice.relay.welcome_greeting.clone(),
            };
            if !greeting.trim().is_empty() {
                self.transcript
                    .push(Role::Assistant, greeting, wall_clock_ms());
            }
        }
        let opening = placed.map(|(_, reason)| outreach::opening_note(&reason));
        // The caller's thread (shared with their texts) is restored before their first words
        // are handled: until then the socket's frames wait.
        let shared = self.shared.clone();
        let agent = self.dialogue.agent().to_owned();
        let call_sid = setup.call_sid;
        ctx.wait(
            async move {
                let dialogue = if identity::is_lasting(&customer) {
                    Some(restore_dialogue(&shared, &customer, agent, Medium::Voice).await)
                } else {
                    None
                };
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
                (dialogue, resumed, earlier)
            }
            .into_actor(self)
            .map(|(dialogue, resumed, earlier), act, _ctx| {
                if let Some(dialogue) = dialogue {
                    act.dialogue = dialogue;
                }
                if let Some(note) = opening {
                    act.dialogue.add_context(note);
                }
                if let Some(note) = resumed {
                    // The record continues the first part, and the agent is told what
                    // happened (the caller heard why in the greeting).
                    if let Some(earlier) = earlier {
                        act.transcript = earlier.transcript;
                        act.tools_used = earlier.tools_used;
                    }
                    act.dialogue.add_context(note);
                }
            }),
        );
    }

    /// What the caller said. Partial results (`last: false`) are not acted on.
    fn on_prompt(&mut self, prompt: Prompt, ctx: &mut ws::WebsocketContext<Self>) {
        self.bad_frames.reset();
        let text = prompt.voice_prompt.trim();
        if !prompt.last || text.is_empty() || self.ending {
            return;
        }
        self.caller_says(text.to_owned(), ctx);
    }

    /// The caller talked over our answer: only what they heard of it is kept.
    fn on_interrupt(&mut self, interrupt: Interrupt) {
        self.bad_frames.reset();
        crate::metrics::barge_in();
        self.cut_answer(&interrupt.utterance_until_interrupt);
    }
}

impl Handler<ChatNotice> for RelayCall {
    type Result = ();

    fn handle(&mut self, notice: ChatNotice, ctx: &mut Self::Context) {
        match notice {
            ChatNotice::Token { turn, text } => {
                if self.asked == Some(turn) && !self.ending && !text.is_empty() {
                    self.streamed = Some(turn);
                    self.speak(&text, ctx);
                }
            }
            ChatNotice::Reply { turn, reply } => {
                self.trace.model_turn_ended(&turn.to_string(), "completed");
                if self.asked == Some(turn) {
                    self.asked = None;
                }
                let streamed = self.streamed.take() == Some(turn);
                if let ModelReply::ToolCalls(calls) = &reply {
                    self.tools_used
                        .extend(calls.iter().map(|call| call.name.clone()));
                }
                let actions = self
                    .dialogue
                    .model_replied(turn, reply, &self.shared.agents);
                self.perform(actions, streamed, ctx);
            }
            ChatNotice::Failed { turn, reason } => {
                self.trace.model_turn_ended(&turn.to_string(), "failed");
                if self.asked == Some(turn) {
                    self.asked = None;
                }
                self.streamed = None;
                let actions = self.dialogue.model_failed(turn, &reason);
                self.perform(actions, false, ctx);
            }
        }
    }
}

impl Handler<ToolFinished> for RelayCall {
    type Result = ();

    fn handle(&mut self, msg: ToolFinished, ctx: &mut Self::Context) {
        crate::metrics::tool_call(&msg.name, msg.ok);
        self.trace.tool_finished(&msg.call_id, msg.ok);
        self.transcript.push(
            Role::Tool,
            format!("{} → {}", msg.name, msg.output),
            wall_clock_ms(),
        );
        let actions = self.dialogue.tool_finished(&msg.call_id, &msg.output);
        self.perform(actions, false, ctx);
    }
}

impl Handler<Replaced> for RelayCall {
    type Result = ();

    fn handle(&mut self, _: Replaced, ctx: &mut Self::Context) {
        self.outcome = CallOutcome::Replaced;
        ctx.close(Some(ws::CloseCode::Normal.into()));
        ctx.stop();
    }
}

impl Handler<Goodbye> for RelayCall {
    type Result = ();

    /// The drain ends: Twilio speaks the goodbye, and at `within` the session ends.
    fn handle(&mut self, msg: Goodbye, ctx: &mut Self::Context) {
        ctx.run_later(msg.within, |_, ctx| {
            ctx.text(Outbound::end(None).to_json());
            ctx.close(Some(ws::CloseCode::Normal.into()));
            ctx.stop();
        });
        if self.ending || self.identity.is_none() {
            return;
        }
        tracing::info!(call_sid = %self.call_sid(), "draining: the caller hears goodbye");
        self.ending = true;
        ctx.text(Outbound::token(DRAIN_GOODBYE).to_json());
        ctx.text(Outbound::end_of_reply().to_json());
    }
}

/// What a relay caller hears when the drain ends (a Media Streams caller hears
/// `prompts/goodbye.wav`, which says the same).
const DRAIN_GOODBYE: &str = "Sorry, we have to end the call now. Please call back. Goodbye.";

impl Handler<Describe> for RelayCall {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Self::Context) -> Self::Result {
        let thinking = self.dialogue.is_busy();
        let state = if self.ending {
            "ending"
        } else if self.identity.is_none() {
            "connecting"
        } else if thinking {
            "answering"
        } else {
            "live"
        };
        let identity = self.identity.as_ref();
        MessageResult(CallView {
            id: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
            key: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
            customer_key: identity.map(|id| id.customer.clone()),
            kind: "call",
            channel: "voice",
            state,
            agent: self.dialogue.agent().to_string(),
            customer: identity.map(|id| mask_phone(&id.customer)),
            audio_mode: "relay",
            started_at_ms: self.started_at_ms,
            restarts: 0,
            mailbox_delay_us: u64::try_from(msg.sent_at.elapsed().as_micros()).unwrap_or(u64::MAX),
            last_turn_latency_ms: self.last_turn_latency_ms,
            children: vec![
                ChildView {
                    kind: "chat",
                    state: if thinking { "thinking" } else { "idle" }.into(),
                },
                ChildView {
                    kind: "tool_executor",
                    state: "ready".into(),
                },
            ],
        })
    }
}

impl Handler<CurrentTranscript> for RelayCall {
    type Result = MessageResult<CurrentTranscript>;

    fn handle(&mut self, _: CurrentTranscript, _ctx: &mut Self::Context) -> Self::Result {
        let mut transcript = self.transcript.clone();
        if self.dialogue.is_busy() && !self.spoken.is_empty() {
            transcript.push(
                Role::Assistant,
                format!("{} …", self.spoken),
                wall_clock_ms(),
            );
        }
        MessageResult(transcript)
    }
}
