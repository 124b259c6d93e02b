//! A supervisor's actions on a Realtime call: an instruction that reaches the model at
//! once, ending the call with a goodbye, and handing it to a person now. Like every other
//! input they return [`VoiceAction`]s, and each is written into the call's transcript as a
//! `System` turn (`supervisor: …`), so the call record shows what was done.

use super::{Link, VoiceAction, VoiceCall};
use crate::domain::agents::AgentsConfig;
use crate::domain::records::CallOutcome;
use crate::domain::supervision::{self, Refusal};
use crate::domain::transcript::Role;
use crate::protocol::openai::realtime::{ClientEvent, Item};

use super::Now;

/// When an instruction reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The live session has it now (`session.update` and a system item).
    Now,
    /// The model socket is reconnecting: the next session is configured with it.
    NextSession,
}

impl VoiceCall {
    /// A supervisor's instruction for the agent ("offer the 10 % voucher"). It joins the
    /// session's instructions — so it survives handoffs and reconnects — and the live
    /// session gets it at once: `session.update` with the new instructions, and a system
    /// item at this point of the conversation. No response is asked for: the agent follows
    /// it from its next answer on.
    pub fn supervisor_instruction(
        &mut self,
        text: &str,
        agents: &AgentsConfig,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) -> Result<Delivery, Refusal> {
        let text = supervision::clean_text(text)?;
        if self.ending {
            return Err(Refusal::Ending);
        }
        if self.link == Link::Gone {
            return Err(Refusal::ModelGone);
        }
        let note = supervision::instruction_note(&text);
        self.context = Some(match self.context.take() {
            Some(context) => format!("{context}\n\n{note}"),
            None => note.clone(),
        });
        self.transcript.push(
            Role::System,
            supervision::record(&format!("instruction: {text}")),
            now.wall_ms,
        );
        if self.link != Link::Live {
            return Ok(Delivery::NextSession);
        }
        out.push(VoiceAction::Configure(self.session_update(agents)));
        out.push(system_item(&note));
        Ok(Delivery::Now)
    }

    /// A supervisor ends the call: the model says a short goodbye (when it is there to),
    /// and the call hangs up once that has played — or after the ending grace at most.
    pub fn supervisor_end(&mut self, now: Now, out: &mut Vec<VoiceAction>) -> Result<(), Refusal> {
        if self.ending {
            return Err(Refusal::Ending);
        }
        self.outcome = CallOutcome::Ended;
        self.transcript.push(
            Role::System,
            supervision::record("ended the call"),
            now.wall_ms,
        );
        self.last_words(supervision::GOODBYE_PROMPT, now, out);
        self.end_after_playback(out);
        Ok(())
    }

    /// A supervisor hands the call to a person now — the path of `escalate_to_human`: the
    /// escalation is recorded, the model tells the caller they are being connected, the
    /// stream ends, and Twilio's `/twilio/voice/next` dials `twilio.human_number`.
    pub fn supervisor_transfer(
        &mut self,
        now: Now,
        out: &mut Vec<VoiceAction>,
    ) -> Result<(), Refusal> {
        if !self.settings.human_available {
            return Err(Refusal::NoHuman);
        }
        if self.ending {
            return Err(Refusal::Ending);
        }
        self.outcome = CallOutcome::Escalated;
        self.transcript.push(
            Role::System,
            supervision::record("transferred the call to a person"),
            now.wall_ms,
        );
        out.push(VoiceAction::Escalated {
            reason: "a supervisor transferred the call".into(),
        });
        self.last_words(supervision::TRANSFER_PROMPT, now, out);
        self.end_after_playback(out);
        Ok(())
    }

    /// Asks the live model for one last short answer; hold audio stops for it.
    pub(super) fn last_words(&mut self, prompt: &str, now: Now, out: &mut Vec<VoiceAction>) {
        if self.link != Link::Live {
            return;
        }
        self.hold.slow_tool = false;
        self.hold.reconnecting = false;
        self.stop_hold(now, out);
        out.push(system_item(prompt));
        self.request_response(out);
    }
}

fn system_item(text: &str) -> VoiceAction {
    VoiceAction::Model(
        ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: Item::system_text(text),
        }
        .to_json(),
    )
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::EngineConfig;
    use crate::domain::voice::{VoiceSettings, ENDING_GRACE};
    use crate::protocol::openai::realtime::parse_server_event;

    fn agents() -> AgentsConfig {
        crate::domain::agents::shipped()
    }

    fn at(ms: u64) -> Now {
        Now {
            ms,
            wall_ms: 1_700_000_000_000 + ms,
        }
    }

    fn live(human: bool) -> (VoiceCall, AgentsConfig) {
        let mut config = EngineConfig::default();
        if human {
            config.twilio.human_number = Some("+15555550100".into());
        }
        let agents = agents();
        let (mut call, _) = VoiceCall::new(
            VoiceSettings::from_config(&config),
            &agents,
            "MZ00000000000000000000000000000001".into(),
            None,
        );
        let mut out = Vec::new();
        call.model_ready(false, &agents, at(0), &mut out);
        // The greeting's response completes with nothing left to play.
        let done = parse_server_event(
            &serde_json::json!({"type": "response.done",
                "response": {"id": "resp_0", "status": "completed", "output": []}})
            .to_string(),
        )
        .expect("response.done");
        call.model_event(done, &agents, at(10), 0, &mut out);
        (call, agents)
    }

    fn events(actions: &[VoiceAction]) -> Vec<serde_json::Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                VoiceAction::Model(json) | VoiceAction::Configure(json) => {
                    serde_json::from_str(json).ok()
                }
                _ => None,
            })
            .collect()
    }

    fn system_turns(call: &VoiceCall) -> Vec<String> {
        call.transcript_now(at(0))
            .turns()
            .iter()
            .filter(|t| t.role == Role::System)
            .map(|t| t.text.clone())
            .collect()
    }

    #[test]
    fn an_instruction_reaches_the_live_session_at_once_and_stays_in_its_instructions() {
        let (mut call, agents) = live(false);
        let mut out = Vec::new();
        let delivery = call
            .supervisor_instruction(" offer the 10 % voucher ", &agents, at(100), &mut out)
            .expect("instructed");
        assert_eq!(delivery, Delivery::Now);
        let sent = events(&out);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0]["type"], "session.update");
        let instructions = sent[0]["session"]["instructions"].as_str().unwrap_or("");
        assert!(
            instructions.contains("offer the 10 % voucher"),
            "{instructions}"
        );
        assert_eq!(sent[1]["type"], "conversation.item.create");
        assert_eq!(sent[1]["item"]["role"], "system");
        // No response is asked for: the agent follows it from its next answer.
        assert!(!sent.iter().any(|e| e["type"] == "response.create"));
        assert_eq!(
            system_turns(&call),
            vec!["supervisor: instruction: offer the 10 % voucher".to_string()]
        );

        // A later session (after a reconnect) is configured with it too.
        let mut out = Vec::new();
        call.model_lost(at(200), &mut out);
        let mut out = Vec::new();
        assert_eq!(
            call.supervisor_instruction("and be brief", &agents, at(250), &mut out),
            Ok(Delivery::NextSession)
        );
        assert!(events(&out).is_empty(), "{out:?}");
        call.model_ready(true, &agents, at(300), &mut out);
        let update = events(&out)
            .into_iter()
            .find(|e| e["type"] == "session.update")
            .expect("the new session is configured");
        let instructions = update["session"]["instructions"].as_str().unwrap_or("");
        assert!(
            instructions.contains("offer the 10 % voucher"),
            "{instructions}"
        );
        assert!(instructions.contains("and be brief"), "{instructions}");
    }

    #[test]
    fn an_empty_instruction_changes_nothing() {
        let (mut call, agents) = live(false);
        let mut out = Vec::new();
        assert_eq!(
            call.supervisor_instruction("  \n", &agents, at(100), &mut out),
            Err(Refusal::Empty)
        );
        assert!(out.is_empty());
        assert!(system_turns(&call).is_empty());
    }

    #[test]
    fn ending_asks_for_a_goodbye_and_hangs_up_once_it_has_played() {
        let (mut call, agents) = live(false);
        let mut out = Vec::new();
        call.supervisor_end(at(100), &mut out).expect("ended");
        let sent = events(&out);
        let types: Vec<&str> = sent.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            types,
            ["conversation.item.create", "response.create"],
            "{out:?}"
        );
        assert!(
            out.contains(&VoiceAction::HangUpWithin(ENDING_GRACE)),
            "{out:?}"
        );
        assert_eq!(call.state(), "ending");
        assert_eq!(
            system_turns(&call),
            vec!["supervisor: ended the call".to_string()]
        );
        // A second end is refused.
        assert_eq!(
            call.supervisor_end(at(110), &mut Vec::new()),
            Err(Refusal::Ending)
        );
        // The goodbye is spoken and played; then the call hangs up.
        let mut out = Vec::new();
        call.assistant_audio("item_bye", "f39/fw==", 100, at(200), &mut out);
        let mark = out
            .iter()
            .find_map(|a| match a {
                VoiceAction::Twilio(json) => serde_json::from_str::<serde_json::Value>(json)
                    .ok()
                    .and_then(|e| e["mark"]["name"].as_str().map(str::to_owned)),
                _ => None,
            })
            .expect("a mark follows the audio");
        let done = parse_server_event(
            &serde_json::json!({"type": "response.done",
                "response": {"id": "resp_1", "status": "completed", "output": []}})
            .to_string(),
        )
        .expect("response.done");
        let mut out = Vec::new();
        call.model_event(done, &agents, at(250), 0, &mut out);
        assert!(
            !out.contains(&VoiceAction::HangUp),
            "still playing: {out:?}"
        );
        let mut out = Vec::new();
        call.mark(&mark, at(320), &mut out);
        assert!(out.contains(&VoiceAction::HangUp), "{out:?}");
        assert_eq!(call.finish(at(400)).outcome, CallOutcome::Ended);
    }

    #[test]
    fn ending_while_the_model_is_away_hangs_up_at_once() {
        let (mut call, _) = live(false);
        call.model_lost(at(50), &mut Vec::new());
        let mut out = Vec::new();
        call.supervisor_end(at(100), &mut out).expect("ended");
        assert!(events(&out).is_empty(), "{out:?}");
        assert!(out.contains(&VoiceAction::HangUp), "{out:?}");
    }

    #[test]
    fn a_transfer_needs_a_person_and_then_escalates_like_the_agent_would() {
        let (mut call, _) = live(false);
        let mut out = Vec::new();
        assert_eq!(
            call.supervisor_transfer(at(100), &mut out),
            Err(Refusal::NoHuman)
        );
        assert!(out.is_empty());
        assert_eq!(call.state(), "live");

        let (mut call, _) = live(true);
        let mut out = Vec::new();
        call.supervisor_transfer(at(100), &mut out)
            .expect("transferred");
        assert!(
            out.iter()
                .any(|a| matches!(a, VoiceAction::Escalated { .. })),
            "{out:?}"
        );
        assert!(
            out.contains(&VoiceAction::HangUpWithin(ENDING_GRACE)),
            "{out:?}"
        );
        let sent = events(&out);
        assert_eq!(
            sent.last().map(|e| e["type"].clone()),
            Some("response.create".into())
        );
        assert_eq!(call.finish(at(200)).outcome, CallOutcome::Escalated);
    }
}
