//! What a `Call` does with Twilio frames, model events, converted audio and tool results.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use base64::Engine as _;
use serde_json::json;

use super::messages::{CallView, ChildView, CurrentTranscript, Describe, Replaced, Transcribed};
use super::socket::{self, BadFrames, TwilioSocket};
use super::{register, wall_clock_ms, Call, B64};
use crate::config::AudioMode;
use crate::domain::ledger::MarkOutcome;
use crate::domain::records::mask_phone;
use crate::domain::records::CallOutcome;
use crate::domain::transcript::Role;
use crate::domain::transcript::Transcript;
use crate::metrics::Hop;
use crate::protocol::openai::realtime::{append_audio_json, ClientEvent, Item, ServerEvent};
use crate::protocol::twilio::media::{self, Inbound};
use crate::realtime::messages::{AppendAudio, ModelNotice};
use crate::registry::messages::CallInfo;
use crate::tools::messages::{RunTool, ToolFinished};
use crate::transcoder::messages::{CallerAudio, ModelAudio, TranscodedAudio};

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
}

impl Call {
    /// `received`: when the frame reached the call, the start of its inbound hop.
    fn on_twilio_text(
        &mut self,
        text: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let frame = match media::parse_inbound(text) {
            Ok(frame) => frame,
            Err(err) => return self.bad_frame(err.reason(), ctx),
        };
        match frame {
            Inbound::Media(m) => {
                if !self.is_our_stream(&m.stream_sid) {
                    return self.bad_frame(self.stream_problem(), ctx);
                }
                self.on_caller_audio(&m.media.payload, received, ctx);
            }
            Inbound::Mark(m) => {
                if !self.is_our_stream(&m.stream_sid) {
                    return self.bad_frame(self.stream_problem(), ctx);
                }
                self.bad_frames.reset();
                self.on_mark(&m.mark.name, ctx);
            }
            Inbound::Start(start) => {
                if self.identity.is_some() {
                    return self.bad_frame("duplicate_start", ctx);
                }
                self.bad_frames.reset();
                let meta = start.start;
                let customer = meta.custom_parameters.get("From").cloned();
                let info = CallInfo {
                    call_sid: meta.call_sid,
                    stream_sid: meta.stream_sid,
                    audio_mode: self.audio_mode.as_str(),
                    started_at_ms: self.started_at_ms,
                };
                tracing::info!(call_sid = %info.call_sid, audio_mode = info.audio_mode, "call started");
                register(self, info, customer, ctx);
            }
            Inbound::Dtmf(d) => {
                self.bad_frames.reset();
                if self.model_ready {
                    let text = format!("[The caller pressed the key {}]", d.dtmf.digit);
                    self.send_to_model(
                        ClientEvent::ConversationItemCreate {
                            event_id: None,
                            previous_item_id: None,
                            item: Item::user_text(&text),
                        }
                        .to_json(),
                    );
                }
            }
            Inbound::Stop(_) => {
                tracing::debug!(call_sid = %self.call_sid(), "Twilio stopped the stream");
                self.hang_up(ctx);
            }
            Inbound::Connected(_) | Inbound::Unknown => self.bad_frames.reset(),
        }
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

    fn on_caller_audio(
        &mut self,
        payload: &str,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.scratch.clear();
        if B64
            .decode_vec(payload.as_bytes(), &mut self.scratch)
            .is_err()
        {
            return self.bad_frame("bad_base64", ctx);
        }
        self.bad_frames.reset();
        if !self.model_ready {
            // The caller hears hold audio meanwhile; what they say now is lost to a model
            // that is not there.
            return;
        }
        let Some(children) = &self.children else {
            return;
        };
        match (&children.transcoder, self.audio_mode) {
            (Some(transcoder), AudioMode::Pcm24k) => {
                transcoder.do_send(CallerAudio {
                    ulaw: self.scratch.clone(),
                    received,
                });
            }
            _ => children.model.do_send(AppendAudio {
                json: append_audio_json(payload),
                received,
            }),
        }
    }

    fn on_mark(&mut self, name: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let now = self.now_ms();
        if let MarkOutcome::Played { .. } = self.ledger.on_mark(name, now) {
            if let Some(since) = self.awaiting_answer_since_ms.take() {
                let latency = now.saturating_sub(since);
                self.last_turn_latency_ms = Some(latency);
                crate::metrics::turn_latency(Duration::from_millis(latency));
            }
        }
        if self.ending && !self.ledger.has_unplayed() && !self.response_active {
            self.hang_up(ctx);
        }
    }

    /// `received`: when the event reached `Realtime`, the start of an audio delta's
    /// outbound hop.
    fn on_model_event(
        &mut self,
        event: ServerEvent,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        match event {
            ServerEvent::InputAudioBufferSpeechStarted { .. } => self.on_speech_started(ctx),
            ServerEvent::InputAudioBufferSpeechStopped { .. } => {
                self.awaiting_answer_since_ms = Some(self.now_ms());
            }
            ServerEvent::ConversationItemInputAudioTranscriptionCompleted {
                transcript, ..
            } => {
                self.transcript
                    .push(Role::User, transcript, wall_clock_ms());
            }
            ServerEvent::ResponseCreated { .. } => self.response_active = true,
            ServerEvent::ResponseOutputAudioDelta { item_id, delta, .. } => {
                if self.ledger.is_interrupted(&item_id) {
                    return;
                }
                match (
                    self.children.as_ref().and_then(|c| c.transcoder.as_ref()),
                    self.audio_mode,
                ) {
                    (Some(transcoder), AudioMode::Pcm24k) => transcoder.do_send(ModelAudio {
                        item_id,
                        delta_b64: delta,
                        received,
                    }),
                    _ => {
                        let audio_ms = decoded_len(&delta) as u64 / 8;
                        self.play_assistant_audio(&item_id, &delta, audio_ms, ctx);
                        crate::metrics::hop_latency(Hop::Outbound, received);
                    }
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDelta { item_id, delta, .. } => {
                if self.ledger.is_interrupted(&item_id) {
                    return;
                }
                match &mut self.speaking {
                    Some(s) if s.item_id == item_id => s.text.push_str(&delta),
                    _ => {
                        self.speaking = Some(super::Speaking {
                            item_id,
                            text: delta,
                            ..Default::default()
                        })
                    }
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => {
                if self.ledger.is_interrupted(&item_id) {
                    return;
                }
                if let Some(s) = self.speaking.as_mut().filter(|s| s.item_id == item_id) {
                    s.text = transcript;
                }
                self.record_speaking(None);
            }
            ServerEvent::ResponseOutputItemDone { item, .. } => {
                if let Some((call_id, name, arguments)) = item.function_call() {
                    self.on_function_call(call_id, name, arguments, ctx);
                }
            }
            ServerEvent::ResponseDone { .. } => {
                self.response_active = false;
                if self.response_owed && self.tools_pending == 0 {
                    self.request_response();
                }
                if self.ending && !self.response_active && !self.ledger.has_unplayed() {
                    self.hang_up(ctx);
                }
            }
            ServerEvent::Error { error, .. } => {
                tracing::warn!(
                    call_sid = %self.call_sid(),
                    code = ?error.code,
                    message = %error.message,
                    "model reported an error"
                );
                if error.code.as_deref() == Some("conversation_already_has_active_response") {
                    self.response_active = true;
                    self.response_owed = true;
                }
            }
            _ => {}
        }
    }

    /// The caller started talking. If assistant audio is still queued at Twilio, flush it
    /// and tell the model how much was actually heard (SPEC §5.1 barge-in).
    fn on_speech_started(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let now = self.now_ms();
        let barge_in = self.ledger.barge_in(now);
        let Some(stream_sid) = self.identity.as_ref().map(|id| id.stream_sid.clone()) else {
            return;
        };
        if barge_in.clear {
            ctx.text(media::clear_message(&stream_sid));
            crate::metrics::barge_in();
        }
        if let Some(truncation) = barge_in.truncate {
            if self.session_items.contains(&truncation.item_id) {
                self.send_to_model(
                    ClientEvent::ConversationItemTruncate {
                        event_id: None,
                        item_id: truncation.item_id.clone(),
                        content_index: truncation.content_index,
                        audio_end_ms: truncation.audio_end_ms,
                    }
                    .to_json(),
                );
            }
            if self
                .speaking
                .as_ref()
                .is_some_and(|s| s.item_id == truncation.item_id)
            {
                self.record_speaking(Some(truncation.audio_end_ms));
            }
        }
        if self
            .speaking
            .as_ref()
            .is_some_and(|s| barge_in.unheard.contains(&s.item_id))
        {
            self.record_speaking(Some(0));
        }
        // Audio the model thinks was heard but that never played: forget it entirely.
        for item_id in barge_in.unheard {
            if self.session_items.contains(&item_id) {
                self.send_to_model(
                    ClientEvent::ConversationItemDelete {
                        event_id: None,
                        item_id,
                    }
                    .to_json(),
                );
            }
        }
        if barge_in.clear {
            self.speaking = None;
        }
    }

    fn on_function_call(
        &mut self,
        call_id: String,
        name: String,
        arguments: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.tools_used.push(name.clone());
        if let Some(target) = name.strip_prefix("transfer_to_") {
            let output = match self.hand_off(target) {
                Ok(()) => json!({ "assistant": target }),
                Err(error) => json!({ "error": error }),
            };
            return self.deliver_tool_output(&call_id, &name, output.to_string(), ctx);
        }
        if name == "escalate_to_human" {
            let output = if self.shared.config.twilio.human_number.is_some() {
                self.escalate(ctx);
                self.hang_up_after_playback(ctx);
                json!({ "status": "transferring", "say": "a short goodbye before the transfer" })
            } else {
                json!({ "error": "no human agent is available right now; offer to help further or take a message" })
            };
            return self.deliver_tool_output(&call_id, &name, output.to_string(), ctx);
        }
        let Some(children) = &self.children else {
            return;
        };
        self.tools_pending += 1;
        children.tools.do_send(RunTool {
            call_id,
            name,
            arguments,
        });
        let hold_after = Duration::from_millis(self.shared.config.voice.hold_after_ms);
        ctx.run_later(hold_after, |act, ctx| {
            if act.tools_pending > 0 {
                act.set_hold_reason(Some(true), None, ctx);
            }
        });
    }

    /// Gives the model a tool's output and asks it to go on once nothing else is pending.
    fn deliver_tool_output(
        &mut self,
        call_id: &str,
        name: &str,
        output: String,
        _ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.transcript
            .push(Role::Tool, format!("{name} → {output}"), wall_clock_ms());
        self.send_to_model(
            ClientEvent::ConversationItemCreate {
                event_id: None,
                previous_item_id: None,
                item: Item::function_call_output(call_id, &output),
            }
            .to_json(),
        );
        if self.tools_pending == 0 {
            self.request_response();
        }
    }
}

impl Handler<ModelNotice> for Call {
    type Result = ();

    fn handle(&mut self, notice: ModelNotice, ctx: &mut Self::Context) {
        match notice {
            ModelNotice::Ready { reconnect } => self.on_model_ready(reconnect, ctx),
            ModelNotice::Event { event, received } => self.on_model_event(*event, received, ctx),
            ModelNotice::Lost { reason } => {
                tracing::warn!(call_sid = %self.call_sid(), %reason, "model socket lost; reconnecting");
                if self.model_ready {
                    self.model_reconnects += 1;
                    crate::metrics::model_reconnect();
                }
                self.model_ready = false;
                self.response_active = false;
                self.response_owed = false;
                self.set_hold_reason(None, Some(true), ctx);
            }
            ModelNotice::GaveUp {
                reason,
                auth_failed,
            } => {
                if auth_failed {
                    crate::metrics::model_auth_failed();
                    self.shared.health.model_auth_failed(&reason);
                }
                self.model_ready = false;
                self.fall_back(&reason, ctx);
            }
        }
    }
}

impl Handler<TranscodedAudio> for Call {
    type Result = ();

    fn handle(&mut self, msg: TranscodedAudio, ctx: &mut Self::Context) {
        if self.ledger.is_interrupted(&msg.item_id) {
            return;
        }
        let audio_ms = msg.ulaw.len() as u64 / 8;
        let payload = B64.encode(&msg.ulaw);
        self.play_assistant_audio(&msg.item_id, &payload, audio_ms, ctx);
        crate::metrics::hop_latency(Hop::Outbound, msg.received);
    }
}

impl Handler<ToolFinished> for Call {
    type Result = ();

    fn handle(&mut self, msg: ToolFinished, ctx: &mut Self::Context) {
        crate::metrics::tool_call(&msg.name, msg.ok);
        self.tools_pending = self.tools_pending.saturating_sub(1);
        if self.tools_pending == 0 {
            self.set_hold_reason(Some(false), None, ctx);
        }
        if !self.model_ready {
            // The session that asked is gone; the new one gets the transcript instead.
            self.transcript.push(
                Role::Tool,
                format!("{} → {}", msg.name, msg.output),
                wall_clock_ms(),
            );
            return;
        }
        self.deliver_tool_output(&msg.call_id, &msg.name, msg.output, ctx);
    }
}

impl Handler<Replaced> for Call {
    type Result = ();

    fn handle(&mut self, _: Replaced, ctx: &mut Self::Context) {
        self.outcome = CallOutcome::Replaced;
        self.hang_up(ctx);
    }
}

impl Handler<Describe> for Call {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Self::Context) -> Self::Result {
        let state = if self.ending {
            "ending"
        } else if !self.model_ready {
            if self.model_reconnects > 0 || self.hold.reconnecting {
                "reconnecting"
            } else {
                "connecting"
            }
        } else if self.hold.wanted() {
            "on-hold"
        } else {
            "live"
        };
        let mut children = vec![
            ChildView {
                kind: "realtime",
                state: if self.model_ready {
                    "connected"
                } else {
                    "reconnecting"
                }
                .into(),
            },
            ChildView {
                kind: "tool_executor",
                state: format!("{} running", self.tools_pending),
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
            kind: "call",
            channel: "voice",
            state,
            agent: self.agent.clone(),
            customer: identity
                .and_then(|id| id.customer.as_deref())
                .map(mask_phone),
            audio_mode: self.audio_mode.as_str(),
            started_at_ms: self.started_at_ms,
            restarts: self.model_reconnects,
            mailbox_delay_us: u64::try_from(msg.sent_at.elapsed().as_micros()).unwrap_or(u64::MAX),
            last_turn_latency_ms: self.last_turn_latency_ms,
            children,
        })
    }
}

impl Handler<CurrentTranscript> for Call {
    type Result = MessageResult<CurrentTranscript>;

    fn handle(&mut self, _: CurrentTranscript, _ctx: &mut Self::Context) -> Self::Result {
        let mut transcript: Transcript = self.transcript.clone();
        if let Some(speaking) = self
            .speaking
            .as_ref()
            .filter(|s| !s.recorded && !s.text.is_empty())
        {
            transcript.push(
                Role::Assistant,
                format!("{} …", speaking.text),
                wall_clock_ms(),
            );
        }
        MessageResult(transcript)
    }
}

impl Handler<Transcribed> for Call {
    type Result = ();

    fn handle(&mut self, msg: Transcribed, _ctx: &mut Self::Context) {
        self.transcriptions.push(msg.0);
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
