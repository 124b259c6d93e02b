//! What the caller says in each 20 ms frame: a scripted caller for [`super::run_call`]
//! (utterances, pauses, waiting for replies, barge-in, hang-up) and a steered one for
//! [`super::LiveCall`] (speech queued by the test).
//!
//! Pure: decisions take `now` (the frame's offset from the start of the call) and what the
//! line has heard so far ([`Heard`]), so the turn-taking is tested without a socket.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::pacer::{FRAME, FRAME_BYTES};
use super::Utterance;

/// What the caller sends in one frame slot.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The frame buffer holds speech (a short last chunk padded with μ-law silence).
    Speech,
    Silence,
    /// The caller is done: send `stop` and close.
    HangUp,
}

/// μ-law silence (the encoding of a zero sample), used to pad and between utterances.
pub(super) const SILENCE: u8 = 0xFF;

/// Copies up to one frame of `audio` from `offset` into `frame`, pads it with silence and
/// returns where the next frame starts; `None` when nothing is left.
fn fill(audio: &[u8], offset: usize, frame: &mut [u8; FRAME_BYTES]) -> Option<usize> {
    let rest = audio.get(offset..).filter(|r| !r.is_empty())?;
    let chunk = rest.get(..FRAME_BYTES).unwrap_or(rest);
    let (head, tail) = frame.split_at_mut(chunk.len());
    head.copy_from_slice(chunk);
    tail.fill(SILENCE);
    Some(offset + chunk.len())
}

/// What the line has observed of the server, as the caller's ears would.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heard {
    /// When the first assistant audio after the caller's last utterance arrived.
    pub(super) reply_started: Option<Duration>,
    /// Whether assistant audio is playing right now.
    pub(super) playing: bool,
}

/// A caller following a [`super::CallPlan`], with the turn-taking rules documented there.
#[derive(Debug)]
pub(super) struct Script {
    utterances: Vec<Utterance>,
    barge_in: bool,
    hangup_after: Duration,
    /// Index of the utterance being spoken or waited for.
    current: usize,
    state: State,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Silent until `until`, then speak `current`.
    Pause {
        until: Duration,
    },
    /// Speaking `current` from byte `offset`.
    Speak {
        offset: usize,
    },
    /// `current` has been said; silent until its reply has come and gone.
    AwaitReply,
    /// Nothing left to say; silent until `hangup_after`.
    Listen,
    Done,
}

impl Script {
    pub(super) fn new(utterances: Vec<Utterance>, barge_in: bool, hangup_after: Duration) -> Self {
        let state = match utterances.first() {
            Some(first) => State::Pause {
                until: Duration::from_millis(first.pause_before_ms),
            },
            None => State::Listen,
        };
        Self {
            utterances,
            barge_in,
            hangup_after,
            current: 0,
            state,
        }
    }

    /// Decides the frame due at `now`, writing speech into `frame`.
    pub(super) fn next(
        &mut self,
        now: Duration,
        heard: Heard,
        frame: &mut [u8; FRAME_BYTES],
    ) -> Step {
        if now >= self.hangup_after {
            self.state = State::Done;
        }
        match self.state {
            State::Pause { until } if now >= until => self.state = State::Speak { offset: 0 },
            State::AwaitReply => self.after_reply(now, heard),
            _ => {}
        }
        match self.state {
            State::Speak { offset } => self.speak(now, offset, frame),
            State::Done => Step::HangUp,
            State::Pause { .. } | State::AwaitReply | State::Listen => Step::Silence,
        }
    }

    /// Sends the next frame of the current utterance and decides what follows it.
    fn speak(&mut self, now: Duration, offset: usize, frame: &mut [u8; FRAME_BYTES]) -> Step {
        let Some(utterance) = self.utterances.get(self.current) else {
            self.state = State::Done;
            return Step::HangUp;
        };
        let filled = fill(&utterance.ulaw, offset, frame);
        let finished = filled.is_none_or(|end| end >= utterance.ulaw.len());
        self.state = match filled {
            Some(end) if !finished => State::Speak { offset: end },
            // An empty utterance said nothing, so there is no reply to wait for.
            Some(_) if utterance.wait_for_reply => State::AwaitReply,
            // The pause before the next utterance counts from the end of this frame.
            _ => self.advance(now.saturating_add(FRAME)),
        };
        match filled {
            Some(_) => Step::Speech,
            None => Step::Silence,
        }
    }

    /// In `AwaitReply`: moves on once the reply has played out, or barges in.
    fn after_reply(&mut self, now: Duration, heard: Heard) {
        let Some(started) = heard.reply_started else {
            return;
        };
        let next = self.current + 1;
        let barge = self.barge_in && next % 2 == 1;
        match self.utterances.get(next) {
            Some(u) if barge => {
                if now >= started.saturating_add(Duration::from_millis(u.pause_before_ms)) {
                    self.current = next;
                    self.state = State::Speak { offset: 0 };
                } else if !heard.playing {
                    // The reply was shorter than the barge-in delay: an ordinary turn.
                    self.state = self.advance(now);
                }
            }
            _ if !heard.playing => self.state = self.advance(now),
            _ => {}
        }
    }

    /// Moves to the utterance after `current`, pausing from `from`.
    fn advance(&mut self, from: Duration) -> State {
        self.current += 1;
        match self.utterances.get(self.current) {
            Some(u) => State::Pause {
                until: from.saturating_add(Duration::from_millis(u.pause_before_ms)),
            },
            None => State::Done,
        }
    }
}

/// A caller steered by a test: speech queued with [`super::LiveCall::say`], silence otherwise.
#[derive(Debug, Default)]
pub(super) struct Steered {
    queue: VecDeque<Arc<[u8]>>,
    /// Where the front buffer's next frame starts.
    offset: usize,
}

impl Steered {
    pub(super) fn say(&mut self, ulaw: Arc<[u8]>) {
        if !ulaw.is_empty() {
            self.queue.push_back(ulaw);
        }
    }

    /// The next frame: queued speech, else silence.
    pub(super) fn next(&mut self, frame: &mut [u8; FRAME_BYTES]) -> Step {
        let Some(front) = self.queue.front() else {
            return Step::Silence;
        };
        match fill(front, self.offset, frame) {
            Some(end) if end < front.len() => self.offset = end,
            Some(_) => {
                self.queue.pop_front();
                self.offset = 0;
            }
            // `say` never queues an empty buffer, so `fill` always finds bytes.
            None => return Step::Silence,
        }
        Step::Speech
    }
}

/// Measures turn-taking from the caller's side: when an utterance ends, when the reply's
/// first audio arrives, when the caller starts talking over audio and when the `clear` comes.
#[derive(Debug, Default)]
pub(super) struct Turns {
    speaking: bool,
    utterance_ended: Option<Duration>,
    reply_started: Option<Duration>,
    barge_started: Option<Duration>,
}

impl Turns {
    /// The caller sent a frame at `now`: speech or silence, with server audio `playing` or not.
    pub(super) fn on_frame(&mut self, now: Duration, speech: bool, playing: bool) {
        match (self.speaking, speech) {
            (false, true) => {
                self.utterance_ended = None;
                self.reply_started = None;
                self.barge_started = playing.then_some(now);
            }
            // The previous frame was the utterance's last: its audio ends now.
            (true, false) => self.utterance_ended = Some(now),
            _ => {}
        }
        self.speaking = speech;
    }

    /// Server audio arrived at `now`; returns the turn latency if it is the first audio
    /// since the caller stopped talking.
    pub(super) fn on_audio(&mut self, now: Duration) -> Option<Duration> {
        let ended = self.utterance_ended?;
        if self.reply_started.is_some() {
            return None;
        }
        self.reply_started = Some(now);
        Some(now.saturating_sub(ended))
    }

    /// A `clear` arrived at `now`; returns the barge-in latency if the caller had started
    /// talking over audio.
    pub(super) fn on_clear(&mut self, now: Duration) -> Option<Duration> {
        self.barge_started
            .take()
            .map(|started| now.saturating_sub(started))
    }

    /// What the script needs to know about the reply to the last utterance.
    pub(super) fn heard(&self, playing: bool) -> Heard {
        Heard {
            reply_started: self.reply_started,
            playing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn utterance(bytes: usize, wait_for_reply: bool, pause_before_ms: u64) -> Utterance {
        // Distinct non-silent bytes so frames can be told apart.
        let ulaw: Vec<u8> = (0..bytes).map(|i| (i % 200) as u8).collect();
        Utterance {
            ulaw: ulaw.into(),
            wait_for_reply,
            pause_before_ms,
        }
    }

    /// Runs the script frame by frame from 0 ms, `heard` giving what the line hears at each
    /// frame; returns one char per frame: `.` silence, `S` speech, `H` hang-up (and stops).
    fn timeline(script: &mut Script, frames: u64, heard: impl Fn(Duration) -> Heard) -> String {
        let mut frame = [0u8; FRAME_BYTES];
        let mut out = String::new();
        for n in 0..frames {
            let now = ms(20 * n);
            match script.next(now, heard(now), &mut frame) {
                Step::Speech => out.push('S'),
                Step::Silence => out.push('.'),
                Step::HangUp => {
                    out.push('H');
                    break;
                }
            }
        }
        out
    }

    fn nothing_heard(_: Duration) -> Heard {
        Heard {
            reply_started: None,
            playing: false,
        }
    }

    #[test]
    fn pauses_then_speaks_each_utterance_then_hangs_up() {
        let mut s = Script::new(
            vec![utterance(400, false, 40), utterance(160, false, 60)],
            false,
            ms(10_000),
        );
        // 40 ms pause, 3 frames (400 bytes), 60 ms pause from the end of the last frame,
        // 1 frame, then done.
        assert_eq!(timeline(&mut s, 50, nothing_heard), "..SSS...SH");
    }

    #[test]
    fn frames_carry_the_utterance_and_pad_the_last_one_with_silence() {
        let mut s = Script::new(vec![utterance(200, false, 0)], false, ms(10_000));
        let heard = nothing_heard(Duration::ZERO);
        let mut frame = [0u8; FRAME_BYTES];
        assert_eq!(s.next(ms(0), heard, &mut frame), Step::Speech);
        let expected: Vec<u8> = (0..160).map(|i| i as u8).collect();
        assert_eq!(frame.as_slice(), expected.as_slice());
        assert_eq!(s.next(ms(20), heard, &mut frame), Step::Speech);
        assert_eq!(
            &frame[..40],
            &expected[..40].iter().map(|b| b + 160).collect::<Vec<_>>()[..]
        );
        assert!(frame[40..].iter().all(|&b| b == SILENCE));
        assert_eq!(s.next(ms(40), heard, &mut frame), Step::HangUp);
    }

    #[test]
    fn waits_for_the_reply_to_start_and_finish_playing() {
        let mut s = Script::new(
            vec![utterance(160, true, 0), utterance(160, false, 40)],
            false,
            ms(10_000),
        );
        // Reply starts at 100 ms and plays until 200 ms; the next utterance follows 40 ms
        // after playback ends.
        let heard = |now: Duration| Heard {
            reply_started: (now >= ms(100)).then_some(ms(100)),
            playing: now >= ms(100) && now < ms(200),
        };
        assert_eq!(timeline(&mut s, 50, heard), "S...........SH");
    }

    #[test]
    fn without_a_reply_the_caller_waits_until_the_cap() {
        let mut s = Script::new(
            vec![utterance(160, true, 0), utterance(160, false, 0)],
            false,
            ms(100),
        );
        assert_eq!(timeline(&mut s, 50, nothing_heard), "S....H");
    }

    #[test]
    fn barge_in_talks_over_a_long_reply() {
        let mut s = Script::new(
            vec![utterance(160, true, 0), utterance(320, false, 60)],
            true,
            ms(10_000),
        );
        // Reply starts at 40 ms and would play for a second; utterance 1 starts 60 ms later.
        let heard = |now: Duration| Heard {
            reply_started: (now >= ms(40)).then_some(ms(40)),
            playing: now >= ms(40) && now < ms(1040),
        };
        assert_eq!(timeline(&mut s, 50, heard), "S....SSH");
    }

    #[test]
    fn barge_in_after_a_short_reply_is_an_ordinary_turn() {
        let mut s = Script::new(
            vec![utterance(160, true, 0), utterance(160, false, 100)],
            true,
            ms(10_000),
        );
        // The reply (40..60 ms) ends before the 100 ms barge-in delay: pause from 60 ms, so
        // the next utterance starts at 160 ms.
        let heard = |now: Duration| Heard {
            reply_started: (now >= ms(40)).then_some(ms(40)),
            playing: now >= ms(40) && now < ms(60),
        };
        assert_eq!(timeline(&mut s, 50, heard), "S.......SH");
    }

    #[test]
    fn barge_in_applies_to_every_second_utterance_only() {
        let mut s = Script::new(
            vec![
                utterance(160, true, 0),
                utterance(160, true, 20),
                utterance(160, false, 20),
            ],
            true,
            ms(10_000),
        );
        // A reply that started at 0 ms and never stops playing: utterance 1 barges in 20 ms
        // after it started; utterance 2 (index 2) waits for a playback end that never comes.
        let heard = |_: Duration| Heard {
            reply_started: Some(ms(0)),
            playing: true,
        };
        assert_eq!(timeline(&mut s, 20, heard), "SS..................");
    }

    #[test]
    fn the_cap_cuts_an_utterance_short() {
        let mut s = Script::new(vec![utterance(16_000, false, 0)], false, ms(60));
        assert_eq!(timeline(&mut s, 50, nothing_heard), "SSSH");
    }

    #[test]
    fn an_empty_plan_listens_until_the_cap() {
        let mut s = Script::new(Vec::new(), false, ms(100));
        assert_eq!(timeline(&mut s, 50, nothing_heard), ".....H");
    }

    #[test]
    fn empty_utterances_are_skipped() {
        let mut s = Script::new(
            vec![utterance(0, true, 0), utterance(160, false, 0)],
            false,
            ms(10_000),
        );
        assert_eq!(timeline(&mut s, 50, nothing_heard), ".SH");
    }

    #[test]
    fn steered_caller_speaks_what_is_queued_then_falls_silent() {
        let mut s = Steered::default();
        let mut frame = [0u8; FRAME_BYTES];
        assert_eq!(s.next(&mut frame), Step::Silence);
        s.say(Arc::from(vec![1u8; 200]));
        s.say(Arc::from(Vec::new()));
        s.say(Arc::from(vec![2u8; 10]));
        assert_eq!(s.next(&mut frame), Step::Speech);
        assert!(frame.iter().all(|&b| b == 1));
        assert_eq!(s.next(&mut frame), Step::Speech);
        assert!(frame[..40].iter().all(|&b| b == 1));
        assert!(frame[40..].iter().all(|&b| b == SILENCE));
        assert_eq!(s.next(&mut frame), Step::Speech);
        assert!(frame[..10].iter().all(|&b| b == 2));
        assert_eq!(s.next(&mut frame), Step::Silence);
    }

    #[test]
    fn turns_measure_reply_and_barge_in_latency() {
        let mut t = Turns::default();
        assert_eq!(t.on_audio(ms(5)), None, "greeting audio is not a reply");
        t.on_frame(ms(0), true, false);
        t.on_frame(ms(20), true, false);
        assert_eq!(t.on_audio(ms(30)), None, "audio while the caller talks");
        t.on_frame(ms(40), false, false);
        assert_eq!(t.heard(false).reply_started, None);
        assert_eq!(t.on_audio(ms(340)), Some(ms(300)));
        assert_eq!(
            t.on_audio(ms(360)),
            None,
            "only the first audio of a reply counts"
        );
        assert_eq!(t.heard(true).reply_started, Some(ms(340)));
        assert_eq!(t.on_clear(ms(370)), None, "no barge-in yet");
        // The caller talks over the playing reply; the server clears 150 ms later.
        t.on_frame(ms(400), true, true);
        assert_eq!(t.heard(true).reply_started, None);
        assert_eq!(t.on_clear(ms(550)), Some(ms(150)));
        assert_eq!(t.on_clear(ms(560)), None);
        // Speech that starts in silence is not a barge-in.
        t.on_frame(ms(600), false, false);
        t.on_frame(ms(620), true, false);
        assert_eq!(t.on_clear(ms(700)), None);
    }
}
