//! Calls the engine places itself (SPEC §14, issue 10): what a request to call someone must
//! be, what the agent is told when the customer answers, the voicemail left when a machine
//! does, and the call backs agents promise ([`ScheduledCall`]) with the life each one goes
//! through: `pending` until due, `placing` once a node claimed it, then `placed`, `failed`,
//! or `unconfirmed` when nobody knows whether Twilio rang the customer — which is never
//! tried again, so nobody is called twice for one promise.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::agents::AgentsConfig;
use super::catalog::is_e164;
use super::records::{mask_phone, CallRecord};
use super::transcript::Role;

/// How far ahead a call back may be promised.
pub const MAX_AHEAD_MS: u64 = 30 * 24 * 3600 * 1000;

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

/// What a ConversationRelay call the engine placed opens with (Twilio speaks it as the
/// relay's welcome greeting, before the agent's first answer).
pub fn relay_opening(reason: &str) -> String {
    format!(
        "Hello, this is a call from our team about the following: {}. Is now a good time?",
        reason.trim().trim_end_matches('.')
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

/// The whisper a person hears before a transferred caller is connected: two sentences —
/// who the caller is and which assistant had them, then the last thing they said.
pub fn whisper(record: Option<&CallRecord>) -> String {
    let Some(record) = record else {
        return "Incoming transfer from the assistant. No summary of the call is available.".into();
    };
    let who = match record.customer.as_deref() {
        Some(number) => format!("a caller at {}", mask_phone(number)),
        None => "a caller without a number".to_owned(),
    };
    let first = format!(
        "Incoming transfer: {who}, helped so far by the {} assistant, asked for a person.",
        record.agent
    );
    let last = record
        .transcript
        .turns()
        .iter()
        .rev()
        .find(|turn| turn.role == Role::User && !turn.text.trim().is_empty())
        .map(|turn| clip(turn.text.trim(), 160));
    match last {
        Some(said) => format!("{first} They last said: {said}"),
        None => format!("{first} They have not said anything yet."),
    }
}

/// The text a person gets when a caller is put through to them: who, and where the
/// transcript so far is.
pub fn handover_text(caller: Option<&str>, transcript_url: &str) -> String {
    format!(
        "Transfer coming to you from the assistant: caller {}. Transcript so far: {transcript_url}",
        caller.unwrap_or("without a number")
    )
}

/// The text a person gets when a transfer to them did not go through.
pub fn missed_transfer_text(
    caller: Option<&str>,
    dial_status: &str,
    transcript_url: &str,
) -> String {
    format!(
        "Missed transfer ({}): caller {} is back with the assistant, which offers a call back. \
         Transcript: {transcript_url}",
        clip(dial_status, 20),
        caller.unwrap_or("without a number")
    )
}

/// The text a person gets when a caller left a voicemail: what they said (clipped to fit
/// two SMS segments), or that it could not be transcribed.
pub fn voicemail_text(caller: Option<&str>, said: Option<&str>, transcript_url: &str) -> String {
    let caller = caller.unwrap_or("without a number");
    match said {
        Some(said) => format!(
            "Voicemail from {caller}: \"{}\" Call: {transcript_url}",
            clip(said, 400)
        ),
        None => format!(
            "Voicemail from {caller} (not transcribed; listen to the recording). Call: {transcript_url}"
        ),
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max).collect();
    clipped.push('…');
    clipped
}

/// Where a promised call back is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleState {
    /// Waiting for its time.
    Pending,
    /// A node claimed it and is placing it now.
    Placing,
    /// Twilio created the call (`call_sid`).
    Placed,
    /// Refused (by Twilio, or no longer valid); not tried again.
    Failed,
    /// Its node stopped while placing it, or Twilio's answer was lost: it may have rung.
    /// Never placed again — a person can look.
    Unconfirmed,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Pending => "pending",
            ScheduleState::Placing => "placing",
            ScheduleState::Placed => "placed",
            ScheduleState::Failed => "failed",
            ScheduleState::Unconfirmed => "unconfirmed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => ScheduleState::Pending,
            "placing" => ScheduleState::Placing,
            "placed" => ScheduleState::Placed,
            "failed" => ScheduleState::Failed,
            "unconfirmed" => ScheduleState::Unconfirmed,
            _ => return None,
        })
    }
}

/// A call back an agent promised (`schedule_callback`), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledCall {
    /// Unique; also what makes scheduling the same promise twice harmless.
    pub id: String,
    /// The customer's number, E.164.
    pub to: String,
    /// The agent that takes the call.
    pub agent: String,
    pub reason: String,
    pub due_at_ms: u64,
    pub created_at_ms: u64,
    pub state: ScheduleState,
    /// Tries that found every line taken (nothing was sent), each moving `due_at_ms` on.
    #[serde(default)]
    pub attempts: u32,
    /// The node that claimed it (while `placing`, and after).
    #[serde(default)]
    pub node: Option<String>,
    /// The call Twilio created.
    #[serde(default)]
    pub call_sid: Option<String>,
    /// Why it failed, or was put back.
    #[serde(default)]
    pub note: Option<String>,
    /// When its state last changed.
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// What came of placing a claimed call back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacingOutcome {
    Placed {
        call_sid: String,
    },
    /// Nothing was sent (every line taken, shutting down): pending again, due `at_ms`.
    Retry {
        at_ms: u64,
        reason: String,
    },
    Failed {
        reason: String,
    },
    Unconfirmed {
        reason: String,
    },
}

impl ScheduledCall {
    /// A new promise, pending until `due_at_ms`.
    pub fn new(to: &str, agent: &str, reason: &str, due_at_ms: u64, now_ms: u64) -> Self {
        ScheduledCall {
            id: format!("cb_{now_ms:x}_{:016x}", rand::random::<u64>()),
            to: to.to_owned(),
            agent: agent.to_owned(),
            reason: reason.to_owned(),
            due_at_ms,
            created_at_ms: now_ms,
            state: ScheduleState::Pending,
            attempts: 0,
            node: None,
            call_sid: None,
            note: None,
            updated_at_ms: now_ms,
        }
    }

    /// Whether `node` may claim it at `now_ms`.
    pub fn claimable(&self, now_ms: u64) -> bool {
        self.state == ScheduleState::Pending && self.due_at_ms <= now_ms
    }

    /// Claimed by `node`.
    pub fn claim(&mut self, node: &str, now_ms: u64) {
        self.state = ScheduleState::Placing;
        self.node = Some(node.to_owned());
        self.updated_at_ms = now_ms;
    }

    /// Applies `outcome` if `node` holds the claim; `false` (nothing changed) otherwise.
    pub fn settle(&mut self, node: &str, outcome: &PlacingOutcome, now_ms: u64) -> bool {
        if self.state != ScheduleState::Placing || self.node.as_deref() != Some(node) {
            return false;
        }
        self.updated_at_ms = now_ms;
        match outcome {
            PlacingOutcome::Placed { call_sid } => {
                self.state = ScheduleState::Placed;
                self.call_sid = Some(call_sid.clone());
                self.note = None;
            }
            PlacingOutcome::Retry { at_ms, reason } => {
                self.state = ScheduleState::Pending;
                self.due_at_ms = *at_ms;
                self.attempts = self.attempts.saturating_add(1);
                self.note = Some(reason.clone());
            }
            PlacingOutcome::Failed { reason } => {
                self.state = ScheduleState::Failed;
                self.note = Some(reason.clone());
            }
            PlacingOutcome::Unconfirmed { reason } => {
                self.state = ScheduleState::Unconfirmed;
                self.note = Some(reason.clone());
            }
        }
        true
    }

    /// Left `placing` since before `before_ms`: its node stopped mid-way.
    pub fn stale(&self, before_ms: u64) -> bool {
        self.state == ScheduleState::Placing && self.updated_at_ms < before_ms
    }

    pub fn abandon(&mut self, now_ms: u64) {
        self.state = ScheduleState::Unconfirmed;
        self.note = Some("its node stopped while placing it; it may have rung".into());
        self.updated_at_ms = now_ms;
    }
}

/// When a call back is due: an RFC 3339 time with its offset (`2026-12-06T10:00:00-08:00`)
/// or `in N minutes|hours|days`. It must be ahead of `now_ms`, and within 30 days.
pub fn parse_when(when: &str, now_ms: u64) -> Result<u64, String> {
    let when = when.trim();
    let due = match when.strip_prefix("in ") {
        Some(relative) => now_ms.saturating_add(relative_ms(relative.trim())?),
        None => {
            let at = OffsetDateTime::parse(when, &Rfc3339).map_err(|_| {
                "`when` must be an RFC 3339 time with its offset, such as                  2026-12-06T10:00:00-08:00, or 'in 2 hours'"
                    .to_owned()
            })?;
            let ms = at.unix_timestamp_nanos() / 1_000_000;
            u64::try_from(ms).map_err(|_| "`when` is before 1970".to_owned())?
        }
    };
    if due <= now_ms {
        return Err(format!(
            "`when` is in the past: it is now {}",
            format_ms(now_ms)
        ));
    }
    if due - now_ms > MAX_AHEAD_MS {
        return Err("`when` is more than 30 days ahead".to_owned());
    }
    Ok(due)
}

fn relative_ms(relative: &str) -> Result<u64, String> {
    let bad = || "`when` must be like 'in 30 minutes', 'in 2 hours' or 'in 1 day'".to_owned();
    let (count, unit) = relative.split_once(' ').ok_or_else(bad)?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    let unit_ms = match unit.trim().trim_end_matches('s') {
        "minute" | "min" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return Err(bad()),
    };
    count.checked_mul(unit_ms).ok_or_else(bad)
}

/// An instant as RFC 3339 in UTC, for people and models.
pub fn format_ms(ms: u64) -> String {
    i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> AgentsConfig {
        crate::domain::agents::shipped()
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

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn the_whisper_is_two_sentences_about_the_caller() {
        let mut record = CallRecord::new(
            "CA1",
            "MZ1",
            Some("+14155550101".into()),
            "billing",
            crate::domain::records::AudioMode::Pcmu,
            1,
        );
        record.transcript.push(Role::User, "I was charged twice", 2);
        record
            .transcript
            .push(Role::Assistant, "Let me get someone.", 3);
        let said = whisper(Some(&record));
        assert!(said.contains("billing assistant"), "{said}");
        assert!(
            said.ends_with("They last said: I was charged twice"),
            "{said}"
        );
        assert!(
            !said.contains("+14155550101"),
            "the number is masked: {said}"
        );
        assert!(
            said.contains("asked for a person. They last said: "),
            "two sentences: {said}"
        );
        assert!(whisper(None).contains("No summary"));
        assert!(
            handover_text(Some("+14155550101"), "https://x/actors/calls/CA1")
                .contains("+14155550101")
        );
        assert!(missed_transfer_text(None, "no-answer", "u").contains("no-answer"));
    }

    const NOW: u64 = 1_796_000_000_000;

    #[test]
    fn when_is_a_time_ahead_or_a_delay() {
        assert_eq!(parse_when("in 2 hours", NOW), Ok(NOW + 7_200_000));
        assert_eq!(parse_when("in 1 day", NOW), Ok(NOW + 86_400_000));
        assert_eq!(parse_when(" in 30 minutes ", NOW), Ok(NOW + 1_800_000));
        let at = format_ms(NOW + 3_600_000);
        assert_eq!(parse_when(&at, NOW), Ok(NOW + 3_600_000));
        assert!(parse_when(&format_ms(NOW - 1), NOW)
            .unwrap_err()
            .contains("past"));
        assert!(parse_when("in 31 days", NOW)
            .unwrap_err()
            .contains("30 days"));
        assert!(parse_when("tomorrow", NOW)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(parse_when("in lots of hours", NOW).is_err());
        assert!(parse_when("in 99999999999999999 days", NOW).is_err());
    }

    #[test]
    fn only_the_claiming_node_settles_a_call_back() {
        let mut call = ScheduledCall::new("+14155550101", "booking", "the quote", NOW + 10, NOW);
        assert!(!call.claimable(NOW));
        assert!(call.claimable(NOW + 10));
        call.claim("a", NOW + 10);
        assert!(!call.claimable(NOW + 20), "claimed once");
        let placed = PlacingOutcome::Placed {
            call_sid: "CA1".into(),
        };
        assert!(!call.settle("b", &placed, NOW + 11));
        assert!(call.settle("a", &placed, NOW + 11));
        assert_eq!(call.state, ScheduleState::Placed);
        assert!(!call.settle("a", &placed, NOW + 12), "settled once");

        let mut busy = ScheduledCall::new("+14155550101", "booking", "x", NOW, NOW);
        busy.claim("a", NOW);
        assert!(busy.stale(NOW + 1));
        assert!(busy.settle(
            "a",
            &PlacingOutcome::Retry {
                at_ms: NOW + 60_000,
                reason: "busy".into()
            },
            NOW
        ));
        assert_eq!(
            (busy.state, busy.attempts, busy.due_at_ms),
            (ScheduleState::Pending, 1, NOW + 60_000)
        );
        assert!(!busy.stale(NOW + 1));
        assert_eq!(ScheduleState::parse(busy.state.as_str()), Some(busy.state));
    }
}
