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
use super::records::LineInfo;
use super::tools::{
    ToolError, ESCALATE_TO_HUMAN, SCHEDULE_CALLBACK, SEND_SMS, TAKE_VOICEMAIL, TRANSFER_PREFIX,
    VERIFY_CHECK, VERIFY_SEND,
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
    /// Tools this customer is not offered; a call of one anyway is refused.
    pub withheld: &'a Withheld,
}

/// Tools not offered to the model for this customer, and why — on every channel alike.
/// Today one rule makes it: a number Lookup says is a landline cannot get `send_sms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withheld {
    tools: Vec<String>,
    /// What the agents are told, and what a call of a withheld tool answers.
    reason: Option<String>,
}

impl Withheld {
    /// What the customer's line allows (`None`: not known; everything is offered).
    pub fn for_line(line: Option<&LineInfo>) -> Withheld {
        match line {
            Some(line) if !line.takes_sms() => Withheld {
                tools: vec![SEND_SMS.to_owned()],
                reason: Some(format!(
                    "This customer's phone number is a {} and cannot receive text messages: \
                     never offer to text them anything; give every detail in the conversation.",
                    if line.line_type == "invalid" {
                        "number that cannot be reached"
                    } else {
                        "landline"
                    }
                )),
            },
            _ => Withheld::default(),
        }
    }

    /// Also the verification tools, when codes cannot be sent (no Verify Service or no
    /// credentials): a model must not promise a code that never comes.
    pub fn without_verification(mut self, available: bool) -> Withheld {
        if !available {
            self.tools.push(VERIFY_SEND.to_owned());
            self.tools.push(VERIFY_CHECK.to_owned());
        }
        self
    }

    pub fn contains(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }

    /// The names of the withheld tools.
    pub fn tools(&self) -> &[String] {
        &self.tools
    }

    /// What the agents should know about it, for their instructions or context.
    pub fn note(&self) -> Option<&str> {
        self.reason.as_deref()
    }
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

/// Decides an effect tool call of the model: `None` if `name` is not an effect tool (nor
/// a withheld one, which is refused here for every channel).
pub fn decide(name: &str, arguments: &str, scope: &EffectScope<'_>) -> Option<Decision> {
    if scope.withheld.contains(name) {
        let why = match name {
            VERIFY_SEND | VERIFY_CHECK => "Verification codes are not set up here.",
            _ => scope.withheld.note().unwrap_or_default(),
        };
        return Some(refused(format!(
            "{name} is not available for this customer. {why}"
        )));
    }
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
    // `message` is what the customer is told happens next, worded to be sent as is (the
    // local model's reply template does).
    let output = match scope.medium {
        Medium::Voice => json!({
            "status": "transferring",
            "say": "a short goodbye before the transfer; the call is handed over when you finish",
            "message": "Let me connect you with a colleague. One moment, please.",
        }),
        Medium::Text => json!({
            "status": "escalated",
            "note": "a colleague has been sent this conversation by text message and will reply to the customer at this number; tell the customer so",
            "message": TEXT_ESCALATION_PROMISE,
        }),
    };
    Decision {
        output,
        effect: Some(Effect::Escalate { reason }),
    }
}

/// What a customer on a text channel is told when a person is asked to take over.
pub const TEXT_ESCALATION_PROMISE: &str = "I've passed our conversation to a colleague, who \
    will reply to you here as soon as they can, usually within the hour during opening hours.";

/// The SMS a person (`twilio.human_number`) gets when a text conversation is escalated:
/// who, a two-line summary (why, and the customer's last words) and where to read the
/// whole thread. Stays within two SMS segments' worth of text.
pub fn escalation_sms(
    customer: &str,
    channel: &str,
    reason: &str,
    last_words: Option<&str>,
    link: &str,
) -> String {
    let clip = |text: &str, max: usize| -> String {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() <= max {
            text
        } else {
            let cut: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    };
    let mut text = format!(
        "switchboard: {customer} ({channel}) needs a person: {}.",
        clip(reason, 120).trim_end_matches('.')
    );
    if let Some(words) = last_words.filter(|w| !w.trim().is_empty()) {
        text.push_str(&format!("\nThey last wrote: \"{}\"", clip(words, 160)));
    }
    text.push_str(&format!("\nThread: {link}"));
    text
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

/// How long a number proved with a Verify code counts as the customer's.
pub const VERIFIED_FOR_MS: u64 = 60 * 60 * 1000;

/// `verify_send`'s arguments: which number gets the code — the one `order_id` was placed
/// from, else the customer's own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySendArgs {
    #[serde(default)]
    pub order_id: Option<String>,
}

impl VerifySendArgs {
    pub fn parse(arguments: &str) -> Result<VerifySendArgs, ToolError> {
        let args: VerifySendArgs = read_args(arguments)
            .map_err(|e| ToolError::BadArguments(format!("{VERIFY_SEND}: {e}")))?;
        Ok(VerifySendArgs {
            order_id: clean_order_id(args.order_id),
        })
    }
}

/// `verify_check`'s arguments: the code the customer read back (4–10 digits; spaces and
/// dashes as people say them are dropped), and the order it is for when no code is
/// pending in this conversation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCheckArgs {
    pub code: String,
    #[serde(default)]
    pub order_id: Option<String>,
}

impl VerifyCheckArgs {
    pub fn parse(arguments: &str) -> Result<VerifyCheckArgs, ToolError> {
        let args: VerifyCheckArgs = read_args(arguments)
            .map_err(|e| ToolError::BadArguments(format!("{VERIFY_CHECK}: {e}")))?;
        let code: String = args
            .code
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        if !(4..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ToolError::BadArguments(format!(
                "{VERIFY_CHECK}: `code` must be the 4 to 10 digits the customer received"
            )));
        }
        Ok(VerifyCheckArgs {
            code,
            order_id: clean_order_id(args.order_id),
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

fn clean_order_id(id: Option<String>) -> Option<String> {
    id.map(|id| id.trim().trim_start_matches('#').trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// What a Verify answer means for the model, by Twilio's `status` (never by the HTTP
/// status alone) or error code (protocols-more.md §10).
pub fn verify_check_verdict(status: &str) -> Result<(), String> {
    match status {
        "approved" => Ok(()),
        "pending" => Err("that code is not right; ask the customer to read it again".into()),
        "expired" | "canceled" | "deleted" => {
            Err("the code has expired; offer to send a new one with verify_send".into())
        }
        "max_attempts_reached" => {
            Err("too many wrong codes; the customer must wait 10 minutes before a new code".into())
        }
        other => Err(format!(
            "the verification did not succeed ({})",
            other.chars().take(40).collect::<String>()
        )),
    }
}

/// A Verify error (`code`) in words the model can act on.
pub fn verify_error_words(code: Option<i64>, step: &str) -> String {
    match code {
        Some(20404) => {
            "there is no code waiting (it expired or was used); send a new one with verify_send"
                .into()
        }
        Some(60202) => {
            "too many wrong codes; the customer must wait 10 minutes before trying again".into()
        }
        Some(60203) => "too many codes were sent; try again in 10 minutes".into(),
        Some(60200) => format!("Twilio refused the {step}: a parameter was not accepted"),
        _ => format!("the verification service could not {step} right now"),
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
        VERIFY_SEND => Some(json!({
            "type": "object",
            "properties": {
                "order_id": {
                    "type": "string",
                    "description": "The order whose phone number gets the code; omit to send it to the number the customer is using.",
                },
            },
            "required": [],
            "additionalProperties": false,
        })),
        VERIFY_CHECK => Some(json!({
            "type": "object",
            "properties": {
                "code": { "type": "string", "description": "The 4 to 10 digit code the customer read back." },
                "order_id": { "type": "string", "description": "The order being verified, if any." },
            },
            "required": ["code"],
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

    fn agents() -> AgentsConfig {
        crate::domain::agents::shipped()
    }

    const NOTHING_WITHHELD: &Withheld = &Withheld {
        tools: Vec::new(),
        reason: None,
    };

    fn scope<'a>(agents: &'a AgentsConfig, agent: &'a str, medium: Medium) -> EffectScope<'a> {
        EffectScope {
            agents,
            agent,
            human_available: true,
            medium,
            withheld: NOTHING_WITHHELD,
        }
    }

    #[test]
    fn a_landline_is_not_offered_texts_on_any_channel() {
        let agents = agents();
        let line = |line_type: &str| LineInfo {
            line_type: line_type.into(),
            carrier: None,
            checked_at_ms: 1,
        };
        let landline = Withheld::for_line(Some(&line("landline")));
        assert!(landline.contains(SEND_SMS));
        assert!(landline.note().is_some_and(|n| n.contains("landline")));
        for medium in [Medium::Voice, Medium::Text] {
            let mut scope = scope(&agents, "orders", medium);
            scope.withheld = &landline;
            let refused = decide(SEND_SMS, r#"{"message":"hi"}"#, &scope).expect("decided");
            assert_eq!(refused.effect, None);
            assert!(refused.output["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot receive text messages")));
        }
        for open in [None, Some(line("mobile")), Some(line("unknown"))] {
            assert_eq!(Withheld::for_line(open.as_ref()), Withheld::default());
        }
        assert!(Withheld::for_line(Some(&line("invalid"))).contains(SEND_SMS));
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
    fn a_person_is_texted_who_why_their_last_words_and_the_link() {
        let sms = escalation_sms(
            "+14155550101",
            "sms",
            "disputes a charge.",
            Some("I was   charged twice\nfor order 1002"),
            "https://example.com/actors/conversations/c7",
        );
        let lines: Vec<&str> = sms.lines().collect();
        assert_eq!(
            lines,
            vec![
                "switchboard: +14155550101 (sms) needs a person: disputes a charge.",
                "They last wrote: \"I was charged twice for order 1002\"",
                "Thread: https://example.com/actors/conversations/c7",
            ]
        );
        let long = escalation_sms("+1", "sms", &"r".repeat(500), Some(&"w".repeat(900)), "l");
        assert!(long.chars().count() <= MAX_SMS_CHARS, "{}", long.len());
        assert_eq!(
            escalation_sms("+1", "web", "x", None, "l").lines().count(),
            2
        );
    }

    #[test]
    fn verification_reads_exactly_the_schema_it_shows() {
        for (name, args) in [(VERIFY_SEND, "order_id"), (VERIFY_CHECK, "code")] {
            let schema = schema(name).expect("engine schema");
            assert!(schema["properties"].get(args).is_some(), "{name}");
        }
        assert_eq!(
            VerifySendArgs::parse(r##"{"order_id":" #1002 "}"##)
                .unwrap()
                .order_id
                .as_deref(),
            Some("1002")
        );
        assert_eq!(VerifySendArgs::parse("").unwrap().order_id, None);
        assert!(VerifySendArgs::parse(r#"{"phone":"+1"}"#).is_err());
        assert_eq!(
            VerifyCheckArgs::parse(r#"{"code":"123 456"}"#)
                .unwrap()
                .code,
            "123456"
        );
        for bad in [
            r#"{"code":"12"}"#,
            r#"{"code":"abcdef"}"#,
            "{}",
            r#"{"code":"12345678901"}"#,
        ] {
            assert!(VerifyCheckArgs::parse(bad).is_err(), "{bad}");
        }
        assert!(verify_check_verdict("approved").is_ok());
        assert!(verify_check_verdict("pending").is_err_and(|e| e.contains("not right")));
        assert!(verify_error_words(Some(20404), "check").contains("send a new one"));
        let nothing = Withheld::default().without_verification(false);
        assert!(nothing.contains(VERIFY_SEND) && nothing.contains(VERIFY_CHECK));
        assert!(!Withheld::default()
            .without_verification(true)
            .contains(VERIFY_SEND));
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
