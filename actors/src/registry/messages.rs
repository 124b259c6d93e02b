//! Questions and notices the `Registry` handles.

use actix::dev::ToEnvelope;
use actix::prelude::*;
use serde::Serialize;

use crate::call::messages::{CurrentTranscript, Describe, Goodbye, Replaced};
use crate::supervise::Supervise;

/// A live call of either kind — a Media Streams `Call` or a ConversationRelay `RelayCall` —
/// as the registry and the HTTP routes reach it: one recipient per thing a call is asked.
#[derive(Clone)]
pub struct CallHandle {
    pub replaced: Recipient<Replaced>,
    pub describe: Recipient<Describe>,
    pub transcript: Recipient<CurrentTranscript>,
    pub goodbye: Recipient<Goodbye>,
    /// A supervisor's actions (end, transfer, instruct).
    pub supervise: Recipient<Supervise>,
}

impl CallHandle {
    pub fn new<A>(addr: &Addr<A>) -> Self
    where
        A: Handler<Replaced>
            + Handler<Describe>
            + Handler<CurrentTranscript>
            + Handler<Goodbye>
            + Handler<Supervise>,
        A::Context: ToEnvelope<A, Replaced>
            + ToEnvelope<A, Describe>
            + ToEnvelope<A, CurrentTranscript>
            + ToEnvelope<A, Goodbye>
            + ToEnvelope<A, Supervise>,
    {
        CallHandle {
            replaced: addr.clone().recipient(),
            describe: addr.clone().recipient(),
            transcript: addr.clone().recipient(),
            goodbye: addr.clone().recipient(),
            supervise: addr.clone().recipient(),
        }
    }
}

/// What the directory knows of a call without asking it.
#[derive(Clone, Debug, Serialize)]
pub struct CallInfo {
    pub call_sid: String,
    /// The Media Streams `streamSid`, or the ConversationRelay `sessionId`.
    pub stream_sid: String,
    pub audio_mode: &'static str,
    pub started_at_ms: u64,
}

/// A media socket's `start` (or a relay socket's `setup`) named its call. The registration
/// number is quoted when the call ends, so a replaced call cannot unregister its successor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterCall {
    pub handle: CallHandle,
    pub info: CallInfo,
    /// From [`super::next_registration`]: quoted back in [`CallEnded`].
    pub registration: u64,
}

/// The call's socket closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallEnded {
    pub call_sid: String,
    pub registration: u64,
}

/// The drain is ending: every live call says goodbye and hangs up within `within`.
/// Answers how many calls were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SayGoodbye {
    pub within: std::time::Duration,
}

/// May one more call be taken? (`/twilio/voice`, before answering TwiML.)
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AdmitCall;

/// The live calls, for `/actors` and tests.
#[derive(Message)]
#[rtype(result = "Vec<CallInfo>")]
pub struct ListCalls;

/// Every live call as the dashboard shows it, children included.
#[derive(Message)]
#[rtype(result = "Vec<crate::call::messages::CallView>")]
pub struct DescribeCalls;

/// What a cluster node publishes in its heartbeat: how many calls and conversations it
/// runs, and the views of at most `at_most` of each (the longest-registered), so the
/// heartbeat asks a few hundred actors, not every one of thousands.
#[derive(Message)]
#[rtype(result = "Publication")]
pub struct Publish {
    pub at_most: usize,
}

#[derive(Debug, Default)]
pub struct Publication {
    pub calls_total: usize,
    pub conversations_total: usize,
    pub calls: Vec<crate::call::messages::CallView>,
    pub conversations: Vec<crate::call::messages::CallView>,
}

/// A live call, to ask it something directly.
#[derive(Message)]
#[rtype(result = "Option<CallHandle>")]
pub struct FindCall(pub String);

/// Why a message or call was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many live conversations")]
    TooManyConversations,
    #[error("the conversation stopped before taking the message")]
    Unavailable,
    #[error("the server is draining and could not answer in time")]
    Draining,
    /// The store could not record the message: nothing was taken, so the sender should
    /// deliver it again (Twilio retries a webhook answered with a 5xx).
    #[error("the message could not be recorded")]
    NotRecorded,
}

/// A customer's text message, for their `Conversation` (created on demand).
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct RouteMessage {
    pub customer: String,
    pub message: crate::conversation::messages::CustomerMessage,
}

/// Cluster mode: this node owns the customer's conversation and the inbox has messages for
/// it; the conversation is started if it is not live.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullInbox {
    pub customer: String,
    /// The new entry itself, when the notice carried it.
    pub entry: Option<crate::store::NewEntry>,
}

/// A conversation has been idle for `limits.idle_secs`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConversationIdle {
    pub customer: String,
    pub registration: u64,
}

/// Every live conversation as the dashboard shows it.
#[derive(Message)]
#[rtype(result = "Vec<crate::call::messages::CallView>")]
pub struct DescribeConversations;
