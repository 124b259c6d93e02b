//! What a `Conversation` is told: customer messages, and its retirement when idle.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::outbound::Destination;

/// The channel a customer message came on; the reply goes back on the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Whatsapp,
    Conversations,
    Web,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Conversations => "conversations",
            Channel::Web => "web",
        }
    }
}

/// How the answer to one customer message reaches them.
pub enum ReplyTo {
    /// A webhook waits to answer inline (TwiML). If it gave up — the receiver is gone
    /// because the deadline passed — the answer goes to `fallback`, when there is one.
    Inline {
        answer: oneshot::Sender<String>,
        fallback: Option<Destination>,
    },
    /// Through Twilio's REST API.
    Rest(Destination),
    /// Streamed to a socket (web chat): tokens as they come, then the whole answer.
    Stream(Recipient<ReplyEvent>),
    /// A message any node of a cluster took, kept in the inbox (`store::ClusterStore`):
    /// its words join the thread when answering starts, and the answer goes by `route`.
    Inbox { id: i64, route: InboxRoute },
}

/// Where the answer to a message taken by any node of a cluster goes, stored with it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InboxRoute {
    /// A webhook waits to answer inline (TwiML), on whichever node took it. If it gave up
    /// before the answer, the answer goes to `fallback` (REST), when there is one.
    Inline { fallback: Option<Destination> },
    /// Through Twilio's REST API.
    Rest { destination: Destination },
}

/// A streamed answer, piece by piece.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum ReplyEvent {
    Token(String),
    Done(String),
}

/// A customer wrote (or a web chat user typed) `text`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CustomerMessage {
    pub channel: Channel,
    pub text: String,
    pub reply: ReplyTo,
}

/// Cluster mode: the customer has unanswered messages in the inbox; take the new ones — the
/// one given directly when it follows the last one taken, else from the inbox.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullInbox(pub Option<crate::store::NewEntry>);

/// The registry has let the conversation go (it was idle): finish what is in hand and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

#[cfg(test)]
mod tests {
    use super::*;

    /// The store reads the route's `kind` to tell whether a webhook waits for the answer
    /// (`ClusterStore::answer_text`).
    #[test]
    fn an_inbox_route_names_its_kind() {
        let inline = serde_json::to_value(InboxRoute::Inline { fallback: None }).unwrap();
        assert_eq!(inline["kind"], "inline");
        let rest = serde_json::to_value(InboxRoute::Rest {
            destination: Destination::Message {
                to: "+14155550100".into(),
                from: None,
            },
        })
        .unwrap();
        assert_eq!(rest["kind"], "rest");
    }
}
