//! What a supervisor asks of a live call or conversation (SPEC §15, supervisor actions
//! under `/actors/…`): one message, [`Supervise`], handled by the Media Streams `Call`,
//! the ConversationRelay `RelayCall` and the text `Conversation`, each in its own
//! `supervise.rs`. The rules — what the model is told, what is refused and why — are the
//! pure `domain::supervision`, `domain::voice` and `domain::dialogue`.

use actix::prelude::*;
use serde::Serialize;

pub use crate::domain::supervision::{Refusal, RefusalKind};

/// One supervisor action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorAction {
    /// End a call; the caller hears a short goodbye where possible.
    End,
    /// Hand a call to `twilio.human_number` now (the path of `escalate_to_human`).
    Transfer,
    /// Tell the live agent something it follows from now on.
    Instruct(String),
    /// Take a text conversation over: the assistant stays silent for the customer.
    TakeOver,
    /// Send the customer a message, on their channel, in the assistant's place.
    Reply(String),
    /// Give a taken-over conversation back to the assistant.
    Release,
}

impl SupervisorAction {
    /// The action's name in URLs, logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SupervisorAction::End => "end",
            SupervisorAction::Transfer => "transfer",
            SupervisorAction::Instruct(_) => "instruct",
            SupervisorAction::TakeOver => "takeover",
            SupervisorAction::Reply(_) => "reply",
            SupervisorAction::Release => "release",
        }
    }
}

/// Asks a call or conversation to carry out a supervisor's action. It answers once the
/// action is recorded (and, for a message, delivered); a refusal means nothing was done.
#[derive(Message, Debug)]
#[rtype(result = "Result<Done, Refusal>")]
pub struct Supervise(pub SupervisorAction);

/// What came of an action, for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// One line: what happened, e.g. "the live session has the instruction".
    pub note: String,
}

impl Done {
    pub fn new(note: impl Into<String>) -> Self {
        Done { note: note.into() }
    }
}
