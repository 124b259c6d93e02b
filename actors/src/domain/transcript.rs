//! The text transcript of a call or conversation.
//!
//! It is what survives a model reconnect (replayed into the new session as text
//! items, SPEC §5.1), what is stored in the call record (SPEC §7), and it must say
//! what the caller actually heard: after a barge-in the assistant's last turn is
//! cut to the part that was played.

use serde::{Deserialize, Serialize};

/// Appended to an assistant turn the caller cut off, so a replayed history tells
/// the model it was interrupted there.
const CUT_MARKER: char = '…';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Tool,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Transcript {
    turns: Vec<Turn>,
    /// Turns placed before their text is known, by the id of the item they stand for: a
    /// caller's words are transcribed after the answer to them may have started, yet belong
    /// before it. Live state only, never stored.
    #[serde(skip)]
    reserved: Vec<(String, usize)>,
}

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, role: Role, text: impl Into<String>, at_ms: u64) {
        self.turns.push(Turn {
            role,
            text: text.into(),
            at_ms,
        });
    }

    /// Places a turn for item `item_id` now, to be given its text by [`fill`](Self::fill)
    /// when it is known; until then it is empty (and skipped by [`replay`](Self::replay)).
    pub fn reserve(&mut self, item_id: &str, role: Role, at_ms: u64) {
        if self.reserved.iter().any(|(id, _)| id == item_id) {
            return;
        }
        self.reserved.push((item_id.to_owned(), self.turns.len()));
        self.push(role, String::new(), at_ms);
    }

    /// The text of item `item_id`: into its reserved place, or at the end if it has none.
    pub fn fill(&mut self, item_id: &str, role: Role, text: impl Into<String>, at_ms: u64) {
        let text = text.into();
        let place = self
            .reserved
            .iter()
            .position(|(id, _)| id == item_id)
            .map(|i| self.reserved.remove(i).1);
        match place.and_then(|index| self.turns.get_mut(index)) {
            Some(turn) => turn.text = text,
            None => self.push(role, text, at_ms),
        }
    }

    /// The transcript as it is kept: turns whose text never came are dropped.
    pub fn settled(mut self) -> Transcript {
        self.reserved.clear();
        self.turns.retain(|t| !t.text.trim().is_empty());
        self
    }

    /// Removes turn `index`, keeping reserved places pointing at their turns.
    fn remove(&mut self, index: usize) {
        if index >= self.turns.len() {
            return;
        }
        self.turns.remove(index);
        self.reserved.retain(|(_, at)| *at != index);
        for (_, at) in &mut self.reserved {
            if *at > index {
                *at -= 1;
            }
        }
    }

    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    pub fn len(&self) -> usize {
        self.turns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// After a barge-in, cuts the last assistant turn to what the caller heard:
    /// `heard_ms` of its `total_ms` of audio. Keeps the proportional prefix of
    /// the text, rounded down to a whole word, and marks the cut with `…`; a turn
    /// of which not even one word was heard is removed. Returns whether the
    /// transcript changed (not when everything was heard or there is no
    /// assistant turn).
    pub fn truncate_last_assistant(&mut self, heard_ms: u64, total_ms: u64) -> bool {
        if total_ms == 0 || heard_ms >= total_ms {
            return false;
        }
        let Some(index) = self.last_assistant_index() else {
            return false;
        };
        let Some(turn) = self.turns.get_mut(index) else {
            return false;
        };
        let chars = turn.text.chars().count();
        // u128 so that a long call's milliseconds times a long text cannot overflow.
        let keep = (chars as u128 * u128::from(heard_ms) / u128::from(total_ms)) as usize;
        let prefix = word_prefix(&turn.text, keep);
        if prefix.is_empty() {
            self.remove(index);
        } else {
            turn.text = format!("{prefix}{CUT_MARKER}");
        }
        true
    }

    /// Relay mode's version of [`truncate_last_assistant`](Self::truncate_last_assistant):
    /// ConversationRelay reports the text spoken before the interruption
    /// (`utteranceUntilInterrupt`), which replaces the last assistant turn.
    pub fn cut_last_assistant_to(&mut self, heard: &str) -> bool {
        let Some(index) = self.last_assistant_index() else {
            return false;
        };
        let heard = heard.trim();
        if heard.is_empty() {
            self.remove(index);
            return true;
        }
        match self.turns.get_mut(index) {
            Some(turn) if turn.text.trim() != heard => {
                turn.text = format!("{heard}{CUT_MARKER}");
                true
            }
            _ => false,
        }
    }

    /// The last `max_turns` non-empty turns, oldest first, for re-injecting the
    /// history as text items into a new model session.
    pub fn replay(&self, max_turns: usize) -> Vec<(Role, String)> {
        let mut recent: Vec<(Role, String)> = self
            .turns
            .iter()
            .rev()
            .filter(|t| !t.text.trim().is_empty())
            .take(max_turns)
            .map(|t| (t.role, t.text.clone()))
            .collect();
        recent.reverse();
        recent
    }

    fn last_assistant_index(&self) -> Option<usize> {
        self.turns.iter().rposition(|t| t.role == Role::Assistant)
    }
}

/// The longest prefix of `text` of at most `max_chars` characters that ends on a
/// word boundary, without trailing whitespace.
fn word_prefix(text: &str, max_chars: usize) -> &str {
    let cut = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    let (head, rest) = text.split_at_checked(cut).unwrap_or((text, ""));
    let word_continues = matches!(rest.chars().next(), Some(c) if !c.is_whitespace())
        && matches!(head.chars().next_back(), Some(c) if !c.is_whitespace());
    let whole_words = if word_continues {
        head.rfind(char::is_whitespace)
            .and_then(|i| head.get(..i))
            .unwrap_or("")
    } else {
        head
    };
    whole_words.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_assistant(text: &str) -> Transcript {
        let mut t = Transcript::new();
        t.push(Role::User, "Where is my order?", 1);
        t.push(Role::Assistant, text, 2);
        t
    }

    #[test]
    fn keeps_the_proportional_prefix_on_a_word_boundary() {
        // 40 chars; half of it heard = 20 chars = "Your order shipped y" → cut to a word.
        let mut t = with_assistant("Your order shipped yesterday via UPS ok.");
        assert!(t.truncate_last_assistant(1_000, 2_000));
        assert_eq!(t.turns()[1].text, "Your order shipped…");
    }

    #[test]
    fn a_cut_right_after_a_word_keeps_that_word() {
        let mut t = with_assistant("abc def ghi");
        // 7 of 11 chars = "abc def", followed by a space.
        assert!(t.truncate_last_assistant(7, 11));
        assert_eq!(t.turns()[1].text, "abc def…");
    }

    #[test]
    fn nothing_heard_removes_the_turn() {
        let mut t = with_assistant("Certainly, let me check.");
        assert!(t.truncate_last_assistant(10, 5_000));
        assert_eq!(t.len(), 1);
        assert_eq!(t.turns()[0].role, Role::User);
    }

    #[test]
    fn everything_heard_or_no_audio_changes_nothing() {
        let mut t = with_assistant("Done.");
        assert!(!t.truncate_last_assistant(2_000, 2_000));
        assert!(!t.truncate_last_assistant(3_000, 2_000));
        assert!(!t.truncate_last_assistant(0, 0));
        assert_eq!(t.turns()[1].text, "Done.");
        let mut only_user = Transcript::new();
        only_user.push(Role::User, "hi", 0);
        assert!(!only_user.truncate_last_assistant(1, 2));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let mut t = with_assistant("Ihre Bestellung ist unterwegs — Lieferung übermorgen früh");
        for heard in 0..=100 {
            let mut copy = t.clone();
            copy.truncate_last_assistant(heard, 100);
        }
        // 57 chars, 73 % heard = 41 chars, ending right after "Lieferung".
        assert!(t.truncate_last_assistant(73, 100));
        assert_eq!(
            t.turns()[1].text,
            "Ihre Bestellung ist unterwegs — Lieferung…"
        );
    }

    #[test]
    fn only_the_last_assistant_turn_is_cut() {
        let mut t = with_assistant("First answer here.");
        t.push(Role::Assistant, "Second answer here.", 3);
        t.push(Role::Tool, "lookup_order", 4);
        assert!(t.truncate_last_assistant(50, 100));
        assert_eq!(t.turns()[1].text, "First answer here.");
        assert_eq!(t.turns()[2].text, "Second…");
    }

    #[test]
    fn relay_cut_replaces_with_the_heard_text() {
        let mut t = with_assistant("Your order shipped yesterday.");
        assert!(t.cut_last_assistant_to(" Your order shipped "));
        assert_eq!(t.turns()[1].text, "Your order shipped…");
        assert!(!with_assistant("Same.").cut_last_assistant_to("Same."));
        let mut t = with_assistant("Gone.");
        assert!(t.cut_last_assistant_to(""));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn replay_returns_the_last_turns_oldest_first() {
        let mut t = Transcript::new();
        t.push(Role::System, "note", 0);
        t.push(Role::User, "one", 1);
        t.push(Role::Assistant, "  ", 2);
        t.push(Role::Assistant, "two", 3);
        t.push(Role::User, "three", 4);
        assert_eq!(
            t.replay(2),
            vec![
                (Role::Assistant, "two".into()),
                (Role::User, "three".into())
            ]
        );
        assert_eq!(t.replay(10).len(), 4);
        assert!(t.replay(0).is_empty());
    }

    #[test]
    fn a_late_transcription_takes_the_place_reserved_for_it() {
        let mut t = Transcript::new();
        t.push(Role::Assistant, "Hello, how can I help?", 1);
        t.push(Role::Assistant, "Of which nothing was heard.", 2);
        t.reserve("item_user_1", Role::User, 3);
        // The barge-in removes the unheard answer, before the caller's words are known.
        assert!(t.truncate_last_assistant(0, 100));
        t.push(Role::Assistant, "Your order shipped.", 4);
        t.fill("item_user_1", Role::User, "where is my order", 5);
        t.fill("item_unknown", Role::User, "and one more thing", 6);
        let texts: Vec<&str> = t.turns().iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Hello, how can I help?",
                "where is my order",
                "Your order shipped.",
                "and one more thing"
            ]
        );
        let mut pending = Transcript::new();
        pending.reserve("item_never", Role::User, 1);
        pending.push(Role::Assistant, "Sorry?", 2);
        pending.reserve("item_never", Role::User, 3);
        assert_eq!(pending.len(), 2, "reserved once");
        assert_eq!(pending.replay(5), vec![(Role::Assistant, "Sorry?".into())]);
        let kept = pending.settled();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            serde_json::to_string(&kept)
                .unwrap()
                .matches("role")
                .count(),
            1
        );
    }

    #[test]
    fn serde_round_trip() {
        let t = with_assistant("Hello.");
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""role":"assistant""#));
        assert_eq!(serde_json::from_str::<Transcript>(&json).unwrap(), t);
    }
}
