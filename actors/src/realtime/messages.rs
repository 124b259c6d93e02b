//! What the `Realtime` child is asked to do, and what it tells its `Call`.

use actix::Message;

use crate::protocol::openai::realtime::ServerEvent;

/// A client event, already serialized, for the model socket. Pre-serialized so the
/// per-frame audio path (`input_audio_buffer.append`) builds its JSON once, in the `Call`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendToModel(pub String);

/// Close this session and open a fresh one (the provider caps session length).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RotateSession;

/// The call is over: close the socket and stop for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Everything the `Realtime` child reports to its `Call`.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ModelNotice {
    /// `session.created` arrived on a new socket: the call configures the session and
    /// replays its transcript. `attempt` is 0 for the first socket of the call.
    Ready { reconnect: bool },
    /// A server event from the model.
    Event(Box<ServerEvent>),
    /// The socket is gone; the child is reconnecting with backoff.
    Lost { reason: String },
    /// Reconnecting failed past the retry budget, or the key was refused: fall back.
    GaveUp { reason: String, auth_failed: bool },
}
