//! What an agent is told about a customer from earlier contacts (SPEC §7: a call is
//! visible to a later text conversation and the other way round).
//!
//! Text conversations continue their thread as chat history and get earlier calls as
//! context ([`earlier_calls`]); a Realtime call has no chat history, so its instructions
//! carry both the earlier calls and the recent text thread ([`for_a_call`]). Pure
//! formatting over what the store returned.

use super::records::CustomerRecord;
use super::transcript::{Role, Turn};

/// Earlier calls an agent is told about, newest first.
pub const CALLS_TOLD: usize = 3;
/// Text turns a call's agent is told about, the most recent ones.
pub const TEXTS_TOLD: usize = 12;
/// A told turn is clipped to this many characters.
const TURN_CHARS: usize = 300;

/// What earlier phone calls taught us, for any agent; `None` when there were none.
pub fn earlier_calls(record: &CustomerRecord) -> Option<String> {
    if record.calls.is_empty() {
        return None;
    }
    let mut text = String::from("What we know from this customer's earlier phone calls:");
    for call in record.calls.iter().rev().take(CALLS_TOLD) {
        if let Some(summary) = &call.summary {
            text.push_str(&format!("\n- A call with a person of our team: {summary}"));
            continue;
        }
        text.push_str("\n- A call");
        if let Some(asked) = &call.asked {
            text.push_str(&format!(" where they said: \"{asked}\""));
        }
        if let Some(answered) = &call.answered {
            text.push_str(&format!("; we last told them: \"{answered}\""));
        }
        if !call.tools_used.is_empty() {
            text.push_str(&format!(" (we used: {})", call.tools_used.join(", ")));
        }
        text.push('.');
    }
    Some(text)
}

/// The customer's recent text conversation with us (SMS, WhatsApp, web chat), oldest
/// first; `None` when there is none. Tool and system turns are left out.
pub fn recent_texts(turns: &[Turn]) -> Option<String> {
    let said: Vec<&Turn> = turns
        .iter()
        .filter(|t| matches!(t.role, Role::User | Role::Assistant) && !t.text.trim().is_empty())
        .collect();
    let start = said.len().saturating_sub(TEXTS_TOLD);
    let said = said.get(start..).unwrap_or_default();
    if said.is_empty() {
        return None;
    }
    let mut text = String::from("Their most recent messages with us, oldest first:");
    for turn in said {
        let who = if turn.role == Role::User {
            "Customer"
        } else {
            "Us"
        };
        text.push_str(&format!("\n{who}: {}", clip(turn.text.trim(), TURN_CHARS)));
    }
    Some(text)
}

/// What a call's agent is told about the caller, to append to its instructions.
pub fn for_a_call(record: Option<&CustomerRecord>, texts: &[Turn]) -> Option<String> {
    let parts: Vec<String> = [record.and_then(earlier_calls), recent_texts(texts)]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "# Earlier contact with this caller\nUse it when it helps; do not read it out.\n{}",
        parts.join("\n")
    ))
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::CallSummary;

    fn turn(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
            at_ms: 1,
        }
    }

    #[test]
    fn a_call_people_had_is_told_by_its_summary() {
        let mut record = CustomerRecord::new("+14155550101", 1);
        record.record_call(CallSummary {
            call_sid: "CA9".into(),
            started_at_ms: 1,
            ended_at_ms: Some(2),
            agent: "human".into(),
            outcome: None,
            asked: Some("[1.0 seconds of audio]".into()),
            answered: None,
            tools_used: vec![],
            summary: Some("A refund for order 1001 was agreed.".into()),
        });
        let told = earlier_calls(&record).expect("told");
        assert!(
            told.contains("A call with a person of our team: A refund for order 1001 was agreed."),
            "{told}"
        );
        assert!(!told.contains("seconds of audio"), "{told}");
    }

    #[test]
    fn a_call_is_told_of_earlier_calls_and_recent_texts() {
        let mut record = CustomerRecord::new("+14155550101", 1);
        record.record_call(CallSummary {
            call_sid: "CA1".into(),
            started_at_ms: 1,
            ended_at_ms: Some(2),
            agent: "orders".into(),
            outcome: None,
            asked: Some("where is order 1001".into()),
            answered: Some("It ships tomorrow.".into()),
            tools_used: vec!["lookup_order".into()],
            summary: None,
        });
        let texts = vec![
            turn(Role::User, "Can I book a fitting on Friday?"),
            turn(Role::Tool, "list_slots → {…}"),
            turn(Role::Assistant, "Booked: S102, Friday 10:00."),
        ];
        let told = for_a_call(Some(&record), &texts).expect("something to tell");
        assert!(told.contains("where is order 1001"), "{told}");
        assert!(
            told.contains("Customer: Can I book a fitting on Friday?"),
            "{told}"
        );
        assert!(told.contains("Us: Booked: S102"), "{told}");
        assert!(!told.contains("list_slots"), "{told}");
        assert_eq!(for_a_call(None, &[]), None);
        assert_eq!(
            for_a_call(
                Some(&CustomerRecord::new("+1", 1)),
                &[turn(Role::Tool, "x")]
            ),
            None
        );
    }

    #[test]
    fn only_the_most_recent_texts_are_told_and_long_ones_are_clipped() {
        let texts: Vec<Turn> = (0..30)
            .map(|i| turn(Role::User, &format!("message {i} {}", "x".repeat(i * 20))))
            .collect();
        let told = recent_texts(&texts).expect("texts");
        assert!(!told.contains("message 17 "), "{told}");
        assert!(told.contains("message 18 ") && told.contains("message 29 "));
        assert!(told.lines().all(|l| l.chars().count() <= TURN_CHARS + 12));
    }
}
