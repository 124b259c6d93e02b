//! Message and stream handlers of `Realtime`.

use std::time::Instant;

use actix::prelude::*;
use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws;

use super::messages::{
    AppendAudio, ConfigureSession, ModelNotice, RotateSession, SendToModel, Shutdown,
};
use super::Realtime;
use crate::metrics::{self, Hop};
use crate::protocol::openai::realtime::{parse_server_event, ServerEvent};

impl Handler<SendToModel> for Realtime {
    type Result = ();

    fn handle(&mut self, msg: SendToModel, _ctx: &mut Context<Self>) {
        self.write(msg.0);
    }
}

impl Handler<ConfigureSession> for Realtime {
    type Result = ();

    fn handle(&mut self, msg: ConfigureSession, _ctx: &mut Context<Self>) {
        if self.write(msg.0) {
            self.configured = true;
        }
    }
}

impl Handler<AppendAudio> for Realtime {
    type Result = ();

    fn handle(&mut self, msg: AppendAudio, _ctx: &mut Context<Self>) {
        // Audio for a session that is not configured yet would be read in the wrong format.
        if self.configured && self.write(msg.json) {
            metrics::hop_latency(Hop::Inbound, msg.received);
        }
    }
}

impl Handler<RotateSession> for Realtime {
    type Result = ();

    fn handle(&mut self, _: RotateSession, ctx: &mut Context<Self>) {
        self.rotating = true;
        if let Some(sink) = &mut self.sink {
            sink.close();
        }
        ctx.stop();
    }
}

/// How long a closing model socket may take to send what it holds before the actor stops
/// regardless.
const SHUTDOWN_FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

impl Handler<Shutdown> for Realtime {
    type Result = ();

    /// Closes the socket after what was already written: the sink flushes its buffer (the
    /// caller's last frames), sends the close frame and then stops the actor
    /// (`WriteHandler::finished`). Stopping at once would drop whatever the sink still held;
    /// a socket that cannot drain is given up after [`SHUTDOWN_FLUSH_BOUND`].
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.shutting_down = true;
        match &mut self.sink {
            Some(sink) if !sink.closed() => {
                let _ = sink.write(ws::Message::Close(Some(ws::CloseCode::Normal.into())));
                sink.close();
                ctx.run_later(SHUTDOWN_FLUSH_BOUND, |_, ctx| ctx.stop());
            }
            _ => ctx.stop(),
        }
    }
}

impl Realtime {
    fn on_text(&mut self, text: &str, received: Instant) {
        match parse_server_event(text) {
            Ok(ServerEvent::SessionCreated { .. }) => {
                let reconnect = self.had_session;
                self.had_session = true;
                self.failures = 0;
                self.ready = true;
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
            Ok(ws::Frame::Ping(payload)) => {
                if let Some(sink) = &mut self.sink {
                    let _ = sink.write(ws::Message::Pong(payload));
                }
            }
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

impl actix::io::WriteHandler<WsProtocolError> for Realtime {
    fn error(&mut self, err: WsProtocolError, _ctx: &mut Self::Context) -> Running {
        tracing::warn!(error = %err, "model socket write failed");
        Running::Stop
    }
}
