//! A call that people talk on while switchboard listens (`voice.mode = "human"`): the
//! two-party transcript — the caller's track and the person's, each transcribed by its own
//! session — and what is remembered of it afterwards. Pure: times come with the input.

use super::transcript::{Role, Transcript};

/// Longest summary kept in the customer's memory.
const SUMMARY_CHARS: usize = 600;
/// Turns of each party quoted in the summary.
const QUOTED_TURNS: usize = 3;

/// Who said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Caller,
    Person,
}

/// The listened call's transcript: the caller as `User`, the person as `Assistant` (the
/// roles the dashboard and the records already know).
#[derive(Debug, Default)]
pub struct ListenIn {
    transcript: Transcript,
}

impl ListenIn {
    pub fn new() -> Self {
        Self::default()
    }

    /// One party's finished turn (empty text adds nothing).
    pub fn heard(&mut self, party: Party, text: &str, at_ms: u64) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let role = match party {
            Party::Caller => Role::User,
            Party::Person => Role::Assistant,
        };
        self.transcript.push(role, text, at_ms);
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The transcript as `Caller:` / `Colleague:` lines, for a model to summarise.
    pub fn lines(&self) -> String {
        self.transcript
            .turns()
            .iter()
            .map(|t| {
                let who = if t.role == Role::User {
                    "Caller"
                } else {
                    "Colleague"
                };
                format!("{who}: {}", t.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What the customer's memory keeps of the call, for the next agent on any channel —
    /// the template used when no chat model writes one: who talked, and the first words of
    /// each party. `None` when nothing was heard.
    pub fn summary(&self) -> Option<String> {
        let said = |role: Role| -> Vec<&str> {
            self.transcript
                .turns()
                .iter()
                .filter(|t| t.role == role)
                .map(|t| t.text.as_str())
                .take(QUOTED_TURNS)
                .collect()
        };
        let (caller, person) = (said(Role::User), said(Role::Assistant));
        if caller.is_empty() && person.is_empty() {
            return None;
        }
        let mut text = String::from("The customer talked with a person of our team.");
        if !caller.is_empty() {
            text.push_str(&format!(" The customer said: \"{}\".", caller.join(" ")));
        }
        if !person.is_empty() {
            text.push_str(&format!(" Our colleague said: \"{}\".", person.join(" ")));
        }
        Some(clip(&text, SUMMARY_CHARS))
    }
}

fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text).trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parties_are_kept_in_order_and_summarised() {
        let mut call = ListenIn::new();
        assert_eq!(call.summary(), None);
        call.heard(Party::Caller, "My order 1001 never came.", 10);
        call.heard(Party::Person, " ", 11);
        call.heard(Party::Person, "I'll send a new one today.", 20);
        let turns = call.transcript().turns();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].role, Role::User);
        assert_eq!(turns[1].role, Role::Assistant);
        assert_eq!(
            call.lines(),
            "Caller: My order 1001 never came.\nColleague: I'll send a new one today."
        );
        let summary = call.summary().expect("a summary");
        assert!(summary.contains("My order 1001 never came."), "{summary}");
        assert!(summary.contains("I'll send a new one today."), "{summary}");
        call.heard(Party::Caller, &"x".repeat(2000), 30);
        assert!(call.summary().expect("a summary").chars().count() <= SUMMARY_CHARS + 1);
    }
}
