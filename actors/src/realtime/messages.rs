//! What the `Realtime` child is asked to do, and what it tells its `Call`.

use std::time::Instant;

use actix::Message;

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

/// What the `Realtime` child reports to its `Call` about the socket's life. The socket's
/// events (`session.created` included) the `Call` reads itself (`link::ModelReader`).
#[derive(Message)]
#[rtype(result = "()")]
pub enum ModelNotice {
    /// The socket is gone; the child is reconnecting with backoff.
    Lost { reason: String },
    /// Reconnecting failed past the retry budget, or the key was refused: fall back.
    GaveUp { reason: String, auth_failed: bool },
}
