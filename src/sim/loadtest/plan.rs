//! What each simulated call does and when it starts: the ramp, the caller's turns (the prompt
//! file, silence between, every second turn barging in) and the identities Twilio would send.
//!
//! Pure: the same inputs give the same plans, so a load run is reproducible.

use std::sync::Arc;
use std::time::Duration;

use crate::sim::twilio::{CallPlan, Utterance};

/// The number every simulated call dials.
pub(super) const TO: &str = "+18005550100";
/// Silence before the first utterance: the caller hears the greeting start first.
const FIRST_PAUSE_MS: u64 = 1500;
/// Spreads the first utterances over this many 150 ms steps, so calls that start together
/// do not speak in lockstep.
const FIRST_PAUSE_STEPS: u64 = 7;
const FIRST_PAUSE_STEP_MS: u64 = 150;
/// Silence after a reply has played, before the caller speaks again.
const TURN_PAUSE_MS: u64 = 700;
/// On a barge-in turn: how long after the reply starts the caller talks over it.
const BARGE_IN_AFTER_MS: u64 = 1200;

/// One Media Streams frame period: each call's 20 ms frame clock starts with its stream.
const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// The golden ratio's fractional part: `index × φ mod 1` spreads any number of calls
/// evenly over the frame period (a low-discrepancy sequence).
const PHI_FRACTION: f64 = 0.618_033_988_749_894_9;

/// When call `index` of `calls` starts, from the start of the run: evenly over `ramp`, and
/// with `spread_phases` each at its own point of the 20 ms frame period.
///
/// Real calls start at random moments, so the 20 ms clocks of their streams are out of
/// phase with one another and their frames reach the server spread over each period. Evenly
/// spaced starts are not: whenever `ramp / calls` is a multiple of 10 or 20 ms (200 calls
/// over 10 s, 100 over 10 s, 1,000 over 20 s), every call's frames fall due in the same one
/// or two milliseconds of each period, and the server, the emulator and the generator get
/// bursts of 100–1,000 frames at once, a pattern a real media gateway does not produce.
pub(super) fn start_offset(
    index: usize,
    calls: usize,
    ramp: Duration,
    spread_phases: bool,
) -> Duration {
    if calls == 0 {
        return Duration::ZERO;
    }
    // u128 arithmetic: index < calls, so the result is below `ramp`.
    let nanos = ramp.as_nanos() * index as u128 / calls as u128;
    let even = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    if !spread_phases {
        return even;
    }
    even + FRAME_PERIOD.mul_f64((index as f64 * PHI_FRACTION).fract())
}

/// The `CallSid` of call `index`: `CA` and 32 hex digits, like Twilio's.
pub(super) fn call_sid(index: usize) -> String {
    format!("CA{index:032x}")
}

/// A distinct caller per call, so the server keeps one customer memory per call as it would
/// for real traffic.
fn caller_number(index: usize) -> String {
    format!("+1555{:07}", index % 10_000_000)
}

/// The plan of call `index`: it stays on the line for `duration`, saying `speech` on every
/// turn; odd turns barge in on the reply when `barge_in` is set.
pub(super) fn call_plan(
    index: usize,
    target: &str,
    auth_token: Option<&str>,
    speech: &Arc<[u8]>,
    duration: Duration,
    barge_in: bool,
) -> CallPlan {
    CallPlan {
        target: target.to_owned(),
        auth_token: auth_token.map(str::to_owned),
        call_sid: call_sid(index),
        from: caller_number(index),
        to: TO.to_owned(),
        utterances: utterances(index, speech, duration),
        hangup_after_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        barge_in,
        on_wire: None,
    }
}

/// Enough turns to keep talking for the whole call: each takes at least the speech itself,
/// so the call always lasts until its hang-up time (a shorter one is then a failure).
fn utterances(index: usize, speech: &Arc<[u8]>, duration: Duration) -> Vec<Utterance> {
    // 8 μ-law bytes per ms; at least 20 ms so a silly prompt cannot make the count explode.
    let speech_ms = (speech.len() as u64 / 8).max(20);
    let turns = u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .div_ceil(speech_ms)
        .saturating_add(1)
        .min(10_000);
    let first_pause = FIRST_PAUSE_MS + (index as u64 % FIRST_PAUSE_STEPS) * FIRST_PAUSE_STEP_MS;
    (0..turns)
        .map(|turn| Utterance {
            ulaw: Arc::clone(speech),
            wait_for_reply: true,
            pause_before_ms: match turn {
                0 => first_pause,
                // The script barges in on odd turns; the pause then counts from the reply's start.
                t if t % 2 == 1 => BARGE_IN_AFTER_MS,
                _ => TURN_PAUSE_MS,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_start_evenly_over_the_ramp() {
        let ramp = Duration::from_secs(10);
        assert_eq!(start_offset(0, 4, ramp, false), Duration::ZERO);
        assert_eq!(start_offset(1, 4, ramp, false), Duration::from_millis(2500));
        assert_eq!(start_offset(3, 4, ramp, false), Duration::from_millis(7500));
        assert_eq!(start_offset(5, 10, Duration::ZERO, false), Duration::ZERO);
        assert_eq!(start_offset(0, 0, ramp, false), Duration::ZERO);
    }

    #[test]
    fn spread_starts_put_the_calls_frame_clocks_out_of_phase() {
        let ramp = Duration::from_secs(10);
        let phase = |offset: Duration| offset.as_micros() % FRAME_PERIOD.as_micros();
        // 200 calls over 10 s start 50 ms apart: evenly spaced, their frames fall due at only
        // two points of the 20 ms period.
        let aligned: std::collections::BTreeSet<u128> = (0..200)
            .map(|i| phase(start_offset(i, 200, ramp, false)))
            .collect();
        assert_eq!(aligned.len(), 2);
        // Spread: every 1 ms slot of the period holds 10 ± 3 calls, and each call still starts
        // within one frame period of its even slot.
        let mut per_ms = [0u32; 20];
        for i in 0..200 {
            let offset = start_offset(i, 200, ramp, true);
            let even = start_offset(i, 200, ramp, false);
            assert!(offset >= even && offset - even < FRAME_PERIOD);
            per_ms[(phase(offset) / 1000) as usize] += 1;
        }
        assert!(per_ms.iter().all(|&n| (7..=13).contains(&n)), "{per_ms:?}");
    }

    #[test]
    fn sids_and_numbers_look_like_twilio_and_differ_per_call() {
        let sid = call_sid(255);
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("CA") && sid.ends_with("ff"));
        assert_ne!(caller_number(1), caller_number(2));
        assert_eq!(caller_number(42), "+15550000042");
    }

    #[test]
    fn a_plan_talks_for_the_whole_call_with_staggered_first_turns() {
        let speech: Arc<[u8]> = vec![0x10; 8 * 1000].into();
        let plan = call_plan(
            3,
            "http://127.0.0.1:9",
            Some("token"),
            &speech,
            Duration::from_secs(5),
            true,
        );
        assert_eq!(plan.hangup_after_ms, 5000);
        assert_eq!(plan.auth_token.as_deref(), Some("token"));
        assert!(plan.barge_in);
        // A one-second utterance: 5 turns fill the call, plus one to spare.
        assert_eq!(plan.utterances.len(), 6);
        let pauses: Vec<u64> = plan.utterances.iter().map(|u| u.pause_before_ms).collect();
        assert_eq!(pauses, [1950, 1200, 700, 1200, 700, 1200]);
        assert!(plan.utterances.iter().all(|u| u.wait_for_reply));
        assert!(plan
            .utterances
            .iter()
            .all(|u| Arc::ptr_eq(&u.ulaw, &speech)));
        let other = call_plan(4, "t", None, &speech, Duration::from_secs(5), true);
        assert_ne!(
            other.utterances[0].pause_before_ms,
            plan.utterances[0].pause_before_ms
        );
    }
}
