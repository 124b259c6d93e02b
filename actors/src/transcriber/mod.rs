//! `Transcriber`: one OpenAI Realtime *transcription* session (`?intent=transcription`,
//! `session.type = "transcription"`, protocols-more.md §12) for one track of a call that
//! people talk on while switchboard listens (`voice.mode = "human"`). One session takes one
//! audio stream, so a call has one per track (§12.4): the caller's and the person's.
//!
//! It connects, configures the session for Twilio's μ-law once `session.created` arrives,
//! writes the track's audio, and tells its `Call` each completed transcript. It does not
//! reconnect: a lost session leaves a gap in the transcript, not in the call, and is logged.

use std::sync::Arc;

use actix::io::SinkWrite;
use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws;
use futures_util::stream::{SplitSink, StreamExt};
use serde_json::json;

use crate::census::Kind;
use crate::engine::Shared;
use crate::protocol::openai::realtime::{parse_server_event, ServerEvent};

type WsSink = SplitSink<actix_codec::Framed<awc::BoxedSocket, ws::Codec>, ws::Message>;

/// Largest frame accepted from the model.
const MAX_MODEL_FRAME: usize = 1024 * 1024;

/// Which side of the line a transcriber hears (Twilio's `media.track`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// `inbound`: the caller.
    Caller,
    /// `outbound`: what Twilio plays to the caller — the person the call was dialled to.
    Person,
}

/// Audio of the track (base64 μ-law, as Twilio sent it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrackAudio(pub String);

/// Close the session (the call ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopTranscribing;

/// What a transcriber tells its call.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Heard {
    /// One committed turn's final text.
    Words { track: Track, text: String },
    /// The session could not be had (refused key, unreachable): the track goes untranscribed.
    Unavailable { track: Track, reason: String },
}

pub struct Transcriber {
    shared: Arc<Shared>,
    track: Track,
    call: Recipient<Heard>,
    sink: Option<SinkWrite<ws::Message, WsSink>>,
    /// `session.update` sent: audio may be written.
    configured: bool,
}

impl Transcriber {
    pub fn new(shared: Arc<Shared>, track: Track, call: Recipient<Heard>) -> Self {
        Transcriber {
            shared,
            track,
            call,
            sink: None,
            configured: false,
        }
    }

    /// `{OPENAI_BASE_URL}` as a WebSocket URL + `/realtime?intent=transcription` (no model:
    /// a model in the URL makes a conversation session, §12.1).
    fn url(&self) -> String {
        let realtime = self.shared.config.openai.realtime_url();
        let base = realtime.split('?').next().unwrap_or(&realtime).to_owned();
        format!("{base}?intent=transcription")
    }

    /// The session for Twilio's audio: μ-law as it came (§12.2's format note), the
    /// configured transcription model, server VAD.
    fn session_update(&self) -> String {
        let model = match self.shared.config.openai.transcription_model.trim() {
            "" => "gpt-4o-mini-transcribe",
            model => model,
        };
        json!({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": model},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        }}}})
        .to_string()
    }

    fn write(&mut self, text: String) {
        if let Some(sink) = &mut self.sink {
            if sink.write(ws::Message::Text(text.into())).is_err() {
                tracing::debug!("transcription socket closed while writing");
            }
        }
    }

    fn unavailable(&self, reason: String) {
        tracing::warn!(track = ?self.track, %reason, "transcription session unavailable");
        self.call.do_send(Heard::Unavailable {
            track: self.track,
            reason,
        });
    }
}

impl Actor for Transcriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.census.started(Kind::Realtime);
        let request = crate::http::model_socket(
            &self.url(),
            self.shared.config.openai.api_key.as_ref(),
            MAX_MODEL_FRAME,
        );
        async move { request.connect().await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok((_response, framed)) => {
                    let (sink, stream) = framed.split();
                    act.sink = Some(SinkWrite::new(sink, ctx));
                    ctx.add_stream(stream);
                }
                Err(err) => {
                    act.unavailable(format!("connect failed: {err}"));
                    ctx.stop();
                }
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.stopped(Kind::Realtime);
    }
}

impl Handler<TrackAudio> for Transcriber {
    type Result = ();

    fn handle(&mut self, msg: TrackAudio, _ctx: &mut Context<Self>) {
        if self.configured {
            let append = crate::protocol::openai::realtime::append_audio_json(&msg.0);
            self.write(append);
        }
    }
}

impl Handler<StopTranscribing> for Transcriber {
    type Result = ();

    fn handle(&mut self, _: StopTranscribing, ctx: &mut Context<Self>) {
        if let Some(sink) = &mut self.sink {
            let _ = sink.write(ws::Message::Close(Some(ws::CloseCode::Normal.into())));
            sink.close();
        }
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Frame, WsProtocolError>> for Transcriber {
    fn handle(&mut self, item: Result<ws::Frame, WsProtocolError>, ctx: &mut Context<Self>) {
        match item {
            Ok(ws::Frame::Text(bytes)) => {
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    return;
                };
                match parse_server_event(text) {
                    Ok(ServerEvent::SessionCreated { .. }) => {
                        let update = self.session_update();
                        self.write(update);
                        self.configured = true;
                    }
                    Ok(ServerEvent::ConversationItemInputAudioTranscriptionCompleted {
                        transcript,
                        ..
                    }) => {
                        let text = transcript.trim();
                        if !text.is_empty() {
                            self.call.do_send(Heard::Words {
                                track: self.track,
                                text: text.to_owned(),
                            });
                        }
                    }
                    Ok(ServerEvent::Error { error, .. }) => {
                        tracing::warn!(track = ?self.track, ?error, "transcription session error");
                    }
                    // VAD events, deltas and anything added later: nothing to do.
                    Ok(_) => {}
                    Err(err) => tracing::debug!(error = %err, "unparseable transcription event"),
                }
            }
            Ok(ws::Frame::Ping(payload)) => {
                if let Some(sink) = &mut self.sink {
                    let _ = sink.write(ws::Message::Pong(payload));
                }
            }
            Ok(ws::Frame::Close(_)) | Err(_) => ctx.stop(),
            Ok(_) => {}
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl actix::io::WriteHandler<WsProtocolError> for Transcriber {
    fn error(&mut self, err: WsProtocolError, _ctx: &mut Self::Context) -> Running {
        tracing::warn!(error = %err, "transcription socket write failed");
        Running::Stop
    }
}
