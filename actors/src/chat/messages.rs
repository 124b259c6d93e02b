//! What the `Chat` child is asked to do, and what it tells its owner.

use actix::Message;

use crate::domain::conversation::{Message as HistoryMessage, ModelReply};

/// Answer the conversation so far as `agent`. The owner sends only the history (user,
/// assistant and tool messages): `Chat` adds the agent's instructions and tools. A
/// `Complete` while a turn runs replaces that turn, whose late output is never reported.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Complete {
    /// The owner's number for the turn, repeated in every [`ChatNotice`] about it.
    pub turn: u64,
    pub agent: String,
    pub history: Vec<HistoryMessage>,
    /// Tools not offered to the model for this customer.
    pub withheld: Vec<String>,
    /// A phone call's turn: call-only tools (`take_voicemail`) are offered too.
    pub on_call: bool,
}

/// Stop the turn in progress (e.g. the caller interrupted); late output of it is never
/// reported. A `Cancel` for another turn than the running one is ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel {
    pub turn: u64,
}

/// What the owner (a `Conversation` or a relay-mode `Call`) receives.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum ChatNotice {
    /// Streamed text as it arrives; the tokens of a turn concatenate to its text.
    Token { turn: u64, text: String },
    /// The whole assistant turn (text or tool calls); the turn is over.
    Reply { turn: u64, reply: ModelReply },
    /// Retries exhausted, key refused, unusable answer…; the turn is over.
    Failed { turn: u64, reason: String },
}
