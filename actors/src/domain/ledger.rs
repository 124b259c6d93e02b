//! The playback ledger: what assistant audio Twilio has actually played, and
//! what to do when the caller barges in.
//!
//! Twilio echoes a `mark` once the audio sent before it has played; after a
//! `clear` it echoes every outstanding mark at once, and those echoes look exactly
//! like played ones. So every mark name carries a *generation* that a barge-in
//! bumps: an echo from an older generation is [`MarkOutcome::Flushed`], never
//! counted as played (twilio-protocols.md §1.5, §9.2).
//!
//! Mark names are `g{generation}-{seq}`: short ASCII (Twilio documents no limit
//! for names, so keep them small), unique for the life of the ledger.
//!
//! # What `audio_end_ms` means
//!
//! [`Truncation::audio_end_ms`] is the position, in milliseconds from the start
//! of the item's audio, up to which the caller has heard the item:
//!
//! * Marks are echoed in playback order (Twilio's queue is FIFO), so the first
//!   outstanding mark names the chunk that is playing *now*, and every chunk
//!   before it has played. Its item is the one being heard.
//! * Inside that chunk the position is interpolated by wall time: the chunk
//!   started playing when the previous mark was acknowledged, or when the chunk
//!   was sent if Twilio was idle then (whichever is later). The interpolation
//!   never goes past the end of that chunk, which is never past the audio
//!   forwarded for the item, which is never past the audio received from the
//!   model — so the model never rejects the truncation as "already shorter".
//! * A position of 0 (nothing of the item heard) is never sent as a truncation:
//!   the model rejects truncating items it has no audio for, and a zero-length
//!   truncation says nothing useful. Such items are listed in
//!   [`BargeIn::unheard`] instead, where the caller may delete them.
//! * When every mark has been acknowledged nothing is unplayed: a barge-in is a
//!   no-op (no `clear`, no truncation) — the caller spoke after the assistant
//!   finished, which is an ordinary turn.
//!
//! Time is the caller's monotonic millisecond clock (`now_ms`), never read here,
//! so the ledger is deterministic under test.

use std::collections::VecDeque;

/// How many interrupted item ids are remembered to drop their late deltas.
/// Late deltas arrive within a round trip of the barge-in, so a handful covers
/// it while a long call's memory stays bounded.
const INTERRUPTED_MEMORY: usize = 16;

/// What an echoed Twilio `mark` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The caller has heard `item_id` up to `played_ms` (ms from the item's start).
    Played { item_id: String, played_ms: u64 },
    /// Echoed because a `clear` flushed it (older generation): the audio was not played.
    Flushed,
    /// Not a name this ledger issued, or already acknowledged: ignore it.
    Unknown,
}

/// A `conversation.item.truncate` to send: the model forgets what was not heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub item_id: String,
    /// Always 0: an assistant item has a single audio content part.
    pub content_index: u32,
    /// Heard position in ms from the item's start; see the module docs. Always > 0.
    pub audio_end_ms: u64,
}

/// What to do on `input_audio_buffer.speech_started`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BargeIn {
    /// Send Twilio `clear`: assistant audio is still buffered there.
    pub clear: bool,
    /// Truncate the item being heard at the heard position.
    pub truncate: Option<Truncation>,
    /// Items whose audio was queued at Twilio but of which nothing was heard, in
    /// send order. The model believes the caller heard them; the caller may
    /// `conversation.item.delete` them.
    pub unheard: Vec<String>,
}

/// One mark sent to Twilio and not yet echoed: the chunk of audio before it.
#[derive(Debug, Clone)]
struct PendingMark {
    seq: u64,
    item_id: String,
    /// Position of the chunk's first and last ms within the item.
    start_ms: u64,
    end_ms: u64,
    /// When the chunk was forwarded to Twilio.
    sent_at_ms: u64,
}

/// The item whose audio is being forwarded and how much of it has been.
#[derive(Debug, Clone)]
struct ItemAudio {
    id: String,
    sent_ms: u64,
}

/// Tracks assistant audio forwarded to Twilio against the marks Twilio echoes.
#[derive(Debug, Clone, Default)]
pub struct PlaybackLedger {
    generation: u64,
    next_seq: u64,
    /// Marks in the order sent, which is the order Twilio plays and echoes them.
    pending: VecDeque<PendingMark>,
    current: Option<ItemAudio>,
    /// When the last mark of the current generation was echoed: the moment the
    /// next chunk started playing, if it was already queued.
    last_ack_at_ms: Option<u64>,
    interrupted: VecDeque<String>,
}

impl PlaybackLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `audio_ms` of assistant audio for `item_id` was forwarded to
    /// Twilio, and returns the mark name to send right after it.
    pub fn on_audio_sent(&mut self, item_id: &str, audio_ms: u64, now_ms: u64) -> String {
        if !matches!(&self.current, Some(c) if c.id == item_id) {
            // An item already queued keeps its offsets if its audio resumes.
            let sent_ms = self
                .pending
                .iter()
                .rev()
                .find(|m| m.item_id == item_id)
                .map_or(0, |m| m.end_ms);
            self.current = Some(ItemAudio {
                id: item_id.to_owned(),
                sent_ms,
            });
        }
        let start_ms = self.current.as_ref().map_or(0, |c| c.sent_ms);
        let end_ms = start_ms.saturating_add(audio_ms);
        if let Some(current) = self.current.as_mut() {
            current.sent_ms = end_ms;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.pending.push_back(PendingMark {
            seq,
            item_id: item_id.to_owned(),
            start_ms,
            end_ms,
            sent_at_ms: now_ms,
        });
        format!("g{}-{seq}", self.generation)
    }

    /// Interprets a `mark` echoed by Twilio. Never panics on any name.
    pub fn on_mark(&mut self, name: &str, now_ms: u64) -> MarkOutcome {
        let Some((generation, seq)) = parse_mark_name(name) else {
            return MarkOutcome::Unknown;
        };
        if generation < self.generation {
            return MarkOutcome::Flushed;
        }
        if generation > self.generation {
            return MarkOutcome::Unknown;
        }
        let Some(index) = self.pending.iter().position(|m| m.seq == seq) else {
            return MarkOutcome::Unknown;
        };
        // Playback is FIFO: the marks before this one have played too, even if
        // their echoes were lost.
        let mut acked = None;
        for _ in 0..=index {
            acked = self.pending.pop_front();
        }
        self.last_ack_at_ms = Some(now_ms);
        match acked {
            Some(mark) => MarkOutcome::Played {
                item_id: mark.item_id,
                played_ms: mark.end_ms,
            },
            None => MarkOutcome::Unknown,
        }
    }

    /// Whether Twilio still has assistant audio it has not acknowledged playing.
    pub fn has_unplayed(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The caller started speaking. If assistant audio is unplayed: `clear` it,
    /// truncate the item being heard at the heard position (module docs), start a
    /// new mark generation and remember the affected items as interrupted.
    /// Otherwise nothing happens.
    pub fn barge_in(&mut self, now_ms: u64) -> BargeIn {
        let Some(head) = self.pending.front() else {
            return BargeIn::default();
        };
        let started_at = self
            .last_ack_at_ms
            .map_or(head.sent_at_ms, |ack| ack.max(head.sent_at_ms));
        let chunk_ms = head.end_ms.saturating_sub(head.start_ms);
        let audio_end_ms = head
            .start_ms
            .saturating_add(now_ms.saturating_sub(started_at).min(chunk_ms));

        let truncate = (audio_end_ms > 0).then(|| Truncation {
            item_id: head.item_id.clone(),
            content_index: 0,
            audio_end_ms,
        });
        let mut affected: Vec<String> = Vec::new();
        for mark in &self.pending {
            if !affected.contains(&mark.item_id) {
                affected.push(mark.item_id.clone());
            }
        }
        let unheard = affected
            .iter()
            .filter(|id| !matches!(&truncate, Some(t) if &t.item_id == *id))
            .cloned()
            .collect();

        for id in affected {
            self.remember_interrupted(id);
        }
        self.generation = self.generation.saturating_add(1);
        self.pending.clear();
        self.current = None;
        self.last_ack_at_ms = None;
        BargeIn {
            clear: true,
            truncate,
            unheard,
        }
    }

    /// Whether `item_id` was cut off by a barge-in: its late deltas must be dropped.
    pub fn is_interrupted(&self, item_id: &str) -> bool {
        self.interrupted.iter().any(|id| id == item_id)
    }

    /// The item whose audio was forwarded most recently, until a barge-in or reset.
    pub fn current_item(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.id.as_str())
    }

    /// Forgets all playback state, e.g. when the model socket is replaced and its
    /// item ids mean nothing any more. Starts a new generation so echoes of marks
    /// sent before are reported as [`MarkOutcome::Flushed`]. Send Twilio `clear`
    /// first if [`has_unplayed`](Self::has_unplayed) and the audio must not play.
    pub fn reset(&mut self) {
        *self = Self {
            generation: self.generation.saturating_add(1),
            next_seq: self.next_seq,
            ..Self::default()
        };
    }

    fn remember_interrupted(&mut self, item_id: String) {
        if self.is_interrupted(&item_id) {
            return;
        }
        if self.interrupted.len() >= INTERRUPTED_MEMORY {
            self.interrupted.pop_front();
        }
        self.interrupted.push_back(item_id);
    }
}

/// Parses `g{generation}-{seq}`; anything else is not ours.
fn parse_mark_name(name: &str) -> Option<(u64, u64)> {
    let (generation, seq) = name.strip_prefix('g')?.split_once('-')?;
    Some((parse_digits(generation)?, parse_digits(seq)?))
}

/// Decimal digits only: `u64::from_str` would also take a leading `+`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn played(item: &str, ms: u64) -> MarkOutcome {
        MarkOutcome::Played {
            item_id: item.to_owned(),
            played_ms: ms,
        }
    }

    #[test]
    fn no_barge_in_when_everything_was_played() {
        let mut l = PlaybackLedger::new();
        let a = l.on_audio_sent("item_a", 100, 0);
        let b = l.on_audio_sent("item_a", 100, 5);
        assert_eq!(l.on_mark(&a, 100), played("item_a", 100));
        assert_eq!(l.on_mark(&b, 200), played("item_a", 200));
        assert!(!l.has_unplayed());
        assert_eq!(l.barge_in(5_000), BargeIn::default());
        assert!(!l.is_interrupted("item_a"));
        // The generation did not change: the item may keep playing.
        let c = l.on_audio_sent("item_a", 100, 5_001);
        assert_eq!(l.on_mark(&c, 5_101), played("item_a", 300));
    }

    #[test]
    fn truncates_at_the_last_acknowledged_position() {
        let mut l = PlaybackLedger::new();
        let marks: Vec<String> = (0..5).map(|i| l.on_audio_sent("item_a", 200, i)).collect();
        assert_eq!(l.on_mark(&marks[0], 200), played("item_a", 200));
        assert_eq!(l.on_mark(&marks[1], 400), played("item_a", 400));
        // Speech starts the instant the second mark is echoed: heard exactly 400 ms.
        let b = l.barge_in(400);
        assert!(b.clear);
        assert_eq!(
            b.truncate,
            Some(Truncation {
                item_id: "item_a".into(),
                content_index: 0,
                audio_end_ms: 400
            })
        );
        assert!(b.unheard.is_empty());
        assert!(l.is_interrupted("item_a"));
        assert!(!l.has_unplayed());
        assert_eq!(l.current_item(), None);
    }

    #[test]
    fn interpolates_inside_the_playing_chunk_but_never_past_it() {
        let mut l = PlaybackLedger::new();
        let first = l.on_audio_sent("item_a", 200, 0);
        l.on_audio_sent("item_a", 1_000, 0);
        assert_eq!(l.on_mark(&first, 200), played("item_a", 200));
        let mut probe = l.clone();
        // 300 ms into the second chunk.
        assert_eq!(
            probe.barge_in(500).truncate.map(|t| t.audio_end_ms),
            Some(500)
        );
        // Long after the chunk should have ended, but its mark was never echoed:
        // the position stops at the end of the chunk.
        assert_eq!(
            l.barge_in(60_000).truncate.map(|t| t.audio_end_ms),
            Some(1_200)
        );
    }

    #[test]
    fn playback_starts_when_sent_if_twilio_was_idle() {
        let mut l = PlaybackLedger::new();
        let first = l.on_audio_sent("item_a", 100, 0);
        assert_eq!(l.on_mark(&first, 100), played("item_a", 100));
        // A new item 5 s later: Twilio was idle, so it plays from its send time,
        // not from the stale acknowledgement.
        l.on_audio_sent("item_b", 1_000, 5_000);
        let b = l.barge_in(5_250);
        assert_eq!(
            b.truncate.map(|t| (t.item_id, t.audio_end_ms)),
            Some(("item_b".into(), 250))
        );
    }

    #[test]
    fn caps_at_audio_sent_for_the_item() {
        let mut l = PlaybackLedger::new();
        l.on_audio_sent("item_a", 80, 0);
        l.on_audio_sent("item_a", 40, 1);
        // Ten seconds of wall time, but only 120 ms of audio exist.
        let t = l.barge_in(10_000).truncate;
        assert_eq!(t.map(|t| t.audio_end_ms), Some(80));
    }

    #[test]
    fn nothing_heard_is_never_truncated_at_zero() {
        let mut l = PlaybackLedger::new();
        l.on_audio_sent("item_a", 500, 1_000);
        let b = l.barge_in(1_000);
        assert!(b.clear);
        assert_eq!(b.truncate, None);
        assert_eq!(b.unheard, vec!["item_a".to_owned()]);
        assert!(l.is_interrupted("item_a"));
    }

    #[test]
    fn marks_flushed_by_clear_do_not_count_as_played() {
        let mut l = PlaybackLedger::new();
        let a = l.on_audio_sent("item_a", 200, 0);
        let b = l.on_audio_sent("item_a", 200, 0);
        assert_eq!(l.on_mark(&a, 200), played("item_a", 200));
        let barge = l.barge_in(250);
        assert_eq!(barge.truncate.map(|t| t.audio_end_ms), Some(250));
        // Twilio echoes the outstanding mark after the clear.
        assert_eq!(l.on_mark(&b, 260), MarkOutcome::Flushed);
        assert!(!l.has_unplayed());
    }

    #[test]
    fn late_marks_and_deltas_after_barge_in() {
        let mut l = PlaybackLedger::new();
        let a = l.on_audio_sent("item_a", 300, 0);
        l.barge_in(100);
        assert_eq!(l.on_mark(&a, 150), MarkOutcome::Flushed);
        // Late deltas of the interrupted item are recognisable to be dropped.
        assert!(l.is_interrupted("item_a"));
        // The next response plays and is acknowledged normally in the new generation.
        let b = l.on_audio_sent("item_b", 200, 1_000);
        assert_eq!(l.on_mark(&b, 1_200), played("item_b", 200));
        assert!(!l.is_interrupted("item_b"));
        // Echoing a mark twice is harmless.
        assert_eq!(l.on_mark(&b, 1_300), MarkOutcome::Unknown);
    }

    #[test]
    fn two_items_in_a_row() {
        let mut l = PlaybackLedger::new();
        let a1 = l.on_audio_sent("item_a", 300, 0);
        let a2 = l.on_audio_sent("item_a", 300, 0);
        let b1 = l.on_audio_sent("item_b", 400, 10);
        l.on_audio_sent("item_c", 400, 20);
        assert_eq!(l.current_item(), Some("item_c"));
        assert_eq!(l.on_mark(&a1, 300), played("item_a", 300));
        assert_eq!(l.on_mark(&a2, 600), played("item_a", 600));
        assert_eq!(l.on_mark(&b1, 1_000), played("item_b", 400));
        // Item b is fully played; c is 100 ms in.
        let barge = l.barge_in(1_100);
        assert_eq!(
            barge.truncate,
            Some(Truncation {
                item_id: "item_c".into(),
                content_index: 0,
                audio_end_ms: 100
            })
        );
        assert!(l.is_interrupted("item_c"));
        assert!(!l.is_interrupted("item_a"));
    }

    #[test]
    fn later_queued_items_are_unheard() {
        let mut l = PlaybackLedger::new();
        let a = l.on_audio_sent("item_a", 300, 0);
        l.on_audio_sent("item_a", 300, 0);
        l.on_audio_sent("item_b", 500, 5);
        assert_eq!(l.on_mark(&a, 300), played("item_a", 300));
        let barge = l.barge_in(300);
        assert_eq!(
            barge.truncate.map(|t| (t.item_id, t.audio_end_ms)),
            Some(("item_a".into(), 300))
        );
        assert_eq!(barge.unheard, vec!["item_b".to_owned()]);
        assert!(l.is_interrupted("item_a") && l.is_interrupted("item_b"));
    }

    #[test]
    fn a_skipped_echo_counts_as_played_by_a_later_one() {
        let mut l = PlaybackLedger::new();
        l.on_audio_sent("item_a", 100, 0);
        let second = l.on_audio_sent("item_a", 100, 0);
        assert_eq!(l.on_mark(&second, 200), played("item_a", 200));
        assert!(!l.has_unplayed());
    }

    #[test]
    fn garbage_mark_names_are_unknown() {
        let mut l = PlaybackLedger::new();
        l.on_audio_sent("item_a", 100, 0);
        for name in [
            "",
            "g",
            "g-",
            "g0",
            "g0-",
            "g-1",
            "gx-1",
            "g0-x",
            "responsePart",
            "g99-0",
            "g0-99",
            "g18446744073709551616-0",
            "g0-0-0",
            "g+0-+0",
            "é",
        ] {
            assert_eq!(l.on_mark(name, 1), MarkOutcome::Unknown, "{name:?}");
        }
        assert!(l.has_unplayed());
    }

    #[test]
    fn reset_forgets_everything_and_flushes_old_marks() {
        let mut l = PlaybackLedger::new();
        let a = l.on_audio_sent("item_a", 100, 0);
        l.reset();
        assert!(!l.has_unplayed());
        assert_eq!(l.current_item(), None);
        assert_eq!(l.on_mark(&a, 50), MarkOutcome::Flushed);
        let b = l.on_audio_sent("item_b", 100, 60);
        assert_ne!(a, b);
        assert_eq!(l.on_mark(&b, 160), played("item_b", 100));
    }

    #[test]
    fn resuming_an_item_keeps_its_offsets() {
        let mut l = PlaybackLedger::new();
        l.on_audio_sent("item_a", 100, 0);
        l.on_audio_sent("item_b", 100, 0);
        let a = l.on_audio_sent("item_a", 100, 0);
        assert_eq!(l.on_mark(&a, 300), played("item_a", 200));
    }

    #[test]
    fn interrupted_memory_is_bounded() {
        let mut l = PlaybackLedger::new();
        for i in 0..(INTERRUPTED_MEMORY as u64 + 4) {
            l.on_audio_sent(&format!("item_{i}"), 100, i * 1_000);
            l.barge_in(i * 1_000 + 50);
        }
        assert!(!l.is_interrupted("item_0"));
        assert!(l.is_interrupted(&format!("item_{}", INTERRUPTED_MEMORY + 3)));
        assert_eq!(l.interrupted.len(), INTERRUPTED_MEMORY);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send { item: u8, ms: u64 },
        EchoIssued { index: usize },
        EchoGarbage(String),
        BargeIn,
        Reset,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, 0u64..2_000).prop_map(|(item, ms)| Op::Send { item, ms }),
            4 => any::<usize>().prop_map(|index| Op::EchoIssued { index }),
            1 => ".{0,12}".prop_map(Op::EchoGarbage),
            1 => Just(Op::BargeIn),
            1 => Just(Op::Reset),
            3 => (0u64..3_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #[test]
        fn random_operations_never_panic_and_never_exceed_sent(ops in prop::collection::vec(op(), 0..200)) {
            let mut l = PlaybackLedger::new();
            let mut now = 0u64;
            let mut issued: Vec<String> = Vec::new();
            // Total audio ever forwarded per item: an upper bound for any position.
            let mut sent = std::collections::HashMap::<String, u64>::new();
            for op in ops {
                match op {
                    Op::Send { item, ms } => {
                        let id = format!("item_{item}");
                        *sent.entry(id.clone()).or_default() += ms;
                        issued.push(l.on_audio_sent(&id, ms, now));
                    }
                    Op::EchoIssued { index } => {
                        if !issued.is_empty() {
                            let name = issued[index % issued.len()].clone();
                            if let MarkOutcome::Played { item_id, played_ms } = l.on_mark(&name, now) {
                                prop_assert!(played_ms <= sent[&item_id]);
                            }
                        }
                    }
                    Op::EchoGarbage(name) => {
                        let _ = l.on_mark(&name, now);
                    }
                    Op::BargeIn => {
                        let had_unplayed = l.has_unplayed();
                        let b = l.barge_in(now);
                        prop_assert_eq!(b.clear, had_unplayed);
                        if let Some(t) = b.truncate {
                            prop_assert!(t.audio_end_ms > 0);
                            prop_assert!(t.audio_end_ms <= sent[&t.item_id]);
                            prop_assert!(!b.unheard.contains(&t.item_id));
                        }
                        prop_assert!(!l.has_unplayed());
                    }
                    Op::Reset => l.reset(),
                    Op::Wait(ms) => now += ms,
                }
            }
        }
    }
}
