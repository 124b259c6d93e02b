//! Calls the engine places itself (SPEC §14, issue 10): what a request to call someone must
//! be, what the agent is told when the customer answers, and the voicemail left when a
//! machine does.

use super::agents::AgentsConfig;
use crate::protocol::twilio::calls::is_e164;

/// Longest reason accepted for a call: it is read to the customer, and travels in URLs.
pub const MAX_REASON_CHARS: usize = 300;

/// Why a call is not placed; the message is the one line the requester gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRequestError {
    #[error("'to' must be an E.164 phone number such as +14155550101")]
    NotE164,
    #[error("there is no agent named '{0}'")]
    UnknownAgent(String),
    #[error("'reason' must be 1 to {MAX_REASON_CHARS} characters")]
    BadReason,
}

/// A call to place: checked, so a request that fails here places nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub to: String,
    pub agent: String,
    pub reason: String,
    pub machine_detection: bool,
}

impl CallRequest {
    /// Checks a request against the agents there are; the reason is trimmed, and an absent
    /// agent is the default one.
    pub fn check(
        to: &str,
        agent: Option<&str>,
        reason: &str,
        machine_detection: bool,
        agents: &AgentsConfig,
    ) -> Result<Self, CallRequestError> {
        let to = to.trim();
        if !is_e164(to) {
            return Err(CallRequestError::NotE164);
        }
        let agent = agent
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or(&agents.default_agent);
        if agents.agent(agent).is_none() {
            return Err(CallRequestError::UnknownAgent(
                agent.chars().take(40).collect(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > MAX_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            return Err(CallRequestError::BadReason);
        }
        Ok(CallRequest {
            to: to.to_owned(),
            agent: agent.to_owned(),
            reason: reason.to_owned(),
            machine_detection,
        })
    }
}

/// What the agent is told on a call it placed: it speaks first, and says why it calls.
pub fn opening_note(reason: &str) -> String {
    format!(
        "# You placed this call
You are calling the customer; they have just answered. Speak first: greet them, say who \
         you are and why you are calling — {reason} — in one or two short sentences, then \
         listen. If they cannot talk now, offer to call back later."
    )
}

/// The voicemail left when a machine answers, and the text sent with it: the reason and a
/// number to call back.
pub fn voicemail(reason: &str, callback_number: Option<&str>) -> String {
    let reason = reason.trim().trim_end_matches('.');
    match callback_number {
        Some(number) => format!(
            "Hello, this is an automated call from our team about the following: {reason}. \
             Please call us back at {number}. Thank you, goodbye."
        ),
        None => format!(
            "Hello, this is an automated call from our team about the following: {reason}. \
             We will try you again. Thank you, goodbye."
        ),
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

    #[test]
    fn a_request_is_checked_before_anything_is_placed() {
        let agents = agents();
        let ok = CallRequest::check(
            "+14155550101",
            Some("booking"),
            " confirm 10:00 ",
            true,
            &agents,
        )
        .expect("valid");
        assert_eq!(ok.reason, "confirm 10:00");
        assert_eq!(
            CallRequest::check("4155550101", None, "x", false, &agents),
            Err(CallRequestError::NotE164)
        );
        assert_eq!(
            CallRequest::check("+14155550101", Some("nobody"), "x", false, &agents),
            Err(CallRequestError::UnknownAgent("nobody".into()))
        );
        assert_eq!(
            CallRequest::check("+14155550101", None, "  ", false, &agents),
            Err(CallRequestError::BadReason)
        );
        assert_eq!(
            CallRequest::check("+14155550101", None, &"x".repeat(301), false, &agents),
            Err(CallRequestError::BadReason)
        );
        let default = CallRequest::check("+14155550101", None, "hi", false, &agents).expect("ok");
        assert_eq!(default.agent, agents.default_agent);
    }

    #[test]
    fn the_voicemail_says_why_and_where_to_call_back() {
        let message = voicemail("confirm tomorrow's 10:00 fitting.", Some("+18005550100"));
        assert!(
            message.contains("confirm tomorrow's 10:00 fitting."),
            "{message}"
        );
        assert!(
            message.contains("call us back at +18005550100"),
            "{message}"
        );
        assert!(!voicemail("x", None).contains("call us back"));
        assert!(opening_note("your order").contains("your order"));
    }
}
