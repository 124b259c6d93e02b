//! Effect tools (SPEC §14): the tools that act on the call or conversation itself rather
//! than answer from data. One typed implementation serves every channel — Realtime calls,
//! ConversationRelay calls and text conversations — so a rule such as "an agent may only
//! hand off to the agents it lists" holds everywhere.
//!
//! * `transfer_to_<agent>` switches the active agent ([`Effect::Handoff`]);
//! * `escalate_to_human` hands the customer to a person ([`Effect::Escalate`]);
//! * `send_sms` texts the customer. It talks to Twilio, so the `ToolExecutor` runs it like
//!   any other tool and the model gets the real result; its arguments are read here
//!   ([`SendSmsArgs`]).
//! * `take_voicemail` ends a call's conversation so the caller can leave a message
//!   (`<Record>`, transcribed onto their record) ([`Effect::Voicemail`]; calls only);
//! * `schedule_callback` promises the customer a call back; the `ToolExecutor` keeps it in
//!   the store (the model hears whether it was kept), its arguments are read here
//!   ([`ScheduleCallbackArgs`]).
//!
//! The JSON schemas the model is shown for `send_sms` and `escalate_to_human` are built
//! from the same definitions the arguments are read with ([`schema`]); `agents.toml` may
//! describe these tools but not change their parameters.

use serde::Deserialize;
use serde_json::{json, Value};

use super::agents::AgentsConfig;
use super::outreach::{parse_when, MAX_REASON_CHARS};
use super::tools::{
    ToolError, ESCALATE_TO_HUMAN, SCHEDULE_CALLBACK, SEND_SMS, TAKE_VOICEMAIL, TRANSFER_PREFIX,
};

/// Longest text `send_sms` sends: two SMS segments' worth, so an agent cannot text an essay.
pub const MAX_SMS_CHARS: usize = 640;

/// What an effect tool call asks of its owner, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The active agent becomes `to`: new instructions and tools, same history.
    Handoff { from: String, to: String },
    /// The customer is to be handed to a person, for `reason`.
    Escalate { reason: String },
    /// The caller is to leave a message once the assistant's last words have played.
    Voicemail,
}

/// Where the effect happens: escalation means a transfer on a call, a follow-up on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Voice,
    Text,
}

/// What the owner of a dialogue knows when the model asks for an effect.
#[derive(Debug, Clone, Copy)]
pub struct EffectScope<'a> {
    pub agents: &'a AgentsConfig,
    /// The agent active when the model asked.
    pub agent: &'a str,
    /// A person can take over (`twilio.human_number` is set).
    pub human_available: bool,
    pub medium: Medium,
}

/// The answer to an effect tool call: what the model is told, and the effect to carry out
/// (none when the call was refused — the model is told why in `output`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub output: Value,
    pub effect: Option<Effect>,
}

/// Whether `name` is an effect tool decided by [`decide`] (not `send_sms`, which runs in
/// the `ToolExecutor`).
pub fn is_effect(name: &str) -> bool {
    name == ESCALATE_TO_HUMAN || name == TAKE_VOICEMAIL || name.starts_with(TRANSFER_PREFIX)
}

/// Decides an effect tool call of the model: `None` if `name` is not an effect tool.
pub fn decide(name: &str, arguments: &str, scope: &EffectScope<'_>) -> Option<Decision> {
    if let Some(target) = name.strip_prefix(TRANSFER_PREFIX) {
        return Some(handoff(target, scope));
    }
    match name {
        ESCALATE_TO_HUMAN => Some(escalate(arguments, scope)),
        TAKE_VOICEMAIL => Some(voicemail(scope)),
        _ => None,
    }
}

fn voicemail(scope: &EffectScope<'_>) -> Decision {
    match scope.medium {
        Medium::Text => refused("voicemail is only for phone calls; take the message in writing"),
        Medium::Voice => Decision {
            output: json!({
                "status": "recording",
                "say": "tell the caller in one short sentence that they can leave their message \
                        after the beep; the recording starts when you finish",
            }),
            effect: Some(Effect::Voicemail),
        },
    }
}

fn refused(message: impl Into<String>) -> Decision {
    Decision {
        output: json!({ "error": message.into() }),
        effect: None,
    }
}

fn handoff(target: &str, scope: &EffectScope<'_>) -> Decision {
    if scope.agents.agent(target).is_none() {
        return refused(format!("there is no agent named '{target}'"));
    }
    let allowed = scope
        .agents
        .agent(scope.agent)
        .is_some_and(|agent| agent.handoffs.iter().any(|h| h == target));
    if !allowed {
        return refused(format!("{} cannot hand off to {target}", scope.agent));
    }
    Decision {
        output: json!({ "assistant": target }),
        effect: Some(Effect::Handoff {
            from: scope.agent.to_owned(),
            to: target.to_owned(),
        }),
    }
}

/// `escalate_to_human`'s arguments. A missing reason is not worth refusing the customer.
#[derive(Deserialize, Default)]
struct EscalateArgs {
    #[serde(default)]
    reason: Option<String>,
}

fn escalate(arguments: &str, scope: &EffectScope<'_>) -> Decision {
    let reason = read_args::<EscalateArgs>(arguments)
        .ok()
        .and_then(|args| args.reason)
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "the customer asked for a person".into());
    if !scope.human_available {
        // Worded to be read out as is (the local model does), and clear to a real model.
        return refused(
            "no human colleague is available right now, but I can keep helping or take a message",
        );
    }
    let output = match scope.medium {
        Medium::Voice => json!({
            "status": "transferring",
            "say": "a short goodbye before the transfer; the call is handed over when you finish",
        }),
        Medium::Text => json!({
            "status": "escalated",
            "note": "a colleague has been told and will follow up with the customer",
        }),
    };
    Decision {
        output,
        effect: Some(Effect::Escalate { reason }),
    }
}

/// What the agent is told when the caller comes back from a transfer that did not go
/// through; `dial_status` is Twilio's `DialCallStatus`.
pub fn transfer_failed_note(dial_status: &str) -> String {
    let what = match dial_status {
        "no-answer" => "nobody answered".to_owned(),
        "busy" => "the line was busy".to_owned(),
        "failed" => "the call could not be placed".to_owned(),
        "canceled" => "it was cancelled".to_owned(),
        other => format!(
            "it did not go through ({})",
            other.chars().take(40).collect::<String>()
        ),
    };
    format!(
        "# The transfer did not go through
The caller asked for a person and was transferred, \
         but {what}. They are back with you now: apologise in one short sentence, then offer to \
         keep helping, or a call back from a colleague (promise it with schedule_callback if \
         you have that tool: ask when suits them), or to take a message for a colleague \
         (a voicemail with take_voicemail if you have that tool). Do not \
         transfer them again unless they insist."
    )
}

/// `send_sms`'s arguments, read with the schema the model was shown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSmsArgs {
    pub message: String,
}

impl SendSmsArgs {
    /// Reads the model's JSON arguments; a missing, empty or overlong message is refused
    /// with a reason the model can act on.
    pub fn parse(arguments: &str) -> Result<SendSmsArgs, ToolError> {
        let args: SendSmsArgs = read_args(arguments)
            .map_err(|e| ToolError::BadArguments(format!("{SEND_SMS}: {e}")))?;
        let message = args.message.trim();
        if message.is_empty() {
            return Err(ToolError::BadArguments(format!(
                "{SEND_SMS}: `message` is empty; say what to text"
            )));
        }
        if message.chars().count() > MAX_SMS_CHARS {
            return Err(ToolError::BadArguments(format!(
                "{SEND_SMS}: `message` is over {MAX_SMS_CHARS} characters; make it shorter"
            )));
        }
        Ok(SendSmsArgs {
            message: message.to_owned(),
        })
    }
}

/// `schedule_callback`'s arguments, read with the schema the model was shown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduleCallback {
    when: String,
    reason: String,
}

/// A call back the model asked for, checked: when it is due and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleCallbackArgs {
    pub due_at_ms: u64,
    pub reason: String,
}

impl ScheduleCallbackArgs {
    /// Reads the model's JSON arguments at `now_ms`; a time in the past or too far ahead, or
    /// a missing reason, is refused with a reason the model can act on.
    pub fn parse(arguments: &str, now_ms: u64) -> Result<Self, ToolError> {
        let bad = |e: String| ToolError::BadArguments(format!("{SCHEDULE_CALLBACK}: {e}"));
        let args: RawScheduleCallback = read_args(arguments).map_err(|e| bad(e.to_string()))?;
        let reason = args.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(bad(format!(
                "`reason` must be 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        let due_at_ms = parse_when(&args.when, now_ms).map_err(bad)?;
        Ok(ScheduleCallbackArgs {
            due_at_ms,
            reason: reason.to_owned(),
        })
    }
}

fn read_args<T: serde::de::DeserializeOwned>(arguments: &str) -> Result<T, serde_json::Error> {
    let arguments = arguments.trim();
    serde_json::from_str(if arguments.is_empty() {
        "{}"
    } else {
        arguments
    })
}

/// The parameters' JSON schema of an engine-defined tool, or `None` for the others (whose
/// schema comes from `agents.toml`).
pub fn schema(name: &str) -> Option<Value> {
    match name {
        SEND_SMS => Some(json!({
            "type": "object",
            "properties": {
                "message": {
                    "type": "string",
                    "description": format!(
                        "The text to send, complete and self-contained, at most {MAX_SMS_CHARS} characters."
                    ),
                },
            },
            "required": ["message"],
            "additionalProperties": false,
        })),
        SCHEDULE_CALLBACK => Some(json!({
            "type": "object",
            "properties": {
                "when": {
                    "type": "string",
                    "description": "When to call: an RFC 3339 time with its UTC offset (2026-12-06T10:00:00-08:00), or a delay such as 'in 2 hours' or 'in 1 day'. Within 30 days.",
                },
                "reason": {
                    "type": "string",
                    "description": format!("What the call back is about, in a few words; the agent opens the call with it (at most {MAX_REASON_CHARS} characters)."),
                },
            },
            "required": ["when", "reason"],
            "additionalProperties": false,
        })),
        TAKE_VOICEMAIL => Some(json!({
            "type": "object",
            "properties": {},
            "additionalProperties": false,
        })),
        ESCALATE_TO_HUMAN => Some(json!({
            "type": "object",
            "properties": {
                "reason": { "type": "string", "description": "Why, in a few words, for the colleague." },
            },
            "required": ["reason"],
            "additionalProperties": false,
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn agents() -> AgentsConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agents.toml");
        let text = std::fs::read_to_string(path).expect("agents.toml");
        toml::from_str(&text).expect("agents.toml parses")
    }

    fn scope<'a>(agents: &'a AgentsConfig, agent: &'a str, medium: Medium) -> EffectScope<'a> {
        EffectScope {
            agents,
            agent,
            human_available: true,
            medium,
        }
    }

    #[test]
    fn a_voicemail_is_taken_on_calls_only() {
        let agents = agents();
        let voice = decide(
            TAKE_VOICEMAIL,
            "{}",
            &scope(&agents, "triage", Medium::Voice),
        )
        .expect("an effect");
        assert_eq!(voice.effect, Some(Effect::Voicemail));
        assert_eq!(voice.output["status"], "recording");
        let text = decide(
            TAKE_VOICEMAIL,
            "{}",
            &scope(&agents, "triage", Medium::Text),
        )
        .expect("an effect");
        assert_eq!(text.effect, None);
        assert!(text.output["error"].is_string());
        // Offered on calls, not to the chat model.
        let offered = |tools: Vec<super::super::agents::FunctionTool>| {
            tools.iter().any(|t| t.name == TAKE_VOICEMAIL)
        };
        assert!(offered(agents.voice_tools("triage")));
        assert!(!offered(agents.function_tools("triage")));
        assert!(agents.voice_tools("nobody").is_empty());
    }

    #[test]
    fn handoffs_follow_the_agents_list_of_allowed_targets() {
        let agents = agents();
        let ok = decide(
            "transfer_to_booking",
            "{}",
            &scope(&agents, "triage", Medium::Voice),
        )
        .expect("an effect");
        assert_eq!(
            ok.effect,
            Some(Effect::Handoff {
                from: "triage".into(),
                to: "booking".into()
            })
        );
        assert_eq!(ok.output["assistant"], "booking");
        // support does not list billing among its handoffs.
        let no = decide(
            "transfer_to_billing",
            "{}",
            &scope(&agents, "support", Medium::Text),
        )
        .expect("an effect");
        assert_eq!(no.effect, None);
        assert!(no.output["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot hand off")));
        let unknown = decide(
            "transfer_to_nobody",
            "{}",
            &scope(&agents, "triage", Medium::Text),
        )
        .expect("an effect");
        assert_eq!(unknown.effect, None);
    }

    #[test]
    fn escalation_needs_a_person_and_reads_its_reason() {
        let agents = agents();
        let decision = decide(
            ESCALATE_TO_HUMAN,
            r#"{"reason":"disputes a charge"}"#,
            &scope(&agents, "billing", Medium::Voice),
        )
        .expect("an effect");
        assert_eq!(
            decision.effect,
            Some(Effect::Escalate {
                reason: "disputes a charge".into()
            })
        );
        assert_eq!(decision.output["status"], "transferring");
        let text = decide(
            ESCALATE_TO_HUMAN,
            "not json",
            &scope(&agents, "billing", Medium::Text),
        )
        .expect("an effect");
        assert_eq!(
            text.effect,
            Some(Effect::Escalate {
                reason: "the customer asked for a person".into()
            })
        );
        let mut nobody = scope(&agents, "billing", Medium::Voice);
        nobody.human_available = false;
        let refused = decide(ESCALATE_TO_HUMAN, "{}", &nobody).expect("an effect");
        assert_eq!(refused.effect, None);
        assert!(refused.output.get("error").is_some());
        assert!(decide("lookup_order", "{}", &nobody).is_none());
        assert!(decide(SEND_SMS, "{}", &nobody).is_none());
    }

    #[test]
    fn send_sms_reads_exactly_the_schema_it_shows() {
        let sms = schema(SEND_SMS).expect("send_sms has an engine schema");
        let required: Vec<&str> = sms["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties: Vec<&String> = sms["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
            .collect();
        assert_eq!(required, vec!["message"]);
        assert_eq!(properties, vec!["message"]);
        let args = SendSmsArgs::parse(r#"{"message":"  Your code is S101  "}"#).expect("reads");
        assert_eq!(args.message, "Your code is S101");
        for bad in [
            r#"{"body":"the old name"}"#,
            r#"{"message":"   "}"#,
            r#"{"message":"x","extra":1}"#,
            "[]",
            "",
        ] {
            assert!(SendSmsArgs::parse(bad).is_err(), "{bad}");
        }
        let long = json!({ "message": "a".repeat(MAX_SMS_CHARS + 1) }).to_string();
        assert!(SendSmsArgs::parse(&long).is_err());
    }

    #[test]
    fn a_call_back_needs_a_time_ahead_and_a_reason() {
        let now = 1_796_000_000_000;
        let ok =
            ScheduleCallbackArgs::parse(r#"{"when": "in 2 hours", "reason": " the quote "}"#, now)
                .expect("valid");
        assert_eq!(ok.due_at_ms, now + 7_200_000);
        assert_eq!(ok.reason, "the quote");
        for bad in [
            r#"{"when": "in 2 hours"}"#,
            r#"{"when": "yesterday", "reason": "x"}"#,
            r#"{"when": "in 2 hours", "reason": ""}"#,
            r#"{"when": "in 2 hours", "reason": "x", "extra": 1}"#,
            "not json",
        ] {
            let err = ScheduleCallbackArgs::parse(bad, now).expect_err(bad);
            assert!(err.to_string().contains(SCHEDULE_CALLBACK), "{err}");
        }
        let schema = schema(SCHEDULE_CALLBACK).expect("schema");
        assert_eq!(schema["required"], json!(["when", "reason"]));
    }

    #[test]
    fn a_failed_transfer_is_explained_to_the_agent() {
        assert!(transfer_failed_note("no-answer").contains("nobody answered"));
        assert!(transfer_failed_note("busy").contains("busy"));
        let odd = transfer_failed_note(&"x".repeat(500));
        assert!(odd.len() < 600, "an odd status is clipped");
    }

    #[test]
    fn the_escalation_schema_names_the_argument_it_reads() {
        let escalation = schema(ESCALATE_TO_HUMAN).expect("schema");
        assert!(escalation["properties"].get("reason").is_some());
        assert!(schema(TRANSFER_PREFIX).is_none());
    }
}
