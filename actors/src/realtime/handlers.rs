//! Message and stream handlers of `Realtime`.

use std::time::Instant;

use actix::prelude::*;
use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws;

use super::link::Flushing;
use super::messages::{AppendAudio, ModelNotice, RotateSession, Shutdown};
use super::Realtime;
use crate::metrics::{self, Hop};
use crate::protocol::openai::realtime::{parse_server_event, ServerEvent};

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
}

impl Realtime {
    fn on_text(&mut self, text: &str, received: Instant) {
        match parse_server_event(text) {
            Ok(ServerEvent::SessionCreated { .. }) => {
                let reconnect = self.had_session;
                self.had_session = true;
                self.failures = 0;
                self.link.set_ready();
                self.shared.health.model_auth_ok();
                self.call.do_send(ModelNotice::Ready { reconnect });
            }
            Ok(event) => self.call.do_send(ModelNotice::Event {
                event: Box::new(event),
                received,
            }),
            Err(err) => tracing::warn!(error = %err, "unparseable model event dropped"),
        }
    }
}

impl StreamHandler<Result<ws::Frame, WsProtocolError>> for Realtime {
    fn handle(&mut self, item: Result<ws::Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        let received = Instant::now();
        match item {
            Ok(ws::Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text, received),
                Err(_) => tracing::warn!("model sent invalid UTF-8; frame dropped"),
            },
            Ok(ws::Frame::Continuation(item)) => self.on_continuation(item, received),
            Ok(ws::Frame::Ping(payload)) => self.link.control(ws::Message::Pong(payload)),
            Ok(ws::Frame::Close(reason)) => {
                tracing::info!(?reason, "model closed the socket");
                ctx.stop();
            }
            Ok(ws::Frame::Binary(_)) | Ok(ws::Frame::Pong(_)) => {}
            Err(err) => {
                tracing::warn!(error = %err, "model socket protocol error");
                ctx.stop();
            }
        }
    }

    /// The socket's stream ended: stopping hands the reconnect to the supervisor.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Realtime {
    fn on_continuation(&mut self, item: Item, received: Instant) {
        match item {
            Item::FirstText(bytes) => {
                self.partial.clear();
                self.partial.extend_from_slice(&bytes);
            }
            Item::FirstBinary(_) => self.partial.clear(),
            Item::Continue(bytes) => {
                self.extend_partial(&bytes);
            }
            Item::Last(bytes) => {
                if !self.extend_partial(&bytes) {
                    return;
                }
                let whole = std::mem::take(&mut self.partial);
                match String::from_utf8(whole) {
                    Ok(text) => self.on_text(&text, received),
                    Err(_) => tracing::warn!("model sent invalid UTF-8; message dropped"),
                }
            }
        }
    }
}

impl Realtime {
    /// Appends a continuation fragment; a message growing past the frame cap is dropped.
    fn extend_partial(&mut self, bytes: &[u8]) -> bool {
        if self.partial.len() + bytes.len() > super::MAX_MODEL_FRAME {
            tracing::warn!("model message over the size cap; dropped");
            self.partial.clear();
            return false;
        }
        self.partial.extend_from_slice(bytes);
        true
    }
}
