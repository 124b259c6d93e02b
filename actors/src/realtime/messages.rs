//! What the `Realtime` child is asked to do, and what it tells its `Call`.

use std::time::Instant;

use actix::Message;

use crate::protocol::openai::realtime::ServerEvent;

/// A client event, already serialized, for the model socket. Pre-serialized so the
/// per-frame audio path (`input_audio_buffer.append`) builds its JSON once, in the `Call`.
/// Events for a socket that is not ready are dropped: the call configures every new
/// session afresh and replays its transcript into it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendToModel(pub String);

/// `session.update` for a new session, sent by the call once the socket is `Ready`: the
/// session takes caller audio only after it, so audio meant for one configuration never
/// reaches a session that has another (μ-law read as PCM16).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureSession(pub String);

/// Caller audio for the model, already serialized as `input_audio_buffer.append`, with the
/// moment its Twilio frame reached the `Call`: writing it completes the inbound hop, whose
/// latency is recorded (`metrics::hop_latency`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendAudio {
    pub json: String,
    pub received: Instant,
}

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
    /// A server event from the model, with the moment its frame reached `Realtime` (the
    /// start of the outbound hop for audio deltas).
    Event {
        event: Box<ServerEvent>,
        received: Instant,
    },
    /// The socket is gone; the child is reconnecting with backoff.
    Lost { reason: String },
    /// Reconnecting failed past the retry budget, or the key was refused: fall back.
    GaveUp { reason: String, auth_failed: bool },
}
