//! A supervisor's actions on a ConversationRelay call. Twilio speaks our text, so the
//! goodbye is a fixed line; the instruction joins the chat model's context for its next
//! turn; a transfer takes the agent's `escalate_to_human` path (the escalation written
//! first, then `end` with `handoffData`, and `/twilio/voice/next` dials).

use actix::prelude::*;
use actix_web_actors::ws;

use super::{RelayCall, END_GRACE};
use crate::call::socket::TwilioSocket as _;
use crate::call::wall_clock_ms;
use crate::domain::records::CallOutcome;
use crate::domain::supervision::{self, Refusal};
use crate::domain::transcript::Role;
use crate::protocol::twilio::relay::Outbound;
use crate::supervise::{Done, Supervise, SupervisorAction};

impl Handler<Supervise> for RelayCall {
    type Result = Result<Done, Refusal>;

    fn handle(
        &mut self,
        Supervise(action): Supervise,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Self::Result {
        if self.identity.is_none() {
            return Err(Refusal::Connecting);
        }
        let name = action.name();
        let done = match action {
            SupervisorAction::Instruct(text) => {
                if self.ending || self.handoff.is_some() {
                    return Err(Refusal::Ending);
                }
                self.dialogue.supervisor_instruction(&text)?;
                let text = supervision::clean_text(&text)?;
                self.transcript.push(
                    Role::System,
                    supervision::record(&format!("instruction: {text}")),
                    wall_clock_ms(),
                );
                Done::new("the agent has the instruction from its next answer on")
            }
            SupervisorAction::End => {
                self.stop_answering()?;
                self.outcome = CallOutcome::Ended;
                self.transcript.push(
                    Role::System,
                    supervision::record("ended the call"),
                    wall_clock_ms(),
                );
                self.reply(supervision::RELAY_GOODBYE.into(), false, ctx);
                self.ending = true;
                ctx.text(Outbound::end(None).to_json());
                ctx.run_later(END_GRACE, |_act, ctx| {
                    ctx.close(Some(ws::CloseCode::Normal.into()));
                    ctx.stop();
                });
                Done::new("the call ends after a short goodbye")
            }
            SupervisorAction::Transfer => {
                if self.shared.config.twilio.human_number.is_none() {
                    return Err(Refusal::NoHuman);
                }
                self.stop_answering()?;
                self.transfer(ctx);
                Done::new("the call is being transferred to a person")
            }
            SupervisorAction::TakeOver | SupervisorAction::Reply(_) | SupervisorAction::Release => {
                return Err(Refusal::NotForThis(
                    "a call cannot be taken over: transfer it to a person instead",
                ))
            }
        };
        tracing::info!(call_sid = %self.call_sid(), action = name, "supervisor action");
        crate::metrics::supervisor_action(name);
        Ok(done)
    }
}

impl RelayCall {
    /// Refuses when the call is ending already; otherwise drops an answer in the works
    /// (what the caller heard of it stays in the history).
    fn stop_answering(&mut self) -> Result<(), Refusal> {
        if self.ending || self.handoff.is_some() {
            return Err(Refusal::Ending);
        }
        if self.dialogue.is_busy() || !self.spoken.is_empty() {
            let heard = std::mem::take(&mut self.spoken);
            self.cut_answer(&heard);
        }
        Ok(())
    }

    /// The escalation is written before the session ends (Twilio asks `/twilio/voice/next`
    /// right after), then the caller is told and the session ends with `handoffData`.
    fn transfer(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let reason = "a supervisor transferred the call".to_string();
        tracing::warn!(call_sid = %self.call_sid(), %reason, "call handed to a person");
        self.outcome = CallOutcome::Escalated;
        crate::metrics::escalation("voice");
        self.transcript.push(
            Role::System,
            supervision::record("transferred the call to a person"),
            wall_clock_ms(),
        );
        self.handoff = Some(reason);
        let store = self.shared.store.clone();
        let call_sid = self.call_sid().to_owned();
        ctx.wait(
            async move { store.set_escalated(&call_sid).await }
                .into_actor(self)
                .map(|written, act, ctx| {
                    if let Err(err) = written {
                        tracing::error!(error = %err, "could not record the escalation");
                    }
                    act.reply(supervision::RELAY_TRANSFER.into(), false, ctx);
                }),
        );
    }
}
