//! What the `Realtime` child is asked to do, and what it tells its `Call`.

use std::time::Instant;

use actix::Message;

use crate::protocol::openai::realtime::ServerEvent;

/// Caller audio from the `Transcoder` (`pcm24k`: base64 PCM16 at 24 kHz), with the moment its
/// Twilio frame reached the `Call`: writing it completes the inbound hop, whose latency is
/// recorded (`metrics::hop_latency`). In `pcmu` the `Call` writes its audio itself
/// (`link::ModelLink`), as it does its client events and `session.update`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendAudio {
    pub audio: String,
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
