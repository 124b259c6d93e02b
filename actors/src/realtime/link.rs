//! `ModelLink`: the write half of a call's model socket, shared by the `Realtime` child and
//! its `Call` on their arbiter's thread.
//!
//! Caller audio used to reach the socket through the `Realtime`'s mailbox: one message, one
//! task wake-up and one context poll per 20 ms frame, and the frame waited behind every other
//! task the worker woke for in the same `epoll` batch before it was written (BENCHMARKS,
//! "On-wire hop latency"). Both actors live on the same arbiter, so the `Call` now writes
//! what it sends the model — audio, client events, `session.update` — into the socket from
//! its own task, in the order it decides them, and the frame leaves in the same poll that
//! read it from Twilio.
//!
//! The `Realtime` still owns the socket's life: it attaches each new socket's sink, marks the
//! session ready on `session.created`, detaches it when the socket dies (the supervisor then
//! reconnects), and runs the [`Flusher`]: a write the socket could not take at once (a full
//! send buffer) is finished by the `Realtime`'s task when the socket becomes writable, and a
//! write error stops the `Realtime` as before, which hands the reconnect to the supervisor.
//! Nothing is queued for a socket that is not ready: what the call sent the old session
//! belongs to it, and the new session is configured afresh and given the transcript when it
//! is `Ready` (the call holds caller audio meanwhile, `domain::voice`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use actix::prelude::*;
use actix_http::ws::Item;
use awc::error::WsProtocolError;
use awc::ws;
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::{Sink, Stream};

use super::{WsSink, WsStream};
use crate::protocol::openai::realtime::{
    parse_server_frame, write_append_audio_json, AudioDelta, ServerEvent, ServerFrame,
};

/// The shared write half; cheap to clone (one `Rc`). Not `Send`: it stays on the arbiter
/// thread of the call and its children.
#[derive(Clone, Default)]
pub struct ModelLink(Rc<RefCell<LinkState>>);

#[derive(Default)]
struct LinkState {
    sink: Option<WsSink>,
    /// `session.created` arrived on the current socket.
    ready: bool,
    /// The call configured the current session: it takes caller audio.
    configured: bool,
    /// Messages the sink could not take yet, in order; the [`Flusher`] sends them.
    backlog: VecDeque<ws::Message>,
    /// The `Realtime`'s task, woken to finish what a write left (a pending flush, the
    /// backlog, an error). `None` until the current socket's flusher first ran.
    flusher: Option<Waker>,
    /// The socket is being closed: nothing more is written.
    closing: bool,
    /// A write failed; the flusher reports it to the `Realtime`.
    error: Option<WsProtocolError>,
    /// Reused buffer of the per-frame `input_audio_buffer.append` JSON: each frame's text is
    /// split off it, and the space is reclaimed once the codec has copied the frame out.
    json: BytesMut,
    /// The current socket's read half, until the call's [`ModelReader`] takes it.
    stream: Option<WsStream>,
    /// Counts the sockets attached: the reader drops a read half whose socket is gone.
    socket: u64,
    /// The call's [`ModelReader`], woken when a socket is attached or detached.
    reader: Option<Waker>,
    /// The reader saw the current socket end (closed, failed, or a protocol error): the
    /// flusher tells the `Realtime`, which stops, and its supervisor reconnects.
    ended: bool,
    /// `session.created` arrived on the current socket.
    created: bool,
    /// Sockets of this call whose session was created (a later one is a reconnect).
    sessions: u32,
}

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotWritten {
    /// No socket, or one whose session has not been created yet.
    NotReady,
    /// Caller audio for a session the call has not configured yet (it would be read in the
    /// wrong format).
    NotConfigured,
    /// The socket is closing or failed.
    Closed,
}

impl ModelLink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a client event (already serialized) to a ready socket.
    pub fn send(&self, text: String) -> Result<(), NotWritten> {
        let mut state = self.0.borrow_mut();
        if !state.ready {
            return Err(NotWritten::NotReady);
        }
        state.write(ws::Message::Text(text.into()))
    }

    /// Writes `session.update` for the current session; once written, the session takes
    /// caller audio.
    pub fn configure(&self, update: String) -> Result<(), NotWritten> {
        let mut state = self.0.borrow_mut();
        if !state.ready {
            return Err(NotWritten::NotReady);
        }
        state.write(ws::Message::Text(update.into()))?;
        state.configured = true;
        Ok(())
    }

    /// Writes caller audio (base64 μ-law, or PCM16 for a `pcm24k` session) as
    /// `input_audio_buffer.append` to a configured session.
    pub fn append_audio(&self, audio_b64: &str) -> Result<(), NotWritten> {
        let mut state = self.0.borrow_mut();
        if !state.ready {
            return Err(NotWritten::NotReady);
        }
        if !state.configured {
            return Err(NotWritten::NotConfigured);
        }
        let text = state.append_json(audio_b64);
        state.write(ws::Message::Text(text))
    }

    /// A new socket: its session is neither created nor configured yet. The read half goes
    /// to the call's [`ModelReader`].
    pub(super) fn attach(&self, sink: WsSink, stream: WsStream) {
        let mut state = self.0.borrow_mut();
        state.reset();
        state.sink = Some(sink);
        state.stream = Some(stream);
        state.socket += 1;
        state.wake_reader();
    }

    /// The socket is gone (or the `Realtime` stopped): every later write fails, and the
    /// reader drops its read half.
    pub(super) fn detach(&self) {
        let mut state = self.0.borrow_mut();
        state.reset();
        state.socket += 1;
        state.wake_reader();
    }

    /// Whether the current socket's session was created (before it is detached).
    pub(super) fn session_created(&self) -> bool {
        self.0.borrow().created
    }

    /// `session.created` arrived on the current socket: it is ready. `true` if an earlier
    /// socket of this call had a session too (a reconnect).
    fn set_ready(&self) -> bool {
        let mut state = self.0.borrow_mut();
        state.ready = true;
        state.created = true;
        state.sessions += 1;
        state.sessions > 1
    }

    /// A control frame (pong, close) for the current socket, ready or not.
    pub(super) fn control(&self, message: ws::Message) {
        // A closing or failed socket takes no more frames; nothing else to do.
        let _ = self.0.borrow_mut().write(message);
    }

    /// Starts closing the socket after what was already written (again, if it is closing
    /// already); the [`Flusher`] closes it and tells the `Realtime` ([`Flushing::closed`]).
    /// `false` if there is no socket left to close.
    pub(super) fn close(&self) -> bool {
        let mut state = self.0.borrow_mut();
        if state.sink.is_none() {
            return false;
        }
        state.closing = true;
        state.wake_flusher();
        true
    }
}

impl LinkState {
    fn reset(&mut self) {
        self.sink = None;
        self.stream = None;
        self.ready = false;
        self.configured = false;
        self.backlog.clear();
        self.flusher = None;
        self.closing = false;
        self.error = None;
        self.ended = false;
        self.created = false;
    }

    fn wake_flusher(&self) {
        if let Some(waker) = &self.flusher {
            waker.wake_by_ref();
        }
    }

    fn wake_reader(&self) {
        if let Some(waker) = &self.reader {
            waker.wake_by_ref();
        }
    }

    /// `input_audio_buffer.append` in the reused buffer.
    fn append_json(&mut self, audio_b64: &str) -> ByteString {
        write_append_audio_json(&mut self.json, audio_b64);
        // Only ASCII and serde's valid UTF-8 were written.
        ByteString::try_from(self.json.split().freeze()).unwrap_or_default()
    }

    /// Hands a frame to the socket now if it can take it, else to the backlog.
    fn write(&mut self, message: ws::Message) -> Result<(), NotWritten> {
        if self.closing || self.error.is_some() {
            return Err(NotWritten::Closed);
        }
        let LinkState {
            sink: Some(sink),
            flusher,
            backlog,
            ..
        } = self
        else {
            return Err(NotWritten::NotReady);
        };
        let Some(waker) = flusher.as_ref().filter(|_| backlog.is_empty()) else {
            // Behind earlier frames, or before the flusher first ran: it sends these in order.
            backlog.push_back(message);
            self.wake_flusher();
            return Ok(());
        };
        // Whatever stays pending wakes the `Realtime`'s task, whose flusher finishes it.
        let mut cx = TaskContext::from_waker(waker);
        let mut sink = Pin::new(sink);
        let result = match sink.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => match sink.as_mut().start_send(message) {
                Ok(()) => match sink.as_mut().poll_flush(&mut cx) {
                    Poll::Ready(Err(err)) => Err(err),
                    Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
                },
                Err(err) => Err(err),
            },
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => {
                backlog.push_back(message);
                Ok(())
            }
        };
        result.map_err(|err| {
            self.error = Some(err);
            self.wake_flusher();
            NotWritten::Closed
        })
    }
}

/// What the [`Flusher`] tells the actor that runs it.
pub(super) trait Flushing: Actor<Context = Context<Self>> {
    /// A write failed: the socket is unusable.
    fn write_failed(&mut self, err: WsProtocolError, ctx: &mut Context<Self>);
    /// The socket was closed after everything written was sent.
    fn closed(&mut self, ctx: &mut Context<Self>);
    /// The reader saw the socket end: closed by the model, failed, or a protocol error.
    fn read_ended(&mut self, ctx: &mut Context<Self>);
}

/// Runs in the `Realtime`'s context for each socket: sends the backlog, finishes flushes a
/// write left pending, closes the socket when asked, and reports write errors.
pub(super) struct Flusher(pub(super) ModelLink);

impl<A: Flushing> ActorFuture<A> for Flusher {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut Context<A>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let link = self.0.clone();
        let mut state = link.0.borrow_mut();
        if let Some(err) = state.error.take() {
            drop(state);
            act.write_failed(err, ctx);
            return Poll::Ready(());
        }
        if std::mem::take(&mut state.ended) {
            drop(state);
            act.read_ended(ctx);
            return Poll::Ready(());
        }
        if !state
            .flusher
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.flusher = Some(cx.waker().clone());
        }
        let LinkState {
            sink: Some(sink),
            backlog,
            closing,
            ..
        } = &mut *state
        else {
            // Detached: this socket is over.
            return Poll::Ready(());
        };
        let mut sink = Pin::new(sink);
        let mut failed = None;
        while !backlog.is_empty() {
            match sink.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(message) = backlog.pop_front() {
                        if let Err(err) = sink.as_mut().start_send(message) {
                            failed = Some(err);
                            break;
                        }
                    }
                }
                Poll::Ready(Err(err)) => {
                    failed = Some(err);
                    break;
                }
                Poll::Pending => break,
            }
        }
        if failed.is_none() {
            let flushed = if *closing && backlog.is_empty() {
                sink.as_mut().poll_close(cx)
            } else {
                sink.as_mut().poll_flush(cx)
            };
            match flushed {
                Poll::Ready(Err(err)) => failed = Some(err),
                Poll::Ready(Ok(())) if *closing && backlog.is_empty() => {
                    drop(state);
                    act.closed(ctx);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        if let Some(err) = failed {
            drop(state);
            act.write_failed(err, ctx);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// What the call's [`ModelReader`] hands its actor, in the socket's order.
pub trait ModelReading: Actor
where
    Self::Context: AsyncContext<Self>,
{
    /// `session.created` arrived on a new socket, which now takes client events: the call
    /// configures the session and replays its transcript. `reconnect`: an earlier socket of
    /// this call had a session.
    fn model_ready(&mut self, reconnect: bool, ctx: &mut Self::Context);
    /// An audio delta, borrowed from the frame, with the moment the frame was read (the
    /// start of the outbound hop).
    fn model_audio(&mut self, delta: AudioDelta<'_>, received: Instant, ctx: &mut Self::Context);
    /// Any other server event.
    fn model_event(&mut self, event: ServerEvent, ctx: &mut Self::Context);
}

/// Frames read in one poll before the reader lets its task do other work.
const READ_BATCH: usize = 32;

/// The read half of the call's model socket, polled in the call's own task.
///
/// Model events used to be read by the `Realtime` and sent to the `Call` as messages: one
/// more task wake-up, mailbox envelope and boxed event per 20 ms audio delta, on top of the
/// `Call`'s own. The `Call` now runs this reader in its context: a delta is parsed from the
/// frame without allocating ([`parse_server_frame`]) and written to Twilio in the same poll
/// that read it, in order with every other event of the socket (barge-in's `clear`, marks
/// and truncation keep their order). The `Realtime` still owns the socket's life: it attaches
/// each new socket (the reader takes the read half), and when the reader sees the socket end
/// it tells the `Realtime` through the [`Flusher`], which stops it; its supervisor
/// reconnects. Like mailbox messages, frames wait while the call's context waits.
pub struct ModelReader {
    link: ModelLink,
    /// The read half, with the number of the socket it belongs to.
    stream: Option<(u64, WsStream)>,
    /// A continuation-framed text message being assembled.
    partial: Vec<u8>,
}

impl ModelReader {
    pub fn new(link: ModelLink) -> Self {
        ModelReader {
            link,
            stream: None,
            partial: Vec::new(),
        }
    }
}

impl<A> ActorFuture<A> for ModelReader
where
    A: ModelReading,
    A::Context: AsyncContext<A>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        cx: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let ModelReader {
            link,
            stream,
            partial,
        } = self.get_mut();
        {
            let mut state = link.0.borrow_mut();
            if !state
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.reader = Some(cx.waker().clone());
            }
            if stream
                .as_ref()
                .is_some_and(|(socket, _)| *socket != state.socket)
            {
                // Detached: the `Realtime` is done with that socket.
                *stream = None;
            }
            if stream.is_none() {
                if let Some(new) = state.stream.take() {
                    *stream = Some((state.socket, new));
                    partial.clear();
                }
            }
        }
        let Some((socket, read)) = stream.as_mut() else {
            return Poll::Pending;
        };
        let socket = *socket;
        for _ in 0..READ_BATCH {
            // An event that made the call wait (as a handler's `ctx.wait` does) holds the
            // next frames, as it would hold mailbox messages.
            if ctx.waiting() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let item = match Pin::new(&mut *read).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            let received = Instant::now();
            let ended = match item {
                Some(Ok(ws::Frame::Text(bytes))) => {
                    match std::str::from_utf8(&bytes) {
                        Ok(text) => dispatch(link, text, received, act, ctx),
                        Err(_) => tracing::warn!("model sent invalid UTF-8; frame dropped"),
                    }
                    false
                }
                Some(Ok(ws::Frame::Continuation(item))) => {
                    if let Some(text) = assemble(partial, item) {
                        dispatch(link, &text, received, act, ctx);
                    }
                    false
                }
                Some(Ok(ws::Frame::Ping(payload))) => {
                    link.control(ws::Message::Pong(payload));
                    false
                }
                Some(Ok(ws::Frame::Binary(_))) | Some(Ok(ws::Frame::Pong(_))) => false,
                Some(Ok(ws::Frame::Close(reason))) => {
                    tracing::info!(?reason, "model closed the socket");
                    true
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "model socket protocol error");
                    true
                }
                None => true,
            };
            if ended {
                *stream = None;
                let mut state = link.0.borrow_mut();
                if state.socket == socket {
                    state.ended = true;
                    state.wake_flusher();
                }
                return Poll::Pending;
            }
        }
        // More may be waiting: let the task's other work (the Twilio side) run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Hands one text message to the call; `session.created` first makes the socket ready.
fn dispatch<A>(link: &ModelLink, text: &str, received: Instant, act: &mut A, ctx: &mut A::Context)
where
    A: ModelReading,
    A::Context: AsyncContext<A>,
{
    match parse_server_frame(text) {
        Ok(ServerFrame::AudioDelta(delta)) => act.model_audio(delta, received, ctx),
        Ok(ServerFrame::Other(ServerEvent::SessionCreated { .. })) => {
            let reconnect = link.set_ready();
            act.model_ready(reconnect, ctx);
        }
        Ok(ServerFrame::Other(event)) => act.model_event(event, ctx),
        Err(err) => tracing::warn!(error = %err, "unparseable model event dropped"),
    }
}

/// Assembles a continuation-framed text message; the whole message once its last fragment
/// arrived. A message growing past the frame cap, or not UTF-8, is dropped.
fn assemble(partial: &mut Vec<u8>, item: Item) -> Option<String> {
    let bytes = match item {
        Item::FirstText(bytes) => {
            partial.clear();
            partial.extend_from_slice(&bytes);
            return None;
        }
        Item::FirstBinary(_) => {
            partial.clear();
            return None;
        }
        Item::Continue(bytes) => {
            extend_partial(partial, &bytes);
            return None;
        }
        Item::Last(bytes) => bytes,
    };
    if !extend_partial(partial, &bytes) {
        return None;
    }
    match String::from_utf8(std::mem::take(partial)) {
        Ok(text) => Some(text),
        Err(_) => {
            tracing::warn!("model sent invalid UTF-8; message dropped");
            None
        }
    }
}

/// Appends a continuation fragment; a message growing past the frame cap is dropped.
fn extend_partial(partial: &mut Vec<u8>, bytes: &[u8]) -> bool {
    if partial.len() + bytes.len() > super::MAX_MODEL_FRAME {
        tracing::warn!("model message over the size cap; dropped");
        partial.clear();
        return false;
    }
    partial.extend_from_slice(bytes);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_json_is_what_serde_would_write() {
        let mut state = LinkState::default();
        for audio in ["", "AAEC/+8=", "f39/fw==", "not\"base64\\"] {
            let text = state.append_json(audio);
            let expected = crate::protocol::openai::realtime::append_audio_json(audio);
            assert_eq!(&*text, expected.as_str());
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed["audio"], audio);
        }
    }

    #[test]
    fn nothing_is_written_without_a_ready_configured_socket() {
        let link = ModelLink::new();
        assert_eq!(link.send("{}".into()), Err(NotWritten::NotReady));
        assert_eq!(link.configure("{}".into()), Err(NotWritten::NotReady));
        assert_eq!(link.append_audio("AAAA"), Err(NotWritten::NotReady));
        link.set_ready();
        // Ready, but no socket attached (it died): still nothing.
        assert_eq!(link.send("{}".into()), Err(NotWritten::NotReady));
        assert_eq!(link.append_audio("AAAA"), Err(NotWritten::NotConfigured));
        assert!(!link.close());
    }
}
