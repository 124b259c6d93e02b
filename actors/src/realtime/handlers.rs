//! Message and stream handlers of `Realtime`.

use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws;

use super::link::Flushing;
use super::messages::{AppendAudio, RotateSession, Shutdown};
use super::Realtime;
use crate::metrics::{self, Hop};

impl Handler<AppendAudio> for Realtime {
    type Result = ();

    fn handle(&mut self, msg: AppendAudio, _ctx: &mut Context<Self>) {
        // Audio for a session that is not configured yet would be read in the wrong format.
        if self.link.append_audio(&msg.audio).is_ok() {
            metrics::hop_latency(Hop::Inbound, msg.received);
        }
    }
}

impl Handler<RotateSession> for Realtime {
    type Result = ();

    fn handle(&mut self, _: RotateSession, ctx: &mut Context<Self>) {
        self.rotating = true;
        self.link.close();
        ctx.stop();
    }
}

/// How long a closing model socket may take to send what it holds before the actor stops
/// regardless.
const SHUTDOWN_FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

impl Handler<Shutdown> for Realtime {
    type Result = ();

    /// Closes the socket after what was already written: the flusher sends what the socket
    /// still holds (the caller's last frames), the close frame, closes the socket and then
    /// stops the actor ([`Flushing::closed`]). Stopping at once would drop whatever the sink
    /// still held; a socket that cannot drain is given up after [`SHUTDOWN_FLUSH_BOUND`].
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.shutting_down = true;
        self.link
            .control(ws::Message::Close(Some(ws::CloseCode::Normal.into())));
        if self.link.close() {
            ctx.run_later(SHUTDOWN_FLUSH_BOUND, |_, ctx| ctx.stop());
        } else {
            ctx.stop();
        }
    }
}

impl Flushing for Realtime {
    fn write_failed(&mut self, err: WsProtocolError, ctx: &mut Context<Self>) {
        tracing::warn!(error = %err, "model socket write failed");
        ctx.stop();
    }

    /// The socket closed after sending everything: the call's end (or a rotation) is done.
    fn closed(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }

    /// The socket ended (the `Call`'s reader saw it): stopping hands the reconnect to the
    /// supervisor.
    fn read_ended(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
