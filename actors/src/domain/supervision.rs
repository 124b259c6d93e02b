//! What a supervisor may do to a live call or conversation from the dashboard, as rules
//! shared by every channel: the words the model is given, how a supervisor's action is
//! written into a transcript or thread, and why an action is refused.
//!
//! The actions themselves live with what they act on: the Realtime call's in
//! `domain::voice` (they return `VoiceAction`s like every other input), the chat model's in
//! `domain::dialogue` (context for the next turn), and a text conversation's takeover in the
//! `Conversation` actor, which owns the delivery of messages.

/// Longest instruction or message a supervisor may send, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// What the Realtime model is asked to say when a supervisor ends the call.
pub const GOODBYE_PROMPT: &str = "A supervisor is ending this call now. Say a short, polite \
     goodbye to the caller in one sentence, and nothing else.";
/// What the Realtime model is asked to say when a supervisor hands the call to a person.
pub const TRANSFER_PROMPT: &str = "A supervisor is transferring this call to a colleague now. \
     Tell the caller in one short sentence that you are connecting them to a colleague, and \
     nothing else.";
/// Spoken on a ConversationRelay call a supervisor ends (Twilio speaks our text).
pub const RELAY_GOODBYE: &str =
    "I'm sorry, I have to end our call now. Thank you for calling, goodbye.";
/// Spoken on a ConversationRelay call a supervisor hands to a person.
pub const RELAY_TRANSFER: &str = "One moment please, I'm connecting you to a colleague now.";

/// Why a supervisor's action was not carried out. Nothing was changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the text is empty")]
    Empty,
    #[error("the call is already ending")]
    Ending,
    #[error("the call is still connecting; try again in a moment")]
    Connecting,
    #[error("the assistant has left this call (the model is unavailable)")]
    ModelGone,
    #[error("no person to transfer to: twilio.human_number is not configured")]
    NoHuman,
    #[error("{0}")]
    NotForThis(&'static str),
    #[error("the conversation is not taken over: take it over first")]
    NotTakenOver,
    /// The customer cannot be reached on their channel now (why).
    #[error("{0}")]
    Unreachable(String),
    /// The channel refused the message (why).
    #[error("the message was not delivered: {0}")]
    DeliveryFailed(String),
}

impl Refusal {
    /// How the refusal reads to a client: the request was malformed (`BadRequest`), it
    /// conflicts with the state of the call or the configuration (`Conflict`), or the
    /// channel failed (`Upstream`).
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::Empty | Refusal::NotForThis(_) => RefusalKind::BadRequest,
            Refusal::DeliveryFailed(_) => RefusalKind::Upstream,
            Refusal::Ending
            | Refusal::Connecting
            | Refusal::ModelGone
            | Refusal::NoHuman
            | Refusal::NotTakenOver
            | Refusal::Unreachable(_) => RefusalKind::Conflict,
        }
    }
}

/// See [`Refusal::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    BadRequest,
    Conflict,
    Upstream,
}

/// A supervisor's text as it may be used: trimmed, control characters other than line
/// breaks made spaces, at most [`MAX_TEXT_CHARS`] characters; `Empty` if nothing is left.
pub fn clean_text(text: &str) -> Result<String, Refusal> {
    let cleaned: String = text
        .trim()
        .chars()
        .take(MAX_TEXT_CHARS)
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() {
        Err(Refusal::Empty)
    } else {
        Ok(cleaned)
    }
}

/// How an instruction is put to the model: it is told who it comes from and that the
/// customer is not to hear about it.
pub fn instruction_note(text: &str) -> String {
    format!(
        "Instruction from your supervisor, to follow from now on (do not mention the \
         supervisor to the customer): {text}"
    )
}

/// The transcript or thread entry that records a supervisor's action: `supervisor: …`.
pub fn record(what: &str) -> String {
    format!("supervisor: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_capped_and_stripped_of_control_characters() {
        assert_eq!(
            clean_text("  offer the 10 % voucher\r\n"),
            Ok("offer the 10 % voucher".into())
        );
        assert_eq!(clean_text("a\u{7}b\nc"), Ok("a b\nc".into()));
        assert_eq!(clean_text(" \t\n"), Err(Refusal::Empty));
        let long = "x".repeat(MAX_TEXT_CHARS + 50);
        assert_eq!(
            clean_text(&long).map(|t| t.chars().count()),
            Ok(MAX_TEXT_CHARS)
        );
    }

    #[test]
    fn refusals_say_what_kind_of_problem_they_are() {
        assert_eq!(Refusal::NoHuman.kind(), RefusalKind::Conflict);
        assert_eq!(Refusal::Empty.kind(), RefusalKind::BadRequest);
        assert_eq!(
            Refusal::DeliveryFailed("503".into()).kind(),
            RefusalKind::Upstream
        );
        assert!(Refusal::NoHuman.to_string().contains("twilio.human_number"));
    }
}
