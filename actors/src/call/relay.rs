//! `RelayCall`: one phone call over Twilio ConversationRelay, answered by the chat model
//! (SPEC §5.2). Twilio does the speech: the caller's words arrive as `prompt` text, and the
//! text we send back is spoken. So a relay call needs no audio path at all, and with the
//! offline `local` model it works without any API key.
//!
//! Like the Media Streams `Call`, the `RelayCall` *is* its socket's actor and lives exactly as
//! long as the socket. Once `setup` names the call it registers with the `Registry`, restores
//! the caller's thread (shared with their texts, SPEC §7) and starts its `Chat` and
//! `ToolExecutor` children. The dialogue — model turns, tools, handoffs, escalation — is the
//! pure `domain::dialogue`; this actor streams the model's tokens to Twilio as they come,
//! keeps the history to what the caller heard when they interrupt, persists each turn, and
//! ends the session with `end` + `handoffData` when the caller is to be handed to a person
//! (Twilio then asks `/twilio/voice/next`, which dials). On close it writes the call record.
//!
//! Socket glue (`ws::WebsocketContext`, close codes) stays in `relay/handlers.rs`.

mod handlers;
mod supervise;

use super::socket::{BadFrames, TwilioSocket as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::json;
use tracing::Instrument as _;

use super::wall_clock_ms;
use crate::census::Kind;
use crate::conversation::DialogueChildren;
use crate::domain::dialogue::{Action, Dialogue};
use crate::domain::effects::Medium;
use crate::domain::identity;
use crate::domain::records::{mask_phone, AudioMode, CallOutcome, CallRecord};
use crate::domain::transcript::{Role, Transcript, Turn};
use crate::engine::Shared;
use crate::protocol::twilio::relay::Outbound;
use crate::registry::messages::CallEnded;
use crate::registry::Registry;

/// Without a `setup` this soon after the upgrade, the socket is not Twilio.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// After `end`, Twilio closes the socket; if it has not within this, we do.
const END_GRACE: Duration = Duration::from_secs(10);

/// Who the call is with, known once Twilio's `setup` arrives.
struct Identity {
    call_sid: String,
    /// `VX…`: the relay session, recorded where a Media Streams call keeps its stream sid.
    session_id: String,
    /// The caller's E.164 number, or for callers without one (anonymous, SIP, Twilio
    /// Client) an identity of this call alone (`domain::identity`).
    customer: String,
    registration: u64,
}

/// The children of a call that has been set up.
pub struct RelayCall {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    started_at_ms: u64,
    identity: Option<Identity>,
    children: Option<DialogueChildren>,
    dialogue: Dialogue,
    /// The call record's transcript: what was said, and of our answers what was heard.
    transcript: Transcript,
    tools_used: Vec<String>,
    outcome: CallOutcome,
    /// The session ended in order (Twilio's close frame, or we closed it); else it broke,
    /// and the call is to be resumed.
    ended_cleanly: bool,
    /// The model turn being answered: its tokens are spoken as they arrive.
    asked: Option<u64>,
    /// The model turn whose text already went out token by token.
    streamed: Option<u64>,
    /// What of the answer in the works has been sent to be spoken.
    spoken: String,
    /// Answers given on this call; an interrupt before the first one cut the greeting.
    answers: u32,
    /// When the caller's prompt arrived, until the first words of the answer go out.
    prompt_at: Option<Instant>,
    last_turn_latency_ms: Option<u64>,
    /// Why the caller is to be handed to a person: the session ends after the goodbye.
    handoff: Option<String>,
    /// `end` has been sent; nothing more is answered.
    ending: bool,
    /// Consecutive unusable frames from Twilio (SPEC §12: 100 in a row closes with 1008).
    bad_frames: BadFrames,
    /// The call's span and its children in progress (model turns, tools).
    trace: crate::trace::Trace,
}

impl RelayCall {
    pub fn new(shared: Arc<Shared>, registry: Addr<Registry>) -> Self {
        let agent = shared.agents.default_agent.clone();
        let human_available = shared.config.twilio.human_number.is_some();
        RelayCall {
            bad_frames: BadFrames::new(shared.config.limits.max_bad_frames_in_row),
            shared,
            registry,
            started_at_ms: wall_clock_ms(),
            identity: None,
            children: None,
            dialogue: Dialogue::new(agent, Vec::new())
                .with_escalation(Medium::Voice, human_available),
            transcript: Transcript::new(),
            tools_used: Vec::new(),
            outcome: CallOutcome::Completed,
            ended_cleanly: false,
            asked: None,
            streamed: None,
            spoken: String::new(),
            answers: 0,
            prompt_at: None,
            last_turn_latency_ms: None,
            handoff: None,
            ending: false,
            trace: crate::trace::Trace::default(),
        }
    }

    fn customer(&self) -> Option<&str> {
        self.identity.as_ref().map(|id| id.customer.as_str())
    }

    /// The customer whose thread and memory this call continues: not a caller known only
    /// by this call.
    fn remembered(&self) -> Option<&str> {
        self.customer().filter(|c| identity::is_lasting(c))
    }

    /// The caller said (or keyed) `text`: persisted and made durable first, then the model
    /// is asked. An answer still in the works is dropped — the caller has moved on — and
    /// what of it they heard stays in the history.
    fn caller_says(&mut self, text: String, ctx: &mut ws::WebsocketContext<Self>) {
        if self.dialogue.is_busy() {
            let heard = std::mem::take(&mut self.spoken);
            self.cut_answer(&heard);
        }
        self.transcript
            .push(Role::User, text.clone(), wall_clock_ms());
        let written = self.persist(Role::User, &text);
        self.prompt_at = Some(Instant::now());
        let shared = self.shared.clone();
        let commit = crate::trace::store_commit(self.trace.span(), "caller_words");
        ctx.wait(
            async move {
                written.await;
                shared.commits.durable().await
            }
            .instrument(commit)
            .into_actor(self)
            .map(move |durable, act, ctx| {
                if let Err(err) = durable {
                    tracing::error!(error = %err, "caller's words not flushed to disk");
                }
                let actions = act.dialogue.customer_says(&text);
                act.perform(actions, false, ctx);
            }),
        );
    }

    /// The caller cut our answer short after hearing `heard` of it: the model's turn (if
    /// any) is cancelled, and the history and transcript keep only what was heard.
    fn cut_answer(&mut self, heard: &str) {
        if let (Some(turn), Some(children)) = (self.asked.take(), &self.children) {
            children
                .chat
                .do_send(crate::chat::messages::Cancel { turn });
        }
        if self.dialogue.is_busy() {
            self.dialogue.interrupted(heard);
            if !heard.trim().is_empty() {
                self.transcript.push(
                    Role::Assistant,
                    format!("{}…", heard.trim_end()),
                    wall_clock_ms(),
                );
            }
        } else {
            // Before the first answer, what was cut is the welcome greeting, which the
            // dialogue never had.
            if self.answers > 0 {
                self.dialogue.interrupted(heard);
            }
            self.transcript.cut_last_assistant_to(heard);
        }
        self.spoken.clear();
    }

    /// Carries out what the dialogue asks. `streamed`: whether the text of a `Reply` among
    /// `actions` already went out token by token.
    fn perform(
        &mut self,
        actions: Vec<Action>,
        streamed: bool,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        for action in actions {
            match &action {
                Action::AskModel { turn, .. } => {
                    self.asked = Some(*turn);
                    self.trace.model_turn_started(&turn.to_string(), "chat");
                }
                Action::RunTool { call_id, name, .. } => self.trace.tool_started(call_id, name),
                _ => {}
            }
            let action = match &self.children {
                Some(children) => match children.carry_out(action, self.dialogue.agent()) {
                    Some(action) => action,
                    None => continue,
                },
                None => action,
            };
            match action {
                Action::AskModel { .. } | Action::RunTool { .. } => {
                    tracing::warn!("dialogue request before setup; dropped");
                }
                Action::Reply { text } => self.reply(text, streamed, ctx),
                Action::HandedOff { from, to } => {
                    tracing::info!(call_sid = %self.call_sid(), %from, %to, "handoff");
                }
                Action::Escalate { reason } => self.escalate(reason, ctx),
                Action::Voicemail => {
                    // The session ends after the answer; the record's outcome makes
                    // `/twilio/voice/next` answer `<Record>`.
                    self.outcome = CallOutcome::Voicemail;
                    self.handoff = Some("voicemail".into());
                }
            }
        }
    }

    /// Sends words to be spoken; the first of an answer ends the turn-latency clock.
    fn speak(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(at) = self.prompt_at.take() {
            let latency = at.elapsed();
            self.last_turn_latency_ms = u64::try_from(latency.as_millis()).ok();
            crate::metrics::turn_latency(latency);
        }
        ctx.text(Outbound::token(text).to_json());
        self.spoken.push_str(text);
    }

    /// The answer is complete: the rest of it is spoken, the talk cycle closed, the answer
    /// persisted — and if the caller is being handed to a person, the session ends.
    fn reply(&mut self, text: String, streamed: bool, ctx: &mut ws::WebsocketContext<Self>) {
        if !streamed && !text.is_empty() {
            self.speak(&text, ctx);
        }
        ctx.text(Outbound::end_of_reply().to_json());
        self.spoken.clear();
        self.answers = self.answers.saturating_add(1);
        self.transcript
            .push(Role::Assistant, text.clone(), wall_clock_ms());
        // Written in turn with the caller's words (`ctx.wait` keeps the thread's order); made
        // durable off the actor: the words are already out, and a future of this actor would
        // not be polled while `caller_says` waits for the next flush, which needs this one.
        let written = self.persist(Role::Assistant, &text);
        ctx.wait(written.into_actor(self));
        let shared = self.shared.clone();
        let commit = crate::trace::store_commit(self.trace.span(), "answer");
        actix::spawn(
            async move {
                if let Err(err) = shared.commits.durable().await {
                    tracing::error!(error = %err, "answer not flushed to disk");
                }
            }
            .instrument(commit),
        );
        if let Some(reason) = self.handoff.take() {
            self.end_session(&reason, ctx);
        }
    }

    /// The agent decided the caller needs a person: `/twilio/voice/next` will dial once
    /// the session ends, which it does after the agent's goodbye.
    fn escalate(&mut self, reason: String, ctx: &mut ws::WebsocketContext<Self>) {
        tracing::warn!(call_sid = %self.call_sid(), %reason, "caller asks for a person");
        self.outcome = CallOutcome::Escalated;
        crate::metrics::escalation("voice");
        // Written before the session ends: Twilio asks `/twilio/voice/next` after.
        let store = self.shared.store.clone();
        let call_sid = self.call_sid().to_owned();
        ctx.wait(
            async move { store.set_escalated(&call_sid).await }
                .into_actor(self)
                .map(|written, _, _| {
                    if let Err(err) = written {
                        crate::metrics::store_error("write");
                        tracing::error!(error = %err, "could not record the escalation");
                    }
                }),
        );
        self.handoff = Some(reason);
    }

    /// `end` with `handoffData`; Twilio closes the socket and requests the action URL.
    fn end_session(&mut self, reason: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.ending = true;
        let data = json!({
            "reasonCode": "live-agent-handoff",
            "reason": reason,
            "customer": self.customer(),
        });
        ctx.text(Outbound::end(Some(&data)).to_json());
        ctx.run_later(END_GRACE, |act, ctx| {
            tracing::debug!(call_sid = %act.call_sid(), "Twilio kept the socket after end; closing");
            ctx.close(Some(ws::CloseCode::Normal.into()));
            ctx.stop();
        });
    }

    /// Appends a turn to the customer's thread (shared by every channel, SPEC §7): the
    /// write, for the caller to put in order with the call's other writes.
    fn persist(&self, role: Role, text: &str) -> impl std::future::Future<Output = ()> + 'static {
        let customer = self.remembered().map(str::to_owned);
        let turn = Turn {
            role,
            text: text.to_string(),
            at_ms: wall_clock_ms(),
        };
        let store = self.shared.store.clone();
        async move {
            let Some(customer) = customer else {
                return;
            };
            if let Err(err) = store.append_turn(&customer, &turn).await {
                crate::metrics::store_error("write");
                tracing::error!(error = %err, "call turn not persisted");
            }
        }
    }

    /// Writes the call record and the customer's memory (SPEC §5.2, §7).
    fn write_record(&mut self) {
        let Some(id) = &self.identity else {
            return;
        };
        let remembered = identity::is_lasting(&id.customer).then(|| id.customer.clone());
        let mut record = CallRecord::new(
            id.call_sid.clone(),
            id.session_id.clone(),
            remembered.clone(),
            self.dialogue.agent(),
            AudioMode::Relay,
            self.started_at_ms,
        );
        record.transcript = std::mem::take(&mut self.transcript);
        record.tools_used = std::mem::take(&mut self.tools_used);
        if !self.ended_cleanly && !self.ending && self.outcome == CallOutcome::Completed {
            self.outcome = CallOutcome::Dropped;
        }
        record.node = Some(self.shared.node_id.clone());
        record.finish(self.outcome, wall_clock_ms());
        crate::metrics::call_finished(self.outcome.as_str());
        self.trace.finish(self.outcome.as_str());
        let commit = crate::trace::store_commit(self.trace.span(), "call_record");
        crate::metrics::call_outcome_by_agent(&record.agent, self.outcome.as_str());
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

impl Actor for RelayCall {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.census.started(Kind::RelayCall);
        ctx.run_later(SETUP_TIMEOUT, |act, ctx| {
            if act.identity.is_none() {
                tracing::warn!("relay socket sent no setup; closing");
                ctx.close(Some(ws::CloseCode::Policy.into()));
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.census.stopped(Kind::RelayCall);
        // Dropping the children's addresses stops them.
        self.children = None;
        self.write_record();
        if let Some(id) = &self.identity {
            self.registry.do_send(CallEnded {
                call_sid: id.call_sid.clone(),
                registration: id.registration,
            });
            tracing::info!(call_sid = %id.call_sid, "relay call ended");
        }
    }
}
