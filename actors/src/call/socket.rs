//! The socket glue both Twilio-facing call actors share (Media Streams `Call`, and
//! ConversationRelay `RelayCall`): frame dispatch, close codes and the bad-frame policy.
//!
//! This is the one place that knows `actix-web-actors`' `WebsocketContext` frames, which
//! keeps a later move to `actix-ws` mechanical (see the README's design notes).

use actix::prelude::*;
use actix_web_actors::ws;

/// An actor that owns a Twilio WebSocket.
pub(crate) trait TwilioSocket: Actor<Context = ws::WebsocketContext<Self>> {
    /// Names the socket in logs ("media", "relay").
    const KIND: &'static str;

    /// A text frame, parsed by the actor.
    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>);

    /// The run of unusable frames, for the 1008 policy.
    fn bad_frames(&mut self) -> &mut BadFrames;

    /// The call this socket carries, for logs ("" before Twilio named it).
    fn call_sid(&self) -> &str;

    /// The socket ends in order — Twilio's close frame, or our own close — not a broken
    /// stream (which would mean the call goes on and must be resumed).
    fn ended_in_order(&mut self) {}

    /// Records an unusable frame: dropped and counted; too many in a row close the socket
    /// with `1008` (SPEC §12).
    fn bad_frame(&mut self, reason: &'static str, ctx: &mut ws::WebsocketContext<Self>) {
        crate::metrics::bad_frame(reason);
        tracing::debug!(call_sid = %self.call_sid(), reason, socket = Self::KIND, "bad frame dropped");
        if self.bad_frames().record() {
            tracing::warn!(call_sid = %self.call_sid(), socket = Self::KIND, "too many bad frames in a row; closing");
            self.ended_in_order();
            ctx.close(Some(ws::CloseReason {
                code: ws::CloseCode::Policy,
                description: Some("too many unusable frames".into()),
            }));
            ctx.stop();
        }
    }
}

/// Consecutive unusable frames against the configured limit.
pub(crate) struct BadFrames {
    in_row: u32,
    limit: u32,
}

impl BadFrames {
    pub(crate) fn new(limit: u32) -> Self {
        BadFrames { in_row: 0, limit }
    }

    /// A usable frame ends the run.
    pub(crate) fn reset(&mut self) {
        self.in_row = 0;
    }

    /// One more in the run; `true` when the socket must close.
    fn record(&mut self) -> bool {
        self.in_row = self.in_row.saturating_add(1);
        self.in_row >= self.limit
    }
}

/// Dispatches one frame from Twilio's socket.
pub(crate) fn handle_frame<A: TwilioSocket>(
    actor: &mut A,
    item: Result<ws::Message, ws::ProtocolError>,
    ctx: &mut ws::WebsocketContext<A>,
) {
    match item {
        Ok(ws::Message::Text(text)) => actor.on_text(&text, ctx),
        Ok(ws::Message::Binary(_)) => actor.bad_frame("binary", ctx),
        Ok(ws::Message::Continuation(_)) => actor.bad_frame("fragmented", ctx),
        Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
        Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
        Ok(ws::Message::Close(reason)) => {
            tracing::debug!(?reason, socket = A::KIND, "Twilio closed the socket");
            actor.ended_in_order();
            ctx.close(reason);
            ctx.stop();
        }
        Err(ws::ProtocolError::Overflow) => {
            actor.bad_frame("oversize", ctx);
            actor.ended_in_order();
            ctx.close(Some(ws::CloseReason {
                code: ws::CloseCode::Size,
                description: Some("message over 64 KiB".into()),
            }));
            ctx.stop();
        }
        Err(err) => {
            tracing::warn!(error = %err, socket = A::KIND, "socket protocol error");
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BadFrames;

    #[test]
    fn a_run_of_bad_frames_closes_only_at_the_limit_and_good_frames_reset_it() {
        let mut bad = BadFrames::new(3);
        assert!(!bad.record());
        assert!(!bad.record());
        bad.reset();
        assert!(!bad.record());
        assert!(!bad.record());
        assert!(bad.record());
    }
}
