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

use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws;
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::Sink;

use super::WsSink;
use crate::protocol::openai::realtime::write_append_audio_json;

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

    /// A new socket: its session is neither created nor configured yet.
    pub(super) fn attach(&self, sink: WsSink) {
        let mut state = self.0.borrow_mut();
        state.reset();
        state.sink = Some(sink);
    }

    /// The socket is gone (or the `Realtime` stopped): every later write fails.
    pub(super) fn detach(&self) {
        self.0.borrow_mut().reset();
    }

    /// `session.created` arrived on the current socket.
    pub(super) fn set_ready(&self) {
        self.0.borrow_mut().ready = true;
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
        self.ready = false;
        self.configured = false;
        self.backlog.clear();
        self.flusher = None;
        self.closing = false;
        self.error = None;
    }

    fn wake_flusher(&self) {
        if let Some(waker) = &self.flusher {
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
