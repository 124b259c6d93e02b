//! A supervisor's actions on a Media Streams call: carried out by the voice logic
//! (`domain::voice`), whose actions the `Call` performs like any other's.

use actix::prelude::*;
use actix_web_actors::ws;

use super::socket::TwilioSocket as _;
use super::Call;
use crate::domain::supervision::Refusal;
use crate::domain::voice::Delivery;
use crate::supervise::{Done, Supervise, SupervisorAction};

impl Handler<Supervise> for Call {
    type Result = Result<Done, Refusal>;

    fn handle(
        &mut self,
        Supervise(action): Supervise,
        ctx: &mut ws::WebsocketContext<Self>,
    ) -> Self::Result {
        if self.voice.is_none() {
            return Err(Refusal::Connecting);
        }
        let name = action.name();
        let mut result = Err(Refusal::Connecting);
        match action {
            SupervisorAction::Instruct(text) => self.drive(ctx, |voice, shared, now, out| {
                result = voice
                    .supervisor_instruction(&text, &shared.agents, now, out)
                    .map(|delivery| match delivery {
                        Delivery::Now => Done::new("the live session has the instruction"),
                        Delivery::NextSession => Done::new(
                            "the model is reconnecting: the next session gets the instruction",
                        ),
                    });
            }),
            SupervisorAction::End => self.drive(ctx, |voice, _, now, out| {
                result = voice
                    .supervisor_end(now, out)
                    .map(|()| Done::new("the call ends after a short goodbye"));
            }),
            SupervisorAction::Transfer => self.drive(ctx, |voice, _, now, out| {
                result = voice
                    .supervisor_transfer(now, out)
                    .map(|()| Done::new("the call is being transferred to a person"));
            }),
            SupervisorAction::TakeOver | SupervisorAction::Reply(_) | SupervisorAction::Release => {
                return Err(Refusal::NotForThis(
                    "a call cannot be taken over: transfer it to a person instead",
                ))
            }
        }
        if result.is_ok() {
            tracing::info!(call_sid = %self.call_sid(), action = name, "supervisor action");
            crate::metrics::supervisor_action(name);
        }
        result
    }
}
