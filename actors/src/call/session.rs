//! The model session of a call: configuring it, replaying history into a new one, handing
//! off between agents, and rotating it before the provider's cap.

use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::json;

use super::socket::TwilioSocket as _;
use super::Call;
use crate::config::AudioMode;
use crate::domain::transcript::Role;
use crate::protocol::openai::realtime::{ClientEvent, Item, Session};
use crate::realtime::messages::RotateSession;

/// How many earlier turns a new session is given back after a reconnect.
const REPLAY_TURNS: usize = 40;
/// How often an overdue rotation checks whether the call is idle.
const ROTATION_RETRY: Duration = Duration::from_secs(1);

impl Call {
    /// `session.update` for the active agent. The voice and audio formats are those the
    /// call started with: a handoff changes instructions and tools only (SPEC §5.1).
    pub(super) fn session_update(&self) -> String {
        let agents = &self.shared.agents;
        let instructions = agents
            .agent(&self.agent)
            .map(|a| a.instructions.clone())
            .unwrap_or_default();
        let tools: Vec<serde_json::Value> = agents
            .function_tools(&self.agent)
            .into_iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                })
            })
            .collect();
        let format = match self.audio_mode {
            AudioMode::Pcmu => json!({"type": "audio/pcmu"}),
            AudioMode::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        };
        let voice = &self.shared.config.voice;
        let openai = &self.shared.config.openai;
        let mut input = json!({
            "format": format,
            "turn_detection": voice.turn_detection,
        });
        if !openai.transcription_model.is_empty() {
            input["transcription"] = json!({ "model": openai.transcription_model });
        }
        let session = json!({
            "type": "realtime",
            "model": openai.realtime_model,
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {
                "input": input,
                "output": { "format": format, "voice": self.voice },
            },
            "tools": tools,
            "tool_choice": "auto",
        });
        match serde_json::from_value::<Session>(session) {
            Ok(session) => ClientEvent::SessionUpdate {
                event_id: None,
                session,
            }
            .to_json(),
            Err(err) => {
                // Our own JSON above always fits the wire type; log rather than panic.
                tracing::error!(error = %err, "session.update did not fit the wire type");
                String::new()
            }
        }
    }

    /// A model socket reached `session.created`: configure it, and after a reconnect give
    /// it the conversation back as text items so the caller need not repeat themselves.
    pub(super) fn on_model_ready(&mut self, reconnect: bool, ctx: &mut ws::WebsocketContext<Self>) {
        self.model_ready = true;
        self.session_items.clear();
        self.response_active = false;
        self.send_to_model(self.session_update());
        if reconnect {
            let turns = self.transcript.replay(REPLAY_TURNS);
            for (role, text) in &turns {
                let item = match role {
                    Role::User => Item::user_text(text),
                    Role::Assistant => Item::assistant_text(text),
                    Role::Tool | Role::System => Item::system_text(text),
                };
                self.send_to_model(
                    ClientEvent::ConversationItemCreate {
                        event_id: None,
                        previous_item_id: None,
                        item,
                    }
                    .to_json(),
                );
            }
            tracing::info!(call_sid = %self.call_sid(), replayed = turns.len(), "model session restored");
            self.set_hold_reason(None, Some(false), ctx);
            // The caller spoke last and got no answer before the socket died: answer now.
            if matches!(turns.last(), Some((Role::User, _))) {
                self.request_response();
            }
        } else if self.shared.config.voice.greet {
            self.request_response();
        }
    }

    /// Sends `response.create` now, or once the current response is done.
    pub(super) fn request_response(&mut self) {
        if self.response_active {
            self.response_owed = true;
            return;
        }
        self.response_active = true;
        self.response_owed = false;
        self.send_to_model(
            ClientEvent::ResponseCreate {
                event_id: None,
                response: None,
            }
            .to_json(),
        );
    }

    /// Switches the active agent: new instructions and tools, same voice and formats.
    pub(super) fn hand_off(&mut self, target: &str) -> Result<(), String> {
        if self.shared.agents.agent(target).is_none() {
            return Err(format!("no agent named '{target}'"));
        }
        tracing::info!(call_sid = %self.call_sid(), from = %self.agent, to = %target, "handoff");
        self.agent = target.to_string();
        self.send_to_model(self.session_update());
        Ok(())
    }
}

/// Rotates the model session before the provider's cap, at a quiet moment: no response
/// streaming, no tool running and nothing left to play.
pub(super) fn rotate_when_idle(call: &mut Call, ctx: &mut ws::WebsocketContext<Call>) {
    let idle = call.model_ready
        && !call.response_active
        && call.tools_pending == 0
        && !call.ledger.has_unplayed();
    if !idle {
        ctx.run_later(ROTATION_RETRY, rotate_when_idle);
        return;
    }
    if let Some(model) = call.model() {
        tracing::info!(call_sid = %call.call_sid(), "rotating the model session");
        model.do_send(RotateSession);
        call.model_ready = false;
    }
    let cap = Duration::from_secs(call.shared.config.voice.session_cap_secs.max(1));
    ctx.run_later(cap, rotate_when_idle);
}
