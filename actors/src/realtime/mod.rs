//! `Realtime`: the OpenAI Realtime WebSocket of one call (GA interface).
//!
//! Runs under an actix `Supervisor`: when the socket fails, the actor stops itself and the
//! supervisor restarts it in place — same address, so the `Call` and the `Transcoder` keep
//! talking to it — and `restarting` schedules a reconnect after an exponential backoff. The
//! `Call` owns the conversation state; on every new socket it is told `Ready`, configures
//! the session and replays the transcript as text items; caller audio is written only to a
//! configured session. The actor itself stays thin: it connects and owns the socket's life.
//! The `Call` writes to the socket and reads it from its own task, through the shared
//! [`ModelLink`] and its [`link::ModelReader`]; this actor attaches each socket, flushes and
//! closes it, and stops when the reader sees it end.

mod handlers;
pub mod link;
pub mod messages;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use awc::ws;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};

use crate::census::Kind;
use crate::domain::backoff::Backoff;
use crate::engine::Shared;
use link::{Flusher, ModelLink};
use messages::ModelNotice;

pub(crate) type WsSink = SplitSink<actix_codec::Framed<awc::BoxedSocket, ws::Codec>, ws::Message>;
pub(crate) type WsStream = SplitStream<actix_codec::Framed<awc::BoxedSocket, ws::Codec>>;

/// Largest frame accepted from the model (audio deltas can be large in pcm24k mode).
const MAX_MODEL_FRAME: usize = 16 * 1024 * 1024;

pub struct Realtime {
    shared: Arc<Shared>,
    url: String,
    call: Recipient<ModelNotice>,
    backoff: Backoff,
    /// Failed attempts since the last socket that reached `session.created`.
    failures: u32,
    /// The socket, shared with the `Call`, which writes and reads it.
    link: ModelLink,
    /// Set by `RotateSession`: the next restart reconnects at once.
    rotating: bool,
    /// Wait before the next connection attempt (set by `restarting`, used by `started`).
    next_delay: Duration,
    shutting_down: bool,
    gave_up: bool,
}

impl Realtime {
    /// `link`: the write half the `Call` shares (on this arbiter's thread).
    pub fn new(shared: Arc<Shared>, call: Recipient<ModelNotice>, link: ModelLink) -> Self {
        Realtime {
            url: shared.config.openai.realtime_url(),
            backoff: shared.config.voice.reconnect.backoff(),
            shared,
            call,
            failures: 0,
            link,
            rotating: false,
            next_delay: Duration::ZERO,
            shutting_down: false,
            gave_up: false,
        }
    }

    /// Opens a socket after `delay`.
    fn connect_after(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if delay.is_zero() {
            self.connect(ctx);
        } else {
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down || self.gave_up {
            return;
        }
        // The WebSocket client offers only HTTP/1.1 over TLS (see `crate::http`).
        let request = crate::http::model_socket(
            &self.url,
            self.shared.config.openai.api_key.as_ref(),
            MAX_MODEL_FRAME,
        );
        async move { request.connect().await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok((_response, framed)) => {
                    let (sink, stream) = framed.split();
                    act.link.attach(sink, stream);
                    ctx.spawn(Flusher(act.link.clone()));
                }
                Err(awc::error::WsClientError::InvalidResponseStatus(status))
                    if status.as_u16() == 401 || status.as_u16() == 403 =>
                {
                    act.give_up(format!("model refused the API key ({status})"), true);
                }
                Err(err) => act.connection_failed(format!("connect failed: {err}"), ctx),
            })
            .wait(ctx);
    }

    /// A connection attempt failed, or a socket died: the delay before the next attempt,
    /// or `None` when the retry budget is spent (the call is then told to fall back).
    fn next_attempt(&mut self, reason: String) -> Option<Duration> {
        self.failures += 1;
        match self.backoff.delay_with(self.failures, rand::random(), None) {
            Some(delay) => {
                tracing::warn!(%reason, attempt = self.failures, ?delay, "model socket: retrying");
                self.call.do_send(ModelNotice::Lost { reason });
                Some(delay)
            }
            None => {
                self.give_up(reason, false);
                None
            }
        }
    }

    /// A connection attempt failed before a socket existed: retry in place.
    fn connection_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        if let Some(delay) = self.next_attempt(reason) {
            self.connect_after(delay, ctx);
        }
    }

    fn give_up(&mut self, reason: String, auth_failed: bool) {
        if self.gave_up {
            return;
        }
        self.gave_up = true;
        tracing::error!(%reason, "model socket: giving up");
        self.call.do_send(ModelNotice::GaveUp {
            reason,
            auth_failed,
        });
    }
}

impl Actor for Realtime {
    type Context = Context<Self>;

    /// Runs on the first start and again after every supervisor restart.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.census.started(Kind::Realtime);
        if !(self.shutting_down || self.gave_up) {
            let delay = std::mem::take(&mut self.next_delay);
            self.connect_after(delay, ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.link.detach();
        self.shared.census.stopped(Kind::Realtime);
    }
}

impl Supervised for Realtime {
    /// The socket is gone (the actor stopped itself): `started` reconnects after a backoff,
    /// or at once when the session was rotated on purpose.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        if self.link.session_created() {
            // The socket that ended was working: the retry budget starts afresh.
            self.failures = 0;
        }
        self.link.detach();
        if self.shutting_down || self.gave_up {
            // Nothing more to do; the call drops its address and the supervisor ends.
            return;
        }
        if std::mem::take(&mut self.rotating) {
            self.next_delay = Duration::ZERO;
            return;
        }
        match self.next_attempt("model socket closed".into()) {
            Some(delay) => self.next_delay = delay,
            None => self.gave_up = true,
        }
    }
}
