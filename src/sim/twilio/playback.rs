//! The simulated handset's playback buffer: when the server's audio finishes playing, and
//! therefore when each of its `mark`s is due back (Media Streams §1.5: "Twilio sends back a
//! `mark` event with a matching `name` when the audio ends (or if there is no audio
//! buffered)"; `clear` "empties all buffered audio and causes any `mark` messages to be sent
//! back").
//!
//! Pure: every method takes `now`, the time since the call started, so the timing rules are
//! tested without a runtime or a socket.

use std::collections::VecDeque;
use std::time::Duration;

/// μ-law at 8 kHz: one byte is one sample is 125 µs.
const MICROS_PER_BYTE: u64 = 125;

/// Audio duration of `bytes` μ-law bytes (8 kHz, mono).
pub(super) fn ulaw_duration(bytes: usize) -> Duration {
    Duration::from_micros((bytes as u64).saturating_mul(MICROS_PER_BYTE))
}

/// Buffered outbound audio and the marks waiting for it, played FIFO at real time.
///
/// The buffer is summarised by the instant its last sample finishes playing: audio arriving
/// while the line is idle starts playing at once, audio arriving while busy is appended. A
/// mark is due when everything sent before it has played, so marks are kept with that instant
/// and come out in order.
#[derive(Debug, Default)]
pub(super) struct Playback {
    /// When the buffered audio finishes; at or before `now` means idle.
    busy_until: Duration,
    /// Marks not yet echoed, with the instant they are due (non-decreasing).
    pending: VecDeque<(Duration, String)>,
}

impl Playback {
    /// Buffers `audio` (arrived at `now`) behind what is already playing.
    pub(super) fn push_audio(&mut self, now: Duration, audio: Duration) {
        self.busy_until = self.busy_until.max(now).saturating_add(audio);
    }

    /// Queues a mark behind the buffered audio, or hands it back when nothing is buffered
    /// (then it must be echoed at once).
    pub(super) fn push_mark(&mut self, now: Duration, name: String) -> Option<String> {
        if self.is_playing(now) {
            self.pending.push_back((self.busy_until, name));
            None
        } else {
            Some(name)
        }
    }

    /// The next mark whose audio has finished playing by `now`, oldest first.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<String> {
        match self.pending.front() {
            Some((due, _)) if *due <= now => self.pending.pop_front().map(|(_, name)| name),
            _ => None,
        }
    }

    /// `clear`: drops the unplayed audio and returns every pending mark, oldest first; they
    /// are all echoed at once.
    pub(super) fn clear(&mut self, now: Duration) -> impl Iterator<Item = String> + '_ {
        self.busy_until = self.busy_until.min(now);
        self.pending.drain(..).map(|(_, name)| name)
    }

    /// Whether server audio is audible at `now` (the caller would be talking over it).
    pub(super) fn is_playing(&self, now: Duration) -> bool {
        self.busy_until > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn due(p: &mut Playback, now: Duration) -> Vec<String> {
        std::iter::from_fn(|| p.pop_due(now)).collect()
    }

    #[test]
    fn duration_is_eight_bytes_per_millisecond() {
        assert_eq!(ulaw_duration(160), ms(20));
        assert_eq!(ulaw_duration(1), Duration::from_micros(125));
        assert_eq!(ulaw_duration(0), Duration::ZERO);
    }

    #[test]
    fn mark_with_nothing_buffered_is_echoed_at_once() {
        let mut p = Playback::default();
        assert_eq!(p.push_mark(ms(5), "a".into()), Some("a".into()));
        // Audio that has already finished counts as nothing buffered too.
        p.push_audio(ms(10), ms(20));
        assert_eq!(p.push_mark(ms(30), "b".into()), Some("b".into()));
    }

    #[test]
    fn mark_is_due_only_after_the_audio_before_it_has_played() {
        let mut p = Playback::default();
        p.push_audio(ms(100), ms(200)); // plays 100..300
        assert_eq!(p.push_mark(ms(100), "m1".into()), None);
        p.push_audio(ms(150), ms(100)); // appended: plays 300..400
        assert_eq!(p.push_mark(ms(150), "m2".into()), None);
        assert!(due(&mut p, ms(299)).is_empty());
        assert_eq!(due(&mut p, ms(300)), ["m1"]);
        assert!(due(&mut p, ms(399)).is_empty());
        assert!(p.is_playing(ms(399)));
        assert_eq!(due(&mut p, ms(400)), ["m2"]);
        assert!(!p.is_playing(ms(400)));
    }

    #[test]
    fn playback_clock_restarts_when_audio_arrives_while_idle() {
        let mut p = Playback::default();
        p.push_audio(ms(0), ms(40)); // plays 0..40
        p.push_audio(ms(1000), ms(40)); // idle gap: plays 1000..1040, not 40..80
        assert_eq!(p.push_mark(ms(1000), "x".into()), None);
        assert!(due(&mut p, ms(1039)).is_empty());
        assert_eq!(due(&mut p, ms(1040)), ["x"]);
    }

    #[test]
    fn marks_back_to_back_share_a_due_time_and_keep_their_order() {
        let mut p = Playback::default();
        p.push_audio(ms(0), ms(60));
        assert_eq!(p.push_mark(ms(0), "a".into()), None);
        assert_eq!(p.push_mark(ms(0), "b".into()), None);
        assert_eq!(due(&mut p, ms(500)), ["a", "b"]);
    }

    #[test]
    fn clear_flushes_pending_marks_in_order_and_stops_playback() {
        let mut p = Playback::default();
        p.push_audio(ms(0), ms(100));
        assert_eq!(p.push_mark(ms(0), "a".into()), None);
        p.push_audio(ms(0), ms(100));
        assert_eq!(p.push_mark(ms(0), "b".into()), None);
        assert_eq!(due(&mut p, ms(100)), ["a"]);
        let flushed: Vec<String> = p.clear(ms(120)).collect();
        assert_eq!(flushed, ["b"]);
        assert!(!p.is_playing(ms(120)));
        assert!(due(&mut p, ms(10_000)).is_empty());
        // After a clear, new audio starts from `now`, not from where the old buffer ended.
        p.push_audio(ms(130), ms(20));
        assert_eq!(p.push_mark(ms(130), "c".into()), None);
        assert_eq!(due(&mut p, ms(150)), ["c"]);
    }

    #[test]
    fn clear_when_idle_flushes_nothing() {
        let mut p = Playback::default();
        assert_eq!(p.clear(ms(10)).count(), 0);
        p.push_audio(ms(0), ms(20));
        assert_eq!(p.clear(ms(50)).count(), 0);
        assert!(!p.is_playing(ms(50)));
    }
}
