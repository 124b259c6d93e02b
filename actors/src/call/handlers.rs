//! What a `Call` does with Twilio frames, model notices, converted audio and tool results:
//! parse, then hand to the voice logic (`domain::voice`).

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use base64::Engine as _;

use super::messages::{CallView, ChildView, CurrentTranscript, Describe, Goodbye, Replaced};
use super::socket::{self, BadFrames, TwilioSocket};
use super::{register, Call, Placed, Resume, B64};
use crate::config::AudioMode;
use crate::domain::records::mask_phone;
use crate::domain::transcript::Transcript;
use crate::domain::voice::CallerAudio as Route;
use crate::metrics::Hop;
use crate::protocol::openai::realtime::{AudioDelta, ServerEvent};
use crate::protocol::twilio::calls::{OUTBOUND_AGENT, OUTBOUND_REASON};
use crate::protocol::twilio::media::{self, Inbound};
use crate::protocol::twilio::twiml::{LISTEN_IN, RESUMED_AFTER_DIAL, RESUMED_AFTER_DROP};
use crate::realtime::link::ModelReading;
use crate::realtime::messages::ModelNotice;
use crate::registry::messages::CallInfo;
use crate::tools::messages::ToolFinished;
use crate::transcoder::messages::{ModelAudio, TranscodedAudio};

/// Twilio side: the socket's frames.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Call {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        socket::handle_frame(self, item, ctx);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl TwilioSocket for Call {
    const KIND: &'static str = "media";

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.on_twilio_text(text, Instant::now(), ctx);
    }

    fn bad_frames(&mut self) -> &mut BadFrames {
        &mut self.bad_frames
    }

    fn call_sid(&self) -> &str {
        self.identity.as_ref().map_or("", |id| id.call_sid.as_str())
    }

    fn ended_in_order(&mut self) {
        self.ended_cleanly = true;
    }
}

impl Call {
    /// `received`: when the frame reached the call, the start of its inbound hop.
    fn on_twilio_text(
        &mut self,
        text: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        // The per-frame event, read without allocating; everything else in full.
        if let Some(m) = media::parse_media(text) {
            return self.on_media(&m.stream_sid, m.track.as_deref(), &m.payload, received, ctx);
        }
        let frame = match media::parse_inbound(text) {
            Ok(frame) => frame,
            Err(err) => return self.bad_frame(err.reason(), ctx),
        };
        match frame {
            Inbound::Media(m) => self.on_media(
                &m.stream_sid,
                m.media.track.as_deref(),
                &m.media.payload,
                received,
                ctx,
            ),
            Inbound::Mark(m) => {
                if !self.is_our_stream(&m.stream_sid) {
                    return self.bad_frame(self.stream_problem(), ctx);
                }
                self.bad_frames.reset();
                self.drive(ctx, |voice, _, now, out| voice.mark(&m.mark.name, now, out));
            }
            Inbound::Start(start) => {
                if self.identity.is_some() {
                    return self.bad_frame("duplicate_start", ctx);
                }
                self.bad_frames.reset();
                let meta = start.start;
                let info = CallInfo {
                    call_sid: meta.call_sid,
                    stream_sid: meta.stream_sid,
                    audio_mode: self.audio_mode.as_str(),
                    started_at_ms: self.started_at_ms,
                };
                let from = meta.custom_parameters.get("From").map(String::as_str);
                tracing::info!(
                    call_sid = %info.call_sid,
                    audio_mode = info.audio_mode,
                    from = %from.map(mask_phone).unwrap_or_default(),
                    "call started"
                );
                let params = &meta.custom_parameters;
                let resumed = match (
                    params.get(RESUMED_AFTER_DIAL),
                    params.get(RESUMED_AFTER_DROP),
                ) {
                    (Some(status), _) => Some(Resume::AfterDial(status.clone())),
                    (None, Some(_)) => Some(Resume::AfterDrop),
                    (None, None) => None,
                };
                if params.get(LISTEN_IN).is_some_and(|v| v == "1") {
                    return super::listen::register(self, info, from, ctx);
                }
                // A call the engine placed (`/twilio/voice/outbound`): its agent opens it.
                let placed = params.get(OUTBOUND_REASON).map(|reason| Placed {
                    agent: params.get(OUTBOUND_AGENT).cloned().unwrap_or_default(),
                    reason: reason.clone(),
                });
                register(self, info, from, resumed, placed, ctx);
            }
            Inbound::Dtmf(d) => {
                if !self.is_our_stream(&d.stream_sid) {
                    return self.bad_frame(self.stream_problem(), ctx);
                }
                self.bad_frames.reset();
                self.drive(ctx, |voice, _, now, out| {
                    voice.dtmf(&d.dtmf.digit, now, out)
                });
            }
            Inbound::Stop(_) => {
                tracing::debug!(call_sid = %self.call_sid(), "Twilio stopped the stream");
                self.ended_cleanly = true;
                self.hang_up(ctx);
            }
            Inbound::Connected(_) | Inbound::Unknown => self.bad_frames.reset(),
        }
    }

    /// A `media` frame: caller audio, or a track of a call listened to.
    fn on_media(
        &mut self,
        stream_sid: &str,
        track: Option<&str>,
        payload: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.is_our_stream(stream_sid) {
            return self.bad_frame(self.stream_problem(), ctx);
        }
        if self.listening.is_some() {
            // Checked as caller audio is (SPEC §12), then to the track's session.
            if self.payload_checked(payload, ctx) {
                super::listen::media(self, track, payload);
            }
            return;
        }
        self.on_caller_audio(payload, received, ctx);
    }

    /// Whether a frame's payload is base64 (decoded into the reused scratch buffer); a bad
    /// one is counted as a bad frame.
    fn payload_checked(&mut self, payload: &str, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        self.scratch.clear();
        if B64
            .decode_vec(payload.as_bytes(), &mut self.scratch)
            .is_err()
        {
            self.bad_frame("bad_base64", ctx);
            return false;
        }
        self.bad_frames.reset();
        true
    }

    fn is_our_stream(&self, stream_sid: &str) -> bool {
        self.identity
            .as_ref()
            .is_some_and(|id| id.stream_sid == stream_sid)
    }

    fn stream_problem(&self) -> &'static str {
        if self.identity.is_none() {
            "before_start"
        } else {
            "wrong_stream"
        }
    }

    /// The per-frame path: check the payload, then forward it (or hold it while no session
    /// takes audio).
    fn on_caller_audio(
        &mut self,
        payload: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.payload_checked(payload, ctx) {
            return;
        }
        let route = self.voice.as_mut().map(|voice| voice.caller_audio(payload));
        if route == Some(Route::Forward) {
            self.forward_caller_audio(payload, received);
        }
    }

    /// An audio delta of the model: μ-law forwarded as it came (`pcmu`), or converted first.
    fn on_model_audio(
        &mut self,
        item_id: &str,
        delta: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.voice.as_ref().is_some_and(|v| v.wants_audio(item_id)) {
            return;
        }
        let transcoder = self.children.as_ref().and_then(|c| c.transcoder.as_ref());
        match (transcoder, self.audio_mode) {
            (Some(transcoder), AudioMode::Pcm24k) => transcoder.do_send(ModelAudio {
                item_id: item_id.to_owned(),
                delta_b64: delta.to_owned(),
                received,
            }),
            _ => {
                let audio_ms = decoded_len(delta) as u64 / 8;
                self.drive(ctx, |voice, _, now, out| {
                    voice.assistant_audio(item_id, delta, audio_ms, now, out)
                });
                crate::metrics::hop_latency(Hop::Outbound, received);
            }
        }
    }

    fn on_model_event(&mut self, event: ServerEvent, ctx: &mut ws::WebsocketContext<Self>) {
        self.trace.realtime_event(&event);
        if let ServerEvent::Error { error, .. } = &event {
            tracing::warn!(
                call_sid = %self.call_sid(),
                code = ?error.code,
                message = %error.message,
                "model reported an error"
            );
        }
        let entropy = rand::random();
        self.drive(ctx, |voice, shared, now, out| {
            voice.model_event(event, &shared.agents, now, entropy, out)
        });
    }
}

/// The model socket's events, read in the call's own task (`realtime::link::ModelReader`).
impl ModelReading for Call {
    fn model_ready(&mut self, reconnect: bool, ctx: &mut Self::Context) {
        self.shared.health.model_auth_ok();
        self.drive(ctx, |voice, shared, now, out| {
            voice.model_ready(reconnect, &shared.agents, now, out)
        });
    }

    fn model_audio(&mut self, delta: AudioDelta<'_>, received: Instant, ctx: &mut Self::Context) {
        self.on_model_audio(&delta.item_id, &delta.delta, received, ctx);
    }

    fn model_event(&mut self, event: ServerEvent, ctx: &mut Self::Context) {
        self.on_model_event(event, ctx);
    }
}

impl Handler<ModelNotice> for Call {
    type Result = ();

    fn handle(&mut self, notice: ModelNotice, ctx: &mut Self::Context) {
        match notice {
            ModelNotice::Lost { reason } => {
                tracing::warn!(call_sid = %self.call_sid(), %reason, "model socket lost; reconnecting");
                self.drive(ctx, |voice, _, now, out| voice.model_lost(now, out));
            }
            ModelNotice::GaveUp {
                reason,
                auth_failed,
            } => {
                if auth_failed {
                    crate::metrics::model_auth_failed();
                    self.shared.health.model_auth_failed(&reason);
                }
                self.drive(ctx, |voice, _, now, out| {
                    voice.model_gave_up(&reason, now, out)
                });
            }
        }
    }
}

impl Handler<TranscodedAudio> for Call {
    type Result = ();

    fn handle(&mut self, msg: TranscodedAudio, ctx: &mut Self::Context) {
        let audio_ms = msg.ulaw.len() as u64 / 8;
        let payload = B64.encode(&msg.ulaw);
        self.drive(ctx, |voice, _, now, out| {
            voice.assistant_audio(&msg.item_id, &payload, audio_ms, now, out)
        });
        crate::metrics::hop_latency(Hop::Outbound, msg.received);
    }
}

impl Handler<ToolFinished> for Call {
    type Result = ();

    fn handle(&mut self, msg: ToolFinished, ctx: &mut Self::Context) {
        crate::metrics::tool_call(&msg.name, msg.ok);
        self.trace.tool_finished(&msg.call_id, msg.ok);
        self.drive(ctx, |voice, _, now, out| {
            voice.tool_finished(&msg.call_id, &msg.name, &msg.output, now, out)
        });
    }
}

impl Handler<Replaced> for Call {
    type Result = ();

    fn handle(&mut self, _: Replaced, ctx: &mut Self::Context) {
        if self.voice.is_some() {
            self.drive(ctx, |voice, _, _, out| voice.replaced(out));
        } else {
            self.hang_up(ctx);
        }
    }
}

impl Handler<Goodbye> for Call {
    type Result = ();

    /// The drain ends: the goodbye prompt, then hang up once it played (or at `within`).
    fn handle(&mut self, msg: Goodbye, ctx: &mut Self::Context) {
        ctx.run_later(msg.within, |act, ctx| act.hang_up(ctx));
        if self.voice.is_none() {
            return self.hang_up(ctx);
        }
        tracing::info!(call_sid = %self.call_sid(), "draining: the caller hears goodbye");
        self.drive(ctx, |voice, shared, now, out| {
            let goodbye = &shared.prompts.goodbye;
            voice.say_goodbye(goodbye.ulaw(), goodbye.duration_ms(), now, out)
        });
        if let Some(model) = self.model() {
            model.do_send(crate::realtime::messages::Shutdown);
        }
    }
}

impl Handler<Describe> for Call {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(listening) = &self.listening {
            let identity = self.identity.as_ref();
            return MessageResult(CallView {
                id: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
                key: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
                customer_key: identity.map(|id| id.customer.clone()),
                kind: "call",
                channel: "voice",
                state: listening.state(),
                agent: "human".into(),
                customer: identity.map(|id| mask_phone(&id.customer)),
                audio_mode: "listen",
                started_at_ms: self.started_at_ms,
                restarts: 0,
                mailbox_delay_us: u64::try_from(msg.sent_at.elapsed().as_micros())
                    .unwrap_or(u64::MAX),
                last_turn_latency_ms: None,
                children: vec![
                    ChildView {
                        kind: "transcriber",
                        state: "caller".into(),
                    },
                    ChildView {
                        kind: "transcriber",
                        state: "person".into(),
                    },
                ],
            });
        }
        let voice = self.voice.as_ref();
        let live = voice.is_some_and(|v| v.is_live());
        let mut children = vec![
            ChildView {
                kind: "realtime",
                state: if live { "connected" } else { "reconnecting" }.into(),
            },
            ChildView {
                kind: "tool_executor",
                state: format!("{} running", voice.map_or(0, |v| v.tools_pending())),
            },
        ];
        if self.audio_mode == AudioMode::Pcm24k {
            children.push(ChildView {
                kind: "transcoder",
                state: "pcmu ↔ pcm24k".into(),
            });
        }
        let identity = self.identity.as_ref();
        MessageResult(CallView {
            id: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
            key: identity.map(|id| id.call_sid.clone()).unwrap_or_default(),
            customer_key: identity.map(|id| id.customer.clone()),
            kind: "call",
            channel: "voice",
            state: voice.map_or("connecting", |v| v.state()),
            agent: voice.map_or_else(
                || self.shared.agents.default_agent.clone(),
                |v| v.agent().to_owned(),
            ),
            customer: identity.map(|id| mask_phone(&id.customer)),
            audio_mode: self.audio_mode.as_str(),
            started_at_ms: self.started_at_ms,
            restarts: voice.map_or(0, |v| v.reconnects()),
            mailbox_delay_us: u64::try_from(msg.sent_at.elapsed().as_micros()).unwrap_or(u64::MAX),
            last_turn_latency_ms: voice.and_then(|v| v.last_turn_latency_ms()),
            children,
        })
    }
}

impl Handler<CurrentTranscript> for Call {
    type Result = MessageResult<CurrentTranscript>;

    fn handle(&mut self, _: CurrentTranscript, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(listening) = &self.listening {
            return MessageResult(listening.transcript().clone());
        }
        let now = self.now();
        MessageResult(
            self.voice
                .as_ref()
                .map_or_else(Transcript::new, |v| v.transcript_now(now)),
        )
    }
}

/// Bytes a base64 string decodes to, without decoding it.
fn decoded_len(b64: &str) -> usize {
    let padding = b64.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    (b64.len() / 4 * 3).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::decoded_len;
    use base64::Engine as _;

    #[test]
    fn decoded_len_matches_decoding() {
        for n in 0..50usize {
            let bytes = vec![0x5a; n];
            let b64 = super::B64.encode(&bytes);
            assert_eq!(decoded_len(&b64), n);
        }
    }
}
